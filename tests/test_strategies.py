"""Known answers and properties of the classical query strategies."""

import math
import pickle

import numpy as np
import pytest
from _posteriors import committee_with_proba, logistic_with_proba
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from skal import ActiveLearner, CommitteeLearner
from skal.strategies import (
    ConsensusEntropy,
    DecisionMargin,
    EntropySampling,
    KLDivergence,
    LeastConfidence,
    MarginSampling,
    RandomSampling,
    VoteEntropy,
    top_k,
)

PROBA = np.array(
    [
        [0.5, 0.3, 0.2],
        [0.9, 0.05, 0.05],
        [0.34, 0.33, 0.33],
        [1.0, 0.0, 0.0],
    ]
)
X_ROWS = np.eye(4)


def test_least_confidence_known_answer():
    scores = LeastConfidence().score(logistic_with_proba(PROBA), X_ROWS)
    np.testing.assert_allclose(scores, [0.5, 0.1, 0.66, 0.0], atol=1e-12)


def test_margin_known_answer():
    scores = MarginSampling().score(logistic_with_proba(PROBA), X_ROWS)
    np.testing.assert_allclose(scores, [-0.2, -0.85, -0.01, -1.0], atol=1e-12)


def test_entropy_known_answer():
    expected = [
        -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)),
        -(0.9 * math.log(0.9) + 2 * 0.05 * math.log(0.05)),
        -(0.34 * math.log(0.34) + 2 * 0.33 * math.log(0.33)),
        0.0,
    ]
    scores = EntropySampling().score(logistic_with_proba(PROBA), X_ROWS)
    np.testing.assert_allclose(scores, expected, atol=1e-12)


def test_uncertainty_strategies_pick_the_known_best_rows():
    learner = logistic_with_proba(PROBA)
    assert LeastConfidence()(learner, X_ROWS, 2).tolist() == [2, 0]
    assert MarginSampling()(learner, X_ROWS, 2).tolist() == [2, 0]
    assert EntropySampling()(learner, X_ROWS, 2).tolist() == [2, 0]


def test_decision_margin_multiclass_known_answer():
    # decision_function of a LogisticRegression is X @ coef_.T + intercept_: set it by hand.
    decision = np.array([[2.0, 1.5, -1.0], [3.0, -2.0, 0.0], [0.1, 0.0, 0.05]])
    model = logistic_with_proba(np.full((3, 3), 1 / 3))
    model.coef_ = decision.T.copy()
    scores = DecisionMargin().score(model, np.eye(3))
    np.testing.assert_allclose(scores, [-0.5, -3.0, -0.05])
    assert DecisionMargin()(model, np.eye(3), 1).tolist() == [2]


def test_decision_margin_binary_uses_distance_to_hyperplane():
    X, y = make_blobs(n_samples=60, centers=2, random_state=0)
    svm = LinearSVC().fit(X, y)
    scores = DecisionMargin().score(svm, X)
    np.testing.assert_allclose(scores, -np.abs(svm.decision_function(X)))


def test_vote_entropy_known_answer():
    # Three members; row 0: votes (0, 0, 1), row 1: all vote 2, row 2: votes (0, 1, 2).
    members = [
        [[0.6, 0.4, 0.0], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]],
        [[0.7, 0.2, 0.1], [0.0, 0.2, 0.8], [0.2, 0.6, 0.2]],
        [[0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7]],
    ]
    scores = VoteEntropy().score(committee_with_proba(members), np.eye(3))
    two_thirds = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    np.testing.assert_allclose(scores, [two_thirds, 0.0, math.log(3)], atol=1e-12)


def test_kl_divergence_and_consensus_entropy_known_answer():
    members = [
        [[0.8, 0.1, 0.1], [0.5, 0.25, 0.25]],
        [[0.2, 0.4, 0.4], [0.5, 0.25, 0.25]],
    ]
    committee = committee_with_proba(members)
    # Row 0: both members against the consensus (0.5, 0.25, 0.25); row 1: they agree.
    kl_first = 0.8 * math.log(0.8 / 0.5) + 2 * 0.1 * math.log(0.1 / 0.25)
    kl_second = 0.2 * math.log(0.2 / 0.5) + 2 * 0.4 * math.log(0.4 / 0.25)
    np.testing.assert_allclose(
        KLDivergence().score(committee, np.eye(2)), [(kl_first + kl_second) / 2, 0.0], atol=1e-12
    )
    consensus_entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    np.testing.assert_allclose(
        ConsensusEntropy().score(committee, np.eye(2)), [consensus_entropy] * 2, atol=1e-12
    )


def test_committee_strategy_on_a_single_model_is_a_clear_type_error():
    X, y = make_blobs(n_samples=40, centers=3, random_state=0)
    learner = ActiveLearner(query_strategy=VoteEntropy()).fit(X, y)
    with pytest.raises(TypeError, match=r"VoteEntropy needs predict_proba_samples\(\)"):
        learner.query(X)


def test_proba_strategy_without_predict_proba_is_a_clear_type_error():
    X, y = make_blobs(n_samples=40, centers=3, random_state=0)
    learner = ActiveLearner(LinearSVC(), query_strategy=EntropySampling()).fit(X, y)
    with pytest.raises(TypeError, match="EntropySampling needs predict_proba"):
        learner.query(X)


def test_top_k_breaks_ties_at_random_but_reproducibly():
    scores = np.array([1.0, 5.0, 5.0, 5.0, 5.0, 0.0])
    picks = {tuple(top_k(scores, 2, random_state=seed)) for seed in range(30)}
    assert all(set(p) <= {1, 2, 3, 4} for p in picks)
    assert len(picks) > 3  # several tie-breaks occur
    assert tuple(top_k(scores, 2, random_state=7)) == tuple(top_k(scores, 2, random_state=7))
    assert top_k(np.array([0.0, 3.0, 1.0, 2.0]), 3).tolist() == [1, 3, 2]


def test_top_k_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN scores"):
        top_k(np.array([0.1, np.nan]), 1)


def test_strategies_clone_and_pickle():
    for strategy in (MarginSampling(random_state=3), VoteEntropy(random_state=1)):
        cloned = clone(strategy)
        assert cloned.get_params() == strategy.get_params()
        assert pickle.loads(pickle.dumps(strategy)).get_params() == strategy.get_params()


# ------------------------------------------------------------------------ properties
def _fitted_learners():
    X, y = make_blobs(n_samples=80, centers=3, n_features=4, random_state=0)
    single = LogisticRegression(max_iter=500).fit(X, y)
    committee = CommitteeLearner(n_estimators=3, random_state=0).fit(X, y)
    return single, committee


SINGLE, COMMITTEE = _fitted_learners()
SINGLE_STRATEGIES = [RandomSampling, LeastConfidence, MarginSampling, EntropySampling]
COMMITTEE_STRATEGIES = [VoteEntropy, KLDivergence, ConsensusEntropy]
pools = arrays(
    np.float64,
    st.tuples(st.integers(1, 40), st.just(4)),
    elements=st.floats(-10, 10, allow_nan=False),
)


@settings(max_examples=40, deadline=None)
@given(
    X_pool=pools,
    batch_size=st.integers(1, 50),
    strategy_index=st.integers(0, len(SINGLE_STRATEGIES) + len(COMMITTEE_STRATEGIES) - 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_indices_unique_in_range_and_sized(X_pool, batch_size, strategy_index, seed):
    classes = SINGLE_STRATEGIES + COMMITTEE_STRATEGIES
    strategy = classes[strategy_index](random_state=seed)
    learner = SINGLE if strategy_index < len(SINGLE_STRATEGIES) else COMMITTEE
    if batch_size > len(X_pool):
        with pytest.warns(UserWarning, match="larger than the pool"):
            indices = strategy(learner, X_pool, batch_size)
    else:
        indices = strategy(learner, X_pool, batch_size)
    assert len(indices) == min(batch_size, len(X_pool))
    assert len(set(indices.tolist())) == len(indices)
    assert indices.min() >= 0 and indices.max() < len(X_pool)
    # Same seed, same query.
    again = clone(strategy)
    if batch_size > len(X_pool):
        with pytest.warns(UserWarning):
            assert again(learner, X_pool, batch_size).tolist() == indices.tolist()
    else:
        assert again(learner, X_pool, batch_size).tolist() == indices.tolist()


@settings(max_examples=30, deadline=None)
@given(X_pool=pools, data=st.data())
def test_scores_are_invariant_to_row_order(X_pool, data):
    permutation = np.array(data.draw(st.permutations(range(len(X_pool)))))
    for strategy in (LeastConfidence(), MarginSampling(), EntropySampling()):
        scores = strategy.score(SINGLE, X_pool)
        np.testing.assert_allclose(strategy.score(SINGLE, X_pool[permutation]), scores[permutation])
    for strategy in (VoteEntropy(), KLDivergence(), ConsensusEntropy()):
        scores = strategy.score(COMMITTEE, X_pool)
        np.testing.assert_allclose(
            strategy.score(COMMITTEE, X_pool[permutation]), scores[permutation]
        )


def _distributions(n_members, n_rows, n_classes):
    return arrays(
        np.float64,
        (n_members, n_rows, n_classes),
        elements=st.floats(0.0, 1.0, allow_nan=False),
    ).filter(lambda a: (a.sum(axis=2) > 1e-3).all()).map(lambda a: a / a.sum(axis=2, keepdims=True))


@settings(max_examples=40, deadline=None)
@given(samples=_distributions(3, 5, 4))
def test_committee_score_bounds(samples):
    committee = committee_with_proba(samples)
    X = np.eye(5)
    kl = KLDivergence().score(committee, X)
    assert (kl >= 0).all()
    assert (EntropySampling().score(logistic_with_proba(samples[0]), X) <= math.log(4) + 1e-9).all()
    assert (ConsensusEntropy().score(committee, X) <= math.log(4) + 1e-9).all()
    assert (VoteEntropy().score(committee, X) <= math.log(3) + 1e-9).all()


@settings(max_examples=30, deadline=None)
@given(proba=_distributions(1, 6, 3))
def test_vote_entropy_and_kl_are_zero_when_members_agree(proba):
    committee = committee_with_proba([proba[0]] * 4)
    X = np.eye(6)
    np.testing.assert_allclose(VoteEntropy().score(committee, X), 0.0, atol=1e-12)
    np.testing.assert_allclose(KLDivergence().score(committee, X), 0.0, atol=1e-6)
