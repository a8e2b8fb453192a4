"""Real scikit-learn models whose predictions are set by hand, for known-answer tests.

A multinomial ``LogisticRegression`` computes ``softmax(X @ coef_.T + intercept_)``. With one
indicator feature per row and ``coef_ = log(P).T`` it predicts exactly the rows of ``P`` for
``X = eye(n)``: the real predict_proba code path, with probabilities chosen by hand.
"""

import numpy as np
from sklearn.linear_model import LogisticRegression

from skal import CommitteeLearner


def logistic_with_proba(proba):
    """A fitted LogisticRegression whose ``predict_proba(np.eye(n))`` equals ``proba``."""
    proba = np.asarray(proba, dtype=float)
    n_rows, n_classes = proba.shape
    model = LogisticRegression()
    model.classes_ = np.arange(n_classes)
    with np.errstate(divide="ignore"):
        model.coef_ = np.log(proba).T.copy()
    model.coef_[~np.isfinite(model.coef_)] = -1e3  # exp(-1000) == 0.0
    model.intercept_ = np.zeros(n_classes)
    model.n_features_in_ = n_rows
    model.n_iter_ = np.array([0])
    return model


def committee_with_proba(member_probas):
    """A fitted CommitteeLearner whose members predict ``member_probas[k]`` on ``eye(n)``."""
    members = [logistic_with_proba(p) for p in member_probas]
    committee = CommitteeLearner()
    committee.estimators_ = members
    committee.classes_ = members[0].classes_
    committee.n_features_in_ = members[0].n_features_in_
    return committee
