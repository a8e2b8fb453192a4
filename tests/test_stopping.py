"""Stopping criteria: known answers on models whose predictions are set by hand, and the
criteria inside the loop (budget mode, interactive, clone, grid search)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, make_friedman1
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
)

from skal import ActiveLearner, ActiveRegressor, CommitteeLearner, DecisionMargin
from skal.stopping import ConfidenceDrop, StabilizingPredictions, UncertaintyThreshold

X = np.arange(40, dtype=float).reshape(20, 2)


def constant(label):
    return DummyClassifier(strategy="constant", constant=label).fit(X, np.arange(20) % 2)


def prior(share_of_ones):
    n_ones = int(round(100 * share_of_ones))
    y = np.r_[np.ones(n_ones), np.zeros(100 - n_ones)].astype(int)
    return DummyClassifier(strategy="prior").fit(np.zeros((100, 2)), y)


@pytest.mark.parametrize("criterion_class",
                         [StabilizingPredictions, UncertaintyThreshold, ConfidenceDrop])
def test_criteria_follow_sklearn_parameter_conventions(criterion_class):
    name = criterion_class.__name__
    check_parameters_default_constructible(name, criterion_class())
    check_no_attributes_set_in_init(name, criterion_class())
    check_get_params_invariance(name, criterion_class())


# ------------------------------------------------------------------ known answers
def test_stabilizing_predictions_by_hand():
    # Constant models 0, 1, 1, 1, 1: kappas 0 (disagree), then 1, 1, 1 (identical). With a
    # window of 3 the means are 2/3 after the fourth model and 1 after the fifth.
    criterion = StabilizingPredictions(window=3, threshold=0.99, random_state=0)
    answers = [criterion.check(constant(c), X) for c in (0, 1, 1, 1, 1)]
    assert answers[:4] == [None] * 4
    assert "mean kappa 1.000" in answers[4]
    assert criterion.kappas_ == [0.0, 1.0, 1.0, 1.0]
    assert criterion.stop_set_.shape == X.shape  # a stop set of 2000 takes the whole pool


def test_stabilizing_predictions_kappa_matches_the_formula():
    # predictions [0,0,1,1] then [0,1,1,1]: agreement 3/4, chance 1/2 * 1/4 + 1/2 * 3/4 = 1/2,
    # kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2
    X_four = np.array([[0.0], [1.0], [2.0], [3.0]])
    first = LogisticRegression(C=100).fit(X_four, [0, 0, 1, 1])
    second = LogisticRegression(C=100).fit(np.array([[0.0], [0.5], [1.0], [3.0]]), [0, 1, 1, 1])
    assert first.predict(X_four).tolist() == [0, 0, 1, 1]
    assert second.predict(X_four).tolist() == [0, 1, 1, 1]
    criterion = StabilizingPredictions(window=1, threshold=0.6)
    assert criterion.check(first, X_four) is None
    assert criterion.check(second, X_four) is None
    assert criterion.kappas_ == [pytest.approx(0.5)]


def test_uncertainty_threshold_by_hand():
    model = prior(0.5)  # p = (1/2, 1/2) everywhere: entropy log 2 = 0.6931 nats
    assert UncertaintyThreshold(threshold=0.70).check(model, X).startswith("the largest")
    assert UncertaintyThreshold(threshold=0.69).check(model, X) is None
    assert UncertaintyThreshold(aggregate="mean", threshold=0.70).check(model, X).startswith(
        "the mean"
    )
    with pytest.raises(ValueError, match="aggregate must be 'max' or 'mean'"):
        UncertaintyThreshold(aggregate="median").check(model, X)


def test_svm_margin_exhaustion():
    # Schohn & Cohn: stop once no pool row lies inside the margin (|d| < 1).
    X_line = np.array([[-3.0], [-2.0], [2.0], [3.0]])
    svm = SVC(kernel="linear", C=100).fit(X_line, [0, 0, 1, 1])  # margin at |x| = 2
    criterion = UncertaintyThreshold(DecisionMargin(), threshold=-1.0)
    assert criterion.check(svm, np.array([[-4.0], [5.0]])) is not None
    assert criterion.check(svm, np.array([[-4.0], [0.5]])) is None


def test_confidence_drop_by_hand():
    # maximum probabilities 0.6, 0.9, 0.8, 0.7, 0.6: rises once, then falls three times
    criterion = ConfidenceDrop(patience=3)
    answers = [criterion.check(prior(share), X) for share in (0.6, 0.9, 0.8, 0.7, 0.6)]
    assert answers[:4] == [None] * 4
    assert "fell 3 times in a row" in answers[4]
    np.testing.assert_allclose(criterion.confidences_, [-0.4, -0.1, -0.2, -0.3, -0.4])


# ------------------------------------------------------------------ inside the loop
def test_budget_mode_stops_early_and_records_why():
    X_d, y_d = load_digits(return_X_y=True)
    learner = ActiveLearner(
        make_pipeline(StandardScaler(), LogisticRegression()),
        budget=600, batch_size=20,
        stopping=StabilizingPredictions(threshold=0.97, random_state=0),
        random_state=0,
    )
    seen = []
    learner.fit(X_d, y_d, on_cycle=lambda fitted, record: seen.append(record["stop"]))
    assert learner.n_labels_ < 600
    assert learner.stop_reason_.startswith("StabilizingPredictions: the last 3 models")
    assert learner.history_[-1]["stop"] == learner.stop_reason_
    assert all(record["stop"] is None for record in learner.history_[:-1])
    assert seen[-1] == learner.stop_reason_  # on_cycle sees the stop
    again = clone(learner).fit(X_d, y_d)  # fresh criteria, same run
    np.testing.assert_array_equal(again.labeled_indices_, learner.labeled_indices_)


def test_first_of_several_criteria_wins_and_none_never_stops():
    X_d, y_d = load_digits(return_X_y=True)
    learner = ActiveLearner(budget=200, batch_size=50, random_state=0,
                            stopping=[UncertaintyThreshold(threshold=-1.0),
                                      UncertaintyThreshold(threshold=10.0)]).fit(X_d, y_d)
    assert learner.n_labels_ == 10  # the second stops at once, after the initial fit
    assert learner.stop_reason_.startswith("UncertaintyThreshold: the largest")
    plain = ActiveLearner(budget=60, batch_size=25, random_state=0).fit(X_d, y_d)
    assert plain.n_labels_ == 60 and plain.stop_reason_ is None


def test_should_stop_in_a_loop_of_your_own():
    X_d, y_d = load_digits(return_X_y=True)
    y = np.full(len(y_d), -1)
    y[:100] = y_d[:100]
    learner = ActiveLearner(stopping=StabilizingPredictions(window=2, threshold=0.9,
                                                            random_state=0)).fit(X_d, y)
    unlabelled = np.arange(100, len(y_d))
    reasons = []
    for _ in range(6):
        reasons.append(learner.should_stop(X_d[unlabelled]))
        learner.teach(X_d[unlabelled[:1]], y_d[unlabelled[:1]])  # one label barely moves it
        unlabelled = unlabelled[1:]
    assert reasons[0] is None and any(r is not None for r in reasons)


def test_grid_search_over_stopping_criteria():
    X_d, y_d = load_digits(return_X_y=True)
    search = GridSearchCV(
        ActiveLearner(budget=100, batch_size=30, random_state=0),
        {"stopping": [None, UncertaintyThreshold(threshold=10.0)]}, cv=2,
    ).fit(X_d, y_d)
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] > scores[1]  # stopping after the initial 10 labels costs accuracy


def test_committee_learner_takes_criteria_too():
    X_d, y_d = load_digits(return_X_y=True)
    committee = CommitteeLearner(n_estimators=3, budget=200, batch_size=50, random_state=0,
                                 stopping=UncertaintyThreshold(threshold=10.0)).fit(X_d, y_d)
    assert committee.n_labels_ == 10


def test_bad_stopping_values_are_named():
    X_d, y_d = load_digits(return_X_y=True)
    with pytest.raises(TypeError, match="stopping must be a criterion from skal.stopping"):
        ActiveLearner(budget=30, stopping="early").fit(X_d, y_d)
    X_r, y_r = make_friedman1(n_samples=60, random_state=0)
    with pytest.raises(TypeError, match="judges classification and multilabel models"):
        ActiveRegressor(budget=30, stopping=StabilizingPredictions()).fit(X_r, y_r)
