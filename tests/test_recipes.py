"""skal.experiments' protocol pieces (balanced initial set, early stopping, fixed-length
epochs) and the ``skal run`` options built on them."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from skal import ActiveLearner, MarginSampling, RandomSampling
from skal._cli import main
from skal.experiments import BalancedInitialSet, class_balanced_rows


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def test_class_balanced_rows_counts_and_seed():
    y = np.repeat(np.array(["a", "b", "c"]), [5, 3, 9])
    rows = class_balanced_rows(y, 2, random_state=0)
    assert rows.shape == (6,) and np.unique(rows).size == 6
    assert y[rows].tolist() == ["a", "a", "b", "b", "c", "c"]
    np.testing.assert_array_equal(rows, class_balanced_rows(y, 2, random_state=0))
    draws = {tuple(class_balanced_rows(y, 2, random_state=s)) for s in range(10)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="fewer than n_per_class"):
        class_balanced_rows(y, 4)
    with pytest.raises(ValueError, match="positive integer"):
        class_balanced_rows(y, 0)


def test_balanced_initial_set_is_shared_by_strategies_with_one_seed():
    X, y = load_digits(return_X_y=True)
    initial = BalancedInitialSet(y, n_per_class=2)
    runs = {}
    for name, strategy in [("margin", MarginSampling()), ("random", RandomSampling())]:
        learner = ActiveLearner(query_strategy=strategy, budget=30, n_initial=20, batch_size=10,
                                initial_strategy=initial, random_state=3).fit(X, y)
        runs[name] = learner.labeled_indices_
        assert np.bincount(y[learner.labeled_indices_[:20]]).tolist() == [2] * 10
    np.testing.assert_array_equal(runs["margin"][:20], runs["random"][:20])
    other = ActiveLearner(budget=20, n_initial=20, initial_strategy=initial,
                          random_state=4).fit(X, y)
    assert set(other.labeled_indices_) != set(runs["margin"][:20])
    with pytest.raises(ValueError, match="n_per_class=2 x 10 classes"):
        ActiveLearner(budget=30, n_initial=15, initial_strategy=initial,
                      random_state=0).fit(X, y)


def test_early_stopping_params_stop_and_keep_the_best_epoch():
    pytest.importorskip("skorch")
    from skal.experiments import early_stopping_params
    from skal.nets import MLP, NetClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    net = NetClassifier(MLP, max_epochs=60, lr=0.05, device="cpu", random_state=0,
                        classes=np.arange(10),
                        **early_stopping_params(X[1000:1300], y[1000:1300], patience=2,
                                                epoch_samples=256))
    net.fit(X[:40], y[:40])
    accuracy = np.asarray(net.history[:, "valid_accuracy"])
    assert accuracy.size < 60  # stopped early
    best = int(np.argmax(accuracy))
    assert accuracy.size - 1 - best == 2  # after `patience` epochs without improvement
    # the best epoch's weights are restored
    assert np.isclose((net.predict(X[1000:1300]) == y[1000:1300]).mean(), accuracy[best])
    # every epoch drew 256 rows: 4 batches of 64
    for epoch in net.history:
        assert [b["train_batch_size"] for b in epoch["batches"] if "train_loss" in b] == [64] * 4


SMALL_NET = ["--data", "digits", "--model", "mlp", "--budget", "40", "--batch-size", "10",
             "--initial-size", "20", "--repeats", "2", "--n-jobs", "1", "--quiet",
             "--epochs", "4", "--mc-samples", "4"]


@pytest.mark.slow  # two end-to-end `skal run`s of a network: the slowest test of the set
def test_cli_balanced_initial_set_validation_and_config(tmp_path, capsys):
    pytest.importorskip("skorch")
    out = tmp_path / "out"
    status = main(["run", *SMALL_NET, "--strategies", "random", "bald",
                   "--initial-strategy", "balanced", "--validation-size", "200",
                   "--patience", "1", "--epoch-samples", "128", "--lr", "0.01",
                   "--output", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "200 validation rows" in captured.out and "20 balanced initial" in captured.out
    results = pd.read_csv(out / "results.csv")
    first = results[results["cycle"] == 0].set_index(["learner", "repeat"])["indices"]
    for repeat in (0, 1):
        assert first["random", repeat] == first["bald", repeat]  # same initial rows
    assert first["random", 0] != first["random", 1]
    config = (out / "config.toml").read_text()
    for line in ('initial_strategy = "balanced"', "validation_size = 200", "patience = 1",
                 "epoch_samples = 128", "mc_samples = 4", "lr = 0.01"):
        assert line in config
    again = tmp_path / "again"
    assert main(["run", "--config", str(out / "config.toml"), "--quiet",
                 "--output", str(again)]) == 0
    columns = ["learner", "repeat", "cycle", "n_labels", "score", "indices"]
    pd.testing.assert_frame_equal(results[columns], pd.read_csv(again / "results.csv")[columns])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--initial-strategy", "balanced", "--initial-size", "15"], "multiple of the 10"),
        (["--validation-size", "50"], "--validation-size is for early stopping"),
        (["--validation-size", "-1", "--model", "mlp"], "non-negative integer"),
        (["--mc-samples", "0"], "--mc-samples must be a positive integer"),
    ],
)
def test_cli_protocol_option_errors(tmp_path, capsys, extra, message):
    args = ["run", "--data", "digits", "--strategies", "random", "--budget", "30",
            "--repeats", "1", "--n-jobs", "1", "--quiet", "--output", str(tmp_path / "o")]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
