"""Pools on a dask cluster (issue #16): every strategy tagged ``_supports_dask_pool`` picks the
same rows from a dask pool split in many blocks as from the same rows in memory, for the same
seed, ties included; the others refuse a dask pool with a TypeError; the client gets back
only O(blocks x batch) values."""

import contextlib
import functools
import pickle

import numpy as np
import pytest
from _registry import STRATEGY_NAMES, learner_for, targets_for

import skal.strategies as strategies
from skal.strategies._base import top_k_by_position

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

BATCH = 7
rng = np.random.RandomState(0)
X = rng.normal(size=(80, 4))
y = np.where(np.arange(80) < 30, (X[:, 0] + X[:, 1] > 0).astype(int), -1)
# Each row three times, shuffled: equal scores in different blocks, so that the tie-breaks
# across blocks are tested too.
X_POOL = np.repeat(rng.normal(size=(200, 4)), 3, axis=0)[rng.permutation(600)]

SUPPORTED = [n for n in STRATEGY_NAMES if getattr(strategies, n)._supports_dask_pool]
UNSUPPORTED = [n for n in STRATEGY_NAMES if n not in SUPPORTED]
# Where a test runs: on the 2-process LocalCluster (start-up and worker imports cost seconds)
# or on local threads (the same code, but for how the learner travels). The fast set runs on
# threads; the slow set runs everything on the cluster too (README's default run stays short).
ON_CLUSTER_FAST = set()
WHERE = ["threads", pytest.param("cluster", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def cluster_client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture
def on(request):
    """A context factory: where the test's dask work runs (its ``where`` parameter)."""
    if request.node.callspec.params["where"] == "cluster":
        request.getfixturevalue("cluster_client")
        return contextlib.nullcontext
    return functools.partial(dask.config.set, scheduler="threads")


def _fitted(name, **params):
    learner = learner_for(name, query_strategy=getattr(strategies, name)(random_state=0),
                          batch_size=BATCH, **params)
    return learner.fit(X, targets_for(name, y, X))


def _pool(n_blocks=12):
    # blocks of rows, and of columns too (rechunked to whole rows before scoring)
    return da.from_array(X_POOL, chunks=(len(X_POOL) // n_blocks, 2))


def test_registry_has_both_kinds():
    assert {"MarginSampling", "BALD", "VarianceSampling", "MultilabelMargin",
            "CoreSet"} <= set(SUPPORTED)
    assert {"BADGE", "BatchBALD", "StochasticBALD", "TypiClust"} <= set(UNSUPPORTED)


@pytest.mark.parametrize(
    "name, where",
    [(name, "threads") for name in SUPPORTED]
    + [pytest.param(name, "cluster", marks=() if name in ON_CLUSTER_FAST else pytest.mark.slow)
       for name in SUPPORTED],
)
def test_dask_pool_gives_the_in_memory_indices(on, name, where):
    learner = _fitted(name)
    twin = pickle.loads(pickle.dumps(learner))  # the same strategy state: the same streams
    for _ in range(2):  # two queries: two random streams
        expected, expected_scores = twin.query(X_POOL, return_scores=True)
        with on():
            got, scores = learner.query(_pool(), return_scores=True)
        np.testing.assert_array_equal(got, expected)
        if expected_scores is not None:
            np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_strategies_without_dask_support_are_a_clear_type_error(name):
    learner = _fitted(name)
    with pytest.raises(TypeError, match=f"{name} cannot select from a dask pool"):
        learner.query(_pool())


@pytest.mark.parametrize("where", WHERE)
def test_ties_across_blocks_match_memory_for_every_seed(on, where):
    learner = _fitted("MarginSampling")
    X_tied = np.repeat(X_POOL[:1], 300, axis=0)  # one score for the whole pool
    pool = da.from_array(X_tied, chunks=25)
    for seed in range(3):
        in_memory = strategies.MarginSampling(random_state=seed)(learner, X_tied, BATCH)
        with on():
            on_dask = strategies.MarginSampling(random_state=seed)(learner, pool, BATCH)
        np.testing.assert_array_equal(on_dask, in_memory)
        assert in_memory.tolist() != list(range(BATCH))  # really shuffled, not first come


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("cold_start", ["farthest", "random"])
def test_coreset_cold_start_on_blocks_picks_the_in_memory_rows(on, where, cold_start):
    pool = X_POOL.astype(np.float32)[:300]
    for seed in range(2):
        expected = strategies.CoreSet(cold_start, random_state=seed).select(None, pool, BATCH)
        with on():
            got = strategies.CoreSet(cold_start, random_state=seed).select(
                None, da.from_array(pool, chunks=40), BATCH)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)


def test_keyed_top_k_is_decomposable_and_keeps_untied_order():
    scores = np.array([0.0, 3.0, 1.0, 2.0])
    assert top_k_by_position(scores, 3, salt=5).tolist() == [1, 3, 2]
    tied = np.repeat([1.0, 2.0, 0.5], 40)
    for salt in range(5):
        whole = top_k_by_position(tied, 50, salt)
        parts = [(s, s + top_k_by_position(tied[s:s + 17], min(50, tied[s:].size), salt,
                                           offset=s)) for s in range(0, tied.size, 17)]
        positions = np.concatenate([p for _, p in parts])
        merged = positions[top_k_by_position(tied[positions], 50, salt, positions)]
        np.testing.assert_array_equal(merged, whole)


@pytest.mark.parametrize("where", WHERE)
def test_dask_dataframe_pool(on, where):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    columns = ["a", "b", "c", "d"]
    learner = learner_for("EntropySampling", query_strategy=strategies.EntropySampling(
        random_state=1), batch_size=BATCH)
    learner.fit(pd.DataFrame(X, columns=columns), y)
    frame = pd.DataFrame(X_POOL, columns=columns)
    twin = pickle.loads(pickle.dumps(learner))
    with on():
        got = learner.query(dd.from_pandas(frame, npartitions=9))
    np.testing.assert_array_equal(got, twin.query(frame))


@pytest.mark.slow
def test_client_gets_only_the_blocks_top_rows_and_the_learner_is_sent_once(cluster_client,
                                                                          monkeypatch):
    learner = _fitted("MarginSampling")
    computed, scattered = [], []
    compute, scatter = dask.compute, distributed.Client.scatter

    def spy_compute(*args, **kwargs):
        results = compute(*args, **kwargs)
        computed.append(results)
        return results

    def spy_scatter(self, data, *args, **kwargs):
        scattered.append((data, kwargs.get("broadcast")))
        return scatter(self, data, *args, **kwargs)

    monkeypatch.setattr(dask, "compute", spy_compute)
    monkeypatch.setattr(distributed.Client, "scatter", spy_scatter)
    # 40 blocks of 10,000 rows made on the workers: the pool never exists on the client
    pool = da.random.RandomState(0).standard_normal((400_000, 4), chunks=(10_000, 4))
    learner.query(pool, batch_size=100)
    (results,) = computed
    assert len(results) == 40
    n_values = sum(part.size for scores_and_rows in results for part in scores_and_rows)
    assert n_values == 40 * 100 * 2  # each block: its top 100 scores and their positions
    (data, broadcast), = scattered
    assert broadcast and data[1] is learner  # (strategy, learner), sent once to every worker


def test_unknown_block_lengths_are_a_clear_error():
    learner = _fitted("MarginSampling")
    pool = _pool()
    pool = pool[pool[:, 0] > -10]  # lengths unknown until computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        learner.query(pool)
