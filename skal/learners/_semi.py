"""Semi-supervised models in the loop: which models learn from unlabelled rows, and how those
rows are handed to them (scikit-learn's convention: the rows with the label -1).
"""

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.semi_supervised import LabelPropagation, LabelSpreading, SelfTrainingClassifier
from sklearn.utils.validation import _num_samples

from skal._validation import concat_rows, label_kinds

# scikit-learn's semi-supervised estimators take the unlabelled rows with this label.
UNLABELED = -1


def last_step(model):
    """The model itself, or a Pipeline's last step."""
    return model[-1] if isinstance(model, Pipeline) else model


def is_semi_supervised(model):
    """Does ``model`` (or a Pipeline's last step) learn from unlabelled rows marked -1?

    scikit-learn's semi-supervised estimators do (``SelfTrainingClassifier``,
    ``LabelPropagation``, ``LabelSpreading``), and so does any estimator whose class sets
    ``_skal_semi_supervised = True`` (e.g. :class:`skal.semi_supervised.CEAL`).
    """
    step = last_step(model)
    return isinstance(
        step, SelfTrainingClassifier | LabelPropagation | LabelSpreading
    ) or bool(getattr(step, "_skal_semi_supervised", False))


def with_unlabeled_rows(model, X, y, X_unlabeled, target_kind):
    """The labelled rows ``(X, y)`` followed by ``X_unlabeled`` with the label -1.

    Refuses what the convention cannot express: targets other than one class per row, -1
    used as a class, and (for label propagation, which sorts the labels with the mark)
    labels that are not numbers.
    """
    if target_kind != "classification":
        raise ValueError(
            "Semi-supervised estimators (SelfTrainingClassifier, LabelSpreading, CEAL, ...) "
            f"learn one class per row; the learner's targets are {target_kind}. Use a "
            "supervised estimator for them."
        )
    y = np.asarray(y)
    n_unlabeled = _num_samples(X_unlabeled)
    numbers_only = label_kinds(y) == {"number"}
    if numbers_only and n_unlabeled and (y == UNLABELED).any():
        raise ValueError(
            "-1 is one of the classes, but a semi-supervised estimator reads the label -1 as "
            "'unlabelled' (scikit-learn's convention). Encode the classes as 0..n_classes-1, "
            "e.g. with sklearn.preprocessing.LabelEncoder."
        )
    step = last_step(model)
    if not numbers_only and isinstance(step, LabelPropagation | LabelSpreading):
        raise ValueError(
            f"{type(step).__name__} needs numeric class labels (it is given the unlabelled "
            f"rows with the label -1); got labels {np.unique(y)[:5].tolist()}. Encode them "
            "first, e.g. with sklearn.preprocessing.LabelEncoder."
        )
    # Strings and the mark -1 share an object array, as SelfTrainingClassifier expects.
    dtype = np.result_type(y.dtype, np.int8) if numbers_only else object
    if n_unlabeled == 0:
        return X, y.astype(dtype)
    marks = np.full(n_unlabeled, UNLABELED, dtype=dtype)
    return concat_rows(X, X_unlabeled), np.concatenate([y.astype(dtype), marks])


def rows_not_taught(X_unlabeled, X_new):
    """Mask of the rows of ``X_unlabeled`` that are not (exactly) among the rows ``X_new``.

    A row a person has just labelled stops being an unlabelled row. Rows are compared by
    value; containers that cannot be compared row by row cheaply (sparse, lists) keep all.
    """
    keep = np.ones(_num_samples(X_unlabeled), dtype=bool)
    if sp.issparse(X_unlabeled) or sp.issparse(X_new) or isinstance(X_unlabeled, list):
        return keep
    unlabeled = np.asarray(X_unlabeled)
    new = np.asarray(X_new)
    if unlabeled.dtype == object or new.dtype == object:
        return keep
    dtype = np.result_type(unlabeled.dtype, new.dtype)

    def as_records(rows):  # one opaque value per row, so rows compare in one np.isin
        flat = np.ascontiguousarray(rows, dtype=dtype).reshape(len(rows), -1)
        return flat.view(np.dtype((np.void, flat.shape[1] * flat.itemsize))).ravel()

    return ~np.isin(as_records(unlabeled), as_records(new))


def pseudo_labeled_tail(model, n_unlabeled):
    """Which of the last ``n_unlabeled`` training rows ``model`` labelled itself, or None.

    Models that say so in ``labeled_iter_`` (``SelfTrainingClassifier``, ``CEAL``: 0 for a
    given label, a positive iteration for a pseudo-label, -1 for none) are asked; for the
    others (label propagation labels every row) it is None.
    """
    step = last_step(model)
    labeled_iter = getattr(step, "labeled_iter_", None)
    if labeled_iter is None or n_unlabeled == 0:
        return None
    return np.asarray(labeled_iter)[-n_unlabeled:] > 0
