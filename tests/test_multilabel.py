"""Multi-label active learning: indicator-matrix targets in ActiveLearner and the
multi-label strategies, with answers computed by hand."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, hamming_loss, make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import ClassifierChain, MultiOutputClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC

from skal import (
    MMC,
    ActiveLearner,
    AdaptiveMultilabel,
    CommitteeLearner,
    MarginSampling,
    MultilabelMargin,
    RandomSampling,
)
from skal.strategies._multilabel import (
    _hinge_error,
    _separation_margin,
    label_probabilities,
    mmc_loss_reduction,
)

X_M, Y_M = make_multilabel_classification(n_samples=200, n_features=10, n_classes=4,
                                          random_state=0)


def _unlabelled(Y, n_labelled):
    Y = np.array(Y, copy=True)
    Y[n_labelled:] = -1
    return Y


def ovr():
    return OneVsRestClassifier(LogisticRegression())


# ------------------------------------------------------------------ the learner
def test_indicator_matrix_with_unlabelled_rows():
    learner = ActiveLearner(ovr()).fit(X_M, _unlabelled(Y_M, 40))
    assert learner.target_kind_ == "multilabel"
    assert learner.y_labeled_.shape == (40, 4)
    assert isinstance(learner.query_strategy_, MultilabelMargin)
    np.testing.assert_array_equal(
        learner.predict(X_M), ovr().fit(X_M[:40], Y_M[:40]).predict(X_M)
    )
    # score is subset accuracy, as for scikit-learn's multi-label classifiers
    assert learner.score(X_M, Y_M) == pytest.approx(
        (learner.predict(X_M) == Y_M).all(axis=1).mean()
    )


def test_partly_labelled_row_is_refused():
    Y = _unlabelled(Y_M, 40)
    Y[5, 2] = -1
    with pytest.raises(ValueError, match="partly missing_label"):
        ActiveLearner(ovr()).fit(X_M, Y)


def test_values_other_than_zero_and_one_are_refused():
    Y = _unlabelled(Y_M, 40)
    Y[0, 0] = 2
    with pytest.raises(ValueError, match="only 0 and 1"):
        ActiveLearner(ovr()).fit(X_M, Y)


def test_teach_needs_every_label_column():
    learner = ActiveLearner(ovr()).fit(X_M, _unlabelled(Y_M, 40))
    learner.teach(X_M[40:42], Y_M[40:42])
    assert learner.n_labels_ == 42
    with pytest.raises(ValueError, match="3 label columns but the learner was fitted with 4"):
        learner.teach(X_M[42:44], Y_M[42:44, :3])


ESTIMATORS = [ovr(), MultiOutputClassifier(LogisticRegression()),
              ClassifierChain(LogisticRegression()), KNeighborsClassifier(),
              OneVsRestClassifier(LinearSVC())]
STRATEGIES = [MultilabelMargin(), MultilabelMargin(aggregate="mean"), MMC(), RandomSampling()]


# every estimator with the default strategy, every strategy with two estimators (slow set)
@pytest.mark.parametrize(
    ("estimator", "strategy"),
    [(e, MultilabelMargin()) for e in ESTIMATORS]
    + [pytest.param(e, s, marks=pytest.mark.slow)
       for e in (ESTIMATORS[3], ESTIMATORS[4]) for s in STRATEGIES[1:]],
    ids=lambda p: repr(p) if not hasattr(p, "fit") else type(p).__name__,
)
def test_budget_mode_with_every_multilabel_estimator(estimator, strategy):
    learner = ActiveLearner(estimator, strategy, budget=40, batch_size=10, random_state=0)
    learner.fit(X_M, Y_M)
    assert learner.n_labels_ == 40 and len(learner.history_) == 4
    np.testing.assert_array_equal(clone(learner).fit(X_M, Y_M).labeled_indices_,
                                  learner.labeled_indices_)


def test_committee_learner_says_to_use_active_learner_for_multilabel():
    with pytest.raises(ValueError, match="OneVsRestClassifier"):
        CommitteeLearner().fit(X_M, _unlabelled(Y_M, 40))


def test_single_label_strategy_on_multilabel_data_is_named():
    with pytest.raises(TypeError, match="MarginSampling handles classification targets"):
        ActiveLearner(ovr(), MarginSampling(), budget=30, random_state=0).fit(X_M, Y_M)


def test_grid_search_with_f1_and_hamming_scoring():
    search = GridSearchCV(
        ActiveLearner(ovr(), budget=40, batch_size=10, random_state=0),
        {"query_strategy": [RandomSampling(), MultilabelMargin(), MMC()]},
        scoring={"micro_f1": "f1_micro", "macro_f1": "f1_macro",
                 "hamming": make_scorer(hamming_loss, greater_is_better=False)},
        refit="micro_f1",
        cv=3,
    ).fit(X_M, Y_M)
    assert 0.4 < search.best_score_ <= 1.0
    best = search.best_estimator_
    assert f1_score(Y_M, best.predict(X_M), average="micro") > 0.4
    assert hamming_loss(Y_M, best.predict(X_M)) < 0.4


# ------------------------------------------------------------------ known answers
def test_label_probabilities_from_every_layout():
    for estimator in (ovr(), MultiOutputClassifier(LogisticRegression()),
                      KNeighborsClassifier()):
        learner = ActiveLearner(estimator).fit(X_M, _unlabelled(Y_M, 60))
        P = label_probabilities(learner, X_M[60:65], "test")
        raw = learner.predict_proba(X_M[60:65])
        expected = raw if not isinstance(raw, list) else np.column_stack(
            [part[:, 1] for part in raw]
        )
        np.testing.assert_allclose(P, expected)


def test_multilabel_margin_by_hand():
    learner = ActiveLearner(ovr()).fit(X_M, _unlabelled(Y_M, 60))
    P = learner.predict_proba(X_M[60:])
    f = learner.decision_function(X_M[60:])  # preferred over 2p - 1 where present
    np.testing.assert_allclose(MultilabelMargin().score(learner, X_M[60:]),
                               -np.abs(f).min(axis=1))
    np.testing.assert_allclose(MultilabelMargin("mean").score(learner, X_M[60:]),
                               -np.abs(f).mean(axis=1))
    knn = ActiveLearner(KNeighborsClassifier()).fit(X_M, _unlabelled(Y_M, 60))
    P = np.column_stack([part[:, 1] for part in knn.predict_proba(X_M[60:])])
    np.testing.assert_allclose(MultilabelMargin().score(knn, X_M[60:]),
                               -np.abs(2 * P - 1).min(axis=1))


def test_mmc_loss_reduction_by_hand():
    f = np.array([[0.8, -0.3, 0.1], [0.2, 0.4, -0.9]])
    counts = np.array([1, 2])
    # row 0: labels {0}: (1-0.8)/2 + (1-0.3)/2 + (1+0.1)/2 = 0.1 + 0.35 + 0.55 = 1.0
    # row 1: labels {1, 0}: (1-0.2)/2 + (1-0.4)/2 + (1-0.9)/2 = 0.4 + 0.3 + 0.05 = 0.75
    np.testing.assert_allclose(mmc_loss_reduction(f, counts), [1.0, 0.75])


def test_mmc_predicts_label_counts_from_the_labelled_rows():
    learner = ActiveLearner(OneVsRestClassifier(LinearSVC())).fit(X_M, _unlabelled(Y_M, 80))
    scores = MMC().score(learner, X_M[80:])
    assert scores.shape == (120,) and np.isfinite(scores).all()
    # every row has the same number of labels: the count is that number, no model needed
    Y_two = np.zeros_like(Y_M)
    Y_two[:, :2] = 1
    Y_two[::2] = [0, 1, 1, 0]
    learner = ActiveLearner(ovr()).fit(X_M, _unlabelled(Y_two, 80))
    f = learner.decision_function(X_M[80:])
    np.testing.assert_allclose(MMC().score(learner, X_M[80:]),
                               mmc_loss_reduction(f, np.full(120, 2)))


def test_separation_margin_and_hinge_error_by_hand():
    f = np.array([[0.5, 0.2, -0.1, -0.7], [-0.3, -0.6, -0.8, -0.9]])
    # row 0: lowest positive 0.2 minus highest negative -0.1; row 1: 0 minus -0.3
    np.testing.assert_allclose(_separation_margin(f), [0.3, 0.3])
    # row 0: worst positive 1 - 0.2 = 0.8, worst negative 1 - 0.1 = 0.9; row 1: 0 + 0.7
    np.testing.assert_allclose(_hinge_error(f), [1.7, 0.7])


def test_adaptive_chooses_a_beta_and_is_reproducible():
    learner = ActiveLearner(OneVsRestClassifier(LinearSVC()), AdaptiveMultilabel(),
                            budget=40, batch_size=5, random_state=0).fit(X_M, Y_M)
    assert learner.n_labels_ == 40
    assert learner.query_strategy_.beta_ in np.round(np.linspace(0, 1, 11), 1)
    again = clone(learner).fit(X_M, Y_M)
    np.testing.assert_array_equal(again.labeled_indices_, learner.labeled_indices_)


def test_adaptive_with_one_beta_is_that_measure():
    learner = ActiveLearner(OneVsRestClassifier(LinearSVC())).fit(X_M, _unlabelled(Y_M, 60))
    f = learner.decision_function(X_M[60:])
    pick = AdaptiveMultilabel(betas=(1.0,))(learner, X_M[60:], 1)
    assert pick[0] == np.argmin(_separation_margin(f))  # u = 1 / sep: max u = min sep
    with pytest.raises(ValueError, match=r"betas must be .* in \[0, 1\]"):
        AdaptiveMultilabel(betas=(1.5,))(learner, X_M[60:], 1)


@pytest.mark.parametrize("strategy", [MultilabelMargin(), MultilabelMargin("mean"), MMC()],
                         ids=repr)
def test_scores_do_not_depend_on_row_order(strategy):
    learner = ActiveLearner(ovr()).fit(X_M, _unlabelled(Y_M, 60))
    pool = X_M[60:]
    order = np.random.RandomState(0).permutation(len(pool))
    np.testing.assert_allclose(strategy.score(learner, pool)[order],
                               strategy.score(learner, pool[order]))
