"""A margin query on a pool that never exists on the client: a dask pool on a LocalCluster.

Run with ``nice -n 10 python benchmarks/bench_dask.py`` (``--rows 50000000`` for the issue's
50 million rows; ``--quick`` for a smoke run). Measured in this one process:

1. A lazily generated pool (``dask.array.random.default_rng(0).standard_normal`` in float32,
   ``--rows`` x 32, blocks of ``--block-rows``; numpy's legacy ``RandomState`` has no float32
   draws) on a LocalCluster of 2 worker processes with 1 thread each: ``learner.query(pool)``
   with MarginSampling, batch 100, LogisticRegression fitted on 2,000 labelled rows. The
   client's peak RSS above its level before the query (sampled every 10 ms; the scheduler
   runs in this process too, so it is counted), the workers' peak RSS (``ru_maxrss`` from
   ``client.run``), the wall time and the workers' CPU time. Generating the blocks is part of
   this query, as reading them from Parquet or Zarr would be.
2. The same query on a pool of ``--persist-rows`` rows persisted on the workers first: the
   cost of scoring alone.
3. The in-memory chunked path on a 2,000,000-row numpy pool on one core (``n_jobs=1``).

Throughput is rows per second per core, by wall time (the dask runs' rows / (wall x 2
workers)) and by CPU time (rows / the processes' CPU seconds, which a busy shared machine
disturbs less), against the in-memory path's.
"""

import argparse
import os
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

from skal import ActiveLearner, MarginSampling  # noqa: E402

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


def learner():
    X, y = labelled_set()
    return ActiveLearner(LogisticRegression(max_iter=500), MarginSampling(random_state=0),
                         batch_size=BATCH, n_jobs=1).fit(X, y)


def lazy_pool(n_rows, block_rows):
    return da.random.default_rng(0).standard_normal(
        (n_rows, N_FEATURES), chunks=(block_rows, N_FEATURES), dtype=np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--block-rows", type=int, default=1_000_000)
    parser.add_argument("--persist-rows", type=int, default=10_000_000)
    parser.add_argument("--memory-rows", type=int, default=2_000_000)
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows, a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.block_rows, args.persist_rows = 1_000_000, 100_000, 1_000_000
        args.memory_rows = 200_000
    n_workers = 2

    model = learner()
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        pool = lazy_pool(args.rows, args.block_rows)
        model.query(lazy_pool(10 * BATCH, 5 * BATCH))  # workers import skal and scikit-learn
        with PeakRSS() as client_rss:
            lazy_s, lazy_cpu, (picked, scores) = timed_query(model, pool, client)
        lazy_peak = list(client.run(worker_peak_rss).values())
        persisted = lazy_pool(min(args.rows, args.persist_rows), args.block_rows).persist()
        wait(persisted)
        persisted_s, persisted_cpu, _ = timed_query(model, persisted, client)
        n_blocks = pool.numblocks[0]
        del persisted

    X_memory = np.random.RandomState(0).standard_normal(
        (args.memory_rows, N_FEATURES)).astype(np.float32)
    model.query(X_memory[: 10 * BATCH])  # warm up
    cpu, start = time.process_time(), time.perf_counter()
    model.query(X_memory)
    memory_s, memory_cpu = time.perf_counter() - start, time.process_time() - cpu

    n_persisted = min(args.rows, args.persist_rows)
    memory_wall_rate, memory_cpu_rate = args.memory_rows / memory_s, args.memory_rows / memory_cpu
    print(f"dask pool: {args.rows:,} x {N_FEATURES} float32 in {n_blocks} blocks of "
          f"{args.block_rows:,} rows, {n_workers} workers x 1 thread, batch {BATCH}")
    print(f"  client peak RSS above its start: {client_rss.delta_mib:.0f} MiB (limit 300 MiB);"
          f" values returned: {2 * n_blocks * BATCH:,}")
    print("  workers' peak RSS: " + ", ".join(f"{rss / MiB:.0f} MiB" for rss in lazy_peak))
    print(f"in-memory chunked path: {args.memory_rows:,} rows, 1 core: {memory_s:.2f} s wall, "
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
    print(f"top scores: {np.round(scores[:3], 5).tolist()} at rows {picked[:3].tolist()}")


if __name__ == "__main__":
    main()
