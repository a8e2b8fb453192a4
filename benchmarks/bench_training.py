"""Training cost of skal's NetClassifier(MNISTConvNet) against a bare torch loop, same epochs.

Both train the BatchBALD paper's MNIST CNN from the same seed on the same rows with Adam
(lr 1e-3), batch size 64, for the same number of epochs, in one process, interleaved
``--repeats`` times (medians reported). Two settings:

- ``plain``: one shuffled pass over the labelled rows per epoch (NetClassifier's defaults,
  ``train_split=None``); on 20 rows an epoch is a single batch, so this shows the fixed
  per-epoch cost of skorch's machinery.
- ``reproduction``: the MNIST reproduction's training (``examples/batchbald_mnist.py``):
  5,056 rows per epoch drawn from the labelled rows (79 batches), validation accuracy on
  1,024 held-out images after every epoch and the best epoch's weights kept; the bare loop
  does the same (early stopping is left out of both: every epoch runs).

The ratio skal / bare is the overhead of skorch and skal per training; "skal with DataLoader"
is the same network with its batches fetched row by row through torch's DataLoader (skorch's
way, and skal's before it cut batches from whole tensors), and the script checks that both
train the same weights. The images are the
MNIST t10k files (``--mnist``, default ``../shared/data/mnist``).

    python benchmarks/bench_training.py                 # 20, 100, 300 rows; ~10 minutes
    python benchmarks/bench_training.py --quick         # 20 and 300 rows, fewer epochs

Figures are recorded in docs/benchmarks/training.rst.
"""

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from skal.datasets import load_mnist_idx
from skal.experiments import early_stopping_params
from skal.nets import MNISTConvNet, NetClassifier

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
ARGS = argparse.Namespace(cpu_time=False)


def load_rows(path, n_rows, n_valid, seed=0):
    X, y = load_mnist_idx(path)
    X = ((X - MNIST_MEAN) / MNIST_STD).astype(np.float32)
    rows = np.random.RandomState(seed).permutation(len(y))
    train, valid = rows[:n_rows], rows[n_rows : n_rows + n_valid]
    return X[train], y[train], X[valid], y[valid]


def skal_net(setting, epochs, X_valid, y_valid, epoch_samples):
    params = {}
    if setting == "reproduction":
        # patience above the epochs: every epoch runs, the best one's weights are restored
        params = early_stopping_params(
            X_valid, y_valid, patience=epochs + 1, epoch_samples=epoch_samples
        )
    return NetClassifier(
        MNISTConvNet, classes=np.arange(10), lr=1e-3, batch_size=64, max_epochs=epochs,
        device="cpu", random_state=0, **params,
    )


def bare_loop(setting, epochs, X, y, X_valid, y_valid, epoch_samples, seed=0):
    """The same training written directly in torch: what the work costs without a framework."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MNISTConvNet(n_classes=10)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        X_t, y_t = torch.from_numpy(X.reshape(-1, 1, 28, 28)), torch.from_numpy(y.astype(np.int64))
        X_v = torch.from_numpy(X_valid.reshape(-1, 1, 28, 28))
        y_v = torch.from_numpy(y_valid.astype(np.int64))
        n_rows = len(y) if setting == "plain" else max(epoch_samples, len(y))
        best, best_state = -1.0, None
        for _ in range(epochs):
            model.train()
            if setting == "plain":
                order = torch.randperm(len(y))
            else:
                # rows drawn from whole shuffled passes, as fixed_length_loader's sampler
                order = torch.cat([torch.randperm(len(y)) for _ in range(-(-n_rows // len(y)))])
                order = order[:n_rows]
            for start in range(0, n_rows, 64):
                batch = order[start : start + 64]
                optimizer.zero_grad()
                loss = loss_fn(model(X_t[batch]), y_t[batch])
                loss.backward()
                optimizer.step()
            if setting == "reproduction":
                model.eval()
                with torch.no_grad():
                    accuracy = (model(X_v).argmax(1) == y_v).float().mean().item()
                if accuracy > best:
                    best, best_state = accuracy, copy.deepcopy(model.state_dict())
        if best_state is not None:
            model.load_state_dict(best_state)
    return model


def seconds(func, *args):
    """CPU seconds of the process (with one torch thread, robust to a busy machine)."""
    start = time.process_time() if ARGS.cpu_time else time.perf_counter()
    func(*args)
    return (time.process_time() if ARGS.cpu_time else time.perf_counter()) - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--rows", type=int, nargs="+", default=[20, 100, 300])
    parser.add_argument("--plain-epochs", type=int, default=50)
    parser.add_argument("--reproduction-epochs", type=int, default=3)
    parser.add_argument("--epoch-samples", type=int, default=5056)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=["plain", "reproduction"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by process CPU seconds instead of wall seconds")
    args = parser.parse_args()
    ARGS.cpu_time = args.cpu_time
    if args.quick:
        args.rows, args.plain_epochs, args.reproduction_epochs = [20, 300], 20, 1
    torch.set_num_threads(args.threads)
    X_all, y_all, X_valid, y_valid = load_rows(args.mnist, max(args.rows), 1024)
    print(f"# torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, medians of {args.repeats}, "
          f"{'CPU' if args.cpu_time else 'wall'} seconds")
    for setting in args.settings:
        epochs = args.plain_epochs if setting == "plain" else args.reproduction_epochs
        for n_rows in args.rows:
            X, y = X_all[:n_rows], y_all[:n_rows]
            net = skal_net(setting, epochs, X_valid, y_valid, args.epoch_samples)
            net.fit(X, y)  # warm-up (first calls allocate)
            times = {"skal": [], "skal, DataLoader": [], "bare": []}
            weights = {}
            for _ in range(args.repeats):
                for name, fast in (("skal", True), ("skal, DataLoader", False)):
                    net._fast_batches = fast
                    times[name].append(seconds(net.fit, X, y))
                    weights[name] = [p.detach().clone() for p in net.module_.parameters()]
                times["bare"].append(seconds(
                    bare_loop, setting, epochs, X, y, X_valid, y_valid, args.epoch_samples
                ))
            s, d, b = (statistics.median(times[k]) for k in times)
            same = all(map(torch.equal, weights["skal"], weights["skal, DataLoader"]))
            print(f"{setting:12s} rows={n_rows:4d} epochs={epochs:3d}  skal {s:7.3f} s  "
                  f"skal with DataLoader {d:7.3f} s  bare {b:7.3f} s  skal/bare {s / b:5.2f}  "
                  f"DataLoader/bare {d / b:5.2f}  same weights {same}", flush=True)

if __name__ == "__main__":
    main()
