"""Learning loss (Yoo & Kweon 2019): the ranking loss and the module against the paper's
formulas by hand, the joint training (taps, detaching), the strategy and its errors."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from scipy.stats import spearmanr  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from skal import ActiveLearner  # noqa: E402
from skal.nets import (  # noqa: E402
    MLP,
    LearningLossClassifier,
    LossPredictionModule,
    MNISTConvNet,
    loss_ranking_loss,
)
from skal.nets._learning_loss import default_loss_layers  # noqa: E402
from skal.strategies import LearningLoss, RandomSampling  # noqa: E402

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS = (X_DIGITS / 16).astype(np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(**params):
    defaults = dict(module__hidden_units=(16,), loss_hidden_units=8, max_epochs=3,
                    batch_size=32, random_state=0)
    return LearningLossClassifier(**{**defaults, **params})


# ------------------------------------------------------------------ the paper's formulas
def test_ranking_loss_by_hand():
    # pairs (0, 2) and (1, 3): L = max(0, -s (l^_i - l^_j) + xi), s = +1 if l_i > l_j else -1
    predicted = torch.tensor([0.5, 2.0, 1.0, 0.0])
    target = torch.tensor([3.0, 1.0, 2.0, 2.0])
    # (0, 2): s = +1, gap -0.5 -> 1.5;  (1, 3): s = -1, gap 2.0 -> 3.0
    assert float(loss_ranking_loss(predicted, target)) == pytest.approx((1.5 + 3.0) / 2)
    # margin 0.25: 0.75 and 2.25
    assert float(loss_ranking_loss(predicted, target, margin=0.25)) == pytest.approx(1.5)
    # a pair ranked right by more than the margin costs nothing; a tie counts as s = -1
    assert float(loss_ranking_loss(torch.tensor([3.0, 0.5]), torch.tensor([2.0, 1.0]))) == 0
    assert float(loss_ranking_loss(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0]))) == 1
    # an odd row out is unpaired; a single row has no pair
    assert float(loss_ranking_loss(torch.tensor([0.5, 2.0, 9.0]),
                                   torch.tensor([3.0, 1.0, 0.0]))) == pytest.approx(2.5)
    assert float(loss_ranking_loss(torch.tensor([1.0]), torch.tensor([1.0]))) == 0


def test_ranking_loss_equals_torch_margin_ranking_loss_without_ties():
    rng = np.random.RandomState(0)
    predicted = torch.tensor(rng.normal(size=10))
    target = torch.tensor(rng.exponential(size=10))
    sign = torch.sign(target[:5] - target[5:])
    reference = torch.nn.functional.margin_ranking_loss(predicted[:5], predicted[5:], sign,
                                                        margin=1.0)
    assert float(loss_ranking_loss(predicted, target)) == pytest.approx(float(reference))


def test_ranking_loss_sends_no_gradient_to_the_targets():
    target = torch.tensor([3.0, 1.0], requires_grad=True)
    predicted = torch.tensor([0.0, 0.5], requires_grad=True)
    loss_ranking_loss(predicted, target).backward()
    assert target.grad is None
    # d/dl^_0 of max(0, -(l^_0 - l^_1) + 1) = -1, halved by nothing (one pair)
    assert predicted.grad.tolist() == [-1.0, 1.0]


def test_module_pools_then_fc_relu_concat_linear_by_hand():
    module = LossPredictionModule([2, 1], hidden_units=2)
    with torch.no_grad():
        module.taps[0][0].weight.copy_(torch.eye(2))
        module.taps[0][0].bias.zero_()
        module.taps[1][0].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        module.taps[1][0].bias.zero_()
        module.output.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
        module.output.bias.fill_(0.5)
    conv = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[-2.0, -2.0], [-2.0, -2.0]]]])  # (1, 2, 2, 2)
    flat = torch.tensor([[2.0]])
    # GAP: (4, -2) -> ReLU (4, 0); flat 2 -> (2, -2) -> ReLU (2, 0); 1*4 + 3*2 + 0.5
    assert module([conv, flat]).tolist() == [10.5]


# ------------------------------------------------------------------ the network
def test_default_taps_of_the_ready_made_modules():
    net = _net().fit(X_DIGITS[:40], Y_DIGITS[:40])
    assert net.loss_layers_ == ["hidden.2"]
    assert net.predict_loss(X_DIGITS[:5]).shape == (5,)
    net = _net(module__hidden_units=(8, 8), max_epochs=1).fit(X_DIGITS[:40], Y_DIGITS[:40])
    assert net.loss_layers_ == ["hidden.2", "hidden.5"]
    assert default_loss_layers(MNISTConvNet()) == ["features.3", "features.7", "features.11"]


@pytest.mark.slow
def test_the_conv_net_trains_with_its_default_taps():
    X_img = np.random.RandomState(0).rand(8, 784).astype(np.float32)
    conv = LearningLossClassifier(MNISTConvNet, max_epochs=1, random_state=0)
    conv.fit(X_img, np.arange(8) % 2)
    assert conv.loss_layers_ == ["features.3", "features.7", "features.11"]
    assert [tap[0].in_features for tap in conv.loss_module_.taps] == [32, 64, 128]
    assert conv.predict_loss(X_img).shape == (8,)


def test_named_layers_and_the_errors_that_name_the_way_out():
    net = _net(loss_layers=["hidden.1"], max_epochs=1).fit(X_DIGITS[:40], Y_DIGITS[:40])
    assert net.loss_module_.taps[0][0].in_features == 16
    with pytest.raises(ValueError, match=r"\['nope'\] that are not sub-modules of MLP.*hidden"):
        _net(loss_layers=["nope"]).fit(X_DIGITS[:40], Y_DIGITS[:40])
    with pytest.raises(TypeError, match="list of sub-module names"):
        _net(loss_layers="hidden.2").fit(X_DIGITS[:40], Y_DIGITS[:40])
    linear = torch.nn.Sequential(torch.nn.Linear(64, 10))
    with pytest.raises(ValueError, match="no torch.nn.ReLU module to tap"):
        LearningLossClassifier(linear).fit(X_DIGITS[:40], Y_DIGITS[:40])
    with pytest.raises(ValueError, match="fraction of max_epochs"):
        _net(loss_detach_after=1.5).fit(X_DIGITS[:40], Y_DIGITS[:40])


@pytest.mark.parametrize(("value", "epoch"), [(0.6, 120), (1.0, 200), (0.0, 0), (7, 7)])
def test_detach_epoch(value, epoch):
    assert _net(loss_detach_after=value, max_epochs=200)._detach_epoch() == epoch


def test_detached_features_keep_the_ranking_loss_out_of_the_network():
    def backbone(**params):
        net = _net(**params).fit(X_DIGITS[:64], Y_DIGITS[:64])
        return [p.detach().clone() for p in net.module_.parameters()]

    # detached from the first epoch: the network learns from its own loss only, whatever
    # the ranking loss's weight
    alone = backbone(loss_detach_after=0, loss_weight=0.0)
    assert all(torch.equal(a, b) for a, b in
               zip(alone, backbone(loss_detach_after=0, loss_weight=1.0), strict=True))
    # never detached (and detached after 2 of 3 epochs): the ranking loss moves it
    for detach in (1.0, 2):
        joint = backbone(loss_detach_after=detach, loss_weight=1.0)
        assert not all(torch.equal(a, b) for a, b in zip(alone, joint, strict=True))


def test_sklearn_manners_clone_pickle_and_seed():
    import pickle

    net = _net(loss_margin=0.5)
    assert clone(net).get_params()["loss_margin"] == 0.5
    fitted = net.fit(X_DIGITS[:60], Y_DIGITS[:60])
    again = clone(net).fit(X_DIGITS[:60], Y_DIGITS[:60])
    np.testing.assert_array_equal(fitted.predict_loss(X_DIGITS[60:90]),
                                  again.predict_loss(X_DIGITS[60:90]))
    copy = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(copy.predict_loss(X_DIGITS[:9]),
                                  fitted.predict_loss(X_DIGITS[:9]))
    assert not hasattr(clone(net), "loss_module_")


def test_criterion_without_reduction_is_a_type_error():
    class NoReduction(torch.nn.Module):
        def forward(self, y_pred, y_true):
            return torch.nn.functional.cross_entropy(y_pred, y_true)

    with pytest.raises(TypeError, match="per-row losses"):
        _net(criterion=NoReduction).fit(X_DIGITS[:40], Y_DIGITS[:40])


# ------------------------------------------------------------------ the strategy
def test_strategy_takes_the_highest_predicted_losses():
    y = np.where(np.arange(200) < 60, Y_DIGITS[:200], -1)
    learner = ActiveLearner(_net(), LearningLoss(random_state=0)).fit(X_DIGITS[:200], y)
    pool = X_DIGITS[60:200]
    predicted = learner.predict_loss(pool)
    picks = learner.query(pool, 7)
    np.testing.assert_array_equal(picks, np.argsort(-predicted, kind="stable")[:7])


def test_learner_without_predict_loss_is_a_type_error_naming_the_way_out():
    y = np.where(np.arange(100) < 30, Y_DIGITS[:100], -1)
    learner = ActiveLearner(LogisticRegression(), LearningLoss()).fit(X_DIGITS[:100], y)
    with pytest.raises(TypeError, match="LearningLoss needs predict_loss.*LearningLossClassifier"):
        learner.query(X_DIGITS[30:100], 3)


def test_grid_search_over_the_loss_module_in_simulated_runs():
    learner = ActiveLearner(_net(max_epochs=1), LearningLoss(random_state=0),
                            initial_strategy=RandomSampling(random_state=0), n_initial=20,
                            batch_size=10, budget=40, random_state=0)
    search = GridSearchCV(learner, {"estimator__loss_margin": [0.5, 1.0]}, cv=2)
    search.fit(X_DIGITS[:160], Y_DIGITS[:160])
    assert search.best_params_["estimator__loss_margin"] in (0.5, 1.0)
    assert search.best_estimator_.n_labels_ == 40


def test_predicted_loss_ranks_the_true_loss_on_digits():
    net = LearningLossClassifier(module__hidden_units=(32,), loss_hidden_units=16,
                                 max_epochs=15, random_state=0).fit(X_DIGITS[:300],
                                                                    Y_DIGITS[:300])
    X_test, y_test = X_DIGITS[300:900], Y_DIGITS[300:900]
    proba = net.predict_proba(X_test)
    true_loss = -np.log(np.maximum(proba[np.arange(len(y_test)), y_test], 1e-12))
    rho = spearmanr(net.predict_loss(X_test), true_loss).statistic
    assert rho > 0.2 and math.isfinite(rho)


@pytest.mark.slow
def test_learning_loss_run_on_digits_beats_nothing_by_accident():
    # A whole simulated run: every cycle's query comes from the predicted losses, and the
    # labelled set ends at the budget with a network that predicts well.
    net = LearningLossClassifier(module__hidden_units=(64,), max_epochs=30, random_state=0)
    learner = ActiveLearner(net, LearningLoss(random_state=0),
                            initial_strategy=RandomSampling(random_state=0), n_initial=20,
                            batch_size=20, budget=120, random_state=0)
    learner.fit(X_DIGITS[:1000], Y_DIGITS[:1000])
    assert learner.n_labels_ == 120
    assert learner.score(X_DIGITS[1000:], Y_DIGITS[1000:]) > 0.7
    assert all(row["scores"] is not None for row in learner.history_[1:])


def test_mlp_is_the_default_module():
    assert LearningLossClassifier().module is MLP


def test_threads_scoring_one_network_each_get_their_own_features():
    from concurrent.futures import ThreadPoolExecutor

    net = _net().fit(X_DIGITS[:100], Y_DIGITS[:100])
    chunks = np.array_split(X_DIGITS[100:900], 16)
    serial = [net.predict_loss(chunk) for chunk in chunks]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(net.predict_loss, chunks))
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_loss_module_trains_and_predicts_there():
    net = _net(device="cuda").fit(X_DIGITS[:100], Y_DIGITS[:100])
    assert next(net.loss_module_.parameters()).is_cuda
    cpu = _net(device="cpu").fit(X_DIGITS[:100], Y_DIGITS[:100])
    # the same seed on another device: close, not bitwise, predictions
    np.testing.assert_allclose(net.predict_loss(X_DIGITS[100:200]),
                               cpu.predict_loss(X_DIGITS[100:200]), atol=1e-3)


def test_parameters_follow_sklearn_conventions():
    from sklearn.utils.estimator_checks import (
        check_get_params_invariance,
        check_no_attributes_set_in_init,
        check_parameters_default_constructible,
    )

    name = "LearningLossClassifier"
    check_parameters_default_constructible(name, LearningLossClassifier())
    check_no_attributes_set_in_init(name, LearningLossClassifier())
    check_get_params_invariance(name, _net())


@pytest.mark.slow
@parametrize_with_checks([LearningLossClassifier(loss_hidden_units=8, max_epochs=10, lr=0.02,
                                                n_samples=4, random_state=0)])
def test_sklearn_checks(estimator, check):
    check(estimator)


def test_candidate_fraction_ranks_a_random_part_of_the_pool_the_same_on_dask():
    da = pytest.importorskip("dask.array")
    import dask

    y = np.where(np.arange(300) < 60, Y_DIGITS[:300], -1)
    learner = ActiveLearner(_net(), LearningLoss()).fit(X_DIGITS[:300], y)
    pool = X_DIGITS[60:300]
    predicted = learner.predict_loss(pool)
    top = np.argsort(-predicted, kind="stable")[:8]
    assert LearningLoss(candidate_fraction=1.0, random_state=0)(learner, pool, 8).tolist() == (
        top.tolist())
    picks, scores = LearningLoss(candidate_fraction=0.2, random_state=0).select(learner, pool, 8)
    np.testing.assert_array_equal(scores, predicted[picks])  # the predicted losses
    assert np.all(np.diff(scores) <= 0) and set(picks) != set(top)
    # about a fifth of the pool are candidates: rows ranked above the last pick were skipped
    assert 0.05 < 8 / (predicted >= scores[-1]).sum() < 0.6
    with dask.config.set(scheduler="threads"):
        on_dask = LearningLoss(candidate_fraction=0.2, random_state=0)(
            learner, da.from_array(pool, chunks=(50, 64)), 8)
    np.testing.assert_array_equal(on_dask, picks)
    with pytest.raises(ValueError, match="candidate_fraction"):
        LearningLoss(candidate_fraction=0.0)(learner, pool, 2)


@pytest.mark.slow
def test_the_mnist_cnn_on_mnist_images_end_to_end(mnist_t10k):
    X, y = mnist_t10k
    X, y = X[:400], y[:400]
    net = LearningLossClassifier(MNISTConvNet, max_epochs=3, random_state=0)
    learner = ActiveLearner(net, LearningLoss(random_state=0),
                            initial_strategy=RandomSampling(random_state=0), n_initial=50,
                            batch_size=25, budget=100, random_state=0).fit(X, y)
    assert learner.n_labels_ == 100
    assert learner.estimator_.loss_layers_ == ["features.3", "features.7", "features.11"]
