"""Stopping criteria: small stateful objects asked after every model update whether more
labels are likely to help.

A criterion's ``check(learner, X_pool)`` returns ``None`` (go on) or a sentence saying why to
stop. State (a stop set, the last predictions) lives on the object, so a learner clones its
criteria at every ``fit``, as it does its strategies; a labelling session keeps one clone per
session.
"""

import numbers
from abc import ABCMeta, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import cohen_kappa_score
from sklearn.utils import check_random_state

from skal.strategies._base import PoolScoringStrategy, num_rows, take_rows, target_kind
from skal.strategies._uncertainty import EntropySampling, LeastConfidence


class StoppingCriterion(BaseEstimator, metaclass=ABCMeta):
    """Base class of stopping criteria.

    Subclasses implement ``_check(learner, X_pool) -> None or str``. ``check`` refuses a
    learner whose kind of target the criterion cannot judge.
    """

    _target_kinds = frozenset({"classification", "multilabel"})

    def check(self, learner, X_pool):
        """Should labelling stop after the learner's latest update?

        Call it once per model update (the learner's loop does, after every fit of a
        simulated run; call it after every ``teach`` in a loop of your own).

        Parameters
        ----------
        learner : estimator
            The fitted learner.
        X_pool : array-like of shape (n_pool, n_features)
            The rows still unlabelled.

        Returns
        -------
        reason : str or None
            Why to stop, or ``None`` to go on.
        """
        self._validate_params()
        kind = target_kind(learner)
        if kind is not None and kind not in self._target_kinds:
            raise TypeError(
                f"{type(self).__name__} judges {' and '.join(sorted(self._target_kinds))} "
                f"models, but the learner's targets are {kind}."
            )
        return self._check(learner, X_pool)

    @abstractmethod
    def _check(self, learner, X_pool):
        """``None`` or the reason to stop."""

    def _stop_set(self, X_pool):
        """The fixed rows the criterion watches: drawn from the pool at the first check."""
        if not hasattr(self, "stop_set_"):
            n_pool = num_rows(X_pool)
            rng = check_random_state(self.random_state)
            size = min(self.stop_set_size, n_pool)
            rows = np.sort(rng.choice(n_pool, size=size, replace=False))
            self.stop_set_ = take_rows(X_pool, rows)
        return self.stop_set_


def fresh_criteria(stopping, name="stopping"):
    """Fresh clones of ``stopping`` (a criterion, a list of them or ``None``): their state
    belongs to one run or session."""
    if stopping is None:
        return []
    criteria = stopping if isinstance(stopping, list | tuple) else [stopping]
    for criterion in criteria:
        if not isinstance(criterion, StoppingCriterion):
            raise TypeError(
                f"{name} must be a criterion from skal.stopping (e.g. "
                "StabilizingPredictions()), a list of them or None, got "
                f"{type(criterion).__name__}."
            )
    return [clone(criterion) for criterion in criteria]


def first_stop_reason(criteria, learner, X_pool):
    """Ask every criterion about the latest model (each is told of the update once);
    ``"<criterion>: <why>"`` of the first that says stop, or ``None``."""
    for criterion in criteria:
        why = criterion.check(learner, X_pool)
        if why is not None:
            return f"{type(criterion).__name__}: {why}"
    return None


def advice_on_unlabelled(criteria, learner, X_pool, labelled_positions):
    """:func:`first_stop_reason` on the rows of ``X_pool`` not at ``labelled_positions``
    (``None`` without criteria or without such rows): the advice a labelling session gives."""
    if not criteria:
        return None
    rest = np.setdiff1d(np.arange(num_rows(X_pool)),
                        np.asarray(labelled_positions, dtype=np.intp))
    if rest.size == 0:
        return None
    return first_stop_reason(criteria, learner, take_rows(X_pool, rest))


def _uncertainty(strategy, learner, X):
    strategy = EntropySampling() if strategy is None else strategy
    if not isinstance(strategy, PoolScoringStrategy):
        raise TypeError(
            f"strategy must score rows one by one (a PoolScoringStrategy such as "
            f"EntropySampling or DecisionMargin), got {type(strategy).__name__}."
        )
    return strategy.score(learner, X)


class StabilizingPredictions(StoppingCriterion):
    """Stop when successive models agree on a stop set (Bloodgood & Vijay-Shanker, CoNLL 2009).

    At the first check, ``stop_set_size`` unlabelled rows are drawn as the stop set (it needs
    no labels). After every update the new model's predictions on it are compared with the
    previous model's by Cohen's kappa; labelling stops when the mean kappa of the last
    ``window`` comparisons reaches ``threshold``. The paper's defaults: a window of 3 and a
    threshold of 0.99. Multi-label predictions are compared label by label, flattened.

    Parameters
    ----------
    stop_set_size : int, default=2000
        Rows of the stop set (the whole pool when it is smaller).
    window : int, default=3
        Successive agreements averaged.
    threshold : float, default=0.99
        Mean kappa at which to stop.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw of the stop set.

    Attributes
    ----------
    stop_set_ : array-like
        The stop set, after the first check.
    kappas_ : list of float
        Agreement of each model with the one before it.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skal import ActiveLearner
    >>> from skal.stopping import StabilizingPredictions
    >>> X, y = load_digits(return_X_y=True)
    >>> learner = ActiveLearner(budget=1000, stopping=StabilizingPredictions(threshold=0.97),
    ...                         random_state=0).fit(X, y)
    >>> learner.n_labels_ < 1000, learner.stop_reason_.startswith("StabilizingPredictions")
    (True, True)
    """

    _parameter_constraints = {
        "stop_set_size": [numbers.Integral],
        "window": [numbers.Integral],
        "threshold": [numbers.Real],
        "random_state": ["random_state"],
    }

    def __init__(self, stop_set_size=2000, window=3, threshold=0.99, random_state=None):
        self.stop_set_size = stop_set_size
        self.window = window
        self.threshold = threshold
        self.random_state = random_state

    def _check(self, learner, X_pool):
        if self.stop_set_size < 1 or self.window < 1:
            raise ValueError("stop_set_size and window must be positive integers.")
        predictions = np.asarray(learner.predict(self._stop_set(X_pool))).ravel()
        previous = getattr(self, "_previous", None)
        self._previous = predictions
        self.kappas_ = getattr(self, "kappas_", [])
        if previous is None:
            return None
        if np.array_equal(previous, predictions):
            kappa = 1.0  # kappa is undefined (0/0) when both predict one class throughout
        else:
            kappa = float(cohen_kappa_score(previous, predictions))
        self.kappas_.append(kappa)
        recent = self.kappas_[-self.window:]
        if len(recent) == self.window and np.mean(recent) >= self.threshold:
            return (
                f"the last {self.window} models agree on the stop set (mean kappa "
                f"{np.mean(recent):.3f} >= {self.threshold})"
            )
        return None


class UncertaintyThreshold(StoppingCriterion):
    """Stop when the pool's uncertainty falls below a threshold (Zhu, Wang & Hovy 2008).

    ``aggregate="max"`` is the max-uncertainty criterion: stop when even the most uncertain
    pool row (the one a query would pick) scores at most ``threshold``. ``aggregate="mean"``
    is the overall-uncertainty criterion: the mean over the pool. Scores come from a
    single-row strategy (``strategy.score``, higher = more uncertain). With
    ``DecisionMargin`` (score ``-|d|``) and ``threshold=-1``, ``"max"`` is the SVM criterion of
    Schohn & Cohn (2000): stop once no pool row lies inside the margin.

    Parameters
    ----------
    strategy : PoolScoringStrategy, default=None
        The uncertainty measure; ``None`` means ``EntropySampling()`` (nats).
    aggregate : {"max", "mean"}, default="max"
    threshold : float, default=0.1
        Stop at or below it.
    """

    _parameter_constraints = {
        "strategy": [PoolScoringStrategy, None],
        "aggregate": [str],
        "threshold": [numbers.Real],
    }

    def __init__(self, strategy=None, aggregate="max", threshold=0.1):
        self.strategy = strategy
        self.aggregate = aggregate
        self.threshold = threshold

    def _check(self, learner, X_pool):
        if self.aggregate not in ("max", "mean"):
            raise ValueError(f"aggregate must be 'max' or 'mean', got {self.aggregate!r}.")
        if num_rows(X_pool) == 0:
            return "the pool is empty"
        scores = _uncertainty(self.strategy, learner, X_pool)
        value = float(scores.max() if self.aggregate == "max" else scores.mean())
        if value <= self.threshold:
            what = "largest" if self.aggregate == "max" else "mean"
            return f"the {what} uncertainty in the pool is {value:.4g} <= {self.threshold}"
        return None


class ConfidenceDrop(StoppingCriterion):
    """Stop when the model's confidence on a stop set has dropped for ``patience`` updates in
    a row (Vlachos, Computer Speech & Language 2008).

    Confidence is minus the mean uncertainty score over the stop set (with the default
    ``LeastConfidence``, the mean probability of the predicted class). Vlachos observed that
    it rises while the model learns and falls once the labels left are the hard, noisy ones;
    labelling stops after ``patience`` consecutive decreases.

    Parameters
    ----------
    strategy : PoolScoringStrategy, default=None
        The uncertainty measure; ``None`` means ``LeastConfidence()``.
    stop_set_size : int, default=2000
    patience : int, default=3
    random_state : int, RandomState instance or None, default=None
        Seeds the draw of the stop set.

    Attributes
    ----------
    confidences_ : list of float
        The confidence after each update.
    """

    _parameter_constraints = {
        "strategy": [PoolScoringStrategy, None],
        "stop_set_size": [numbers.Integral],
        "patience": [numbers.Integral],
        "random_state": ["random_state"],
    }

    def __init__(self, strategy=None, stop_set_size=2000, patience=3, random_state=None):
        self.strategy = strategy
        self.stop_set_size = stop_set_size
        self.patience = patience
        self.random_state = random_state

    def _check(self, learner, X_pool):
        if self.stop_set_size < 1 or self.patience < 1:
            raise ValueError("stop_set_size and patience must be positive integers.")
        strategy = LeastConfidence() if self.strategy is None else self.strategy
        confidence = -float(np.mean(_uncertainty(strategy, learner, self._stop_set(X_pool))))
        self.confidences_ = getattr(self, "confidences_", []) + [confidence]
        recent = np.asarray(self.confidences_[-(self.patience + 1):])
        if recent.size == self.patience + 1 and np.all(np.diff(recent) < 0):
            return (
                f"the confidence on the stop set fell {self.patience} times in a row "
                f"({recent[0]:.4g} -> {recent[-1]:.4g})"
            )
        return None
