"""Interleaved A/B of two BatchBALD engines in one process: an earlier ``_bayesian.py`` against
the installed one, on the benchmark's random posteriors, in units of a 2000x2000 float32 product.

    git show 5999a53:skal/strategies/_bayesian.py > /tmp/old_bayesian.py
    python benchmarks/bench_batchbald_ab.py /tmp/old_bayesian.py --repeats 3  # wall, 2 threads
    python benchmarks/bench_batchbald_ab.py /tmp/old_bayesian.py --repeats 3 --threads 1 --cpu

Prints, per case, the median units of each engine, their ratio and whether the picks agree.
Runs alternate old/new and new/old, so drifting load hits both alike.
"""

import argparse
import importlib.util
import time

import numpy as np
from threadpoolctl import threadpool_limits

CASES = [(16_000, 20, 26, 20, 10_000), (50_000, 20, 10, 10, 10_000), (2_000, 20, 10, 10, 1_000),
         (10_000, 20, 10, 10, 1_000), (2_000, 100, 10, 10, 10_000)]


def random_samples(n_pool, n_samples, n_classes):
    logits = np.random.default_rng(0).standard_normal((n_pool, n_samples, n_classes))
    proba = np.exp(logits - logits.max(axis=-1, keepdims=True))
    proba /= proba.sum(axis=-1, keepdims=True)
    return np.ascontiguousarray(proba.transpose(1, 0, 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="path of the earlier skal/strategies/_bayesian.py")
    parser.add_argument("--cases", type=int, nargs="+", default=list(range(len(CASES))))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu", action="store_true", help="CPU time instead of wall time")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("old_bayesian", args.old)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    from skal.strategies import _bayesian as new

    clock = time.process_time if args.cpu else time.perf_counter
    matrix = np.random.default_rng(0).standard_normal((2000, 2000)).astype(np.float32)
    with threadpool_limits(args.threads):
        for n_pool, n_samples, n_classes, batch_size, n_joint in (CASES[i] for i in args.cases):
            samples = random_samples(n_pool, n_samples, n_classes)
            units, picks = {"old": [], "new": []}, {}
            for repeat in range(args.repeats):
                order = [("old", old), ("new", new)]
                for name, module in order if repeat % 2 == 0 else order[::-1]:
                    unit = []
                    for _ in range(5):
                        start = clock()
                        matrix @ matrix
                        unit.append(clock() - start)
                    start = clock()
                    indices, _ = module.greedy_batchbald(samples, batch_size,
                                                         n_joint_samples=n_joint, random_state=0)
                    units[name].append((clock() - start) / np.median(unit))
                    picks[name] = indices.tolist()
            before, after = np.median(units["old"]), np.median(units["new"])
            print(f"N={n_pool} K={n_samples} C={n_classes} b={batch_size} M={n_joint}: "
                  f"old {before:.1f} new {after:.1f} units, {before / after:.2f}x, "
                  f"same picks: {picks['old'] == picks['new']}", flush=True)


if __name__ == "__main__":
    main()
