"""Cost of MC-dropout sampling in deterministic forward passes, with and without the shared prefix.

``NetClassifier.predict_proba_samples`` runs the layers before the first dropout layer once per
row and only the rest once per pass (the shared prefix); a private switch,
``net._mc_shared_prefix = False``, makes it run the whole network once per pass as before.
For the BatchBALD MNIST CNN and an MLP this script times both, and one deterministic forward
pass (``predict_proba``) over the same rows, and prints each sampling time divided by the
forward time: K for a network recomputed in full every pass, less when the prefix is shared.
The three calls are interleaved, ``--repeats`` times, in one process; medians are reported.

    python benchmarks/bench_mc_prefix.py            # 2,000 images, K=100 (minutes on a CPU)
    python benchmarks/bench_mc_prefix.py --quick    # 500 images, K=20
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from skal.nets import MLP, MNISTConvNet, NetClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_mc_dropout import load_pool  # noqa: E402


def _timed(func, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = func()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def compare(name, net, X, n_samples, repeats, device):
    X_small = X[: min(len(X), 64)]
    net.predict_proba(X_small)  # warm-up
    net.predict_proba_samples(X_small, n_samples=2)
    forward, shared, full = [], [], []
    for _ in range(repeats):
        net._mc_shared_prefix = True
        t, samples_shared = _timed(lambda: net.predict_proba_samples(X, n_samples), device)
        shared.append(t)
        net._mc_shared_prefix = False
        t, samples_full = _timed(lambda: net.predict_proba_samples(X, n_samples), device)
        full.append(t)
        forward.append(_timed(lambda: net.predict_proba(X), device)[0])
    net._mc_shared_prefix = True
    gap = float(np.abs(samples_shared - samples_full).max())
    f, s, r = (statistics.median(t) for t in (forward, shared, full))
    print(f"{name:<14} {f:>10.3f} {r:>10.2f} {r / f:>10.1f} {s:>10.2f} {s / f:>10.1f} "
          f"{r / s:>8.2f} {gap:>10.1e}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="/work/shared/data/mnist",
                        help="folder with t10k-images-idx3-ubyte(.gz) and labels")
    parser.add_argument("--pool", type=int, default=2000, help="pool rows")
    parser.add_argument("--n-samples", type=int, default=100, help="MC-dropout passes K")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 rows, K=20")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--batch-rows", type=int, default=1024,
                        help="inference_batch_size")
    args = parser.parse_args(argv)
    if args.quick:
        args.pool, args.n_samples = 500, 20

    torch.set_num_threads(args.threads)
    X, y, source = load_pool(args.mnist, args.pool)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    print(f"pool: {args.pool} rows, {source}; K={args.n_samples}; device={device}; "
          f"inference_batch_size={args.batch_rows}; torch threads={torch.get_num_threads()}; "
          f"torch {torch.__version__}; medians of {args.repeats}")
    print(f"{'network':<14} {'forward s':>10} {'full s':>10} {'full/fwd':>10} "
          f"{'shared s':>10} {'shared/fwd':>10} {'speed-up':>8} {'max |diff|':>10}")
    common = dict(max_epochs=1, batch_size=128, lr=1e-3, device=device, random_state=0,
                  inference_batch_size=args.batch_rows)
    networks = [
        ("MNISTConvNet", NetClassifier(MNISTConvNet, **common)),
        ("MLP 784-100-10", NetClassifier(MLP, **common)),
    ]
    for name, net in networks:
        net.fit(X[:1000], y[:1000])  # a briefly trained network; training is not timed
        compare(name, net, X, args.n_samples, args.repeats, device)


if __name__ == "__main__":
    main()
