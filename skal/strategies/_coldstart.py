"""Cold-start (low-budget) strategies: TypiClust and ProbCover.

They need no model, only the geometry of the pool (and of the labelled rows when there are
some), so they also serve as the ``initial_strategy`` of a simulated run.
"""

import numbers

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import pairwise_distances_argmin
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval, StrOptions

from skal.strategies._base import (
    TARGET_KINDS,
    PoolBlocks,
    QueryStrategy,
    chunk_slices,
    embed,
    is_dask_pool,
    num_rows,
    top_k,
)
from skal.strategies._diversity import _as_numpy, labeled_embedding, sq_norms

_MAX_SEED = np.iinfo(np.int32).max
# Above this many clusters, kmeans="auto" uses MiniBatchKMeans (as Hacohen et al. do).
_MINIBATCH_ABOVE = 50


def _pool_and_labeled(learner, X_pool):
    """Pool embedding and the stacked pool + labelled embedding (labelled rows last)."""
    Z = _as_numpy(embed(learner, X_pool))
    L = labeled_embedding(learner)
    if L is None:
        return Z, Z
    return Z, np.concatenate([Z, _as_numpy(L).astype(Z.dtype, copy=False)])


def _cluster(Z, n_clusters, kmeans, random_state):
    seed = random_state.randint(_MAX_SEED)
    use_minibatch = kmeans == "minibatch" or (kmeans == "auto" and n_clusters > _MINIBATCH_ABOVE)
    if use_minibatch:
        model = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=3)
    else:
        model = KMeans(n_clusters=n_clusters, random_state=seed)
    return model.fit_predict(Z)


def typicality(Z, n_neighbors):
    """Inverse mean distance to the ``n_neighbors`` nearest other rows (Hacohen et al. 2022)."""
    n = Z.shape[0]
    if n == 1:
        return np.ones(1)
    k = min(n_neighbors, n - 1)
    distances, _ = NearestNeighbors(n_neighbors=k).fit(Z).kneighbors()
    return 1.0 / (distances.mean(axis=1) + 1e-12)


class TypiClust(QueryStrategy):
    """TypiClust: the most typical row of each of the largest uncovered clusters.

    Hacohen, Dekel and Weinshall (ICML 2022). The pool and the labelled rows are clustered
    with k-means into ``n_labeled + batch_size`` clusters (at most ``max_clusters``); each
    pick comes from the cluster with the fewest labelled-or-selected rows, the largest among
    those, and is its most *typical* pool row: the inverse mean Euclidean distance to its
    ``n_neighbors`` nearest neighbours inside the cluster. Typicality is computed only for the
    clusters picked from, so memory stays O(N) beyond the embedding.

    It needs no model: with an unfitted learner (the ``initial_strategy`` of a simulated run)
    it clusters the raw features; with a fitted one it uses
    :func:`~skal.strategies._base.embed`.

    Parameters
    ----------
    n_neighbors : int, default=20
        Neighbours of the typicality estimate (20 in the paper).
    max_clusters : int, default=500
        Cap on the number of clusters (500 in the paper); above it, clusters receive more
        than one pick.
    kmeans : {"auto", "full", "minibatch"}, default="auto"
        :class:`~sklearn.cluster.KMeans` or :class:`~sklearn.cluster.MiniBatchKMeans`;
        ``"auto"`` uses mini-batches above 50 clusters, as the paper does.
    random_state : int, RandomState instance or None, default=None
        Seeds k-means and breaks ties.

    Notes
    -----
    A dask pool (protocol rule 7) is clustered by scikit-learn's
    :class:`~sklearn.cluster.MiniBatchKMeans` fed block by block with ``partial_fit`` on
    the workers that hold the blocks (three passes; ``kmeans`` is not used), the k-means
    model travelling from block to block; then each picked cluster's embedded rows come to
    the client for their typicality. The clusters, and so the picks, are not those of the
    same rows in memory (another k-means), but they repeat for a fixed seed and
    partitioning.
    """

    _target_kinds = frozenset(TARGET_KINDS)

    _needs_dense_embedding = True
    _supports_dask_pool = True
    _dask_pool_same_picks = False  # mini-batch k-means over the blocks: other clusters

    def __init__(self, n_neighbors=20, max_clusters=500, kmeans="auto", random_state=None):
        self.n_neighbors = n_neighbors
        self.max_clusters = max_clusters
        self.kmeans = kmeans
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        if self.kmeans not in ("auto", "full", "minibatch"):
            raise ValueError(f"kmeans must be 'auto', 'full' or 'minibatch', got {self.kmeans!r}.")
        for name in ("n_neighbors", "max_clusters"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if is_dask_pool(X_pool):
            return self._select_on_blocks(learner, X_pool, batch_size, random_state)
        Z, Z_all = _pool_and_labeled(learner, X_pool)
        n_pool, n_all = Z.shape[0], Z_all.shape[0]
        n_clusters = min(n_all - n_pool + batch_size, self.max_clusters, n_all)
        labels = _cluster(Z_all, n_clusters, self.kmeans, random_state)

        def members_of(cluster):
            members = np.flatnonzero(labels == cluster)
            typ = typicality(Z_all[members], self.n_neighbors)
            in_pool = members < n_pool
            return members[in_pool], typ[in_pool]

        counts = [np.bincount(part, minlength=n_clusters)
                  for part in (labels[:n_pool], labels[n_pool:])]
        return _typical_picks(*counts, members_of, batch_size, random_state)

    def _select_on_blocks(self, learner, X_pool, batch_size, random_state):
        """TypiClust on a dask pool: mini-batch k-means fed block by block where the blocks
        live (:class:`~sklearn.cluster.MiniBatchKMeans`'s ``partial_fit``, the model
        travelling from block to block), then the picks as in memory, each picked cluster's
        embedded rows brought to the client for its typicality."""
        blocks = PoolBlocks(X_pool, _embed_block, learner)
        L = labeled_embedding(learner)
        L = None if L is None or L.shape[0] == 0 else np.asarray(_as_numpy(L))
        n_labeled = 0 if L is None else L.shape[0]
        n_pool = num_rows(X_pool)
        n_clusters = min(n_labeled + batch_size, self.max_clusters, n_pool + n_labeled)
        model = MiniBatchKMeans(n_clusters=n_clusters,
                                random_state=int(random_state.randint(_MAX_SEED)))
        for _ in range(_PASSES):
            model = blocks.fold(_feed_block, (model, L))[0]
        centres = model.cluster_centers_
        blocks.update(_assign_block, centres)
        free = np.sum(blocks.ask(_count_block, n_clusters), axis=0)
        L_labels = np.empty(0, dtype=np.intp) if L is None else pairwise_distances_argmin(
            L, centres.astype(L.dtype))
        covered = np.bincount(L_labels, minlength=n_clusters)

        def members_of(cluster):
            parts = [part for part in blocks.ask(_cluster_rows, cluster) if part[0].size]
            positions = np.concatenate([part[0] for part in parts])
            Z = np.concatenate([part[1] for part in parts]
                               + ([] if L is None else [L[L_labels == cluster]]))
            return positions, typicality(Z, self.n_neighbors)[:positions.size]

        return _typical_picks(free, covered, members_of, batch_size, random_state)


def _typical_picks(free, covered, members_of, batch_size, random_state):
    """TypiClust's picks: the most typical free row of the cluster with the fewest
    labelled-or-selected rows, the largest among those; ``members_of(cluster)`` gives a
    cluster's pool rows and their typicality (asked once per cluster picked from)."""
    free, covered = free.copy(), covered.copy()
    sizes = free + covered
    typical = {}
    chosen, scores = [], []
    for _ in range(batch_size):
        candidates = np.flatnonzero(free > 0)
        # fewest labelled-or-selected rows first, then the largest cluster
        order = np.lexsort((random_state.random(candidates.size), -sizes[candidates],
                            covered[candidates]))
        cluster = int(candidates[order[0]])
        if cluster not in typical:
            typical[cluster] = members_of(cluster)
        members, typ = typical[cluster]
        score = np.where(np.isin(members, chosen), -np.inf, typ)
        best = int(top_k(score, 1, random_state)[0])
        chosen.append(int(members[best]))
        scores.append(typ[best])
        covered[cluster] += 1
        free[cluster] -= 1
    return np.asarray(chosen, dtype=np.intp), np.asarray(scores)


# Passes of mini-batch k-means over a dask pool's blocks (each block one mini-batch).
_PASSES = 3


def _embed_block(learner, X_block, start):
    return (np.ascontiguousarray(_as_numpy(embed(learner, X_block))),)


def _feed_block(accumulated, state, start):
    """One ``partial_fit`` of the k-means model on a block (run where the block lives).

    The labelled rows (``pending`` at the start of a pass) join the pass's first step; rows
    are held back until there are at least as many as clusters to initialise from.
    """
    model, pending = accumulated
    Z = state[0]
    if pending is not None:
        Z = np.concatenate([pending.astype(Z.dtype, copy=False), Z])
    if not hasattr(model, "cluster_centers_") and Z.shape[0] < model.n_clusters:
        return model, Z
    return model.partial_fit(Z), None


def _assign_block(state, start, centres):
    Z = state[0]
    return Z, pairwise_distances_argmin(Z, centres.astype(Z.dtype))


def _count_block(state, start, n_clusters):
    return np.bincount(state[1], minlength=n_clusters)


def _cluster_rows(state, start, cluster):
    Z, labels = state
    local = np.flatnonzero(labels == cluster)
    return local + start, Z[local]


def cross_cluster_distance(Z, labels):
    """Distance of every row to the nearest row of another cluster, in chunked GEMMs."""
    sq = sq_norms(Z)
    out = np.empty(Z.shape[0])
    for rows in chunk_slices(Z.shape[0], row_bytes=24 * Z.shape[0]):
        d2 = sq[None, :] - 2.0 * (Z[rows] @ Z.T)
        d2[labels[rows, None] == labels[None, :]] = np.inf
        out[rows] = d2.min(axis=1) + sq[rows]
    return np.sqrt(np.maximum(out, 0.0))


class ProbCover(QueryStrategy):
    """ProbCover: greedy maximum coverage by balls of radius δ (Yehuda et al., NeurIPS 2022).

    Every row covers the rows within distance δ of it. Rows covered by the labelled set are
    covered already; each pick is the pool row whose ball covers the most rows not yet
    covered, after which those rows count as covered. When everything is covered, picks are
    random. The ball graph is a sparse radius-neighbours graph
    (:class:`~sklearn.neighbors.NearestNeighbors`), never a dense N x N matrix; its memory is
    O(N x mean ball size), and the greedy updates touch each edge once.

    Choosing δ (``radius="auto"``, the paper's rule): cluster the rows with k-means into
    ``n_clusters`` clusters and take the largest δ for which a fraction ``purity`` of the balls
    hold rows of a single cluster. A ball around ``x`` is pure exactly when δ is below the
    distance from ``x`` to the nearest row of another cluster, so δ is the ``1 - purity``
    quantile of those distances, found in one chunked pass (O(N²·d) time, O(N) memory).

    Parameters
    ----------
    radius : float or "auto", default="auto"
        The ball radius δ in the embedding's Euclidean distance.
    purity : float in (0, 1], default=0.95
        Fraction of pure balls of ``radius="auto"`` (0.95 in the paper).
    n_clusters : int, default=None
        Clusters of ``radius="auto"``; the paper uses the number of classes. ``None`` takes
        the fitted learner's number of classes, else (cold start) the batch size, at least 2.
    random_state : int, RandomState instance or None, default=None
        Seeds k-means, breaks ties and draws the picks once everything is covered.
    """

    _target_kinds = frozenset(TARGET_KINDS)

    _needs_dense_embedding = True
    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "radius": [StrOptions({"auto"}), Interval(numbers.Real, 0, None, closed="left")],
        "purity": [Interval(numbers.Real, 0, 1, closed="right")],
        "n_clusters": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(self, radius="auto", purity=0.95, n_clusters=None, random_state=None):
        self.radius = radius
        self.purity = purity
        self.n_clusters = n_clusters
        self.random_state = random_state

    def _auto_radius(self, learner, Z_all, batch_size, random_state):
        n_clusters = self.n_clusters
        if n_clusters is None:
            classes = getattr(learner, "classes_", None)
            n_clusters = len(classes) if classes is not None else batch_size
        n_clusters = int(min(max(n_clusters, 2), Z_all.shape[0]))
        if n_clusters < 2:
            return 0.0
        labels = _cluster(Z_all, n_clusters, "full", random_state)
        gaps = cross_cluster_distance(Z_all, labels)
        return float(np.quantile(gaps, 1.0 - self.purity))

    def _select(self, learner, X_pool, batch_size, random_state):
        Z, Z_all = _pool_and_labeled(learner, X_pool)
        n_pool, n_all = Z.shape[0], Z_all.shape[0]
        # radius, purity and n_clusters are checked by _parameter_constraints in select.
        if self.radius == "auto":
            radius = self._auto_radius(learner, Z_all, batch_size, random_state)
        else:
            radius = float(self.radius)
        graph = NearestNeighbors(radius=radius).fit(Z_all).radius_neighbors_graph(
            Z_all, mode="connectivity"
        ).tocsr()
        # Who covers row j: column j, i.e. row j of the transpose (the graph is symmetric up
        # to rounding at the boundary, so do not rely on it).
        covered_by = graph.T.tocsr()
        covered = np.zeros(n_all, dtype=bool)
        for row in range(n_pool, n_all):
            covered[graph.indices[graph.indptr[row]:graph.indptr[row + 1]]] = True
        gain = np.asarray(graph[:n_pool] @ (~covered).astype(np.int64)).ravel().astype(float)
        chosen, scores = [], []
        taken = np.zeros(n_pool, dtype=bool)
        for _ in range(batch_size):
            score = np.where(taken, -np.inf, gain)
            if score.max() <= 0:  # all covered: random among the rest
                score = np.where(taken, -np.inf, random_state.random(n_pool))
                best = int(np.argmax(score))
            else:
                best = int(top_k(score, 1, random_state)[0])
            chosen.append(best)
            scores.append(max(gain[best], 0.0))
            taken[best] = True
            ball = graph.indices[graph.indptr[best]:graph.indptr[best + 1]]
            newly = ball[~covered[ball]]
            covered[newly] = True
            if newly.size:
                coverers = covered_by[newly].indices
                gain -= np.bincount(coverers[coverers < n_pool], minlength=n_pool)[:n_pool]
        return np.asarray(chosen, dtype=np.intp), np.asarray(scores)
