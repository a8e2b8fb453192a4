"""End-to-end tests of ``skal run``: exit codes, files written, the table, the errors."""

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from skal._cli import main
from skal.experiments._cli import parse_strategy, strategy_registry

SMALL = ["--data", "iris", "--budget", "24", "--batch-size", "6", "--initial-size", "6",
         "--repeats", "2", "--n-jobs", "1", "--quiet"]


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def test_run_writes_results_table_and_plot(tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["run", *SMALL, "--output", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    for name in ("results.csv", "summary.csv", "results.json", "config.toml",
                 "learning_curves.png"):
        assert (out / name).is_file(), name
    png = (out / "learning_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = captured.out
    for strategy in ("random", "margin", "entropy", "vote_entropy"):
        assert f"\n{strategy} " in table
    assert "AULC" in table and "labels to" in table and "(baseline)" in table
    assert str(out) in table
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4 * 2 * 4  # strategies x repeats x cycles (6, 12, 18, 24)
    assert sorted(results["n_labels"].unique()) == [6, 12, 18, 24]
    assert results["indices"].str.split().str.len().max() == 6
    payload = json.loads((out / "results.json").read_text())
    assert payload["options"]["budget"] == 24
    assert {row["learner"] for row in payload["summary"]} == {
        "random", "margin", "entropy", "vote_entropy"}


def test_config_reruns_exactly(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["run", *SMALL, "--strategies", "random", "least_confidence",
                 "--seed", "3", "--output", str(first)]) == 0
    assert main(["run", "--config", str(first / "config.toml"), "--quiet",
                 "--output", str(second)]) == 0
    a = pd.read_csv(first / "results.csv")
    b = pd.read_csv(second / "results.csv")
    columns = ["learner", "repeat", "seed", "cycle", "n_labels", "score", "indices"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    assert (first / "config.toml").read_text() == (second / "config.toml").read_text()
    assert set(a["learner"]) == {"random", "least_confidence"}
    # the command line overrides the file
    third = tmp_path / "c"
    assert main(["run", "--config", str(first / "config.toml"), "--repeats", "1", "--quiet",
                 "--output", str(third)]) == 0
    assert pd.read_csv(third / "results.csv")["repeat"].nunique() == 1


def test_csv_data_with_label_column(tmp_path, capsys):
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(0, 1, (60, 3)), rng.normal(2, 1, (60, 3))])
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["kind"] = ["x"] * 60 + ["y"] * 60
    path = tmp_path / "blobs.csv"
    frame.to_csv(path, index=False)
    status = main(["run", "--data", str(path), "--label-column", "kind", "--strategies",
                   "random", "margin:random_state=1", "--budget", "20", "--batch-size", "5",
                   "--initial-size", "5", "--repeats", "2", "--quiet", "--n-jobs", "1",
                   "--model", "naive_bayes", "--target", "0.8", "--output",
                   str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "blobs" in captured.out and "labels to 0.8" in captured.out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strategies", "random", "clairvoyant"], "unknown strategy 'clairvoyant'"),
        (["--strategies", "margin:depth=3"], "has no parameter depth"),
        (["--strategies", "margin:3"], "not KEY=VALUE"),
        (["--data", "no/such/file.csv"], "data file not found"),
        (["--data", "nonsense"], "unknown data set"),
        (["--model", "transformer"], "unknown model"),
        (["--strategies", "vote_entropy", "--committee-size", "1"], "single model"),
        (["--budget", "0"], "--budget must be a positive integer"),
        (["--initial-size", "50", "--budget", "20"], "larger than --budget"),
        (["--config", "missing.toml"], "config file not found"),
        (["--embedding", "contrastive"], "needs square greyscale images"),
        (["--embedding", "contrastive", "--model", "mlp"], "drop --embedding"),
        (["--embedding-epochs", "0"], "--embedding-epochs must be a positive integer"),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, extra, message):
    status = main(["run", *SMALL, "--output", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


@pytest.mark.parametrize("strategy", ["random", "margin"])
def test_a_single_strategy_runs(tmp_path, capsys, strategy):
    # one strategy alone: nothing to compare with random, but still a table (was a KeyError)
    assert main(["run", *SMALL, "--strategies", strategy, "--output", str(tmp_path)]) == 0
    assert f"\n{strategy} " in capsys.readouterr().out


def test_semi_supervised_model_with_typiclust_cold_start(tmp_path, capsys):
    # The best cheap combination of docs/semisupervised.rst: label spreading (fitted on the
    # labelled rows and every unlabelled pool row) with TypiClust's cold start.
    out = tmp_path / "out"
    status = main(["run", "--model", "label_spreading", "--initial-strategy", "typiclust",
                   "--strategies", "random", "typiclust", "--budget", "20", "--batch-size",
                   "10", "--initial-size", "10", "--repeats", "2", "--n-jobs", "1", "--quiet",
                   "--output", str(out)])
    assert status == 0, capsys.readouterr().err
    results = pd.read_csv(out / "results.csv")
    first = results[results["cycle"] == 0].set_index(["learner", "repeat"])["indices"]
    # the initial rows are TypiClust's, shared by the strategies of a repeat (paired)
    assert first["random", 0] == first["typiclust", 0]
    assert first["random", 1] == first["typiclust", 1]
    # ten typical rows of ten clusters cover most digits, and spreading their labels over
    # the pool's kNN graph already gives a useful model (logistic regression on the same
    # ten labelled rows: about 0.6)
    initial = results[results["cycle"] == 0]
    assert initial["score"].min() > 0.7
    assert "labels to" in capsys.readouterr().out


def test_label_spreading_with_an_uncertainty_strategy(tmp_path, capsys):
    # With 20 random labels parts of the kNN graph reach no label: their distribution is
    # 0/0 in scikit-learn's LabelSpreading, which margin sampling must not be handed.
    status = main(["run", "--model", "label_spreading", "--strategies", "margin",
                   "--budget", "40", "--initial-size", "20", "--repeats", "2", "--n-jobs", "1",
                   "--quiet", "--output", str(tmp_path)])
    assert status == 0, capsys.readouterr().err


def test_unreached_rows_get_the_class_frequencies():
    from skal.experiments._recipes import ReachingLabelSpreading

    # two far-apart groups of 5 rows; the three labels are all in the first group
    X = np.vstack([np.arange(5.0)[:, None], 100 + np.arange(5.0)[:, None]])
    y = np.array([0, 1, 1, -1, -1, -1, -1, -1, -1, -1])
    model = ReachingLabelSpreading(kernel="knn", n_neighbors=2).fit(X, y)
    proba = model.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(model.label_distributions_[5:], [[1 / 3, 2 / 3]] * 5)
    assert model.transduction_[5:].tolist() == [1] * 5


@pytest.mark.slow  # pretrains an encoder: end to end, in the slow set
def test_contrastive_embedding_option(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "out"
    status = main(["run", "--embedding", "contrastive", "--embedding-epochs", "1",
                   "--pool-size", "300", "--model", "label_spreading", "--strategies",
                   "random", "--budget", "20", "--batch-size", "10", "--initial-size", "10",
                   "--repeats", "1", "--n-jobs", "1", "--quiet", "--output", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "contrastive encoder pretrained on 300 pool images" in captured.out
    assert 'embedding = "contrastive"' in (out / "config.toml").read_text()
    assert pd.read_csv(out / "results.csv")["n_labels"].max() == 20


def test_missing_label_column_and_bad_config(tmp_path, capsys):
    path = tmp_path / "d.csv"
    pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}).to_csv(path, index=False)
    assert main(["run", "--data", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "label column 'label' is not in d.csv; its columns are: a, y" in err
    config = tmp_path / "c.toml"
    config.write_text('budgte = 10\n')
    assert main(["run", "--config", str(config)]) == 2
    assert "unknown option(s) budgte" in capsys.readouterr().err


def test_bayesian_strategy_needs_posterior_samples(tmp_path, capsys):
    if "BALD" not in {cls.__name__ for cls in strategy_registry().values()}:
        pytest.skip("BALD is not in skal.strategies yet")
    assert main(["run", *SMALL, "--strategies", "bald", "--output", str(tmp_path)]) == 2
    assert "needs posterior samples" in capsys.readouterr().err


def test_strategy_names():
    registry = strategy_registry()
    assert registry["margin"] is registry["MarginSampling"] is registry["margin_sampling"]
    assert registry["kl_divergence"].__name__ == "KLDivergence"
    strategy = parse_strategy("random:random_state=7")
    assert strategy.get_params()["random_state"] == 7


@pytest.mark.slow
def test_help_and_list_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "skal._cli", "run", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--data", "--strategies", "--budget", "--config", "--n-jobs", "--device"):
        assert option in result.stdout
    listed = subprocess.run([sys.executable, "-m", "skal._cli", "run", "--list"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "vote_entropy" in listed.stdout


@pytest.mark.slow
def test_end_to_end_subprocess(tmp_path):
    env_out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "skal._cli", "run", *SMALL, "--strategies", "random",
         "entropy", "--output", str(env_out)],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr
    assert "entropy" in result.stdout and (env_out / "learning_curves.png").stat().st_size > 0
    bad = subprocess.run([sys.executable, "-m", "skal._cli", "run", "--strategies", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr


def _listed_strategies(capsys):
    assert main(["run", "--list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("strategies:"))
    return [name.strip() for name in line.partition(":")[2].split(",")]


def test_one_name_per_strategy_everywhere(capsys):
    from skal.experiments._cli import strategy_name
    from skal.experiments._tasks import TASKS

    registry = strategy_registry()
    classes = set(registry.values())
    listed = _listed_strategies(capsys)
    # --list shows each strategy once, by the name the default list and the tables use
    assert sorted(listed) == sorted({strategy_name(cls) for cls in classes})
    assert len(listed) == len(classes)
    assert {"random", "margin", "entropy", "vote_entropy"} <= set(listed)
    assert not {"margin_sampling", "random_sampling", "MarginSampling"} & set(listed)
    for task in TASKS.values():  # every task's default strategies, by their one names
        assert {spec.partition(":")[0] for spec in task.default_strategies} <= set(listed)
    for name in listed:
        assert registry[name] is registry[registry[name].__name__]
    # the error for an unknown name offers the same names
    with pytest.raises(ValueError, match=r"known: (\w+, )+\w+$") as error:
        parse_strategy("clairvoyant")
    assert sorted(str(error.value).partition("known: ")[2].split(", ")) == sorted(listed)


def test_aliases_are_accepted_but_shown_by_their_one_name(tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["run", *SMALL, "--strategies", "random_sampling", "MarginSampling",
                   "entropy_sampling:random_state=1", "--output", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "\nrandom " in captured.out and "\nmargin " in captured.out
    assert "\nentropy:random_state=1 " in captured.out
    assert "_sampling" not in captured.out and "MarginSampling" not in captured.out
    results = pd.read_csv(out / "results.csv")
    assert set(results["learner"]) == {"random", "margin", "entropy:random_state=1"}
    assert set(results["strategy"]) == {"random", "margin", "entropy"}
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.iloc[:, 0]) == {"random", "margin", "entropy:random_state=1"}
    assert 'strategies = ["random", "margin", "entropy:random_state=1"]' in (
        out / "config.toml").read_text()
    # two spellings of one strategy are one strategy
    assert main(["run", *SMALL, "--strategies", "margin", "margin_sampling",
                 "--output", str(tmp_path / "twice")]) == 2
    assert "'margin' is given twice" in capsys.readouterr().err


def test_docs_and_configs_use_the_listed_strategy_names(capsys):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(_listed_strategies(capsys))
    texts = [root / "README.md", *sorted((root / "docs").glob("*.rst")),
             *sorted((root / "examples" / "configs").glob("*.toml"))]
    used = {}
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"--strategies((?:[ \t]+'?[\w:=.,]+'?)+)", text):
            if "deep_methods.py" in text[max(match.start() - 200, 0):match.start()]:
                continue  # that benchmark names its own runs (e.g. learning_loss_subset)
            for spec in match.group(1).split():
                used.setdefault(spec.strip("'").partition(":")[0], path.name)
        for match in re.finditer(r"^strategies\s*=\s*\[(.*)\]", text, re.MULTILINE):
            for spec in re.findall(r'"([^"]+)"', match.group(1)):
                used.setdefault(spec.partition(":")[0], path.name)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = capsys.readouterr().out
    for match in re.finditer(r"^\s+skal run .*--strategies ([^-#\n]+)", help_text, re.MULTILINE):
        for spec in match.group(1).split():
            used.setdefault(spec.strip("'").partition(":")[0], "skal run --help")
    assert {"random", "margin", "bald"} <= set(used)
    unknown = {name: where for name, where in used.items() if name not in listed}
    assert not unknown, unknown


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--modle", "logreg"],
         "unrecognized arguments: --modle logreg (did you mean --model?)"),
        (["run", "--budget", "10", "--quite"],
         "unrecognized arguments: --quite (did you mean --quiet?)"),
        (["label", "pool.csv", "--journal", "j.sqlite", "--classes", "a,b", "--resmue"],
         "unrecognized arguments: --resmue (did you mean --resume?)"),
        (["label", "pool.csv", "--journal", "j.sqlite", "--classes", "a,b", "extra.csv"],
         "unrecognized arguments: extra.csv"),
    ],
)
def test_a_mistyped_option_shows_the_subcommand_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: skal {argv[0]} "), err
    assert err.rstrip().endswith(f"skal {argv[0]}: error: {message}"), err
