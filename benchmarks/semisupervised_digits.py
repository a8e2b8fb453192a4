"""Self-supervised embeddings for cold-start active learning on sklearn's digits (issue #13).

Per seed: a stratified split (500 test rows, the other 1,297 the pool), a
:class:`~skal.nets.ContrastiveEncoder` pretrained on the pool images only (cached per seed
under ``--cache``), then simulated runs with batch 10 up to 100 labels:

- ``random`` on raw pixels and on the embeddings;
- ``TypiClust`` on raw pixels and on the embeddings (TypiClust also picks the first 10);
- ``TypiClust then margin`` on the embeddings: TypiClust for the first 30 labels, then
  margin sampling with the logistic model.

After every cycle two heads are scored on the test rows, on the features the run selects
in: ``logistic`` (LogisticRegression on the labelled rows) and ``label spreading``
(sklearn's LabelSpreading, kNN kernel, fitted on the whole pool with the unlabelled rows
marked -1). Every seed writes ``OUT/seed<k>.csv`` (seed, strategy, features, head,
n_labels, accuracy); a rerun skips the seeds already written, so the script can be stopped
and resumed. ``--report`` rebuilds ``summary.csv``, ``table.rst`` and ``learning_curves.png``
from the per-seed files::

    python benchmarks/semisupervised_digits.py --seeds 0 1 2 3 4 \\
        --out docs/results/semisupervised_digits --cache /tmp/skal_digits_encoders

The figures are in docs/semisupervised.rst.
"""

import argparse
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.semi_supervised import LabelSpreading

from skal import ActiveLearner
from skal.semi_supervised import CEAL
from skal.strategies import EntropySampling, MarginSampling, RandomSampling, TypiClust

BATCH, BUDGET, N_TYPICLUST_FIRST = 10, 100, 30
RUNS = [  # (strategy, features)
    ("random", "raw"),
    ("random", "contrastive"),
    ("TypiClust", "raw"),
    ("TypiClust", "contrastive"),
    ("TypiClust then margin", "contrastive"),
    ("CEAL", "raw"),
    ("CEAL", "contrastive"),
]
# CEAL's own model (logistic regression trained on labels and its pseudo-labels) is scored as
# its head; the two heads of the other runs see only the labelled rows.
CEAL_HEAD = "logistic + pseudo-labels"


def encoder_params(seed):
    import functools

    from skal.nets import ConvEncoder

    return {"module": functools.partial(ConvEncoder, channels=(16, 32)), "n_components": 64,
            "max_epochs": 30, "batch_size": 256, "temperature": 0.5, "random_state": seed}


def embeddings(X_pool, X_test, seed, cache, params=encoder_params, name="digits"):
    """The pool and test rows embedded by an encoder pretrained on the pool (cached).

    ``params(seed)`` gives the encoder's parameters; the cache file is
    ``CACHE/<name>_seed<seed>.npz`` (embeddings, pretraining seconds, loss curve).
    """
    path = Path(cache) / f"{name}_seed{seed}.npz"
    if path.exists():
        stored = np.load(path)
        return stored["pool"], stored["test"], float(stored["seconds"])
    import torch

    from skal.nets import ContrastiveEncoder

    torch.set_num_threads(int(os.environ.get("SKAL_TORCH_THREADS", "2")))
    start = time.perf_counter()
    encoder = ContrastiveEncoder(**params(seed)).fit(X_pool)
    seconds = time.perf_counter() - start
    Z_pool, Z_test = encoder.transform(X_pool), encoder.transform(X_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, pool=Z_pool, test=Z_test, seconds=seconds, loss=encoder.loss_curve_)
    return Z_pool, Z_test, seconds


def unit_rows(Z):
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def heads(F_pool, y_pool, labeled, F_test, y_test):
    """Test accuracy of the logistic and label-spreading heads for one labelled set."""
    logistic = LogisticRegression(C=10.0, max_iter=2000).fit(F_pool[labeled], y_pool[labeled])
    y_known = np.full(y_pool.shape, -1)
    y_known[labeled] = y_pool[labeled]
    spreading = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.2, max_iter=100)
    spreading.fit(F_pool, y_known)
    return {"logistic": logistic.score(F_test, y_test),
            "label spreading": spreading.score(F_test, y_test)}


def run(strategy, F_pool, y_pool, F_test, y_test, seed, budget=BUDGET):
    """Test accuracies of both heads after every cycle of one simulated run."""
    if strategy == "random":
        params = {"query_strategy": RandomSampling(random_state=seed), "n_initial": BATCH}
    elif strategy == "TypiClust":
        params = {"query_strategy": TypiClust(random_state=seed),
                  "initial_strategy": TypiClust(random_state=seed), "n_initial": BATCH}
    elif strategy == "CEAL":
        # Wang et al. 2017: random start, entropy queries, confident rows pseudo-labelled
        params = {"query_strategy": EntropySampling(random_state=seed), "n_initial": BATCH}
    else:
        params = {"query_strategy": MarginSampling(random_state=seed),
                  "initial_strategy": TypiClust(random_state=seed),
                  "n_initial": N_TYPICLUST_FIRST}
    rows = []

    def on_cycle(learner, record):
        labeled = np.sort(learner.labeled_indices_)
        if strategy == "CEAL":
            scores = {CEAL_HEAD: learner.score(F_test, y_test)}
        else:
            scores = heads(F_pool, y_pool, labeled, F_test, y_test)
        for head, accuracy in scores.items():
            rows.append({"head": head, "n_labels": labeled.size, "accuracy": accuracy})

    model = LogisticRegression(C=10.0, max_iter=2000)
    if strategy == "CEAL":
        model = CEAL(model, threshold=0.05)
    learner = ActiveLearner(model, budget=budget, batch_size=BATCH, random_state=seed,
                            **params)
    learner.fit(F_pool, y_pool, on_cycle=on_cycle)
    return rows


def add_missing_runs(seed, out, cache):
    """Run the RUNS a seed file written earlier lacks and append them to it."""
    path = Path(out) / f"seed{seed}.csv"
    done = pd.read_csv(path)
    missing = [(s, n) for s, n in RUNS
               if not ((done.strategy == s) & (done.features == n)).any()]
    if not missing:
        return
    frame = run_seed(seed, out, cache, runs=missing, write=False)
    pd.concat([done, frame]).to_csv(path, index=False)


def run_seed(seed, out, cache, runs=RUNS, write=True):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=500, stratify=y,
                                                      random_state=seed)
    Z_pool, Z_test, seconds = embeddings(X_pool, X_test, seed, cache)
    features = {"raw": (X_pool, X_test), "contrastive": (unit_rows(Z_pool), unit_rows(Z_test))}
    rows = []
    for strategy, name in runs:
        F_pool, F_test = features[name]
        for row in run(strategy, F_pool, y_pool, F_test, y_test, seed):
            rows.append({"seed": seed, "strategy": strategy, "features": name, **row})
    frame = pd.DataFrame(rows)
    frame["pretraining_seconds"] = round(seconds, 1)
    if write:
        frame.to_csv(Path(out) / f"seed{seed}.csv", index=False)
    return frame


def labels_to(curve, target):
    reached = curve[curve.accuracy >= target]
    return float(reached.n_labels.min()) if len(reached) else math.inf


def quantile(values, q):
    """Linear-interpolation quantile where an infinite neighbour makes the result infinite."""
    values = np.sort(np.asarray(values, dtype=float))
    position = q * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    if np.isinf(values[high]):
        return math.inf if position > low or np.isinf(values[low]) else float(values[low])
    return float(values[low] + (position - low) * (values[high] - values[low]))


def labels_to_target(frame, targets):
    """Quartiles over seeds of the labels each (strategy, features, head) needs to reach each
    target accuracy, in the columns of ``docs/results/batchbald_mnist_cpu/labels_to_target.csv``
    (no paper figures here)."""
    rows = []
    for target in targets:
        for (strategy, name, head), part in frame.groupby(["strategy", "features", "head"],
                                                          sort=False):
            per_seed = [labels_to(curve, target) for _, curve in part.groupby("seed")]
            rows.append({"method": f"{strategy} b={BATCH} ({name}, {head})", "target": target,
                         "n_seeds": len(per_seed),
                         **{f"q{q}": quantile(per_seed, q / 100) for q in (25, 50, 75)},
                         "reached": float(np.mean(np.isfinite(per_seed))),
                         "paper_q25": np.nan, "paper_q50": np.nan, "paper_q75": np.nan})
    return pd.DataFrame(rows)


def report(out):
    files = sorted(Path(out).glob("seed*.csv"))
    frame = pd.concat([pd.read_csv(f) for f in files])
    keys = ["strategy", "features", "head", "n_labels"]
    summary = frame.groupby(keys)["accuracy"].describe(percentiles=[0.25, 0.5, 0.75])
    summary = summary[["count", "25%", "50%", "75%"]].reset_index()
    summary.columns = [*keys, "n_seeds", "q25", "q50", "q75"]
    summary.to_csv(Path(out) / "summary.csv", index=False)
    wanted = [20, 40, 60, 100]
    lines = [".. list-table:: Test accuracy on digits (median [quartiles] over "
             f"{frame.seed.nunique()} seeds)", "   :header-rows: 1", "",
             "   * - strategy", "     - features", "     - head",
             *[f"     - {n} labels" for n in wanted]]
    for (strategy, name, head), part in summary.groupby(["strategy", "features", "head"],
                                                        sort=False):
        by_n = part.set_index("n_labels")
        cells = [f"{100 * by_n.q50[n]:.1f} [{100 * by_n.q25[n]:.1f}, {100 * by_n.q75[n]:.1f}]"
                 if n in by_n.index else "–" for n in wanted]
        lines += [f"   * - {strategy}", f"     - {name}", f"     - {head}",
                  *[f"     - {c}" for c in cells]]
    (Path(out) / "table.rst").write_text("\n".join(lines) + "\n")
    targets = labels_to_target(frame, (0.90, 0.95))
    targets.to_csv(Path(out) / "labels_to_target.csv", index=False)
    plot(summary, Path(out) / "learning_curves.png", frame.seed.nunique())
    seconds = frame.groupby("seed").pretraining_seconds.first()
    print(f"pretraining seconds per seed: median {seconds.median():.0f} "
          f"({seconds.min():.0f}-{seconds.max():.0f})")
    print(targets[["method", "target", "q25", "q50", "q75", "reached"]].to_string(index=False))


def plot(summary, path, n_seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, head in zip(axes, ["logistic", "label spreading"], strict=True):
        for (strategy, name), part in summary[summary["head"] == head].groupby(
                ["strategy", "features"], sort=False):
            ax.plot(part.n_labels, 100 * part.q50, marker="o", ms=3,
                    label=f"{strategy}, {name}")
            ax.fill_between(part.n_labels, 100 * part.q25, 100 * part.q75, alpha=0.15)
        ax.set_title(f"{head} head")
        ax.set_xlabel("labels")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test accuracy (%), median and quartiles of {n_seeds} seeds")
    axes[0].set_ylim(40, 100)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run_seeds(seeds, out, run_one):
    """``run_one(seed)`` for every seed whose ``OUT/seed<k>.csv`` is not written yet."""
    warnings.simplefilter("ignore", ConvergenceWarning)
    for seed in seeds:
        if (Path(out) / f"seed{seed}.csv").exists():
            print(f"seed {seed}: done already")
            continue
        start = time.perf_counter()
        run_one(seed)
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default="docs/results/semisupervised_digits")
    parser.add_argument("--cache", default="/tmp/skal_digits_encoders")
    parser.add_argument("--report", action="store_true", help="only rebuild the tables")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.report:
        run_seeds(args.seeds, args.out, lambda seed: run_seed(seed, args.out, args.cache))
        for seed in args.seeds:  # runs added to RUNS after a seed was written
            add_missing_runs(seed, args.out, args.cache)
    report(args.out)


if __name__ == "__main__":
    main()
