"""``skal label --web``: the command-line side of the web labelling page (reading the
held-out set, the token of an exposed server, the address printed, the export at exit)."""

import os
import sys

import numpy as np

from skal.labeling._cli import session_learner
from skal.labeling._journal import JournalError
from skal.labeling._labels import check_export_path, export_journal
from skal.labeling._pools import csv_pool, load_pool, read_csv


def load_held_out(path, id_column=None):
    """``(X_test, y_test)`` from a ``.npz`` file (arrays ``X`` and ``y``) or a CSV file with
    a ``label`` column and the pool's feature columns."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"--held-out: no file at {path!r}.")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            if not {"X", "y"} <= set(data.files):
                raise ValueError(
                    f"--held-out {path!r} must hold arrays named X and y, has {data.files}."
                )
            X, y = data["X"], data["y"]
        return X.reshape(len(X), -1), y
    header, body = read_csv(path)
    if "label" not in header:
        raise ValueError(f"--held-out {path!r} has no 'label' column: {header}.")
    at = header.index("label")
    y = np.array([row[at] if at < len(row) else "" for row in body])
    rest = [[v for j, v in enumerate(row) if j != at] for row in body]
    pool = csv_pool([h for j, h in enumerate(header) if j != at], rest, id_column, path)
    return pool.X, y


def run_web(args, classes, check_journal_state):
    """Serve the labelling page until Ctrl-C; return the exit status."""
    try:
        from skal.labeling._web import is_loopback, make_app, new_token, serve
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"--web needs {exc.name}, which is not installed: pip install 'skal[web]'."
        ) from None
    if args.export is not None:
        check_export_path(args.export)
    check_journal_state(args)
    if args.port is None or not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}.")
    pool = load_pool(args.pool, args.id_column)
    held_out = None if args.held_out is None else load_held_out(args.held_out, args.id_column)
    exposed = not is_loopback(args.host)
    token = new_token() if exposed else None
    try:
        app = make_app(
            pool, args.journal, classes=classes, learner=session_learner(args),
            batch_size=args.batch_size,
            query_ahead=args.query_ahead, labels_per_sample=args.labels_per_sample,
            aggregate=args.aggregate, random_state=args.seed, budget=args.budget,
            show_guess=args.show_guess, held_out=held_out,
            keys=None if args.keys is None else list(args.keys), token=token,
            allowed_hosts=["*"] if exposed else None,
        )
    except JournalError as exc:
        print(f"skal label: error: {exc}", file=sys.stderr)
        return 2
    reader = app.state.desk.reader_
    n_labels, picked_by = app.state.call(lambda: (reader.n_labels_, reader.picked_by))
    print(f"{len(pool)} samples, {n_labels} labelled; journal {args.journal}")
    print(f"Samples are picked by {picked_by} (at random until two classes are labelled)")

    def announce(url):
        if exposed:
            print(f"WARNING: listening on {args.host}, so anyone who can reach this machine "
                  "can open the page. Every request must carry this token, shown only now:")
            print(f"  token: {token}")
            url = f"{url}#token={token}"
        print(f"Serving the labelling page on {url} (Ctrl-C to stop; every answer is saved "
              "when the page says so)", flush=True)

    try:
        serve(app, args.host, args.port, announce=announce)
    finally:
        app.state.close()
    if args.export is not None:
        n_rows = export_journal(args.journal, args.export, aggregate=args.aggregate)
        print(f"Wrote the labels of {n_rows} samples to {args.export}")
    print("Stopped; every answer is saved in the journal. Continue with --resume.")
    return 0
