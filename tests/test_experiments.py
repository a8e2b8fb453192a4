"""Tests of skal.experiments: simulated runs, their summaries (known answers) and plots."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from threadpoolctl import threadpool_limits

from skal import ActiveLearner, CommitteeLearner, MarginSampling, RandomSampling, VoteEntropy
from skal.experiments import (
    aulc,
    compare_to_random,
    labels_to_target,
    plot_labels_to_target,
    plot_learning_curves,
    quantiles,
    run_experiment,
    summarize,
)

DETERMINISTIC = ["learner", "strategy", "estimator", "repeat", "seed", "cycle", "n_labels",
                 "score", "indices"]


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    # Tiny fits gain nothing from BLAS threads, and OpenBLAS threads spinning on a busy
    # two-core machine make L-BFGS ten times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def iris_split():
    X, y = load_iris(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def learners():
    model = LogisticRegression(max_iter=500)
    return {
        "random": ActiveLearner(model, RandomSampling(), batch_size=5, n_initial=6),
        "margin": ActiveLearner(model, MarginSampling(), batch_size=5, n_initial=6),
        "committee": CommitteeLearner(model, VoteEntropy(), n_estimators=3, batch_size=5,
                                      n_initial=6),
    }


@pytest.fixture(scope="module")
def result(iris_split, learners):
    X_pool, X_test, y_pool, y_test = iris_split
    return run_experiment(learners, X_pool, y_pool, X_test, y_test, budget=26, n_repeats=3,
                          random_state=0)


# ------------------------------------------------------------------ known answers
def test_aulc_known_answers():
    assert aulc([10, 20, 30], [1.0, 1.0, 1.0]) == 1.0
    assert aulc([0, 100], [0.0, 1.0]) == pytest.approx(0.5)
    # trapezoids: (0.5 + 0.5) / 2 * 10 + (0.5 + 1) / 2 * 10 = 12.5, over a width of 20
    assert aulc([10, 20, 30], [0.5, 0.5, 1.0]) == pytest.approx(0.625)
    # unequal spacing and unsorted input: ((0.2 + 0.4) / 2 * 10 + (0.4 + 1) / 2 * 20) / 30
    assert aulc([40, 10, 20], [1.0, 0.2, 0.4]) == pytest.approx(17 / 30)
    assert aulc([50], [0.8]) == pytest.approx(0.8)
    # score_range rescales: 0.75 in [0.5, 1] is halfway
    assert aulc([0, 10], [0.75, 0.75], score_range=(0.5, 1.0)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same length"):
        aulc([1, 2], [0.5])
    with pytest.raises(ValueError, match="score_range"):
        aulc([1, 2], [0.5, 0.6], score_range=(1, 0))


def test_labels_to_target_known_answers():
    assert labels_to_target([10, 20, 30], [0.5, 0.9, 0.8], 0.85) == 20
    assert labels_to_target([10, 20, 30], [0.5, 0.85, 0.8], 0.85) == 20  # >= counts
    assert labels_to_target([30, 10, 20], [0.95, 0.5, 0.7], 0.9) == 30
    assert labels_to_target([10, 20], [0.5, 0.6], 0.9) == np.inf


def test_quantiles_treat_never_reached_as_largest():
    assert quantiles([10, 20, 30, np.inf]).tolist() == [17.5, 25.0, np.inf]
    assert quantiles([40, 10, 30, 20, 50]).tolist() == [20, 30, 40]
    assert quantiles([np.inf, np.inf]).tolist() == [np.inf] * 3
    assert np.isnan(quantiles([])).all()


def _curves(spec):
    rows = []
    for learner, strategy, repeat, scores in spec:
        for cycle, score in enumerate(scores):
            rows.append({"learner": learner, "strategy": strategy, "estimator": "LR",
                         "repeat": repeat, "seed": 100 + repeat, "cycle": cycle,
                         "n_labels": 10 * (cycle + 1), "score": score})
    return pd.DataFrame(rows)


def test_summarize_and_compare_on_hand_made_curves():
    result = _curves([
        ("random", "RandomSampling", 0, [0.2, 0.4, 0.6]),
        ("random", "RandomSampling", 1, [0.2, 0.6, 0.8]),
        ("margin", "MarginSampling", 0, [0.2, 0.6, 0.9]),
        ("margin", "MarginSampling", 1, [0.2, 0.8, 0.8]),
    ])
    summary = summarize(result, target=0.6)
    # random: AULC (0.2+0.4)/2 + (0.4+0.6)/2 = 0.8 / 2 = 0.4 and (0.4 + 0.7)/2 = 0.55
    assert summary.loc["random", "aulc_mean"] == pytest.approx(0.475)
    assert summary.loc["margin", "final_score_mean"] == pytest.approx(0.85)
    assert summary.loc["random", "labels_to_target_q50"] == pytest.approx(25)  # 30 and 20
    assert summary.loc["margin", "labels_to_target_q25"] == pytest.approx(20)
    assert summary.loc["random", "reached"] == 1.0
    assert summary.loc["random", "n_repeats"] == 2
    assert summarize(result, target=0.95).loc["margin", "labels_to_target_q50"] == np.inf

    comparison = compare_to_random(result)
    assert comparison.index.tolist() == ["margin"]
    # margin AULCs: (0.4 + 0.75)/2 = 0.575, (0.5 + 0.8)/2 = 0.65; random 0.4, 0.55
    assert comparison.loc["margin", "aulc_diff_mean"] == pytest.approx((0.175 + 0.1) / 2)
    assert comparison.loc["margin", "wins"] == 2
    assert comparison.loc["margin", "baseline"] == "random"
    assert comparison.loc["margin", "final_diff_mean"] == pytest.approx(0.15)
    assert compare_to_random(result, baseline="margin").loc["random", "wins"] == 0
    with pytest.raises(KeyError, match="nope"):
        compare_to_random(result, baseline="nope")


# ------------------------------------------------------------------ simulated runs
def test_result_is_tidy_and_paired(result, iris_split):
    y_pool = iris_split[2]
    assert list(result.columns) == ["learner", "strategy", "estimator", "repeat", "seed",
                                    "cycle", "n_labels", "cost", "score", "fit_seconds",
                                    "query_seconds", "indices"]
    assert (result["cost"] == result["n_labels"]).all()  # every label costs 1 by default
    assert list(dict.fromkeys(result["learner"])) == ["random", "margin", "committee"]
    assert set(result["strategy"]) == {"RandomSampling", "MarginSampling", "VoteEntropy"}
    for _, run in result.groupby(["learner", "repeat"]):
        assert run["n_labels"].tolist() == [6, 11, 16, 21, 26]
        acquired = np.concatenate(run["indices"].to_list())
        assert acquired.size == 26 == np.unique(acquired).size
        assert acquired.max() < y_pool.size
        assert run["score"].between(0, 1).all()
        assert (run["fit_seconds"] >= 0).all()
    initial = result[result["cycle"] == 0]
    for _, first in initial.groupby("repeat"):
        # the same seed and initial rows for every learner in a repeat
        assert first["seed"].nunique() == 1
        assert len({tuple(rows) for rows in first["indices"]}) == 1
    assert initial.groupby("learner")["seed"].nunique().eq(3).all()


def test_same_seeds_same_results_whatever_n_jobs(iris_split, learners, result):
    X_pool, X_test, y_pool, y_test = iris_split
    parallel = run_experiment(learners, X_pool, y_pool, X_test, y_test, budget=26,
                              n_repeats=3, random_state=0, n_jobs=2)
    pd.testing.assert_frame_equal(result[DETERMINISTIC], parallel[DETERMINISTIC])
    other_seed = run_experiment(learners, X_pool, y_pool, X_test, y_test, budget=26,
                                n_repeats=3, random_state=1)
    assert not other_seed[DETERMINISTIC].equals(result[DETERMINISTIC])


def test_param_grid_and_multiple_metrics(iris_split):
    X_pool, X_test, y_pool, y_test = iris_split
    result = run_experiment(
        ActiveLearner(batch_size=10, n_initial=10), X_pool, y_pool, X_test, y_test,
        param_grid={"query_strategy": [RandomSampling(), MarginSampling()],
                    "estimator": [LogisticRegression(max_iter=500), GaussianNB()]},
        budget=30, n_repeats=2, scoring=["accuracy", "f1_macro"],
    )
    assert set(result["learner"]) == {
        "RandomSampling | LogisticRegression", "RandomSampling | GaussianNB",
        "MarginSampling | LogisticRegression", "MarginSampling | GaussianNB"}
    assert {"score", "score_accuracy", "score_f1_macro"} <= set(result.columns)
    assert (result["score"] == result["score_accuracy"]).all()
    comparison = compare_to_random(result)  # each pairs with random of its own estimator
    assert comparison.loc["MarginSampling | GaussianNB", "baseline"] == (
        "RandomSampling | GaussianNB")


def test_overrides_and_progress(iris_split, capsys):
    X_pool, X_test, y_pool, y_test = iris_split
    learner = ActiveLearner(query_strategy=MarginSampling())
    result = run_experiment(learner, X_pool, y_pool, X_test, y_test, budget=23,
                            batch_size=4, n_initial=7, n_repeats=1, progress=True)
    assert result["n_labels"].tolist() == [7, 11, 15, 19, 23]
    assert "cycle" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [({"budget": 0}, "budget"), ({"budget": 20, "n_repeats": 0}, "n_repeats")],
)
def test_bad_arguments(iris_split, kwargs, message):
    X_pool, X_test, y_pool, y_test = iris_split
    with pytest.raises(ValueError, match=message):
        run_experiment(ActiveLearner(), X_pool, y_pool, X_test, y_test, **kwargs)


def test_missing_label_in_oracle_is_an_error(iris_split):
    X_pool, X_test, y_pool, y_test = iris_split
    y_bad = y_pool - 1  # classes -1, 0, 1: -1 is the default missing_label
    with pytest.raises(ValueError, match="missing_label"):
        run_experiment(ActiveLearner(), X_pool, y_bad, X_test, y_test - 1, budget=20)


def test_string_labels(iris_split):
    X_pool, X_test, y_pool, y_test = iris_split
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)
    learner = ActiveLearner(query_strategy=MarginSampling(), missing_label=None)
    result = run_experiment(learner, X_pool, names[y_pool], X_test, names[y_test], budget=20,
                            n_repeats=1)
    assert result["n_labels"].max() == 20


def test_dask_local_cluster(iris_split, learners, result):
    distributed = pytest.importorskip("distributed")
    X_pool, X_test, y_pool, y_test = iris_split
    # A scheduler and a worker on loopback TCP, in this process so the test starts quickly.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client, parallel_config(backend="dask"):
            on_dask = run_experiment(learners, X_pool, y_pool, X_test, y_test, budget=26,
                                     n_repeats=3, random_state=0, n_jobs=-1)
            assert client.scheduler_info()["workers"]
            # the runs went through the scheduler, not a local backend
            assert cluster.scheduler.transition_counter > 0
    pd.testing.assert_frame_equal(result[DETERMINISTIC], on_dask[DETERMINISTIC])


# ------------------------------------------------------------------ plots
def test_plots_return_figures(result):
    from matplotlib.figure import Figure

    fig = plot_learning_curves(result, target=0.8)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 4  # three learners and the target line
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == [
        "random", "margin", "committee"]
    assert isinstance(plot_learning_curves(result, spread="quantiles"), Figure)
    bars = plot_labels_to_target(result, 0.8)
    assert len(bars.axes[0].patches) == 3
    never = plot_labels_to_target(result, 1.01)
    assert "not reached" in [t.get_text() for t in never.axes[0].texts]
    with pytest.raises(ValueError, match="spread"):
        plot_learning_curves(result, spread="iqr")
    import matplotlib.pyplot as plt

    plt.close("all")
