"""Known answers and properties of EPIG, information density and expected error reduction."""

import math

import numpy as np
import pytest
from _posteriors import committee_with_proba
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import cosine_similarity, rbf_kernel

import skal.strategies._density as density_module
import skal.strategies._prediction as prediction_module
from skal import ActiveLearner, CommitteeLearner
from skal.strategies import (
    BALD,
    EPIG,
    EntropySampling,
    ExpectedErrorReduction,
    InformationDensity,
    MarginSampling,
    bald_terms,
)
from skal.strategies._density import mean_similarity
from skal.strategies._prediction import epig_scores

X_BLOBS, Y_BLOBS = make_blobs(n_samples=60, centers=3, n_features=2, random_state=0)
COMMITTEE = CommitteeLearner(n_estimators=3, random_state=0).fit(X_BLOBS[::4], Y_BLOBS[::4])
SINGLE = LogisticRegression().fit(X_BLOBS[::4], Y_BLOBS[::4])
pools = arrays(np.float64, st.tuples(st.integers(2, 12), st.just(2)),
               elements=st.floats(-8, 8, allow_nan=False))


# ------------------------------------------------------------------------------ EPIG
# Two posterior samples, two classes, one pool row x and one target row x*.
MEMBERS = [np.array([[0.8, 0.2], [0.9, 0.1]]), np.array([[0.4, 0.6], [0.3, 0.7]])]


def test_epig_known_answer_by_hand():
    # joint p(y, y*) = (0.8*0.9 + 0.4*0.3, ...) / 2 = [[0.42, 0.18], [0.18, 0.22]]
    # marginals: p(y) = (0.6, 0.4), p(y*) = (0.6, 0.4)
    expected = (0.42 * math.log(0.42 / 0.36) + 2 * 0.18 * math.log(0.18 / 0.24)
                + 0.22 * math.log(0.22 / 0.16))
    samples = np.stack(MEMBERS)
    assert epig_scores(samples[:, :1], samples[:, 1:])[0] == pytest.approx(expected, rel=1e-12)
    # The same through the strategy and a real committee, with x* given as target_X.
    # (A third class of probability 0 changes nothing, and makes the hand-set logistic
    # members multinomial: sklearn's binary predict_proba is not a softmax.)
    committee = committee_with_proba([np.c_[m, [0.0, 0.0]] for m in MEMBERS])
    eye = np.eye(2)
    score = EPIG(target_X=eye[1:]).score(committee, eye[:1])
    assert score[0] == pytest.approx(expected, rel=1e-9)
    # Members that disagree completely on both rows: y tells y* exactly, log 2 nats.
    opposite = [np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
                np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])]
    assert EPIG(target_X=eye[1:]).score(committee_with_proba(opposite), eye[:1])[0] == (
        pytest.approx(math.log(2)))


def _epig_loop(P, Q):
    """EPIG by its definition, one pool row, target row and label pair at a time."""
    K, N, C = P.shape
    out = np.zeros(N)
    for n in range(N):
        for m in range(Q.shape[1]):
            p_y, p_t = P[:, n].mean(axis=0), Q[:, m].mean(axis=0)
            for c in range(C):
                for d in range(C):
                    joint = sum(P[k, n, c] * Q[k, m, d] for k in range(K)) / K
                    if joint > 0:
                        out[n] += joint * math.log(joint / (p_y[c] * p_t[d])) / Q.shape[1]
    return out


def _posteriors(n_samples, n_rows, n_classes):
    return arrays(np.float64, (n_samples, n_rows, n_classes),
                  elements=st.floats(0.0, 1.0, allow_nan=False)).filter(
        lambda a: (a.sum(axis=2) > 1e-3).all()).map(lambda a: a / a.sum(axis=2, keepdims=True))


@settings(max_examples=25, deadline=None)
@given(P=_posteriors(3, 5, 3), Q=_posteriors(3, 4, 3))
def test_epig_equals_the_definition_and_lies_within_its_bounds(P, Q):
    epig = epig_scores(P, Q)
    np.testing.assert_allclose(epig, _epig_loop(P, Q), atol=1e-10)
    # y - sample - y* is a Markov chain, so y tells no more about y* than about the sample.
    assert (epig >= 0).all()
    assert (epig <= bald_terms(P)[0] + 1e-9).all()
    assert (epig <= bald_terms(Q)[0].mean() + 1e-9).all()
    # One posterior sample: no disagreement, nothing to learn about y*.
    assert np.allclose(epig_scores(P[:1], Q[:1]), 0.0)
    # A target whose label names the sample (sample k predicts class k for sure): then y*
    # is the sample, and EPIG is BALD, mean_k KL(p_k || mean p).
    revealing = np.eye(3)[:, None, :]
    np.testing.assert_allclose(epig_scores(P, revealing), bald_terms(P)[0], atol=1e-10)


def test_epig_blocks_give_the_same_answer(monkeypatch):
    rng = np.random.RandomState(0)
    P = rng.dirichlet(np.ones(4), size=(5, 30))
    Q = rng.dirichlet(np.ones(4), size=(5, 7))
    whole = epig_scores(P, Q)
    monkeypatch.setattr(prediction_module, "_JOINT_BLOCK", 50)  # 1 pool row per block
    np.testing.assert_allclose(epig_scores(P, Q), whole, rtol=1e-12)


@settings(max_examples=15, deadline=None)
@given(X_pool=pools, data=st.data())
def test_epig_scores_are_invariant_to_row_order(X_pool, data):
    # The pool is smaller than n_target_samples, so the targets are the whole pool.
    permutation = np.array(data.draw(st.permutations(range(len(X_pool)))))
    scores = EPIG().score(COMMITTEE, X_pool)
    np.testing.assert_allclose(EPIG().score(COMMITTEE, X_pool[permutation]),
                               scores[permutation], rtol=1e-9, atol=1e-15)


def test_epig_same_seed_same_picks_and_prefers_rows_that_inform_the_targets():
    X_pool = np.random.RandomState(1).normal(scale=3, size=(300, 2))
    strategy = EPIG(n_target_samples=20, random_state=5)
    first = strategy(COMMITTEE, X_pool, 5)
    assert clone(strategy)(COMMITTEE, X_pool, 5).tolist() == first.tolist()
    # Targets in one corner: the picks move towards them, unlike BALD's.
    corner = X_pool[(X_pool[:, 0] > 3) & (X_pool[:, 1] > 3)]
    targeted = EPIG(target_X=corner, random_state=0)(COMMITTEE, X_pool, 5)
    bald = BALD(random_state=0)(COMMITTEE, X_pool, 5)
    distance = np.linalg.norm(X_pool - corner.mean(axis=0), axis=1)
    assert distance[targeted].mean() < distance[bald].mean()


def test_epig_target_x_must_match_the_pool():
    with pytest.raises(ValueError, match="target_X has 3 features per row but X_pool has 2"):
        EPIG(target_X=np.zeros((4, 3))).score(COMMITTEE, X_BLOBS)
    with pytest.raises(TypeError, match="predict_proba_samples"):
        EPIG()(SINGLE, X_BLOBS, 2)


# ---------------------------------------------------------------- information density
class _FixedScores:
    """A base strategy whose scores are given by hand."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=float)

    def score(self, learner, X_pool):
        return self.scores


def test_information_density_cosine_known_answer_by_hand():
    Z = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    # cosines: (0, 1) -> 0, (0, 2) -> (1, 2) -> 1/sqrt(2); each row counts itself (1)
    r = 1 / math.sqrt(2)
    density = np.array([(1 + (1 + 0 + r) / 3) / 2, (1 + (1 + 0 + r) / 3) / 2,
                        (1 + (1 + 2 * r) / 3) / 2])
    phi = np.array([0.5, 0.2, 0.3])
    strategy = InformationDensity(_FixedScores(phi), beta=2.0)
    np.testing.assert_allclose(strategy.score(None, Z), phi * density**2, rtol=1e-12)
    # density 0.9024 vs 0.7845: row 2 beats row 0 only once the density counts enough
    assert strategy(None, Z, 1).tolist() == [0]
    assert InformationDensity(_FixedScores([0.5, 0.2, 0.45]), beta=2.0)(None, Z, 1).tolist() == [2]


def test_information_density_rbf_known_answer_by_hand():
    Z = np.array([[0.0], [1.0], [3.0]])
    e = math.exp
    # exp(-0.5 d^2) for d = 1, 3, 2
    density = np.array([(1 + e(-0.5) + e(-4.5)) / 3, (e(-0.5) + 1 + e(-2.0)) / 3,
                        (e(-4.5) + e(-2.0) + 1) / 3])
    strategy = InformationDensity(_FixedScores([1.0, 1.0, 1.0]), similarity="rbf", gamma=0.5)
    np.testing.assert_allclose(strategy.score(None, Z), density, rtol=1e-12)


def test_mean_similarity_equals_the_full_matrix_mean(monkeypatch):
    Z = np.random.RandomState(0).normal(size=(40, 5))
    Z[3] = 0.0  # a zero row: cosine 0 to everything, itself included
    full = cosine_similarity(Z)
    np.testing.assert_allclose(mean_similarity(Z, "cosine"), ((1 + full) / 2).mean(axis=1),
                               atol=1e-12)
    monkeypatch.setattr(density_module, "_SIMILARITY_BLOCK", 100)  # 2 rows per block
    np.testing.assert_allclose(mean_similarity(Z, "rbf", gamma=0.3),
                               rbf_kernel(Z, gamma=0.3).mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(mean_similarity(Z, "rbf"),
                               rbf_kernel(Z, gamma=1 / 5).mean(axis=1), rtol=1e-10)


def test_rbf_reference_approximation_is_close_and_seeded():
    Z = np.random.RandomState(0).normal(size=(3000, 4))
    exact = InformationDensity(similarity="rbf", n_reference=None).density(None, Z)
    approximate = InformationDensity(similarity="rbf", n_reference=400)
    estimate = approximate.density(None, Z, random_state=0)
    # standard error at most 0.5 / sqrt(400) = 0.025 per row, much less for smooth kernels
    assert np.abs(estimate - exact).max() < 0.03
    np.testing.assert_array_equal(approximate.density(None, Z, random_state=0), estimate)


def test_information_density_with_a_negative_base_and_beta_zero():
    X_pool = np.random.RandomState(2).normal(scale=3, size=(50, 2))
    margin = MarginSampling(random_state=0)(SINGLE, X_pool, 5)
    assert InformationDensity(MarginSampling(), beta=0.0, random_state=0)(
        SINGLE, X_pool, 5).tolist() == margin.tolist()
    scores = InformationDensity(MarginSampling()).score(SINGLE, X_pool)
    assert (scores >= 0).all() and scores.min() == 0.0  # the least informative row
    entropy = EntropySampling().score(SINGLE, X_pool)
    dense = InformationDensity().score(SINGLE, X_pool)
    assert (dense <= entropy).all()  # the density lies in [0, 1]


@settings(max_examples=15, deadline=None)
@given(X_pool=pools, data=st.data(), similarity=st.sampled_from(["cosine", "rbf"]))
def test_information_density_is_invariant_to_row_order(X_pool, data, similarity):
    permutation = np.array(data.draw(st.permutations(range(len(X_pool)))))
    strategy = InformationDensity(similarity=similarity)
    scores = strategy.score(SINGLE, X_pool)
    np.testing.assert_allclose(strategy.score(SINGLE, X_pool[permutation]), scores[permutation],
                               rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------ expected error reduction
def _entropy(*p):
    return -sum(q * math.log(q) for q in p if q > 0)


@pytest.mark.parametrize("loss", ["zero_one", "log_loss"])
def test_expected_error_reduction_known_answer_by_hand(loss):
    # DummyClassifier predicts the class frequencies of its training labels for every row.
    X = np.arange(6.0)[:, None]
    y = np.array([0, 0, 1, -1, -1, -1])
    learner = ActiveLearner(DummyClassifier()).fit(X, y)
    # now (2/3, 1/3); after (x, 0): (3/4, 1/4) with p = 2/3; after (x, 1): (1/2, 1/2), p = 1/3
    if loss == "zero_one":
        now, after = 1 / 3, 2 / 3 * (1 / 4) + 1 / 3 * (1 / 2)
    else:
        now = _entropy(2 / 3, 1 / 3)
        after = 2 / 3 * _entropy(3 / 4, 1 / 4) + 1 / 3 * _entropy(1 / 2, 1 / 2)
    indices, scores = ExpectedErrorReduction(loss=loss, random_state=0).select(
        learner, X[3:], 3)
    assert sorted(indices.tolist()) == [0, 1, 2]
    np.testing.assert_allclose(scores, now - after, rtol=1e-12)


def test_expected_error_reduction_equals_explicit_refits():
    # 1-d data, logistic regression, three candidates; the refits written out in full.
    X_labeled = np.array([[-3.0], [-2.0], [-1.0], [1.5], [2.0], [3.0]])
    y_labeled = np.array([0, 0, 0, 1, 1, 1])
    X_pool = np.array([[-0.5], [0.4], [2.5]])
    learner = ActiveLearner(LogisticRegression()).fit(X_labeled, y_labeled)
    p_now = LogisticRegression().fit(X_labeled, y_labeled).predict_proba(X_pool)
    error_now = np.mean(1 - p_now.max(axis=1))
    expected = []
    for i in range(3):
        error = 0.0
        for c in (0, 1):
            model = LogisticRegression().fit(np.r_[X_labeled, X_pool[i:i + 1]],
                                             np.r_[y_labeled, c])
            error += p_now[i, c] * np.mean(1 - model.predict_proba(X_pool).max(axis=1))
        expected.append(error_now - error)
    expected = np.array(expected)
    indices, scores = ExpectedErrorReduction(random_state=0).select(learner, X_pool, 3)
    assert indices.tolist() == np.argsort(-expected).tolist()
    np.testing.assert_allclose(scores, expected[indices], rtol=1e-10, atol=1e-12)
    # The top pick alone, and one candidate: the most uncertain row.
    assert ExpectedErrorReduction(random_state=0)(learner, X_pool, 1)[0] == indices[0]
    only = ExpectedErrorReduction(n_candidates=1, random_state=0)(learner, X_pool, 1)
    assert only.tolist() == [int(np.argmax(-np.abs(p_now[:, 1] - 0.5)))]


def _eer_learner():
    return ActiveLearner(LogisticRegression(), random_state=0).fit(X_BLOBS[::6], Y_BLOBS[::6])


@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_expected_error_reduction_is_invariant_to_row_order(data):
    learner = _eer_learner()
    X_pool = X_BLOBS[1:40:9]
    permutation = np.array(data.draw(st.permutations(range(len(X_pool)))))
    strategy = ExpectedErrorReduction(n_candidates=None, n_evaluation=None)
    indices, scores = strategy.select(learner, X_pool, len(X_pool))
    by_row = dict(zip(indices.tolist(), scores, strict=True))
    indices_p, scores_p = strategy.select(learner, X_pool[permutation], len(X_pool))
    for i, s in zip(indices_p.tolist(), scores_p, strict=True):
        assert s == pytest.approx(by_row[int(permutation[i])], abs=1e-12)


def test_expected_error_reduction_subsampling_is_seeded():
    learner = _eer_learner()
    X_pool = X_BLOBS
    strategy = ExpectedErrorReduction(n_candidates=4, candidates="random", n_evaluation=10,
                                      random_state=3)
    first = strategy.select(learner, X_pool, 2)
    again = clone(strategy).select(learner, X_pool, 2)
    assert first[0].tolist() == again[0].tolist()
    np.testing.assert_array_equal(first[1], again[1])
    # A batch larger than n_candidates scores as many candidates as it needs.
    assert np.unique(strategy(learner, X_pool, 6)).size == 6


def test_expected_error_reduction_needs_a_labelled_set():
    with pytest.raises(TypeError, match="X_labeled_ and y_labeled_"):
        ExpectedErrorReduction()(SINGLE, X_BLOBS, 2)


@pytest.mark.slow
def test_expected_error_reduction_in_parallel_gives_the_same_picks():
    learner = _eer_learner()
    serial = ExpectedErrorReduction(random_state=0).select(learner, X_BLOBS, 3)
    learner.set_params(n_jobs=2)
    parallel = ExpectedErrorReduction(random_state=0).select(learner, X_BLOBS, 3)
    assert serial[0].tolist() == parallel[0].tolist()
    np.testing.assert_allclose(serial[1], parallel[1])
