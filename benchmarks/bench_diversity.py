"""Speed and memory of skal's diversity and cold-start strategies, beside scikit-activeml's.

Same random float32 features for every implementation, 2 BLAS threads, medians in one process.
Run with a Python that has skal (``pip install -e .``) and, for the anchors, scikit-activeml
(``python -m venv /tmp/anchors-div && /tmp/anchors-div/bin/pip install torch==2.13.0
scikit-activeml && /tmp/anchors-div/bin/pip install -e .``)::

    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 python benchmarks/bench_diversity.py [--quick]
"""

import argparse
import os
import time
import tracemalloc
import warnings
from types import SimpleNamespace

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import numpy as np  # noqa: E402

from skal.strategies import CoreSet, ProbCover, TypiClust  # noqa: E402

try:
    from skactiveml.pool import CoreSet as SkCoreSet  # noqa: E402
    from skactiveml.pool import ProbCover as SkProbCover  # noqa: E402
    from skactiveml.pool import TypiClust as SkTypiClust  # noqa: E402
except ImportError:  # pragma: no cover - anchors are optional
    SkCoreSet = SkProbCover = SkTypiClust = None


def data(n, d, n_labeled, seed=0):
    X = np.random.default_rng(seed).random((n + n_labeled, d), dtype=np.float32)
    return X[n_labeled:], X[:n_labeled]


def median_time(func, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def peak_memory(func):
    tracemalloc.start()
    tracemalloc.reset_peak()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def skal_runner(strategy, pool, labeled, batch):
    learner = SimpleNamespace(X_labeled_=labeled) if labeled is not None and len(labeled) else None
    return lambda: strategy(learner, pool, batch)


def skactiveml_runner(cls, pool, labeled, batch, **params):
    """scikit-activeml's interface: all rows in X, unlabelled marked NaN in y."""
    if labeled is None:
        labeled = pool[:0]
    X = np.vstack([labeled, pool])
    y = np.full(len(X), np.nan)
    y[: len(labeled)] = 0
    return lambda: cls(random_state=0, **params).query(X, y, batch_size=batch)


def row(name, impl, seconds, times, peak=None):
    mem = f"{peak / 2**20:9.1f} MiB" if peak is not None else " " * 13
    spread = "/".join(f"{t:.3f}" for t in sorted(times))
    print(f"{name:<44s} {impl:<12s} {seconds:9.3f} s  {mem}  [{spread}]", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller anchors")
    parser.add_argument("--no-anchors", action="store_true")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    anchors = SkCoreSet is not None and not args.no_anchors
    warnings.filterwarnings("ignore")
    print(f"anchors: {'scikit-activeml' if anchors else 'not installed'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    # CoreSet, large embedding.
    for n, d, n_labeled, batch in [(50_000, 512, 1_000, 200), (10_000, 128, 100, 100)]:
        pool, labeled = data(n, d, n_labeled)
        name = f"CoreSet N={n} d={d} L={n_labeled} b={batch}"
        run = skal_runner(CoreSet(), pool, labeled, batch)
        run()  # warm-up (BLAS threads, thread-pool controller)
        seconds, times = median_time(run, repeats)
        row(name, "skal", seconds, times)
        if anchors:
            sk = skactiveml_runner(SkCoreSet, pool, labeled, batch)
            seconds_sk, times_sk = median_time(sk, 1 if n > 20_000 else repeats)
            row(name, "skactiveml", seconds_sk, times_sk)
            ours = run()
            theirs = sk() - len(labeled)
            print(f"{'':44s} same indices as scikit-activeml: {np.mean(ours == theirs):.0%}")

    # CoreSet memory at a million rows: everything beyond the features themselves.
    pool, labeled = data(1_000_000, 128, 100)
    peak = peak_memory(skal_runner(CoreSet(), pool, labeled, 100))
    print(f"{'CoreSet N=1,000,000 d=128 L=100 b=100':<44s} {'skal':<12s} peak extra "
          f"{peak / 2**20:.1f} MiB ({peak / len(pool):.1f} bytes/row; features "
          f"{pool.nbytes / 2**20:.0f} MiB)", flush=True)
    del pool, labeled

    # Cold start at N=50,000 (no labelled rows), and N=10,000 where the dense anchor fits.
    for n, d, batch in [(50_000, 64, 100), (10_000, 64, 100)]:
        pool, _ = data(n, d, 0)
        for label, ours, theirs in [
            ("TypiClust", TypiClust(random_state=0), SkTypiClust),
            ("ProbCover", ProbCover(random_state=0), SkProbCover),
        ]:
            name = f"{label} N={n} d={d} b={batch}"
            run = skal_runner(ours, pool, None, batch)
            seconds, times = median_time(run, max(1, repeats // 2))
            row(name, "skal", seconds, times, peak_memory(run))
            if not anchors:
                continue
            dense = 8 * n * n
            if label == "ProbCover" and dense > 0.4 * _available_memory():
                print(f"{name:<44s} {'skactiveml':<12s} skipped: its dense N x N distance "
                      f"matrix needs {dense / 2**30:.0f} GiB")
                continue
            extra = {"n_classes": batch} if label == "ProbCover" else {}
            sk = skactiveml_runner(theirs, pool, None, batch, **extra)
            seconds_sk, times_sk = median_time(sk, 1)
            row(name, "skactiveml", seconds_sk, times_sk, peak_memory(sk))


def _available_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


if __name__ == "__main__":
    main()
