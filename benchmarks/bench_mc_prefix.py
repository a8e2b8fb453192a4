"""Cost of MC-dropout sampling in deterministic forward passes, for each way of sharing work.

``NetClassifier.predict_proba_samples`` shares what the K passes have in common. A private
switch, ``net._mc_expansion``, picks the most sharing layout it may use:

* ``"replicate"``: the whole network runs once per pass (no sharing);
* ``"prefix"``: the layers before the first dropout layer run once per row;
* ``"linear"`` (the default): when that dropout layer drops whole channels, also the layers up
  to the next convolution run once per row, and the convolution itself once per row plus a
  small matrix product per pass, by linearity in its input channels.

For the BatchBALD MNIST CNN, an MLP and a CNN whose only dropout is in its head, this script
times each layout and one deterministic forward pass (``predict_proba``) over the same rows,
and prints each sampling time divided by the forward time (K for a network recomputed in full
every pass). The calls are interleaved, ``--repeats`` times, in one process; medians are
reported, and the largest difference of each layout's samples from replication's.

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
from torch import nn

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


LAYOUTS = ("replicate", "prefix", "linear")


class HeadDropoutCNN(nn.Module):
    """The MNIST CNN's layers with a single dropout layer, before the last linear layer."""

    def __init__(self, n_features=784, n_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(32, 64, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Dropout(0.5),
        )
        self.output = nn.Linear(128, n_classes)

    def forward(self, x):
        return self.output(self.features(x.reshape(-1, 1, 28, 28)))


def compare(name, net, X, n_samples, repeats, device, layouts):
    X_small = X[: min(len(X), 64)]
    net.predict_proba(X_small)  # warm-up
    net.predict_proba_samples(X_small, n_samples=2)
    forward, times, samples = [], {layout: [] for layout in layouts}, {}
    for _ in range(repeats):
        for layout in layouts:
            net._mc_expansion = layout
            t, samples[layout] = _timed(lambda: net.predict_proba_samples(X, n_samples), device)
            times[layout].append(t)
        forward.append(_timed(lambda: net.predict_proba(X), device)[0])
    net._mc_expansion = "linear"
    f = statistics.median(forward)
    cells = [f"{f:>9.3f}"]
    for layout in layouts:
        t = statistics.median(times[layout])
        gap = float(np.abs(samples[layout] - samples[layouts[0]]).max())
        cells.append(f"{t:>9.2f} {t / f:>6.1f}x {gap:>8.1e}")
    print(f"{name:<18} " + "  ".join(cells), flush=True)


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
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS),
                        help="layouts to time; the first is the reference of |diff|")
    args = parser.parse_args(argv)
    if args.quick:
        args.pool, args.n_samples = 500, 20

    torch.set_num_threads(args.threads)
    X, y, source = load_pool(args.mnist, args.pool)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    print(f"pool: {args.pool} rows, {source}; K={args.n_samples}; device={device}; "
          f"inference_batch_size={args.batch_rows}; torch threads={torch.get_num_threads()}; "
          f"torch {torch.__version__}; medians of {args.repeats}")
    header = "".join(f"  {layout + ' s':>9} {'/fwd':>7} {'|diff|':>8}" for layout in args.layouts)
    print(f"{'network':<18} {'forward s':>9}{header}")
    common = dict(max_epochs=1, batch_size=128, lr=1e-3, device=device, random_state=0,
                  inference_batch_size=args.batch_rows)
    networks = [
        ("MNISTConvNet", NetClassifier(MNISTConvNet, **common)),
        ("MLP 784-100-10", NetClassifier(MLP, **common)),
        ("CNN, head dropout", NetClassifier(HeadDropoutCNN, **common)),
    ]
    for name, net in networks:
        net.fit(X[:1000], y[:1000])  # a briefly trained network; training is not timed
        compare(name, net, X, args.n_samples, args.repeats, device, args.layouts)


if __name__ == "__main__":
    main()
