"""Semi-supervised estimators for the active-learning loop.

A learner fits any semi-supervised estimator (scikit-learn's ``SelfTrainingClassifier``,
``LabelSpreading``, ``LabelPropagation``, or :class:`CEAL`) on every row, the unlabelled ones
with the label -1, and a supervised one on the labelled rows only.
"""

from skal.semi_supervised._ceal import CEAL

__all__ = ["CEAL"]
