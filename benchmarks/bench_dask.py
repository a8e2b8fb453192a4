"""Queries on a pool that never exists on the client: a dask pool on a LocalCluster.

Run with ``nice -n 10 python benchmarks/bench_dask.py`` (``--rows 50000000`` for the issue's
50 million rows; ``--quick`` for a smoke run; ``--strategy`` for another strategy than
margin). Measured in this one process:

1. A lazily generated pool (``dask.array.random.default_rng(0).standard_normal`` in float32,
   ``--rows`` x 32, blocks of ``--block-rows``; numpy's legacy ``RandomState`` has no float32
   draws) on a LocalCluster of 2 worker processes with 1 thread each: ``learner.query(pool)``
   with the strategy, batch 100, LogisticRegression (a committee of 8 for BatchBALD) fitted on
   2,000 labelled rows. The client's peak RSS above its level before the query (sampled every
   10 ms; the scheduler runs in this process too, so it is counted), the workers' peak RSS
   (``ru_maxrss`` from ``client.run``), the wall time and the workers' CPU time. Generating
   the blocks is part of this query, as reading them from Parquet or Zarr would be.
2. The same query on a pool of ``--persist-rows`` rows persisted on the workers first: the
   cost of the strategy alone.
3. The in-memory path on a ``--memory-rows`` numpy pool on one core (``n_jobs=1``), and
   whether its picks equal those of the same rows as a dask pool (``--compare-rows``).
4. BatchBALD only: the prefilter's candidates (how many rows' samples the client held) and
   the greedy over every row's samples (no prefilter) on the in-memory pool, for its time
   and its picks.

Throughput is rows per second per core, by wall time (the dask runs' rows / (wall x 2
workers)) and by CPU time (rows / the processes' CPU seconds, which a busy shared machine
disturbs less), against the in-memory path's.
"""

import argparse
import os
import pickle
import resource
import threading
import time

os.environ["OMP_NUM_THREADS"] = "1"  # one BLAS thread per worker and on the client
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from distributed import Client, LocalCluster, wait  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import skal.strategies._bayesian as bayesian  # noqa: E402
from skal import ActiveLearner, CommitteeLearner  # noqa: E402
from skal.strategies import (  # noqa: E402
    BADGE,
    BatchBALD,
    CoreSet,
    MarginSampling,
    TypiClust,
    greedy_batchbald,
)

STRATEGIES = {"margin": MarginSampling, "coreset": CoreSet, "batchbald": BatchBALD,
              "typiclust": TypiClust, "badge": BADGE}

N_FEATURES = 32
BATCH = 100
MiB = 2**20


class PeakRSS:
    """The peak resident memory of this process above its level at entry, sampled."""

    def __enter__(self):
        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def delta_mib(self):
        return (self.peak - self.start) / MiB


def worker_peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def worker_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_query(model, pool, client):
    """Wall seconds, the workers' CPU seconds and the answer of ``model.query(pool)``."""
    cpu = sum(client.run(worker_cpu_seconds).values())
    start = time.perf_counter()
    answer = model.query(pool, return_scores=True)
    wall = time.perf_counter() - start
    return wall, sum(client.run(worker_cpu_seconds).values()) - cpu, answer


def labelled_set():
    rng = np.random.RandomState(1)
    X = rng.standard_normal((2000, N_FEATURES)).astype(np.float32)
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1] - 0.3 * X[:, 2], [-0.5, 0.5])  # 3 classes
    return X, y


def learner(strategy="margin"):
    X, y = labelled_set()
    query_strategy = STRATEGIES[strategy](random_state=0)
    if strategy == "batchbald":
        return CommitteeLearner(LogisticRegression(max_iter=500), n_estimators=8,
                                query_strategy=query_strategy, batch_size=BATCH, n_jobs=1,
                                random_state=0).fit(X, y)
    return ActiveLearner(LogisticRegression(max_iter=500), query_strategy, batch_size=BATCH,
                         n_jobs=1).fit(X, y)


class CandidateCount:
    """Counts the rows whose samples BatchBALD's prefilter handed to the greedy, and the
    passes over the pool it made."""

    def __enter__(self):
        self.kept, self.passes = [], 0
        self._candidates = candidates = bayesian._BaldTops.candidates
        self._init = init = bayesian._BaldTops.__init__

        def spy_candidates(tops, *args):
            found = candidates(tops, *args)
            if found is not None:
                self.kept.append(int(found[0].size))
            return found

        def spy_init(tops, *args):
            self.passes += 1
            init(tops, *args)

        bayesian._BaldTops.candidates, bayesian._BaldTops.__init__ = spy_candidates, spy_init
        return self

    def __exit__(self, *exc):
        bayesian._BaldTops.candidates, bayesian._BaldTops.__init__ = self._candidates, self._init


def lazy_pool(n_rows, block_rows):
    return da.random.default_rng(0).standard_normal(
        (n_rows, N_FEATURES), chunks=(block_rows, N_FEATURES), dtype=np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default="margin")
    parser.add_argument("--batch", type=int, default=BATCH, help="batch size (default 100)")
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--block-rows", type=int, default=1_000_000)
    parser.add_argument("--persist-rows", type=int, default=10_000_000)
    parser.add_argument("--memory-rows", type=int, default=2_000_000)
    parser.add_argument("--compare-rows", type=int, default=200_000,
                        help="rows of the in-memory vs dask picks check (0: skip)")
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows, a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.block_rows, args.persist_rows = 1_000_000, 100_000, 1_000_000
        args.memory_rows, args.compare_rows = 200_000, 50_000
    n_workers = 2

    model = learner(args.strategy).set_params(batch_size=args.batch)
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        pool = lazy_pool(args.rows, args.block_rows)
        model.query(lazy_pool(10 * BATCH, 5 * BATCH))  # workers import skal and scikit-learn
        with PeakRSS() as client_rss, CandidateCount() as lazy_kept:
            lazy_s, lazy_cpu, (picked, scores) = timed_query(model, pool, client)
        lazy_peak = list(client.run(worker_peak_rss).values())
        persisted = lazy_pool(min(args.rows, args.persist_rows), args.block_rows).persist()
        wait(persisted)
        persisted_s, persisted_cpu, _ = timed_query(model, persisted, client)
        n_blocks = pool.numblocks[0]
        del persisted
        same = None
        if args.compare_rows:
            compare = lazy_pool(args.compare_rows, max(args.compare_rows // 20, BATCH))
            twin = pickle.loads(pickle.dumps(model))  # the same query number: the same seed
            on_dask = model.query(compare)
            same = np.array_equal(on_dask, twin.query(compare.compute()))

    X_memory = np.random.RandomState(0).standard_normal(
        (args.memory_rows, N_FEATURES)).astype(np.float32)
    model.query(X_memory[: 10 * BATCH])  # warm up
    cpu, start = time.process_time(), time.perf_counter()
    with CandidateCount() as memory_kept:
        memory_picks = model.query(X_memory)
    memory_s, memory_cpu = time.perf_counter() - start, time.process_time() - cpu

    n_persisted = min(args.rows, args.persist_rows)
    memory_wall_rate, memory_cpu_rate = args.memory_rows / memory_s, args.memory_rows / memory_cpu
    print(f"{args.strategy}: dask pool of {args.rows:,} x {N_FEATURES} float32 in {n_blocks} "
          f"blocks of {args.block_rows:,} rows, {n_workers} workers x 1 thread, "
          f"batch {args.batch}")
    print(f"  client peak RSS above its start: {client_rss.delta_mib:.0f} MiB (limit 300 MiB)")
    print("  workers' peak RSS: " + ", ".join(f"{rss / MiB:.0f} MiB" for rss in lazy_peak))
    print(f"in-memory path: {args.memory_rows:,} rows, 1 core: {memory_s:.2f} s wall, "
          f"{memory_cpu:.2f} s CPU: {memory_wall_rate:,.0f} rows/s by wall, "
          f"{memory_cpu_rate:,.0f} by CPU")
    for what, rows, wall, cpu_s in [("lazy pool (generated in the query)", args.rows, lazy_s,
                                     lazy_cpu),
                                    (f"persisted pool of {n_persisted:,} rows", n_persisted,
                                     persisted_s, persisted_cpu)]:
        wall_rate, cpu_rate = rows / (wall * n_workers), rows / cpu_s
        print(f"{what}: {wall:.1f} s wall, {cpu_s:.1f} s worker CPU: {wall_rate:,.0f} "
              f"rows/s per core by wall ({wall_rate / memory_wall_rate:.2f}x in memory), "
              f"{cpu_rate:,.0f} by CPU ({cpu_rate / memory_cpu_rate:.2f}x)")
    if same is not None:
        print(f"picks on a {args.compare_rows:,}-row dask pool equal the in-memory ones: {same}")
    print(f"top scores: {np.round(scores[:3], 5).tolist()} at rows {picked[:3].tolist()}")
    if args.strategy == "batchbald":
        print(f"prefilter candidates (rows whose samples the client held), per round: "
              f"lazy pool {lazy_kept.kept} in {lazy_kept.passes} pass(es) over the pool, "
              f"in memory {memory_kept.kept} in {memory_kept.passes}")
        start = time.perf_counter()
        samples = model.predict_proba_samples(X_memory)
        full = greedy_batchbald(samples, args.batch, random_state=0)[0]
        print(f"greedy over all {args.memory_rows:,} rows' samples (no prefilter): "
              f"{time.perf_counter() - start:.1f} s with scoring, {samples.nbytes / MiB:.0f} "
              f"MiB of samples; same picks as the prefiltered query: "
              f"{np.array_equal(full, memory_picks)}")


if __name__ == "__main__":
    main()
