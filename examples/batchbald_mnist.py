"""Reproduce the MNIST experiment of the BatchBALD paper with skal.

Kirsch, van Amersfoort and Gal, "BatchBALD: Efficient and Diverse Batch Acquisition for Deep
Bayesian Active Learning", NeurIPS 2019, Table 1 / Figure 4: the paper's MNIST CNN trained
from scratch after every acquisition, 20 class-balanced initial labels, acquisitions of 10,
K=100 consistent MC-dropout samples, labels capped at 300; how many labels (initial 20
included) each method needs before test accuracy first reaches 90 % and 95 %, as 25/50/75 %
quantiles over runs.

Data: the folder ``--mnist`` holds only the 10,000 official test images (t10k), so they are
split once (``--split-seed``) into a 2,000-image test set and an 8,000-image pool side, from
which a 1,024-image validation set for early stopping is taken; the remaining 6,976 images
are the unlabelled pool (``--pool-size`` subsamples it). The paper's pool was the 60,000
training images and its test set the 10,000 test images.

The defaults are the full protocol (K=100, three seeds, BatchBALD b=10, BALD b=10 and random
b=10; add ``bald1`` to ``--methods`` for BALD b=1, ten times the acquisitions). On a CUDA GPU::

    python examples/batchbald_mnist.py --device cuda --output batchbald-mnist-gpu

Every (method, seed) run is saved under ``OUTPUT/runs/`` as soon as it ends, and a rerun
with the same output folder skips the runs already there, so an interrupted experiment
resumes. ``--quick`` is a few-minute CPU check of the whole pipeline.

Outputs in ``--output``: ``results.csv`` (one row per method, seed and acquisition: labels,
test accuracy, seconds of training, MC sampling and selection, training epochs, rows
acquired, their scores and how many digits they span), ``labels_to_target.csv`` and
``table.md`` (the quantiles beside the paper's), ``timing.csv`` (seconds per
acquisition), ``table.rst`` (both tables for the docs page), ``learning_curves.png`` and
``results.json`` (everything, with the options and the machine it ran on).

This file is not a gallery example (it runs for hours at full size); see
``docs/batchbald_mnist.rst`` for results.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skal import ActiveLearner, RandomSampling
from skal.experiments import (
    BalancedInitialSet,
    early_stopping_params,
    plot_learning_curves,
    summarize,
)
from skal.strategies import BALD, BatchBALD, QueryStrategy
from skal.strategies._base import select_with_scores

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"
TARGETS = (0.90, 0.95)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the normalisation of the paper's code

#: method name -> (label in the outputs, acquisition size)
METHODS = {
    "batchbald": ("BatchBALD b=10", 10),
    "bald": ("BALD b=10", 10),
    "bald1": ("BALD b=1", 1),
    "random": ("random b=10", 10),
}
#: The paper's labels to reach 90 % and 95 % test accuracy (25/50/75 % over six runs; inf:
#: not reached by 300 labels). Kirsch et al. 2019, Table 1. Random b=10 is not in that table.
PAPER = {
    "BatchBALD b=10": {0.90: (70, 90, 110), 0.95: (190, 200, 230)},
    "BALD b=1": {0.90: (85, 96, 101), 0.95: (197, 206, 226)},
    "BALD b=10": {0.90: (120, 120, 170), 0.95: (250, 250, np.inf)},
}


# ---------------------------------------------------------------------------- timing
class _SamplingClock:
    """Stands in for the learner and adds up the seconds spent in predict_proba_samples."""

    def __init__(self, learner):
        self._learner = learner
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self._learner, name)

    def predict_proba_samples(self, X, **kwargs):
        start = time.perf_counter()
        try:
            return self._learner.predict_proba_samples(X, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


class TimedStrategy(QueryStrategy):
    """Runs ``strategy`` and records how much of the query was MC sampling.

    ``sampling_seconds_`` is the time inside the learner's ``predict_proba_samples`` during
    the last query; the rest of the query time (the learner's ``query_seconds``) is selection.
    """

    def __init__(self, strategy=None):
        self.strategy = strategy

    def _select(self, learner, X_pool, batch_size, random_state):
        clock = _SamplingClock(learner)
        indices, scores = select_with_scores(self.strategy, clock, X_pool, batch_size)
        self.sampling_seconds_ = clock.seconds
        return indices, scores


# ---------------------------------------------------------------------------- data
def load_split(args):
    """Pool, validation and test arrays: the t10k images split as the docstring says."""
    from sklearn.model_selection import train_test_split

    from skal.datasets import load_mnist_idx

    X, y = load_mnist_idx(args.mnist)
    X = ((X - MNIST_MEAN) / MNIST_STD).astype(np.float32)
    X_side, X_test, y_side, y_test = train_test_split(
        X, y, test_size=args.test_size, random_state=args.split_seed, stratify=y
    )
    X_pool, X_valid, y_pool, y_valid = train_test_split(
        X_side, y_side, test_size=args.validation_size, random_state=args.split_seed
    )
    if args.pool_size is not None and args.pool_size < len(y_pool):
        rows = pool_subset(len(y_pool), args.pool_size, args.split_seed)
        X_pool, y_pool = X_pool[rows], y_pool[rows]
    return X_pool, y_pool, X_valid, y_valid, X_test, y_test


def pool_subset(n_pool, pool_size, split_seed):
    """The sorted rows of the full pool that ``--pool-size`` keeps."""
    return np.sort(np.random.RandomState(split_seed).choice(n_pool, pool_size, replace=False))


# ---------------------------------------------------------------------------- models
def make_net(args, X_valid, y_valid, device):
    from skal.nets import MNISTConvNet, NetClassifier

    return NetClassifier(
        MNISTConvNet,
        classes=np.arange(10),
        lr=args.lr,
        batch_size=64,
        max_epochs=args.epochs,
        n_samples=args.mc_samples,
        inference_batch_size=args.inference_batch_size or (4096 if device == "cuda" else 1024),
        device=device,
        **early_stopping_params(
            X_valid, y_valid, patience=args.patience, epoch_samples=args.epoch_samples
        ),
    )


def make_strategy(method, args, device):
    if method == "batchbald":
        return BatchBALD(
            n_joint_samples=args.joint_samples, device="cuda" if device == "cuda" else None
        )
    if method in ("bald", "bald1"):
        return BALD()
    return RandomSampling()


# ---------------------------------------------------------------------------- one run
def run_one(method, seed, data, args, device):
    """One method, one seed: the learner's own simulated fit, scored after every fit."""
    X_pool, y_pool, X_valid, y_valid, X_test, y_test = data
    label, acquisition_size = METHODS[method]
    n_initial = 10 * args.initial_per_class
    learner = ActiveLearner(
        make_net(args, X_valid, y_valid, device),
        TimedStrategy(make_strategy(method, args, device)),
        batch_size=acquisition_size,
        budget=min(args.max_labels, len(y_pool)),
        n_initial=n_initial,
        initial_strategy=BalancedInitialSet(y_pool, n_per_class=args.initial_per_class),
        update="refit",
        random_state=seed,
    )
    rows = []
    progress = _Progress(f"{label}, seed {seed}", args.max_labels, args.quiet)

    def record(fitted, entry):
        start = time.perf_counter()
        if args.test_mc_samples:
            # The paper's test accuracy: the mean of MC-dropout predictions.
            proba = fitted.predict_proba_samples(X_test, n_samples=args.test_mc_samples)
            accuracy = float(np.mean(fitted.classes_[proba.mean(axis=0).argmax(axis=1)] == y_test))
        else:
            accuracy = float(fitted.score(X_test, y_test))
        sampling = getattr(fitted.query_strategy_, "sampling_seconds_", 0.0) if rows else 0.0
        history = fitted.estimator_.history
        rows.append(
            {
                "learner": label,
                "method": method,
                "seed": seed,
                "cycle": int(entry["cycle"]),
                "n_labels": int(entry["n_labels"]),
                "score": accuracy,
                "fit_seconds": float(entry["fit_seconds"]),
                "query_seconds": float(entry["query_seconds"]),
                "mc_seconds": float(sampling),
                "selection_seconds": float(entry["query_seconds"]) - float(sampling),
                "test_seconds": time.perf_counter() - start,
                "epochs": len(history),
                "best_epoch": int(np.argmax(history[:, "valid_accuracy"])) + 1,
                "indices": " ".join(str(int(i)) for i in entry["indices"]),
                # how diverse the batch is: top-k BALD tends to take many rows of one digit
                "distinct_digits": int(np.unique(y_pool[entry["indices"]]).size),
                # BALD scores, or BatchBALD's greedy gains (they sum to the batch's estimated
                # joint mutual information, at most log K nats)
                "scores": ""
                if entry["scores"] is None
                else " ".join(f"{float(v):.5g}" for v in entry["scores"]),
            }
        )
        progress.update(rows[-1])

    learner.fit(X_pool, y_pool, on_cycle=record)
    progress.close()
    return pd.DataFrame(rows)


class _Progress:
    def __init__(self, name, total, quiet):
        self.name, self.quiet, self.start = name, quiet, time.perf_counter()
        self.total = total

    def update(self, row):
        if not self.quiet:
            print(
                f"  {self.name}: {row['n_labels']:>3}/{self.total} labels, acc "
                f"{row['score']:.4f}, fit {row['fit_seconds']:.1f}s ({row['epochs']} ep), "
                f"mc {row['mc_seconds']:.1f}s, select {row['selection_seconds']:.2f}s",
                flush=True,
            )

    def close(self):
        if not self.quiet:
            print(f"  {self.name}: done in {time.perf_counter() - self.start:.0f}s", flush=True)


# ---------------------------------------------------------------------------- summaries
def machine_info(device):
    import torch

    info = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "device": device,
    }
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        info["cpu"] = names[0] if names else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def labels_to_target_table(result):
    """One row per method: our 25/50/75 % labels to each target, with the paper's."""
    rows = []
    for target in TARGETS:
        summary = summarize(result, target=target)
        for learner, row in summary.iterrows():
            paper = PAPER.get(learner, {}).get(target)
            rows.append(
                {
                    "method": learner,
                    "target": target,
                    "n_seeds": int(row["n_repeats"]),
                    "q25": row["labels_to_target_q25"],
                    "q50": row["labels_to_target_q50"],
                    "q75": row["labels_to_target_q75"],
                    "reached": row["reached"],
                    "paper_q25": np.nan if paper is None else paper[0],
                    "paper_q50": np.nan if paper is None else paper[1],
                    "paper_q75": np.nan if paper is None else paper[2],
                }
            )
    return pd.DataFrame(rows)


def _triple(values):
    if any(isinstance(v, float) and np.isnan(v) for v in values):
        return "–"
    return " / ".join("∞" if np.isinf(v) else f"{v:g}" for v in values)


def _table_cells(table):
    """One row of cells per method: seeds, then skal's and the paper's quantiles per target."""
    for method, group in table.groupby("method", sort=False):
        cells = [method, str(int(group["n_seeds"].iloc[0]))]
        for target in TARGETS:
            row = group[group["target"] == target].iloc[0]
            cells += [
                _triple([row["q25"], row["q50"], row["q75"]]),
                _triple([row["paper_q25"], row["paper_q50"], row["paper_q75"]]),
            ]
        yield cells


def markdown_table(table):
    lines = [
        "| method | seeds | 90 %: skal | 90 %: paper | 95 %: skal | 95 %: paper |",
        "|---|---|---|---|---|---|",
    ]
    for cells in _table_cells(table):
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rst_table(table, timing):
    """The labels-to-target table and the seconds per acquisition as reStructuredText."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - method",
        "     - seeds",
        "     - 90 %: skal",
        "     - 90 %: paper",
        "     - 95 %: skal",
        "     - 95 %: paper",
    ]
    for cells in _table_cells(table):
        lines += [f"   * - {cells[0]}"] + [f"     - {cell}" for cell in cells[1:]]
    lines += [
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - method",
        "     - acquisitions (all seeds)",
        "     - training (s)",
        "     - MC sampling (s)",
        "     - selection (s)",
        "     - epochs",
        "     - run total (min)",
    ]
    for learner, row in timing.iterrows():
        total = (row["per_run_fit_seconds"] + row["per_run_mc_seconds"]
                 + row["per_run_selection_seconds"]) / 60
        lines += [
            f"   * - {learner}",
            f"     - {int(row['acquisitions'])}",
            f"     - {row['median_fit_seconds']:.1f}",
            f"     - {row['median_mc_seconds']:.1f}",
            f"     - {row['median_selection_seconds']:.2f}",
            f"     - {row['median_epochs']:g}",
            f"     - {total:.1f}",
        ]
    return "\n".join(lines) + "\n"


def timing_table(result):
    """Seconds per acquisition (median and total over runs), split into the three parts."""
    acquisitions = result[result["cycle"] > 0]
    parts = ["fit_seconds", "mc_seconds", "selection_seconds"]
    median = acquisitions.groupby("learner", sort=False)[parts + ["epochs"]].median()
    median.columns = [f"median_{c}" for c in median.columns]
    total = acquisitions.groupby("learner", sort=False)[parts].sum() / acquisitions.groupby(
        "learner", sort=False
    )["seed"].nunique().to_numpy()[:, None]
    total.columns = [f"per_run_{c}" for c in total.columns]
    count = acquisitions.groupby("learner", sort=False).size().rename("acquisitions")
    return pd.concat([count, median, total], axis=1)


def write_outputs(result, out, args, device, elapsed):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [METHODS[m][0] for m in METHODS if METHODS[m][0] in set(result["learner"])]
    result = result.assign(learner=pd.Categorical(result["learner"], categories=order))
    result = result.sort_values(["learner", "seed", "cycle"], kind="stable")
    result["learner"] = result["learner"].astype(str)
    result.to_csv(out / "results.csv", index=False)
    table = labels_to_target_table(result.assign(repeat=result["seed"]))
    table.to_csv(out / "labels_to_target.csv", index=False)
    timing = timing_table(result)
    timing.to_csv(out / "timing.csv")
    markdown = markdown_table(table)
    (out / "table.md").write_text(
        "Labels (initial 20 included) to reach 90 % and 95 % test accuracy, 25 / 50 / 75 % "
        "quantiles over seeds (∞: not reached by the cap).\n\n" + markdown + "\n",
        encoding="utf-8",
    )
    (out / "table.rst").write_text(rst_table(table, timing), encoding="utf-8")
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    plot_learning_curves(result.assign(repeat=result["seed"]), spread="quantiles", ax=ax)
    for target in TARGETS:
        ax.axhline(target, color="0.5", ls=":", lw=1)
    ax.set_ylim(max(0.0, result["score"].min() - 0.02), 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"MNIST, pool {args.pool_rows}, K={args.mc_samples}, "
        f"{result['seed'].nunique()} seed(s) (median, 25–75 %)"
    )
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)
    payload = {
        "options": {k: v for k, v in vars(args).items() if k != "mnist"},
        "machine": machine_info(device),
        "elapsed_seconds": elapsed,
        "labels_to_target": json.loads(table.to_json(orient="records")),
        "timing": json.loads(timing.reset_index(names="learner").to_json(orient="records")),
        "results": json.loads(result.to_json(orient="records")),
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return markdown, timing


# ---------------------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST),
                        help="folder with t10k-images-idx3-ubyte[.gz] and t10k-labels")
    parser.add_argument("--output", default="batchbald-mnist-results", help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one run per seed and method (the paper: six)")
    parser.add_argument("--methods", nargs="+", default=["batchbald", "bald", "random"],
                        choices=list(METHODS), help="bald1 is BALD b=1 (10x the acquisitions)")
    parser.add_argument("--mc-samples", type=int, default=100, help="MC-dropout samples K")
    parser.add_argument("--test-mc-samples", type=int, default=0,
                        help="score the test set with the mean of this many MC-dropout "
                        "predictions, as the paper did (100); 0: the deterministic network")
    parser.add_argument("--joint-samples", type=int, default=10000,
                        help="BatchBALD's sampled joint configurations")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="subsample the 6,976-image pool to this many images")
    parser.add_argument("--test-size", type=int, default=2000, help="test images")
    parser.add_argument("--validation-size", type=int, default=1024,
                        help="validation images for early stopping, taken from the pool side")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the data split")
    parser.add_argument("--max-labels", type=int, default=300, help="label budget")
    parser.add_argument("--initial-per-class", type=int, default=2,
                        help="balanced initial labels per digit")
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs per training")
    parser.add_argument("--patience", type=int, default=3,
                        help="early-stopping patience on validation accuracy")
    parser.add_argument("--epoch-samples", type=int, default=5056,
                        help="training rows drawn per epoch (the paper's code: 5056)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--inference-batch-size", type=int, default=None,
                        help="rows x passes per forward pass when sampling (default: 1024 on "
                        "a CPU, where larger blocks leave the cache and ran 2x slower; 4096 "
                        "on a GPU)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true",
                        help="a few-minute CPU check: pool 500, K=10, one seed, 60 labels, "
                        "at most 5 epochs")
    parser.add_argument("--quiet", action="store_true", help="no per-acquisition lines")
    args = parser.parse_args(argv)
    if args.quick:
        args.pool_size = min(args.pool_size or 500, 500)
        args.mc_samples = min(args.mc_samples, 10)
        args.seeds = args.seeds[:1]
        args.max_labels = min(args.max_labels, 60)
        args.epochs = min(args.epochs, 5)
        args.joint_samples = min(args.joint_samples, 1000)
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch

    from skal.nets import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda was asked for, but torch sees no CUDA GPU")
    if not Path(args.mnist).is_dir():
        sys.exit(f"MNIST folder not found: {args.mnist} (give it with --mnist)")
    data = load_split(args)
    args.pool_rows = len(data[1])
    out = Path(args.output)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    print(
        f"MNIST: pool {len(data[1])}, validation {len(data[3])}, test {len(data[5])}; "
        f"K={args.mc_samples}, methods {' '.join(args.methods)}, seeds "
        f"{' '.join(map(str, args.seeds))}, device {device}, torch threads "
        f"{torch.get_num_threads()}",
        flush=True,
    )
    start = time.perf_counter()
    frames = []
    for seed in args.seeds:
        for method in args.methods:
            path = out / "runs" / f"{method}-seed{seed}.csv"
            if path.exists():
                print(f"  {method}, seed {seed}: already in {path}, skipped", flush=True)
            else:
                run_one(method, seed, data, args, device).to_csv(path, index=False)
            frames.append(pd.read_csv(path, keep_default_na=False))
    result = pd.concat(frames, ignore_index=True)
    markdown, timing = write_outputs(result, out, args, device, time.perf_counter() - start)
    print()
    print(markdown)
    print()
    print(timing.round(2).to_string())
    print(f"\nresults written to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
