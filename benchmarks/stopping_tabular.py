"""Stopping criteria on the 12 data sets of the tabular benchmark: labels saved against
accuracy lost, compared with labelling the whole pool.

Each repetition runs the benchmark's protocol (``skal.experiments.protocol_split``: 40 % test
split, 20 random initial labels, scaled features, RBF SVC refit after every single query,
margin sampling with the SVC, budget = the whole pool) once, and after every fit asks each
criterion whether to stop, without stopping: the first "stop" of each criterion gives its
labels and test accuracy, and the end of the run the accuracy with the whole pool labelled.

    python benchmarks/stopping_tabular.py --data-dir ../shared/data/al-benchmark \\
        --out docs/results/stopping --seeds 10

Resumable: one JSON file per data set and seed, skipped when present. ``--summarize`` only
rewrites ``summary.csv`` from the files there.
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVC

from skal import ActiveLearner, DecisionMargin
from skal.experiments import load_benchmark_data, protocol_split
from skal.stopping import ConfidenceDrop, StabilizingPredictions, UncertaintyThreshold

DATASETS = ["sonar", "parkinsons", "ex8b", "heart", "ionosphere", "wdbc", "australian",
            "german", "splice", "gcloudub", "checkerboard", "spambase"]
SVC_PARAMS = {"kernel": "rbf", "C": 1.0, "gamma": "auto", "tol": 1e-3, "random_state": 6211}


def criteria(seed):
    """The criteria compared, by name. The SVC has no probabilities: uncertainty is -|d|."""
    margin = DecisionMargin()
    return {
        "stabilizing predictions (kappa 0.99, window 3)":
            StabilizingPredictions(random_state=seed),
        "stabilizing predictions (kappa 0.95, window 3)":
            StabilizingPredictions(threshold=0.95, random_state=seed),
        "max uncertainty (margin exhausted: no row with |d| < 1)":
            UncertaintyThreshold(margin, threshold=-1.0),
        "overall uncertainty (mean |d| >= 1)":
            UncertaintyThreshold(margin, aggregate="mean", threshold=-1.0),
        "confidence drop (mean |d| on a stop set, patience 3)":
            ConfidenceDrop(margin, random_state=seed),
    }


def run_repetition(X, y, seed):
    split = protocol_split(X, y, seed)
    if split is None:
        return {"skipped": "the initial labels hold one class"}
    X_pool, y_pool, X_test, y_test = (split[k] for k in ("X_pool", "y_pool", "X_test", "y_test"))
    watching = {name: clone(c) for name, c in criteria(seed).items()}
    first_stop = {}
    curve = []

    def on_cycle(learner, record):
        accuracy = float((learner.predict(X_test) == y_test).mean())
        curve.append((record["n_labels"], accuracy))
        rest = np.ones(len(y_pool), dtype=bool)
        rest[learner.labeled_indices_] = False
        if not rest.any():
            return
        X_rest = X_pool[rest]
        for name, criterion in watching.items():
            if name not in first_stop and criterion.check(learner, X_rest) is not None:
                first_stop[name] = {"n_labels": record["n_labels"], "accuracy": accuracy}

    learner = ActiveLearner(SVC(**SVC_PARAMS), DecisionMargin(), batch_size=1,
                            budget=len(y_pool), random_state=seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        learner.fit(X_pool, y_pool, initial_rows=split["initial_rows"], on_cycle=on_cycle)
    return {"seed": seed, "n_pool": len(y_pool), "seconds": round(time.perf_counter() - start, 2),
            "final_accuracy": curve[-1][1], "best_accuracy": max(a for _, a in curve),
            "stops": first_stop}


def summarize(out_dir):
    rows = []
    for path in sorted(Path(out_dir).glob("runs/*/*.json")):
        result = json.loads(path.read_text())
        if "skipped" in result:
            continue
        for name in criteria(0):
            stop = result["stops"].get(name)
            n_labels = stop["n_labels"] if stop else result["n_pool"]
            accuracy = stop["accuracy"] if stop else result["final_accuracy"]
            rows.append({"dataset": path.parent.name, "seed": result["seed"], "criterion": name,
                         "stopped": stop is not None,
                         "labels_saved": 1 - n_labels / result["n_pool"],
                         "accuracy_lost": result["final_accuracy"] - accuracy})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # "|d|" would read as a reST substitution in the docs' csv-tables
    table["criterion"] = table["criterion"].str.replace("|d|", "abs(d)", regex=False)
    summary = (table.groupby(["dataset", "criterion"], sort=False)
               .agg(n_repetitions=("seed", "size"), stopped=("stopped", "mean"),
                    labels_saved=("labels_saved", "mean"),
                    accuracy_lost=("accuracy_lost", "mean"),
                    accuracy_lost_max=("accuracy_lost", "max"))
               .round(4).reset_index())
    summary.to_csv(Path(out_dir) / "summary.csv", index=False)
    overall = (table.groupby("criterion", sort=False)
               .agg(stopped=("stopped", "mean"), labels_saved=("labels_saved", "mean"),
                    accuracy_lost=("accuracy_lost", "mean"),
                    accuracy_lost_max=("accuracy_lost", "max"))
               .round(4).reset_index())
    overall.to_csv(Path(out_dir) / "overall.csv", index=False)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/al-benchmark")
    parser.add_argument("--out", default="docs/results/stopping")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--spambase-seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="*", default=DATASETS)
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args()
    if not args.summarize:
        for dataset in args.datasets:
            X, y = load_benchmark_data(args.data_dir, dataset)
            n_seeds = args.spambase_seeds if dataset == "spambase" else args.seeds
            for seed in range(n_seeds):
                path = Path(args.out) / "runs" / dataset / f"s{seed:03d}.json"
                if path.exists():
                    continue
                result = run_repetition(X, y, seed)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
                path.with_suffix(".tmp").replace(path)
                print(dataset, seed, result.get("seconds"), flush=True)
    print(summarize(args.out).to_string())


if __name__ == "__main__":
    main()
