"""Active learning across domains: CLUE (Prabhu et al. 2021) clusters the target pool's
embeddings weighted by the model's uncertainty and queries the row nearest each centroid."""

import numbers
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval

from skal.strategies._base import QueryStrategy, embed, require
from skal.strategies._diversity import _as_numpy
from skal.strategies._uncertainty import entropy

_MAX_SEED = np.iinfo(np.int32).max


def tempered_entropy(proba, temperature=1.0):
    """Entropy of the class probabilities after softmax tempering of the log-probabilities.

    ``softmax(log p / T)``, i.e. ``p ** (1 / T)`` renormalised, equals a softmax of the
    logits divided by ``T`` (CLUE's temperature) for a model whose probabilities are a
    softmax, which is all a scikit-learn classifier exposes.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
    temperature : float, default=1.0

    Returns
    -------
    entropy : ndarray of shape (n_samples,)
    """
    proba = np.asarray(proba, dtype=np.float64)
    if temperature != 1.0:
        with np.errstate(divide="ignore"):
            logits = np.log(proba) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        proba /= proba.sum(axis=1, keepdims=True)
    return entropy(proba)


def nearest_unique_rows(Z, centres, order=None):
    """For each centre (in ``order``), the nearest row of ``Z`` not taken by an earlier one.

    Returns
    -------
    rows : ndarray of shape (n_centres,)
    """
    order = np.arange(len(centres)) if order is None else order
    sq = (Z**2).sum(axis=1)
    taken = np.zeros(Z.shape[0], dtype=bool)
    rows = np.empty(len(order), dtype=np.intp)
    for i, k in enumerate(order):
        distances = sq - 2.0 * (Z @ centres[k])  # + ||centre||^2, the same for every row
        distances[taken] = np.inf
        rows[i] = int(np.argmin(distances))
        taken[rows[i]] = True
    return rows


class CLUE(QueryStrategy):
    """Clustering uncertainty-weighted embeddings, for a model moving to a new domain.

    Active domain adaptation (Prabhu et al. 2021): a model trained on a source domain is
    adapted to a target domain with a few target labels. Uncertainty alone picks redundant
    rows and diversity alone ignores what the model already knows, so CLUE runs k-means with
    ``k = batch_size`` on the target pool's embeddings ``phi(x)``, each row weighted by its
    predictive entropy ``H(Y | x)``::

        min  sum_k sum_{x in cluster k} H(Y | x) ||phi(x) - mu_k||^2,
        mu_k = sum_{x in k} H(Y | x) phi(x) / sum_{x in k} H(Y | x)

    and queries the pool row nearest each weighted centroid ``mu_k`` (the next nearest when
    two centroids share a row), clusters of largest total uncertainty first. The
    embedding is the learner's (:func:`~skal.strategies._base.embed`: a network's
    ``transform``, a Pipeline's preprocessing), or the raw features, so any classifier with
    ``predict_proba`` works. When every row is certain (all weights zero) the clustering
    is unweighted.

    Parameters
    ----------
    temperature : float, default=1.0
        Softmax temperature of the entropy (:func:`tempered_entropy`); above 1 flattens the
        weights, below 1 sharpens them.
    n_init : int, default=3
        k-means restarts (the best inertia is kept).
    max_iter : int, default=100
        k-means iterations per restart.
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means initialisation.

    References
    ----------
    V. Prabhu, A. Chandrasekaran, K. Saenko and J. Hoffman, "Active Domain Adaptation via
    Clustering Uncertainty-weighted Embeddings", ICCV 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skal.strategies import CLUE
    >>> X, y = load_digits(return_X_y=True)
    >>> model = LogisticRegression(max_iter=500).fit(X[:50], y[:50])
    >>> CLUE(random_state=0)(model, X[50:], batch_size=5).shape
    (5,)
    """

    _needs_dense_embedding = True
    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, temperature=1.0, n_init=3, max_iter=100, random_state=None):
        self.temperature = temperature
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        proba = require(learner, "predict_proba", type(self).__name__)(X_pool)
        weights = tempered_entropy(proba, self.temperature)
        Z = _as_numpy(embed(learner, X_pool)).astype(np.float64, copy=False)
        if not weights.sum() > 0:
            weights = np.ones_like(weights)
        kmeans = KMeans(
            n_clusters=batch_size, n_init=self.n_init, max_iter=self.max_iter,
            random_state=int(random_state.randint(_MAX_SEED)),
        )
        with warnings.catch_warnings():
            # Fewer distinct rows than clusters: duplicate centroids get distinct rows below.
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = kmeans.fit_predict(Z, sample_weight=weights)
        mass = np.bincount(labels, weights=weights, minlength=batch_size)
        order = np.argsort(-mass, kind="stable")
        rows = nearest_unique_rows(Z, kmeans.cluster_centers_, order)
        return rows, mass[order]
