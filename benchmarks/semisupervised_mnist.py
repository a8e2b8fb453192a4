"""Self-supervised embeddings for cold-start active learning on MNIST (issue #13's main table).

The split of the BatchBALD reproduction (``examples/batchbald_mnist.py``): the 10,000 t10k
images, 2,000 stratified test images (split seed 0), 1,024 pool-side images held out as a
validation set (unused here) and the other 6,976 the pool. Per seed a
:class:`~skal.nets.ContrastiveEncoder` is pretrained on the pool images (in ``[0, 1]``) and its
embeddings of the pool and test images are cached under ``--cache`` (one ``.npz`` per seed,
reused by every later run); then, with batch 10 up to ``--budget`` labels, the runs of
``benchmarks/semisupervised_digits.py`` (random on raw pixels and on the embeddings,
TypiClust, TypiClust then margin) are scored after every cycle with the logistic and the
label-spreading heads. Each seed writes ``OUT/seed<k>.csv`` and is skipped when it exists,
so the script resumes; ``labels_to_target.csv`` has the columns of
``docs/results/batchbald_mnist_cpu/labels_to_target.csv`` (labels to 90 % and 95 % test
accuracy, quartiles over seeds, ``inf`` when a seed never gets there)::

    python benchmarks/semisupervised_mnist.py --mnist ../shared/data/mnist --seeds 0 1 2 3 4 5 \\
        --out docs/results/semisupervised_mnist --cache /tmp/skal_mnist_encoders

``--device cuda`` pretrains on a GPU (the rest runs on the CPU).
"""

import argparse
import functools
import time
from pathlib import Path

import pandas as pd
from semisupervised_digits import (
    RUNS,
    embeddings,
    labels_to_target,
    run,
    run_seeds,
    unit_rows,
)
from sklearn.model_selection import train_test_split

TARGETS = (0.90, 0.95)


def load_split(mnist, split_seed=0):
    from skal.datasets import load_mnist_idx

    X, y = load_mnist_idx(mnist)  # flat float32 rows in [0, 1]
    X_side, X_test, y_side, y_test = train_test_split(X, y, test_size=2000, stratify=y,
                                                      random_state=split_seed)
    X_pool, _, y_pool, _ = train_test_split(X_side, y_side, test_size=1024,
                                            random_state=split_seed)
    return X_pool, y_pool, X_test, y_test


def encoder_params(seed, epochs, channels, device):
    from skal.nets import ConvEncoder

    return {"module": functools.partial(ConvEncoder, channels=channels), "n_components": 128,
            "max_epochs": epochs, "batch_size": 512, "temperature": 0.5, "device": device,
            "random_state": seed}


def run_seed(seed, args):
    X_pool, y_pool, X_test, y_test = load_split(args.mnist)
    params = functools.partial(encoder_params, epochs=args.epochs,
                               channels=tuple(args.channels), device=args.device)
    Z_pool, Z_test, seconds = embeddings(X_pool, X_test, seed, args.cache, params,
                                         name=f"mnist_e{args.epochs}")
    print(f"seed {seed}: pretraining {seconds:.0f} s", flush=True)
    features = {"raw": (X_pool, X_test), "contrastive": (unit_rows(Z_pool), unit_rows(Z_test))}
    rows = []
    for strategy, name in args.runs:
        start = time.perf_counter()
        F_pool, F_test = features[name]
        for row in run(strategy, F_pool, y_pool, F_test, y_test, seed, budget=args.budget):
            rows.append({"seed": seed, "strategy": strategy, "features": name, **row})
        print(f"  {strategy}, {name}: {time.perf_counter() - start:.0f} s", flush=True)
    frame = pd.DataFrame(rows)
    frame["pretraining_seconds"] = round(seconds, 1)
    frame.to_csv(Path(args.out) / f"seed{seed}.csv", index=False)


def report(out):
    frame = pd.concat([pd.read_csv(f) for f in sorted(Path(out).glob("seed*.csv"))])
    table = labels_to_target(frame, TARGETS)
    table.to_csv(Path(out) / "labels_to_target.csv", index=False)
    print(table.to_string(index=False))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="../shared/data/mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="docs/results/semisupervised_mnist")
    parser.add_argument("--cache", default="/tmp/skal_mnist_encoders")
    parser.add_argument("--runs", nargs="+", type=lambda text: tuple(text.split(":")),
                        default=RUNS, help="STRATEGY:FEATURES pairs, e.g. "
                        "'random:raw' 'TypiClust:contrastive' (default: all five)")
    parser.add_argument("--report", action="store_true", help="only rebuild the table")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.report:
        run_seeds(args.seeds, args.out, lambda seed: run_seed(seed, args))
    report(args.out)


if __name__ == "__main__":
    main()
