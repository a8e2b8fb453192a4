"""Diversity strategies: embed, CoreSet, BADGE and RankedBatch."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skal import BADGE, ActiveLearner, CoreSet, RankedBatch
from skal.strategies import _diversity
from skal.strategies._base import embed
from skal.strategies._diversity import _Dissimilarity, gradient_factors


class DoublingClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression whose ``transform`` doubles its input: a stand-in for a network."""

    def fit(self, X, y):
        self.model_ = LogisticRegression().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def transform(self, X):
        return 2.0 * np.asarray(X, dtype=np.float64)


def labelled_learner(X_labeled):
    """A learner stub that only has a labelled set (embed falls back to raw features)."""
    return SimpleNamespace(X_labeled_=np.asarray(X_labeled, dtype=np.float64))


def reference_k_center(Z, L, batch_size):
    """Textbook greedy k-center with explicit float64 distances."""
    Z = np.asarray(Z, dtype=np.float64)
    dmin = np.full(len(Z), np.inf)
    for centre in np.asarray(L, dtype=np.float64):
        dmin = np.minimum(dmin, ((Z - centre) ** 2).sum(axis=1))
    chosen = []
    for _ in range(batch_size):
        best = int(np.argmax(dmin))
        chosen.append(best)
        dmin = np.minimum(dmin, ((Z - Z[best]) ** 2).sum(axis=1))
    return np.array(chosen)


# ---------------------------------------------------------------------------- embed
def test_embed_prefers_transform_then_pipeline_then_raw():
    X, y = make_blobs(60, centers=2, random_state=0)
    X_int = np.round(X).astype(int)
    assert embed(None, X_int).dtype == np.float64
    np.testing.assert_array_equal(embed(None, X_int), X_int)

    with_transform = ActiveLearner(DoublingClassifier()).fit(X, y)
    np.testing.assert_allclose(embed(with_transform, X[:5]), 2 * X[:5])

    pipe = ActiveLearner(make_pipeline(StandardScaler(), LogisticRegression())).fit(X, y)
    scaled = pipe.estimator_[0].transform(X[:5])
    np.testing.assert_allclose(embed(pipe, X[:5]), scaled)

    plain = ActiveLearner(LogisticRegression()).fit(X, y)
    np.testing.assert_array_equal(embed(plain, X[:5]), X[:5])
    # unfitted (cold start): raw features even though transform exists
    np.testing.assert_array_equal(embed(ActiveLearner(DoublingClassifier()), X[:5]), X[:5])
    assert embed(None, X.astype(np.float32)).dtype == np.float32


# ---------------------------------------------------------------------------- CoreSet
def test_coreset_picks_farthest_point_first():
    X = np.array([[0.0], [1.0], [2.0], [10.0], [4.0]])
    learner = labelled_learner([[0.5]])
    indices, radii = CoreSet().select(learner, X, 3)
    # 10 is farthest from 0.5; then 4 (6 from 10, 3.5 from 0.5 → 3.5 is its min); then 2 or 0
    assert indices[0] == 3
    np.testing.assert_allclose(radii[0], 9.5)
    assert indices[1] == 4
    np.testing.assert_allclose(radii[1], 3.5)


def test_coreset_cold_start_starts_far_from_the_mean():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0]])
    assert CoreSet()(None, X, 1)[0] == 3
    assert CoreSet()(None, X, 2)[1] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("data", ["uniform", "blobs"])
def test_coreset_matches_reference_implementation(dtype, data, monkeypatch):
    rng = np.random.RandomState(0)
    if data == "uniform":
        Z = rng.rand(3000, 20)
    else:  # clustered data defeats the lazy block and forces it to widen
        Z, _ = make_blobs(3000, n_features=5, centers=8, random_state=0)
    Z = Z.astype(dtype)
    L = Z[:30]
    pool = Z[30:]
    monkeypatch.setattr(_diversity, "_LAZY_BLOCK", 16)
    with config_context(working_memory=1):  # several chunks
        got = CoreSet()(labelled_learner(L), pool, 60)
    np.testing.assert_array_equal(got, reference_k_center(pool, L, 60))


def test_coreset_without_labels_matches_reference_after_first_pick():
    Z = np.random.RandomState(1).rand(500, 7)
    got = CoreSet()(None, Z, 20)
    ref_rest = reference_k_center(Z, Z[got[:1]], 19)
    np.testing.assert_array_equal(got[1:], ref_rest)


class TorchEmbeddingClassifier(DoublingClassifier):
    def transform(self, X):
        import torch

        return torch.as_tensor(np.asarray(X, dtype=np.float64))


def test_coreset_on_torch_embeddings_matches_numpy():
    pytest.importorskip("torch")
    X, y = make_blobs(400, n_features=6, centers=3, random_state=2)
    torch_learner = ActiveLearner(TorchEmbeddingClassifier()).fit(X[:10], y[:10])
    numpy_learner = ActiveLearner(LogisticRegression()).fit(X[:10], y[:10])
    got, radii = CoreSet().select(torch_learner, X[10:], 15)
    np.testing.assert_array_equal(got, reference_k_center(X[10:], X[:10], 15))
    np.testing.assert_array_equal(got, CoreSet()(numpy_learner, X[10:], 15))


# ---------------------------------------------------------------------------- BADGE
def test_badge_factorised_distances_equal_explicit_gradient_embeddings():
    rng = np.random.RandomState(0)
    proba = rng.dirichlet(np.ones(4), size=12)
    H = rng.randn(12, 5)
    A, sq_A, sq_H = gradient_factors(proba, H)
    onehot = np.eye(4)[proba.argmax(axis=1)]
    G = np.einsum("ic,id->icd", proba - onehot, H).reshape(12, -1)
    explicit = ((G[:, None, :] - G[None, :, :]) ** 2).sum(axis=2)
    factorised = (sq_A * sq_H)[:, None] + (sq_A * sq_H)[None, :] - 2 * (A @ A.T) * (H @ H.T)
    np.testing.assert_allclose(factorised, explicit, atol=1e-10)


def test_badge_first_pick_has_the_largest_gradient_norm():
    X, y = make_blobs(200, centers=3, random_state=0)
    learner = ActiveLearner(LogisticRegression()).fit(X[:30], y[:30])
    pool = X[30:]
    proba = learner.predict_proba(pool)
    A, sq_A, sq_H = gradient_factors(proba, pool)
    indices, scores = BADGE(random_state=0).select(learner, pool, 10)
    assert indices[0] == np.argmax(sq_A * sq_H)
    np.testing.assert_allclose(scores[0], (sq_A * sq_H).max())


# ---------------------------------------------------------------------------- RankedBatch
def fitted_learner():
    X, y = make_blobs(300, centers=3, cluster_std=2.0, random_state=0)
    learner = ActiveLearner(LogisticRegression()).fit(X[:20], y[:20])
    return learner, X[20:]


def test_ranked_batch_without_uncertainty_is_k_center():
    learner, pool = fitted_learner()
    got = RankedBatch(alpha=0.0)(learner, pool, 10)
    np.testing.assert_array_equal(got, CoreSet()(learner, pool, 10))


def test_ranked_batch_without_diversity_starts_with_the_least_confident():
    learner, pool = fitted_learner()
    got = RankedBatch(alpha=1.0)(learner, pool, 5)
    confidence = learner.predict_proba(pool).max(axis=1)
    np.testing.assert_array_equal(np.sort(got), np.sort(np.argsort(confidence)[:5]))


def test_angle_and_kl_dissimilarities_match_their_formulas():
    rng = np.random.RandomState(0)
    F = rng.randn(6, 3)
    angle = _Dissimilarity("angle", F, "linear", None)
    cos = (F @ F.T) / np.outer(np.linalg.norm(F, axis=1), np.linalg.norm(F, axis=1))
    np.testing.assert_allclose(angle.between(slice(None), F, angle.aux), 1 - np.abs(cos),
                               atol=1e-12)

    rbf = _Dissimilarity("angle", F, "rbf", {"gamma": 0.5})
    K = np.exp(-0.5 * ((F[:, None] - F[None]) ** 2).sum(axis=2))
    np.testing.assert_allclose(rbf.between(slice(None), F, rbf.aux), 1 - K, atol=1e-12)

    P = rng.dirichlet(np.ones(3), size=4)
    kl = _Dissimilarity("kl", P, None, None)
    R = ((P[:, None] - P[None]) * (np.log(P[:, None]) - np.log(P[None]))).sum(axis=2)
    np.testing.assert_allclose(kl.between(slice(None), P, kl.row_aux(np.arange(4))),
                               R / (1 + R), atol=1e-12)


@pytest.mark.parametrize("diversity", ["euclidean", "cosine", "angle", "kl"])
def test_ranked_batch_avoids_duplicates_of_labelled_rows(diversity):
    learner, pool = fitted_learner()
    # the first rows of the pool duplicate labelled rows: zero dissimilarity, never first
    pool = np.vstack([learner.X_labeled_, pool])
    got = RankedBatch(diversity=diversity, alpha=0.0)(learner, pool, 5)
    assert np.all(got >= len(learner.X_labeled_))


# ---------------------------------------------------------------------------- properties
def strategy_instances(seed):
    return [
        CoreSet(random_state=seed),
        CoreSet(cold_start="random", random_state=seed),
        BADGE(random_state=seed),
        RankedBatch(random_state=seed),
        RankedBatch(diversity="cosine", alpha=0.5, random_state=seed),
        RankedBatch(diversity="angle", kernel="rbf", random_state=seed),
        RankedBatch(diversity="kl", uncertainty="entropy", random_state=seed),
        RankedBatch(diversity="euclidean", uncertainty="margin", random_state=seed),
    ]


@settings(max_examples=25, deadline=None)
@given(
    n_pool=st.integers(5, 80),
    batch_size=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    duplicates=st.booleans(),
)
def test_diversity_properties(n_pool, batch_size, seed, duplicates):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_pool + 10, 3)
    if duplicates:
        X[::2] = X[0]
    y = np.arange(n_pool + 10) % 2
    learner = ActiveLearner(LogisticRegression()).fit(X[:10], y[:10])
    pool = X[10:]
    batch = min(batch_size, n_pool)
    for strategy in strategy_instances(seed):
        first = strategy(learner, pool, batch)
        assert first.shape == (batch,)
        assert np.unique(first).size == batch
        assert first.min() >= 0 and first.max() < n_pool
        np.testing.assert_array_equal(clone(strategy)(learner, pool, batch), first)


# ---------------------------------------------------------------------------- end to end
def test_grid_search_over_diversity_strategies():
    X, y = make_blobs(240, centers=3, cluster_std=1.0, random_state=0)
    search = GridSearchCV(
        ActiveLearner(budget=30, batch_size=5, random_state=0),
        {"query_strategy": [CoreSet(), BADGE(random_state=0), RankedBatch(diversity="kl")]},
        cv=2,
    ).fit(X, y)
    assert search.best_score_ > 0.8
    assert len(search.cv_results_["params"]) == 3


def test_badge_and_ranked_batch_reject_learners_without_predict_proba():
    with pytest.raises(TypeError, match="predict_proba"):
        BADGE()(None, np.zeros((4, 2)), 2)
    with pytest.raises(ValueError, match="diversity"):
        RankedBatch(diversity="nope")(fitted_learner()[0], np.zeros((4, 2)), 2)


def test_a_copy_of_a_lazy_k_center_state_taken_mid_update_stays_exact():
    # dask may pickle a block's state (spilling it, or sending it to another worker) while a
    # find() is tightening its bounds: a copy must never pair old distances with new
    # "checked" counts, so a copy re-checks its rows against every centre.
    import pickle

    from skal.strategies._diversity import LazyFarthest, k_center_greedy

    Z = np.random.RandomState(0).standard_normal((2000, 5)).astype(np.float32)
    expected, _ = k_center_greedy(Z, 20, np.full(2000, np.inf), first=0)
    state = LazyFarthest(Z, np.full(2000, np.inf), 20)
    state.add_centre(Z[0], 0)
    picks = [0]
    for step in range(19):
        stale_dmin = state.dmin.copy()
        _, best = state.find()
        # the worst copy: distances from before find(), counts from after it
        torn = pickle.loads(pickle.dumps(state))
        torn.dmin[:] = np.maximum(stale_dmin, state.dmin)
        assert not torn.checked.any() and torn.block is None
        state = torn if step % 2 else state
        _, best = state.find()
        picks.append(best)
        state.add_centre(Z[best], best)
    assert picks == expected.tolist()
