"""One acquisition cycle of the BatchBALD MNIST reproduction, timed part by part.

Uses ``examples/batchbald_mnist.py``'s own split, network and strategies: train the paper's
CNN on ``--labels`` labelled pool images (early stopping on the 1,024 validation images,
5,056 rows per epoch), draw K=``--mc-samples`` MC-dropout samples on the whole unlabelled
pool (6,976 images less the labelled ones), and select a batch of 10 with BatchBALD and
with BALD. Prints seconds per part (wall and process CPU: on a busy machine only the CPU
seconds mean much; with ``--threads 1`` they are the work done) and the epochs trained, to
estimate a full run's cost:

    python benchmarks/bench_mnist_cycle.py --labels 20 100 250 --threads 2

``--max-epochs 3`` caps the training for a quick per-epoch figure (an epoch costs the same
whatever the labelled-set size: 5,056 rows and the validation pass).
"""

import argparse
import importlib.util
import os
import time
from pathlib import Path
from time import process_time

import numpy as np
import torch

from skal.strategies import BALD, BatchBALD

REPO = Path(__file__).resolve().parents[1]


def load_example():
    spec = importlib.util.spec_from_file_location(
        "batchbald_mnist", REPO / "examples" / "batchbald_mnist.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FixedSamples:
    """Stands in for the network in the selection timing: the samples are already drawn."""

    def __init__(self, samples):
        self.samples = samples

    def predict_proba_samples(self, X):
        return self.samples[:, np.asarray(X)[:, 0], :]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[20, 100, 250])
    parser.add_argument("--mc-samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap the epochs (default: the reproduction's 30 with early stopping)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    example = load_example()
    options = example.parse_args(["--mc-samples", str(args.mc_samples)]
                                 + (["--epochs", str(args.max_epochs)] if args.max_epochs else []))
    X_pool, y_pool, X_valid, y_valid, X_test, y_test = example.load_split(options)
    rng = np.random.RandomState(args.seed)
    print(f"# pool {len(y_pool)}, K={args.mc_samples}, {args.threads} threads, "
          f"load {os.getloadavg()[0]:.1f}")
    for n_labels in args.labels:
        labelled = rng.choice(len(y_pool), n_labels, replace=False)
        unlabelled = np.setdiff1d(np.arange(len(y_pool)), labelled)
        net = example.make_net(options, X_valid, y_valid, "cpu").set_params(random_state=0)
        start, cpu = time.perf_counter(), process_time()
        net.fit(X_pool[labelled], y_pool[labelled])
        fit_s, fit_cpu = time.perf_counter() - start, process_time() - cpu
        start, cpu = time.perf_counter(), process_time()
        samples = net.predict_proba_samples(X_pool[unlabelled])
        mc_s, mc_cpu = time.perf_counter() - start, process_time() - cpu
        learner, rows = FixedSamples(samples), np.arange(len(unlabelled))[:, None]
        times = {}
        for name, strategy in [("BatchBALD", BatchBALD(random_state=0)), ("BALD", BALD())]:
            cpu = process_time()
            strategy.select(learner, rows, 10)
            times[name] = process_time() - cpu
        epochs = len(net.history)
        print(f"labels {n_labels:4d}: fit {fit_s:6.1f} s wall, {fit_cpu:6.1f} s CPU ({epochs} "
              f"epochs, {fit_cpu / epochs:.2f} CPU s/epoch)  MC K={args.mc_samples} on "
              f"{len(unlabelled)} rows {mc_s:6.1f} s wall, {mc_cpu:6.1f} s CPU  selection CPU s: "
              f"BatchBALD {times['BatchBALD']:5.2f}, BALD {times['BALD']:5.2f}", flush=True)


if __name__ == "__main__":
    main()
