"""Strategies that compare pool rows with their labelled neighbours in an embedding:
contrastive active learning (CAL) and an open-set filter that keeps rows of classes outside the
task out of the batch. No torch here: the embedding comes from the learner (``embed``)."""

import math
import numbers

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import _num_samples

from skal.strategies._base import (
    QueryStrategy,
    _n_columns,
    embed,
    map_pool_chunks,
    require,
    top_k,
)
from skal.strategies._diversity import _as_numpy

# Probabilities are floored here before logarithms: a neighbour sure of a class the candidate
# gives exactly 0 would make the divergence infinite and every such row tie at the top.
_TINY = 1e-12


def _labeled_rows(learner, name):
    """The learner's labelled rows (``X_labeled_``), or a TypeError that says what to use."""
    X_labeled = getattr(learner, "X_labeled_", None)
    if X_labeled is None or _num_samples(X_labeled) == 0:
        raise TypeError(
            f"{name} compares pool rows with the labelled rows, but {type(learner).__name__} "
            "has no X_labeled_. Use a skal learner (ActiveLearner, CommitteeLearner), which "
            "keeps its labelled rows, or set X_labeled_ on the fitted model."
        )
    return X_labeled


def _chunk_kwargs(learner, row_bytes):
    return {"row_bytes": row_bytes, "chunk_size": getattr(learner, "chunk_size", None),
            "n_jobs": getattr(learner, "n_jobs", None)}


def kl_to_neighbours(proba_candidates, proba_neighbours):
    """Mean ``KL(p_neighbour || p_candidate)`` over each candidate's neighbours, in nats.

    Parameters
    ----------
    proba_candidates : ndarray of shape (n, n_classes)
    proba_neighbours : ndarray of shape (n, k, n_classes)
        The predicted distributions of the ``k`` neighbours of every candidate.

    Returns
    -------
    scores : ndarray of shape (n,)
    """
    q = np.maximum(np.asarray(proba_candidates, dtype=np.float64), _TINY)[:, None, :]
    p = np.asarray(proba_neighbours, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.maximum(p, _TINY)) - np.log(q)), 0.0)
    return terms.sum(axis=2).mean(axis=1)


class CAL(QueryStrategy):
    """Contrastive active learning: rows predicted unlike their labelled neighbours.

    Margatina, Vernikos, Barrault and Aletras (EMNLP 2021). For every pool row ``x`` the
    ``n_neighbors`` nearest labelled rows ``x_l`` are found in the learner's embedding
    (:func:`~skal.strategies._base.embed`: a network's or Pipeline's transform, else the raw
    features; Euclidean distance), and the score is the mean divergence of the model's
    predicted distributions::

        CAL(x) = (1 / k) sum_{l in kNN(x)} KL( p(y | x_l) || p(y | x) )

    with the *model's predictions* on the labelled neighbours (not their labels), in the
    paper's direction (the neighbour's distribution first, as its code computes it with
    ``KLDivLoss(log p(y | x), p(y | x_l))``). The top ``batch_size`` rows are taken: rows
    close to labelled data in feature space whose prediction differs most, "contrastive
    examples". Probabilities of the candidate are floored at 1e-12 so a confident
    disagreement stays finite.

    Cost: one ``predict_proba`` and one embedding of the labelled rows, then per pool chunk
    an embedding, a nearest-neighbour search among the labelled rows and the pool's
    ``predict_proba``; memory is bounded by the chunk.

    Parameters
    ----------
    n_neighbors : int, default=10
        Labelled neighbours per row (10 in the paper); fewer when fewer rows are labelled.
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.

    References
    ----------
    K. Margatina, G. Vernikos, L. Barrault and N. Aletras, "Active Learning by Acquiring
    Contrastive Examples", EMNLP 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal import ActiveLearner
    >>> from skal.strategies import CAL
    >>> X, y = load_iris(return_X_y=True)
    >>> y_known = y.copy(); y_known[1::5] = -1
    >>> learner = ActiveLearner(query_strategy=CAL(random_state=0)).fit(X, y_known)
    >>> learner.query(X[1::5], 3).shape
    (3,)
    """

    _needs_dense_embedding = True
    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, n_neighbors=10, random_state=None):
        self.n_neighbors = n_neighbors
        self.random_state = random_state

    def score(self, learner, X_pool):
        """CAL score of every row of ``X_pool``; higher is more informative.

        Parameters
        ----------
        learner : estimator
            A fitted learner with ``predict_proba`` and ``X_labeled_``.
        X_pool : array-like of shape (n_pool, n_features)

        Returns
        -------
        scores : ndarray of shape (n_pool,)
        """
        self._validate_params()
        name = type(self).__name__
        proba = require(learner, "predict_proba", name)
        X_labeled = _labeled_rows(learner, name)
        Z_labeled = _as_numpy(embed(learner, X_labeled))
        P_labeled = np.asarray(proba(X_labeled), dtype=np.float64)
        k = min(self.n_neighbors, Z_labeled.shape[0])
        index = NearestNeighbors(n_neighbors=k).fit(Z_labeled)

        def chunk_scores(X_chunk):
            Z = _as_numpy(embed(learner, X_chunk)).astype(Z_labeled.dtype, copy=False)
            neighbours = index.kneighbors(Z, return_distance=False)
            return kl_to_neighbours(proba(X_chunk), P_labeled[neighbours])

        n_classes = P_labeled.shape[1]
        row_bytes = 8 * (_n_columns(X_pool) + Z_labeled.shape[0] + 3 * k * n_classes)
        return map_pool_chunks(chunk_scores, X_pool, **_chunk_kwargs(learner, row_bytes))

    def _select(self, learner, X_pool, batch_size, random_state):
        scores = self.score(learner, X_pool)
        indices = top_k(scores, batch_size, random_state)
        return indices, scores[indices]


class OpenSetFilter(QueryStrategy):
    """Keep rows of classes outside the task out of the batch (class distribution mismatch).

    When the pool holds rows of classes the task does not have (open-set pools: other
    objects, junk, a neighbouring data set), uncertainty sampling favours them, since the
    model is unsure of everything it was never taught, and every such query wastes a label.
    Following the query rule of CCAL (Du et al., ICCV 2021), which first keeps candidates
    whose *semantic* similarity to the labelled in-distribution rows is high and then ranks
    them by informativeness, the rule here is:

    1. semantic score ``s``: the labelled rows' mass spread over the k-nearest-neighbour
       graph of the pool and labelled rows in the learner's embedding
       (:func:`~skal.strategies._base.embed`, e.g. a contrastive encoder's), as in label
       spreading (Zhou et al. 2004) with a single class, "in the task"::

           A = kNN graph (n_neighbors, symmetrised),  S = D^-1/2 A D^-1/2,
           s <- alpha S s + (1 - alpha) e_L   (from s = e_L, until alpha^t < 1e-3)

       with ``e_L`` the indicator of the labelled rows. A row scores high when short
       paths of near neighbours lead to labelled rows; a cluster of an unknown class
       receives only what leaks across its few edges to known classes;
    2. keep the ``max(batch_size, ceil(keep * n_pool))`` pool rows with the highest ``s``
       (ties at random);
    3. among them take the ``batch_size`` rows with the highest score of
       ``base_strategy`` (margin sampling by default).

    It simplifies CCAL in three ways: one embedding serves for the semantic score (CCAL
    trains a second, "distinctive" contrastive model and ranks by it); the similarity to
    the labelled rows is measured through the pool's neighbourhood graph rather than
    directly (on raw ``load_digits`` pixels with 8 of 10 classes in the task and 30 labels,
    the direct mean cosine to the 5 most similar labelled rows separates in- from
    out-of-task rows with AUROC 0.63-0.69 over three seeds; the diffusion with 0.87-0.93);
    and a fraction of the pool is kept instead of CCAL's fixed similarity threshold, so
    the rule does not depend on the scale of the embedding. Labelled rows of an out-of-task
    class (an annotator's "none of these") should be left out of the learner's labelled set,
    or they make their class look in-distribution.

    The graph costs ``O(N^2 d)`` time (a chunked nearest-neighbour search) and
    ``O(N n_neighbors)`` memory for ``N`` pool and labelled rows.

    Parameters
    ----------
    base_strategy : strategy with ``score``, default=None
        The informativeness of step 3; ``None`` is :class:`~skal.strategies.MarginSampling`.
    keep : float in (0, 1], default=0.5
        Fraction of the pool kept as likely in-distribution. Set it near the share of
        in-task rows you expect, lower to be safer; 1 gives the base strategy's picks.
    n_neighbors : int, default=10
        Neighbours per row in the graph.
    alpha : float in (0, 1), default=0.9
        How far the labelled mass spreads (label spreading's ``alpha``).
    random_state : int, RandomState instance or None, default=None
        Breaks ties.

    References
    ----------
    P. Du, S. Zhao, H. Chen, S. Chai, H. Chen and C. Li, "Contrastive Coding for Active
    Learning under Class Distribution Mismatch", ICCV 2021.
    D. Zhou, O. Bousquet, T. N. Lal, J. Weston and B. Schölkopf, "Learning with Local and
    Global Consistency", NIPS 2004.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal import ActiveLearner
    >>> from skal.strategies import OpenSetFilter
    >>> X, y = load_iris(return_X_y=True)
    >>> y_known = y.copy(); y_known[1::5] = -1
    >>> learner = ActiveLearner(query_strategy=OpenSetFilter(random_state=0)).fit(X, y_known)
    >>> learner.query(X[1::5], 3).shape
    (3,)
    """

    _needs_dense_embedding = True
    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "base_strategy": [HasMethods(["score"]), None],
        "keep": [Interval(numbers.Real, 0, 1, closed="right")],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "alpha": [Interval(numbers.Real, 0, 1, closed="neither")],
    }

    def __init__(self, base_strategy=None, keep=0.5, n_neighbors=10, alpha=0.9,
                 random_state=None):
        self.base_strategy = base_strategy
        self.keep = keep
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.random_state = random_state

    def _base(self):
        if self.base_strategy is None:
            from skal.strategies._uncertainty import MarginSampling

            return MarginSampling()
        return self.base_strategy

    def semantic_score(self, learner, X_pool):
        """How strongly every pool row is connected to the labelled rows (step 1).

        Parameters
        ----------
        learner : estimator
            A fitted learner with ``X_labeled_``; its embedding is used.
        X_pool : array-like of shape (n_pool, n_features)

        Returns
        -------
        score : ndarray of shape (n_pool,)
            Non-negative; low values mark likely out-of-distribution rows.
        """
        self._validate_params()
        Z_labeled = _as_numpy(embed(learner, _labeled_rows(learner, "OpenSetFilter")))
        Z_pool = _as_numpy(embed(learner, X_pool))
        Z = np.concatenate([Z_pool, Z_labeled.astype(Z_pool.dtype, copy=False)])
        return spread_from(Z, np.arange(Z_pool.shape[0], Z.shape[0]), self.n_neighbors,
                           self.alpha)[:Z_pool.shape[0]]

    def _select(self, learner, X_pool, batch_size, random_state):
        try:
            phi = np.asarray(self._base().score(learner, X_pool), dtype=np.float64)
        except (TypeError, NotFittedError) as error:
            # Name this strategy too: the user chose OpenSetFilter, not its base.
            raise type(error)(f"{type(self).__name__}'s base strategy: {error}") from error
        semantic = self.semantic_score(learner, X_pool)
        n_keep = min(max(batch_size, math.ceil(self.keep * phi.shape[0])), phi.shape[0])
        kept = top_k(semantic, n_keep, random_state)
        chosen = kept[top_k(phi[kept], batch_size, random_state)]
        return chosen, phi[chosen]


def spread_from(Z, sources, n_neighbors=10, alpha=0.9):
    """Label spreading of one class from the rows ``sources`` over the kNN graph of ``Z``.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
    sources : ndarray of int
        Rows holding the initial mass.
    n_neighbors : int, default=10
    alpha : float in (0, 1), default=0.9

    Returns
    -------
    score : ndarray of shape (n,)
        ``s`` after iterating ``s <- alpha S s + (1 - alpha) e`` from ``s = e`` until
        ``alpha^t < 1e-3``, with ``S`` the symmetrically normalised, symmetrised kNN graph.
    """
    import scipy.sparse as sp

    n = Z.shape[0]
    seed = np.zeros(n)
    seed[sources] = 1.0
    if n < 2:
        return seed
    graph = NearestNeighbors(n_neighbors=min(n_neighbors, n - 1)).fit(Z).kneighbors_graph(
        mode="connectivity")
    graph = ((graph + graph.T) > 0).astype(np.float64)
    scale = sp.diags(1.0 / np.sqrt(np.asarray(graph.sum(axis=1)).ravel()))
    S = (scale @ graph @ scale).tocsr()
    score = seed.copy()
    for _ in range(math.ceil(math.log(1e-3) / math.log(alpha))):
        score = alpha * (S @ score) + (1.0 - alpha) * seed
    return score
