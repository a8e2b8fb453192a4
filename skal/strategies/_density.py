"""Density-weighted uncertainty: information density (Settles & Craven 2008), with the mean
similarity to the pool computed in closed form, in chunks, or against a random reference set."""

import numbers

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from skal.strategies._base import QueryStrategy, embed, top_k
from skal.strategies._diversity import _as_numpy, sq_norms

# Elements of one (rows x reference rows) block of similarities: 2**22 float64 values
# (32 MiB), whatever the pool size.
_SIMILARITY_BLOCK = 2**22


def mean_similarity(Z, similarity="cosine", gamma=None, reference=None):
    """Mean similarity of every row of ``Z`` to the rows of ``reference`` (default ``Z``).

    Parameters
    ----------
    Z : ndarray of shape (n, d)
    similarity : {"cosine", "rbf"}, default="cosine"
        ``"cosine"``: ``(1 + cos(z, r)) / 2``, in ``[0, 1]``. Its mean is exact in closed
        form, ``(1 + ẑ · mean_r r̂) / 2`` with unit vectors ``ẑ`` (a zero row has cosine 0 to
        everything), at ``O(n d)``. ``"rbf"``: ``exp(-gamma ||z - r||^2)``, summed over the
        reference rows in blocks of bounded memory, ``O(n m d)`` for ``m`` reference rows.
    gamma : float, default=None
        RBF width; ``None`` is ``1 / d``.
    reference : ndarray of shape (m, d), default=None
        The rows to average over; ``None`` is ``Z`` itself (each row included).

    Returns
    -------
    density : ndarray of shape (n,)
        In ``[0, 1]``.
    """
    Z = np.asarray(Z)
    R = Z if reference is None else np.asarray(reference, dtype=Z.dtype)
    if similarity == "cosine":
        unit_Z = _unit_rows(Z)
        unit_R = unit_Z if reference is None else _unit_rows(R)
        mean_direction = unit_R.mean(axis=0, dtype=np.float64)
        return np.clip((1.0 + unit_Z @ mean_direction) / 2.0, 0.0, 1.0)
    gamma = 1.0 / max(Z.shape[1], 1) if gamma is None else float(gamma)
    sq_Z, sq_R = sq_norms(Z), sq_norms(R)
    out = np.empty(Z.shape[0])
    rows_per_block = max(1, _SIMILARITY_BLOCK // max(R.shape[0], 1))
    for start in range(0, Z.shape[0], rows_per_block):
        rows = slice(start, min(start + rows_per_block, Z.shape[0]))
        # exp(-gamma (||z||² + ||r||² - 2 z·r)), in place on the GEMM output
        block = Z[rows] @ R.T
        block *= 2.0 * gamma
        block -= gamma * sq_R[None, :]
        block -= gamma * sq_Z[rows, None]
        np.minimum(block, 0.0, out=block)  # rounding must not make a distance negative
        np.exp(block, out=block)
        out[rows] = block.mean(axis=1, dtype=np.float64)
    return out


def _unit_rows(Z):
    norms = np.sqrt(sq_norms(Z))
    return np.divide(Z, norms[:, None], out=np.zeros(Z.shape, dtype=np.float64),
                     where=norms[:, None] > 0)


class InformationDensity(QueryStrategy):
    """Information density: uncertainty weighted by how representative a row is of the pool.

    Uncertainty sampling likes outliers: a row far from everything is uncertain and teaches
    little about the rest. Information density (Settles & Craven 2008) weights a base score
    ``phi(x)`` by the mean similarity of ``x`` to the pool ``U``::

        ID(x) = phi(x) * ( (1/|U|) sum_{u in U} sim(x, u) ) ** beta

    and takes the top ``batch_size`` rows. ``phi`` is the score of ``base_strategy`` (any
    strategy with ``score``, entropy by default); a base whose scores can be negative (such
    as :class:`~skal.strategies.MarginSampling`, whose scores are negated margins) is shifted
    by the pool's minimum score first, so that the weight never turns a preference round.
    Similarities are measured in the learner's embedding
    (:func:`~skal.strategies._base.embed`: a network's ``transform``, a Pipeline's
    preprocessing, or the raw features).

    The exact mean similarity compares every pair of pool rows, ``O(N^2 d)``. skal never
    builds the ``N x N`` matrix:

    - ``similarity="cosine"`` is exact at ``O(N d)``: ``mean_u cos(x, u) = x̂ · mean_u û``
      for unit vectors, so one pass gives every row's density, whatever the pool size;
    - ``similarity="rbf"`` sums blocks of bounded memory, exactly while the pool has at most
      ``n_reference`` rows; on larger pools the mean runs over ``n_reference`` pool rows
      drawn at random for each query, ``O(N n_reference d)``, an unbiased estimate of the
      exact mean with standard error at most ``0.5 / sqrt(n_reference)``.

    Parameters
    ----------
    base_strategy : strategy with ``score``, default=None
        The informativeness ``phi``; ``None`` is :class:`~skal.strategies.EntropySampling`.
    beta : float, default=1.0
        Weight of the density; 0 gives the base strategy's picks.
    similarity : {"cosine", "rbf"}, default="cosine"
        ``"cosine"``: ``(1 + cos(x, u)) / 2``, the cosine shifted to ``[0, 1]`` so that
        features of either sign give a non-negative density; on non-negative features
        (TF-IDF, counts), where Settles & Craven's raw cosine mean ``D`` is already in
        ``[0, 1]``, the density is ``(1 + D) / 2``. ``"rbf"``: ``exp(-gamma ||x - u||^2)``.
    gamma : float, default=None
        Width of the RBF similarity; ``None`` is ``1 / n_features`` of the embedding.
    n_reference : int or None, default=2000
        RBF only: above this many pool rows the mean runs over this many rows drawn at
        random; ``None`` is always exact.
    random_state : int, RandomState instance or None, default=None
        Seeds the reference rows and breaks ties between equal scores.

    References
    ----------
    B. Settles and M. Craven, "An Analysis of Active Learning Strategies for Sequence
    Labeling Tasks", EMNLP 2008, section 3.4.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skal.strategies import InformationDensity, MarginSampling
    >>> X, y = load_iris(return_X_y=True)
    >>> model = LogisticRegression(max_iter=500).fit(X[::10], y[::10])
    >>> InformationDensity(MarginSampling(), random_state=0)(model, X, batch_size=3).shape
    (3,)
    """

    _needs_dense_embedding = True
    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "base_strategy": [HasMethods(["score"]), None],
        "beta": [Interval(numbers.Real, 0, None, closed="left")],
        "similarity": [StrOptions({"cosine", "rbf"})],
        "gamma": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "n_reference": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(self, base_strategy=None, beta=1.0, similarity="cosine", gamma=None,
                 n_reference=2000, random_state=None):
        self.base_strategy = base_strategy
        self.beta = beta
        self.similarity = similarity
        self.gamma = gamma
        self.n_reference = n_reference
        self.random_state = random_state

    @property
    def _target_kinds(self):
        return getattr(self._base(), "_target_kinds", frozenset({"classification"}))

    def _base(self):
        if self.base_strategy is None:
            from skal.strategies._uncertainty import EntropySampling

            return EntropySampling()
        return self.base_strategy

    def score(self, learner, X_pool):
        """Information density of every row of ``X_pool``; higher is more informative.

        Parameters
        ----------
        learner : estimator
            A fitted learner offering what the base strategy needs.
        X_pool : array-like of shape (n_pool, n_features)

        Returns
        -------
        scores : ndarray of shape (n_pool,)
        """
        self._validate_params()
        return self._scores(learner, X_pool, self._random_state())

    def density(self, learner, X_pool, random_state=None):
        """Mean similarity of every row of ``X_pool`` to the pool, in ``[0, 1]``.

        Parameters
        ----------
        learner : estimator or None
            Gives the embedding; ``None`` measures the raw features.
        X_pool : array-like of shape (n_pool, n_features)
        random_state : RandomState instance, int or None, default=None
            Draws the reference rows when the RBF mean is approximated.

        Returns
        -------
        density : ndarray of shape (n_pool,)
        """
        from sklearn.utils import check_random_state

        Z = _as_numpy(embed(learner, X_pool))
        reference = None
        if self.similarity == "rbf" and self.n_reference is not None:
            if Z.shape[0] > self.n_reference:
                rng = check_random_state(random_state)
                reference = Z[np.sort(rng.choice(Z.shape[0], self.n_reference, replace=False))]
        return mean_similarity(Z, self.similarity, self.gamma, reference)

    def _scores(self, learner, X_pool, random_state):
        try:
            phi = np.asarray(self._base().score(learner, X_pool), dtype=np.float64)
        except (TypeError, NotFittedError) as error:
            # Name this strategy too: the user chose InformationDensity, not its base.
            raise type(error)(f"{type(self).__name__}'s base strategy: {error}") from error
        lowest = phi.min()
        if lowest < 0:
            phi = phi - lowest
        if self.beta == 0:
            return phi
        return phi * self.density(learner, X_pool, random_state) ** self.beta

    def _select(self, learner, X_pool, batch_size, random_state):
        scores = self._scores(learner, X_pool, random_state)
        indices = top_k(scores, batch_size, random_state)
        return indices, scores[indices]
