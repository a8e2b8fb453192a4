"""Prediction-oriented acquisition: expected predictive information gain (EPIG) over
posterior samples, with respect to a target input distribution."""

import numbers

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import _num_samples

from skal._validation import concat_rows
from skal.strategies._base import (
    QueryStrategy,
    _n_columns,
    map_pool_chunks,
    num_rows,
    require,
    take_rows,
    top_k,
)
from skal.strategies._bayesian import _check_samples, _to_numpy, _xlogx_sum

# Elements of one (rows x classes) by (targets x classes) block of the joint predictive:
# 2**20 float64 values (8 MiB), small enough for the cache-friendly log pass, large enough
# for the product to run at BLAS speed.
_JOINT_BLOCK = 2**20
_TINY = 1e-300


def epig_scores(pool_samples, target_samples):
    """EPIG of every pool row with respect to a set of target rows, from posterior samples.

    With ``p_k(y | x)`` the class probabilities under posterior sample ``k`` (``k = 1..K``),
    the joint predictive of the label ``y`` of a pool row ``x`` and the label ``y*`` of a
    target row ``x*`` is ``p(y, y*) = (1/K) sum_k p_k(y | x) p_k(y* | x*)``; its marginals are
    the mean predictions ``p(y | x)`` and ``p(y* | x*)``. Then::

        EPIG(x) = mean_{x*} KL[p(y, y* | x, x*) || p(y | x) p(y* | x*)]
                = H[p(y | x)] + mean_{x*} H[p(y* | x*)] - mean_{x*} H[p(y, y* | x, x*)]

    in nats. Cost ``O(N M C^2 K)`` for ``N`` pool rows, ``M`` targets and ``C`` classes, as
    one matrix product and one ``x log x`` pass per block of pool rows; memory is bounded by
    the block, never ``N x M x C^2``.

    Parameters
    ----------
    pool_samples : ndarray of shape (n_samples, n_pool, n_classes)
    target_samples : ndarray of shape (n_samples, n_targets, n_classes)
        The same posterior samples (same order) evaluated at the target rows.

    Returns
    -------
    epig : ndarray of shape (n_pool,)
        In ``[0, min(BALD(x), mean_{x*} BALD(x*))]``: ``y`` and ``y*`` depend on each other
        only through the sample, so neither can tell more about the other than about it.
    """
    P = _to_numpy(pool_samples)
    Q = _to_numpy(target_samples)
    n_samples, n_pool, n_classes = P.shape
    n_targets = Q.shape[1]
    if Q.shape[0] != n_samples or Q.shape[2] != n_classes:
        raise ValueError(
            f"pool samples of shape {P.shape} and target samples of shape {Q.shape} must "
            "have the same number of posterior samples and classes."
        )
    # (K, M*C) on the right of every block's product; the 1/K of the mixture is folded in.
    right = Q.reshape(n_samples, n_targets * n_classes) / n_samples
    pool_entropy = -_xlogx_sum(P.mean(axis=0), axis=1)
    target_entropy = -_xlogx_sum(Q.mean(axis=0), axis=1).mean()
    joint_xlogx = np.empty(n_pool)
    rows_per_block = max(1, _JOINT_BLOCK // max(1, n_targets * n_classes * n_classes))
    for start in range(0, n_pool, rows_per_block):
        rows = slice(start, min(start + rows_per_block, n_pool))
        n_rows = rows.stop - rows.start
        # left[(n, c), k] = p_k(c | x_n); joint[(n, c), (m, c*)] = p(y=c, y*=c* | x_n, x*_m)
        left = P[:, rows, :].transpose(1, 2, 0).reshape(n_rows * n_classes, n_samples)
        joint = left @ right
        logs = np.log(np.maximum(joint, _TINY))
        logs *= joint
        joint_xlogx[rows] = logs.reshape(n_rows, -1).sum(axis=1)
    epig = pool_entropy + target_entropy + joint_xlogx / n_targets
    # Rounding can make a true zero slightly negative.
    return np.maximum(epig, 0.0)


class EPIG(QueryStrategy):
    """Expected predictive information gain: information about predictions on target inputs.

    BALD scores a row by what its label tells about the model parameters, including
    parameters that matter for no input anyone will ask about (outliers, irrelevant regions
    of the pool). EPIG (Bickford Smith et al. 2023) scores it by what its label tells about
    the labels of *target* inputs ``x* ~ p*(x*)``, the inputs the model will be used on::

        EPIG(x) = E_{x*} [ I(y; y* | x, x*) ]
                = E_{x*} KL[ p(y, y* | x, x*) || p(y | x) p(y* | x*) ]

    estimated from ``K`` posterior samples ``p_k`` (``predict_proba_samples``) with the
    joint predictive ``p(y, y* | x, x*) = (1/K) sum_k p_k(y | x) p_k(y* | x*)`` and the
    expectation over ``x*`` a mean over ``M`` target rows. Each pool row costs
    ``O(M C^2 K)`` (one matrix product of the samples and one ``x log x`` pass over the
    joint, in blocks of bounded memory; see :func:`epig_scores`). The top ``batch_size``
    rows are taken independently.

    The target rows are ``target_X`` when given, else the pool itself: all of it when it has
    at most ``n_target_samples`` rows, else that many rows drawn at random (without
    replacement) for each query. They are predicted in the same call as every pool chunk, so
    the ``k``-th sample of a pool row and of a target row come from the same model even when
    ``predict_proba_samples`` draws fresh MC-dropout masks on every call.

    Parameters
    ----------
    target_X : array-like of shape (n_targets, n_features), default=None
        Inputs from the target distribution ``p*(x*)`` (e.g. unlabelled rows of the test
        distribution), in the pool's format. ``None`` takes the pool as the target
        distribution.
    n_target_samples : int, default=100
        With ``target_X=None``: the number of pool rows drawn as targets when the pool is
        larger. Cost and memory grow linearly with it.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw of target rows and breaks ties between equal scores.

    Notes
    -----
    ``EPIG(x)`` lies in ``[0, min(BALD(x), mean_{x*} BALD(x*))]`` (data processing: ``y``
    and ``y*`` are independent given the sample); it is 0 when all samples agree on ``x`` or
    on every target. :meth:`score` draws its targets like a query does, so with a pool larger
    than ``n_target_samples`` two calls score against different targets.

    References
    ----------
    F. Bickford Smith, A. Kirsch, S. Farquhar, Y. Gal, A. Foster and T. Rainforth,
    "Prediction-oriented Bayesian active learning", AISTATS 2023 (arXiv:2304.08151).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal import CommitteeLearner
    >>> from skal.strategies import EPIG
    >>> X, y = load_iris(return_X_y=True)
    >>> committee = CommitteeLearner(n_estimators=4, random_state=0).fit(X[::3], y[::3])
    >>> EPIG(random_state=0)(committee, X, batch_size=3).shape
    (3,)
    """

    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "target_X": ["array-like", "sparse matrix", None],
        "n_target_samples": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, target_X=None, n_target_samples=100, random_state=None):
        self.target_X = target_X
        self.n_target_samples = n_target_samples
        self.random_state = random_state

    def score(self, learner, X_pool):
        """EPIG of every row of ``X_pool``; higher is more informative.

        Parameters
        ----------
        learner : estimator
            A fitted learner with ``predict_proba_samples``.
        X_pool : array-like of shape (n_pool, n_features)

        Returns
        -------
        scores : ndarray of shape (n_pool,)
            In nats.
        """
        self._validate_params()
        return self._scores(learner, X_pool, self._random_state())

    def _select(self, learner, X_pool, batch_size, random_state):
        scores = self._scores(learner, X_pool, random_state)
        indices = top_k(scores, batch_size, random_state)
        return indices, scores[indices]

    def _scores(self, learner, X_pool, random_state):
        name = type(self).__name__
        n_pool = num_rows(X_pool)
        if n_pool == 0:
            raise ValueError("X_pool is empty: there is nothing to score.")
        predict = require(learner, "predict_proba_samples", name)
        if self.target_X is not None:
            targets = self.target_X
            if _n_columns(targets) != _n_columns(X_pool):
                raise ValueError(
                    f"target_X has {_n_columns(targets)} features per row but X_pool has "
                    f"{_n_columns(X_pool)}; the targets are inputs in the pool's format."
                )
        elif n_pool <= self.n_target_samples:
            targets = X_pool
        else:
            rows = np.sort(random_state.choice(n_pool, self.n_target_samples, replace=False))
            targets = take_rows(X_pool, rows)
        n_targets = _num_samples(targets)
        if n_targets == 0:
            raise ValueError("target_X is empty: EPIG needs at least one target row.")

        def score_chunk(X_chunk):
            n_chunk = _num_samples(X_chunk)
            samples = predict(concat_rows(targets, X_chunk))
            _check_samples(samples, name, n_targets + n_chunk)
            samples = _to_numpy(samples)
            return epig_scores(samples[:, n_targets:], samples[:, :n_targets])

        n_classes = len(getattr(learner, "classes_", ())) or 16
        row_bytes = 8 * (_n_columns(X_pool) + 4 * 32 * n_classes)
        return map_pool_chunks(
            score_chunk,
            X_pool,
            row_bytes=row_bytes,
            chunk_size=getattr(learner, "chunk_size", None),
            n_jobs=getattr(learner, "n_jobs", None),
        )
