"""ActiveLearner: a scikit-learn meta-estimator that runs the active-learning loop.

The loop itself (fit on the labelled rows, query, teach, and the simulated run against an
oracle) lives in :class:`BaseActiveLearner`; subclasses only say how the model is fitted,
updated and asked for predictions.
"""

import numbers
import time
import warnings
from abc import ABCMeta, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils import TransformerTags, check_random_state, get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _num_samples, check_is_fitted, validate_data

from skal._validation import (
    as_row_container,
    check_finite_numeric,
    check_same_length,
    concat_rows,
    label_costs_of,
)
from skal.learners._semi import (
    is_semi_supervised,
    pseudo_labeled_tail,
    rows_not_taught,
    with_unlabeled_rows,
)
from skal.learners._semi import (
    last_step as _last_step,
)
from skal.stopping._criteria import first_stop_reason, fresh_criteria
from skal.strategies._base import (
    check_query_strategy,
    check_row_indices,
    column_layout,
    counting_rows_once,
    gather_rows,
    is_dask_pool,
    num_rows,
    select_with_scores,
    take_rows,
)
from skal.strategies._uncertainty import RandomSampling

_UPDATE_MODES = ("refit", "warm_start", "partial_fit")
_MAX_SEED = np.iinfo(np.int32).max


def default_estimator():
    """The classifier used when ``estimator=None``."""
    return LogisticRegression(max_iter=1000)


def seed_estimator(estimator, seed, overwrite):
    """Set every ``random_state`` parameter of ``estimator`` (nested ones too) to ``seed``.

    With ``overwrite=False`` only parameters left at ``None`` are set, so a seed the user chose
    is kept.
    """
    params = {
        key: seed
        for key, value in estimator.get_params(deep=True).items()
        if (key == "random_state" or key.endswith("__random_state"))
        and (overwrite or value is None)
    }
    if params:
        estimator.set_params(**params)
    return estimator


def enable_warm_start(estimator):
    """Set every ``warm_start`` parameter of ``estimator`` to True; error if there is none."""
    keys = [
        key
        for key in estimator.get_params(deep=True)
        if key == "warm_start" or key.endswith("__warm_start")
    ]
    if not keys:
        raise ValueError(
            f"update='warm_start' needs an estimator with a warm_start parameter; "
            f"{type(estimator).__name__} has none. Use update='refit' or 'partial_fit'."
        )
    estimator.set_params(**dict.fromkeys(keys, True))
    return estimator


def _check_positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}.")
    return int(value)


def _model_has(attr, through_pipeline=False):
    """For ``available_if``: does the (fitted, else configured) model offer ``attr``?

    With ``through_pipeline``, a Pipeline qualifies when its last step offers ``attr``
    (Pipeline forwards only scikit-learn's own methods).
    """

    def check(self):
        models = self._models_for_delegation()
        if through_pipeline:
            models = [_last_step(model) for model in models]
        return all(hasattr(model, attr) for model in models)

    return check


def _affordable(rows, scores, costs, left):
    """The leading ``rows`` (in the strategy's order) whose costs add up to at most ``left``."""
    keep = int(np.searchsorted(np.cumsum(costs[rows]), left * (1 + 1e-12), side="right"))
    return rows[:keep], None if scores is None else scores[:keep]


class BaseActiveLearner(MetaEstimatorMixin, BaseEstimator, metaclass=ABCMeta):
    """The active-learning loop shared by every learner.

    Subclasses implement ``_fit_model``, ``_update_model``, ``_default_strategy`` and
    ``_models_for_delegation``, name the attribute that holds the fitted model
    (``_model_attribute``), and say what ``y`` is with ``_target_rules(y)`` (an object of
    :mod:`skal.learners._targets`); a classifier or regressor mixin gives ``score``.
    """

    _model_attribute = "estimator_"

    # ------------------------------------------------------------------ public API
    def fit(self, X, y, *, initial_rows=None, on_cycle=None):
        """Fit on the labelled rows of ``X``, or run a simulated active-learning loop.

        With ``budget=None`` the model is trained on the rows of ``y`` that are not
        ``missing_label``. With ``budget=B``, ``y`` is the oracle: starting from
        ``n_initial`` rows (or ``initial_rows``), ``batch_size`` rows are queried per cycle
        and their labels revealed until ``B`` labels are used; the final model is trained on
        those rows only, in pool order (the order of ``X``), so that an order-sensitive
        estimator gets the same training set however the rows were acquired.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (n_samples, n_features)
            All rows, labelled and not. Anything the estimator accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Labels (classifiers: a class per row, or a 0/1 indicator matrix for multi-label
            data; regressors: numbers). Rows equal to ``missing_label`` (in every column)
            are unlabelled.
        initial_rows : array-like of bool of shape (n_samples,) or of int, default=None
            Simulated runs only: the initial labelled set, given directly instead of drawn
            by ``initial_strategy`` (``n_initial`` is then ignored), e.g. to reproduce a
            published protocol. A boolean mask is split along with ``X`` by
            ``cross_val_score`` and ``GridSearchCV`` (pass it as a fit parameter there);
            integer indices are positions in ``X``.
        on_cycle : callable, default=None
            Called as ``on_cycle(learner, record)`` after every fit of the run (the initial
            fit included), with the learner trained on the labelled rows so far and
            ``record`` the new ``history_`` entry, e.g. to score each cycle's model on a
            test set. ``record["event"]`` tells the fits apart: ``"fit"`` (the labelled rows
            of ``y``, ``budget=None``), ``"initial"`` (the initial set of a simulated run) or
            ``"query"`` (a queried cycle).

        Returns
        -------
        self : object
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        # A refit starts from nothing: a cold-start strategy must not see the last run's state.
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        X = X if is_dask_pool(X) else as_row_container(X)  # a dask pool stays lazy
        shape = getattr(X, "shape", None)
        if shape is not None and len(shape) == 2 and shape[1] == 0:
            raise ValueError(
                f"0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required."
            )
        validate_data(self, column_layout(X), skip_check_array=True, reset=True)
        self._n_dims_in = getattr(X, "ndim", None)
        if not self.__sklearn_tags__().input_tags.allow_nan:
            check_finite_numeric(X)
        check_same_length(X, y)
        self._targets = self._target_rules(y)
        y, missing = self._targets.check(y, self.missing_label)
        missing = self._check_missing_label_use(y, missing)
        labeled = np.flatnonzero(~missing)
        if labeled.size == 0:
            raise ValueError(
                f"y has no labelled rows: every label equals missing_label={self.missing_label!r}."
            )
        self._targets.check_labeled(y[labeled])
        self.target_kind_ = self._targets.kind
        self._check_params()
        self._semi_supervised = any(map(is_semi_supervised, self._models_for_delegation()))
        rng = check_random_state(self.random_state)
        self._model_seed, self._strategy_seed = (int(s) for s in rng.randint(_MAX_SEED, size=2))
        self.query_strategy_ = self._resolve_strategy(self.query_strategy, self._default_strategy())
        self.stopping_ = fresh_criteria(self.stopping)
        self.stop_reason_ = None
        self.history_ = []
        if self.budget is None:
            if initial_rows is not None:
                raise ValueError(
                    "initial_rows is only for simulated runs (budget set). With budget=None "
                    "the labelled rows of y are the initial set: mark the others with "
                    f"missing_label={self.missing_label!r}."
                )
            self._record_fit(X, y, labeled, "fit", query_seconds=0.0, scores=None)
            if on_cycle is not None:
                on_cycle(self, self.history_[-1])
        else:
            initial_rows = self._check_initial_rows(initial_rows, missing)
            self._simulate(X, y, labeled, rng, on_cycle, initial_rows)
        return self

    def query(self, X_pool, batch_size=None, *, return_scores=False):
        """Indices of the rows of ``X_pool`` to label next.

        Parameters
        ----------
        X_pool : array-like, sparse matrix or DataFrame of shape (n_pool, n_features)
            The unlabelled candidates. A dask array or DataFrame stays where it is: its
            blocks are scored on the workers (strategies tagged ``_supports_dask_pool``).
        batch_size : int, default=None
            How many rows to select; ``None`` uses the learner's ``batch_size``. A batch
            larger than the pool selects the whole pool, with a warning.
        return_scores : bool, default=False
            Also return the scores the rows were selected by (``None`` for strategies
            without scores, such as random sampling).

        Returns
        -------
        indices : ndarray of shape (batch_size,)
            Unique indices into ``X_pool``, most informative first.
        scores : ndarray of shape (batch_size,) or None
            Only when ``return_scores=True``.
        """
        check_is_fitted(self)
        with counting_rows_once():  # a dask DataFrame's rows are counted once, not per check
            X_pool = self._check_X(X_pool, "X_pool", lazy=True)
            batch_size = self.batch_size if batch_size is None else batch_size
            indices, scores = select_with_scores(self.query_strategy_, self, X_pool, batch_size)
        return (indices, scores) if return_scores else indices

    def teach(self, X_new, y_new):
        """Add newly labelled rows and update the model.

        With ``update="refit"`` the model is refitted from scratch on all labelled rows; with
        ``"warm_start"`` the fitted model is fitted again, continuing from its weights; with
        ``"partial_fit"`` only the new rows are passed to ``partial_fit``.

        Parameters
        ----------
        X_new : array-like of shape (n_new, n_features)
        y_new : array-like of shape (n_new,) or (n_new, n_outputs)
            Their labels (or label rows, or regression targets). A class not seen before is
            learnt by ``update="refit"``; the incremental modes raise a ``ValueError`` for it.

        Returns
        -------
        self : object
        """
        check_is_fitted(self)
        X_new = self._check_X(X_new, "X_new")
        check_same_length(X_new, y_new, "X_new", "y_new")
        y_new, missing = self._targets.check(y_new, self.missing_label, "y_new")
        if missing.any():
            raise ValueError(
                f"y_new contains {int(missing.sum())} unlabelled entries (missing_label="
                f"{self.missing_label!r}); teach only labelled rows."
            )
        self._targets.check_labeled(y_new, "y_new")
        self._targets.check_new(y_new, self)
        start = time.perf_counter()
        self.X_labeled_ = concat_rows(self.X_labeled_, X_new)
        # No cast to the old dtype: "<U3" would silently cut a new label "horse" to "hor".
        self.y_labeled_ = np.concatenate([self.y_labeled_, y_new])
        if self._semi_supervised:
            still_unlabeled = rows_not_taught(self.X_unlabeled_, X_new)
            self.X_unlabeled_ = take_rows(self.X_unlabeled_, np.flatnonzero(still_unlabeled))
            self._unlabeled_positions = self._unlabeled_positions[still_unlabeled]
        self._update(X_new, y_new)
        # the new rows priced alone: re-pricing every labelled row per teach is quadratic
        cost = self.history_[-1]["cost"] + self._labels_cost(X_new, y_new) \
            if self.history_ else None
        self.history_.append(
            self._history_row(None, None, "teach", time.perf_counter() - start, 0.0, cost)
        )
        return self

    def label_costs(self, X):
        """What labelling each row of ``X`` costs, from ``label_cost`` (1 each without it).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        costs : ndarray of shape (n_samples,)
            Positive floats.
        """
        return label_costs_of(self.label_cost, X)

    def should_stop(self, X_pool):
        """Ask the ``stopping`` criteria whether more labels are unlikely to help.

        A simulated run asks after every fit. In a loop of your own, ask once after every
        :meth:`teach` (criteria such as :class:`~skal.stopping.StabilizingPredictions`
        compare successive models).

        Parameters
        ----------
        X_pool : array-like of shape (n_pool, n_features)
            The rows still unlabelled.

        Returns
        -------
        reason : str or None
            ``"<criterion>: <why>"`` for the first criterion that says stop (also kept in
            ``stop_reason_``), or ``None`` to go on (always, without criteria).
        """
        check_is_fitted(self)
        X_pool = self._check_X(X_pool, "X_pool")
        reason = first_stop_reason(self.stopping_, self, X_pool)
        if reason is not None:
            self.stop_reason_ = reason
        return reason

    @available_if(_model_has("predict"))
    def predict(self, X):
        """Predict class labels with the current model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self._predict(self._check_X(X))

    @available_if(_model_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the current model, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self._predict_proba(self._check_X(X))

    @available_if(_model_has("predict_proba"))
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_is_fitted__(self):
        # Fitted once a model exists: at the cold start of a simulated run only the run's
        # bookkeeping is set, and strategies must see an unfitted learner.
        return hasattr(self, self._model_attribute)

    @property
    def n_labels_(self):
        """Number of labelled rows the current model was trained on."""
        check_is_fitted(self)
        return _num_samples(self.y_labeled_)

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _fit_model(self, X, y):
        """Fit the model from scratch on labelled rows (classifiers set ``classes_``)."""

    @abstractmethod
    def _update_model(self, X_new, y_new, X_all, y_all):
        """Update the fitted model with new rows, following ``self.update``."""

    @abstractmethod
    def _default_strategy(self):
        """The query strategy used when ``query_strategy=None``."""

    @abstractmethod
    def _target_rules(self, y):
        """What ``y`` is: an object of :mod:`skal.learners._targets` for it."""

    @abstractmethod
    def _models_for_delegation(self):
        """The fitted model(s), or before fit the configured one(s)."""

    @abstractmethod
    def _predict(self, X):
        pass

    def _predict_proba(self, X):
        # classifiers only; predict_proba is hidden (available_if) where the model has none
        raise NotImplementedError

    # ------------------------------------------------------------------ the loop
    def _check_params(self):
        _check_positive_int(self.batch_size, "batch_size")
        if self.label_cost is None:
            _check_positive_int(self.budget, "budget", allow_none=True)
        elif self.budget is not None and (
            isinstance(self.budget, bool) or not isinstance(self.budget, numbers.Real)
            or not self.budget > 0
        ):
            raise ValueError(
                f"budget must be a positive number (in cost units, as label_cost is set), got "
                f"{self.budget!r}."
            )
        _check_positive_int(self.n_initial, "n_initial")
        if self.update not in _UPDATE_MODES:
            raise ValueError(f"update must be one of {_UPDATE_MODES}, got {self.update!r}.")
        for model in self._models_for_delegation():
            if not hasattr(model, "fit"):
                hint = (" (a query strategy: pass it as query_strategy=)"
                        if callable(model) and hasattr(model, "select") else "")
                raise TypeError(
                    f"The estimator of {type(self).__name__} must be a scikit-learn "
                    f"estimator with fit, got {type(model).__name__}{hint}."
                )
            if isinstance(_last_step(model), BaseActiveLearner):
                raise TypeError(
                    f"The estimator of {type(self).__name__} is itself an active learner "
                    f"({type(_last_step(model)).__name__}). Use one learner and put the "
                    "preprocessing inside it: ActiveLearner(make_pipeline(StandardScaler(), "
                    "LogisticRegression())), not a Pipeline that ends in a learner (Pipeline "
                    "does not forward query and teach)."
                )

    def _resolve_strategy(self, strategy, default, name="query_strategy"):
        strategy = check_query_strategy(strategy, default, name)
        if not isinstance(strategy, BaseEstimator):
            return strategy
        # A strategy left unseeded draws its tie-breaks from the learner's seed, so that the
        # same learner random_state gives the same run.
        return seed_estimator(clone(strategy), self._strategy_seed, overwrite=False)

    def _check_X(self, X, name="X", *, lazy=False):
        # lazy: a dask pool stays lazy (a query scores it block by block where it lives)
        X = X if lazy and is_dask_pool(X) else as_row_container(X)
        if getattr(X, "ndim", 2) == 1 and hasattr(self, "n_features_in_"):
            raise ValueError(
                f"Expected a 2D array for {name}, got a 1D array instead. Reshape your data "
                "either using array.reshape(-1, 1) if your data has a single feature or "
                "array.reshape(1, -1) if it contains a single sample."
            )
        if num_rows(X) == 0:
            raise ValueError(f"{name} is empty (0 rows).")
        ndim, fitted_ndim = getattr(X, "ndim", None), getattr(self, "_n_dims_in", None)
        if ndim is not None and fitted_ndim is not None and ndim != fitted_ndim:
            raise ValueError(
                f"{name} has {ndim} dimensions (shape {tuple(X.shape)}) but the learner was "
                f"fitted on {fitted_ndim}-dimensional X; give {name} the same layout as X at "
                "fit (e.g. X.reshape(len(X), -1) for flat features)."
            )
        validate_data(self, column_layout(X), skip_check_array=True, reset=False)
        return X

    def _check_missing_label_use(self, y, missing):
        """Catch ``missing_label`` values that are really a class; return the final mask.

        In a simulated run ``y`` is the oracle: with ``y`` in {-1, 1} (the LIBSVM convention)
        and ``missing_label=-1`` it would hold one class, which no run can learn from, so -1
        must be a class. Interactively, one labelled class is a normal cold start, and the
        single-class error names the way out instead. Rows a simulated oracle cannot reveal
        are worth a warning too.
        """
        if not missing.any() or self.budget is None:
            return missing
        way_out = (
            "Pass missing_label=None when every row is labelled, or another value that no "
            "class uses to mark the unlabelled rows."
        )
        if self._targets.missing_is_a_class(y, missing):
            warnings.warn(
                f"y holds only the class {y[~missing][0]!r} besides missing_label="
                f"{self.missing_label!r}, so {self.missing_label!r} is taken as a class "
                f"(as in the -1/+1 labels of LIBSVM data). {way_out}",
                UserWarning,
                stacklevel=3,
            )
            return np.zeros_like(missing)
        warnings.warn(
            f"{int(missing.sum())} rows of y equal missing_label={self.missing_label!r}: "
            "the simulated run treats them as rows the oracle cannot label and never "
            f"queries them. If {self.missing_label!r} is a class, say so: {way_out}",
            UserWarning,
            stacklevel=3,
        )
        return missing

    def _check_initial_rows(self, initial_rows, missing):
        """Positions of the given initial set, or None; labelled, unique and inside ``X``."""
        if initial_rows is None:
            return None
        rows = np.asarray(initial_rows)
        n = missing.size
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise ValueError(
                    f"initial_rows as a boolean mask must have shape ({n},) like y, got "
                    f"{rows.shape}."
                )
            rows = np.flatnonzero(rows)
        check_row_indices(rows, n, "initial_rows (a boolean mask or row positions)", "X")
        if rows.size == 0:
            raise ValueError("initial_rows selects no row; give at least one initial row.")
        if missing[rows].any():
            raise ValueError(
                "initial_rows includes rows whose label in y is missing_label="
                f"{self.missing_label!r}; initial rows must be labelled."
            )
        return rows.astype(np.intp)

    def _set_labeled(self, X, y, rows):
        # Pool order, whatever the acquisition order: order-sensitive estimators (RBF SVC,
        # SGD without shuffling) then train as on a sorted labelled set.
        train = np.sort(rows)
        self.X_labeled_ = gather_rows(X, train)
        self.y_labeled_ = y[train]
        if self._semi_supervised:
            if is_dask_pool(X):
                raise TypeError(
                    "A semi-supervised estimator learns from every unlabelled row, so it "
                    "cannot be fitted on a dask pool; use a supervised estimator there."
                )
            rest = np.ones(_num_samples(X), dtype=bool)
            rest[train] = False
            self._unlabeled_positions = np.flatnonzero(rest)
            self.X_unlabeled_ = take_rows(X, self._unlabeled_positions)

    def _training_set(self, model, X, y):
        """What ``model`` is fitted on: the labelled rows ``(X, y)``; a semi-supervised
        model gets the unlabelled rows ``X_unlabeled_`` after them, with the label -1.

        This is the one place where the loop decides what a model sees.
        """
        if not is_semi_supervised(model):
            return X, y
        return with_unlabeled_rows(model, X, y, self.X_unlabeled_, self.target_kind_)

    def _pseudo_labels(self):
        """Positions (rows of the ``X`` given to ``fit``) the model(s) labelled themselves."""
        if not self._semi_supervised:
            return None
        n_unlabeled = self._unlabeled_positions.size
        tails = [pseudo_labeled_tail(m, n_unlabeled) for m in self._models_for_delegation()]
        tails = [tail for tail in tails if tail is not None]
        if not tails:
            return None
        return self._unlabeled_positions[np.logical_or.reduce(tails)]

    def _record_fit(self, X, y, rows, event, query_seconds, scores, cost=None):
        """Fit from scratch on ``rows`` of (X, y), keep them as the labelled set, log it.

        The model sees the rows in pool order whatever order they were acquired in.
        """
        start = time.perf_counter()
        self._set_labeled(X, y, rows)
        self._targets.check_trainable(self.y_labeled_, "The labelled set", self.missing_label)
        self._fit_model(self.X_labeled_, self.y_labeled_)
        self.history_.append(
            self._history_row(rows, scores, event, time.perf_counter() - start, query_seconds,
                              cost)
        )

    def _update(self, X_new, y_new):
        if self.update == "refit":
            self._fit_model(self.X_labeled_, self.y_labeled_)
        else:
            self._update_model(X_new, y_new, self.X_labeled_, self.y_labeled_)

    def _history_row(self, indices, scores, event, fit_seconds, query_seconds, cost=None):
        return {
            "cycle": len(self.history_),
            "event": event,
            "n_labels": _num_samples(self.y_labeled_),
            "indices": indices,
            "scores": scores,
            "fit_seconds": fit_seconds,
            "query_seconds": query_seconds,
            "cost": self._labels_cost() if cost is None else float(cost),
            "pseudo_labels": self._pseudo_labels(),
            "stop": None,
        }

    def _labels_cost(self, X=None, y=None):
        """What the labelled rows (or the rows ``X`` with labels ``y``) cost: their number, or
        the sum of their label costs."""
        X, y = (self.X_labeled_, self.y_labeled_) if X is None else (X, y)
        if self.label_cost is None:
            return float(_num_samples(y))
        return float(self.label_costs(X).sum())

    def _simulate(self, X, y, available, rng, on_cycle, initial_rows=None):
        """The simulated loop: ``y`` is the oracle, rows in ``available`` can be revealed.

        The budget counts labels, or with ``label_cost`` their costs; with costs a batch
        keeps the picks that fit in what is left, in the strategy's order.
        """
        costs = self.label_costs(X)
        priced = self.label_cost is not None
        budget = self._check_budget(available, costs, initial_rows)
        initial_seed = rng.randint(_MAX_SEED)
        start = time.perf_counter()
        if initial_rows is None:
            initial_strategy = self._resolve_strategy(
                self.initial_strategy, RandomSampling(random_state=initial_seed),
                "initial_strategy",
            )
            n_first = self.n_initial if priced else min(self.n_initial, budget)
            picked, scores = select_with_scores(
                initial_strategy, self, take_rows(X, available), n_first
            )
            picked = available[picked]
            if priced:
                picked, scores = _affordable(picked, scores, costs, budget)
                if picked.size == 0:
                    raise ValueError(
                        f"budget={budget} is less than the cost of the first initial row "
                        f"({costs[available].min():.4g} at the least); raise the budget."
                    )
        else:
            picked, scores = initial_rows, None
        acquired = self._ensure_two_classes(picked, available, y, budget, rng, costs)
        if scores is not None and scores.size < acquired.size:
            scores = np.concatenate([scores, np.full(acquired.size - scores.size, np.nan)])
        self._record_fit(X, y, acquired, "initial", time.perf_counter() - start, scores,
                         costs[acquired].sum())
        self.labeled_indices_ = acquired
        in_pool = np.zeros(_num_samples(y), dtype=bool)
        in_pool[available] = True
        in_pool[acquired] = False
        stop = self._check_stopping(X, in_pool)
        if on_cycle is not None:
            on_cycle(self, self.history_[-1])

        spent = costs[acquired].sum()
        while not stop and spent < budget and in_pool.any():
            pool = np.flatnonzero(in_pool)
            n_query = min(self.batch_size, pool.size)
            if not priced:
                n_query = min(n_query, budget - acquired.size)
            start = time.perf_counter()
            picked, scores = select_with_scores(
                self.query_strategy_, self, take_rows(X, pool), n_query
            )
            query_seconds = time.perf_counter() - start
            new = pool[picked]
            if priced:
                new, scores = _affordable(new, scores, costs, budget - spent)
                if new.size == 0:
                    self.stop_reason_ = (
                        f"budget: the next pick costs {costs[pool[picked[0]]]:.4g}, more than "
                        f"the {budget - spent:.4g} left"
                    )
                    self.history_[-1]["stop"] = self.stop_reason_
                    break
            in_pool[new] = False
            acquired = np.concatenate([acquired, new])
            spent = costs[acquired].sum()
            start = time.perf_counter()
            self._set_labeled(X, y, acquired)
            if self.update != "refit" and self._targets.unseen(y[new], self).size:
                # An incremental update cannot add an output for a class found only now.
                self._fit_model(self.X_labeled_, self.y_labeled_)
            else:
                self._update(gather_rows(X, new), y[new])
            self.history_.append(
                self._history_row(
                    new, scores, "query", time.perf_counter() - start, query_seconds, spent
                )
            )
            self.labeled_indices_ = acquired
            stop = self._check_stopping(X, in_pool)
            if on_cycle is not None:
                on_cycle(self, self.history_[-1])

    def _check_budget(self, available, costs, initial_rows):
        """The budget a run can spend: checked against the initial set, capped (with a
        warning) at what the oracle can label."""
        budget = self.budget
        unit = "labels" if self.label_cost is None else "cost units"
        if initial_rows is not None:
            needed = costs[initial_rows].sum()
            what = f"the {initial_rows.size} initial_rows"
        else:
            needed = self.n_initial if self.label_cost is None else 0
            what = f"n_initial={self.n_initial}"
        if budget < needed:
            raise ValueError(
                f"budget={budget} is smaller than {what} ({needed:g} {unit}): the initial "
                "labelled set alone would exceed the budget."
            )
        everything = costs[available].sum()
        if budget > everything:
            priced = "" if self.label_cost is None else f" (costing {everything:g} in all)"
            warnings.warn(
                f"budget={budget} exceeds the {available.size} rows the oracle can label"
                f"{priced}; the run stops when they are all labelled.",
                UserWarning,
                stacklevel=4,
            )
            budget = available.size if self.label_cost is None else everything
        return budget

    def _check_stopping(self, X, in_pool):
        """Ask the stopping criteria about the latest model; record a stop in ``history_``."""
        if not self.stopping_ or not in_pool.any():
            return False
        reason = self.should_stop(take_rows(X, np.flatnonzero(in_pool)))
        if reason is not None:
            self.history_[-1]["stop"] = reason
        return reason is not None

    def _ensure_two_classes(self, acquired, available, y, budget, rng, costs):
        """Extend a one-class initial set with random rows until a second class appears.

        This is what a person does at a cold start; the extra rows count toward the budget.
        """
        if self._targets.can_train(y[acquired]):
            return acquired
        rest = rng.permutation(np.setdiff1d(available, acquired))
        differs = y[rest] != y[acquired[0]]
        if differs.ndim > 1:
            differs = differs.any(axis=1)
        other = np.flatnonzero(differs)
        if other.size == 0:
            self._targets.check_trainable(y[acquired], "The oracle's labels", self.missing_label)
        extra = rest[: other[0] + 1]
        if costs[acquired].sum() + costs[extra].sum() > budget:
            raise ValueError(
                f"The initial labelled set holds one label only ({y[acquired[0]]!r}) and "
                f"budget={budget} ran out before a random row of another class was found. "
                "Increase budget or n_initial."
            )
        return np.concatenate([acquired, extra])

    def _strategies_in_use(self):
        """The strategy objects that see the rows: the query strategy and, in a simulated
        run, the initial strategy (plain functions have no tags)."""
        used = [self.query_strategy]
        if self.budget is not None:
            used.append(self.initial_strategy)
        return [s for s in used if isinstance(s, BaseEstimator)]

    def _inner_tags(self):
        return [get_tags(model) for model in self._models_for_delegation()]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self._inner_tags()
        tags.input_tags.sparse = all(t.input_tags.sparse for t in inner) and all(
            get_tags(strategy).input_tags.sparse for strategy in self._strategies_in_use()
        )
        tags.input_tags.allow_nan = all(t.input_tags.allow_nan for t in inner)
        tags.input_tags.string = all(t.input_tags.string for t in inner)
        tags.input_tags.categorical = all(t.input_tags.categorical for t in inner)
        tags.input_tags.pairwise = any(t.input_tags.pairwise for t in inner)
        tags.target_tags.required = True
        tags.target_tags.multi_output = all(t.target_tags.multi_output for t in inner)
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = all(
                t.classifier_tags is not None and t.classifier_tags.multi_label for t in inner
            )
        if hasattr(self, "transform"):
            # scikit-learn checks anything with transform as a transformer and needs these
            # tags for it; a dtype is preserved only where every model preserves it.
            preserved = [
                [] if t.transformer_tags is None else t.transformer_tags.preserves_dtype
                for t in inner
            ]
            tags.transformer_tags = TransformerTags(
                preserves_dtype=[dtype for dtype in preserved[0]
                                 if all(dtype in p for p in preserved)]
            )
        return tags
