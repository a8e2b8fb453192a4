"""VAAL (Sinha et al. 2019): its losses against the paper's formulas by hand, the
discriminator on an easy case, seeds, cold starts and any learner."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from skal import ActiveLearner, ActiveRegressor  # noqa: E402
from skal.nets._vaal import (  # noqa: E402
    VAE,
    adversarial_loss,
    discriminator_loss,
    fit_vaal,
    vae_loss,
)
from skal.strategies import VAAL, RandomSampling  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(n_labeled=30, n_pool=120, seed=0):
    """Labelled rows all near (+3, +3); the pool half there, half near (-3, -3)."""
    rng = np.random.RandomState(seed)
    X_labeled = rng.normal(3.0, 0.5, size=(n_labeled, 2))
    near = rng.normal(3.0, 0.5, size=(n_pool // 2, 2))
    far = rng.normal(-3.0, 0.5, size=(n_pool // 2, 2))
    return X_labeled, np.vstack([near, far])


# ------------------------------------------------------------------ the paper's formulas
def test_vae_loss_by_hand():
    x = torch.tensor([[1.0, 2.0]])
    reconstruction = torch.tensor([[0.0, 2.0]])
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # squared error summed over features: 1 + 0
    # KL = -1/2 [(1 + 0 - 1 - 1) + (1 + ln 2 - 0 - 2)] = 1 - ln(2) / 2
    kl = 1.0 - math.log(2.0) / 2
    assert float(vae_loss(x, reconstruction, mu, logvar, beta=1.0)) == pytest.approx(1 + kl)
    assert float(vae_loss(x, reconstruction, mu, logvar, beta=2.0)) == pytest.approx(
        1 + 2 * kl)
    # rows are averaged: a second, perfect row with the prior's posterior halves the loss
    x2 = torch.cat([x, x])
    both = vae_loss(x2, torch.cat([reconstruction, x]), torch.cat([mu, torch.zeros(1, 2)]),
                    torch.cat([logvar, torch.zeros(1, 2)]))
    assert float(both) == pytest.approx((1 + kl) / 2)


def test_adversarial_and_discriminator_losses_by_hand():
    # D = sigmoid(logit): logit ln 3 is D = 3/4, logit 0 is D = 1/2
    labeled = torch.tensor([math.log(3.0)])
    unlabeled = torch.tensor([0.0, math.log(3.0)])
    # L_D = -E[log D(z_L)] - E[log(1 - D(z_U))]
    expected_d = -math.log(0.75) - (math.log(0.5) + math.log(0.25)) / 2
    assert float(discriminator_loss(labeled, unlabeled)) == pytest.approx(expected_d)
    # L_adv = -E[log D(z_L)] - E[log D(z_U)]
    expected_adv = -math.log(0.75) - (math.log(0.5) + math.log(0.75)) / 2
    assert float(adversarial_loss(labeled, unlabeled)) == pytest.approx(expected_adv)


def test_vae_reparameterises_in_training_only():
    torch.manual_seed(0)
    vae = VAE(3, latent_dim=2, hidden_units=4)
    x = torch.ones(5, 3)
    vae.eval()
    recon, mu, _ = vae(x)
    assert torch.equal(recon, vae.decoder(mu))
    vae.train()
    assert not torch.equal(vae(x)[0], recon)


# ------------------------------------------------------------------ the discriminator
@pytest.mark.slow
def test_discriminator_separates_labelled_from_unlabelled_on_an_easy_case():
    X_labeled, X_pool = _blobs()
    model = fit_vaal(X_labeled.astype(np.float32), X_pool.astype(np.float32),
                     latent_dim=2, hidden_units=16, max_epochs=30, batch_size=32, lr=5e-3,
                     device="cpu", seed=0)
    proba = model.labeled_probability(X_pool.astype(np.float32))
    near, far = proba[:60], proba[60:]
    # The VAE is trained to fool the discriminator, so the probabilities stay near 1/2 (the
    # game's equilibrium); their order is what separates the blobs.
    assert near.mean() > far.mean()
    assert (far < np.median(near)).mean() > 0.9


def test_strategy_picks_the_rows_least_like_the_labelled_ones():
    X_labeled, X_pool = _blobs()
    X = np.vstack([X_labeled, X_pool])
    y = np.r_[np.arange(30) % 2, np.full(len(X_pool), -1)]
    strategy = VAAL(latent_dim=2, hidden_units=16, max_epochs=20, batch_size=40, lr=5e-3,
                    random_state=0)
    learner = ActiveLearner(LogisticRegression(), strategy).fit(X, y)
    picks = learner.query(X_pool, 10)
    assert (picks >= 60).all()  # all from the far blob


# ------------------------------------------------------------------ seeds, errors, learners
def _small(**params):
    return VAAL(**{"latent_dim": 2, "hidden_units": 8, "max_epochs": 1, "batch_size": 64,
                   **params})


def test_a_seed_gives_the_same_picks_and_leaves_torch_alone():
    X_labeled, X_pool = _blobs(seed=1)
    X = np.vstack([X_labeled, X_pool])
    y = np.r_[np.arange(30) % 2, np.full(len(X_pool), -1)]
    learner = ActiveLearner(query_strategy=_small(random_state=3)).fit(X, y)
    state = torch.random.get_rng_state()
    first = learner.query(X_pool, 5)
    assert torch.equal(state, torch.random.get_rng_state())
    again = ActiveLearner(query_strategy=_small(random_state=3)).fit(X, y).query(X_pool, 5)
    np.testing.assert_array_equal(first, again)


def test_cold_start_and_missing_labelled_rows_are_clear_errors():
    _, X_pool = _blobs()
    with pytest.raises(NotFittedError, match="cold start.*RandomSampling"):
        _small()(None, X_pool, 3)
    with pytest.raises(NotFittedError, match="cold start"):
        _small()(ActiveLearner(), X_pool, 3)
    fitted = LogisticRegression().fit(X_pool, np.arange(len(X_pool)) % 2)
    with pytest.raises(TypeError, match=r"X_labeled_.*skal learner"):
        _small()(fitted, X_pool, 3)
    learner = ActiveLearner(query_strategy=_small(random_state=0)).fit(
        X_pool, np.r_[np.arange(20) % 2, np.full(100, -1)])
    with pytest.raises(ValueError, match="3 features"):
        learner.query_strategy_(learner, np.zeros((4, 3)), 2)
    import scipy.sparse as sp

    with pytest.raises(TypeError, match="sparse"):
        learner.query_strategy_(learner, sp.csr_matrix(X_pool), 2)


def test_task_agnostic_a_regressor_and_a_simulated_run_after_random_labels():
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    regressor = ActiveRegressor(query_strategy=_small(random_state=0), missing_label=-1)
    regressor.fit(X, np.where(np.arange(200) < 20, y.astype(float), -1.0))
    assert regressor.query(X[20:], 4).shape == (4,)
    learner = ActiveLearner(query_strategy=_small(random_state=0),
                            initial_strategy=RandomSampling(random_state=0), n_initial=20,
                            batch_size=10, budget=30, random_state=0)
    search = GridSearchCV(learner, {"query_strategy__beta": [0.5, 1.0]}, cv=2).fit(X, y)
    assert search.best_estimator_.n_labels_ == 30


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_easy_case_is_separated_too():
    X_labeled, X_pool = _blobs()
    X = np.vstack([X_labeled, X_pool])
    y = np.r_[np.arange(30) % 2, np.full(len(X_pool), -1)]
    strategy = VAAL(latent_dim=2, hidden_units=16, max_epochs=20, batch_size=40, lr=5e-3,
                    device="cuda", random_state=0)
    picks = ActiveLearner(LogisticRegression(), strategy).fit(X, y).query(X_pool, 10)
    assert (picks >= 60).all()


def test_the_conv_vae_takes_28x28_images_only():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 784).astype(np.float32)
    y = np.r_[np.arange(10) % 2, np.full(30, -1)]
    strategy = VAAL(architecture="conv", latent_dim=4, hidden_units=8, max_epochs=1,
                    random_state=0)
    learner = ActiveLearner(LogisticRegression(), strategy).fit(X, y)
    assert np.unique(learner.query(X[10:], 5)).size == 5
    with pytest.raises(ValueError, match=r"784 features per row\), got 64"):
        strategy.labeled_probability(rng.rand(5, 64), rng.rand(5, 64))
    with pytest.raises(ValueError, match="architecture"):
        VAAL(architecture="resnet")(learner, X[10:], 2)


@pytest.mark.slow
def test_the_conv_vae_on_mnist_images_end_to_end(mnist_t10k):
    X, y = mnist_t10k
    X, y = X[:600], y[:600]
    # labelled: only zeros and ones; the pool: every digit. VAAL should ask for other digits.
    labelled = np.flatnonzero(y <= 1)[:60]
    y_partial = np.full(len(y), -1)
    y_partial[labelled] = y[labelled]
    strategy = VAAL(architecture="conv", latent_dim=8, max_epochs=5, random_state=0)
    learner = ActiveLearner(LogisticRegression(max_iter=500), strategy).fit(X, y_partial)
    pool = np.setdiff1d(np.arange(len(y)), labelled)
    picks = pool[learner.query(X[pool], 20)]
    share_01 = np.isin(y[pool], [0, 1]).mean()
    assert np.isin(y[picks], [0, 1]).mean() < share_01
