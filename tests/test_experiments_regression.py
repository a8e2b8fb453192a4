"""Regression and multi-label experiments (#14, part 3): paired comparisons of losses by
hand, ``run_experiment`` with the tasks' metrics, and ``skal run`` on the new data sets."""

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import root_mean_squared_error
from threadpoolctl import threadpool_limits

from skal import ActiveRegressor, GreedySampling, RandomSampling
from skal._cli import main
from skal.experiments import (
    compare_at_labels,
    compare_to_random,
    labels_to_target,
    run_experiment,
    summarize,
)
from skal.experiments._report import score_columns, scoring
from skal.experiments._tasks import TASKS, task_for

TINY = ["--budget", "12", "--initial-size", "6", "--batch-size", "3", "--repeats", "2",
        "--n-jobs", "1", "--quiet"]


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _rmse_curves():
    """Three repeats of an RMSE curve at 10 and 20 labels; 'greedy' ends lower every time."""
    rows = []
    curves = {"random": [(9, 8), (9, 7), (9, 9)], "greedy": [(9, 7), (9, 5), (9, 6)]}
    for learner, repeats in curves.items():
        for repeat, scores in enumerate(repeats):
            for n, score in zip((10, 20), scores, strict=True):
                rows.append({"learner": learner, "strategy": learner, "repeat": repeat,
                             "seed": 100 + repeat, "n_labels": n, "score": float(score)})
    return pd.DataFrame(rows)


def test_paired_comparison_of_a_loss_by_hand():
    result = _rmse_curves()
    # AULC = mean of the two points: random 8.5, 8, 9; greedy 8, 7, 7.5 -> diffs -0.5, -1, -1.5
    loss = compare_to_random(result, greater_is_better=False).loc["greedy"]
    assert loss["aulc_diff_mean"] == pytest.approx(-1.0)
    assert loss["final_diff_mean"] == pytest.approx(-2.0)  # (7-8 + 5-7 + 6-9) / 3
    assert loss["wins"] == 3  # lower is better: every repeat is a win
    # two-sided exact Wilcoxon, 3 pairs all of one sign: 2 * (1/2)^3
    assert loss["p_value"] == pytest.approx(0.25)
    # the same numbers read as a score (higher is better) are three losses, same p-value
    score = compare_to_random(result).loc["greedy"]
    assert score["wins"] == 0 and score["p_value"] == pytest.approx(0.25)

    at = compare_at_labels(result, [10, 20], greater_is_better=False)
    assert at.loc[("greedy", 20), "diff_mean"] == pytest.approx(-2.0)
    assert at.loc[("greedy", 20), "wins"] == 3
    assert at.loc[("greedy", 10), "wins"] == 0 and np.isnan(at.loc[("greedy", 10), "p_value"])
    assert at.loc[("random", 20), "mean"] == pytest.approx(8.0)
    assert pd.isna(at.loc[("random", 20), "wins"])  # the baseline itself
    # between cycles: the last model trained on at most 15 labels, i.e. the one at 10
    assert compare_at_labels(result, 15).loc[("greedy", 15), "mean"] == pytest.approx(9.0)


def test_labels_to_target_of_a_loss():
    assert labels_to_target([10, 20, 30], [9.0, 7.0, 6.0], 7.0, greater_is_better=False) == 20
    assert labels_to_target([10, 20], [9.0, 8.0], 7.0, greater_is_better=False) == np.inf
    summary = summarize(_rmse_curves(), target=7.5, greater_is_better=False)
    assert summary.loc["greedy", "labels_to_target_q50"] == 20
    assert summary.loc["random", "reached"] == pytest.approx(1 / 3)


def test_run_experiment_with_the_regression_metrics():
    X, y = load_diabetes(return_X_y=True)
    X_pool, y_pool, X_test, y_test = X[:120], y[:120], X[300:360], y[300:360]
    metrics = TASKS["regression"].metrics
    learners = {name: ActiveRegressor(Ridge(), strategy, batch_size=5, n_initial=5)
                for name, strategy in (("random", RandomSampling()),
                                       ("greedy", GreedySampling()))}
    result = run_experiment(learners, X_pool, y_pool, X_test, y_test, budget=15, n_repeats=2,
                            scoring=scoring(metrics))
    assert score_columns(metrics) == ["score_r2", "score_rmse"]
    assert (result["score"] == result["score_r2"]).all()
    # RMSE of the last cycle's model, by hand
    last = result[result["learner"] == "greedy"].iloc[-1]
    rows = np.concatenate([np.asarray(i) for i in
                           result[(result["learner"] == "greedy")
                                  & (result["repeat"] == last["repeat"])]["indices"]])
    model = Ridge().fit(X_pool[np.sort(rows)], y_pool[np.sort(rows)])
    assert last["score_rmse"] == pytest.approx(
        root_mean_squared_error(y_test, model.predict(X_test)))
    assert last["score_r2"] == pytest.approx(model.score(X_test, y_test))


def test_the_task_follows_the_data_and_the_model():
    assert task_for("digits", None).kind == "classification"
    assert task_for("diabetes", "random_forest").kind == "regression"
    assert task_for("multilabel", "knn").kind == "multilabel"
    assert task_for("my.csv", "bayesian_ridge").kind == "regression"
    assert task_for("my.csv", "random_forest").kind == "classification"
    with pytest.raises(ValueError, match=r"'naive_bayes' \(a classification model\)"):
        task_for("diabetes", "naive_bayes")


def test_skal_run_regression_multi_output(tmp_path, capsys):
    out = tmp_path / "linnerud"
    status = main(["run", "--data", "linnerud", "--model", "ridge", "--strategies", "random",
                   "greedy", *TINY, "--output", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "3 outputs" in captured.out and "model ridge" in captured.out
    assert "RMSE (lower is better; wins: repeats where the strategy's AULC is lower" in (
        captured.out)
    assert "final R²" in captured.out and "final RMSE" in captured.out
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert {"aulc_mean", "p_value", "rmse_aulc_mean", "rmse_wins", "rmse_p_value"} <= set(
        summary.columns)
    results = pd.read_csv(out / "results.csv")
    assert {"score_r2", "score_rmse"} <= set(results.columns)
    assert sorted(results["n_labels"].unique()) == [6, 9, 12]
    payload = json.loads((out / "results.json").read_text())
    assert payload["metrics"]["rmse"] == {"column": "score_rmse", "greater_is_better": False}
    assert (out / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    assert 'model = "ridge"' in (out / "config.toml").read_text()


def test_skal_run_multilabel(tmp_path, capsys):
    out = tmp_path / "multilabel"
    status = main(["run", "--data", "multilabel", "--pool-size", "60", "--strategies",
                   "random", "multilabel_margin:aggregate=mean", "mmc", *TINY,
                   "--output", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "5 labels" in captured.out
    for label in ("micro-F1 (higher", "macro-F1 (higher", "Hamming loss (lower"):
        assert label in captured.out
    results = pd.read_csv(out / "results.csv")
    assert set(results["learner"]) == {"random", "multilabel_margin:aggregate=mean", "mmc"}
    assert results[["score_f1_micro", "score_f1_macro", "score_hamming"]].notna().all().all()
    assert (results["score"] == results["score_f1_micro"]).all()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "diabetes", "--strategies", "random", "margin"],
         "MarginSampling handles classification targets, but the learner's are regression"),
        (["--data", "multilabel", "--strategies", "variance"],
         "VarianceSampling handles regression targets, but the learner's are multilabel"),
        (["--data", "digits", "--strategies", "mmc"],
         "MMC handles multilabel targets, but the learner's are classification"),
        (["--data", "diabetes", "--model", "naive_bayes"],
         "unknown model 'naive_bayes' (a classification model) for data set 'diabetes'"),
        (["--data", "diabetes", "--strategies", "emcm", "--committee-size", "1"],
         "EMCM needs a committee"),
        (["--data", "linnerud", "--initial-strategy", "balanced"], "needs class labels"),
    ],
)
def test_wrong_task_is_a_one_line_error(tmp_path, capsys, extra, message):
    status = main(["run", *TINY, *extra, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_regression_model_makes_a_csv_a_regression_task(tmp_path):
    from argparse import Namespace

    from skal import CommitteeRegressor
    from skal.experiments._cli import load_data, make_learners, make_model, resolve_options

    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    frame["price"] = frame["a"] * 2
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    options = resolve_options(Namespace(data=str(path), label_column="price",
                                        model="bayesian_ridge"))
    assert options["strategies"] == list(TASKS["regression"].default_strategies)
    X_pool, X_test, y_pool, y_test, name = load_data(options)
    assert y_pool.dtype == np.float64 and name == "prices"
    learners = make_learners(options, make_model(options, 3, None))
    assert type(learners["variance"]).__name__ == "ActiveRegressor"  # BayesianRidge has a std
    assert isinstance(learners["emcm"], CommitteeRegressor)  # EMCM's bootstrap models
    assert learners["emcm"].n_estimators == options["committee_size"]
