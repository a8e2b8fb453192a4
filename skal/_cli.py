"""The ``skal`` command: one sub-command per module, imported only when it runs.

Each sub-command module provides ``add_arguments(parser)`` and ``run(args) -> int``. Errors a
user can fix (a ``ValueError``, ``TypeError``, ``FileNotFoundError`` or ``KeyError`` raised by
skal) are printed as one line with exit status 2, never as a traceback.
"""

import argparse
import difflib
import importlib
import sys

# name -> (module, one-line help). Modules are imported lazily so `skal --help` stays fast
# and never imports torch.
SUBCOMMANDS = {
    "run": ("skal.experiments._cli", "run a simulated active-learning comparison"),
    "label": ("skal.labeling._cli", "label a pool by hand, with a crash-safe journal"),
}


class _SubcommandParser(argparse.ArgumentParser):
    """A sub-command's parser that rejects unknown arguments itself.

    argparse parses a sub-command with ``parse_known_args`` and leaves the leftovers to the
    top-level parser, whose error would show ``skal``'s usage; a mistyped ``skal run
    --modle`` should show ``skal run``'s.
    """

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            message = "unrecognized arguments: " + " ".join(extras)
            options = [o for o in self._option_string_actions if o.startswith("--")]
            guesses = [
                match
                for extra in extras
                if extra.startswith("--")
                for match in difflib.get_close_matches(extra.partition("=")[0], options, n=1)
            ]
            if guesses:
                message += f" (did you mean {' '.join(guesses)}?)"
            self.error(message)
        return namespace, extras


def build_parser():
    parser = argparse.ArgumentParser(
        prog="skal",
        description="Active learning with scikit-learn estimators.",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_SubcommandParser
    )
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            sub.set_defaults(_missing=f"'skal {name}' is not available in this installation.")
            continue
        module.add_arguments(sub)
    return parser


def main(argv=None):
    """Entry point of the ``skal`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"skal: error: {args._missing}", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"skal {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
