"""Bayesian query strategies over posterior samples: BALD, BatchBALD and stochastic BALD.

They read ``learner.predict_proba_samples(X) -> (n_samples, n_pool, n_classes)``: MC-dropout
passes, deep-ensemble members or the members of a :class:`~skal.CommitteeLearner`.
"""

import functools
import itertools
import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.utils.validation import _num_samples

from skal.strategies._base import (
    PoolBlocks,
    PoolScoringStrategy,
    QueryStrategy,
    _n_columns,
    chunk_slices,
    is_dask_pool,
    num_rows,
    position_gumbel,
    require,
    take_rows,
    tie_break_salt,
    top_k,
    top_k_by_position,
)

# Probabilities are clamped to at least this before logarithms of mixtures are taken, so that
# 0 log 0 = 0 needs no branch in the hot loop; the error it adds is below 1e-28 nats.
_TINY = {np.dtype(np.float32): 1e-30, np.dtype(np.float64): 1e-300}

# Elements of the (configurations x candidates*classes) matrix evaluated at once: large enough
# for BLAS, small enough that the block and its logarithms stay in the last-level cache.
_BLOCK_ELEMENTS = 2**19
_FIRST_BLOCK = 32


def _is_torch(x):
    return type(x).__module__.split(".", 1)[0] == "torch"


def _to_numpy(x, dtype=np.float64):
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check_samples(samples, strategy_name, n_rows=None):
    shape = tuple(samples.shape)
    if len(shape) != 3 or (n_rows is not None and shape[1] != n_rows):
        raise ValueError(
            f"{strategy_name}: predict_proba_samples must return an array of shape "
            f"(n_samples, n_pool, n_classes), got shape {shape}."
        )
    return samples


def _xlogx_sum(proba, axis):
    """sum(p log p) along ``axis`` with 0 log 0 = 0, for non-negative float64 ``proba``."""
    return (proba * np.log(np.maximum(proba, _TINY[np.dtype(np.float64)]))).sum(axis=axis)


def bald_terms(samples):
    """BALD scores and expected conditional entropies from posterior samples.

    Parameters
    ----------
    samples : ndarray of shape (n_samples, n_pool, n_classes)
        Class probabilities under each posterior sample (MC-dropout pass, ensemble or
        committee member).

    Returns
    -------
    bald : ndarray of shape (n_pool,)
        ``H[mean_k p_k] - mean_k H[p_k]`` in nats, the mutual information between the label
        and the model; in ``[0, log n_classes]``.
    expected_entropy : ndarray of shape (n_pool,)
        ``mean_k H[p_k]``, the aleatoric part.
    """
    samples = _to_numpy(samples)
    log_samples = np.maximum(samples, _TINY[np.dtype(np.float64)])
    np.log(log_samples, out=log_samples)
    # einsum sums the products without holding them: a quarter faster than _xlogx_sum here
    expected_entropy = -np.einsum("knc,knc->n", samples, log_samples) / samples.shape[0]
    predictive_entropy = -_xlogx_sum(samples.mean(axis=0), axis=1)
    # Rounding can make a true zero slightly negative.
    bald = np.maximum(predictive_entropy - expected_entropy, 0.0)
    return bald, expected_entropy


class _BayesianStrategy(PoolScoringStrategy):
    _requires = "predict_proba_samples"

    def _outputs_per_row(self):
        return 32  # a guess at the number of posterior samples, for chunk sizing only

    def _score_chunk(self, learner, X_chunk):
        name = type(self).__name__
        samples = require(learner, "predict_proba_samples", name)(X_chunk)
        _check_samples(samples, name, _num_samples(X_chunk))
        return bald_terms(samples)[0]


class BALD(_BayesianStrategy):
    """Bayesian Active Learning by Disagreement: the top rows by mutual information.

    The score of a row is the mutual information between its label and the model parameters,
    estimated from posterior samples ``p_k = p(y | x, w_k)``::

        BALD(x) = H[mean_k p_k] - mean_k H[p_k]

    (Houlsby et al. 2011; Gal, Islam and Ghahramani 2017). It is 0 when all samples agree and
    at most ``log C``. The samples may be MC-dropout passes, deep-ensemble members or the
    members of a :class:`~skal.CommitteeLearner` (where BALD equals
    :class:`~skal.strategies.KLDivergence`). The top ``batch_size`` rows are taken
    independently; see :class:`BatchBALD` and :class:`StochasticBALD` for batches.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal import CommitteeLearner
    >>> from skal.strategies import BALD
    >>> X, y = load_iris(return_X_y=True)
    >>> committee = CommitteeLearner(n_estimators=4, random_state=0).fit(X, y)
    >>> BALD()(committee, X, batch_size=3).shape
    (3,)
    """

    def __init__(self, random_state=None):
        self.random_state = random_state


_STOCHASTIC_MODES = ("power", "softmax", "softrank")


class StochasticBALD(_BayesianStrategy):
    """Batches sampled in proportion to BALD scores (Kirsch et al. 2022): PowerBALD and kin.

    Taking the top ``batch_size`` BALD scores fills a batch with near-duplicates; BatchBALD
    fixes that at a cost. Stochastic batch acquisition instead draws the batch without
    replacement with probabilities given by the scores, which spreads it out at BALD's cost
    and comes close to BatchBALD's label efficiency. The draw is the top ``batch_size`` of
    Gumbel-perturbed scores (the Gumbel-top-k trick):

    - ``"power"`` (PowerBALD): ``p(i) ∝ BALD_i ** beta``, i.e. ``beta * log BALD_i + ε_i``;
    - ``"softmax"`` (SoftmaxBALD): ``p(i) ∝ exp(beta * BALD_i)``;
    - ``"softrank"`` (SoftrankBALD): ``p(i) ∝ rank_i ** -beta``, rank 1 the highest score.

    Parameters
    ----------
    mode : {"power", "softmax", "softrank"}, default="power"
        How scores become sampling probabilities.
    beta : float, default=1.0
        Inverse temperature. ``beta -> inf`` approaches top-k BALD, ``beta = 0`` is random
        sampling. Must be >= 0.
    random_state : int, RandomState instance or None, default=None
        Seed of the draw.

    Notes
    -----
    :meth:`select` returns the BALD scores of the selected rows (not the perturbed values).
    The Gumbel noise of a row is a function of the query's random stream and the row's
    position in the pool (:func:`~skal.strategies._base.position_gumbel`), so modes
    ``"power"`` and ``"softmax"`` run block by block on a dask pool and draw the same batch
    as the same rows in memory; ``"softrank"`` ranks the whole pool at once and takes pools
    in memory only.

    References
    ----------
    A. Kirsch, S. Farquhar, P. Atighehchian, A. Jesson, F. Branchaud-Charron and Y. Gal,
    "Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning", TMLR 2023
    (arXiv:2106.12059).
    """

    def __init__(self, mode="power", beta=1.0, random_state=None):
        self.mode = mode
        self.beta = beta
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        if self.mode not in _STOCHASTIC_MODES:
            raise ValueError(f"mode must be one of {_STOCHASTIC_MODES}, got {self.mode!r}.")
        beta = self.beta
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta >= 0:
            raise ValueError(f"beta must be a non-negative number, got {beta!r}.")
        if self.mode != "softrank":
            return super()._select(learner, X_pool, batch_size, random_state)
        salt = tie_break_salt(random_state)
        noise_salt = tie_break_salt(random_state)
        scores = self.score(learner, X_pool)
        ranks = np.empty(scores.size)
        ranks[np.argsort(-scores, kind="stable")] = np.arange(1, scores.size + 1)
        perturbed = -beta * np.log(ranks) + position_gumbel(noise_salt, np.arange(scores.size))
        indices = top_k_by_position(perturbed, batch_size, salt)
        return indices, scores[indices]

    @property
    def _supports_dask_pool(self):
        # a row's softrank is its rank over the whole pool (protocol rule 7)
        return self.mode != "softrank"

    @property
    def _dask_pool_hint(self):
        return (" With mode='softrank' a row's rank is over the whole pool; mode='power' or "
                "'softmax' runs block by block.")

    def _ranking(self, random_state):
        # Drawn after the tie-break salt, as the softrank branch does.
        return functools.partial(_gumbel_perturbed, mode=self.mode, beta=float(self.beta),
                                 salt=tie_break_salt(random_state))


def _gumbel_perturbed(scores, positions, mode, beta, salt):
    """Log sampling weights of ``mode`` plus keyed Gumbel noise: their top k is a draw
    without replacement with probabilities proportional to the weights."""
    if mode == "power":
        with np.errstate(divide="ignore"):
            logits = beta * np.log(scores) if beta > 0 else np.zeros_like(scores)
    else:
        logits = beta * scores
    return logits + position_gumbel(salt, positions)


# ---------------------------------------------------------------------------- BatchBALD
def _softmax_rows(log_weights):
    """Rows of ``exp(log_weights)`` normalised to sum 1, in float64; also the log-sums."""
    shift = log_weights.max(axis=1, keepdims=True)
    weights = np.exp(log_weights - shift)
    sums = weights.sum(axis=1, keepdims=True)
    weights /= sums
    return weights, (np.log(sums) + shift)[:, 0]


def _curvature(quadratic, peak):
    """What grouping's bound may drop by curvature: ``1/2 sum_c (p_c' S p_c) / max_k p_kc``.

    For ``f(r) = H[r P]`` on the simplex (``P`` the candidate's samples, ``K x C``) the Hessian
    is ``-P diag(1/q) P'`` with ``q = r P``, and ``q_c <= max_k P_kc``; so ``f`` lies below its
    tangent at a group's weighted mean by at least ``1/2 d' P diag(1/max_k P_kc) P' d`` at a
    member ``d`` away. Summed over the members (the tangent terms cancel), a group's Jensen
    bound drops by this, with ``S`` the weighted within-group scatter of the posteriors,
    summed over the groups. ``quadratic`` holds ``p_c' S p_c`` per candidate and class. The
    term is taken at 0.999 of its size, so that float32 rounding of the product cannot
    overstate it.
    """
    return 0.4995 * (quadratic / peak).sum(1)


class _NumpyBackend:
    """The hot loop on numpy: one matrix product and one entropy pass per block."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.tiny = _TINY[self.dtype]

    def empty_samples(self, shape):
        return np.empty(shape, dtype=self.dtype)

    def store(self, buffer, rows, chunk):
        # Clamped once here so that every mixture of samples is > 0 in the hot loop.
        np.maximum(_to_numpy(chunk, self.dtype), self.tiny, out=buffer[:, rows, :])

    def column(self, samples, j):
        return np.asarray(samples[:, j, :], dtype=np.float64)

    def weights(self, *arrays):
        return tuple(None if array is None else array.astype(self.dtype) for array in arrays)

    def conditional_entropy(self, posterior, config_weights, samples, candidates, scatter=None):
        """``sum_m w_m H[sum_k R_mk p_k(. | x_n)]`` for each candidate ``n``.

        With ``scatter`` (grouped configurations), less the curvature term of
        :func:`_curvature`: an upper bound of the same sum over the configurations grouped.
        """
        n_samples, _, n_classes = samples.shape
        if isinstance(candidates, slice):  # a run of rows: a view, no copy
            block = samples[:, candidates, :].reshape(n_samples, -1)
        else:
            # take, not fancy indexing: the latter returns a strided block that reshape
            # copies again.
            block = np.take(samples, candidates, axis=1).reshape(n_samples, -1)
        n_candidates = block.shape[1] // n_classes
        mixture = posterior @ block
        logs = np.log(mixture)
        mixture *= logs
        terms = config_weights @ mixture
        entropy = -terms.reshape(n_candidates, n_classes).sum(axis=1, dtype=np.float64)
        if scatter is not None:
            quadratic = np.einsum("kj,kj->j", scatter @ block, block)
            peak = block.reshape(n_samples, n_candidates, n_classes).max(axis=0)
            entropy -= _curvature(quadratic.reshape(peak.shape), peak)
        return entropy


class _TorchBackend:
    """The same hot loop in torch, on any device (a CUDA GPU when the caller asks for it)."""

    def __init__(self, dtype, device):
        import torch

        self.torch = torch
        self.dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
            np.dtype(dtype)
        ]
        self.tiny = _TINY[np.dtype(dtype)]
        self.device = torch.device(device)

    def empty_samples(self, shape):
        return self.torch.empty(shape, dtype=self.dtype, device=self.device)

    def store(self, buffer, rows, chunk):
        torch = self.torch
        chunk = chunk if _is_torch(chunk) else torch.from_numpy(np.asarray(chunk))
        buffer[:, rows, :] = chunk.to(device=self.device, dtype=self.dtype).clamp_min(self.tiny)

    def column(self, samples, j):
        return samples[:, j, :].double().cpu().numpy()

    def weights(self, *arrays):
        return tuple(
            None if array is None
            else self.torch.from_numpy(array).to(device=self.device, dtype=self.dtype)
            for array in arrays
        )

    def conditional_entropy(self, posterior, config_weights, samples, candidates, scatter=None):
        torch = self.torch
        n_samples, _, n_classes = samples.shape
        with torch.no_grad():
            if isinstance(candidates, slice):
                block = samples[:, candidates, :].reshape(n_samples, -1)
            else:
                index = torch.from_numpy(candidates).to(self.device)
                block = samples.index_select(1, index).reshape(n_samples, -1)
            n_candidates = block.shape[1] // n_classes
            mixture = posterior @ block
            terms = config_weights @ (mixture * torch.log(mixture))
            entropy = -terms.reshape(n_candidates, n_classes).double().sum(dim=1)
            if scatter is not None:
                quadratic = ((scatter @ block) * block).sum(dim=0)
                peak = block.reshape(n_samples, n_candidates, n_classes).amax(dim=0)
                entropy -= _curvature(quadratic.reshape(peak.shape), peak)
        return entropy.cpu().numpy()


class _JointConfigurations:
    """Label configurations ``y_A`` of the batch so far, as log-likelihoods under each sample.

    Exact while the configurations of non-zero probability number at most
    ``n_joint_samples``: all of them, weighted by ``p(y_A)``. Beyond that, ``n_joint_samples``
    configurations drawn from ``p(y_A)`` ancestrally (a posterior sample ``k_m``, stratified
    over the samples, then each label from ``p(y_i | w_{k_m})``), weighted equally. Both give
    ``H(y_n | y_A) = sum_m w_m H[sum_k R_mk p(y_n | w_k)]`` where ``R_m = p(w | y_A^m)`` is the
    posterior over samples given configuration ``m`` -- the importance weights
    ``p(y_A^m | w_k) / p(y_A^m)`` normalised, computed in float64 log space so that long
    batches cannot underflow.
    """

    def __init__(self, n_samples, n_joint_samples, rng):
        self.n_samples = n_samples
        self.n_joint_samples = n_joint_samples
        self.exact = True
        self.exact_loglik = np.zeros((1, n_samples))
        # The sampled configurations are grown alongside, so that switching is seamless.
        n_draws = n_joint_samples
        self.sample_of_config = np.concatenate(
            [
                np.tile(np.arange(n_samples), n_draws // n_samples),
                rng.choice(n_samples, n_draws % n_samples, replace=False),
            ]
        )
        self.sampled_loglik = np.zeros((n_draws, n_samples))
        self.rng = rng

    def add(self, proba):
        """Condition on one more batch member with class probabilities ``proba`` (K, C)."""
        with np.errstate(divide="ignore"):
            log_proba = np.log(proba)
        # Sampled configurations: draw each configuration's label from its own sample.
        cdf = np.cumsum(proba[self.sample_of_config], axis=1)
        u = self.rng.random_sample(cdf.shape[0]) * cdf[:, -1]
        labels = np.minimum((u[:, None] >= cdf).sum(axis=1), proba.shape[1] - 1)
        self.sampled_loglik += log_proba[:, labels].T
        if not self.exact:
            return
        # Exact: every old configuration times every class, keeping those with p > 0.
        shift = self.exact_loglik.max(axis=1, keepdims=True)
        joint = np.exp(self.exact_loglik - shift) @ proba
        keep = np.flatnonzero(joint.ravel() > 0)
        if keep.size > self.n_joint_samples:
            self.exact, self.exact_loglik = False, None
            return
        old, label = np.divmod(keep, proba.shape[1])
        self.exact_loglik = self.exact_loglik[old] + log_proba[:, label].T

    def weights(self):
        """``(R, w)``: posterior over samples per configuration, configuration weights."""
        if self.exact:
            posterior, log_joint = _softmax_rows(self.exact_loglik)
            config_weights = _softmax_rows(log_joint[None, :])[0][0]
        else:
            posterior, _ = _softmax_rows(self.sampled_loglik)
            config_weights = np.full(posterior.shape[0], 1.0 / posterior.shape[0])
        return posterior, config_weights


def _group_sums(values, labels, n_groups):
    """Row sums of ``values`` per label: one sparse product, much faster than ``np.add.at``."""
    from scipy.sparse import csr_matrix

    n_rows = labels.shape[0]
    indicator = csr_matrix(
        (np.ones(n_rows, dtype=values.dtype), labels, np.arange(n_rows + 1)),
        shape=(n_rows, n_groups),
    )
    return np.asarray(indicator.T @ values)


def _kmeans_labels(features, n_groups, rng, n_iter=4):
    """Group labels of the rows of ``features`` by a few Lloyd iterations (k-means)."""
    centres = features[rng.choice(features.shape[0], n_groups, replace=False)]
    for _ in range(n_iter):
        distance = (centres**2).sum(axis=1)[None, :] - 2 * (features @ centres.T)
        labels = distance.argmin(axis=1)
        counts = np.bincount(labels, minlength=n_groups)
        used = counts > 0
        centres[used] = _group_sums(features, labels, n_groups)[used] / counts[used, None]
    return labels


def _split_groups(features, labels, n_groups, n_split, rng, n_iter=3):
    """Split every group into up to ``n_split`` by k-means within it; the finer labels.

    Vectorised over the groups: each row is only compared with its own group's centres, so a
    grouping ``n_split`` times finer costs about as much as ``n_split`` more centres.
    """
    n_rows, n_features = features.shape
    # Initial centres: n_split members of each group in random order (repeats in small groups).
    order = np.lexsort((rng.random_sample(n_rows), labels))
    counts = np.bincount(labels, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    picks = starts[:, None] + np.arange(n_split)[None, :] % np.maximum(counts, 1)[:, None]
    centres = features[order[np.minimum(picks, n_rows - 1)]]
    flat = centres.reshape(n_groups * n_split, n_features)
    for _ in range(n_iter):
        # |c|^2 - 2 c.x: the squared distance to x, less |x|^2
        norms = np.einsum("gsd,gsd->gs", centres, centres)
        distance = norms[labels] - 2 * np.matmul(centres[labels], features[:, :, None])[:, :, 0]
        finer = labels * n_split + distance.argmin(axis=1)
        counts = np.bincount(finer, minlength=n_groups * n_split)
        used = counts > 0
        flat[used] = _group_sums(features, finer, n_groups * n_split)[used] / counts[used, None]
    return finer


def _pool_groups(posterior, config_weights, labels, n_groups, with_scatter=True):
    """Weighted-mean posteriors and total weights of the non-empty groups, and the scatter.

    The scatter is ``sum_m w_m (R_m - Rbar_g(m)) (R_m - Rbar_g(m))'`` (``K x K``), the
    configurations' spread within their groups, for the bound's curvature term (``None``
    without ``with_scatter``).
    """
    group_weights = np.bincount(labels, weights=config_weights, minlength=n_groups)
    pooled = _group_sums(posterior * config_weights[:, None], labels, n_groups)
    used = group_weights > 0
    pooled[used] /= group_weights[used, None]
    scatter = None
    if with_scatter:
        spread = posterior - pooled[labels]
        scatter = (spread * config_weights[:, None]).T @ spread
    return pooled[used], group_weights[used], scatter


def _group_features(posterior, rng):
    """float32 rows for k-means: the posteriors, randomly projected when there are many samples."""
    features = posterior.astype(np.float32)
    if features.shape[1] > 32:
        features = features @ rng.standard_normal((features.shape[1], 32)).astype(np.float32)
    return features


def _bound_levels(posterior, config_weights, rng):
    """Nested groupings of the configurations, coarse to fine, that bound the gains (or none).

    A generator: the coarsest level is ready before the k-means of the finer ones runs.

    Each level is the groups' weighted-mean posteriors, total weights and within-group
    scatter. By concavity of entropy, ``sum_g W_g H[Rbar_g p_n] >= sum_m w_m H[R_m p_n]`` for
    *any* grouping, and by at least the curvature term (:func:`_curvature`), so a level of G
    groups bounds every candidate's gain from above at about ``(G + K) / n_configs`` of the
    exact cost (the curvature term costs a ``K x K`` by ``K x C`` product per candidate); a
    good grouping only makes the bound tighter.

    The coarsest level groups the configurations by their most probable sample: as the batch
    grows, each configuration's posterior ``R_m`` concentrates on a few samples, so K groups
    by argmax bound about as tightly as k-means into 64 groups, and far more tightly than
    k-means into fewer groups than samples (which cannot separate the corners of the simplex
    at all). Each group is then split in two by k-means within it, then in up to 4, and
    again, while a level stays at most half as costly as the next: 20, 40, 160, 640 and
    2,560 groups for K = 20 samples and 10,000 configurations (halving first prunes nearly
    as many candidates as quartering, at about two thirds of the cost). With more than 64
    samples the coarsest level is k-means into 64 groups instead, split in up to 8, and
    without the curvature term, whose ``n_configs x K^2`` scatter per level and ``K^2 C``
    per candidate cost more than they save there (K = 1,000 ran 4x slower with it). Each
    level re-bounds the survivors of the one before at a fraction of the exact cost. k-means
    runs in float32 on a random projection of the rows of ``R`` when there are many
    samples: it need not be exact to be safe.
    """
    n_configs, n_samples = posterior.shape
    if n_configs < 256:
        return
    p = config_weights / config_weights.sum()
    features = _group_features(posterior, rng)
    curvature = n_samples <= 64
    if curvature:
        n_groups, labels, split = n_samples, posterior.argmax(axis=1), (2, 4)
    else:
        n_groups, split = 64, (8, 8)
        labels = _kmeans_labels(features, n_groups, rng)
    yield _pool_groups(posterior, p, labels, n_groups, curvature)
    for level in itertools.count():
        n_split = min(split[level > 0], n_configs // (2 * n_groups))
        if n_split < 2:
            return
        labels = _split_groups(features, labels, n_groups, n_split, rng)
        n_groups *= n_split
        yield _pool_groups(posterior, p, labels, n_groups, curvature)


def greedy_batchbald(
    samples,
    batch_size,
    *,
    n_joint_samples=10000,
    random_state=None,
    dtype="float32",
    device=None,
    lazy=True,
    stop_below=None,
    terms=None,
):
    """Greedy BatchBALD on posterior samples; the engine behind :class:`BatchBALD`.

    Parameters
    ----------
    samples : array of shape (n_samples, n_pool, n_classes)
        Class probabilities per posterior sample (numpy, or a torch tensor on any device).
    batch_size : int
    n_joint_samples : int, default=10000
    random_state : RandomState instance, int or None
    dtype : {"float32", "float64"}, default="float32"
        Precision of the configurations-by-candidates products and their entropies.
    device : None, str or torch.device
        ``None`` computes with numpy (or, for torch input, torch on the input's device).
    lazy : bool, default=True
        Lazy-greedy evaluation with upper bounds; ``False`` scores every candidate at every
        step (for benchmarks and tests: both give the same batch up to rounding).
    stop_below : float or None
        Stop early, returning a shorter batch, at the first pick that gains less than this
        (BatchBALD's prefilter: a row left out with this BALD could then beat the pick).
    terms : tuple of two ndarrays or None
        ``bald_terms(samples)`` when the caller has it already (the prefilter does).

    Returns
    -------
    indices : ndarray of shape (batch_size,)
    gains : ndarray of shape (batch_size,)
        ``I(y_n; w | y_A)`` of each pick given the picks before it; the first is its BALD.
        Both are shorter when ``stop_below`` stopped the batch.
    """
    from sklearn.utils import check_random_state
    from threadpoolctl import threadpool_limits

    rng = check_random_state(random_state)
    given = samples
    n_samples, n_pool, n_classes = (int(size) for size in given.shape)
    if device is None and _is_torch(given):
        device = given.device
    backend = _NumpyBackend(dtype) if device is None else _TorchBackend(dtype, device)
    samples = backend.empty_samples((n_samples, n_pool, n_classes))
    bald = np.empty(n_pool)
    expected_entropy = np.empty(n_pool)
    # Slices that stay in cache while BALD's float64 logarithms are taken.
    step = max(1, _BLOCK_ELEMENTS // (n_samples * n_classes))
    for start in range(0, n_pool, step):
        rows = slice(start, min(start + step, n_pool))
        chunk = given[:, rows, :]
        if terms is None:
            bald[rows], expected_entropy[rows] = bald_terms(chunk)
        backend.store(samples, rows, chunk)
    if terms is not None:
        bald[:], expected_entropy[:] = terms

    indices = [int(top_k(bald, 1, rng)[0])]
    gains = [float(bald[indices[0]])]
    # Separate streams, so that lazy and full evaluation draw the same configurations.
    seeds = rng.randint(np.iinfo(np.int32).max, size=2)
    configurations = _JointConfigurations(
        n_samples, n_joint_samples, np.random.RandomState(seeds[0])
    )
    group_rng = np.random.RandomState(seeds[1])
    bounds = bald.copy()
    # Elementwise numpy runs on one thread, so the blocks are spread over as many threads as
    # BLAS would use, each with a single-threaded BLAS (also far better on a busy machine).
    n_threads = max(1, min(os.cpu_count() or 1, _blas_threads())) if device is None else 1
    executor = ThreadPoolExecutor(n_threads) if n_threads > 1 else None
    side = ThreadPoolExecutor(1) if executor is not None else None

    def exact_gains(posterior, config_weights, candidates, n_configs, scatter=None):
        """Gains (bounds, for grouped configurations) of ``candidates``: indices or a slice."""
        if isinstance(candidates, slice):
            first, size = candidates.start, candidates.stop - candidates.start
        else:
            first, size = 0, candidates.size
        pair_elements = n_configs * n_classes
        max_block = max(1, _BLOCK_ELEMENTS // pair_elements)
        # One part per thread at least, unless the parts would be too small to pay for it.
        smallest = _BLOCK_ELEMENTS // 2 // pair_elements
        max_block = min(max_block, max(-(-size // n_threads), smallest))
        starts = range(0, size, max_block)
        if isinstance(candidates, slice):
            parts = [slice(first + i, first + min(i + max_block, size)) for i in starts]
        else:
            parts = [candidates[i : i + max_block] for i in starts]

        def entropy(part):
            return backend.conditional_entropy(
                posterior, config_weights, samples, part, scatter
            )

        if executor is None or len(parts) == 1:
            entropies = [entropy(part) for part in parts]
        else:
            entropies = list(executor.map(entropy, parts))
        return np.concatenate(entropies) - expected_entropy[candidates]

    try:
        with threadpool_limits(1 if executor is not None else None, user_api="blas"):
            for _ in range(1, batch_size):
                configurations.add(backend.column(samples, indices[-1]))
                bounds[indices[-1]] = -np.inf
                pick, gain = _greedy_step(
                    configurations, backend, bounds, exact_gains, n_pool - len(indices),
                    n_classes, lazy, rng, group_rng, side,
                )
                indices.append(pick)
                gains.append(gain)
                if stop_below is not None and gain < stop_below:
                    break
    finally:
        if executor is not None:
            side.shutdown()  # first: its task submits to the executor
            executor.shutdown()
    return np.asarray(indices, dtype=np.intp), np.asarray(gains)


def _blas_threads():
    from threadpoolctl import threadpool_info

    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(counts, default=1)


def _greedy_step(
    configurations, backend, bounds, exact_gains, n_left, n_classes, lazy, rng, group_rng,
    side=None,
):
    """One greedy pick: the candidate of largest gain given the configurations so far.

    ``bounds`` holds an upper bound of every candidate's gain (BALD, or its last gain: gains
    only shrink as the batch grows) and is tightened in place. Candidates are visited in order
    of bound; each block is first bounded again cheaply through grouped configurations, and
    only those whose bound still beats the best gain found so far are scored exactly. The walk
    stops once the next bound cannot beat it, so the pick is the one full greedy would make.

    Sampled gains are estimates that need not shrink from one step to the next (a new label
    is drawn for every configuration), so there the last step's values bound nothing: every
    candidate is bounded afresh by the coarsest grouping, on ``side`` (an executor) when
    given, while this thread builds the finer groupings.
    """
    posterior64, weights64 = configurations.weights()
    n_configs = posterior64.shape[0]
    posterior, config_weights = backend.weights(posterior64, weights64)
    # Grouping levels: a coarse one bounds every visited candidate at a few percent of the
    # exact cost, finer ones re-bound the survivors, and the rest are scored exactly.
    level_maker = _bound_levels(posterior64, weights64, group_rng) if lazy else iter(())
    levels = []
    if lazy and not configurations.exact:
        # Every row is bounded afresh by the coarsest grouping (all configurations pooled
        # into one group equals BALD here and prunes nothing): in row order, slices not
        # gathers (views on numpy), one part per thread; the picks are dropped after.
        left = np.flatnonzero(bounds > -np.inf)
        coarsest = next(level_maker, None)
        if coarsest is None:
            coarsest = ((weights64 @ posterior64)[None, :], np.ones(1), None)
        group_posterior, group_weights, scatter = backend.weights(*coarsest)
        bound_rows = functools.partial(
            exact_gains, group_posterior, group_weights, slice(0, bounds.size),
            int(group_weights.shape[0]), scatter,
        )
        if side is None:
            fresh = bound_rows()
        else:
            # the finer levels' k-means (serial) runs meanwhile
            pending = side.submit(bound_rows)
            try:
                levels = [backend.weights(*level) for level in level_maker]
            finally:  # joined even if k-means fails, before the BLAS limits are lifted
                fresh = pending.result()
        bounds[left] = fresh[left]
    levels += [backend.weights(*level) for level in level_maker]
    # Best bound first; ties in random order.
    order = np.lexsort((rng.random_sample(bounds.size), -bounds))[:n_left]
    best, best_gain, start = -1, -np.inf, 0
    block = _FIRST_BLOCK if lazy else n_left
    while start < n_left:
        if bounds[order[start]] <= best_gain:
            break  # no later candidate can gain more than its bound
        candidates = order[start : start + block]
        start += block
        block = min(2 * block, 8192)
        for group_posterior, group_weights, scatter in levels:
            if candidates.size == 0:
                break
            tighter = exact_gains(
                group_posterior, group_weights, candidates, int(group_weights.shape[0]),
                scatter,
            )
            np.minimum(bounds[candidates], tighter, out=tighter)
            bounds[candidates] = tighter
            candidates = candidates[tighter > best_gain]
        candidates = candidates[np.argsort(-bounds[candidates], kind="stable")]
        while candidates.size:
            # Highest bounds first, so the best gain rises quickly and prunes the rest.
            head, candidates = candidates[:_FIRST_BLOCK], candidates[_FIRST_BLOCK:]
            gain = exact_gains(posterior, config_weights, head, n_configs)
            bounds[head] = gain
            top = int(np.argmax(gain))
            if gain[top] > best_gain:
                best, best_gain = int(head[top]), float(gain[top])
            if lazy:
                candidates = candidates[bounds[candidates] > best_gain]
    return best, best_gain


_DTYPES = ("float32", "float64")


class BatchBALD(QueryStrategy):
    """BatchBALD: the batch whose labels carry the most joint information about the model.

    Greedily grows the batch ``A`` by the row ``x_n`` of largest gain
    ``I(y_n; w | y_A) = H(y_n | y_A) - E_w H(y_n | w)``, which maximises the BatchBALD
    acquisition ``I(y_1..y_b; w) = H(y_1..y_b) - sum_i E_w H(y_i | w)`` (Kirsch, van
    Amersfoort and Gal 2019) up to the usual greedy ``1 - 1/e`` guarantee. Unlike top-k
    :class:`BALD` it does not fill a batch with near-duplicates.

    The joint over the labels ``y_A`` already in the batch is handled exactly while its
    configurations of non-zero probability (at most ``C ** |A|``) number at most
    ``n_joint_samples``; beyond that, ``n_joint_samples`` configurations are drawn from it and
    importance-weighted. Log-likelihoods of configurations are kept in float64.

    Speed: every candidate is scored by one matrix product (configurations x samples) times
    (samples x candidates·classes) and one entropy pass, in blocks sized for the cache and
    spread over threads; the pool is never looped over in Python. Candidates are visited
    lazily (gains only shrink as the batch grows, so BALD and the last gain bound the next
    one), and each visited block is bounded again through groups of similar configurations
    (entropy is concave) before the survivors are scored exactly: the batch is the one full
    greedy evaluation gives, at a fraction of the cost.

    Before the greedy, a prefilter keeps the rows of highest BALD (at least 1,024, and
    ``8 * batch_size``) with their posterior samples, and checks afterwards that no row left
    out could have been picked: a row's gain is never above its BALD score, so when every
    pick gains at least the highest BALD left out, the batch is full greedy's; otherwise the
    candidates grow (fourfold, and to every row whose BALD reaches the lowest gain) and the
    greedy runs again. A pool in memory whose samples take at most 512 MiB in ``dtype``
    (100,000 rows at K=100 and C=10 in float32) keeps them all while BALD is scored, so a
    widened request never calls ``predict_proba_samples`` on the pool twice; a larger pool
    holds only the candidates' samples at once and is scored again when they widen. A dask
    pool (protocol rule 7) is scored block by block on the workers, which send back only
    their top rows: the batch equals the in-memory one.

    Parameters
    ----------
    n_joint_samples : int, default=10000
        Joint label configurations: the exact enumeration's limit and the number sampled
        beyond it.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the configurations-by-candidates products and their logarithms (the
        relative error of float32 gains is about 1e-6). Use "float64" for bit-level studies.
    device : None, str or torch.device, default=None
        ``None`` computes with numpy on the CPU, or with torch on the samples' device when
        ``predict_proba_samples`` returns torch tensors. ``"cuda"``, ``"cpu"`` or a
        ``torch.device`` computes with torch there (torch is imported only then).
    random_state : int, RandomState instance or None, default=None
        Seeds the sampled configurations and breaks ties.

    Notes
    -----
    :meth:`select` returns the greedy gains ``I(y_n; w | y_A)`` as scores; the first is the
    BALD score of the first pick and they sum to the batch's estimated BatchBALD value.
    A batch of one is the top BALD row.

    References
    ----------
    A. Kirsch, J. van Amersfoort and Y. Gal, "BatchBALD: Efficient and Diverse Batch
    Acquisition for Deep Bayesian Active Learning", NeurIPS 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal import CommitteeLearner
    >>> from skal.strategies import BatchBALD
    >>> X, y = load_iris(return_X_y=True)
    >>> committee = CommitteeLearner(n_estimators=4, random_state=0).fit(X, y)
    >>> indices, gains = BatchBALD(random_state=0).select(committee, X, batch_size=3)
    >>> indices.shape, bool(gains[0] >= gains[1] >= gains[2] >= 0)
    ((3,), True)
    """

    _supports_dask_pool = True  # the prefilter scores the pool block by block

    def __init__(self, n_joint_samples=10000, dtype="float32", device=None, random_state=None):
        self.n_joint_samples = n_joint_samples
        self.dtype = dtype
        self.device = device
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        n_joint = self.n_joint_samples
        if isinstance(n_joint, bool) or not isinstance(n_joint, numbers.Integral) or n_joint < 1:
            raise ValueError(f"n_joint_samples must be a positive integer, got {n_joint!r}.")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}.")
        require(learner, "predict_proba_samples", type(self).__name__)
        salt = tie_break_salt(random_state)
        greedy_seed = int(random_state.randint(np.iinfo(np.int32).max))
        n_pool = num_rows(X_pool)
        n_keep, floor = min(n_pool, max(_MIN_CANDIDATES, 8 * batch_size)), np.inf
        if not is_dask_pool(X_pool) and n_pool <= _WHOLE_POOL_FACTOR * n_keep:
            # a small pool in memory: the lazy greedy bounds every row by its BALD anyway,
            # and a failed certificate would cost a second greedy
            n_keep = n_pool
        tops = None
        while True:
            found = None if tops is None else tops.candidates(n_keep, floor)
            if found is None:  # the blocks' kept rows do not hold them: score the pool again
                tops = _BaldTops(self, learner, X_pool, 4 * n_keep, floor, salt)
                found = tops.candidates(n_keep, floor)
            positions, samples, terms, device, outside = found
            whole = positions.size == n_pool
            indices, gains = greedy_batchbald(
                samples, batch_size, n_joint_samples=int(n_joint), random_state=greedy_seed,
                dtype=self.dtype, device=self.device if self.device is not None else device,
                stop_below=None if whole else outside, terms=terms,
            )
            # The certificate of the prefilter (see _BaldTops): no row left out can beat any
            # pick, so these are full greedy's picks. Else (the greedy stopped at the first
            # pick that fails it) keep every row whose BALD reaches that gain too, and more
            # rows, and run again.
            if whole or gains.min() >= outside:
                return positions[indices], gains
            floor = float(gains.min())
            n_keep = min(n_pool, 4 * n_keep)
            if 4 * tops.count_reaching(floor) > n_pool:
                # a quarter of the pool or more would be candidates: take it all (the lazy
                # greedy bounds every row by its BALD anyway), not one more pick per round
                n_keep = n_pool


# Candidates BatchBALD keeps at first: a few thousand rows' samples are cheap to hold and
# make the certificate hold in most queries; a failed certificate widens them fourfold.
_MIN_CANDIDATES = 1024
# A pool in memory of at most this many times the first candidates skips the prefilter.
_WHOLE_POOL_FACTOR = 16
# A pool in memory whose samples take at most this many bytes (in the greedy's dtype) keeps
# them all while BALD is scored, so a widened request never scores the pool again: with
# MC dropout that second pass cost more than the whole greedy. A widening to the whole pool
# needs its samples anyway, so holding them costs memory only when the certificate holds.
_HOLD_BYTES = 512 * 2**20


class _BaldTops:
    """The rows of highest BALD, their posterior samples, and a bound on the rest.

    The prefilter of :class:`BatchBALD`. Greedy BatchBALD's gain of a row ``j`` at any step,
    ``I(y_j; w | y_A) = H(y_j | y_A) - H(y_j | w)`` (the labels are independent given ``w``,
    so ``H(y_j | w, y_A) = H(y_j | w)``), is at most ``H(y_j) - H(y_j | w) = BALD(j)``,
    because conditioning on ``y_A`` cannot raise an entropy. (Summed over a batch this is
    the looser bound ``I(y_1..y_b; w) <= sum_i BALD(i)``.) Let ``beta`` be the highest BALD
    of the rows left out. Run the greedy on the candidates; if every pick's gain
    ``g_t >= beta``, the greedy on the whole pool makes the same picks: by induction, given
    the same first ``t - 1`` picks, every row left out gains at most ``beta <= g_t`` at step
    ``t``, so none beats the candidates' best (an exact tie, only possible at ``g_t = beta``,
    goes to the candidate: full greedy breaks exact ties arbitrarily). The caller widens
    the candidates until that holds, at worst to the whole pool. With sampled
    configurations (beyond ``n_joint_samples``) the gains are estimates; the bound is the
    one the lazy greedy already relies on.

    The candidates are the top ``max(n_keep, m)`` rows by BALD, ``m`` the number of rows
    whose BALD is at least ``floor``. Every block (the whole pool in memory) keeps its own
    top ``max(reserve, m_block) + 1`` rows with their samples, scoring in bounded-memory
    chunks; on a dask pool those stay on the workers (persisted), only their BALD values and
    positions come back, and then the samples of the candidates. The reserve (four times the
    first ``n_keep``) serves a widened request without scoring the pool again whenever every
    block that dropped rows still has a kept row outside the candidates (its dropped rows
    rank below all its kept ones). Ties are ordered by position keys
    (``top_k_by_position``), so a dask pool and the same rows in memory keep the same rows.

    :meth:`candidates` returns ``None`` when the kept rows do not hold the request, else:

    positions : ndarray of shape (n_candidates,)
        Pool positions of the candidates, ascending.
    samples : ndarray of shape (n_samples, n_candidates, n_classes)
        Their posterior samples, in the strategy's dtype: read only, as they may be the
        block's own array (or the learner's output) when every row is a candidate.
    terms : tuple of two ndarrays of shape (n_candidates,)
        Their BALD and expected entropy (``bald_terms``), computed while scoring.
    device : str or None
        The device of the samples when ``predict_proba_samples`` returned torch tensors.
    outside : float
        The highest BALD of the rows left out (``-inf`` when none is).
    """

    def __init__(self, strategy, learner, X_pool, reserve, floor, salt):
        self.salt = salt
        make_state = functools.partial(
            _block_top_bald, n_keep=reserve, floor=floor, salt=salt,
            hold_bytes=0 if is_dask_pool(X_pool) else _HOLD_BYTES)
        self.blocks = PoolBlocks(X_pool, make_state, (strategy, learner))
        self.heads = self.blocks.ask(_head)
        self.bald = np.concatenate([head[0] for head in self.heads])
        self.positions = np.concatenate([head[1] for head in self.heads])
        self.block = np.repeat(np.arange(len(self.heads)), [h[1].size for h in self.heads])
        # blocks that dropped rows: those rank below all of the block's kept rows
        self.dropped = np.array([head[1].size < head[3] for head in self.heads])

    def count_reaching(self, floor):
        """How many rows have a BALD of at least ``floor``, counting only kept rows."""
        return int((self.bald >= floor).sum())

    def candidates(self, n_keep, floor):
        n_take = max(n_keep, int((self.bald >= floor).sum()))
        order = top_k_by_position(self.bald, min(n_take + 1, self.bald.size), self.salt,
                                  self.positions)
        kept = np.zeros(self.bald.size, dtype=bool)
        kept[order[:n_take]] = True
        outside_kept = np.bincount(self.block[~kept], minlength=len(self.heads))
        if np.any(self.dropped & (outside_kept == 0)):
            return None
        outside = self.bald[order[n_take]] if order.size > n_take else -np.inf
        parts = self.blocks.ask(_rows_of, self.positions[kept])
        device = next((head[2] for head in self.heads if head[2] is not None), None)
        if len(parts) == 1:
            samples, entropies = parts[0]
        else:
            samples = np.concatenate([part[0] for part in parts], axis=1)
            entropies = np.concatenate([part[1] for part in parts])
        terms = (self.bald[kept], entropies)
        return self.positions[kept], samples, terms, device, outside


def _block_top_bald(scorer, X_block, start, n_keep, floor, salt, hold_bytes=0):
    """BALD, pool positions (ascending), samples and device of a block's top rows: the top
    ``max(n_keep, m) + 1``, ``m`` its rows of BALD at least ``floor``, or every row when
    their samples take at most ``hold_bytes``. The samples are kept in the strategy's
    ``dtype`` (the greedy computes in it anyway); BALD is computed in float64 first."""
    strategy, learner = scorer
    hold_dtype = np.dtype(strategy.dtype)
    name = type(strategy).__name__
    predict = require(learner, "predict_proba_samples", name)
    n_classes = len(getattr(learner, "classes_", ())) or 16
    row_bytes = 8 * (_n_columns(X_block) + 4 * 32 * n_classes)
    slices = chunk_slices(_num_samples(X_block), row_bytes, getattr(learner, "chunk_size", None))
    # Chunks are gathered in lists and joined only to cut the running top (or at the end):
    # joining at every chunk copied the kept samples once per chunk.
    balds, entropies, positions, samples, device, held = [], [], [], [], None, 0
    for rows in slices:
        chunk = _check_samples(predict(take_rows(X_block, rows)), name, rows.stop - rows.start)
        if _is_torch(chunk):
            device = str(chunk.device)
        chunk = _to_numpy(chunk)
        if rows.start == 0:  # rows whose samples fit in hold_bytes are all kept
            row_size = hold_dtype.itemsize * chunk.shape[0] * chunk.shape[2]
            n_keep = max(n_keep, hold_bytes // max(1, row_size))
        bald, expected_entropy = bald_terms(chunk)
        balds.append(bald)
        entropies.append(expected_entropy)
        positions.append(np.arange(rows.start, rows.stop) + start)
        samples.append(chunk.astype(hold_dtype, copy=False))
        held += chunk.shape[1]
        # The running top: every row at or above the floor stays, and so does the highest
        # row below it (the bound on the rows left out), so memory is O(kept + chunk).
        if held > 2 * (n_keep + 1):
            balds, entropies, positions, samples = _top_rows(
                balds, entropies, positions, samples, n_keep, floor, salt)
            held = balds[0].size
    balds, entropies, positions, samples = _top_rows(
        balds, entropies, positions, samples, n_keep, floor, salt)
    return balds[0], positions[0], samples[0], device, _num_samples(X_block), entropies[0]


def _top_rows(balds, entropies, positions, samples, n_keep, floor, salt):
    """The gathered chunks joined and cut to the top ``max(n_keep, m) + 1`` rows by BALD
    (``m`` rows at or above ``floor``), in position order; one-element lists."""
    bald, entropy = np.concatenate(balds), np.concatenate(entropies)
    position = np.concatenate(positions)
    sample = samples[0] if len(samples) == 1 else np.concatenate(samples, axis=1)
    k = max(n_keep, int((bald >= floor).sum())) + 1
    if bald.size > k:
        keep = np.sort(top_k_by_position(bald, k, salt, position))
        bald, entropy = bald[keep], entropy[keep]
        position, sample = position[keep], sample[:, keep, :]
    return [bald], [entropy], [position], [sample]


def _head(top, start):
    return top[0], top[1], top[3], top[4]


def _rows_of(top, start, positions):
    # the samples and expected entropies of the block's rows among ``positions``
    mask = np.isin(top[1], positions, assume_unique=True)
    if mask.all():  # not a copy of every sample (the whole pool, when held)
        return top[2], top[5]
    return top[2][:, mask, :], top[5][mask]

