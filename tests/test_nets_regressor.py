"""skal.nets.NetRegressor: the skorch regressor's scikit-learn manners, its MC-dropout
standard deviation and samples, and the regressor inside grid searches."""

import pickle
from functools import partial

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from sklearn.base import clone, is_regressor  # noqa: E402
from sklearn.datasets import make_friedman1, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from torch import nn  # noqa: E402

from skal.nets import MLP, NetRegressor, TrainingDivergedError  # noqa: E402

cuda = pytest.mark.cuda


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Tiny networks run several times faster on one thread than on two contended cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(**params):
    # The module's test-sized defaults live in the module, not in module__* parameters, which
    # scikit-learn's checks would take for attributes set in __init__.
    defaults = dict(module=partial(MLP, hidden_units=(16,), dropout=0.1), max_epochs=10,
                    lr=0.02, batch_size=32, n_samples=4, random_state=0)
    return NetRegressor(**{**defaults, **params})


@pytest.fixture(scope="module")
def data():
    X, y = make_regression(n_samples=150, n_features=5, n_informative=3, noise=1.0,
                           random_state=0)
    return X.astype(np.float32), ((y - y.mean()) / y.std()).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(data):
    return tiny_net(module__dropout=0.3).fit(*data)


# ---------------------------------------------------------------------- scikit-learn checks
# In the slow set: NetClassifier's own checks run in the default set, and the two share their
# scikit-learn plumbing (skal/nets/_base.py).
@pytest.mark.slow
@parametrize_with_checks(
    [tiny_net(max_epochs=5)],
    expected_failed_checks=lambda est: {
        "check_methods_subset_invariance": "a float32 Linear layer with one output can give "
        "last-bit differences between batch sizes (BLAS), above the check's 1e-7 tolerance",
    },
)
def test_sklearn_compatible_net(estimator, check):
    check(estimator)


def test_a_regressor_without_probabilities():
    net = tiny_net()
    assert is_regressor(net)
    assert get_tags(net).target_tags.multi_output
    # Strategies for classifiers read predict_proba as a capability.
    assert not hasattr(net, "predict_proba")
    with pytest.raises(AttributeError, match="regressor.*return_std=True"):
        net.predict_proba  # noqa: B018


# ---------------------------------------------------------------------- MC dropout
def test_mc_std_is_zero_without_dropout_probability_and_positive_with_it(data):
    X, y = data
    still = tiny_net(module__dropout=0.0).fit(X, y)
    mean, std = still.predict(X, return_std=True)
    assert_array_equal(std, 0)
    assert_allclose(mean, still.predict(X), atol=1e-6)
    noisy = tiny_net(module__dropout=0.3).fit(X, y)
    mean, std = noisy.predict(X, return_std=True)
    assert mean.dtype == std.dtype == np.float64
    assert (std > 0).all()
    # The mean and std are those of predict_samples' n_samples passes.
    samples = noisy.predict_samples(X).astype(np.float64)
    assert_allclose(mean, samples.mean(axis=0))
    assert_allclose(std, samples.std(axis=0))


def test_sample_mean_approaches_predict_on_a_linear_net(data):
    X, y = data
    # Inverted dropout on the inputs of a linear layer is unbiased: E[sample] = prediction.
    net = tiny_net(module=nn.Sequential(nn.Dropout(0.2), nn.Linear(5, 1))).fit(X, y)
    samples = net.predict_samples(X[:20], n_samples=4000).astype(np.float64)
    assert samples.shape == (4000, 20)
    error = np.abs(samples.mean(axis=0) - net.predict(X[:20]))
    assert (error < 5 * samples.std(axis=0) / np.sqrt(4000)).all()
    assert (samples.std(axis=0) > 0.01).all()
    # Fewer passes are further off: the mean does approach the prediction.
    few = net.predict_samples(X[:20], n_samples=10).astype(np.float64)
    assert error.mean() < np.abs(few.mean(axis=0) - net.predict(X[:20])).mean()


def test_consistent_masks_and_same_seed_same_samples(data):
    X, y = data
    torch_state = torch.get_rng_state()
    a = tiny_net(random_state=3, module__dropout=0.3).fit(X, y)
    samples = a.predict_samples(X, n_samples=6)
    assert torch.equal(torch.get_rng_state(), torch_state)
    b = tiny_net(random_state=3, module__dropout=0.3).fit(X, y)
    assert_array_equal(a.predict(X), b.predict(X))
    assert_array_equal(samples, b.predict_samples(X, n_samples=6))
    assert_array_equal(samples, a.predict_samples(X, n_samples=6))
    assert not np.allclose(a.predict(X), tiny_net(random_state=4).fit(X, y).predict(X))
    # Every row of pass k went through the same sampled network.
    same_row = a.predict_samples(np.repeat(X[:1], 7, axis=0), n_samples=6)
    assert_array_equal(same_row, np.broadcast_to(same_row[:, :1], same_row.shape))
    assert np.unique(same_row[:, 0]).size == 6


def test_shared_prefix_matches_full_replication(fitted, data):
    X, _ = data
    full = pickle.loads(pickle.dumps(fitted))
    full._mc_expansion = "replicate"
    assert_allclose(fitted.predict_samples(X, n_samples=5),
                    full.predict_samples(X, n_samples=5), atol=1e-6)


@pytest.mark.parametrize("n_outputs", [None, 1, 3])
def test_shapes_follow_y(data, n_outputs):
    X, y = data
    Y = y if n_outputs is None else np.column_stack([y * (k + 1) for k in range(n_outputs)])
    net = tiny_net(max_epochs=2).fit(X, Y)
    assert net.n_outputs_ == (n_outputs or 1)
    assert net.module_.output.out_features == net.n_outputs_
    rows = Y[:7].shape
    assert net.predict(X[:7]).shape == rows
    assert [part.shape for part in net.predict(X[:7], return_std=True)] == [rows, rows]
    assert net.predict_samples(X[:7], n_samples=3).shape == (3, *rows)
    assert net.transform(X[:7]).shape == (7, 16)


def test_transform_is_the_penultimate_layer(fitted, data):
    X, _ = data
    embedding = fitted.transform(X)
    output = fitted.module_.output
    linear = embedding @ output.weight.detach().numpy().T + output.bias.detach().numpy()
    assert_allclose(linear[:, 0], fitted.predict(X), atol=1e-5)


# ---------------------------------------------------------------------- learning
def test_learns_regression_data(data):
    X, y = data
    net = tiny_net(max_epochs=30, module__hidden_units=(32,)).fit(X[:100], y[:100])
    assert net.score(X[100:], y[100:]) > 0.9
    X, y = make_friedman1(n_samples=300, noise=0.5, random_state=0)
    y = (y - y.mean()) / y.std()
    net = tiny_net(max_epochs=40, module__hidden_units=(32,)).fit(X[:200], y[:200])
    # A linear model reaches about 0.7 here; the network must at least learn something real.
    assert net.score(X[200:], y[200:]) > 0.6


def test_warm_start_continues_unless_the_outputs_change(data):
    X, y = data
    net = tiny_net(warm_start=True, max_epochs=2).fit(X, y)
    module = net.module_
    net.fit(X, y)
    assert net.module_ is module and len(net.history_) == 4
    net.fit(X, np.column_stack([y, y]))
    assert net.module_ is not module and net.n_outputs_ == 2
    with pytest.raises(ValueError, match="y has 1 outputs, but the network was built for 2"):
        net.partial_fit(X, y)


def test_clone_and_grid_search(data):
    X, y = data
    net = tiny_net(module__hidden_units=(8,))
    copy = clone(net)
    assert copy.get_params()["module__hidden_units"] == (8,)
    assert not hasattr(copy, "module_")
    search = GridSearchCV(tiny_net(max_epochs=5), {"module__hidden_units": [(4,), (12,)]},
                          cv=2).fit(X, y)
    width = search.best_params_["module__hidden_units"][0]
    assert search.best_estimator_.module_.output.in_features == width
    assert search.predict(X[:3]).shape == (3,)


# ---------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors(data, fitted):
    X, y = data
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tiny_net().fit(X, y_nan)
    with pytest.raises(ValueError, match="too large for float32.*scale the targets"):
        tiny_net().fit(X, np.full_like(y, 1e39, dtype=np.float64))
    with pytest.raises(ValueError, match="X has 4 features, but NetRegressor is expecting 5"):
        fitted.predict(X[:, :4])
    plain = tiny_net(module=nn.Sequential(nn.Linear(5, 1))).fit(X, y)
    with pytest.raises(ValueError, match="needs dropout layers.*CommitteeRegressor"):
        plain.predict(X, return_std=True)
    with pytest.warns(UserWarning, match="no dropout layers"):
        plain.predict_samples(X[:3])
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        fitted.predict_samples(X, n_samples=0)


def overflowing(X):
    return (X / np.abs(X).max() * 3e38).astype(np.float32)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_diverged_training_is_an_error(data):
    X, y = data
    with pytest.raises(TrainingDivergedError, match="at epoch 1"):
        tiny_net().fit(overflowing(X), y)


def test_inference_never_returns_non_finite_values(data):
    X, y = data
    net = tiny_net().fit(X, y)
    with torch.no_grad():
        next(net.module_.parameters()).view(-1)[0] = float("nan")
    for method in ("predict", "predict_samples", "transform"):
        with pytest.raises(ValueError, match="non-finite .*weights are non-finite"):
            getattr(net, method)(X)
    with pytest.raises(ValueError, match="non-finite .*weights are non-finite"):
        net.predict(X, return_std=True)


def test_validation_split_scoring_works(data):
    # skorch scores a validation split by calling predict on its own Dataset.
    from skorch.callbacks import EpochScoring
    from skorch.dataset import ValidSplit

    X, y = data
    net = tiny_net(train_split=ValidSplit(5), max_epochs=3,
                   callbacks=[EpochScoring("r2", lower_is_better=False)]).fit(X, y)
    assert np.isfinite(net.history[-1, "valid_loss"]) and net.history[-1, "r2"] <= 1.0


# ---------------------------------------------------------------------- CUDA
@cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_samples_match_cpu(data):
    X, y = data
    gpu = tiny_net(device="cuda", module__dropout=0.3).fit(X, y)
    assert next(gpu.module_.parameters()).is_cuda
    samples = gpu.predict_samples(X, n_samples=6)
    mean, std = gpu.predict(X, return_std=True)
    assert isinstance(samples, np.ndarray) and (std > 0).all()
    cpu = pickle.loads(pickle.dumps(gpu))
    cpu.module_.to("cpu")
    # Masks are drawn on the CPU from the seed, so both devices sample the same networks.
    assert_allclose(cpu.predict_samples(X, n_samples=6), samples, atol=1e-4)
    assert_allclose(cpu.predict(X), gpu.predict(X), atol=1e-4)


# ---------------------------------------------------------------------- inside skal's learners
def test_active_regressor_queries_the_largest_mc_dropout_variance(data):
    from skal import ActiveRegressor
    from skal.strategies import VarianceSampling

    X, y = data
    learner = ActiveRegressor(
        tiny_net(module__dropout=0.2, max_epochs=30, n_samples=8),
        query_strategy=VarianceSampling(random_state=0),
        budget=60,
        n_initial=20,
        batch_size=10,
        random_state=0,
    ).fit(X[:120], y[:120])
    assert learner.n_labels_ == 60
    queries = [record for record in learner.history_ if record["event"] == "query"]
    assert [record["n_labels"] for record in queries] == [30, 40, 50, 60]
    assert learner.score(X[120:], y[120:]) > 0.8
    # The picks are the pool rows whose MC-dropout variance is largest.
    _, std = learner.estimator_.predict(X[120:], return_std=True)
    picked = learner.query(X[120:], 5)
    assert set(picked) == set(np.argsort(-std)[:5])
