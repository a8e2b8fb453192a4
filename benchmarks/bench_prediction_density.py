"""Speed of EPIG, information density and expected error reduction on pools of 2,000 and
20,000 rows (#12, part 4). Medians in one process.

- EPIG: K=20 posterior samples, C=10 classes, 100 target rows (the default), from a stand-in
  learner that returns precomputed samples, so only the strategy is timed; BALD on the same
  samples for scale.
- Information density: 64 features, entropy of a 10-class logistic regression as the base;
  the exact cosine density in closed form, the exact mean of the (N x N) cosine matrix by
  chunked products (what the closed form replaces), the exact RBF density (chunked,
  O(N^2 d)) and its approximation against ``n_reference=2000`` random rows (the default).
- Expected error reduction: its subsampling defaults (10 candidates, 1,000 evaluation rows),
  a 10-class logistic regression on 100 labelled rows; the time of exact EER (N x C refits)
  is extrapolated from the measured time per refit.

Run::

    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 python benchmarks/bench_prediction_density.py [--quick]
"""

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics.pairwise import cosine_similarity  # noqa: E402

from skal import ActiveLearner  # noqa: E402
from skal.strategies import (  # noqa: E402
    BALD,
    EPIG,
    ExpectedErrorReduction,
    InformationDensity,
)
from skal.strategies._base import chunk_slices  # noqa: E402

N_CLASSES = 10


def median_time(func, repeats):
    """Median wall-clock and CPU seconds (all threads of the process) of ``func()``."""
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        func()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return tuple(float(v) for v in np.median(np.array(times), axis=0))


class SampleTable:
    """A fitted stand-in learner: row ``i`` of the pool is ``[i]``; its samples are stored."""

    def __init__(self, samples):
        self.samples = samples
        self.classes_ = np.arange(samples.shape[2])

    def predict_proba_samples(self, X):
        return self.samples[:, np.asarray(X)[:, 0].astype(np.intp), :]


def bench_epig(n_pool, repeats):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, n_pool, N_CLASSES)) * 2 + rng.normal(size=(20, n_pool, N_CLASSES))
    samples = np.exp(logits)
    samples /= samples.sum(axis=2, keepdims=True)
    learner = SampleTable(samples)
    X_pool = np.arange(n_pool, dtype=float)[:, None]
    epig = median_time(lambda: EPIG(random_state=0)(learner, X_pool, 10), repeats)
    bald = median_time(lambda: BALD(random_state=0)(learner, X_pool, 10), repeats)
    return {"EPIG (K=20, C=10, M=100)": epig, "BALD, same samples": bald}


def _cosine_by_pairs(Z):
    # The exact mean of the N x N cosine matrix, built in row chunks: the O(N^2 d) route.
    out = np.empty(Z.shape[0])
    for rows in chunk_slices(Z.shape[0], row_bytes=8 * Z.shape[0], chunk_size=512):
        out[rows] = ((1 + cosine_similarity(Z[rows], Z)) / 2).mean(axis=1)
    return out


def bench_density(n_pool, repeats, slow_repeats):
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=3, size=(N_CLASSES, 64))
    labels = rng.integers(N_CLASSES, size=n_pool + 200)
    X = centres[labels] + rng.normal(size=(n_pool + 200, 64))
    model = LogisticRegression(max_iter=300).fit(X[:200], labels[:200])
    X_pool = X[200:]
    cosine = InformationDensity(random_state=0)
    rbf_exact = InformationDensity(similarity="rbf", n_reference=None, random_state=0)
    rbf_approx = InformationDensity(similarity="rbf", random_state=0)
    exact = rbf_exact.density(model, X_pool)
    approximate = rbf_approx.density(model, X_pool, random_state=0)
    assert np.allclose(cosine.density(model, X_pool), _cosine_by_pairs(X_pool), atol=1e-10)
    return {
        "cosine, closed form (exact)": median_time(lambda: cosine(model, X_pool, 10), repeats),
        "cosine, N x N in chunks (exact)": median_time(lambda: _cosine_by_pairs(X_pool),
                                                      slow_repeats),
        "RBF, chunked (exact)": median_time(lambda: rbf_exact(model, X_pool, 10), slow_repeats),
        "RBF, n_reference=2000": median_time(lambda: rbf_approx(model, X_pool, 10), repeats),
        "RBF approximation: max abs error of the density": float(np.abs(approximate - exact).max()),
    }


def bench_eer(n_pool, repeats):
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=1.5, size=(N_CLASSES, 64))
    labels = rng.integers(N_CLASSES, size=n_pool + 100)
    X = centres[labels] + rng.normal(size=(n_pool + 100, 64))
    y = np.r_[labels[:100], np.full(n_pool, -1)]
    learner = ActiveLearner(LogisticRegression(max_iter=300), random_state=0).fit(X, y)
    X_pool = X[100:]
    strategy = ExpectedErrorReduction(random_state=0)
    query = median_time(lambda: strategy(learner, X_pool, 10), repeats)
    # Refits per query: 10 candidates x the classes they have probability for (all 10 here).
    n_refits = 10 * N_CLASSES
    return {
        "EER defaults (10 candidates, 1,000 evaluation rows)": query,
        "per refit": tuple(t / n_refits for t in query),
        "exact EER, extrapolated (N x C refits)": tuple(
            t / n_refits * n_pool * N_CLASSES for t in query),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows only, fewer repeats")
    args = parser.parse_args()
    sizes = [2000] if args.quick else [2000, 20000]
    repeats, slow_repeats = (3, 1) if args.quick else (5, 3)
    print(f"load average at start: {os.getloadavg()[0]:.1f}, cores: {os.cpu_count()}")
    for n_pool in sizes:
        print(f"\nN = {n_pool:,}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning of the refits
            results = {**bench_epig(n_pool, repeats),
                       **bench_density(n_pool, repeats, slow_repeats),
                       **bench_eer(n_pool, slow_repeats)}
        print(f"  {'':52s} {'wall s':>10s} {'CPU s':>10s}")
        for name, value in results.items():
            if isinstance(value, tuple):
                print(f"  {name:52s} {value[0]:10.4g} {value[1]:10.4g}")
            else:
                print(f"  {name:52s} {value:10.3g}")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
