"""What a learner's ``y`` is: class labels, a multi-label indicator matrix or numbers to
regress. The loop asks these small objects everything that depends on the kind of target
(which rows are unlabelled, whether a labelled set can train a model, what ``teach`` may
add), so that it has no ``if task == ...`` branches of its own.
"""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils.multiclass import check_classification_targets

from skal._validation import _is_nan, check_label_vector, label_kinds


class ClassTargets:
    """One class label per row; a model needs at least two classes."""

    kind = "classification"

    def check(self, y, missing_label, name="y"):
        """``y`` as a 1-d array and the mask of its unlabelled rows."""
        return check_label_vector(y, missing_label, name)

    def check_labeled(self, y, name="y"):
        check_classification_targets(y)

    def can_train(self, y):
        return np.unique(y).size > 1

    def check_trainable(self, y, where, missing_label):
        if not self.can_train(y):
            raise ValueError(
                f"{where} contains only one class ({y[0]!r}); a classifier needs at least two. "
                f"Label more rows (rows equal to missing_label={missing_label!r} count as "
                f"unlabelled; if {missing_label!r} is a class, as in -1/+1 labels, pass "
                "missing_label=None or another value no class uses)."
            )

    def missing_is_a_class(self, y, missing):
        """In a simulated run: does ``missing_label`` look like the second class of ``y``?"""
        return np.unique(y[~missing]).size == 1

    def unseen(self, y_new, learner):
        """Labels of ``y_new`` the fitted model has no output for."""
        return np.setdiff1d(np.unique(y_new), learner.classes_)

    def check_new(self, y_new, learner):
        """Refuse labels ``teach`` cannot add to a model fitted on ``learner.y_labeled_``."""
        check_classification_targets(y_new)
        new_kinds, fitted_kinds = label_kinds(y_new), label_kinds(learner.classes_)
        if new_kinds != fitted_kinds:
            raise TypeError(
                f"y_new holds {' and '.join(sorted(new_kinds))} labels but the learner's "
                f"classes_ {learner.classes_.tolist()} are "
                f"{' and '.join(sorted(fitted_kinds))}s; teach labels of the same type as the "
                "ones the learner was fitted with."
            )
        unseen = self.unseen(y_new, learner)
        if unseen.size and learner.update != "refit":
            # A refit learns a new class; an incremental update cannot add output units.
            raise ValueError(
                f"y_new contains labels {unseen.tolist()} not among the classes seen at fit "
                f"{learner.classes_.tolist()}; update={learner.update!r} cannot add a class. "
                "Use update='refit', or label a row of every class before fit."
            )

    def partial_fit_kwargs(self, learner):
        return {"classes": learner.classes_}


def _missing_rows(y, missing_label, name):
    """Rows of a 2-d ``y`` that are entirely ``missing_label``; partly missing rows are an
    error, since a learner takes a row's labels all at once."""
    if _is_nan(missing_label):
        entries = np.isnan(y) if y.dtype.kind == "f" else np.zeros(y.shape, dtype=bool)
    elif isinstance(missing_label, numbers.Number) and not isinstance(missing_label, bool):
        entries = y == missing_label
    else:
        entries = np.zeros(y.shape, dtype=bool)
    missing = entries.all(axis=1)
    partly = np.flatnonzero(entries.any(axis=1) & ~missing)
    if partly.size:
        raise ValueError(
            f"Row {partly[0]} of {name} (and {partly.size - 1} more) is partly "
            f"missing_label={missing_label!r}: a row is labelled or not as a whole. Mark every "
            "entry of an unlabelled row as missing, and give every entry of a labelled one."
        )
    return missing


def _as_2d_numbers(y, name, what):
    if sp.issparse(y):
        y = y.toarray()
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold numbers for {what}, got dtype {y.dtype}.") from None
    return y


class MultilabelTargets:
    """An indicator matrix: row ``i`` has label ``j`` when ``y[i, j] == 1``.

    An unlabelled row has ``missing_label`` in every column; a model needs at least two
    different label rows.
    """

    kind = "multilabel"

    def check(self, y, missing_label, name="y"):
        y = _as_2d_numbers(y, name, "multi-label targets (an indicator matrix)")
        if y.ndim != 2:
            raise ValueError(f"{name} must be 2-d (n_samples, n_labels), got shape {y.shape}.")
        missing = _missing_rows(y, missing_label, name)
        values = np.unique(y[~missing])
        if not np.isin(values, (0, 1)).all():
            raise ValueError(
                f"{name} is a multi-label indicator matrix, so labelled rows hold only 0 and 1; "
                f"found {values[~np.isin(values, (0, 1))][:5].tolist()}. Mark unlabelled rows "
                f"with missing_label={missing_label!r} in every column."
            )
        return y, missing

    def check_labeled(self, y, name="y"):
        check_classification_targets(y)

    def can_train(self, y):
        return np.unique(y, axis=0).shape[0] > 1

    def check_trainable(self, y, where, missing_label):
        if not self.can_train(y):
            raise ValueError(
                f"{where} holds one label row only ({y[0].tolist()}); a multi-label model "
                "needs at least two different ones. Label more rows."
            )

    def missing_is_a_class(self, y, missing):
        return False

    def unseen(self, y_new, learner):
        return np.empty(0)

    def check_new(self, y_new, learner):
        n_labels = learner.y_labeled_.shape[1]
        if y_new.shape[1] != n_labels:
            raise ValueError(
                f"y_new has {y_new.shape[1]} label columns but the learner was fitted with "
                f"{n_labels}; give every row all {n_labels} labels."
            )

    def partial_fit_kwargs(self, learner):
        return {"classes": [np.array([0, 1])] * learner.y_labeled_.shape[1]}


class RegressionTargets:
    """Numbers, one per row (shape ``(n,)``) or one per output (``(n, n_outputs)``)."""

    kind = "regression"

    def check(self, y, missing_label, name="y"):
        y = _as_2d_numbers(y, name, "regression")
        if y.ndim == 2 and y.shape[1] == 0 or y.ndim not in (1, 2):
            raise ValueError(
                f"{name} must be 1-d (n_samples,) or 2-d (n_samples, n_outputs), got shape "
                f"{y.shape}."
            )
        y = y.astype(np.float64, copy=False)
        if y.ndim == 1:
            missing = _missing_rows(y[:, None], missing_label, name)
        else:
            missing = _missing_rows(y, missing_label, name)
        labeled = y[~missing]
        if not np.isfinite(labeled).all():
            how = (
                "NaN marks an unlabelled row only with missing_label=np.nan"
                if np.isnan(labeled).any()
                else "infinite targets cannot be regressed"
            )
            raise ValueError(
                f"{name} holds NaN or infinite targets in labelled rows (missing_label="
                f"{missing_label!r}); {how}."
            )
        return y, missing

    def check_labeled(self, y, name="y"):
        pass

    def can_train(self, y):
        return True

    def check_trainable(self, y, where, missing_label):
        pass

    def missing_is_a_class(self, y, missing):
        return False

    def unseen(self, y_new, learner):
        return np.empty(0)

    def check_new(self, y_new, learner):
        fitted = learner.y_labeled_.shape[1:]
        if y_new.shape[1:] != fitted:
            raise ValueError(
                f"y_new has shape {y_new.shape} but the learner was fitted with "
                f"{_describe_outputs(fitted)}; give y_new the same number of outputs."
            )

    def partial_fit_kwargs(self, learner):
        return {}


def _describe_outputs(shape_tail):
    return "1-d targets" if not shape_tail else f"{shape_tail[0]} outputs per row"


def targets_for_classifier(y):
    """Class labels, or multi-label targets when ``y`` is a 2-d (or sparse) matrix of more
    than one column."""
    if sp.issparse(y):
        return MultilabelTargets()
    shape = getattr(y, "shape", None) or np.asarray(y).shape
    if len(shape) == 2 and shape[1] > 1:
        return MultilabelTargets()
    return ClassTargets()


def targets_for_regressor(y):
    return RegressionTargets()
