"""Lu, Li & Lin's re-benchmark of pool-based active learning on binary tabular data, run with
skal's own learner in budget mode, resumably, one small result file per repetition.

The protocol (``PROTOCOL.md`` of the data folder): a 40 % test split from
``np.random.default_rng(seed).shuffle``, 20 random initial labels from a fresh generator, a
StandardScaler fit on the whole pool, an RBF ``SVC(C=1, gamma='auto')`` refit after every
query on the labelled rows in pool order, the whole pool as budget, and AUBC as the paper
computes it (:func:`protocol_aubc`).
"""

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skal.strategies._base import QueryStrategy

#: The twelve data sets, smallest first (the order of the data folder's README).
DATASETS = (
    "sonar", "parkinsons", "ex8b", "heart", "ionosphere", "wdbc", "australian", "german",
    "splice", "gcloudub", "checkerboard", "spambase",
)
#: The benchmark's "large" group (10 repetitions in the paper, 5 required here).
LARGE_DATASETS = ("spambase",)

#: Published mean and sample std of per-repetition AUBC (results/README.md of the benchmark;
#: 100 repetitions, 10 for spambase), under skal's strategy names: ``random`` is the paper's
#: Uniform, ``decision_margin`` its US-C (margin of the SVC itself), ``entropy`` its US-NC
#: (entropy of a LogisticRegression(C=0.1) query model).
PAPER_AUBC = {
    "sonar": {"random": (0.7463, 0.0379), "decision_margin": (0.7762, 0.0313),
              "entropy": (0.7622, 0.0329)},
    "parkinsons": {"random": (0.8305, 0.0368), "decision_margin": (0.8531, 0.0343),
                   "entropy": (0.8511, 0.0321)},
    "ex8b": {"random": (0.8853, 0.028), "decision_margin": (0.8981, 0.0245),
             "entropy": (0.8938, 0.025)},
    "heart": {"random": (0.8051, 0.0279), "decision_margin": (0.8157, 0.0262),
              "entropy": (0.812, 0.0266)},
    "ionosphere": {"random": (0.918, 0.0178), "decision_margin": (0.93, 0.0154),
                   "entropy": (0.9197, 0.0179)},
    "wdbc": {"random": (0.9539, 0.013), "decision_margin": (0.9652, 0.0103),
             "entropy": (0.9597, 0.0111)},
    "australian": {"random": (0.8483, 0.0158), "decision_margin": (0.8504, 0.0157),
                   "entropy": (0.8459, 0.0159)},
    "german": {"random": (0.734, 0.0173), "decision_margin": (0.7417, 0.0154),
               "entropy": (0.7388, 0.0149)},
    "splice": {"random": (0.8075, 0.0161), "decision_margin": (0.8229, 0.013),
               "entropy": (0.8158, 0.0138)},
    "gcloudub": {"random": (0.9437, 0.0096), "decision_margin": (0.956, 0.0082),
                 "entropy": (0.949, 0.0089)},
    "checkerboard": {"random": (0.9781, 0.0059), "decision_margin": (0.9847, 0.0062),
                     "entropy": (0.9134, 0.0258)},
    "spambase": {"random": (0.9103, 0.0057), "decision_margin": (0.9205, 0.0043),
                 "entropy": (0.901, 0.0044)},
}
PAPER_REPETITIONS = {name: 10 if name in LARGE_DATASETS else 100 for name in DATASETS}

#: Strategies that need ``predict_proba``: the SVC of the protocol has none
#: (``probability=False``), so they rank with the paper's US-NC query model instead.
PROBABILISTIC = ("entropy", "margin", "least_confidence", "badge", "ranked_batch")
#: What the benchmark runs, by skal's names; ``albl`` is ActiveLearningByLearning over
#: random, decision_margin, entropy (query model) and coreset.
STRATEGIES = ("random", "decision_margin", "entropy", "coreset", "badge", "ranked_batch",
              "typiclust", "probcover", "albl")
ALBL_ARMS = ("random", "decision_margin", "entropy", "coreset")

SVC_PARAMS = {"kernel": "rbf", "C": 1.0, "gamma": "auto", "tol": 1e-3,
              "random_state": 6211}
QUERY_MODEL_PARAMS = {"C": 0.1, "solver": "lbfgs", "max_iter": 100, "random_state": 6211}
TEST_FRACTION = 0.4
N_INITIAL = 20


class QueryModel(QueryStrategy):
    """Rank the pool with a query model of its own, fitted on the learner's labelled rows.

    The "non-compatible" uncertainty sampling of Lu, Li & Lin (US-NC): the learner's task
    model (e.g. an SVC without ``predict_proba``) is trained and scored as usual, while
    ``strategy`` sees ``clone(estimator)`` fitted on ``learner.X_labeled_`` and
    ``learner.y_labeled_`` at every query. Only the labelled set is read from the learner
    (protocol rule 4).

    Parameters
    ----------
    strategy : QueryStrategy
        The strategy that ranks the pool with the query model, e.g. ``EntropySampling()``.
    estimator : classifier
        The query model, e.g. ``LogisticRegression(C=0.1)``; cloned and refitted every query.
    random_state : int, RandomState instance or None, default=None
        Seeds the inner strategy's tie-breaks.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import scale
    >>> from sklearn.svm import SVC
    >>> from skal import ActiveLearner, EntropySampling
    >>> from skal.experiments import QueryModel
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> us_nc = QueryModel(EntropySampling(), LogisticRegression(C=0.1))
    >>> learner = ActiveLearner(SVC(), us_nc, budget=40, batch_size=5, random_state=0)
    >>> learner.fit(scale(X), y).n_labels_
    40
    """

    def __init__(self, strategy, estimator, random_state=None):
        self.strategy = strategy
        self.estimator = estimator
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = not getattr(self.strategy, "_needs_dense_embedding", False)
        return tags

    def _select(self, learner, X_pool, batch_size, random_state):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(learner)  # a cold start has no labelled set to fit the model on
        model = clone(self.estimator)
        with warnings.catch_warnings():
            # lbfgs with max_iter=100 (the protocol's setting) may stop early on some sets
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(learner.X_labeled_, learner.y_labeled_)
        inner = clone(self.strategy)
        if "random_state" in inner.get_params(deep=False):
            inner.set_params(random_state=int(random_state.randint(np.iinfo(np.int32).max)))
        return inner.select(model, X_pool, batch_size)


def load_benchmark_data(data_dir, name):
    """``(X, y)`` of data set ``name`` from the benchmark folder ``data_dir`` (CSV f0..,y).

    Parameters
    ----------
    data_dir : str or path-like
        The folder holding ``{name}.csv`` (e.g. ``shared/data/al-benchmark``).
    name : str

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64, not scaled
    y : ndarray of shape (n_samples,), int, in {0, 1}
    """
    path = Path(data_dir) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"benchmark data set not found: {path}")
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(int)


def protocol_split(X, y, seed, *, test_fraction=TEST_FRACTION, n_initial=N_INITIAL):
    """One repetition's data, exactly as the benchmark builds it for ``seed``.

    The indices ``0..n-1`` are shuffled by ``np.random.default_rng(seed)``; the first
    ``int(0.6 n)`` form the pool (in that shuffled order) and the rest the test set. A fresh
    ``np.random.default_rng(seed)`` shuffles the pool positions; the first ``n_initial`` are
    the initial labels. A StandardScaler fit on the whole pool scales pool and test set.

    Returns
    -------
    split : dict or None
        ``X_pool, y_pool, X_test, y_test, initial_rows`` (positions in the pool), or ``None``
        when the initial labels hold one class only (the benchmark records an error and
        skips the seed).
    """
    from sklearn.preprocessing import StandardScaler

    n = len(y)
    order = np.arange(n)
    np.random.default_rng(seed).shuffle(order)
    n_pool = int((1 - test_fraction) * n)
    pool, test = order[:n_pool], order[n_pool:]
    positions = np.arange(n_pool)
    np.random.default_rng(seed).shuffle(positions)
    initial = positions[:n_initial]
    y_pool = y[pool]
    if np.unique(y_pool[initial]).size < 2:
        return None
    scaler = StandardScaler().fit(X[pool])
    return {"X_pool": scaler.transform(X[pool]), "y_pool": y_pool,
            "X_test": scaler.transform(X[test]), "y_test": y[test],
            "initial_rows": np.sort(initial)}


def protocol_aubc(accuracies):
    """AUBC as the paper-era benchmark computes it (``AUBC_Zhan``), unrounded.

    ``a_1..a_Q`` are the test accuracies after queries (rounds) 1..Q, the initial model's
    excluded: ``AUBC = sum_{i=1}^{Q-1} (a_i + a_{i+1}) / 2 / Q``. For batches of ``b`` rows
    the same formula runs over the rounds.

    Examples
    --------
    >>> from skal.experiments import protocol_aubc
    >>> protocol_aubc([0.5, 0.7, 0.9])  # (0.6 + 0.8) / 3
    0.4666...
    """
    a = np.asarray(accuracies, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError("accuracies must be a non-empty 1-d sequence.")
    return float(((a[:-1] + a[1:]) / 2).sum() / a.size)


def benchmark_strategy(name):
    """The query strategy called ``name`` in the benchmark, under the protocol's models."""
    from sklearn.linear_model import LogisticRegression

    from skal.experiments._cli import parse_strategy

    if name == "albl":
        from skal.strategies import ActiveLearningByLearning

        return ActiveLearningByLearning([benchmark_strategy(arm) for arm in ALBL_ARMS])
    strategy = parse_strategy(name)
    if name.partition(":")[0] in PROBABILISTIC:
        return QueryModel(strategy, LogisticRegression(**QUERY_MODEL_PARAMS))
    return strategy


def run_repetition(data_dir, dataset, strategy, batch_size, seed, *, data=None):
    """One repetition of the protocol: skal's learner in budget mode, scored every cycle.

    Parameters
    ----------
    data_dir : str or path-like
    dataset : str
    strategy : str
        A name of :data:`STRATEGIES` (or any ``skal run`` strategy spec).
    batch_size : int
    seed : int
    data : tuple (X, y), default=None
        The loaded data set, to skip reading the CSV again.

    Returns
    -------
    result : dict
        ``aubc``, ``n_correct`` (test rows right after every round), ``n_test``,
        ``seconds`` (the simulated run, scoring included), ``picks`` (pool positions in
        acquisition order) and, for ``albl``, the arms' final probabilities; or
        ``{"skipped": reason}``.
    """
    from sklearn.svm import SVC

    from skal import ActiveLearner

    X, y = load_benchmark_data(data_dir, dataset) if data is None else data
    split = protocol_split(X, y, seed)
    if split is None:
        return {"skipped": "the initial labels hold one class"}
    X_pool, y_pool, X_test, y_test = (split[k] for k in ("X_pool", "y_pool", "X_test", "y_test"))
    learner = ActiveLearner(SVC(**SVC_PARAMS), benchmark_strategy(strategy),
                            batch_size=batch_size, budget=len(y_pool), random_state=seed)
    n_correct = []

    def score(fitted, record):
        if record["event"] == "query":
            n_correct.append(int((fitted.predict(X_test) == y_test).sum()))

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        learner.fit(X_pool, y_pool, initial_rows=split["initial_rows"], on_cycle=score)
    seconds = time.perf_counter() - start
    result = {
        "dataset": dataset, "strategy": strategy, "batch_size": batch_size, "seed": seed,
        "aubc": protocol_aubc(np.asarray(n_correct) / len(y_test)),
        "n_pool": len(y_pool), "n_test": len(y_test), "n_rounds": len(n_correct),
        "seconds": round(seconds, 3), "n_correct": n_correct,
        "picks": [int(i) for i in learner.labeled_indices_[len(split["initial_rows"]):]],
    }
    chosen = getattr(learner.query_strategy_, "arm_probabilities_", None)
    if chosen is not None:
        result["arm_probabilities"] = np.round(chosen[-1], 4).tolist()
        result["arm_share"] = np.round(learner.query_strategy_.arm_share_, 4).tolist()
    return result


def result_path(out_dir, dataset, strategy, batch_size, seed):
    """Where one repetition's result file lives."""
    safe = strategy.replace(":", "_").replace("=", "-").replace(",", "_")
    return Path(out_dir) / "runs" / dataset / f"{safe}-b{batch_size}-s{seed:03d}.json"


def run_tabular_benchmark(data_dir, out_dir, *, datasets=None, strategies=("random",
                          "decision_margin"), batch_sizes=(1,), n_repetitions=30,
                          large_repetitions=5, progress=True):
    """Run the benchmark resumably: one JSON file per data set, strategy, batch size and seed.

    A file already present is skipped, so an interrupted run resumes where it stopped.
    Seeds are 0, 1, ...; a seed whose initial labels hold one class is recorded as skipped
    and the next one is used, until ``n_repetitions`` (``large_repetitions`` for spambase)
    finished repetitions exist. Data sets run in the order given (the largest last by
    default), repetition by repetition, so every strategy gets the same seeds.

    Parameters
    ----------
    data_dir, out_dir : str or path-like
    datasets : sequence of str, default=None
        ``None``: all of :data:`DATASETS` present in ``data_dir``.
    strategies : sequence of str
    batch_sizes : sequence of int
    n_repetitions, large_repetitions : int
    progress : bool
        Print one line per finished repetition.

    Returns
    -------
    n_new : int
        Repetitions run now (not found on disk).
    """
    data_dir = Path(data_dir)
    if datasets is None:
        datasets = [d for d in DATASETS if (data_dir / f"{d}.csv").is_file()]
    n_new = 0
    for dataset in datasets:
        data = load_benchmark_data(data_dir, dataset)
        wanted = large_repetitions if dataset in LARGE_DATASETS else n_repetitions
        seed, finished = 0, 0
        while finished < wanted:
            skipped = False
            for batch_size in batch_sizes:
                for strategy in strategies:
                    path = result_path(out_dir, dataset, strategy, batch_size, seed)
                    if path.is_file():
                        result = json.loads(path.read_text())
                    else:
                        result = run_repetition(data_dir, dataset, strategy, batch_size, seed,
                                                data=data)
                        _write_atomic(path, result)
                        n_new += 1
                        if progress and "skipped" not in result:
                            print(f"{dataset} {strategy} b={batch_size} seed {seed}: AUBC "
                                  f"{result['aubc']:.4f} in {result['seconds']:.1f} s",
                                  flush=True)
                    skipped = skipped or "skipped" in result
            finished += not skipped
            seed += 1
    return n_new


def _write_atomic(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a kill leaves either no file or a whole one


def load_repetitions(out_dir):
    """All finished repetitions under ``out_dir/runs`` as a DataFrame (one row each)."""
    import pandas as pd

    rows = []
    for path in sorted(Path(out_dir).glob("runs/*/*.json")):
        result = json.loads(path.read_text())
        if "skipped" in result:
            continue
        rows.append({key: result[key] for key in ("dataset", "strategy", "batch_size", "seed",
                                                   "aubc", "seconds", "n_rounds")})
    columns = ["dataset", "strategy", "batch_size", "seed", "aubc", "seconds", "n_rounds"]
    return pd.DataFrame(rows, columns=columns)


def summarize_tabular_benchmark(repetitions):
    """``summary.csv``'s table: one row per data set, strategy and batch size.

    Columns ``dataset, strategy, batch_size, n_repetitions, aubc_mean, aubc_std,
    paper_aubc_mean, paper_aubc_std`` (the paper's figures for batch size 1 only, NaN
    elsewhere), then ``difference_in_se`` (skal minus paper over the standard error of the
    difference of the two means) and ``seconds_mean`` (time per repetition).
    """
    import pandas as pd

    order = {name: i for i, name in enumerate(DATASETS)}
    rows = []
    for (dataset, strategy, batch_size), group in repetitions.groupby(
        ["dataset", "strategy", "batch_size"]
    ):
        mean, std, n = group["aubc"].mean(), group["aubc"].std(ddof=1), len(group)
        paper = PAPER_AUBC.get(dataset, {}).get(strategy) if batch_size == 1 else None
        row = {"dataset": dataset, "strategy": strategy, "batch_size": int(batch_size),
               "n_repetitions": n, "aubc_mean": mean, "aubc_std": std,
               "paper_aubc_mean": np.nan, "paper_aubc_std": np.nan,
               "difference_in_se": np.nan, "seconds_mean": group["seconds"].mean()}
        if paper is not None:
            paper_mean, paper_std = paper
            se = np.sqrt(std**2 / n + paper_std**2 / PAPER_REPETITIONS[dataset])
            row.update(paper_aubc_mean=paper_mean, paper_aubc_std=paper_std,
                       difference_in_se=(mean - paper_mean) / se if n > 1 else np.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_order"] = table["dataset"].map(order).fillna(len(order))
    return (table.sort_values(["_order", "dataset", "batch_size", "strategy"])
            .drop(columns="_order").reset_index(drop=True))


def compare_strategies(repetitions, baseline="random", alpha=0.05, min_repetitions=5):
    """Per batch size: each strategy's mean rank over data sets and wins/ties/losses vs
    ``baseline`` (Wilcoxon signed-rank test on the paired AUBC, at ``alpha``).

    Only data sets on which every strategy of that batch size ran on at least
    ``min_repetitions`` common seeds count (a data set whose long runs are still under way
    would otherwise enter on one seed), and on each only the seeds every strategy ran, so
    that all comparisons are paired. Ranks are of the mean AUBC over those seeds (1 = best,
    ties share the mean rank).
    """
    import pandas as pd
    from scipy import stats

    rows = []
    for batch_size, block in repetitions.groupby("batch_size"):
        strategies = sorted(block["strategy"].unique())
        means, pairs = {}, {}
        for dataset, group in block.groupby("dataset"):
            table = group.pivot_table(index="seed", columns="strategy", values="aubc")
            if set(table.columns) != set(strategies):
                continue
            table = table.dropna()
            if len(table) < max(1, min_repetitions):
                continue
            pairs[dataset] = table
            means[dataset] = table.mean()
        if not means:
            continue
        ranks = pd.DataFrame(means).T.rank(axis=1, ascending=False).mean()
        for strategy in strategies:
            wins = ties = losses = 0
            for table in pairs.values():
                if strategy == baseline or baseline not in table:
                    continue
                diff = table[strategy] - table[baseline]
                p = stats.wilcoxon(diff).pvalue if (diff != 0).any() and len(diff) > 1 else 1.0
                if p < alpha:
                    wins += diff.mean() > 0
                    losses += diff.mean() < 0
                else:
                    ties += 1
            rows.append({"batch_size": int(batch_size), "strategy": strategy,
                         "n_datasets": len(means),
                         "n_repetitions": int(min(len(t) for t in pairs.values())),
                         "mean_rank": ranks[strategy], "wins": wins, "ties": ties,
                         "losses": losses})
    columns = ["batch_size", "strategy", "n_datasets", "n_repetitions", "mean_rank", "wins",
               "ties", "losses"]
    return (pd.DataFrame(rows, columns=columns).sort_values(["batch_size", "mean_rank"])
            .reset_index(drop=True))


def write_tables(out_dir):
    """Rewrite ``repetitions.csv``, ``summary.csv`` and ``strategies.csv`` from the result
    files under ``out_dir``; return the summary (empty when nothing finished yet)."""
    out_dir = Path(out_dir)
    repetitions = load_repetitions(out_dir)
    if repetitions.empty:
        return summarize_tabular_benchmark(repetitions)
    repetitions.to_csv(out_dir / "repetitions.csv", index=False, float_format="%.6g")
    summary = summarize_tabular_benchmark(repetitions)
    summary.to_csv(out_dir / "summary.csv", index=False, float_format="%.6g")
    strategies = compare_strategies(repetitions)
    strategies.to_csv(out_dir / "strategies.csv", index=False, float_format="%.4g")
    _display_tables(summary, strategies, out_dir)
    return summary


def _display_tables(summary, strategies, out_dir):
    """The docs page's tables, formatted (``reproduction_table.csv``, ``strategy_table.csv``)."""
    import pandas as pd

    paper = summary[summary["paper_aubc_mean"].notna()]
    rows = [{
        "data set": r.dataset, "strategy": _DISPLAY.get(r.strategy, r.strategy),
        "skal reps": r.n_repetitions,
        "skal AUBC": f"{r.aubc_mean:.4f} ± {r.aubc_std:.4f}",
        "paper AUBC": f"{r.paper_aubc_mean:.4f} ± {r.paper_aubc_std:.4f}",
        "difference / SE": f"{r.difference_in_se:+.2f}",
        "s per rep": f"{r.seconds_mean:.1f}",
    } for r in paper.itertuples()]
    pd.DataFrame(rows).to_csv(out_dir / "reproduction_table.csv", index=False)
    rows = [{
        "batch size": r.batch_size, "strategy": _DISPLAY.get(r.strategy, r.strategy),
        "data sets": r.n_datasets, "reps (at least)": r.n_repetitions,
        "mean rank": f"{r.mean_rank:.2f}",
        "wins / ties / losses vs random": "-" if r.strategy == "random"
        else f"{r.wins} / {r.ties} / {r.losses}",
    } for r in strategies.itertuples()]
    pd.DataFrame(rows).to_csv(out_dir / "strategy_table.csv", index=False)


_DISPLAY = {"decision_margin": "US-C (decision_margin)", "entropy": "US-NC (entropy)",
            "albl": "ALBL (albl)"}


def run_recipe(options, out_dir, progress=True):
    """``skal run`` with ``recipe = "tabular_benchmark"``: run or resume, then the tables.

    Uses the options ``data`` (the folder of the CSVs), ``datasets`` (None: all present),
    ``strategies``, ``batch_size`` and ``repeats`` (repetitions per data set, spambase
    included).
    """
    data_dir = Path(str(options["data"]))
    if not data_dir.is_dir():
        raise ValueError(f"recipe tabular_benchmark needs data = the folder of the benchmark "
                         f"CSVs, got {options['data']!r}")
    datasets = options["datasets"]
    if isinstance(datasets, str):
        datasets = datasets.split()
    n = options["repeats"]
    run_tabular_benchmark(data_dir, out_dir, datasets=datasets,
                          strategies=list(options["strategies"]),
                          batch_sizes=[options["batch_size"]], n_repetitions=n,
                          large_repetitions=n, progress=progress)
    summary = write_tables(out_dir)
    columns = ["dataset", "strategy", "batch_size", "n_repetitions", "aubc_mean", "aubc_std",
               "paper_aubc_mean", "difference_in_se", "seconds_mean"]
    print(summary[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nresults written to {out_dir}/ (rerun the same command to resume)")
    return 0


def plot_tabular_benchmark(summary, path, batch_size=1):
    """Draw skal's AUBC (mean +/- 2 standard errors) beside the paper's, per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = summary[(summary["batch_size"] == batch_size)
                    & summary["paper_aubc_mean"].notna()]
    strategies = [s for s in ("random", "decision_margin", "entropy")
                  if s in set(block["strategy"])]
    datasets = [d for d in DATASETS if d in set(block["dataset"])]
    fig, axes = plt.subplots(1, len(strategies), figsize=(4.2 * len(strategies), 4.4),
                             layout="constrained", squeeze=False)
    labels = {"random": "random (Uniform)", "decision_margin": "US-C (DecisionMargin)",
              "entropy": "US-NC (entropy, logistic query model)"}
    for ax, strategy in zip(axes[0], strategies, strict=True):
        rows = block[block["strategy"] == strategy].set_index("dataset").reindex(datasets)
        y = np.arange(len(datasets))
        se = rows["aubc_std"] / np.sqrt(rows["n_repetitions"])
        paper_se = rows["paper_aubc_std"] / np.sqrt([PAPER_REPETITIONS[d] for d in datasets])
        ax.errorbar(rows["paper_aubc_mean"], y + 0.15, xerr=2 * paper_se, fmt="s",
                    color="0.45", label="paper (±2 SE)")
        ax.errorbar(rows["aubc_mean"], y - 0.15, xerr=2 * se, fmt="o", color="C0",
                    label="skal (±2 SE)")
        ax.set_yticks(y, datasets)
        ax.invert_yaxis()
        ax.set_xlabel("AUBC")
        ax.set_title(labels[strategy], fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
