"""The tabular benchmark recipe: the protocol's split, AUBC and US-NC query model by hand, and
(when the data folder is there) a resumable run and ``skal run --config``."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from skal import ActiveLearner, EntropySampling, LeastConfidence, MarginSampling
from skal.experiments import (
    QueryModel,
    load_benchmark_data,
    protocol_aubc,
    protocol_split,
    run_tabular_benchmark,
)
from skal.experiments._tabular_benchmark import (
    PAPER_AUBC,
    compare_strategies,
    load_repetitions,
    run_repetition,
    summarize_tabular_benchmark,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "al-benchmark"
needs_data = pytest.mark.skipif(
    not (DATA / "sonar.csv").is_file(),
    reason=f"the benchmark data folder {DATA} is absent",
)


def test_aubc_is_the_papers_trapezoid_over_q():
    # (0.5 + 0.7) / 2 + (0.7 + 0.9) / 2 = 1.4, over Q = 3 queries
    assert protocol_aubc([0.5, 0.7, 0.9]) == pytest.approx(1.4 / 3)
    assert protocol_aubc([0.8]) == 0.0


def test_split_follows_the_benchmarks_generators():
    X = np.arange(100.0).reshape(50, 2)
    y = np.arange(50) % 2
    split = protocol_split(X, y, seed=3)
    order = np.arange(50)
    np.random.default_rng(3).shuffle(order)
    positions = np.arange(30)
    np.random.default_rng(3).shuffle(positions)
    assert np.array_equal(split["y_pool"], y[order[:30]])
    assert np.array_equal(split["y_test"], y[order[30:]])
    assert np.array_equal(split["initial_rows"], np.sort(positions[:20]))
    # StandardScaler fit on the whole pool
    np.testing.assert_allclose(split["X_pool"].mean(axis=0), 0, atol=1e-12)
    assert protocol_split(X, np.zeros(50, dtype=int), seed=0) is None  # one class: skipped


def test_us_nc_picks_with_a_query_model_of_its_own():
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    labeled = np.arange(12)
    learner = ActiveLearner(SVC(), batch_size=3).fit(X[labeled], y[labeled])
    pool = X[12:]
    picks = {}
    for strategy in (EntropySampling(), MarginSampling(), LeastConfidence()):
        picks[type(strategy).__name__] = QueryModel(
            strategy, LogisticRegression(C=0.1), random_state=0)(learner, pool, 3)
    # by hand: the most uncertain rows of the logistic model fitted on the labelled rows
    proba = LogisticRegression(C=0.1).fit(X[labeled], y[labeled]).predict_proba(pool)
    expected = np.argsort(np.abs(proba[:, 1] - 0.5), kind="stable")[:3]
    # binary: entropy, margin and least confidence rank alike
    for found in picks.values():
        assert np.array_equal(found, expected)


@needs_data
def test_benchmark_files_load_with_the_readmes_shapes():
    X, y = load_benchmark_data(DATA, "sonar")
    assert X.shape == (208, 60) and np.bincount(y).tolist() == [111, 97]
    assert set(PAPER_AUBC["sonar"]) == {"random", "decision_margin", "entropy"}


@needs_data
def test_a_run_resumes_and_summarizes(tmp_path, capsys):
    kwargs = {"datasets": ["sonar"], "strategies": ["random", "decision_margin"],
              "batch_sizes": [10], "n_repetitions": 2, "progress": False}
    assert run_tabular_benchmark(DATA, tmp_path, **kwargs) == 4
    assert run_tabular_benchmark(DATA, tmp_path, **kwargs) == 0  # every file is there
    result = json.loads(next(tmp_path.glob("runs/sonar/random-b10-s000.json")).read_text())
    n_pool = int(0.6 * 208)
    assert result["n_rounds"] == -(-(n_pool - 20) // 10)
    assert len(result["picks"]) == n_pool - 20
    assert result["aubc"] == pytest.approx(
        protocol_aubc(np.asarray(result["n_correct"]) / result["n_test"]))
    repetitions = load_repetitions(tmp_path)
    summary = summarize_tabular_benchmark(repetitions)
    assert summary["n_repetitions"].tolist() == [2, 2]
    assert summary["paper_aubc_mean"].isna().all()  # the paper has batch size 1 only
    table = compare_strategies(repetitions, min_repetitions=2)
    assert set(table["strategy"]) == {"random", "decision_margin"}
    # two seeds are fewer than the default five: sonar does not enter the table yet
    assert compare_strategies(repetitions).empty


@needs_data
def test_a_repetition_with_the_protocols_batch_size():
    result = run_repetition(DATA, "sonar", "decision_margin", 1, seed=0)
    assert result["n_rounds"] == int(0.6 * 208) - 20
    assert 0.6 < result["aubc"] < 0.9


@needs_data
def test_skal_run_config_runs_the_recipe(tmp_path, capsys):
    from skal._cli import main

    config = tmp_path / "bench.toml"
    config.write_text(
        'recipe = "tabular_benchmark"\n'
        f'data = "{DATA.as_posix()}"\n'
        'datasets = ["sonar"]\nstrategies = ["random"]\nbatch_size = 20\nrepeats = 1\n'
    )
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--output", str(out), "--quiet"]) == 0
    assert (out / "summary.csv").is_file() and (out / "config.toml").is_file()
    assert "sonar" in capsys.readouterr().out


def test_compare_strategies_by_hand():
    # Data set "a": 6 seeds; margin beats random on every seed (Wilcoxon, 6 pairs all one
    # sign: p = 2 / 2^6 = 0.031 < 0.05, a win), coreset is random plus or minus 0.125 in turn
    # (a tie, and the same mean). Data set "b": coreset ran 4 seeds only, fewer than 5, so
    # "b" is left out. (Values are binary fractions, so the means tie exactly.)
    import pandas as pd

    rows = []
    for seed in range(6):
        rows += [("a", "random", seed, 0.75), ("a", "margin", seed, 0.875 + seed / 1024),
                 ("a", "coreset", seed, 0.75 + (0.125 if seed % 2 else -0.125))]
        rows += [("b", "random", seed, 0.9), ("b", "margin", seed, 0.5)]
        if seed < 4:
            rows.append(("b", "coreset", seed, 0.99))
    repetitions = pd.DataFrame(rows, columns=["dataset", "strategy", "seed", "aubc"])
    repetitions["batch_size"] = 1
    table = compare_strategies(repetitions).set_index("strategy")
    assert table["n_datasets"].tolist() == [1, 1, 1]
    assert table["n_repetitions"].tolist() == [6, 6, 6]
    # mean AUBC on "a": margin 0.877, coreset 0.75, random 0.75 (tied ranks share 2.5)
    assert table.loc["margin", "mean_rank"] == 1.0
    assert table.loc["coreset", "mean_rank"] == table.loc["random", "mean_rank"] == 2.5
    assert table.loc["margin", ["wins", "ties", "losses"]].tolist() == [1, 0, 0]
    assert table.loc["coreset", ["wins", "ties", "losses"]].tolist() == [0, 1, 0]
    # with a minimum of 4, "b" counts too, on its 4 common seeds
    table = compare_strategies(repetitions, min_repetitions=4).set_index("strategy")
    assert table["n_datasets"].tolist() == [2, 2, 2]
    assert table.loc["coreset", "mean_rank"] == (2.5 + 1) / 2
