"""Which query strategy should ``CommitteeLearner()`` use by default? (issue #10)

Compares RandomSampling, VoteEntropy, KLDivergence, ConsensusEntropy and BALD with one
committee (5 bagged ``StandardScaler + LogisticRegression(max_iter=1000)`` members) on
held-out test sets, with skal's own :func:`~skal.experiments.run_experiment`,
:func:`~skal.experiments.compare_to_random` and :func:`~skal.experiments.summarize`.

Repeat ``r`` of a data set uses the same stratified train/test split (a third held out) and the
same seed, hence the same initial rows and member seeds, for every strategy: the comparison is
paired. Every finished (data set, strategy, repeat) run is appended as one row to
``OUT/runs.csv`` (its whole learning curve as JSON), and a rerun skips the rows already there,
so the script can be stopped and resumed. ``--report`` only rebuilds the tables from
``runs.csv``. Run it with one BLAS thread::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/committee_default.py \\
        --data-dir /work/shared/data/al-benchmark --out docs/results/committee_default \\
        --repeats 20 --repeats-for wine=30,breast_cancer=30,australian=30

The figures and the decision are in docs/committee_default.rst.
"""

import argparse
import csv
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from skal import CommitteeLearner  # noqa: E402
from skal.experiments import aulc, compare_to_random, run_experiment, summarize  # noqa: E402
from skal.strategies import (  # noqa: E402
    BALD,
    ConsensusEntropy,
    KLDivergence,
    RandomSampling,
    VoteEntropy,
)

STRATEGIES = {
    "RandomSampling": RandomSampling,
    "VoteEntropy": VoteEntropy,
    "KLDivergence": KLDivergence,
    "ConsensusEntropy": ConsensusEntropy,
    "BALD": BALD,
}
BUDGET = 300
BATCH_SIZE = 10
N_INITIAL = 20
TEST_SIZE = 1 / 3
RUN_COLUMNS = ["dataset", "strategy", "repeat", "seed", "n_pool", "n_test", "n_classes",
               "budget", "aulc", "final_labels", "final_score", "cpu_seconds", "n_labels",
               "scores"]


# ------------------------------------------------------------------------------ data sets
def _tabular(data_dir, name, n_max=None):
    """One of the binary CSVs of the al-benchmark folder (f0..f{d-1}, y); None when absent."""
    path = Path(data_dir) / f"{name}.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    X = frame.drop(columns="y").to_numpy(dtype=float)
    y = frame["y"].to_numpy()
    if n_max is not None and len(y) > n_max:
        # A fixed subsample (the same for every repeat and strategy) keeps the CPU time small.
        rows, _ = train_test_split(np.arange(len(y)), train_size=n_max, stratify=y,
                                   random_state=0)
        X, y = X[np.sort(rows)], y[np.sort(rows)]
    return X, y


def _synthetic26():
    # Synthetic stand-in for a 26-class letter-like problem (fetch_openml cannot download here).
    return make_classification(n_samples=3000, n_features=16, n_informative=12, n_redundant=2,
                               n_classes=26, n_clusters_per_class=1, class_sep=1.5,
                               random_state=0)


def datasets(data_dir):
    """``{name: loader}``; a loader returns ``(X, y)`` or None when its file is absent."""
    return {
        "wine": lambda: load_wine(return_X_y=True),
        "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
        "digits": lambda: load_digits(return_X_y=True),
        "australian": lambda: _tabular(data_dir, "australian"),
        "german": lambda: _tabular(data_dir, "german"),
        "splice": lambda: _tabular(data_dir, "splice"),
        "spambase1500": lambda: _tabular(data_dir, "spambase", n_max=1500),
        "synthetic26": _synthetic26,
    }


# ------------------------------------------------------------------------------ runs
def committee(strategy):
    members = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return CommitteeLearner(members, strategy, n_estimators=5, n_jobs=1)


def run_one(X, y, dataset, strategy_name, repeat):
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, stratify=y, random_state=repeat
    )
    budget = min(BUDGET, len(y_pool))
    start = time.process_time()
    with warnings.catch_warnings():
        # A member fitted on a tiny bootstrap sample may stop at max_iter; that is part of
        # what the strategies are compared under, not a failure of the run.
        warnings.simplefilter("ignore", ConvergenceWarning)
        # 20 initial labels of a 26-class problem: scikit-learn wonders whether y is a target.
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
        result = run_experiment(
            committee(STRATEGIES[strategy_name]()), X_pool, y_pool, X_test, y_test,
            budget=budget, batch_size=BATCH_SIZE, n_initial=N_INITIAL, n_repeats=1,
            random_state=repeat, n_jobs=1,
        )
    cpu = time.process_time() - start
    last = result["n_labels"].idxmax()
    return {
        "dataset": dataset,
        "strategy": strategy_name,
        "repeat": repeat,
        "seed": int(result["seed"].iloc[0]),
        "n_pool": len(y_pool),
        "n_test": len(y_test),
        "n_classes": len(np.unique(y)),
        "budget": budget,
        "aulc": aulc(result["n_labels"], result["score"]),
        "final_labels": int(result.loc[last, "n_labels"]),
        "final_score": float(result.loc[last, "score"]),
        "cpu_seconds": round(cpu, 2),
        "n_labels": json.dumps(result["n_labels"].astype(int).tolist()),
        "scores": json.dumps([round(float(s), 6) for s in result["score"]]),
    }


def finished_runs(path):
    if not path.is_file():
        return set()
    done = pd.read_csv(path)
    return set(zip(done["dataset"], done["strategy"], done["repeat"].astype(int), strict=True))


def run_all(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.csv"
    done = finished_runs(runs_path)
    loaders = datasets(args.data_dir)
    names = args.datasets or list(loaders)
    data = {}
    for name in names:
        loaded = loaders[name]()
        if loaded is None:
            print(f"skipping {name}: no {name.removesuffix('1500')}.csv in {args.data_dir}",
                  flush=True)
            continue
        data[name] = loaded
    new_file = not runs_path.is_file()
    with open(runs_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUN_COLUMNS)
        if new_file:
            writer.writeheader()
        # Repeats outermost, so that a stopped run leaves complete pairs on every data set.
        for repeat in range(args.repeats):
            for name, (X, y) in data.items():
                if repeat >= args.repeats_for.get(name, args.default_repeats):
                    continue
                for strategy_name in STRATEGIES:
                    if (name, strategy_name, repeat) in done:
                        continue
                    row = run_one(X, y, name, strategy_name, repeat)
                    writer.writerow(row)
                    handle.flush()
                    print(f"{name:14s} {strategy_name:17s} repeat {repeat:2d}  "
                          f"AULC {row['aulc']:.4f}  final {row['final_score']:.4f}  "
                          f"{row['cpu_seconds']:.1f} s", flush=True)


# ------------------------------------------------------------------------------ report
def tidy(runs):
    """The runs of one data set as :func:`run_experiment`'s tidy result (one row per cycle)."""
    rows = []
    for run in runs.itertuples():
        for n_labels, score in zip(json.loads(run.n_labels), json.loads(run.scores),
                                   strict=True):
            rows.append({"learner": run.strategy, "strategy": run.strategy,
                         "estimator": "Pipeline", "repeat": run.repeat, "seed": run.seed,
                         "n_labels": n_labels, "score": score})
    return pd.DataFrame(rows)


def complete_repeats(runs):
    """Keep the repeats that every strategy finished (the paired ones)."""
    counts = runs.groupby("repeat")["strategy"].nunique()
    keep = counts.index[counts == runs["strategy"].nunique()]
    return runs[runs["repeat"].isin(keep)]


def report(out):
    out = Path(out)
    runs = pd.read_csv(out / "runs.csv")
    tables = []
    for name, group in runs.groupby("dataset", sort=False):
        group = complete_repeats(group)
        if group.empty:
            continue
        result = tidy(group)
        summary = summarize(result)
        comparison = compare_to_random(result)
        table = summary[["n_repeats", "final_labels", "aulc_mean", "aulc_std",
                         "final_score_mean", "final_score_std"]].join(
            comparison[["aulc_diff_mean", "aulc_diff_std", "final_diff_mean", "wins",
                        "p_value"]])
        table["rank"] = table["aulc_mean"].rank(ascending=False)
        table.insert(0, "dataset", name)
        table.insert(1, "n_pool", int(group["n_pool"].iloc[0]))
        table.insert(2, "n_classes", int(group["n_classes"].iloc[0]))
        tables.append(table.reset_index().rename(columns={"learner": "strategy"}))
    if not tables:
        print("no complete repeats yet")
        return None
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / "summary.csv", index=False, float_format="%.6g")
    overall = overall_table(table)
    overall.to_csv(out / "overall.csv", float_format="%.6g")
    (out / "table.rst").write_text(rst_tables(table, overall))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(4).to_string(index=False))
        print()
        print(overall.round(4).to_string())
    return table


def overall_table(table):
    """Per strategy, across data sets: mean rank of mean AULC, data sets won against random."""
    rows = []
    for strategy, group in table.groupby("strategy", sort=False):
        not_random = group["aulc_diff_mean"].notna()
        rows.append({
            "strategy": strategy,
            "mean_rank": group["rank"].mean(),
            "n_datasets": len(group),
            "mean_aulc_diff": group["aulc_diff_mean"].mean() if not_random.any() else np.nan,
            "above_random": int((group["aulc_diff_mean"] > 0).sum()),
            "significantly_above": int(((group["aulc_diff_mean"] > 0)
                                        & (group["p_value"] < 0.05)).sum()),
            "significantly_below": int(((group["aulc_diff_mean"] < 0)
                                        & (group["p_value"] < 0.05)).sum()),
            "repeat_wins": f"{int(group['wins'].sum())}/{int(group['n_repeats'].sum())}"
            if not_random.any() else "",
        })
    return pd.DataFrame(rows).set_index("strategy").sort_values("mean_rank")


def _grid(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join("=" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [line, fmt.format(*header), line]
    lines += [fmt.format(*row) for row in rows]
    lines.append(line)
    return "\n".join(lines)


def rst_tables(table, overall):
    parts = []
    for name, group in table.groupby("dataset", sort=False):
        first = group.iloc[0]
        parts.append(f"{name} (pool {first.n_pool}, {first.n_classes} classes, "
                     f"{int(first.final_labels)} labels, {int(first.n_repeats)} repeats)")
        parts.append("")
        rows = []
        for row in group.itertuples():
            is_random = np.isnan(row.aulc_diff_mean)
            rows.append([
                row.strategy,
                f"{row.aulc_mean:.4f} ± {row.aulc_std:.4f}",
                "" if is_random else f"{row.aulc_diff_mean:+.4f} ± {row.aulc_diff_std:.4f}",
                "" if is_random else f"{int(row.wins)}/{int(row.n_repeats)}",
                "" if is_random or np.isnan(row.p_value) else f"{row.p_value:.3g}",
                f"{row.final_score_mean:.4f} ± {row.final_score_std:.4f}",
                f"{row.rank:g}",
            ])
        parts.append(_grid(["strategy", "AULC", "ΔAULC vs random", "wins", "Wilcoxon p",
                            "final accuracy", "rank"], rows))
        parts.append("")
    parts.append("Across data sets")
    parts.append("")
    rows = [[name, f"{r.mean_rank:.2f}",
             "" if np.isnan(r.mean_aulc_diff) else f"{r.mean_aulc_diff:+.4f}",
             f"{r.above_random}/{r.n_datasets}" if r.repeat_wins else "",
             f"{r.significantly_above}" if r.repeat_wins else "",
             f"{r.significantly_below}" if r.repeat_wins else "",
             r.repeat_wins]
            for name, r in overall.iterrows()]
    parts.append(_grid(["strategy", "mean rank", "mean ΔAULC", "data sets above random",
                        "p<0.05 above", "p<0.05 below", "repeat wins"], rows))
    parts.append("")
    return "\n".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/shared/data/al-benchmark",
                        help="folder of the al-benchmark CSVs; absent sets are skipped")
    parser.add_argument("--out", default="docs/results/committee_default")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--repeats-for", default="",
                        help="per-set repeats, e.g. 'wine=20,breast_cancer=20'")
    parser.add_argument("--datasets", nargs="*", help="a subset of the data sets")
    parser.add_argument("--report", action="store_true", help="only rebuild the tables")
    args = parser.parse_args()
    args.repeats_for = {
        key: int(value)
        for key, value in (item.split("=") for item in args.repeats_for.split(",") if item)
    }
    args.default_repeats = args.repeats
    args.repeats = max([args.repeats, *args.repeats_for.values()])
    if not args.report:
        with threadpool_limits(1):
            run_all(args)
    report(args.out)


if __name__ == "__main__":
    main()
