"""Input checks shared by the learners: unlabelled-row masks, label vectors, row containers."""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils import assert_all_finite
from sklearn.utils.validation import _num_samples, column_or_1d

# Above this magnitude a feature's square overflows float64 (sqrt of the largest float64,
# with room for sums over a few thousand features).
_HUGE = 1e150


def _is_nan(value):
    return isinstance(value, numbers.Real) and value != value


def _same_label(value, missing_label):
    if value is None or isinstance(value, str) != isinstance(missing_label, str):
        return False
    return bool(value == missing_label)


def missing_mask(y, missing_label):
    """Boolean mask of the rows of ``y`` whose label equals ``missing_label``.

    ``missing_label`` may be a number (``-1``, as in ``sklearn.semi_supervised``), ``np.nan``
    (float labels) or ``None`` (object and string labels); NaN matches NaN.
    """
    y = np.asarray(y)
    if missing_label is None:
        if y.dtype.kind != "O":
            return np.zeros(y.shape[0], dtype=bool)
        return np.fromiter((v is None for v in y), dtype=bool, count=y.shape[0])
    if _is_nan(missing_label):
        if y.dtype.kind == "f":
            return np.isnan(y)
        if y.dtype.kind == "O":
            return np.fromiter((_is_nan(v) for v in y), dtype=bool, count=y.shape[0])
        return np.zeros(y.shape[0], dtype=bool)
    if y.dtype.kind == "O":
        return np.fromiter(
            (_same_label(v, missing_label) for v in y), dtype=bool, count=y.shape[0]
        )
    if y.dtype.kind in "biuf" and isinstance(missing_label, numbers.Number):
        return y == missing_label
    if y.dtype.kind in "US" and isinstance(missing_label, str):
        return y == missing_label
    return np.zeros(y.shape[0], dtype=bool)


def check_label_vector(y, missing_label, name="y"):
    """Return ``y`` as a 1-d array and the mask of its unlabelled rows, with clear errors.

    Raises a ``ValueError`` when ``y`` holds ``None`` or NaN that ``missing_label`` does not
    mark, because those rows would otherwise be trained on as a class of their own or crash
    deep inside the estimator.
    """
    y = column_or_1d(y, warn=True)
    missing = missing_mask(y, missing_label)
    labeled = y[~missing]
    if labeled.dtype.kind == "O":
        if any(v is None for v in labeled):
            raise ValueError(
                f"{name} contains None but missing_label={missing_label!r}; set missing_label=None "
                "to mark unlabelled rows with None."
            )
        if any(_is_nan(v) for v in labeled):
            raise ValueError(
                f"{name} contains NaN but missing_label={missing_label!r}; set "
                "missing_label=np.nan to mark unlabelled rows with NaN."
            )
    elif labeled.dtype.kind == "f" and np.isnan(labeled).any():
        raise ValueError(
            f"{name} contains NaN but missing_label={missing_label!r}; set missing_label=np.nan "
            "to mark unlabelled rows with NaN."
        )
    kinds = label_kinds(labeled)
    if len(kinds) > 1:
        raise TypeError(
            f"{name} mixes numbers and strings as labels (e.g. "
            f"{_first_of_each_kind(labeled)}); use one type for every label, e.g. all "
            "strings."
        )
    return y, missing


def label_kinds(labels):
    """The kinds of values in ``labels``: a subset of ``{"number", "string"}``."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "biuf":
        return {"number"} if labels.size else set()
    if labels.dtype.kind in "US":
        return {"string"} if labels.size else set()
    return {_kind(v) for v in labels}


def _kind(value):
    if isinstance(value, str | bytes | np.str_):
        return "string"
    if isinstance(value, numbers.Number):
        return "number"
    return type(value).__name__


def _first_of_each_kind(labels):
    seen = {}
    for value in labels:
        seen.setdefault(_kind(value), value)
    return ", ".join(repr(v) for v in seen.values())


def as_row_container(X):
    """Make ``X`` row-indexable without copying arrays or DataFrames.

    Sparse inputs become CSR (COO and DOK cannot be indexed by rows); lists and tuples stay
    lists, so pipelines that take text keep working.
    """
    if sp.issparse(X):
        return X.tocsr()
    if hasattr(X, "iloc") or isinstance(X, np.ndarray):
        return X
    if isinstance(X, list | tuple):
        return list(X)
    return np.asarray(X)


def concat_rows(first, second):
    """Stack the rows of ``second`` below ``first``, keeping ``first``'s container type."""
    if hasattr(first, "iloc"):
        import pandas as pd

        if not hasattr(second, "iloc"):
            second = pd.DataFrame(np.asarray(second), columns=first.columns)
        return pd.concat([first, second], axis=0)
    if sp.issparse(first):
        return sp.vstack([first, sp.csr_matrix(second)], format="csr")
    if isinstance(first, list):
        return first + list(second)
    if hasattr(second, "iloc"):
        second = second.to_numpy()
    elif sp.issparse(second):
        second = second.toarray()
    return np.concatenate([first, np.asarray(second)], axis=0)


def check_finite_numeric(X, name="X"):
    """Raise a ``ValueError`` if a numeric array or sparse matrix holds NaN, infinity, or
    values so large that their squares overflow.

    Other inputs (DataFrames, text) are left to the estimator, which knows what it accepts.
    """
    values = X.data if sp.issparse(X) else X
    if isinstance(values, np.ndarray) and values.dtype.kind == "O":
        try:  # numbers stored as objects are cast to float by the estimator: check them too
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            return  # text or mixed columns: the estimator knows what it accepts
    if isinstance(values, np.ndarray) and values.dtype.kind in "fc":
        assert_all_finite(values, input_name=name)
        # Squares of values this large overflow float64: estimators then hang (LinearSVC's
        # solver never returns) or learn garbage, far from the cause.
        largest = float(np.abs(values).max()) if values.size else 0.0
        if largest > _HUGE:
            raise ValueError(
                f"{name} holds values up to {largest:.3g}; their squares overflow float64, "
                "which makes estimators fail or hang far from the cause. Scale the features, "
                "e.g. with StandardScaler in a Pipeline inside the learner."
            )


def check_same_length(X, y, X_name="X", y_name="y"):
    n_X, n_y = _num_samples(X), _num_samples(y)
    if n_X != n_y:
        raise ValueError(f"{X_name} has {n_X} rows but {y_name} has {n_y} labels.")


def label_costs_of(label_cost, X, name="label_cost"):
    """Per-row annotation costs of the rows ``X``: positive finite floats, shape (n_rows,).

    ``label_cost`` is ``None`` (every label costs 1), a column of ``X`` (a DataFrame column
    name, or an integer position in an array's columns) or a callable ``label_cost(X) ->
    costs``.
    """
    n_rows = _num_samples(X)
    if label_cost is None:
        return np.ones(n_rows)
    if callable(label_cost):
        values = label_cost(X)
    elif isinstance(label_cost, str | numbers.Integral) and not isinstance(label_cost, bool):
        try:
            values = X[label_cost] if hasattr(X, "iloc") else np.asarray(X)[:, label_cost]
        except (KeyError, IndexError, TypeError) as error:
            raise ValueError(
                f"{name}={label_cost!r} names no column of X ({error}); give a DataFrame "
                "column name, an array column position, or a callable X -> costs."
            ) from None
    else:
        raise TypeError(
            f"{name} must be None, a column of X (name or position) or a callable "
            f"X -> costs, got {type(label_cost).__name__}."
        )
    try:
        costs = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{name} gave costs that are not numbers.") from None
    if costs.shape != (n_rows,):
        raise ValueError(f"{name} gave {costs.size} costs for {n_rows} rows; give one per row.")
    if not np.isfinite(costs).all() or (costs <= 0).any():
        raise ValueError(
            f"{name} gave costs that are not all positive and finite (smallest "
            f"{np.nanmin(costs) if costs.size else 0!r}); every label must cost more than 0."
        )
    return costs
