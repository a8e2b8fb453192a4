"""BatchBALD's query on a real MC-dropout network: wall time and pool rows predicted.

``BatchBALD.select`` scores BALD over the pool, runs the greedy on the rows of highest BALD and
widens them when its certificate fails (on real MNIST posteriors it fails at the third pick,
and the greedy takes the whole pool). A pool whose samples are held while BALD is scored is
predicted once; otherwise the widening calls ``predict_proba_samples`` over the pool again:
with MC dropout, a second pass that costs more than the greedy. This times one query both
ways in one process (held: the default; not held: ``_HOLD_BYTES = 0``), on ``MNISTConvNet``
trained on ``--labels`` random MNIST test images, over the other images and ``--shifts - 1``
copies moved by one pixel, with K = ``--mc-samples``.

    python benchmarks/bench_batchbald_net.py --mnist ../shared/data/mnist [--shifts 4]

Figures are recorded in docs/benchmarks/batchbald.rst.
"""

import argparse
import os
import time

_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--mnist", required=True, help="folder with the MNIST t10k idx files")
_parser.add_argument("--labels", type=int, default=100, help="labelled images")
_parser.add_argument("--shifts", type=int, default=4, choices=range(1, 6),
                     help="the pool and its copies moved one pixel right, left, down, up")
_parser.add_argument("--mc-samples", type=int, default=100, help="MC-dropout samples K")
_parser.add_argument("--batch-size", type=int, default=10)
_parser.add_argument("--threads", type=int, default=2)
ARGS = _parser.parse_args()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from skal.datasets import load_mnist_idx  # noqa: E402
from skal.nets import MNISTConvNet, NetClassifier  # noqa: E402
from skal.strategies import BatchBALD, _bayesian  # noqa: E402


class CountingNet(NetClassifier):
    """NetClassifier that counts the pool rows its MC-dropout samples are asked for."""

    rows_predicted = 0

    def predict_proba_samples(self, X, n_samples=None):
        self.rows_predicted += len(X)
        return super().predict_proba_samples(X, n_samples)


def main():
    torch.set_num_threads(ARGS.threads)
    X, y = load_mnist_idx(ARGS.mnist)
    X = ((X - 0.1307) / 0.3081).astype(np.float32)
    labelled = np.random.default_rng(0).choice(X.shape[0], ARGS.labels, replace=False)
    images = X[np.setdiff1d(np.arange(X.shape[0]), labelled)].reshape(-1, 28, 28)
    moves = [(0, 0), (1, 2), (-1, 2), (1, 1), (-1, 1)][: ARGS.shifts]
    X_pool = np.concatenate([np.roll(images, s, a).reshape(-1, 784) for s, a in moves])
    net = CountingNet(MNISTConvNet, n_samples=ARGS.mc_samples, max_epochs=30, batch_size=64,
                      lr=1e-3, random_state=0).fit(X[labelled], y[labelled])
    samples_mib = X_pool.shape[0] * ARGS.mc_samples * 10 * 4 / 2**20
    print(f"# pool {X_pool.shape[0]} images, K={ARGS.mc_samples}: samples {samples_mib:.0f} MiB "
          f"in float32; {torch.get_num_threads()} threads; batch {ARGS.batch_size}")
    default_hold = _bayesian._HOLD_BYTES
    picks = {}
    for name, hold in [("held", default_hold), ("not held", 0)]:
        _bayesian._HOLD_BYTES = hold
        net.rows_predicted = 0
        start = time.perf_counter()
        indices, _ = BatchBALD(random_state=0).select(net, X_pool, ARGS.batch_size)
        seconds = time.perf_counter() - start
        picks[name] = indices
        print(f"  {name:9s} {seconds:7.1f} s   rows predicted {net.rows_predicted} "
              f"({net.rows_predicted / X_pool.shape[0]:.1f} x the pool)")
    _bayesian._HOLD_BYTES = default_hold
    print(f"  same picks: {picks['held'].tolist() == picks['not held'].tolist()}")


if __name__ == "__main__":
    main()
