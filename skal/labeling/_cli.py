"""``skal label``: label a pool in the terminal (or, with ``--web``, in a browser), one key per
class, with every answer journalled before it is acknowledged, so ``--resume`` continues after
any crash; ``--export FILE`` writes the final labels out instead."""

import os
import sys

import numpy as np

from skal.labeling._journal import JournalError
from skal.labeling._labels import check_export_path, export_journal
from skal.labeling._pools import load_pool as read_pool
from skal.labeling._session import LabelingSession

_RESERVED = {"s": "skip", "u": "undo", "q": "quit", "?": "help"}
_RAMP = " .:-=+*#%@"
_DEFAULT_KEYS = "123456789abcdefghijklmnoprtvwxyz"


def add_arguments(parser):
    parser.add_argument(
        "pool", nargs="?",
        help="the pool: a CSV file with a header, or a .npy array (optional with --export)",
    )
    parser.add_argument("--journal", required=True, help="the SQLite journal file")
    parser.add_argument(
        "--classes", help="comma-separated class names, e.g. cat,dog (optional with --export)"
    )
    parser.add_argument(
        "--keys", default=None,
        help="one key per class, in order (default 1, 2, 3, ...); s, u, q and ? are reserved",
    )
    parser.add_argument(
        "--id-column", default=None,
        help="CSV column holding stable sample ids (default: 'id' if present, else the row "
        "number)",
    )
    parser.add_argument("--annotator", default=os.environ.get("USER", "annotator"))
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None, help="the session's seed")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue an existing journal (required when the journal exists)",
    )
    parser.add_argument(
        "--query-ahead", action="store_true",
        help="propose the next batch in the background while you label",
    )
    parser.add_argument(
        "--labels-per-sample", type=int, default=1, metavar="K",
        help="with several annotators: first offer samples labelled by fewer than K of them",
    )
    parser.add_argument(
        "--aggregate", choices=("majority", "dawid_skene"), default="majority",
        help="how several annotators' labels of a sample become one (default majority)",
    )
    parser.add_argument(
        "--export", metavar="FILE",
        help="write the final labels (after undo and aggregation) to FILE, .csv or .json, "
        "with columns sample_id, label, n_annotators, and exit without labelling; the pool "
        "and --classes are then optional (given, they are checked against the journal); "
        "with --web, write FILE when the server stops",
    )
    parser.add_argument(
        "--synthesize", action="store_true",
        help="query synthesis (GAAL): once two classes are labelled, ask about new rows "
        "synthesised near the model's decision boundary by a small GAN fitted on the pool "
        "(seeded by --seed), instead of pool rows; they are journalled with their features, "
        "so --resume shows them again. Needs a pool of numbers (.npy or a numeric CSV); "
        "terminal only",
    )
    parser.add_argument(
        "--stopping", choices=tuple(STOPPING_RULES),
        help="say when more labels are unlikely to help (advice; labelling may go on): "
        "'stabilizing' = successive models agree on a stop set (kappa >= 0.99), "
        "'uncertainty' = no pool sample is uncertain any more, 'confidence' = the model's "
        "confidence fell 3 times in a row",
    )
    web = parser.add_argument_group(
        "web page (--web; needs the web extra: pip install 'skal[web]')")
    web.add_argument(
        "--web", action="store_true",
        help="label in a browser: serve a page on http://127.0.0.1:8000/ instead of the "
        "terminal; several annotators may open it at once, each under their own name",
    )
    web.add_argument(
        "--host", default="127.0.0.1",
        help="the interface to listen on (default 127.0.0.1, this machine only); any other "
        "exposes the page to the network and requires a token, printed once",
    )
    web.add_argument("--port", type=int, default=8000, help="the port (0: any free one)")
    web.add_argument(
        "--budget", type=int, default=None,
        help="stop offering samples once this many are labelled (default: the pool)",
    )
    web.add_argument(
        "--show-guess", action="store_true",
        help="show the model's guess and uncertainty next to each sample (off by default: "
        "it can bias annotators)",
    )
    web.add_argument(
        "--held-out", metavar="FILE",
        help="labelled rows for a live learning curve: a .npz with arrays X and y, or a "
        "CSV with the pool's columns and a 'label' column",
    )
    parser.add_argument(
        "--line-mode", action="store_true",
        help="type each answer's key and press Enter (the default on a terminal is a single "
        "keypress; input that is not a terminal is always read a line at a time)",
    )


STOPPING_RULES = {
    "stabilizing": "StabilizingPredictions",
    "uncertainty": "UncertaintyThreshold",
    "confidence": "ConfidenceDrop",
}


def session_learner(args):
    """The learner of a labelling session: the default one, with ``--stopping`` if given."""
    if getattr(args, "stopping", None) is None:
        return None
    import skal.stopping
    from skal.learners import ActiveLearner

    return ActiveLearner(stopping=getattr(skal.stopping, STOPPING_RULES[args.stopping])())


def load_pool(path, id_column=None):
    """Read a pool: ``(X, sample_ids, show)`` where ``show(i)`` renders row i as text.

    Any pool :func:`skal.labeling._pools.load_pool` reads (CSV, ``.npy``, ``.txt``, a folder
    of images or of MNIST files); image arrays are shown as a small text preview.
    """
    pool = read_pool(path, id_column)
    array_rows = pool.kind == "fields" and os.fspath(path).endswith(".npy")

    def show(i):
        if pool.kind == "image" and pool.root is None:
            return text_preview(pool.items[i])
        if array_rows:
            return "  ".join(pool.items[i][:20])
        return pool.text(i)

    return pool.X, pool.sample_ids, show


def text_preview(image, max_width=32, max_height=16):
    """A small text rendering of a 2-d (or 2-d with channels) image, darkest as blank."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image.mean(axis=-1 if image.shape[-1] <= 4 else 0)
    h, w = image.shape[:2]
    step_y, step_x = max(1, -(-h // max_height)), max(1, -(-w // max_width))
    rows = []
    low, high = float(image.min()), float(image.max())
    scale = (high - low) or 1.0
    for y in range(0, h, step_y):
        cells = []
        for x in range(0, w, step_x):
            value = (image[y:y + step_y, x:x + step_x].mean() - low) / scale
            cells.append(_RAMP[min(len(_RAMP) - 1, int(value * len(_RAMP)))] * 2)
        rows.append("  |" + "".join(cells) + "|")
    return "\n".join(rows)


def _key_map(classes, keys):
    keys = list(keys) if keys else list(_DEFAULT_KEYS[: len(classes)])
    if len(keys) != len(classes):
        raise ValueError(f"--keys gives {len(keys)} keys for {len(classes)} classes.")
    if len(set(keys)) != len(keys) or set(keys) & set(_RESERVED):
        raise ValueError(
            f"--keys must be distinct and avoid the reserved keys {sorted(_RESERVED)}."
        )
    return dict(zip(keys, classes, strict=True))


def _export(args):
    """``--export FILE``: write the journal's final labels; label nothing."""
    if args.pool is None and args.classes is None:
        n_rows = export_journal(args.journal, args.export, aggregate=args.aggregate)
    else:
        if args.pool is None or args.classes is None:
            raise ValueError(
                "--export: give both the pool and --classes (to check them against the "
                "journal), or neither."
            )
        check_export_path(args.export)
        if not (os.path.exists(args.journal) and os.path.getsize(args.journal) > 0):
            raise FileNotFoundError(f"There is no journal at {args.journal!r} to export.")
        X, ids, _ = load_pool(args.pool, args.id_column)
        with LabelingSession(
            None, X, args.journal, classes=_classes(args.classes), sample_ids=ids,
            aggregate=args.aggregate,
        ) as session:
            session.export(args.export)
            n_rows = session.n_labels_
    print(f"Wrote the labels of {n_rows} samples to {args.export}")
    return 0


def _classes(text):
    return [c.strip() for c in text.split(",") if c.strip()]


def _check_journal_state(args):
    exists = os.path.exists(args.journal) and os.path.getsize(args.journal) > 0
    if exists and not args.resume:
        raise ValueError(
            f"The journal {args.journal!r} exists; pass --resume to continue it, or choose "
            "another file."
        )
    if args.resume and not exists:
        raise FileNotFoundError(f"--resume: there is no journal at {args.journal!r}.")


def run(args):
    try:
        if args.export is not None and not args.web:
            return _export(args)
    except JournalError as exc:
        print(f"skal label: error: {exc}", file=sys.stderr)
        return 2
    if args.pool is None or args.classes is None:
        raise ValueError("give the pool and --classes to label (or --export FILE to export).")
    classes = _classes(args.classes)
    if args.web:
        if getattr(args, "synthesize", False):
            raise ValueError(
                "--synthesize works in the terminal only: the web page shows pool rows. "
                "Drop --web, or label pool rows in the browser without --synthesize."
            )
        from skal.labeling._webcli import run_web

        return run_web(args, classes, _check_journal_state)
    keymap = _key_map(classes, args.keys)
    _check_journal_state(args)
    X, ids, show = load_pool(args.pool, args.id_column)
    try:
        session = LabelingSession(
            session_learner(args), X, args.journal, classes=classes, sample_ids=ids,
            annotator=args.annotator, batch_size=args.batch_size,
            query_ahead=args.query_ahead, random_state=args.seed,
            aggregate=args.aggregate, labels_per_sample=args.labels_per_sample,
            synthesizer=_synthesizer(args),
        )
    except JournalError as exc:
        print(f"skal label: error: {exc}", file=sys.stderr)
        return 2
    legend = "  ".join(f"{k}={c}" for k, c in keymap.items())
    help_line = f"keys: {legend}  s=skip  u=undo  q=quit"
    read_key = key_reader(sys.stdin, line_mode=args.line_mode)
    with session:
        print(f"{len(ids)} samples, {session.n_labels_} labelled; journal {args.journal}")
        print(f"Samples are picked by {session.picked_by} (at random until two classes are "
              "labelled)")
        print(help_line)
        redo = []
        try:
            return _loop(session, show, keymap, help_line, redo, read_key)
        except JournalError as exc:
            print(f"skal label: error: {exc}", file=sys.stderr)
            return 2


def _synthesizer(args):
    if not getattr(args, "synthesize", False):
        return None
    from skal.strategies import GAAL

    return GAAL(random_state=args.seed)


def show_row(row):
    """A synthesised sample as text: a small image when its shape (or a square number of
    features, such as 64 or 784) says it is one, else its first 20 values."""
    row = np.asarray(row, dtype=np.float64)
    side = int(round(np.sqrt(row.size)))
    if row.ndim >= 2 and row.squeeze().ndim == 2:
        return text_preview(row.squeeze())
    if row.ndim == 1 and row.size >= 16 and side * side == row.size:
        return text_preview(row.reshape(side, side))
    return "  ".join(f"{value:.4g}" for value in row.ravel()[:20])


def key_reader(stream, line_mode=False):
    """A function that prompts and returns one answer key, stripped of whitespace.

    On a terminal it reads a single keypress (no Enter needed; the terminal is in cbreak mode
    only while it waits, so Ctrl-C still interrupts); elsewhere, or with ``line_mode``, a line.
    End of input and Ctrl-C (or Ctrl-D at a keypress) read as ``"q"``.
    """
    if line_mode or not stream.isatty():

        def read_line(prompt):
            try:
                return input(prompt).strip()
            except (EOFError, KeyboardInterrupt):
                return "q"

        return read_line

    import termios
    import tty

    fd = stream.fileno()

    def read_keypress(prompt):
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            # Prompt only once in cbreak mode, so a key pressed at the prompt is never typed
            # into a canonical-mode line.
            print(prompt, end="", flush=True)
            while True:
                # Read what is there at once: a key typed with Enter, or an escape sequence,
                # arrives as one chunk and is judged whole, as a line would be.
                chunk = os.read(fd, 32)
                key = chunk.decode(errors="replace").strip() if chunk else "q"  # b"": EOF
                if key:
                    break
        except KeyboardInterrupt:
            key = "q"
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        print(key if key.isprintable() else repr(key))
        return "q" if key == "\x04" else key

    return read_keypress


def _loop(session, show, keymap, help_line, redo, read_key):
    position = {sid: i for i, sid in enumerate(session.sample_ids)}
    answered = {a["sample_id"] for a in session.annotations()
                if a["annotator"] == session.annotator}
    advised = None
    while True:
        redo = [s for s in redo if s not in answered]
        if redo:
            sample_id, why = redo[-1], "undone"
        else:
            batch = session.next_batch()
            if not batch:
                print("The pool is exhausted: every sample has an answer.")
                return 0
            query = batch[0]
            sample_id = query.sample_id
            advice = session.should_stop()  # once per change of the labels, cached
            if advice is not None and advice != advised:
                print(f"\nMore labels are unlikely to help ({advice}). Go on, or q to quit.")
                advised = advice
            why = query.strategy if query.score is None else (
                f"{query.strategy}, score {query.score:.3g}")
        print(f"\n--- sample {sample_id} ({why}; round {len(session.history_)})")
        if sample_id in position:
            print(show(position[sample_id]))
        else:  # synthesised: its features come from the journal
            print(show_row(session.features(sample_id)))
        key = read_key("label> ")
        if key == "q":
            print(f"Stopped; {session.n_labels_} labelled, all saved. Continue with --resume.")
            return 0
        if key == "?" or key == "":
            print(help_line)
        elif key == "u":
            undone = session.undo()
            if undone is None:
                print("nothing to undo")
            else:
                answered.discard(undone)
                redo.append(undone)
                print(f"undone: {undone}")
        elif key == "s":
            session.skip(sample_id)
            answered.add(sample_id)
            print(f"skipped {sample_id}")
        elif key in keymap:
            session.label(sample_id, keymap[key])
            answered.add(sample_id)
            print(f"saved {sample_id} = {keymap[key]} ({session.n_labels_} labelled)")
        else:
            print(f"unknown key {key!r}; {help_line}")
