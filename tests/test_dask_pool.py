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
# Distinct rows, for the runs over many cycles: a worker whose BLAS runs on another number
# of threads than the client's may round a score's last bit otherwise, which can reorder
# rows whose scores agree to 1e-16 (the duplicates of X_POOL) in a later cycle.
X_DISTINCT = rng.normal(size=(600, 4))

SUPPORTED = [n for n in STRATEGY_NAMES if getattr(strategies, n)._supports_dask_pool]
UNSUPPORTED = [n for n in STRATEGY_NAMES if n not in SUPPORTED]
# the strategies whose picks on a dask pool are those of the same rows in memory
SAME_PICKS = [n for n in SUPPORTED if getattr(strategies, n)._dask_pool_same_picks]
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
    assert {"MarginSampling", "BALD", "VarianceSampling", "MultilabelMargin", "CoreSet",
            "BatchBALD", "StochasticBALD", "BADGE"} <= set(SAME_PICKS)
    assert set(SUPPORTED) - set(SAME_PICKS) == {"TypiClust"}
    assert {"ProbCover", "RankedBatch", "EPIG"} <= set(UNSUPPORTED)


@pytest.mark.parametrize(
    "name, where",
    [(name, "threads") for name in SAME_PICKS]
    + [pytest.param(name, "cluster", marks=() if name in ON_CLUSTER_FAST else pytest.mark.slow)
       for name in SAME_PICKS],
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
    n_values = sum(part.size for scores_and_rows in results for part in scores_and_rows
                   if part is not None)
    assert n_values == 40 * 100 * 2  # each block: its top 100 scores and their positions
    (data, broadcast), = scattered
    assert broadcast and data[1] is learner  # (strategy, learner), sent once to every worker


def test_unknown_block_lengths_are_a_clear_error():
    learner = _fitted("MarginSampling")
    pool = _pool()
    pool = pool[pool[:, 0] > -10]  # lengths unknown until computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        learner.query(pool)


# ------------------------------------------------------------------ posterior-sample batches
def _committee_and_pool(n_pool=3000, n_estimators=8):
    from skal import CommitteeLearner

    big = np.random.RandomState(1).normal(size=(n_pool, 4))
    learner = CommitteeLearner(n_estimators=n_estimators, random_state=0).fit(X, y)
    return learner, big


@pytest.mark.parametrize("where", WHERE)
def test_batchbald_prefilter_on_blocks_gives_full_greedy(on, where, monkeypatch):
    from skal.strategies import _bayesian

    learner, big = _committee_and_pool()
    full = greedy_batchbald_on(learner, big)
    kept, scored = [], []
    candidates, init = _bayesian._BaldTops.candidates, _bayesian._BaldTops.__init__

    def spy_candidates(self, *args):
        found = candidates(self, *args)
        kept.append(None if found is None else found[0].size)
        return found

    def spy_init(self, *args):
        scored.append(args[3])  # the reserve: each construction scores the pool once
        init(self, *args)

    monkeypatch.setattr(_bayesian, "_MIN_CANDIDATES", 64)  # widening is exercised too
    monkeypatch.setattr(_bayesian._BaldTops, "candidates", spy_candidates)
    monkeypatch.setattr(_bayesian._BaldTops, "__init__", spy_init)
    expected = strategies.BatchBALD(random_state=0).select(learner, big, 6)
    n_memory = len(scored)
    with on():
        got = strategies.BatchBALD(random_state=0).select(learner, da.from_array(big, 150), 6)
    np.testing.assert_array_equal(got[0], expected[0])
    # workers' BLAS may round the samples' last bit otherwise than the client's
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)
    np.testing.assert_array_equal(got[0], full)  # the exact greedy over the whole pool
    # it widened fourfold, from the rows the blocks had kept: one pass over the pool
    assert kept == [64, 256] * 2 and scored == [256] * 2 and n_memory == 1


def greedy_batchbald_on(learner, pool, batch_size=6):
    """Picks of the engine's greedy over every row of ``pool`` (no prefilter)."""
    samples = learner.predict_proba_samples(pool)
    return strategies.greedy_batchbald(samples, batch_size, random_state=0)[0]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("mode", ["power", "softmax"])
def test_stochastic_bald_draws_do_not_depend_on_the_blocks(on, where, mode):
    learner, big = _committee_and_pool(n_pool=900, n_estimators=3)
    for seed in range(2):
        expected = strategies.StochasticBALD(mode, random_state=seed)(learner, big, 8)
        for chunks in (100, 333):
            with on():
                got = strategies.StochasticBALD(mode, random_state=seed)(
                    learner, da.from_array(big, chunks), 8)
            np.testing.assert_array_equal(got, expected)


def test_stochastic_bald_softrank_refuses_a_dask_pool():
    learner, big = _committee_and_pool(n_pool=100, n_estimators=3)
    message = "StochasticBALD cannot select from a dask pool.*softrank.*mode='power' or 'softmax'"
    with pytest.raises(TypeError, match=message):
        strategies.StochasticBALD("softrank")(learner, da.from_array(big, 30), 3)


# ------------------------------------------------------------------ the loop on a dask pool
@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("frame", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_simulated_run_on_a_dask_pool_gathers_only_labelled_rows(on, where, frame,
                                                                monkeypatch):
    import skal.learners._base as base
    from skal import ActiveLearner

    y_oracle = (X_DISTINCT[:, 0] + X_DISTINCT[:, 1] > 0).astype(int)
    pool, lazy = X_DISTINCT, da.from_array(X_DISTINCT, chunks=50)
    if frame:
        pd = pytest.importorskip("pandas")
        dd = pytest.importorskip("dask.dataframe")
        pool = pd.DataFrame(X_DISTINCT, columns=list("abcd"))
        lazy = dd.from_pandas(pool, npartitions=12)

    def run(X_run):
        return ActiveLearner(query_strategy=strategies.MarginSampling(), budget=30,
                             batch_size=5, random_state=0).fit(X_run, y_oracle)

    expected = run(pool)
    gathered = []
    gather = base.gather_rows
    monkeypatch.setattr(base, "gather_rows",
                        lambda X_, rows: gathered.append(len(rows)) or gather(X_, rows))
    with on():
        learner = run(lazy.persist())  # blocks on the workers, as a pool read from storage
    np.testing.assert_array_equal(learner.labeled_indices_, expected.labeled_indices_)
    assert type(learner.X_labeled_) is type(expected.X_labeled_)
    assert max(gathered) <= 30  # the labelled rows, never the pool


@pytest.mark.parametrize("where", WHERE)
def test_labeling_session_on_a_dask_pool(on, where, tmp_path):
    from skal import ActiveLearner
    from skal.labeling import LabelingSession

    y_oracle = (X_DISTINCT[:, 0] > 0).astype(int)

    def labelled_in_order(pool, name):
        session = LabelingSession(
            ActiveLearner(query_strategy=strategies.MarginSampling(), batch_size=4), pool,
            tmp_path / name, classes=[0, 1], random_state=3)
        order = []
        for _ in range(3):
            for query in session.next_batch():
                session.label(query.sample_id, int(y_oracle[int(query.sample_id)]))
                order.append(query.sample_id)
        session.close()
        return order, session.fingerprint_

    expected, _ = labelled_in_order(X_DISTINCT, "memory.db")
    with on():
        got, fingerprint = labelled_in_order(da.from_array(X_DISTINCT, chunks=50), "dask.db")
        # the fingerprint does not depend on the partitioning, so a session resumes on
        # the pool read again in other blocks
        resumed, _ = labelled_in_order(da.from_array(X_DISTINCT, chunks=70), "dask.db")
    assert got == expected
    assert not set(resumed) & set(got)  # the resumed session went on where it stopped


# ------------------------------------------------------------------ TypiClust's k-means
@pytest.mark.parametrize("where", WHERE)
def test_typiclust_on_blocks_repeats_and_finds_the_in_memory_rows_of_clear_clusters(on,
                                                                                     where):
    from sklearn.datasets import make_blobs

    blobs, _ = make_blobs(1200, centers=5, cluster_std=0.4, random_state=0)
    expected = strategies.TypiClust(random_state=0).select(None, blobs, 5)
    with on():
        runs = [strategies.TypiClust(random_state=0).select(None, da.from_array(blobs, 100), 5)
                for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # same seed and blocks: same picks
    # another k-means (mini-batch, block by block), the same five clusters: the same most
    # typical row of each, in another order
    assert sorted(runs[0][0]) == sorted(expected[0])
    np.testing.assert_allclose(sorted(runs[0][1]), sorted(expected[1]))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["threads", "cluster"])
def test_typiclust_on_blocks_with_labelled_rows(on, where):
    learner = _fitted("TypiClust")
    with on():
        picks = [strategies.TypiClust(random_state=seed)(learner, _pool(), BATCH)
                 for seed in (0, 0)]
    np.testing.assert_array_equal(picks[0], picks[1])
    assert np.unique(picks[0]).size == BATCH and picks[0].max() < len(X_POOL)


def test_a_dataframe_pool_is_read_twice_per_query_not_once_per_check():
    # Counting a dask DataFrame's rows reads every partition (for Parquet, every file): one
    # query counts them once (then scores them once), however many checks need the count.
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    from sklearn.linear_model import LogisticRegression

    from skal import ActiveLearner

    reads = []

    def partition(i):
        reads.append(i)
        rows = np.random.RandomState(i).standard_normal((40, 3))
        return pd.DataFrame(rows, columns=["a", "b", "c"])

    meta = partition(0).iloc[:0]
    reads.clear()
    pool = dd.from_delayed([dask.delayed(partition)(i) for i in range(5)], meta=meta)
    X = pd.DataFrame(np.random.RandomState(9).standard_normal((30, 3)), columns=["a", "b", "c"])
    learner = ActiveLearner(LogisticRegression(), strategies.MarginSampling(), batch_size=4)
    learner.fit(X, (X["a"] > 0).astype(int))
    with dask.config.set(scheduler="synchronous"):
        picked = learner.query(pool)
    assert sorted(reads) == sorted(2 * list(range(5)))
    in_memory = learner.query(pd.concat([partition(i) for i in range(5)], ignore_index=True))
    assert picked.tolist() == in_memory.tolist()
