"""Regression strategies: predictive variance (query by committee, MC dropout, Gaussian
processes), expected model change (EMCM) and greedy sampling in input and output space."""

import inspect

import numpy as np

from skal.strategies._base import (
    PoolScoringStrategy,
    QueryStrategy,
    chunk_slices,
    embed,
    require,
)
from skal.strategies._diversity import k_center_greedy, min_sq_dist, sq_norms


def _as_columns(values, n_rows):
    """Targets or predictions as a 2-d float64 array (n_rows, n_outputs)."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(n_rows, -1)


def _predict_std(learner, X, strategy_name):
    predict = require(learner, "predict", strategy_name)
    try:
        takes_std = "return_std" in inspect.signature(predict).parameters
    except (TypeError, ValueError):
        takes_std = False
    if not takes_std:
        raise TypeError(
            f"{strategy_name} needs a predictive standard deviation, but "
            f"{type(learner).__name__}.predict takes no return_std. Use ActiveRegressor with "
            "GaussianProcessRegressor or BayesianRidge, a CommitteeRegressor, or a "
            "skal.nets.NetRegressor with dropout."
        )
    return predict(X, return_std=True)


class VarianceSampling(PoolScoringStrategy):
    """Select the rows whose prediction is most uncertain: the largest predictive variance.

    The score is the variance of the model's predictive distribution, summed over outputs
    for multi-output targets. What the variance is depends on the learner, which is the
    point: the spread of a :class:`~skal.CommitteeRegressor`'s members (query by committee
    for regression, Burbidge et al. 2007), the MC-dropout spread of a
    :class:`skal.nets.NetRegressor`, or the posterior variance of a
    ``GaussianProcessRegressor`` or ``BayesianRidge`` (``predict(X, return_std=True)``).

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.gaussian_process import GaussianProcessRegressor
    >>> from skal.strategies import VarianceSampling
    >>> X = np.array([[0.0], [1.0], [2.0]])
    >>> gp = GaussianProcessRegressor().fit(X[:2], [0.0, 1.0])
    >>> VarianceSampling()(gp, X, batch_size=1)  # the row farthest from the data
    array([2])
    """

    _requires = "predict"
    _target_kinds = frozenset({"regression"})

    def _score_chunk(self, learner, X_chunk):
        _, std = _predict_std(learner, X_chunk, type(self).__name__)
        std = _as_columns(std, X_chunk.shape[0] if hasattr(X_chunk, "shape") else len(X_chunk))
        return np.einsum("ij,ij->i", std, std)


class EMCM(PoolScoringStrategy):
    """Expected model change maximisation for regression (Cai, Zhang & Zhou, ICDM 2013).

    Labelling ``x`` with target ``y`` changes a linear model trained by stochastic gradient
    descent by ``(f(x) - y) x``. ``y`` is unknown; EMCM estimates it with the predictions
    ``f_k(x)`` of ``K`` bootstrap models and scores

    ``EMCM(x) = (1/K) sum_k ||f(x) - f_k(x)|| * ||x||``

    where ``f`` is the learner's model and ``x`` the features it sees (``embed``: a
    Pipeline's transformed features, a network's penultimate layer, else the raw features).
    The ``f_k`` come from ``predict_samples``: use a
    :class:`~skal.CommitteeRegressor` with ``bootstrap=True`` (the paper's ensemble) or an
    MC-dropout :class:`skal.nets.NetRegressor`.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    _requires = "predict_samples"
    _needs_dense_embedding = True  # ||x|| of the embedding
    _target_kinds = frozenset({"regression"})

    def _outputs_per_row(self):
        return 16

    def _score_chunk(self, learner, X_chunk):
        name = type(self).__name__
        n_rows = X_chunk.shape[0] if hasattr(X_chunk, "shape") else len(X_chunk)
        prediction = _as_columns(require(learner, "predict", name)(X_chunk), n_rows)
        samples = np.asarray(require(learner, "predict_samples", name)(X_chunk), np.float64)
        samples = samples.reshape(samples.shape[0], n_rows, -1)
        change = np.sqrt(((samples - prediction[None]) ** 2).sum(axis=2)).mean(axis=0)
        Z = embed(learner, X_chunk)
        return change * np.sqrt(sq_norms(np.asarray(Z)))


class GreedySampling(QueryStrategy):
    """Greedy sampling for regression: GSx, GSy and iGS (Wu, Lin & Huang, Inf. Sci. 2019).

    Each pick maximises its distance to the labelled rows (and the rows picked before it in
    the batch):

    - ``space="x"`` (GSx): ``min_m ||x_n - x_m||``, diversity in input space. It needs no
      model, so it also starts a run as ``initial_strategy`` (its first pick is then the
      row closest to the pool's centroid, as in the paper).
    - ``space="y"`` (GSy): ``min_m |f(x_n) - y_m|``, diversity of the targets, with the
      model's prediction ``f`` for the unlabelled rows.
    - ``space="xy"`` (iGS, the paper's best): ``min_m ||x_n - x_m|| * |f(x_n) - y_m|``.

    Rows picked earlier in a batch count as labelled with their predicted target. Input
    distances are Euclidean in the embedding of :func:`~skal.strategies._base.embed` (put a
    ``StandardScaler`` in the learner's Pipeline, as the paper standardises features);
    output distances are Euclidean over the outputs of multi-output targets.

    Parameters
    ----------
    space : {"xy", "x", "y"}, default="xy"
        Where diversity is measured.
    random_state : int, RandomState instance or None, default=None
        Unused: the selection is deterministic. Kept for a uniform strategy interface.

    Examples
    --------
    >>> import numpy as np
    >>> from skal.strategies import GreedySampling
    >>> X = np.array([[0.0], [1.0], [2.0], [10.0]])
    >>> GreedySampling(space="x")(None, X, batch_size=2)  # centroid 3.25 first, then farthest
    array([2, 3])
    """

    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "space": [str],
    }
    _needs_dense_embedding = True
    _target_kinds = frozenset({"regression"})

    def __init__(self, space="xy", random_state=None):
        self.space = space
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        if self.space not in ("xy", "x", "y"):
            raise ValueError(f"space must be 'xy', 'x' or 'y', got {self.space!r}.")
        X_labeled = getattr(learner, "X_labeled_", None)
        has_labels = X_labeled is not None and len(X_labeled) > 0
        if self.space == "x":
            Z = np.asarray(embed(learner, X_pool))
            if not has_labels:
                return _greedy_x_cold(Z, batch_size)
            L = np.asarray(embed(learner, X_labeled))
            dmin = min_sq_dist(Z, sq_norms(Z), L, sq_norms(L))
            return k_center_greedy(Z, batch_size, dmin)
        name = f"{type(self).__name__}(space={self.space!r})"
        predict = require(learner, "predict", name)  # an unfitted model fails here
        if not has_labels or getattr(learner, "y_labeled_", None) is None:
            raise TypeError(
                f"{name} measures distances to the labelled rows, and "
                f"{type(learner).__name__} has no X_labeled_/y_labeled_: use it inside "
                "ActiveRegressor or CommitteeRegressor."
            )
        n_pool = X_pool.shape[0] if hasattr(X_pool, "shape") else len(X_pool)
        F = _as_columns(predict(X_pool), n_pool)
        Y = _as_columns(learner.y_labeled_, len(learner.y_labeled_))
        if self.space == "y":
            return _greedy(None, None, F, Y, batch_size)
        Z = np.asarray(embed(learner, X_pool))
        L = np.asarray(embed(learner, X_labeled))
        return _greedy(Z, L, F, Y, batch_size)


def _greedy_x_cold(Z, batch_size):
    """GSx without labelled rows: the row closest to the centroid, then k-center greedy."""
    mean = Z.mean(axis=0, dtype=np.float64).astype(Z.dtype)
    first = int(np.argmin(sq_norms(Z) - 2.0 * (Z @ mean)))
    dmin = np.full(Z.shape[0], np.inf)
    return k_center_greedy(Z, batch_size, dmin, first=first)


def _sq_dist_to(Z, sq_Z, row):
    return np.maximum(sq_Z + sq_Z[row] - 2.0 * (Z @ Z[row]), 0.0)


def _greedy(Z, L, F, Y, batch_size):
    """GSy (``Z`` None) or iGS: greedy max-min of the squared output distance, times the
    squared input distance for iGS (the same ordering as the distances' products)."""
    sq_F, sq_Y = sq_norms(F), sq_norms(Y)
    if Z is None:
        dmin = min_sq_dist(F, sq_F, Y, sq_Y)
    else:
        sq_Z, sq_L = sq_norms(Z), sq_norms(L)
        dmin = np.empty(Z.shape[0])
        # min over labelled rows of a product does not split into two minima: one chunked
        # pass over (pool x labelled) pairs, both distances from GEMMs.
        for rows in chunk_slices(Z.shape[0], row_bytes=16 * L.shape[0]):
            dx = np.maximum(sq_Z[rows, None] + sq_L[None] - 2.0 * (Z[rows] @ L.T), 0.0)
            dy = np.maximum(sq_F[rows, None] + sq_Y[None] - 2.0 * (F[rows] @ Y.T), 0.0)
            dmin[rows] = (dx * dy).min(axis=1)
    chosen, gains = [], []
    for _ in range(batch_size):
        best = int(np.argmax(dmin))
        chosen.append(best)
        gains.append(np.sqrt(max(dmin[best], 0.0)))
        new = _sq_dist_to(F, sq_F, best)
        if Z is not None:
            new *= _sq_dist_to(Z, sq_Z, best)
        np.minimum(dmin, new, out=dmin)
        dmin[best] = -np.inf
    return np.asarray(chosen, dtype=np.intp), np.asarray(gains)
