"""The learners: the active-learning loop (``_base``) around one estimator (``_active``) or a
committee (``_committee``), for classification, multi-label classification and regression."""

from skal.learners._active import ActiveLearner, ActiveRegressor
from skal.learners._committee import CommitteeLearner, CommitteeRegressor

__all__ = ["ActiveLearner", "ActiveRegressor", "CommitteeLearner", "CommitteeRegressor"]
