"""Time skal's BatchBALD against scikit-activeml's and batchbald_redux's, same inputs, one process.

Every implementation gets the same random log-probabilities (standard normal logits through a
log-softmax), the same batch size and the same number of joint samples. Anchors are timed when
importable; install them in a separate environment, never into skal's:

    python -m venv /tmp/anchors
    /tmp/anchors/bin/pip install torch==2.13.0 scikit-activeml batchbald_redux
    /tmp/anchors/bin/pip install -e . --no-deps   # plus skal's dependencies
    /tmp/anchors/bin/python benchmarks/bench_batchbald.py

Options: ``--repeats R`` (skal runs per configuration, median reported), ``--anchor-repeats``,
``--threads T`` (default 2), ``--no-anchors``, ``--quick`` (the first configuration only),
``--skip-full`` (no timing of the greedy without lazy evaluation),
``--large`` (issue 11's cases: N=16,000 K=20 C=26 batch 20 and N=50,000 K=20 C=10 batch 10;
skal's time is also printed in units of one float32 2000x2000 matrix product),
``--mnist DIR`` (real posteriors instead of random ones: ``MNISTConvNet`` trained on
``--mnist-labels`` random images of the 10,000 MNIST test images, K=20 MC-dropout samples
over the others; batches of 10 and 20, in units as ``--large``; ``--mnist-shifts S`` adds the
pool images moved by one pixel in S-1 directions, for a pool near 50,000 with S=5).
Figures are recorded in docs/benchmarks/batchbald.rst.
"""

import argparse
import os
import platform
import time
from functools import partial

# Thread counts must be fixed before numpy and torch load their thread pools.
_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--repeats", type=int, default=5)
_parser.add_argument("--anchor-repeats", type=int, default=1)
_parser.add_argument("--threads", type=int, default=2)
_parser.add_argument("--no-anchors", action="store_true")
_parser.add_argument("--quick", action="store_true")
_parser.add_argument("--large", action="store_true",
                     help="issue 11's many-class and large-pool cases instead")
_parser.add_argument("--mnist", help="folder with the MNIST t10k idx files: real posteriors")
_parser.add_argument("--mnist-labels", type=int, default=100,
                     help="labelled images the network trains on (--mnist)")
_parser.add_argument("--mnist-shifts", type=int, default=1, choices=range(1, 6),
                     help="the pool and its copies moved one pixel right, left, down, up")
_parser.add_argument("--dtype", default="float32")
_parser.add_argument("--skip-full", action="store_true",
                     help="do not time the greedy without lazy evaluation (minutes on --large)")
ARGS = _parser.parse_args()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402

from skal.strategies import BatchBALD  # noqa: E402
from skal.strategies._bayesian import greedy_batchbald  # noqa: E402

# (pool N, posterior samples K, classes C, batch size, joint samples M), as in issue 5.
CONFIGS = [
    (2_000, 20, 10, 10, 1_000),
    (10_000, 20, 10, 10, 1_000),
    (2_000, 100, 10, 10, 10_000),
]
# Issue 11: many classes and a long batch, and a large pool.
LARGE_CONFIGS = [
    (16_000, 20, 26, 20, 10_000),
    (50_000, 20, 10, 10, 10_000),
]


class FixedSamples:
    """A stand-in learner whose posterior samples are given: row i of X_pool is pool item i."""

    def __init__(self, proba_K_N_C):
        self.proba = proba_K_N_C

    def predict_proba_samples(self, X):
        return self.proba[:, np.asarray(X)[:, 0], :]


def make_log_probs(n_pool, n_samples, n_classes, seed=0):
    logits = np.random.default_rng(seed).standard_normal((n_pool, n_samples, n_classes))
    logits -= logits.max(axis=2, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))  # (N, K, C)


def mnist_log_probs(path, n_labels, n_samples, n_shifts=1, seed=0):
    """(N, K, 10) log-probabilities of MC dropout over the MNIST test images a network trained
    on ``n_labels`` random ones of them has not seen, and over copies moved by one pixel."""
    import torch

    from skal.datasets import load_mnist_idx
    from skal.nets import MNISTConvNet, NetClassifier

    torch.set_num_threads(ARGS.threads)
    X, y = load_mnist_idx(path)
    X = ((X - 0.1307) / 0.3081).astype(np.float32)
    labelled = np.random.default_rng(seed).choice(X.shape[0], n_labels, replace=False)
    pool = np.setdiff1d(np.arange(X.shape[0]), labelled)
    net = NetClassifier(MNISTConvNet, max_epochs=30, batch_size=64, lr=1e-3,
                        random_state=seed).fit(X[labelled], y[labelled])
    images = X[pool].reshape(-1, 28, 28)
    moves = [(0, 0), (1, 2), (-1, 2), (1, 1), (-1, 1)][:n_shifts]
    X_pool = np.concatenate(
        [np.roll(images, shift, axis).reshape(-1, 784) for shift, axis in moves]
    )
    accuracy = float((net.predict(X[pool]) == y[pool]).mean())
    proba = net.predict_proba_samples(X_pool, n_samples=n_samples)  # (K, N, C)
    print(f"# MNIST posteriors: trained on {n_labels} images, pool {X_pool.shape[0]} "
          f"({n_shifts} shifts), K={n_samples}, accuracy on the unshifted pool {accuracy:.3f}")
    return np.log(np.clip(proba, 1e-30, None)).swapaxes(0, 1)


def timed(func, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def anchors():
    found = {}
    if ARGS.no_anchors:
        return found
    try:
        from skactiveml.pool._bald import batch_bald

        def run_skactiveml(log_probs_N_K_C, batch_size, n_joint):
            probas = np.exp(log_probs_N_K_C).swapaxes(0, 1).copy()  # it clips its input in place
            utilities = batch_bald(probas, batch_size, n_MC_samples=n_joint, random_state=0)
            return np.nanargmax(utilities, axis=1)

        found["scikit-activeml batch_bald"] = run_skactiveml
    except ImportError as exc:
        print(f"# scikit-activeml not importable: {exc}")
    try:
        import torch
        from batchbald_redux.batchbald import get_batchbald_batch

        torch.set_num_threads(ARGS.threads)

        def run_redux(log_probs_N_K_C, batch_size, n_joint):
            batch = get_batchbald_batch(
                torch.from_numpy(log_probs_N_K_C), batch_size, n_joint,
                dtype=torch.double, device="cpu",
            )
            return np.asarray(batch.indices)

        found["batchbald_redux"] = run_redux
    except ImportError as exc:
        print(f"# batchbald_redux not importable: {exc}")
    return found


def matmul_unit(repeats=7):
    """Median seconds of one float32 2000x2000 matrix product: the unit of issue 11."""
    a = np.random.default_rng(0).standard_normal((2000, 2000)).astype(np.float32)
    return timed(lambda: a @ a, repeats)[0]


def main():
    configs = LARGE_CONFIGS if ARGS.large else CONFIGS
    configs = configs[:1] if ARGS.quick else configs
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"{ARGS.threads} threads, numpy {np.__version__}, dtype {ARGS.dtype}")
    real = None
    if ARGS.mnist:
        real = mnist_log_probs(ARGS.mnist, ARGS.mnist_labels, 20, ARGS.mnist_shifts)
        configs = [(real.shape[0], 20, 10, batch_size, 10_000) for batch_size in (10, 20)]
    others = anchors()
    for n_pool, n_samples, n_classes, batch_size, n_joint in configs:
        log_probs = make_log_probs(n_pool, n_samples, n_classes) if real is None else real
        proba_K_N_C = np.ascontiguousarray(np.exp(log_probs).swapaxes(0, 1))
        learner, X_pool = FixedSamples(proba_K_N_C), np.arange(n_pool)[:, None]
        strategy = BatchBALD(n_joint_samples=n_joint, dtype=ARGS.dtype, random_state=0)
        print(f"\nN={n_pool} K={n_samples} C={n_classes} batch={batch_size} M={n_joint}")
        skal_s, (picked, gains) = timed(
            partial(strategy.select, learner, X_pool, batch_size), ARGS.repeats
        )
        unit = matmul_unit()
        print(f"  skal BatchBALD                 {skal_s:8.3f} s   {skal_s / unit:6.1f} units of a "
              f"2000x2000 float32 product ({unit:.3f} s)   gains {np.round(gains, 3)}")
        if not ARGS.skip_full:
            # The engine with and without lazy evaluation, same seed (the strategy derives
            # its own seed for the sampled configurations, so its batch is not comparable).
            engine = partial(greedy_batchbald, proba_K_N_C, batch_size, n_joint_samples=n_joint,
                             random_state=0, dtype=ARGS.dtype)
            full_s, (full_picked, _) = timed(
                partial(engine, lazy=False), max(1, ARGS.repeats // 2)
            )
            lazy_picked, _ = engine()
            print(f"  skal, lazy greedy off          {full_s:8.3f} s   same batch as the lazy "
                  f"engine: {full_picked.tolist() == lazy_picked.tolist()}")
        for name, run in others.items():
            try:
                seconds, indices = timed(
                    partial(run, log_probs, batch_size, n_joint), ARGS.anchor_repeats
                )
            except MemoryError as error:  # scikit-activeml holds an N x M x C float64 array
                print(f"  {name:30s} out of memory: {error}")
                continue
            overlap = len(set(indices.tolist()) & set(picked.tolist()))
            print(f"  {name:30s} {seconds:8.3f} s   x{seconds / skal_s:6.1f} skal's time, "
                  f"{overlap}/{batch_size} of skal's batch")


if __name__ == "__main__":
    main()
