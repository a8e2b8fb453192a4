"""The learner <-> query-strategy protocol, in one place.

1. A strategy is called as ``strategy(learner, X_pool, batch_size)`` and returns exactly
   ``batch_size`` indices of ``X_pool`` to label next: unique, most informative first. Plain
   functions qualify; a wrong count is a ``ValueError``.
2. Strategy objects are scikit-learn style (``get_params``, ``clone``); ``__call__`` validates
   once and hands a clean problem to the private ``_select``.
3. Single-sample strategies implement ``_score_chunk(learner, X_chunk)``; the base class scores
   the pool in bounded-memory chunks (optionally in parallel) and takes the top ``batch_size``.
4. A strategy asks the learner only for ``predict_proba``, ``decision_function``,
   ``predict_proba_samples``, ``predict``, ``transform``, ``X_labeled_``/``y_labeled_``,
   ``label_costs``, ``predict_loss`` (a loss-prediction module's output) or, of
   regressors, ``predict(X, return_std=True)`` (a predictive std) and ``predict_samples``;
   a missing one is a ``TypeError`` raised at query time that names it, an unfitted model
   (a cold start) a ``NotFittedError``, NaN or infinite predictions a ``ValueError``.
   Embeddings come from ``embed``.
5. Randomness (tie-breaks, random draws) comes from the strategy's ``random_state``. An int
   seeds each query afresh from ``(random_state, query number)``: successive queries draw
   independently, and a clone (the learner clones its strategies at every ``fit``) replays
   the same sequence, so a refit with the same seed repeats the run exactly.
6. A strategy states the kinds of target it handles (``_target_kinds``: ``"classification"``,
   ``"multilabel"``, ``"regression"``); a learner of another kind (its ``target_kind_``, or
   for a plain estimator whether it is a regressor) is a ``TypeError`` at query time.
7. A pool may be a dask array or DataFrame (``is_dask_pool``) for the strategies whose tag
   ``_supports_dask_pool`` says so: each block is scored where it lives and sends back only
   its own top ``batch_size`` rows (``map_pool_blocks``), so the client holds O(blocks x
   batch) values. Ties are broken by keys of the global row position and the query's random
   stream (``top_k_by_position``), and random draws by keys of it (``position_gumbel``),
   so a dask pool and the same rows in memory give the same indices for the same seed.
   Greedy batch strategies keep per-block state on the workers and make one small
   reduction per pick (``PoolBlocks``). A strategy whose dask path picks otherwise (its
   clustering differs) says so with ``_dask_pool_same_picks = False``. Any other strategy
   given a dask pool is a ``TypeError``.
"""

import contextlib
import contextvars
import functools
import numbers
import warnings
from abc import ABCMeta, abstractmethod

import numpy as np
from joblib import Parallel, delayed
from sklearn import get_config
from sklearn.base import BaseEstimator, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import _num_samples, check_is_fitted

# Upper bound on rows per scoring chunk: large enough for BLAS to run at full speed, small
# enough that chunk temporaries stay a few percent of a million-row pool.
_MAX_CHUNK_ROWS = 16384

# What a learner must offer for each kind of request, and how to get it when it is missing.
_CAPABILITY_HINTS = {
    "predict_proba": "a classifier with predict_proba (e.g. LogisticRegression, or an SVM "
    "wrapped in CalibratedClassifierCV); for an SVM alone use DecisionMargin",
    "decision_function": "a classifier with decision_function (e.g. LinearSVC, SVC)",
    "predict_proba_samples": "posterior samples: use CommitteeLearner, or an MC-dropout "
    "network from skal.nets",
    "transform": "an embedding: a learner whose estimator has transform (e.g. a skal.nets "
    "network) or features you pass yourself",
    "predict_samples": "posterior samples of a regressor: use CommitteeRegressor, or a "
    "skal.nets.NetRegressor with dropout",
    "predict": "a fitted estimator with predict",
    "predict_loss": "a network with a loss-prediction module: skal.nets.LearningLossClassifier",
    "label_costs": "a skal learner (label costs from its label_cost parameter); or give the "
    "strategy a label_cost of its own",
}

TARGET_KINDS = ("classification", "multilabel", "regression")


def target_kind(learner):
    """What the learner predicts: ``"classification"``, ``"multilabel"`` or ``"regression"``.

    A skal learner says so in ``target_kind_`` (set by ``fit``); any other estimator is taken
    as a regressor or a single-label classifier by its scikit-learn type. ``None`` when there
    is no learner (a cold start called with ``None``) or it is not an estimator.
    """
    kind = getattr(learner, "target_kind_", None)
    if kind is not None or learner is None:
        return kind
    try:
        return "regression" if is_regressor(learner) else "classification"
    except (AttributeError, TypeError):
        return None  # not a scikit-learn estimator: a stand-in the caller vouches for


def check_target_kind(strategy, learner):
    """Raise a ``TypeError`` when ``strategy`` does not handle the learner's kind of target."""
    kind = target_kind(learner)
    handled = getattr(strategy, "_target_kinds", TARGET_KINDS)
    if kind is not None and kind not in handled:
        examples = {
            "classification": "MarginSampling or EntropySampling",
            "multilabel": "MultilabelMargin, MMC or AdaptiveMultilabel",
            "regression": "VarianceSampling, GreedySampling or EMCM",
        }
        raise TypeError(
            f"{type(strategy).__name__} handles {' and '.join(sorted(handled))} targets, but "
            f"the learner's are {kind} targets. Use a {kind} strategy such as "
            f"{examples[kind]}, or one that works for any target (RandomSampling, CoreSet, "
            "TypiClust)."
        )


def require(learner, method, strategy_name):
    """Return ``learner.method`` or raise a ``TypeError`` that says what is missing.

    Parameters
    ----------
    learner : object
        The learner (or any fitted estimator) handed to the strategy.
    method : str
        The name of the method the strategy needs, e.g. ``"predict_proba"``.
    strategy_name : str
        The strategy's name, used in the message.

    Returns
    -------
    bound_method : callable
    """
    func = getattr(learner, method, None)
    if func is None or not callable(func):
        hint = _CAPABILITY_HINTS.get(method, f"a {method} method")
        raise TypeError(
            f"{strategy_name} needs {method}() from the learner, but "
            f"{_describe(learner)} has none. It needs {hint}."
        )
    if not _is_fitted(learner):
        raise NotFittedError(
            f"{strategy_name} needs {method}() of a fitted model, but {_describe(learner)} "
            "is not fitted yet. A strategy used as initial_strategy runs before any model "
            "exists (cold start): use one that works unfitted (RandomSampling, TypiClust, "
            "ProbCover, CoreSet), or fit the learner on some labels first."
        )

    @functools.wraps(func)
    def checked(*args, **kwargs):
        # One check for every strategy: NaN or infinite predictions cannot be ranked, and
        # silently scoring them 0 (or crashing later) would hide a broken model.
        output = func(*args, **kwargs)
        n_bad = _count_non_finite_rows(output)
        if n_bad:
            raise ValueError(
                f"{method}() of {_describe(learner)} returned NaN or infinite values for "
                f"{n_bad} pool row(s), so {strategy_name} cannot rank them. Check the model "
                "(did training diverge?) and the pool for NaN or extreme values."
            )
        return output

    return checked


def _is_fitted(learner):
    if not hasattr(learner, "fit"):
        return True  # not an estimator: a stand-in the caller vouches for
    try:
        check_is_fitted(learner)
    except NotFittedError:
        return False
    return True


def _count_non_finite_rows(values):
    """Rows (along the last-but-one axis) of ``values`` holding NaN or infinity."""
    if isinstance(values, list | tuple):
        # several outputs: per-label probabilities of a multi-label model, (mean, std)
        return max((_count_non_finite_rows(part) for part in values), default=0)
    if type(values).__module__.split(".")[0] == "torch":
        bad = ~values.isfinite()
        return int(bad.reshape(-1, bad.shape[-1]).any(dim=-1).sum()) if bad.ndim else int(bad)
    values = np.asarray(values)
    if values.dtype.kind not in "fc" or np.isfinite(values.sum()):
        return 0  # one pass with no temporary: a NaN or inf anywhere makes the sum non-finite
    bad = ~np.isfinite(values)
    if values.ndim == 0:
        return int(bad)
    if values.ndim == 1:
        return int(bad.sum())
    # (n_pool, n_classes) or (n_samples, n_pool, n_classes): a pool row is bad if any of its
    # values is.
    return int(bad.any(axis=-1).reshape(-1, values.shape[-2]).any(axis=0).sum())


def embed(learner, X):
    """The embedding of the rows ``X`` that geometric strategies measure distances in.

    In order of preference: the fitted learner's ``transform`` (e.g. a network's
    penultimate layer); when the learner's fitted estimator is a ``Pipeline``, the transform
    of all its steps but the last; else the raw features. An unfitted learner (a cold-start
    ``initial_strategy``), or ``None``, gives the raw features.

    Parameters
    ----------
    learner : estimator or None
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    embedding : ndarray of shape (n_samples, n_components)
        A dense float32 or float64 array (float32 stays float32); a torch tensor returned
        by ``transform`` is passed through, detached, so that strategies can run on its
        device.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_array

    fitted = learner is not None
    if fitted:
        try:
            check_is_fitted(learner)
        except (NotFittedError, TypeError):
            fitted = False
    Z = X
    if fitted:
        inner = getattr(learner, "estimator_", learner)
        if callable(getattr(learner, "transform", None)):
            Z = learner.transform(X)
        elif isinstance(inner, Pipeline) and len(inner.steps) > 1:
            Z = inner[:-1].transform(X)
    if type(Z).__module__.split(".")[0] == "torch":
        return Z.detach()
    if hasattr(Z, "toarray"):
        raise TypeError(
            "The embedding is a sparse matrix; distance-based strategies need dense "
            "embeddings. End the preprocessing with a dense reduction such as TruncatedSVD."
        )
    Z = check_array(
        Z, dtype=(np.float64, np.float32), ensure_min_samples=0, input_name="embedding"
    )
    # Squared distances of values this large overflow to inf and every comparison after
    # that is meaningless; say so here instead of failing deep inside a strategy.
    limit = np.sqrt(np.finfo(Z.dtype).max) / (4 * max(Z.shape[-1], 1))
    largest = float(np.abs(Z).max()) if Z.size else 0.0
    if largest > limit:
        raise ValueError(
            f"The embedding holds values up to {largest:.3g}; distances between rows "
            f"this large overflow {Z.dtype} (limit about {limit:.3g}). Scale the features, "
            "e.g. with StandardScaler in a Pipeline, before distance-based strategies."
        )
    return Z


def _describe(learner):
    inner = getattr(learner, "estimator_", None) or getattr(learner, "estimator", None)
    name = type(learner).__name__
    if inner is not None and not isinstance(inner, list | tuple):
        return f"{name} wrapping {type(inner).__name__}"
    return name


def check_batch_size(batch_size, n_pool):
    """Validate ``batch_size`` against a pool of ``n_pool`` rows; return the size to select.

    A batch larger than the pool takes the whole pool with a warning; an empty pool or a
    non-positive batch size is a ``ValueError``.
    """
    if n_pool == 0:
        raise ValueError("X_pool is empty: there is nothing left to query.")
    if isinstance(batch_size, bool | np.bool_) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    if batch_size > n_pool:
        warnings.warn(
            f"batch_size={batch_size} is larger than the pool ({n_pool} rows); "
            "the whole pool is selected.",
            UserWarning,
            stacklevel=3,
        )
        return int(n_pool)
    return int(batch_size)


def chunk_slices(n_rows, row_bytes, chunk_size=None):
    """Row slices that cover ``n_rows`` in chunks of bounded memory.

    Parameters
    ----------
    n_rows : int
    row_bytes : int
        Estimated bytes of temporaries per row while a chunk is processed.
    chunk_size : int, default=None
        At most this many rows per chunk. ``None`` uses scikit-learn's ``working_memory``
        (``sklearn.set_config``), capped at 16,384 rows.

    Returns
    -------
    slices : list of slice
    """
    if chunk_size is None:
        budget = get_config()["working_memory"] * 2**20
        chunk_size = max(1, min(_MAX_CHUNK_ROWS, int(budget // max(row_bytes, 1))))
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"chunk_size must be a positive integer or None, got {chunk_size!r}.")
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}.")
    # Equal-sized chunks: no small tail chunk paying a full call's fixed cost.
    n_chunks = max(1, -(-n_rows // chunk_size))
    bounds = np.linspace(0, n_rows, n_chunks + 1).round().astype(int).tolist()
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def take_rows(X, rows):
    """Rows of ``X`` (array, sparse matrix, DataFrame or list) selected by a slice or indices.

    The rows of a dask array or DataFrame stay lazy, where they are (a DataFrame's by
    ascending positions); :func:`gather_rows` brings them to the client.
    """
    if is_dask_pool(X) and not hasattr(X, "chunks"):
        return _frame_rows(X, rows)
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    if isinstance(X, list | tuple):
        if isinstance(rows, slice):
            return X[rows]
        return [X[i] for i in rows]
    return X[rows]


def gather_rows(X, rows):
    """Rows of ``X`` in memory, in the order of ``rows``: :func:`take_rows`, then for a dask
    pool the computed rows (only those travel to the client)."""
    if not is_dask_pool(X):
        return take_rows(X, rows)
    rows = np.arange(X.shape[0] if hasattr(X, "chunks") else len(X))[rows] if isinstance(
        rows, slice) else np.asarray(rows)
    order = np.argsort(rows, kind="stable")
    taken = take_rows(X, rows[order]).compute()  # ascending positions read block by block
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    return take_rows(taken, back)


def _frame_rows(X, rows):
    """Rows of a dask DataFrame at ascending positions, as a lazy dask DataFrame."""
    import dask
    import dask.dataframe as dd

    blocks, lengths, starts = dask_row_blocks(X)
    rows = np.arange(lengths.sum())[rows] if isinstance(rows, slice) else np.asarray(rows)
    bounds = np.searchsorted(rows, np.append(starts, lengths.sum()))
    parts = [dask.delayed(_iloc)(block, rows[lo:hi] - start)
             for block, start, lo, hi in zip(blocks, starts, bounds[:-1], bounds[1:],
                                             strict=True) if hi > lo]
    return dd.from_delayed(parts or [dask.delayed(_iloc)(blocks[0], rows)], meta=X._meta,
                           verify_meta=False)


def _iloc(frame, rows):
    return frame.iloc[rows]


def map_pool_chunks(func, X_pool, *, row_bytes, chunk_size=None, n_jobs=None):
    """Apply ``func`` to row chunks of ``X_pool`` and concatenate the results along axis 0.

    Chunks run in joblib threads when ``n_jobs`` asks for it (numpy and BLAS release the GIL);
    an enclosing ``joblib.parallel_config`` (dask, ray, ...) takes precedence.
    """
    n_rows = num_rows(X_pool)
    slices = chunk_slices(n_rows, row_bytes, chunk_size)
    if n_jobs in (None, 1) or len(slices) == 1:
        parts = [func(take_rows(X_pool, s)) for s in slices]
    else:
        parts = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(func)(take_rows(X_pool, s)) for s in slices
        )
    return np.concatenate(parts, axis=0)


def is_dask_pool(X):
    """Whether ``X`` is a lazy dask collection (a dask array or DataFrame), not data in memory."""
    return callable(getattr(X, "__dask_graph__", None)) and hasattr(X, "to_delayed")


# A dask DataFrame's length is a pass over its partitions (for Parquet, reading every file):
# one query counts them once, however many checks ask for the number of rows.
_PARTITION_LENGTHS = contextvars.ContextVar("skal_partition_lengths", default=None)


@contextlib.contextmanager
def counting_rows_once():
    """Within this block, the partition lengths of a dask DataFrame are computed only once."""
    token = _PARTITION_LENGTHS.set({}) if _PARTITION_LENGTHS.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _PARTITION_LENGTHS.reset(token)


def partition_lengths(X_pool):
    """Rows in each partition of a dask DataFrame (computed once per query)."""
    cache = _PARTITION_LENGTHS.get()
    key = X_pool._name
    if cache is not None and key in cache:
        return cache[key]
    lengths = np.asarray(X_pool.map_partitions(len).compute(), dtype=np.int64)
    if cache is not None:
        cache[key] = lengths
    return lengths


def num_rows(X):
    """``_num_samples``, with a dask DataFrame's rows counted once per query."""
    if is_dask_pool(X) and not hasattr(X, "chunks"):
        return int(partition_lengths(X).sum())
    return _num_samples(X)


def column_layout(X):
    """What scikit-learn's checks of feature names and counts should see for ``X``.

    A dask DataFrame's empty pandas ``_meta`` (scikit-learn reads names only from eager
    frames); ``X`` itself for anything else.
    """
    if is_dask_pool(X) and not hasattr(X, "chunks"):
        return X._meta
    return X


def check_pool_support(strategy, X_pool):
    """Raise a ``TypeError`` when ``X_pool`` is a dask pool that ``strategy`` cannot take.

    The one place that reads the ``_supports_dask_pool`` tag (protocol rule 7).
    """
    if is_dask_pool(X_pool) and not getattr(strategy, "_supports_dask_pool", False):
        name = type(strategy).__name__
        # a strategy whose tag depends on its parameters says which settings would do
        hint = getattr(strategy, "_dask_pool_hint", "")
        raise TypeError(
            f"{name} cannot select from a dask pool ({type(X_pool).__name__}): it compares "
            f"rows across the whole pool at once.{hint} Use a strategy that runs block by "
            "block on a cluster (MarginSampling, EntropySampling, LeastConfidence, "
            "DecisionMargin, BALD, BatchBALD, StochasticBALD, the committee and regression "
            "scores, MultilabelMargin, CoreSet, BADGE, TypiClust, RandomSampling), or give "
            f"{name} a pool that fits in memory (X_pool.compute())."
        )


def map_pool_blocks(func, X_pool, shared):
    """Run ``func(shared, block, start)`` on every row block of ``X_pool``; return the results.

    For a dask pool each block is processed where it lives and only ``func``'s (small) results
    come back to the client; ``shared`` (the strategy and the fitted learner) travels once:
    scattered to every worker when a ``distributed`` client is active, else once per graph.
    A pool in memory is one block. ``start`` is the block's first row position in the pool.

    Returns
    -------
    results : list
        One result per block, in row order.
    """
    if not is_dask_pool(X_pool):
        return [func(shared, X_pool, 0)]
    import dask

    blocks, lengths, starts = dask_row_blocks(X_pool)
    shared = ship_once(shared)
    tasks = [
        dask.delayed(func, pure=True)(shared, block, int(start))
        for block, start, length in zip(blocks, starts, lengths, strict=True)
        if length
    ]
    return list(dask.compute(*tasks))


class PoolBlocks:
    """Per-block states of a pool, kept where the blocks live; a pool in memory is one block.

    For strategies that make many small rounds over the pool (one per greedy pick):
    ``make_state(shared, block, start)`` builds each block's state once (persisted on the workers
    of a dask pool, ``shared`` sent once as by :func:`map_pool_blocks`); :meth:`ask` returns
    ``func(state, start, *args)`` of every block (small values, to the client) and
    :meth:`update` replaces every state by ``func(state, start, *args)`` where it lives.
    ``start`` is the block's first row position in the pool. The pool in memory runs the
    same functions on one state, so both give the same picks.
    """

    def __init__(self, X_pool, make_state, shared):
        self.on_dask = is_dask_pool(X_pool)
        if not self.on_dask:
            self.states, self.starts = [make_state(shared, X_pool, 0)], [0]
            return
        import dask

        blocks, lengths, starts = dask_row_blocks(X_pool)
        shared = ship_once(shared)
        kept = [i for i, length in enumerate(lengths) if length]
        self.starts = [int(starts[i]) for i in kept]
        self.states = list(dask.persist(*[dask.delayed(make_state)(shared, blocks[i],
                                                                    self.starts[n])
                                          for n, i in enumerate(kept)]))

    def _run(self, func, args, keep):
        if not self.on_dask:
            return [func(state, start, *args)
                    for state, start in zip(self.states, self.starts, strict=True)]
        import dask

        tasks = [dask.delayed(func)(state, start, *args)
                 for state, start in zip(self.states, self.starts, strict=True)]
        return list((dask.persist if keep else dask.compute)(*tasks))

    def ask(self, func, *args):
        """``[func(state, start, *args) for every block]``, computed where the blocks live."""
        return self._run(func, args, keep=False)

    def update(self, func, *args):
        """Replace every block's state by ``func(state, start, *args)``, where it lives."""
        self.states = self._run(func, args, keep=True)

    def fold(self, func, accumulated, *args):
        """``accumulated = func(accumulated, state, start, *args)`` through the blocks in row
        order, each step where its block lives (``accumulated`` travels: keep it small);
        return the last."""
        if not self.on_dask:
            for state, start in zip(self.states, self.starts, strict=True):
                accumulated = func(accumulated, state, start, *args)
            return accumulated
        import dask

        for state, start in zip(self.states, self.starts, strict=True):
            accumulated = dask.delayed(func)(accumulated, state, start, *args)
        return dask.compute(accumulated)[0]


def dask_row_blocks(X_pool):
    """The delayed row blocks of a dask pool (all its columns each), their lengths and first
    row positions."""
    if not hasattr(X_pool, "chunks"):  # a dask DataFrame: its partitions, scored as pandas
        lengths = partition_lengths(X_pool)
        return list(X_pool.to_delayed()), lengths, _starts(lengths)
    if any(len(chunks) > 1 for chunks in X_pool.chunks[1:]):
        X_pool = X_pool.rechunk({axis: -1 for axis in range(1, X_pool.ndim)})
    lengths = np.asarray(X_pool.chunks[0], dtype=np.float64)
    if np.isnan(lengths).any():
        raise ValueError(
            "X_pool has blocks of unknown length; call X_pool.compute_chunk_sizes() (or "
            "to_dask_array(lengths=True) on a DataFrame) before querying."
        )
    lengths = lengths.astype(np.int64)
    return list(X_pool.to_delayed().reshape(-1)), lengths, _starts(lengths)


def _starts(lengths):
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def ship_once(obj):
    """``obj`` as a dask task argument that is serialised once, not once per block."""
    import uuid

    import dask
    from dask.base import get_scheduler

    # The scheduler dask.compute will use: a distributed client's bound get, or a local one.
    client = getattr(get_scheduler(), "__self__", None)
    if callable(getattr(client, "scatter", None)):
        return client.scatter(obj, broadcast=True, hash=False)
    return dask.delayed(obj, name=f"skal-shared-{uuid.uuid4().hex}", traverse=False)


def tie_break_salt(random_state):
    """Draw the seed of a query's tie-break keys from its random stream (one draw)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int64).max,
                                                        dtype=np.int64))


def position_keys(salt, positions):
    """splitmix64 of ``(salt, row position)``: a pseudo-random uint64 key per row that any
    block can compute for its own rows, so that blocks and the whole pool order ties alike.
    ``salt`` is an int, or a uint64 array with one salt per position."""
    with np.errstate(over="ignore"):
        z = np.asarray(positions, dtype=np.int64).astype(np.uint64)
        z = z * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def position_gumbel(salt, positions):
    """Standard Gumbel draws, one per row, that are functions of ``(salt, position)`` only.

    The random draws of a strategy that perturbs scores (Gumbel-top-k sampling) are keyed
    by the row's position in the pool, like the tie-breaks of :func:`top_k_by_position`: a
    block of a dask pool draws for its own rows exactly what the whole pool in memory draws
    for them, so a seed gives the same picks however the pool is split.
    """
    # the top 53 bits of the key, centred in their interval: a uniform in (0, 1)
    top_bits = position_keys(salt, positions) >> np.uint64(11)
    uniform = (top_bits.astype(np.float64) + 0.5) * 2.0**-53
    return -np.log(-np.log(uniform))


def top_k_by_position(scores, k, salt, positions=None, offset=0):
    """Indices of the ``k`` highest ``scores``, highest first, ties ordered by position keys.

    The order is total: score descending, then ``position_keys(salt, position)``, then position.
    A top-k under a total order is decomposable: the top ``k`` of a pool is the top ``k`` of
    the union of its blocks' top ``k``, which is how a dask pool gets the in-memory answer.

    Parameters
    ----------
    scores : ndarray of shape (n,)
    k : int
        ``1 <= k <= n``.
    salt : int
        From :func:`tie_break_salt`: the query's random stream.
    positions : ndarray of shape (n,), default=None
        Global row positions of the scores; ``None`` means ``offset + arange(n)``.
    offset : int, default=0

    Returns
    -------
    indices : ndarray of shape (k,)
        Indices into ``scores``.
    """
    scores = _check_scores(scores)
    n = scores.shape[0]

    def position(rows):
        return positions[rows] if positions is not None else rows + offset

    if k < n:
        threshold = np.partition(scores, n - k)[n - k]
        above = np.flatnonzero(scores > threshold)
        ties = np.flatnonzero(scores == threshold)
        needed = k - above.size
        if ties.size > needed:
            keys = position_keys(salt, position(ties))
            # smallest keys win; equal keys (a 2**-64 chance) by position, as in the sort below
            ties = ties[np.lexsort((position(ties), keys))[:needed]]
        chosen = np.concatenate([above, ties])
    else:
        chosen = np.arange(n)
    where = position(chosen)
    order = np.lexsort((where, position_keys(salt, where), -scores[chosen]))
    return chosen[order].astype(np.intp, copy=False)


def _check_scores(scores):
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-dimensional, got shape {scores.shape}.")
    if np.isnan(scores).any():
        raise ValueError(
            "The strategy produced NaN scores; check the learner's predictions for NaN."
        )
    return scores


def top_k(scores, k, random_state=None):
    """Indices of the ``k`` highest ``scores``, highest first, ties broken at random.

    Runs in O(n) time with one extra copy of ``scores``: a partition finds the k-th value,
    everything above it is taken and the remaining places are drawn among the rows equal to it.
    """
    scores = _check_scores(scores)
    n = scores.shape[0]
    if isinstance(k, bool | np.bool_) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer, got {k!r}.")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and len(scores)={n}, got {k}.")
    rng = check_random_state(random_state)
    threshold = np.partition(scores, n - k)[n - k]
    above = np.flatnonzero(scores > threshold)
    ties = np.flatnonzero(scores == threshold)
    chosen = np.concatenate([above, rng.choice(ties, k - above.size, replace=False)])
    # Highest score first; among equal scores a random order.
    order = np.lexsort((rng.random(k), -scores[chosen]))
    return chosen[order].astype(np.intp, copy=False)


def query_random_state(seed, n_queries):
    """The generator of query number ``n_queries`` (0, 1, ...) of a strategy seeded ``seed``.

    Independent streams for every (seed, query number) pair, from numpy's ``SeedSequence``.

    Parameters
    ----------
    seed : int
    n_queries : int

    Returns
    -------
    random_state : numpy.random.RandomState
    """
    sequence = np.random.SeedSequence([int(seed), int(n_queries)])
    return np.random.RandomState(np.random.MT19937(sequence))


class QueryStrategy(BaseEstimator, metaclass=ABCMeta):
    """Base class of query strategies.

    Subclasses implement ``_select(learner, X_pool, batch_size, random_state)`` returning
    ``(indices, scores)``, where ``scores`` (or ``None``) are the values the indices were
    chosen by. ``__call__`` validates the request once and returns only the indices.
    """

    # scikit-learn's parameter constraints, checked by ``select`` before every query.
    _parameter_constraints = {"random_state": ["random_state"]}
    # Strategies that measure distances between rows need a dense embedding: on raw sparse
    # features they raise, and their tags say so (a learner's tags include its strategy's).
    _needs_dense_embedding = False
    # Rule 6 of the protocol: the kinds of target the strategy's scores make sense for.
    _target_kinds = frozenset({"classification"})
    # Rule 7: whether the strategy selects from a dask pool (scored block by block), and
    # whether it then picks what it picks from the same rows in memory.
    _supports_dask_pool = False
    _dask_pool_same_picks = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = not self._needs_dense_embedding
        return tags

    def __init__(self, random_state=None):
        # Strategies whose only parameter is the seed of their tie-breaks inherit this.
        self.random_state = random_state

    def __call__(self, learner, X_pool, batch_size=1):
        """Select the rows of ``X_pool`` to label next.

        Parameters
        ----------
        learner : estimator
            A fitted learner, e.g. an :class:`~skal.ActiveLearner`, or any fitted classifier
            offering what the strategy needs.
        X_pool : array-like of shape (n_pool, n_features)
            The unlabelled candidates; a dask array or DataFrame for the strategies whose
            ``_supports_dask_pool`` tag is true (protocol rule 7).
        batch_size : int, default=1
            How many rows to select.

        Returns
        -------
        indices : ndarray of shape (batch_size,)
            Unique row indices into ``X_pool``, most informative first.
        """
        return self.select(learner, X_pool, batch_size)[0]

    def select(self, learner, X_pool, batch_size=1):
        """Like calling the strategy, but also return the selection scores.

        Returns
        -------
        indices : ndarray of shape (batch_size,)
        scores : ndarray of shape (batch_size,) or None
            The values the indices were chosen by (for greedy batch strategies, the gain at
            the time of the pick); ``None`` when the strategy has no scores (random sampling).
        """
        self._validate_params()
        check_target_kind(self, learner)
        check_pool_support(self, X_pool)
        with counting_rows_once():
            batch_size = check_batch_size(batch_size, num_rows(X_pool))
            indices, scores = self._select(learner, X_pool, batch_size, self._random_state())
        return np.asarray(indices, dtype=np.intp), scores

    def _random_state(self):
        # Rule 5 of the protocol: an int seed gives every query its own stream, so that the
        # draws of successive cycles are independent (re-seeding with the bare int made each
        # cycle repeat the last one's draws), while a fresh clone replays the sequence.
        seed = getattr(self, "random_state", None)
        if isinstance(seed, numbers.Integral) and not isinstance(seed, bool | np.bool_):
            # A negative seed never gets here: select's _validate_params refuses it.
            n_queries = self.__dict__.get("_n_queries", 0)
            self._n_queries = n_queries + 1
            return query_random_state(seed, n_queries)
        return check_random_state(seed)

    @abstractmethod
    def _select(self, learner, X_pool, batch_size, random_state):
        """Return ``(indices, scores_or_None)`` for a validated request."""


class PoolScoringStrategy(QueryStrategy):
    """Base class of strategies that score each pool row on its own and take the top batch.

    Subclasses set ``_requires`` (the learner method they call) and implement
    ``_score_chunk(learner, X_chunk) -> ndarray of shape (n_chunk,)`` where higher means more
    informative.
    """

    _requires = "predict_proba"
    _supports_dask_pool = True

    def score(self, learner, X_pool):
        """Informativeness of every row of ``X_pool``; higher is more informative.

        Parameters
        ----------
        learner : estimator
            A fitted learner.
        X_pool : array-like of shape (n_pool, n_features)

        Returns
        -------
        scores : ndarray of shape (n_pool,)
        """
        if num_rows(X_pool) == 0:
            raise ValueError("X_pool is empty: there is nothing to score.")
        require(learner, self._requires, type(self).__name__)
        n_features = _n_columns(X_pool)
        n_outputs = len(getattr(learner, "classes_", ())) or 16
        # The chunk itself may be converted to float64 and the per-class outputs are float64.
        row_bytes = 8 * (n_features + 4 * n_outputs * self._outputs_per_row())
        return map_pool_chunks(
            lambda X_chunk: self._score_chunk(learner, X_chunk),
            X_pool,
            row_bytes=row_bytes,
            chunk_size=getattr(learner, "chunk_size", None),
            n_jobs=getattr(learner, "n_jobs", None),
        )

    def _outputs_per_row(self):
        # Per-class values produced per row: one for point predictions, more for samples.
        return 1

    def _select(self, learner, X_pool, batch_size, random_state):
        if is_dask_pool(X_pool):  # fail here, before any block is sent to the cluster
            require(learner, self._requires, type(self).__name__)
        # Each block (the whole pool in memory) keeps its own top batch_size rows; the top of
        # their union is the pool's top, ties and all (see top_k_by_position).
        salt = tie_break_salt(random_state)
        best = functools.partial(_best_rows, k=batch_size, salt=salt,
                                 ranking=self._ranking(random_state))
        parts = map_pool_blocks(best, X_pool, (self, learner))
        values, positions = (np.concatenate([part[i] for part in parts]) for i in (0, 2))
        scores = values if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        order = top_k_by_position(values, batch_size, salt, positions)
        return positions[order], scores[order]

    def _ranking(self, random_state):
        """What the top rows are taken by: ``None`` for the scores themselves, or a picklable
        ``ranking(scores, positions) -> values`` (random draws keyed by the row positions, so
        that every block computes its own rows' values, see :func:`position_gumbel`)."""
        return None

    @abstractmethod
    def _score_chunk(self, learner, X_chunk):
        """Scores of the rows of one chunk."""


def _best_rows(scorer, X_block, start, k, salt, ranking=None):
    """Ranking values, scores (``None`` when they are the values) and pool positions of the
    top ``k`` rows of one block (``scorer``: strategy, learner)."""
    strategy, learner = scorer
    scores = strategy.score(learner, X_block)
    positions = np.arange(start, start + scores.shape[0], dtype=np.int64)
    values = scores if ranking is None else ranking(scores, positions)
    local = top_k_by_position(values, min(k, scores.shape[0]), salt, offset=start)
    return values[local], None if ranking is None else scores[local], positions[local]


def _n_columns(X):
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) > 1:
        return int(np.prod(shape[1:]))
    return 1


def check_row_indices(indices, n_rows, what, where):
    """Check that ``indices`` are unique integer positions in ``[0, n_rows)``.

    ``what`` names the indices and ``where`` the rows in the messages: a ``TypeError`` for
    anything but a 1-d integer array, a ``ValueError`` for positions outside or repeated.
    """
    if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
        raise TypeError(
            f"{what} must be a 1-d array of integer indices, got dtype {indices.dtype} and "
            f"shape {indices.shape}."
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n_rows):
        raise ValueError(f"{what} holds indices outside {where} [0, {n_rows}).")
    if np.unique(indices).size != indices.size:
        raise ValueError(f"{what} holds duplicate indices.")


def select_with_scores(strategy, learner, X_pool, batch_size):
    """Run any strategy (object or plain function): return ``(indices, scores_or_None)``.

    The indices are checked to be unique integers inside the pool, so a faulty user strategy
    fails here with a clear message rather than corrupting the labelled set.
    """
    with counting_rows_once():
        n_pool = num_rows(X_pool)
        if isinstance(strategy, QueryStrategy):
            indices, scores = strategy.select(learner, X_pool, batch_size)
        else:
            batch_size = check_batch_size(batch_size, n_pool)
            indices, scores = np.asarray(strategy(learner, X_pool, batch_size)), None
    name = getattr(strategy, "__name__", type(strategy).__name__)
    check_row_indices(indices, n_pool, f"Query strategy {name}'s answer", "the pool")
    expected = min(batch_size, n_pool)
    if indices.size != expected:
        # A short answer would stall a budgeted run and a long one overspend the budget.
        raise ValueError(
            f"Query strategy {name} returned {indices.size} indices when {expected} were "
            "asked; a strategy must return exactly batch_size unique indices (the whole pool "
            "when batch_size exceeds it)."
        )
    return indices.astype(np.intp, copy=False), scores


def check_query_strategy(strategy, default, name="query_strategy"):
    """Resolve ``None`` to ``default`` and check the strategy is callable."""
    if strategy is None:
        return default
    if not callable(strategy):
        raise TypeError(
            f"{name} must be a query strategy object or a function "
            f"(learner, X_pool, batch_size) -> indices, got {type(strategy).__name__}."
        )
    return strategy
