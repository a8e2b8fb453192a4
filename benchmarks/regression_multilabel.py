"""Regression and multi-label strategies against random sampling (#14): ``skal run`` on
diabetes, friedman1, linnerud (three outputs) and make_multilabel_classification, with each
task's default model and strategies, 10 repeats, then paired tables at fixed label counts.

Each data set's folder under OUT holds what ``skal run`` writes (results.csv, summary.csv,
results.json, config.toml, learning_curves.png), at_labels.csv: every metric at the label
counts below, mean and std over repeats, the mean paired difference to random, wins and the
two-sided Wilcoxon signed-rank p-value (skal.experiments.compare_at_labels), and table.csv,
the docs' table of them with the AULC comparison from summary.csv. Rerun:

    nice -n 10 python benchmarks/regression_multilabel.py
    nice -n 10 python benchmarks/regression_multilabel.py --only diabetes --repeats 3
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "results" / "regression_multilabel"

# folder: (skal run options, label counts of the tables)
RUNS = {
    "diabetes": (["--data", "diabetes", "--budget", "150", "--initial-size", "10",
                  "--batch-size", "10"], [30, 80, 150]),
    "friedman1": (["--data", "friedman1", "--budget", "200", "--initial-size", "10",
                   "--batch-size", "10"], [50, 100, 200]),
    # 20 rows: a pool of 15 and a test set of 5, one label at a time
    "linnerud": (["--data", "linnerud", "--budget", "15", "--initial-size", "3",
                  "--batch-size", "1"], [5, 8, 12]),
    "multilabel": (["--data", "multilabel", "--budget", "200", "--initial-size", "20",
                    "--batch-size", "10"], [50, 100, 200]),
    # EMCM as in its paper, on a linear model: a committee of bootstrapped BayesianRidge
    "diabetes_bayesian_ridge": (["--data", "diabetes", "--model", "bayesian_ridge",
                                 "--strategies", "random", "variance", "emcm",
                                 "--budget", "150", "--initial-size", "10",
                                 "--batch-size", "10"], [30, 80, 150]),
}


def at_labels(folder, counts):
    """The paired comparison with random of every metric at ``counts`` labels."""
    import json

    import pandas as pd

    from skal.experiments import compare_at_labels

    result = pd.read_csv(folder / "results.csv")
    metrics = json.loads((folder / "results.json").read_text())["metrics"]
    tables = []
    for name, metric in metrics.items():
        table = compare_at_labels(result, counts, score=metric["column"],
                                  greater_is_better=metric["greater_is_better"])
        tables.append(table.reset_index().assign(metric=name))
    table = pd.concat(tables)
    columns = ["metric", "learner", "n_labels", "mean", "std", "diff_mean", "wins",
               "n_pairs", "p_value"]
    return table[columns]


def display_table(folder, at):
    """table.csv for the docs: per metric and strategy, the mean at each label count, its
    paired difference to random with the Wilcoxon p-value, and the same for the AULC."""
    import json

    import pandas as pd

    summary = pd.read_csv(folder / "summary.csv", index_col=0)
    metrics = json.loads((folder / "results.json").read_text())["metrics"]
    labels = {"r2": "R²", "rmse": "RMSE", "f1_micro": "micro-F1", "f1_macro": "macro-F1",
              "hamming": "Hamming"}
    rows = []
    for i, (name, metric) in enumerate(metrics.items()):
        prefix = "" if i == 0 else f"{name}_"
        better = "↑" if metric["greater_is_better"] else "↓"
        for learner, group in at[at["metric"] == name].groupby("learner", sort=False):
            row = {"metric": f"{labels.get(name, name)} {better}", "strategy": learner}
            for _, cell in group.iterrows():
                n = int(cell["n_labels"])
                row[f"{n} labels"] = f"{cell['mean']:.3g}"
                row[f"Δ at {n} (p)"] = (
                    "" if pd.isna(cell["diff_mean"])
                    else f"{cell['diff_mean']:+.3g} ({cell['p_value']:.2g})"
                )
            line = summary.loc[learner]
            diff = line.get(f"{prefix}aulc_diff_mean")
            row["ΔAULC (wins, p)"] = "" if pd.isna(diff) else (
                f"{diff:+.3g} ({int(line[f'{prefix}wins'])}/{int(line['n_pairs'])}, "
                f"{line[f'{prefix}p_value']:.2g})")
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--tables-only", action="store_true",
                        help="only rewrite at_labels.csv and table.csv from the results")
    args = parser.parse_args(argv)

    from skal._cli import main as skal

    for data in args.only:
        options, counts = RUNS[data]
        folder = args.out / data
        start = time.perf_counter()
        if not args.tables_only:
            status = skal(["run", *options, "--repeats", str(args.repeats),
                           "--n-jobs", str(args.n_jobs), "--quiet", "--output", str(folder)])
            if status:
                return status
        at = at_labels(folder, counts)
        at.to_csv(folder / "at_labels.csv", index=False, float_format="%.4g")
        display_table(folder, at).to_csv(folder / "table.csv", index=False)
        print(f"{data}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
