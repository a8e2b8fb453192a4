"""The contrastive encoder: the NT-Xent loss against its formula, the augmentations, seeds,
reuse of a fitted encoder in an active-learning loop, fine-tuning with NetClassifier."""

import functools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
)

from skal import ActiveLearner  # noqa: E402
from skal.nets import (  # noqa: E402
    ContrastiveEncoder,
    ConvEncoder,
    DigitAugment,
    NetClassifier,
    nt_xent_loss,
)
from skal.strategies import TypiClust  # noqa: E402

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS = (X_DIGITS / 16).astype(np.float32)
TINY = functools.partial(ConvEncoder, channels=(4, 8))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_encoder(**params):
    defaults = {"module": TINY, "n_components": 8, "projection_dim": 4, "max_epochs": 1,
                "batch_size": 32, "random_state": 0, "device": "cpu"}
    return ContrastiveEncoder(**{**defaults, **params})


def _nt_xent_by_the_formula(z1, z2, t):
    """-log(exp(s(a, p(a)) / t) / sum_{b != a} exp(s(a, b) / t)), averaged over 2n anchors."""
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for a in range(2 * n):
        partner = (a + n) % (2 * n)
        others = sum(math.exp(z[a] @ z[b] / t) for b in range(2 * n) if b != a)
        total -= math.log(math.exp(z[a] @ z[partner] / t) / others)
    return total / (2 * n)


def test_nt_xent_known_answer():
    # Two orthogonal images, each view equal to its image: every anchor has similarity 1 to
    # its partner and 0 to the two others, so the loss is log((e + 2) / e) = log(1 + 2 / e).
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert float(nt_xent_loss(z, z, temperature=1.0)) == pytest.approx(math.log(1 + 2 / math.e))
    rng = np.random.RandomState(0)
    z1, z2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    loss = nt_xent_loss(torch.tensor(z1), torch.tensor(z2), temperature=0.5)
    assert float(loss) == pytest.approx(_nt_xent_by_the_formula(z1, z2, 0.5), rel=1e-9)


def test_digit_augment_views():
    images = torch.rand(6, 1, 8, 8)
    augment = DigitAugment.for_shape((1, 8, 8))
    first = augment(images, torch.Generator().manual_seed(1))
    assert first.shape == images.shape and 0 <= float(first.min()) <= float(first.max()) <= 1
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(2)))
    identity = DigitAugment(rotation=0.0, scale=(1.0, 1.0), shift=0.0, noise=0.0)
    assert torch.allclose(identity(images, torch.Generator()), images, atol=1e-6)


def test_encoder_shapes_seeds_and_global_state():
    X = X_DIGITS[:96]
    state = torch.random.get_rng_state()
    encoder = _tiny_encoder().fit(X)
    assert torch.equal(state, torch.random.get_rng_state())
    Z = encoder.transform(X)
    assert Z.shape == (96, 8) and Z.dtype == np.float32 and encoder.image_shape_ == (1, 8, 8)
    assert len(encoder.loss_curve_) == 1 and np.isfinite(encoder.loss_curve_).all()
    np.testing.assert_array_equal(clone(encoder).fit(X).transform(X), Z)
    assert not np.array_equal(_tiny_encoder(random_state=1).fit(X).transform(X), Z)
    assert encoder.get_feature_names_out().tolist()[:2] == ["contrastiveencoder0",
                                                             "contrastiveencoder1"]


def test_encoder_follows_sklearn_parameter_conventions():
    check_parameters_default_constructible("ContrastiveEncoder", ContrastiveEncoder())
    check_no_attributes_set_in_init("ContrastiveEncoder", ContrastiveEncoder())
    check_get_params_invariance("ContrastiveEncoder", ContrastiveEncoder())


@pytest.mark.parametrize(
    ("params", "X", "match"),
    [({"temperature": 0}, X_DIGITS[:40], "temperature"),
     ({"image_shape": (1, 4, 4)}, X_DIGITS[:40], "image_shape"),
     ({}, X_DIGITS[:40, :10], "square"),
     ({"augment": "flip"}, X_DIGITS[:40], "augment")],
)
def test_encoder_bad_parameters_are_named(params, X, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _tiny_encoder(**params).fit(X)


def test_a_frozen_encoder_is_pretrained_once_and_typiclust_uses_its_embedding():
    X, y = X_DIGITS[:120], Y_DIGITS[:120]
    encoder = _tiny_encoder().fit(X)
    weights = [p.detach().clone() for p in encoder.encoder_.parameters()]
    pipeline = make_pipeline(FrozenEstimator(encoder), LogisticRegression(max_iter=500))
    learner = ActiveLearner(pipeline, TypiClust(random_state=0), budget=30, batch_size=10,
                            random_state=0).fit(X, y)
    # every cycle's clone shares the one fitted encoder, untouched by the refits
    assert learner.estimator_[0].estimator is encoder
    for before, after in zip(weights, encoder.encoder_.parameters(), strict=True):
        assert torch.equal(before, after)
    # TypiClust measured the encoder's embedding: the same picks as on the embedding itself
    pool = np.setdiff1d(np.arange(120), learner.labeled_indices_)
    Z = encoder.transform(X)
    on_learner = TypiClust(random_state=3)(learner, X[pool], 5)
    labeled = np.sort(learner.labeled_indices_)  # the learner keeps them in pool order
    plain = LogisticRegression(max_iter=500).fit(Z[labeled], y[labeled])
    plain.X_labeled_ = Z[labeled]
    assert on_learner.tolist() == TypiClust(random_state=3)(plain, Z[pool], 5).tolist()
    # a cold start on the embedding: the fitted (frozen) encoder stands in for the learner
    assert TypiClust(random_state=0)(FrozenEstimator(encoder), X, 4).shape == (4,)


@pytest.mark.slow
def test_fine_tuning_starts_from_the_pretrained_encoder():
    X, y = X_DIGITS[:60], Y_DIGITS[:60]
    encoder = _tiny_encoder().fit(X)
    net = NetClassifier(**encoder.classifier_module(dropout=0.2), max_epochs=2, lr=1e-3,
                        batch_size=16, device="cpu", random_state=0)
    fitted = clone(net).fit(X, y)
    assert fitted.predict_proba(X[:5]).shape == (5, 10)
    assert fitted.transform(X[:5]).shape == (5, 8)
    # the pretrained encoder is copied, never trained in place
    Z = encoder.transform(X)
    np.testing.assert_array_equal(Z, _tiny_encoder().fit(X).transform(X))
    # before any step the network's encoder computes the pretrained embedding
    fresh = clone(net).set_params(max_epochs=0).fit(X, y)
    fresh.module_.eval()
    with torch.no_grad():
        start = fresh.module_.embed(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(start, Z, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_pretraining_on_digits_brings_same_class_embeddings_closer():
    encoder = ContrastiveEncoder(module=functools.partial(ConvEncoder, channels=(16, 32)),
                                 max_epochs=5, random_state=0, device="cpu").fit(X_DIGITS)
    Z = encoder.transform(X_DIGITS)
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    same = Y_DIGITS[:, None] == Y_DIGITS[None, :]
    distance = np.sqrt(np.maximum(2 - 2 * Z @ Z.T, 0))
    within, between = distance[same & ~np.eye(len(Z), dtype=bool)].mean(), distance[~same].mean()
    assert within < 0.75 * between
    assert encoder.loss_curve_[-1] < encoder.loss_curve_[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_encoder_on_cuda_runs_the_same_code():
    encoder = _tiny_encoder(device="cuda", max_epochs=2).fit(X_DIGITS[:256])
    assert next(encoder.encoder_.parameters()).is_cuda
    Z = encoder.transform(X_DIGITS[:256])
    assert Z.shape == (256, 8) and Z.dtype == np.float32 and np.isfinite(Z).all()
    again = _tiny_encoder(device="cuda", max_epochs=2).fit(X_DIGITS[:256]).transform(X_DIGITS[:256])
    np.testing.assert_allclose(again, Z, atol=1e-4)
