"""Cold-start strategies: TypiClust and ProbCover."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV

from skal import ActiveLearner, CoreSet, MarginSampling, ProbCover, TypiClust
from skal.strategies._coldstart import cross_cluster_distance, typicality


def blobs(n_centers=6, seed=0, n_samples=600):
    centers = np.array([[10.0 * i, 10.0 * (i % 2)] for i in range(n_centers)])
    return make_blobs(n_samples, centers=centers, cluster_std=0.6, random_state=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("make", [lambda s: TypiClust(random_state=s),
                                  lambda s: ProbCover(random_state=s),
                                  lambda s: CoreSet(random_state=s)],
                         ids=["TypiClust", "ProbCover", "CoreSet"])
def test_cold_start_covers_every_cluster_in_the_first_batch(make, seed):
    X, y = blobs(seed=seed)
    picked = make(seed)(None, X, 6)
    assert sorted(y[picked]) == list(range(6))


@pytest.mark.parametrize("strategy", [TypiClust(random_state=0), ProbCover(random_state=0)],
                         ids=["TypiClust", "ProbCover"])
def test_labelled_clusters_are_skipped(strategy):
    X, y = blobs(n_centers=4)
    # one row of clusters 0 and 1: TypiClust makes 2 + 2 clusters, two of them labelled
    labelled = np.r_[np.flatnonzero(y == 0)[:1], np.flatnonzero(y == 1)[:1]]
    pool = np.setdiff1d(np.arange(len(y)), labelled)
    learner = SimpleNamespace(X_labeled_=X[labelled])
    picked = strategy(learner, X[pool], 2)
    assert sorted(y[pool][picked]) == [2, 3]


def test_typicality_is_highest_where_the_rows_are_dense():
    Z = np.array([[0.0], [0.1], [0.2], [0.3], [3.0], [4.0], [5.0], [20.0]])
    typ = typicality(Z, n_neighbors=2)
    assert np.argmax(typ) in (1, 2)
    np.testing.assert_allclose(typ[[1, 5, 7]], [10.0, 1.0, 1 / 15.5])


def test_typiclust_picks_the_densest_point_of_the_largest_cluster():
    rng = np.random.RandomState(0)
    big = np.r_[[[0.0, 0.0]], rng.uniform(-1, 1, size=(40, 2))]
    small = rng.uniform(-1, 1, size=(10, 2)) + 50
    X = np.vstack([big, small])
    indices, scores = TypiClust(n_neighbors=10, random_state=0).select(None, X, 2)
    assert indices[0] < len(big) and indices[1] >= len(big)
    members = np.arange(len(big))
    assert indices[0] == members[np.argmax(typicality(big, 10))]


def test_probcover_known_answer_with_fixed_radius():
    X = np.array([[0.0], [0.1], [0.2], [0.3], [0.4], [5.0], [5.1], [5.3], [9.0]])
    indices, gains = ProbCover(radius=0.25, random_state=0).select(None, X, 3)
    assert indices[0] == 2  # its ball holds 0.0 ... 0.4
    assert indices[1] == 6  # 5.0 ... 5.3
    np.testing.assert_array_equal(gains, [5, 3, 1])
    assert indices[2] == 8  # the only row left uncovered


def test_probcover_labelled_rows_cover_their_balls():
    X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
    learner = SimpleNamespace(X_labeled_=np.array([[0.1]]))
    picked = ProbCover(radius=0.25)(learner, X, 1)
    assert X[picked[0], 0] >= 5.0


def test_auto_radius_distance_to_other_clusters_is_exact():
    rng = np.random.RandomState(0)
    Z = rng.randn(60, 3)
    labels = rng.randint(3, size=60)
    D = np.sqrt(((Z[:, None] - Z[None]) ** 2).sum(axis=2))
    D[labels[:, None] == labels[None, :]] = np.inf
    np.testing.assert_allclose(cross_cluster_distance(Z, labels), D.min(axis=1), atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(n_pool=st.integers(3, 60), batch_size=st.integers(1, 10), seed=st.integers(0, 2**16),
       n_labeled=st.integers(0, 5))
def test_coldstart_properties(n_pool, batch_size, seed, n_labeled):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_pool, 2)
    X[: n_pool // 3] = X[0]  # duplicates
    learner = SimpleNamespace(X_labeled_=rng.randn(n_labeled, 2)) if n_labeled else None
    batch = min(batch_size, n_pool)
    for strategy in (TypiClust(random_state=seed), ProbCover(random_state=seed),
                     ProbCover(radius=0.3, random_state=seed)):
        picked = strategy(learner, X, batch)
        assert picked.shape == (batch,)
        assert np.unique(picked).size == batch
        assert picked.min() >= 0 and picked.max() < n_pool
        np.testing.assert_array_equal(clone(strategy)(learner, X, batch), picked)


@pytest.mark.parametrize("initial", [TypiClust(random_state=0), ProbCover(random_state=0)],
                         ids=["TypiClust", "ProbCover"])
def test_initial_strategy_of_a_simulated_run(initial):
    X, y = blobs()
    learner = ActiveLearner(
        query_strategy=MarginSampling(), initial_strategy=initial, n_initial=6, budget=20,
        batch_size=7, random_state=0,
    ).fit(X, y)
    first = learner.history_[0]["indices"]
    assert sorted(y[first]) == list(range(6))  # one row of every cluster to start with
    assert np.unique(learner.labeled_indices_).size == 20
    assert learner.score(X, y) > 0.95


def test_grid_search_over_initial_strategies():
    X, y = blobs(n_samples=300)
    search = GridSearchCV(
        ActiveLearner(budget=12, n_initial=6, batch_size=3, random_state=0),
        {"initial_strategy": [None, TypiClust(random_state=0), ProbCover(random_state=0)]},
        cv=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    assert search.best_score_ > 0.9


def test_invalid_parameters_raise():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="radius"):
        ProbCover(radius=-1.0)(None, X, 1)
    with pytest.raises(ValueError, match="kmeans"):
        TypiClust(kmeans="spectral")(None, X, 1)
