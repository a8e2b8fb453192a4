"""Query synthesis (PoolGAN, GAAL, ASAL) and cross-domain active learning (CLUE)."""

import os

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.svm import LinearSVC

from skal import ActiveLearner
from skal.strategies import ASAL, CLUE, GAAL
from skal.strategies._domain import tempered_entropy
from skal.strategies._synthesis import boundary_distance

torch = pytest.importorskip("torch")
from skal.nets import PoolGAN  # noqa: E402

MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: two threads on two busy cores are far slower
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=240, centers=[(-2, 0), (2, 0), (0, 3)], cluster_std=0.8,
                      random_state=0)
    gan = PoolGAN(hidden_units=(32, 32), max_epochs=40, lr=2e-3, random_state=0).fit(X)
    model = LogisticRegression().fit(X[:30], y[:30])
    return X, y, gan, model


# ---------------------------------------------------------------------- the generator
def test_pool_gan_is_deterministic_per_seed_and_leaves_torch_alone():
    X = np.random.RandomState(0).normal(size=(40, 3)) * [1, 10, 0]  # a constant column
    state = torch.random.get_rng_state()
    a = PoolGAN(hidden_units=(8,), max_epochs=3, random_state=1).fit(X)
    b = PoolGAN(hidden_units=(8,), max_epochs=3, random_state=1).fit(X)
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(a.sample(5, random_state=0), b.sample(5, random_state=0))
    samples = a.sample(200, random_state=0)
    assert samples.shape == (200, 3) and np.all(samples[:, 2] == 0)
    # tanh output mapped back onto the pool's range, column by column
    assert np.all(samples.min(axis=0) >= X.min(axis=0) - 1e-5)
    assert np.all(samples.max(axis=0) <= X.max(axis=0) + 1e-5)
    images = np.random.RandomState(0).uniform(size=(20, 1, 4, 4))
    assert PoolGAN(max_epochs=1, random_state=0).fit(images).sample(2).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="Z must have shape"):
        a.generate(np.zeros((2, 3)))


def test_gaal_synthesises_rows_nearer_the_boundary_than_pool_rows_or_generator_samples(blobs):
    X, _, gan, model = blobs
    gaal = GAAL(FrozenEstimator(gan), random_state=0)
    X_new, scores = gaal.synthesize(model, X, batch_size=8, return_scores=True)
    margins = boundary_distance(model, X_new)
    np.testing.assert_allclose(margins, scores)
    pool = boundary_distance(model, X[np.random.RandomState(0).choice(len(X), 100)])
    generated = boundary_distance(model, gan.sample(100, random_state=0))
    assert np.median(margins) < 0.1 * np.median(pool)
    assert np.median(margins) < 0.1 * np.median(generated)
    assert margins.max() < np.quantile(pool, 0.1)
    # The same seed synthesises the same rows; successive calls draw afresh.
    again = GAAL(FrozenEstimator(gan), random_state=0)
    np.testing.assert_array_equal(again.synthesize(model, X, 8), X_new)
    assert not np.array_equal(again.synthesize(model, X, 8), X_new)


def test_gaal_with_a_linear_svm_minimises_w_dot_x_plus_b(blobs):
    X, y, gan, _ = blobs
    binary = y != 2
    svm = LinearSVC().fit(X[binary][:40], y[binary][:40])
    X_new = GAAL(FrozenEstimator(gan), n_steps=40, random_state=0).synthesize(svm, X, 5)
    by_hand = np.abs(X_new @ svm.coef_.ravel() + svm.intercept_[0])
    pool = np.abs(svm.decision_function(X))
    assert by_hand.max() < np.quantile(pool, 0.02)


def test_gaal_fits_its_generator_once_and_checks_its_input(blobs):
    X, _, _, model = blobs
    gaal = GAAL(PoolGAN(hidden_units=(8,), max_epochs=1), n_steps=1, random_state=0)
    gaal.synthesize(model, X, 2)
    generator = gaal.generator_
    gaal.synthesize(model, X[:10], 2)
    assert gaal.generator_ is generator and "generator_" not in vars(clone(gaal))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        gaal.synthesize(model, X, 0)
    with pytest.raises(ValueError, match="'uncertainty' parameter of GAAL"):
        GAAL(uncertainty="variance").synthesize(model, X, 2)
    with pytest.raises(TypeError, match="GAAL needs predict_proba"):
        GAAL(generator).synthesize(object(), X, 2)


def test_asal_queries_the_pool_rows_nearest_the_synthesised_ones(blobs):
    X, _, gan, model = blobs
    asal = ASAL(FrozenEstimator(gan), random_state=0)
    picks, scores = asal.select(model, X, 6)
    assert len(set(picks.tolist())) == 6 and np.all(np.diff(scores) <= 0)
    # by hand: the same synthesised rows, each matched to its nearest row not yet taken
    made, _ = GAAL(FrozenEstimator(gan), uncertainty="entropy", random_state=0).synthesize(
        model, X, 6, return_scores=True)
    taken = []
    for row in made:
        distances = np.linalg.norm(X - row, axis=1)
        distances[taken] = np.inf
        taken.append(int(np.argmin(distances)))
    assert picks.tolist() == taken
    # near the boundary, as uncertainty sampling's picks are
    assert np.median(boundary_distance(model, X[picks])) < np.median(boundary_distance(model, X))


def test_asal_and_clue_in_a_learner_and_its_clone(blobs):
    X, y, gan, _ = blobs
    y_partial = np.where(np.arange(len(y)) < 20, y, -1)
    for strategy in (ASAL(FrozenEstimator(gan), n_steps=3, random_state=0),
                     CLUE(random_state=0)):
        learner = ActiveLearner(LogisticRegression(), strategy, random_state=0)
        learner.fit(X, y_partial)
        first = learner.query(X[20:], 5)
        assert first.tolist() == clone(learner).fit(X, y_partial).query(X[20:], 5).tolist()


@pytest.mark.slow
def test_asal_and_clue_in_grid_search(blobs):
    X, y, gan, _ = blobs
    for strategy in (ASAL(FrozenEstimator(gan), n_steps=3, random_state=0),
                     CLUE(random_state=0)):
        search = GridSearchCV(
            ActiveLearner(LogisticRegression(), strategy, budget=30, batch_size=5,
                          random_state=0),
            {"query_strategy__random_state": [0, 1]}, cv=2,
        ).fit(X, y)
        assert search.best_score_ > 0.8


# ---------------------------------------------------------------------- CLUE
class _KnownProba(ClassifierMixin, BaseEstimator):
    """A fitted stand-in whose class-1 probability is the row's second column and whose
    embedding is its first: the weights and distances of CLUE's clustering are set by hand."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        return np.column_stack([1 - X[:, 1], X[:, 1]])

    def transform(self, X):
        return X[:, :1]


def test_clue_weighted_centroids_by_hand():
    # Two far groups; entropies ln 2 (p = 0.5), H(0.999) and H(0.6).
    X = np.array([[0, 0.5], [1, 0.999], [2, 0.999], [10, 0.999], [11, 0.999], [12, 0.6]])
    model = _KnownProba().fit(X, [0, 1])
    h = tempered_entropy(model.predict_proba(X))
    h_sure = -(0.999 * np.log(0.999) + 0.001 * np.log(0.001))
    np.testing.assert_allclose(h, [np.log(2), h_sure, h_sure, h_sure, h_sure,
                                   -(0.6 * np.log(0.6) + 0.4 * np.log(0.4))])
    # Weighted centroids: (0 ln2 + 1 h + 2 h) / (ln2 + 2h) = 0.033 -> row 0 (the unweighted
    # mean, 1, would give row 1); (10 h + 11 h + 12 H(0.6)) / (2h + H(0.6)) = 11.96 -> row 5.
    centre_a = (h[1] + 2 * h[2]) / (h[0] + h[1] + h[2])
    centre_b = (10 * h[3] + 11 * h[4] + 12 * h[5]) / h[3:].sum()
    assert abs(centre_a - 0.0334) < 1e-3 and abs(centre_b - 11.96) < 1e-2
    picks, mass = CLUE(random_state=0).select(model, X, 2)
    assert picks.tolist() == [0, 5]  # the group of larger total uncertainty first
    np.testing.assert_allclose(mass, [h[:3].sum(), h[3:].sum()])
    # A huge temperature flattens the weights: the unweighted centroids 1 and 11.
    assert sorted(CLUE(temperature=1e6, random_state=0)(model, X, 2).tolist()) == [1, 4]
    # Every row certain (all weights 0): an unweighted clustering, not an error.
    certain = np.c_[X[:, 0], np.ones(6)]
    assert sorted(CLUE(random_state=0)(model, certain, 2).tolist()) == [1, 4]


def test_clue_takes_distinct_rows_when_the_pool_has_duplicates():
    X = np.array([[0, 0.5]] * 4 + [[5, 0.7]])
    picks = CLUE(random_state=0)(_KnownProba().fit(X, [0, 1]), X, 3)
    assert len(set(picks.tolist())) == 3


def test_tempered_entropy_by_hand():
    proba = np.array([[0.8, 0.2]])
    # T = 2: p ** 0.5 renormalised = (0.6667, 0.3333)
    p = np.sqrt([0.8, 0.2]) / np.sqrt([0.8, 0.2]).sum()
    np.testing.assert_allclose(tempered_entropy(proba, 2.0), -(p * np.log(p)).sum())
    np.testing.assert_allclose(tempered_entropy(proba), -(0.8 * np.log(0.8) + 0.2 * np.log(0.2)))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(MNIST), reason="MNIST files not in ../shared/data/mnist")
def test_digits_to_mnist_with_clue_labels_beats_the_source_model():
    from skal.datasets import load_mnist_idx, mnist_as_digits

    X_source, y_source = load_digits(return_X_y=True)
    images, y_target = load_mnist_idx(MNIST)
    X_target = mnist_as_digits(images)
    X_pool, y_pool = X_target[:5000], y_target[:5000]
    X_test, y_test = X_target[5000:], y_target[5000:]
    source = LogisticRegression(max_iter=2000).fit(X_source, y_source)
    before = source.score(X_test, y_test)
    picks = CLUE(random_state=0)(source, X_pool, 100)
    adapted = LogisticRegression(max_iter=2000).fit(
        np.r_[X_source, X_pool[picks]], np.r_[y_source, y_pool[picks]])
    after = adapted.score(X_test, y_test)
    assert 0.3 < before < 0.6 and after > before + 0.1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pool_gan_gaal_and_asal_on_cuda(blobs):
    X, _, _, model = blobs
    gan = PoolGAN(hidden_units=(32, 32), max_epochs=5, device="cuda", random_state=0).fit(X)
    assert next(gan.generator_.parameters()).is_cuda
    again = PoolGAN(hidden_units=(32, 32), max_epochs=5, device="cuda", random_state=0).fit(X)
    np.testing.assert_allclose(gan.sample(4, random_state=0), again.sample(4, random_state=0),
                               atol=1e-4)
    X_new = GAAL(FrozenEstimator(gan), random_state=0).synthesize(model, X, 3)
    assert X_new.shape == (3, 2) and isinstance(X_new, np.ndarray)
    assert len(set(ASAL(FrozenEstimator(gan), random_state=0)(model, X, 4).tolist())) == 4
