"""Regression queries: committee variance and greedy sampling (GSx) against hand-written numpy.

Run with ``python benchmarks/bench_regression.py`` (``--quick`` for a smaller pool). On a
200,000 x 64 float64 pool, with 100 labelled rows and a batch of 10, in this one process:

1. Committee variance: ``CommitteeRegressor(Ridge(), n_estimators=5).query`` with
   ``VarianceSampling`` against a hand-written loop doing the same work: each member's
   ``X @ coef + intercept``, the variance over members, ``argpartition`` for the top 10.
2. GSx: ``ActiveRegressor(Ridge(), GreedySampling(space="x")).query`` against a hand-written
   greedy k-center: squared distances to the labelled rows in chunked GEMMs, then per pick one
   distance pass over the pool.
3. iGS (``space="xy"``), for the record, against the same hand-written pass with the output
   distances multiplied in.

Medians of ``--repeats`` interleaved runs; both sides pick the same rows (checked).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402

from skal import ActiveRegressor, CommitteeRegressor, GreedySampling, VarianceSampling  # noqa: E402


def hand_committee_variance(members, X_pool, batch_size):
    predictions = np.stack([X_pool @ m.coef_ + m.intercept_ for m in members])
    variance = predictions.var(axis=0)
    top = np.argpartition(-variance, batch_size)[:batch_size]
    return top[np.argsort(-variance[top], kind="stable")]


def _min_sq_dist_chunked(Z, C, chunk=16384):
    sq_Z = np.einsum("ij,ij->i", Z, Z)
    sq_C = np.einsum("ij,ij->i", C, C)
    out = np.empty(Z.shape[0])
    for start in range(0, Z.shape[0], chunk):
        rows = slice(start, start + chunk)
        d2 = sq_Z[rows, None] + sq_C[None, :] - 2.0 * (Z[rows] @ C.T)
        out[rows] = d2.min(axis=1)
    return np.maximum(out, 0.0), sq_Z


def hand_gsx(Z, L, batch_size):
    dmin, sq_Z = _min_sq_dist_chunked(Z, L)
    chosen = []
    for _ in range(batch_size):
        best = int(np.argmax(dmin))
        chosen.append(best)
        np.minimum(dmin, np.maximum(sq_Z + sq_Z[best] - 2.0 * (Z @ Z[best]), 0.0), out=dmin)
        dmin[best] = -np.inf
    return np.asarray(chosen)


def hand_igs(Z, L, F, Y, batch_size, chunk=16384):
    sq_Z, sq_L = np.einsum("ij,ij->i", Z, Z), np.einsum("ij,ij->i", L, L)
    dmin = np.empty(Z.shape[0])
    for start in range(0, Z.shape[0], chunk):
        rows = slice(start, start + chunk)
        dx = np.maximum(sq_Z[rows, None] + sq_L[None] - 2.0 * (Z[rows] @ L.T), 0.0)
        dy = (F[rows, None] - Y[None, :]) ** 2
        dmin[rows] = (dx * dy).min(axis=1)
    chosen = []
    for _ in range(batch_size):
        best = int(np.argmax(dmin))
        chosen.append(best)
        new = np.maximum(sq_Z + sq_Z[best] - 2.0 * (Z @ Z[best]), 0.0) * (F - F[best]) ** 2
        np.minimum(dmin, new, out=dmin)
        dmin[best] = -np.inf
    return np.asarray(chosen)


def interleaved_medians(funcs, repeats):
    times = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20,000-row pool")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    n_pool = 20_000 if args.quick else 200_000
    n_features, n_labelled, batch_size = 64, 100, 10
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n_labelled + n_pool, n_features))
    y = X @ rng.normal(size=n_features) + rng.normal(size=len(X))
    X_lab, y_lab, X_pool = X[:n_labelled], y[:n_labelled], X[n_labelled:]
    y_fit = np.full(len(X), np.nan)
    y_fit[:n_labelled] = y_lab
    print(f"pool {n_pool:,} x {n_features}, {n_labelled} labelled rows, batch {batch_size}, "
          f"medians of {args.repeats} interleaved runs")

    committee = CommitteeRegressor(Ridge(), VarianceSampling(), n_estimators=5,
                                   random_state=0).fit(X, y_fit)
    gsx = ActiveRegressor(Ridge(), GreedySampling(space="x")).fit(X, y_fit)
    igs = ActiveRegressor(Ridge(), GreedySampling(space="xy")).fit(X, y_fit)
    F = igs.predict(X_pool)

    checks = {
        "committee variance": (committee.query(X_pool, batch_size),
                               hand_committee_variance(committee.estimators_, X_pool,
                                                       batch_size)),
        "GSx": (gsx.query(X_pool, batch_size), hand_gsx(X_pool, X_lab, batch_size)),
        "iGS": (igs.query(X_pool, batch_size), hand_igs(X_pool, X_lab, F, y_lab, batch_size)),
    }
    for name, (ours, theirs) in checks.items():
        assert ours.tolist() == theirs.tolist(), (name, ours, theirs)

    medians = interleaved_medians({
        "committee variance skal": lambda: committee.query(X_pool, batch_size),
        "committee variance numpy": lambda: hand_committee_variance(
            committee.estimators_, X_pool, batch_size),
        "GSx skal": lambda: gsx.query(X_pool, batch_size),
        "GSx numpy": lambda: hand_gsx(X_pool, X_lab, batch_size),
        "iGS skal": lambda: igs.query(X_pool, batch_size),
        "iGS numpy": lambda: hand_igs(X_pool, X_lab, igs.predict(X_pool), y_lab, batch_size),
    }, args.repeats)
    print(f"{'query':<22}{'skal (s)':>10}{'numpy (s)':>11}{'ratio':>8}")
    for name in ("committee variance", "GSx", "iGS"):
        ours, theirs = medians[f"{name} skal"], medians[f"{name} numpy"]
        print(f"{name:<22}{ours:>10.3f}{theirs:>11.3f}{ours / theirs:>8.2f}")


if __name__ == "__main__":
    main()
