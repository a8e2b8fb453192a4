"""Diversity strategies over embeddings: Core-Set (greedy k-center), BADGE and ranked batch.

Distances are computed as ``||a||² + ||b||² - 2 a·b`` with BLAS, in row chunks of bounded
memory; no strategy here builds an N x N matrix, and each keeps O(N) state.
"""

import numbers

import numpy as np
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.utils.validation import _num_samples
from threadpoolctl import ThreadpoolController

from skal.strategies._base import (
    TARGET_KINDS,
    PoolBlocks,
    QueryStrategy,
    chunk_slices,
    embed,
    is_dask_pool,
    num_rows,
    position_gumbel,
    require,
    tie_break_salt,
    top_k,
    top_k_by_position,
)

# Rows re-checked at once by the lazy k-center step before it widens the search.
_LAZY_BLOCK = 256
_CONTROLLER = []


def _blas_controller():
    # Created once: building a controller scans the loaded libraries (tens of ms).
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _is_torch(Z):
    return type(Z).__module__.split(".")[0] == "torch"


def _as_numpy(Z):
    if _is_torch(Z):
        return Z.detach().cpu().numpy()
    return Z


def labeled_embedding(learner):
    """The embedding of the learner's labelled rows, or ``None`` when it has none."""
    X_labeled = getattr(learner, "X_labeled_", None)
    if X_labeled is None or _num_samples(X_labeled) == 0:
        return None
    return embed(learner, X_labeled)


def sq_norms(Z):
    """Squared Euclidean norm of every row, in float64, with one read of ``Z``."""
    return np.einsum("ij,ij->i", Z, Z, dtype=np.float64) if Z.dtype != np.float64 else (
        np.einsum("ij,ij->i", Z, Z)
    )


def min_sq_dist(Z, sq_Z, C, sq_C):
    """``min_j ||Z_i - C_j||²`` for every row of ``Z``, in chunks: never a full distance matrix.

    Each chunk is one GEMM ``Z_chunk @ C.T``; the temporaries stay within scikit-learn's
    ``working_memory``.
    """
    if Z.shape[0] * C.shape[0] * Z.shape[1] < 2**27:
        # small products: one BLAS thread avoids the cost of waking the others
        with _blas_controller().limit(limits=1, user_api="blas"):
            return _min_sq_dist(Z, sq_Z, C, sq_C)
    return _min_sq_dist(Z, sq_Z, C, sq_C)


def _min_sq_dist(Z, sq_Z, C, sq_C):
    out = np.empty(Z.shape[0], dtype=np.float64)
    C = C.astype(Z.dtype, copy=False)
    sq_C_half = (0.5 * sq_C).astype(Z.dtype)
    for rows in chunk_slices(Z.shape[0], row_bytes=8 * C.shape[0]):
        # min_j ||c_j||²/2 - z·c_j, in place on the GEMM output
        dots = Z[rows] @ C.T
        np.subtract(sq_C_half, dots, out=dots)
        out[rows] = 2.0 * dots.min(axis=1) + sq_Z[rows]
    np.maximum(out, 0.0, out=out)
    return out


def _refresh(Z, sq_Z, block, centres, sq_centres, dmin):
    """Lower ``dmin[block]`` by the squared distances to ``centres`` (GEMMs in chunks)."""
    for part in chunk_slices(block.size, row_bytes=16 * centres.shape[0]):
        rows = block[part]
        d2 = sq_centres[None, :] - 2.0 * (Z[rows] @ centres.T)
        d2 = np.maximum(d2.min(axis=1) + sq_Z[rows], 0.0)
        dmin[rows] = np.minimum(dmin[rows], d2)


def k_center_greedy(Z, batch_size, dmin, first=None):
    """Greedy k-center (Sener & Savarese 2018) with lazy distance updates.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        The pool embedding.
    batch_size : int
    dmin : ndarray of shape (n,), float64
        Squared distance of every row to the nearest existing centre (``inf`` when there is
        none). Modified in place.
    first : int, default=None
        Forced first centre (used when there are no existing centres).

    Returns
    -------
    indices : ndarray of shape (batch_size,)
    radii : ndarray of shape (batch_size,)
        Distance of each chosen row to the nearest centre at the time it was chosen.

    Notes
    -----
    The result is the textbook algorithm's: each step takes the row farthest from all
    centres. Because ``dmin`` only decreases, a stale value is an upper bound; a step re-checks
    only the rows with the largest bounds against the centres added since their last check
    and stops when the best checked row beats every unchecked bound, widening the block
    (up to the whole pool, i.e. one distance pass) otherwise. On typical embeddings a step
    then reads a few hundred rows instead of the whole matrix.
    """
    # The lazy steps are small matrix products, for which waking a second BLAS thread costs
    # more than it saves (far more when the cores are busy).
    with _blas_controller().limit(limits=1, user_api="blas"):
        return _k_center_lazy(Z, batch_size, dmin, first)


def _k_center_lazy(Z, batch_size, dmin, first):
    farthest = LazyFarthest(Z, dmin, batch_size)
    chosen, radii = [], []
    for step in range(batch_size):
        if step == 0 and first is not None:
            radius, best = dmin[int(first)], int(first)
        else:
            radius, best = farthest.find()
        chosen.append(best)
        radii.append(np.sqrt(max(radius, 0.0)))
        farthest.add_centre(Z[best], best, farthest.sq_Z[best])
    return np.asarray(chosen, dtype=np.intp), np.asarray(radii)


class LazyFarthest:
    """The row farthest from a growing set of centres, with lazily updated distances.

    ``dmin`` (float64, modified in place) holds every row's squared distance to its nearest
    centre, or an upper bound of it: it only decreases as centres are added, so a stale value
    bounds the true one. :meth:`find` re-checks only the rows of largest bound against the
    centres added since their last check, and stops when the best checked row beats every
    unchecked bound, widening the block (up to every row, one distance pass) otherwise.
    :meth:`add_centre` only records the centre. On typical embeddings a step reads a few
    hundred rows instead of the whole matrix.

    One such object per block of a dask pool keeps the lazy scheme where the block lives:
    each block finds its own farthest row and the client takes the farthest of those.
    """

    def __init__(self, Z, dmin, max_centres, sq_Z=None):
        self.Z, self.dmin = Z, dmin
        self.sq_Z = sq_norms(Z) if sq_Z is None else sq_Z
        self.n_centres = 0
        # number of centres each row was checked against
        self.checked = np.zeros(Z.shape[0], dtype=np.int64)
        self.centres = np.empty((max_centres, Z.shape[1]), dtype=Z.dtype)
        self.sq_centres = np.empty(max_centres, dtype=np.float64)
        # The block of candidate rows and an upper bound on dmin outside it; dmin only
        # decreases, so both stay valid from one step to the next.
        self.block, self.rest_bound, self.block_size = None, np.inf, min(_LAZY_BLOCK, Z.shape[0])

    def __getstate__(self):
        # A copy may be taken while find() runs (dask spilling a block's state to disk, or
        # sending it to another worker): keep only what holds at every moment -- each dmin
        # value bounds its row's distance from above -- and let the copy re-check its rows
        # against every centre, so a half-updated copy cannot claim a stale row is current.
        state = self.__dict__.copy()
        state["checked"] = np.zeros_like(self.checked)
        state["block"], state["rest_bound"] = None, np.inf
        return state

    def find(self):
        """``(squared distance, row)`` of the farthest row; lowest row among exact ties."""
        Z, sq_Z, dmin, checked, k = self.Z, self.sq_Z, self.dmin, self.checked, self.n_centres
        n = Z.shape[0]
        fresh = False
        while True:
            if self.block is None:
                if self.block_size >= n:
                    self.block, self.rest_bound = np.arange(n), -np.inf
                else:
                    part = np.argpartition(dmin, n - self.block_size - 1)
                    self.block = part[n - self.block_size:]
                    self.rest_bound = dmin[part[n - self.block_size - 1]]
                fresh = True
            block = self.block
            stale = block[checked[block] < k]
            if stale.size:
                # Rows checked last step need only the newest centre; rows new to the block
                # need all centres since their last check.
                recent = checked[stale] == k - 1
                for rows in (stale[recent], stale[~recent]):
                    if rows.size:
                        first = int(checked[rows].min())
                        _refresh(Z, sq_Z, rows, self.centres[first:k],
                                 self.sq_centres[first:k], dmin)
                checked[stale] = k
            values = dmin[block]
            top = values.max()
            if top > self.rest_bound or block.size >= n:
                # lowest index among exact ties, as np.argmax over the whole pool would
                return top, int(block[values == top].min())
            if fresh:  # a just-built block was not enough: widen it
                self.block_size = min(4 * self.block_size, n)
            self.block = None

    def add_centre(self, row, position=None, sq_row=None):
        """Add ``row`` (squared norm ``sq_row``, computed when None) to the centres;
        ``position`` is its row here, if it is one of ours."""
        k = self.n_centres
        if k == self.centres.shape[0]:  # more centres than planned: grow the store
            self.centres = np.concatenate([self.centres, np.empty_like(self.centres)])
            self.sq_centres = np.concatenate([self.sq_centres, np.empty_like(self.sq_centres)])
        self.centres[k] = row
        self.sq_centres[k] = sq_norms(np.asarray(row)[None, :])[0] if sq_row is None else sq_row
        self.n_centres = k + 1
        if position is not None:
            self.dmin[position] = -np.inf
            self.checked[position] = k + 1


def _k_center_torch(Z, L, batch_size, first):
    """Greedy k-center on torch tensors (e.g. on the GPU): one matrix-vector pass per centre."""
    import torch

    Z = Z.to(torch.float32) if not torch.is_floating_point(Z) else Z
    sq_Z = (Z * Z).sum(dim=1)
    dmin = torch.full((Z.shape[0],), float("inf"), dtype=Z.dtype, device=Z.device)
    if L is not None and L.shape[0]:
        L = torch.as_tensor(L, device=Z.device, dtype=Z.dtype)
        sq_L = (L * L).sum(dim=1)
        for rows in chunk_slices(Z.shape[0], row_bytes=8 * L.shape[0]):
            d2 = sq_Z[rows, None] + sq_L[None, :] - 2.0 * (Z[rows] @ L.T)
            dmin[rows] = d2.min(dim=1).values.clamp_min(0.0)
    chosen, radii = [], []
    for step in range(batch_size):
        best = int(first) if step == 0 and first is not None else int(torch.argmax(dmin))
        radius = float(dmin[best])
        chosen.append(best)
        radii.append(np.sqrt(max(radius, 0.0)))
        d2 = (sq_Z + sq_Z[best] - 2.0 * (Z @ Z[best])).clamp_min(0.0)
        torch.minimum(dmin, d2, out=dmin)
        dmin[best] = -float("inf")
    return np.asarray(chosen, dtype=np.intp), np.asarray(radii)


def _k_center_on_blocks(learner, X_pool, batch_size, cold_start, random_state):
    """Greedy k-center on a dask pool: the lazy algorithm in every block, one reduction a pick.

    Every block keeps a :class:`LazyFarthest` of its embedding on the worker that holds it
    (persisted). A pick asks every block for its farthest row (value, pool position and the
    row itself: O(blocks x d) values), takes the farthest of those (lowest position among
    exact ties, as ``np.argmax`` and ``k_center_greedy``), and sends that row back to every
    block, which records it as a centre; distances are brought up to date lazily, as in
    memory. The picks are ``k_center_greedy``'s.
    """
    L = labeled_embedding(learner)
    L = None if L is None or L.shape[0] == 0 else np.asarray(_as_numpy(L))
    shared = (learner, L, None if L is None else sq_norms(L), batch_size)
    blocks = PoolBlocks(X_pool, _block_state, shared)
    first = None
    if L is None:
        if cold_start == "random":
            first = int(random_state.randint(num_rows(X_pool)))
        else:
            mean = np.sum(blocks.ask(_block_sum), axis=0) / num_rows(X_pool)
            first = _farthest_of_blocks(blocks, _block_far_from, mean)[1]
    chosen, radii = [], []
    for step in range(batch_size):
        if step == 0 and first is not None:
            radius, best = np.inf, first
            row = next(r for r in blocks.ask(_block_row, best) if r is not None)
        else:
            radius, best, row = _farthest_of_blocks(blocks, _block_farthest)
        chosen.append(best)
        radii.append(np.sqrt(max(radius, 0.0)))
        blocks.update(_block_add_centre, row, best)
    return np.asarray(chosen, dtype=np.intp), np.asarray(radii)


def _farthest_of_blocks(blocks, func, *args):
    # the largest value; among exact ties the lowest pool position
    value, position, row = max(blocks.ask(func, *args), key=lambda top: (top[0], -top[1]))
    return value, position, row


def _block_state(shared, X_block, start):
    learner, L, sq_L, batch_size = shared
    Z = np.ascontiguousarray(_as_numpy(embed(learner, X_block)))
    sq_Z = sq_norms(Z)
    dmin = np.full(Z.shape[0], np.inf) if L is None else min_sq_dist(Z, sq_Z, L, sq_L)
    return LazyFarthest(Z, dmin, batch_size, sq_Z)


def _block_sum(state, start):
    return state.Z.sum(axis=0, dtype=np.float64)


def _block_row(state, start, position):
    local = position - start
    return state.Z[local] if 0 <= local < state.Z.shape[0] else None


def _block_farthest(state, start):
    # Tightens the state's bounds in place: a cache, the distances it bounds are unchanged
    # (and a copy taken meanwhile is safe: LazyFarthest.__getstate__). No BLAS thread limit
    # here: it is process-wide, and a worker may run several blocks' tasks at once.
    value, local = state.find()
    return float(value), start + local, state.Z[local]


def _block_far_from(state, start, mean):
    # _first_centre's "farthest" rule, on one block
    d2 = state.sq_Z - 2.0 * (state.Z @ mean.astype(state.Z.dtype))
    local = int(np.argmax(d2))
    return float(d2[local]), start + local, state.Z[local]


def _block_add_centre(state, start, row, position):
    """The block's state with ``row`` (pool position ``position``) added to the centres.

    Changed in place and returned (no copy of the block's distances per pick): the
    previous state is never read again, and if a worker is lost dask rebuilds the state
    from its lineage, which gives the same centres.
    """
    local = position - start
    state.add_centre(row, local if 0 <= local < state.Z.shape[0] else None)
    return state


def _first_centre(Z, cold_start, random_state):
    if cold_start == "random":
        return int(random_state.randint(Z.shape[0]))
    mean = Z.mean(axis=0, dtype=np.float64).astype(Z.dtype)
    d2 = sq_norms(Z) - 2.0 * (Z @ mean)
    return int(np.argmax(d2))


class CoreSet(QueryStrategy):
    """Core-Set: greedy k-center selection over embeddings (Sener & Savarese, ICLR 2018).

    Each pick is the pool row farthest from its nearest centre, where the centres are the
    learner's labelled rows and the rows picked so far; the batch minimises (greedily, within a
    factor 2) the largest distance from any pool row to the labelled-and-selected set.

    Distances are Euclidean in the embedding of :func:`skal.strategies._base.embed` (a
    network's penultimate layer, a Pipeline's transformed features, or the raw features). The
    distances to the labelled set are computed in chunked GEMMs and kept as one vector of
    length N; picks update it lazily (see ``k_center_greedy``), so memory is O(N) beyond the
    embedding and no N x N matrix is built. When ``transform`` returns torch tensors the
    computation runs with torch on their device.

    Parameters
    ----------
    cold_start : {"farthest", "random"}, default="farthest"
        First centre when the learner has no labelled rows (e.g. as the ``initial_strategy`` of
        a simulated run): the row farthest from the pool mean, or a random row.
    random_state : int, RandomState instance or None, default=None
        Seed of ``cold_start="random"``.

    Examples
    --------
    >>> import numpy as np
    >>> from skal.strategies import CoreSet
    >>> X = np.array([[0.0], [1.0], [2.0], [10.0]])
    >>> CoreSet()(None, X, batch_size=2)
    array([3, 0])
    """

    _target_kinds = frozenset(TARGET_KINDS)

    _needs_dense_embedding = True
    _supports_dask_pool = True  # one reduction over the blocks per pick

    def __init__(self, cold_start="farthest", random_state=None):
        self.cold_start = cold_start
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        if self.cold_start not in ("farthest", "random"):
            raise ValueError(
                f"cold_start must be 'farthest' or 'random', got {self.cold_start!r}."
            )
        if is_dask_pool(X_pool):
            return _k_center_on_blocks(learner, X_pool, batch_size, self.cold_start,
                                       random_state)
        Z = embed(learner, X_pool)
        L = labeled_embedding(learner)
        no_centres = L is None or L.shape[0] == 0
        if _is_torch(Z):
            first = None
            if no_centres:
                first = _first_centre(_as_numpy(Z), self.cold_start, random_state)
            return _k_center_torch(Z, L, batch_size, first)
        if no_centres:
            dmin = np.full(Z.shape[0], np.inf)
            first = _first_centre(Z, self.cold_start, random_state)
        else:
            L = _as_numpy(L)
            dmin = min_sq_dist(Z, sq_norms(Z), L, sq_norms(L))
            first = None
        return k_center_greedy(Z, batch_size, dmin, first)


class BADGE(QueryStrategy):
    """BADGE: k-means++ seeding on hypothetical-label gradient embeddings (Ash et al., 2020).

    The gradient embedding of row ``i`` is ``g_i = (p_i - onehot(argmax p_i)) ⊗ h_i``, the
    gradient of the cross-entropy loss with respect to the last layer's weights if the
    predicted label were true, where ``p_i`` is ``predict_proba`` and ``h_i`` the embedding
    (the input of the last layer: :func:`~skal.strategies._base.embed`). Its norm grows with
    uncertainty and its direction carries diversity. The batch is k-means++ seeding in that
    space: first the row of largest norm, then rows drawn with probability proportional to the
    squared distance to the nearest chosen one.

    The N x (C·D) gradient matrix is never built: with ``a_i = p_i - onehot``,
    ``||g_i - g_j||² = ||a_i||²||h_i||² + ||a_j||²||h_j||² - 2 (a_i·a_j)(h_i·h_j)``, so each
    pick costs one pass over the embedding and the probabilities.

    The D² draws are Gumbel-max draws with noise keyed by the row's pool position (see
    :func:`~skal.strategies._base.position_gumbel`), so a dask pool (protocol rule 7) runs
    block by block, each block's state kept on its worker and one small reduction per pick,
    and gives the batch the same rows give in memory for the same seed.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Seed of the D² sampling.
    """

    _needs_dense_embedding = True
    _supports_dask_pool = True  # one reduction over the blocks per pick

    def __init__(self, random_state=None):
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        name = type(self).__name__
        require(learner, "predict_proba", name)
        salts = [tie_break_salt(random_state) for _ in range(batch_size)]
        blocks = PoolBlocks(X_pool, _badge_state, (learner, name))
        parts = blocks.ask(_badge_block_first, salts[0])
        chosen, scores = [], []
        for step in range(batch_size):
            if step:
                parts = blocks.ask(_badge_block_draw, salts[step])
                if any(np.isfinite(part[0][0]) for part in parts):
                    parts = [part[0] for part in parts]  # a D² draw
                else:  # every remaining row duplicates a chosen one: uniform among the rest
                    parts = [part[1] for part in parts]
            values, positions = (np.array([part[i] for part in parts]) for i in range(2))
            best = int(top_k_by_position(values, 1, salts[step], positions)[0])
            _, position, score, a, h, sq_g = parts[best]
            chosen.append(position)
            scores.append(score)
            blocks.update(_badge_block_add_centre, a, h, sq_g, position)
        return np.asarray(chosen, dtype=np.intp), np.asarray(scores)


# BADGE's rounds, on one block each (the pool in memory is one block; see PoolBlocks). The
# D² draw is the Gumbel-max trick: the row of largest log(d²) + Gumbel noise is a draw with
# probability proportional to d², and with the noise keyed by the row's pool position
# (position_gumbel), every block finds its own candidate and the largest of those is the
# draw the whole pool in memory makes.
def _badge_state(shared, X_block, start):
    learner, name = shared
    proba = np.asarray(require(learner, "predict_proba", name)(X_block), dtype=np.float64)
    H = _as_numpy(embed(learner, X_block))
    A, sq_A, sq_H = gradient_factors(proba, H)
    n = H.shape[0]
    return A, H, sq_A * sq_H, np.full(n, np.inf), np.zeros(n, dtype=bool)


def _badge_candidate(state, start, values, score, salt):
    A, H, sq_G = state[:3]
    local = int(top_k_by_position(values, 1, salt, offset=start)[0])
    return values[local], start + local, score[local], A[local], H[local], sq_G[local]


def _badge_block_first(state, start, salt):
    """The row of largest gradient norm (BADGE's first pick)."""
    return _badge_candidate(state, start, state[2], state[2], salt)


def _badge_block_draw(state, start, salt):
    """The block's D² candidate, and, only when the block has no row of positive D² (the
    fallback is needed only when no block has one), its uniform candidate among the rows
    not chosen."""
    d2, taken = state[3], state[4]
    noise = position_gumbel(salt, np.arange(start, start + d2.size))
    with np.errstate(divide="ignore"):
        weighted = np.where(d2 > 0, np.log(d2) + noise, -np.inf)
    drawn = _badge_candidate(state, start, weighted, d2, salt)
    if np.isfinite(drawn[0]):
        return drawn, None
    return drawn, _badge_candidate(state, start, np.where(taken, -np.inf, noise), d2, salt)


def _badge_block_add_centre(state, start, a, h, sq_g, position):
    """The block's state with the row ``(a, h)`` (pool position ``position``) chosen."""
    A, H, sq_G, d2, taken = state
    new = sq_G + sq_g - 2.0 * (A @ a) * (H @ h)
    np.maximum(new, 0.0, out=new)
    d2 = np.minimum(d2, new)
    local = position - start
    if 0 <= local < d2.size:
        taken = taken.copy()
        taken[local] = True
    d2[taken] = 0.0
    return A, H, sq_G, d2, taken


def gradient_factors(proba, H):
    """Factors of the BADGE gradient embedding ``a = p - onehot(argmax p)``, ``||a||²``, ``||h||²``.
    """
    A = np.array(proba, dtype=np.float64)
    A[np.arange(A.shape[0]), A.argmax(axis=1)] -= 1.0
    return A, np.einsum("ij,ij->i", A, A), sq_norms(H)


_UNCERTAINTIES = ("least_confidence", "margin", "entropy")
_DIVERSITIES = ("euclidean", "cosine", "angle", "kl")
_EPS = 1e-12


def _uncertainty(proba, kind):
    """Uncertainty in [0, 1] from class probabilities."""
    if kind == "least_confidence":
        return 1.0 - proba.max(axis=1)
    if kind == "margin":
        part = np.sort(proba, axis=1)
        return 1.0 - (part[:, -1] - part[:, -2]) if proba.shape[1] > 1 else np.zeros(len(proba))
    p = np.clip(proba, _EPS, 1.0)
    return -(proba * np.log(p)).sum(axis=1) / max(np.log(proba.shape[1]), _EPS)


class _Dissimilarity:
    """Dissimilarity in [0, 1] between rows of a feature matrix and a few other rows."""

    def __init__(self, kind, F, kernel, kernel_params):
        self.kind, self.kernel, self.kernel_params = kind, kernel, kernel_params or {}
        self.F = F
        self.aux = self._aux(F)

    def _aux(self, F):
        if self.kind in ("euclidean", "cosine"):
            return sq_norms(F)
        if self.kind == "kl":
            logF = np.log(np.clip(F, _EPS, 1.0))
            return logF, (F * logF).sum(axis=1)
        # angle: k(x, x) for the normalisation |k(x, y)| / sqrt(k(x, x) k(y, y))
        if self.kernel in ("rbf", "laplacian"):
            return np.ones(F.shape[0])
        diag = np.empty(F.shape[0])
        for rows in chunk_slices(F.shape[0], row_bytes=8 * 512, chunk_size=512):
            block = F[rows]
            diag[rows] = np.diag(
                pairwise_kernels(block, block, metric=self.kernel, **self.kernel_params)
            )
        return diag

    def between(self, rows, G, G_aux):
        """Dissimilarities of shape (len(rows), len(G)) between ``F[rows]`` and ``G``."""
        F = self.F[rows]
        if self.kind == "euclidean":
            d2 = self.aux[rows, None] + G_aux[None, :] - 2.0 * (F @ G.T)
            d = np.sqrt(np.maximum(d2, 0.0))
            return d / (1.0 + d)
        if self.kind == "cosine":
            norms = np.sqrt(self.aux[rows, None] * G_aux[None, :])
            cos = np.divide(F @ G.T, norms, out=np.zeros((F.shape[0], G.shape[0])),
                            where=norms > 0)
            return (1.0 - cos) / 2.0
        if self.kind == "kl":
            logF, ent = self.aux[0][rows], self.aux[1][rows]
            logG, ent_G = G_aux
            # sum_y (p - q)(log p - log q) = sum p log p + sum q log q - p·log q - q·log p
            R = ent[:, None] + ent_G[None, :] - F @ logG.T - logF @ G.T
            R = np.maximum(R, 0.0)
            return R / (1.0 + R)
        K = pairwise_kernels(F, G, metric=self.kernel, **self.kernel_params)
        norms = np.sqrt(np.maximum(self.aux[rows, None] * G_aux[None, :], 0.0))
        cos = np.divide(np.abs(K), norms, out=np.zeros_like(K, dtype=np.float64),
                        where=norms > 0)
        return 1.0 - np.minimum(cos, 1.0)

    def row_aux(self, idx):
        if self.kind == "kl":
            return self.aux[0][idx], self.aux[1][idx]
        return self.aux[idx]

    def min_to(self, G):
        """``min_j`` dissimilarity of every row to the rows of ``G``, in chunks."""
        G_aux = self._aux(G)
        out = np.empty(self.F.shape[0])
        for rows in chunk_slices(self.F.shape[0], row_bytes=24 * G.shape[0]):
            out[rows] = self.between(rows, G, G_aux).min(axis=1)
        return out


class RankedBatch(QueryStrategy):
    """Ranked batch-mode sampling: uncertainty traded against diversity, greedily.

    In the spirit of Cardoso et al. (2017), each pick maximises
    ``alpha * uncertainty(x) + (1 - alpha) * dissimilarity(x, labelled ∪ selected)``, where
    the dissimilarity to a set is the one to its nearest member, so a batch avoids rows like
    those already labelled or chosen. Both terms lie in ``[0, 1]``. Each pick updates one
    vector of length N with one pass over the pool.

    Parameters
    ----------
    diversity : {"euclidean", "cosine", "angle", "kl"}, default="euclidean"
        The dissimilarity, computed in the embedding of
        :func:`~skal.strategies._base.embed` except for ``"kl"``:

        - ``"euclidean"``: ``d / (1 + d)`` for the Euclidean distance ``d`` (Cardoso et al.'s
          similarity ``1 / (1 + d)``, turned into a dissimilarity);
        - ``"cosine"``: ``(1 - cos(x, y)) / 2``;
        - ``"angle"``: ``1 - |cos ∠(h_x, h_y)|`` with
          ``|cos ∠(h_x, h_y)| = |k(x, y)| / sqrt(k(x, x) k(y, y))``, the angle between the
          hyperplanes a kernel machine induces (Brinker 2003; angle-based diversity of the
          survey's Table 2);
        - ``"kl"``: ``R / (1 + R)`` with the symmetric KL redundancy
          ``R(x, y) = sum_c (p(c|x) - p(c|y)) log(p(c|x) / p(c|y))`` between predicted class
          distributions (redundancy-based diversity of Table 2).
    alpha : float in [0, 1] or "auto", default="auto"
        Weight of uncertainty. ``"auto"`` is ``|L| / (|L| + |U|)`` for ``|L|`` labelled and
        ``|U|`` pool rows (Cardoso et al.'s schedule: diversity dominates while few labels
        exist).
    uncertainty : {"least_confidence", "margin", "entropy"}, default="least_confidence"
        ``1 - max p``, ``1 - (p_1 - p_2)`` or entropy divided by ``log C``.
    kernel : str or callable, default="linear"
        Kernel of ``diversity="angle"``, any metric of
        :func:`sklearn.metrics.pairwise.pairwise_kernels`.
    kernel_params : dict, default=None
        Extra arguments of the kernel (e.g. ``{"gamma": 0.1}``).
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    def __init__(self, diversity="euclidean", alpha="auto", uncertainty="least_confidence",
                 kernel="linear", kernel_params=None, random_state=None):
        self.diversity = diversity
        self.alpha = alpha
        self.uncertainty = uncertainty
        self.kernel = kernel
        self.kernel_params = kernel_params
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self.diversity == "kl"  # the others embed the rows
        return tags

    def _check(self):
        if self.diversity not in _DIVERSITIES:
            raise ValueError(f"diversity must be one of {_DIVERSITIES}, got {self.diversity!r}.")
        if self.uncertainty not in _UNCERTAINTIES:
            raise ValueError(
                f"uncertainty must be one of {_UNCERTAINTIES}, got {self.uncertainty!r}."
            )
        if not (self.alpha == "auto" or (isinstance(self.alpha, numbers.Real)
                                         and 0.0 <= self.alpha <= 1.0)):
            raise ValueError(f"alpha must be 'auto' or a number in [0, 1], got {self.alpha!r}.")

    def _select(self, learner, X_pool, batch_size, random_state):
        self._check()
        name = type(self).__name__
        predict_proba = require(learner, "predict_proba", name)
        proba = np.asarray(predict_proba(X_pool), dtype=np.float64)
        u = _uncertainty(proba, self.uncertainty)
        X_labeled = getattr(learner, "X_labeled_", None)
        n_labeled = 0 if X_labeled is None else _num_samples(X_labeled)
        if self.diversity == "kl":
            F = proba
            G = np.asarray(predict_proba(X_labeled), dtype=np.float64) if n_labeled else None
        else:
            F = _as_numpy(embed(learner, X_pool))
            G = _as_numpy(labeled_embedding(learner)) if n_labeled else None
        diss = _Dissimilarity(self.diversity, F, self.kernel, self.kernel_params)
        n = F.shape[0]
        dissim = diss.min_to(G) if G is not None else np.ones(n)
        alpha = n_labeled / (n_labeled + n) if self.alpha == "auto" else float(self.alpha)
        chosen, scores = [], []
        everything = slice(0, n)
        for _ in range(batch_size):
            score = alpha * u + (1.0 - alpha) * dissim
            score[chosen] = -np.inf
            best = int(top_k(score, 1, random_state)[0])
            chosen.append(best)
            scores.append(score[best])
            idx = np.array([best])
            new = diss.between(everything, F[idx], diss.row_aux(idx))[:, 0]
            np.minimum(dissim, new, out=dissim)
        return np.asarray(chosen, dtype=np.intp), np.asarray(scores)
