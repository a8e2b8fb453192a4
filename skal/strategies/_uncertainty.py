"""Single-model uncertainty strategies (Settles 2009, section 3.1) and random sampling."""

import numpy as np

from skal.strategies._base import (
    TARGET_KINDS,
    PoolScoringStrategy,
    QueryStrategy,
    num_rows,
    require,
)


def entropy(proba, axis=-1):
    """Shannon entropy in nats along ``axis``, with 0 log 0 = 0."""
    proba = np.asarray(proba, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(proba > 0, proba * np.log(proba), 0.0)
    return -terms.sum(axis=axis)


def top_two(values):
    """The largest and second-largest entry of each row of a 2-d array."""
    values = np.asarray(values)
    if values.shape[1] < 2:
        return values[:, 0], np.full(values.shape[0], -np.inf)
    part = np.partition(values, values.shape[1] - 2, axis=1)
    return part[:, -1], part[:, -2]


class RandomSampling(QueryStrategy):
    """Select rows uniformly at random: the baseline every strategy must beat.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Seed of the draw.

    Examples
    --------
    >>> import numpy as np
    >>> from skal.strategies import RandomSampling
    >>> RandomSampling(random_state=0)(None, np.zeros((5, 2)), batch_size=2).shape
    (2,)
    """

    _target_kinds = frozenset(TARGET_KINDS)
    _supports_dask_pool = True  # needs only the pool's length

    def _select(self, learner, X_pool, batch_size, random_state):
        return random_state.choice(num_rows(X_pool), size=batch_size, replace=False), None


class LeastConfidence(PoolScoringStrategy):
    """Select rows whose most likely class has the lowest probability.

    The score is ``1 - max_c p(c | x)``.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    def _score_chunk(self, learner, X_chunk):
        proba = require(learner, "predict_proba", type(self).__name__)(X_chunk)
        return 1.0 - np.max(proba, axis=1)


class MarginSampling(PoolScoringStrategy):
    """Select rows with the smallest gap between the two most likely classes.

    The score is the negated margin ``-(p(c_1 | x) - p(c_2 | x))``, so that higher means more
    informative; it lies in ``[-1, 0]``.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    def _score_chunk(self, learner, X_chunk):
        proba = require(learner, "predict_proba", type(self).__name__)(X_chunk)
        first, second = top_two(proba)
        return second - first


class EntropySampling(PoolScoringStrategy):
    """Select rows whose predicted class distribution has the highest entropy.

    The score is ``-sum_c p(c | x) log p(c | x)`` in nats; it lies in ``[0, log C]``.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    def _score_chunk(self, learner, X_chunk):
        proba = require(learner, "predict_proba", type(self).__name__)(X_chunk)
        return entropy(proba, axis=1)


class DecisionMargin(PoolScoringStrategy):
    """Select rows closest to a decision boundary, from ``decision_function``.

    For ``C > 2`` classes the score is ``-(d_1(x) - d_2(x))``, the negated gap between the two
    largest per-class decision values (the multi-class hyperplane margin of Table 2 in the
    survey); for binary problems it is ``-|d(x)|``, the negated distance to the hyperplane.
    Use it for SVMs and other classifiers without ``predict_proba``.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    _requires = "decision_function"

    def _score_chunk(self, learner, X_chunk):
        decision = np.asarray(require(learner, "decision_function", type(self).__name__)(X_chunk))
        if decision.ndim == 1:
            return -np.abs(decision)
        first, second = top_two(decision)
        return second - first
