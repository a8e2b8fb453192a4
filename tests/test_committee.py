"""CommitteeLearner: members, alignment of their probabilities, and the committee loop."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_blobs
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from skal import CommitteeLearner
from skal.strategies import ConsensusEntropy, KLDivergence, VoteEntropy


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_bagged_members_are_seeded_and_differ(iris):
    X, y = iris
    committee = CommitteeLearner(DecisionTreeClassifier(), n_estimators=4, random_state=0)
    committee.fit(X, y)
    seeds = [m.random_state for m in committee.estimators_]
    assert len(set(seeds)) == 4 and all(isinstance(s, int) for s in seeds)
    samples = committee.predict_proba_samples(X)
    assert samples.shape == (4, 150, 3)
    assert any(not np.allclose(samples[0], samples[k]) for k in range(1, 4))
    refit = clone(committee).fit(X, y)
    np.testing.assert_array_equal(refit.predict_proba_samples(X), samples)


def test_member_probabilities_are_aligned_when_a_bootstrap_misses_a_class():
    X, y = make_blobs(n_samples=40, centers=3, random_state=1)
    y_known = np.full_like(y, -1)
    labelled = np.concatenate([np.flatnonzero(y == 0)[:8], np.flatnonzero(y == 1)[:8],
                               np.flatnonzero(y == 2)[:1]])  # one row of class 2
    y_known[labelled] = y[labelled]
    committee = CommitteeLearner(GaussianNB(), n_estimators=12, random_state=0).fit(X, y_known)
    member_classes = [tuple(m.classes_) for m in committee.estimators_]
    assert (0, 1) in member_classes  # some bootstrap missed class 2 ...
    assert (0, 1, 2) in member_classes  # ... and some did not
    samples = committee.predict_proba_samples(X)
    assert samples.shape == (12, 40, 3)
    np.testing.assert_allclose(samples.sum(axis=2), 1.0)
    for member, member_samples in zip(committee.estimators_, samples, strict=True):
        columns = np.searchsorted(committee.classes_, member.classes_)
        np.testing.assert_allclose(member_samples[:, columns], member.predict_proba(X))
        missing = np.setdiff1d(np.arange(3), columns)
        assert (member_samples[:, missing] == 0).all()
    np.testing.assert_allclose(committee.predict_proba(X), samples.mean(axis=0))
    np.testing.assert_array_equal(
        committee.predict(X), committee.classes_[samples.mean(axis=0).argmax(axis=1)]
    )


def test_heterogeneous_members_without_bootstrap(iris):
    X, y = iris
    members = [LogisticRegression(max_iter=500), GaussianNB(), RandomForestClassifier(10)]
    committee = CommitteeLearner(members, bootstrap=False, random_state=0).fit(X, y)
    assert [type(m) for m in committee.estimators_] == [type(m) for m in members]
    np.testing.assert_allclose(
        committee.predict_proba_samples(X)[1], GaussianNB().fit(X, y).predict_proba(X)
    )
    assert members[0].__dict__.get("coef_") is None  # the given members are not fitted


def test_members_without_predict_proba_vote_with_predict(iris):
    X, y = iris
    committee = CommitteeLearner(SVC(), n_estimators=3, query_strategy=VoteEntropy(),
                                 random_state=0).fit(X, y)
    samples = committee.predict_proba_samples(X)
    assert set(np.unique(samples)) <= {0.0, 1.0}
    np.testing.assert_array_equal(
        committee.classes_[samples[0].argmax(axis=1)], committee.estimators_[0].predict(X)
    )
    assert committee.query(X, 5).shape == (5,)


@pytest.mark.parametrize("strategy", [VoteEntropy(), KLDivergence(), ConsensusEntropy()])
def test_simulated_committee_run(iris, strategy):
    X, y = iris
    committee = CommitteeLearner(query_strategy=strategy, n_estimators=3, budget=40,
                                 batch_size=10, random_state=0).fit(X, y)
    assert [h["n_labels"] for h in committee.history_] == [10, 20, 30, 40]
    assert committee.score(X, y) > 0.8


def test_n_jobs_gives_the_same_committee(iris):
    X, y = iris
    serial = CommitteeLearner(RandomForestClassifier(10), n_estimators=4, budget=40,
                              random_state=0).fit(X, y)
    parallel = clone(serial).set_params(n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(serial.labeled_indices_, parallel.labeled_indices_)
    np.testing.assert_allclose(serial.predict_proba(X), parallel.predict_proba(X))


def test_partial_fit_committee(iris):
    X, y = iris
    committee = CommitteeLearner(SGDClassifier(loss="log_loss"), n_estimators=3,
                                 update="partial_fit", random_state=0).fit(X, y)
    members = list(committee.estimators_)
    committee.teach(X[:5], y[:5])
    assert all(a is b for a, b in zip(members, committee.estimators_, strict=True))


def test_grid_search_over_committee_parameters(iris):
    X, y = iris
    grid = GridSearchCV(
        CommitteeLearner(budget=30, random_state=0),
        {"n_estimators": [2, 3], "query_strategy": [VoteEntropy(), KLDivergence()]},
        cv=3,
    ).fit(X, y)
    assert grid.best_score_ > 0.8


def test_pickle_round_trip(iris):
    X, y = iris
    committee = CommitteeLearner(n_estimators=3, budget=30, random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(committee))
    np.testing.assert_allclose(restored.predict_proba_samples(X),
                               committee.predict_proba_samples(X))


def test_bad_committee_parameters(iris):
    X, y = iris
    with pytest.raises(ValueError, match="empty list"):
        CommitteeLearner([]).fit(X, y)
    with pytest.raises(ValueError, match="n_estimators must be a positive integer"):
        CommitteeLearner(n_estimators=0).fit(X, y)
