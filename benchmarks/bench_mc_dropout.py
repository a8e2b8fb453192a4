"""MC-dropout sampling throughput and peak memory of the BatchBALD MNIST CNN.

Times ``NetClassifier.predict_proba_samples`` (consistent MC dropout, K passes over the pool)
and reports pool rows x passes per second and the peak memory of the call beyond what the
process held before it: resident memory on the CPU (Linux ``VmHWM`` after resetting it), and
``torch.cuda.max_memory_allocated`` on a GPU. Medians of ``--repeats`` runs in one process.

    python benchmarks/bench_mc_dropout.py                       # 10,000 images, K=100
    python benchmarks/bench_mc_dropout.py --pool 2000 --n-samples 20 --batch-rows 256 1024
"""

import argparse
import os
import statistics
import time

import numpy as np
import torch

from skal.datasets import load_mnist_idx
from skal.nets import MNISTConvNet, NetClassifier


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak_rss():
    # Writing 5 to clear_refs resets VmHWM (peak resident set) on Linux.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def load_pool(path, n_pool, seed=0):
    rng = np.random.RandomState(seed)
    if path and os.path.isdir(path):
        X, y = load_mnist_idx(path)
        source = f"MNIST t10k from {path}"
    else:
        X = rng.rand(10_000, 784).astype(np.float32)
        y = rng.randint(10, size=10_000)
        source = "random images (MNIST files not found)"
    rows = np.resize(np.arange(X.shape[0]), n_pool)  # repeat rows if a bigger pool is asked
    X = (X - 0.1307) / 0.3081  # the usual MNIST normalisation
    return X[rows].astype(np.float32), y[rows], source


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="/work/shared/data/mnist",
                        help="folder with t10k-images-idx3-ubyte(.gz) and labels")
    parser.add_argument("--pool", type=int, default=10_000, help="pool rows")
    parser.add_argument("--n-samples", type=int, default=100, help="MC-dropout passes K")
    parser.add_argument("--batch-rows", type=int, nargs="+", default=[1024],
                        help="inference_batch_size values to compare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    X, y, source = load_pool(args.mnist, args.pool)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    net = NetClassifier(MNISTConvNet, max_epochs=1, batch_size=128, lr=1e-3,
                        device=device, random_state=0)
    net.fit(X[:1000], y[:1000])  # a briefly trained network; training is not timed
    output_mib = args.n_samples * args.pool * net.classes_.size * 4 / 2**20
    print(f"pool: {args.pool} rows, {source}; K={args.n_samples}; device={device}; "
          f"torch threads={torch.get_num_threads()}; torch {torch.__version__}")
    print(f"the returned samples array alone is {output_mib:.1f} MiB")
    print(f"{'batch rows':>10} {'median s':>9} {'min s':>8} {'rows*passes/s':>14} "
          f"{'peak extra MiB':>15}")
    for batch_rows in args.batch_rows:
        net.set_params(inference_batch_size=batch_rows)
        net.predict_proba_samples(X[:batch_rows], n_samples=2)  # warm-up
        times, peaks = [], []
        for _ in range(args.repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            else:
                can_reset = _reset_peak_rss()
                base = _rss_kib("VmRSS") * 1024
            start = time.perf_counter()
            samples = net.predict_proba_samples(X, n_samples=args.n_samples)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            if device.startswith("cuda"):
                peaks.append((torch.cuda.max_memory_allocated() - base) / 2**20)
            elif can_reset:
                peaks.append((_rss_kib("VmHWM") * 1024 - base) / 2**20)
            del samples
        median = statistics.median(times)
        peak = f"{statistics.median(peaks):.1f}" if peaks else "n/a"
        print(f"{batch_rows:>10} {median:>9.2f} {min(times):>8.2f} "
              f"{args.pool * args.n_samples / median:>14,.0f} {peak:>15}", flush=True)


if __name__ == "__main__":
    main()
