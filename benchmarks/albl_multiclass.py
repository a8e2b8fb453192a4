"""ActiveLearningByLearning on many-class data (#12, part 3): the digits, a 26-class
``make_classification`` set and the MNIST pool, against random and its fixed members,
paired over repeats.

Scaled logistic regression, 20 random initial labels, batches of 10 up to 220 labels, a
stratified 25 % test set scored every cycle (skal.experiments.run_experiment). Writes
OUT/multiclass_repetitions.csv (AULC per data set, strategy and repeat) and
OUT/multiclass_table.csv (mean AULC, mean rank, Wilcoxon p-value against random).
``mnist`` is MNIST's 10,000 t10k images (pixels in [0, 1], the folder given by ``--mnist``);
``--datasets`` reruns some data sets and keeps the others' rows:

    nice -n 10 python benchmarks/albl_multiclass.py --repeats 10
    nice -n 10 python benchmarks/albl_multiclass.py --repeats 10 --datasets mnist \
        --mnist ../shared/data/mnist
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "results" / "tabular_benchmark"


DATASETS = ("digits", "classification26", "mnist")


def load(name, mnist=None):
    from sklearn.datasets import load_digits, make_classification

    if name == "digits":
        return load_digits(return_X_y=True)
    if name == "mnist":
        from skal.datasets import load_mnist_idx

        return load_mnist_idx(mnist)
    return make_classification(n_samples=4000, n_features=32, n_informative=16, n_redundant=4,
                               n_classes=26, n_clusters_per_class=1, class_sep=1.5,
                               random_state=0)


def learners():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skal import ActiveLearner, CoreSet, EntropySampling, MarginSampling, RandomSampling
    from skal.strategies import ActiveLearningByLearning

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    members = {"random": RandomSampling(), "margin": MarginSampling(),
               "entropy": EntropySampling(), "coreset": CoreSet()}
    strategies = dict(members, albl=ActiveLearningByLearning(list(members.values())))
    return {name: ActiveLearner(model, strategy) for name, strategy in strategies.items()}


def main(argv=None):
    import numpy as np
    import pandas as pd
    from scipy import stats
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    from skal.experiments import run_experiment
    from skal.experiments._summary import _per_repeat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS,
                        default=["digits", "classification26"])
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                        help="folder of the MNIST t10k IDX files (for --datasets mnist)")
    args = parser.parse_args(argv)
    threadpool_limits(1)
    out = Path(args.out)
    rows = []
    for name in args.datasets:
        X, y = load(name, args.mnist)
        X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                          random_state=0)
        result = run_experiment(learners(), X_pool, y_pool, X_test, y_test, budget=220,
                                batch_size=10, n_initial=20, n_repeats=args.repeats,
                                random_state=0, n_jobs=1)
        per_repeat = _per_repeat(result, "score", None, (0.0, 1.0))
        for r in per_repeat.itertuples():
            rows.append({"dataset": name, "strategy": r.learner, "repeat": r.repeat,
                         "aulc": r.aulc, "final_score": r.final_score})
        print(name, "done", flush=True)
    table = pd.DataFrame(rows)
    previous = out / "multiclass_repetitions.csv"
    if previous.exists():  # keep the data sets not rerun
        kept = pd.read_csv(previous)
        table = pd.concat([kept[~kept["dataset"].isin(args.datasets)], table],
                          ignore_index=True)
    table.to_csv(out / "multiclass_repetitions.csv", index=False, float_format="%.6g")
    summary = []
    for name, block in table.groupby("dataset"):
        wide = block.pivot(index="repeat", columns="strategy", values="aulc")
        ranks = wide.mean().rank(ascending=False)
        for strategy in wide.columns:
            diff = wide[strategy] - wide["random"]
            p = stats.wilcoxon(diff).pvalue if (diff != 0).any() else np.nan
            summary.append({"dataset": name, "strategy": strategy, "n_repetitions": len(wide),
                            "aulc_mean": wide[strategy].mean(), "aulc_std": wide[strategy].std(),
                            "rank": ranks[strategy], "diff_vs_random": diff.mean(),
                            "p_vs_random": p})
    summary = pd.DataFrame(summary)
    summary.to_csv(out / "multiclass_table.csv", index=False, float_format="%.4g")
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
