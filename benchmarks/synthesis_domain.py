"""Query synthesis (GAAL, ASAL) and cross-domain active learning (CLUE) against random and
margin sampling (issue #15 parts 3-4).

Two experiments, each with ``StandardScaler + LogisticRegression(max_iter=2000)``:

``digits``: ``load_digits`` split once into a pool (1,297 rows) and a test set (500 rows,
stratified); every seed starts from the same 10 random pool rows for every method and
queries 10 rows per cycle up to 200 labels. ASAL and GAAL share one ``PoolGAN`` per seed
(default settings, fitted on the pool). GAAL's synthesised rows exist in no data set, so
its oracle is the label of the nearest pool row (Euclidean, raw features): the
simulation's stand-in for a person.

``mnist``: the source model is trained on all of ``load_digits``; the target domain is
MNIST's t10k images rendered like the digits (:func:`skal.datasets.mnist_as_digits`),
the first 5,000 the pool and the last 5,000 the test set. Each cycle refits on the
source rows plus the queried target rows, 10 per cycle up to 100 target labels.

Every finished (experiment, method, seed) run is written to ``OUT/<experiment>/<method>-
<seed>.json`` and skipped on a rerun, so the script resumes where it stopped. ``--report``
rebuilds ``OUT/summary.csv`` and the plot from the JSON files::

    nice python benchmarks/synthesis_domain.py --out docs/results/synthesis_domain \\
        --mnist /work/shared/data/mnist --seeds 0 1 2 3 4

The figures are in docs/synthesis_domain.rst.
"""

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skal.strategies import ASAL, CLUE, GAAL, MarginSampling, RandomSampling  # noqa: E402

BATCH = 10
EXPERIMENTS = {
    "digits": "digits (pool 1,297, test 500)",
    "digits_gan500": "digits, GAN trained 500 epochs",
    "mnist": "digits -> MNIST as 8x8 (target labels)",
    "mnist_to_digits": "MNIST as 8x8 -> digits (target labels)",
}


def model():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def run_loop(method, X_pool, y_pool, X_test, y_test, initial, budget, seed, gan=None,
             X_base=None, y_base=None):
    """One active-learning run; returns the learning curve and the seconds per query."""
    X_base = np.empty((0, X_pool.shape[1])) if X_base is None else X_base
    y_base = np.empty(0, dtype=y_pool.dtype) if y_base is None else y_base
    labelled = list(initial)
    X_made, y_made = np.empty((0, X_pool.shape[1])), np.empty(0, dtype=y_pool.dtype)
    oracle = KNeighborsClassifier(n_neighbors=1).fit(X_pool, y_pool)
    strategy = {
        "random": RandomSampling(random_state=seed),
        "margin": MarginSampling(random_state=seed),
        "clue": CLUE(random_state=seed),
        "asal": ASAL(None if gan is None else FrozenEstimator(gan), random_state=seed),
        "gaal": GAAL(None if gan is None else FrozenEstimator(gan), random_state=seed),
    }[method]
    curve, seconds = [], []
    while True:
        X_train = np.r_[X_base, X_pool[labelled], X_made]
        y_train = np.r_[y_base, y_pool[labelled], y_made]
        fitted = model().fit(X_train, y_train)
        n_labels = len(labelled) + len(y_made)
        curve.append((n_labels, float(fitted.score(X_test, y_test))))
        if n_labels >= budget:
            return curve, seconds
        start = time.perf_counter()
        if method == "gaal":
            X_new = strategy.synthesize(fitted, X_pool, BATCH)
            X_made = np.r_[X_made, X_new]
            y_made = np.r_[y_made, oracle.predict(X_new)]
        else:
            rest = np.setdiff1d(np.arange(len(y_pool)), labelled)
            picks = strategy(fitted, X_pool[rest], BATCH)
            labelled += rest[picks].tolist()
        seconds.append(time.perf_counter() - start)


def digits_runs(out, seeds, methods, experiment="digits", gan_epochs=100):
    from skal.nets import PoolGAN

    X, y = load_digits(return_X_y=True)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=500, stratify=y,
                                                      random_state=0)
    for seed in seeds:
        initial = np.random.RandomState(seed).choice(len(y_pool), BATCH, replace=False)
        gan = None
        for method in methods:
            path = out / experiment / f"{method}-{seed}.json"
            if path.exists():
                continue
            if method in ("asal", "gaal") and gan is None:
                start = time.perf_counter()
                gan = PoolGAN(max_epochs=gan_epochs, random_state=seed).fit(X_pool)
                gan_seconds = time.perf_counter() - start
                if seed == seeds[0]:
                    save_sample_grid(gan, X_pool, y_pool, initial, seed,
                                     f"synthesis_{experiment}_samples.png")
            curve, seconds = run_loop(method, X_pool, y_pool, X_test, y_test, initial, 200,
                                      seed, gan)
            record = {"experiment": experiment, "method": method, "seed": seed,
                      "curve": curve, "query_seconds": seconds}
            if method in ("asal", "gaal"):
                record["gan_seconds"] = gan_seconds
            write(path, record)


def mnist_runs(out, seeds, methods, mnist):
    from skal.datasets import load_mnist_idx, mnist_as_digits

    X_source, y_source = load_digits(return_X_y=True)
    images, y_target = load_mnist_idx(mnist)
    X_target = mnist_as_digits(images)
    X_pool, y_pool = X_target[:5000], y_target[:5000]
    X_test, y_test = X_target[5000:], y_target[5000:]
    for seed in seeds:
        for method in methods:
            path = out / "mnist" / f"{method}-{seed}.json"
            if path.exists():
                continue
            # No initial target labels: the source model picks the first batch.
            curve, seconds = run_loop(method, X_pool, y_pool, X_test, y_test, [], 100, seed,
                                      X_base=X_source, y_base=y_source)
            write(path, {"experiment": "mnist", "method": method, "seed": seed,
                         "curve": curve, "query_seconds": seconds})


def reverse_runs(out, seeds, methods, mnist):
    """MNIST (as 8x8) -> digits: the source model on 5,000 MNIST images, the digits' pool."""
    from skal.datasets import load_mnist_idx, mnist_as_digits

    images, y_source = load_mnist_idx(mnist)
    X_source, y_source = mnist_as_digits(images[:5000]), y_source[:5000]
    X, y = load_digits(return_X_y=True)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=500, stratify=y,
                                                      random_state=0)
    for seed in seeds:
        for method in methods:
            path = out / "mnist_to_digits" / f"{method}-{seed}.json"
            if path.exists():
                continue
            curve, seconds = run_loop(method, X_pool, y_pool, X_test, y_test, [], 100, seed,
                                      X_base=X_source, y_base=y_source)
            write(path, {"experiment": "mnist_to_digits", "method": method, "seed": seed,
                         "curve": curve, "query_seconds": seconds})


def save_sample_grid(gan, X_pool, y_pool, initial, seed, name):
    """PNG: pool rows, random generator samples and GAAL's synthesised rows (8x8 digits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fitted = model().fit(X_pool[initial], y_pool[initial])
    rows = {
        "pool rows": X_pool[np.random.RandomState(seed).choice(len(X_pool), 10)],
        "generator samples": gan.sample(10, random_state=seed),
        "GAAL (10 labels)": GAAL(FrozenEstimator(gan), random_state=seed).synthesize(
            fitted, X_pool, 10),
    }
    figure, axes = plt.subplots(3, 10, figsize=(8, 2.8))
    for r, (title, images) in enumerate(rows.items()):
        for c in range(10):
            axes[r, c].imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
    figure.tight_layout()
    target = Path(__file__).resolve().parent.parent / "docs" / "_static"
    figure.savefig(target / name, dpi=90)
    plt.close(figure)


def write(path, record):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)  # whole or absent: a killed run leaves no half file
    print(path.name, record["curve"][-1], flush=True)


def report(out):
    rows = []
    for experiment in EXPERIMENTS:
        if not (out / experiment).is_dir():
            continue
        records = [json.loads(p.read_text()) for p in sorted((out / experiment).glob("*.json"))]
        for method in sorted({r["method"] for r in records}):
            mine = [r for r in records if r["method"] == method]
            curves = np.array([[acc for _, acc in r["curve"]] for r in mine])
            labels = [n for n, _ in mine[0]["curve"]]
            to90 = [next((n for n, a in r["curve"] if a >= 0.9), None) for r in mine]
            row = {
                "experiment": experiment, "method": method, "seeds": len(mine),
                "mean_accuracy": curves.mean(), "mean_accuracy_se":
                    curves.mean(axis=1).std(ddof=1) / np.sqrt(len(mine)) if len(mine) > 1
                    else float("nan"),
                "final_accuracy": curves[:, -1].mean(),
                "labels_to_90": (np.mean(to90) if all(t is not None for t in to90)
                                 else f"{sum(t is not None for t in to90)}/{len(mine)} reach"),
                "query_seconds": np.median([s for r in mine for s in r["query_seconds"]]),
            }
            for n in (50, 100):
                if n in labels:
                    row[f"accuracy_at_{n}"] = curves[:, labels.index(n)].mean()
            if "gan_seconds" in mine[0]:
                row["gan_seconds"] = np.median([r["gan_seconds"] for r in mine])
            rows.append(row)
    keys = sorted({k for row in rows for k in row}, key=lambda k: list(rows[0]).index(k)
                  if k in rows[0] else 99)
    lines = [",".join(keys)]
    for row in rows:
        lines.append(",".join(_fmt(row.get(k, "")) for k in keys))
    (out / "summary.csv").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(out)


def _fmt(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def plot(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [e for e in EXPERIMENTS if (out / e).is_dir()]
    n_rows = -(-len(present) // 2)
    figure, axes = plt.subplots(n_rows, 2, figsize=(10, 3.8 * n_rows), squeeze=False)
    for ax in axes.ravel()[len(present):]:
        ax.set_visible(False)
    colors = {"random": "tab:gray", "margin": "tab:orange", "clue": "tab:blue",
              "asal": "tab:green", "gaal": "tab:red"}
    for ax, experiment in zip(axes.ravel(), present, strict=False):
        records = [json.loads(p.read_text()) for p in sorted((out / experiment).glob("*.json"))]
        for method in sorted({r["method"] for r in records}):
            mine = [r for r in records if r["method"] == method]
            labels = [n for n, _ in mine[0]["curve"]]
            mean = np.array([[a for _, a in r["curve"]] for r in mine]).mean(axis=0)
            ax.plot(labels, mean, label=method, color=colors.get(method))
        ax.set_title(EXPERIMENTS[experiment])
        ax.set_xlabel("labels" if experiment.startswith("digits") else "target labels")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    figure.savefig(out / "learning_curves.png", dpi=90)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results/synthesis_domain"))
    parser.add_argument("--mnist", default=None, help="folder of the MNIST t10k IDX files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--experiments", nargs="+", choices=list(EXPERIMENTS),
                        default=["digits", "mnist", "mnist_to_digits"])
    parser.add_argument("--report", action="store_true", help="only rebuild the summary")
    args = parser.parse_args()
    if not args.report:
        import torch

        torch.set_num_threads(1)
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        if "digits" in args.experiments:
            digits_runs(args.out, args.seeds, ["random", "margin", "clue", "asal", "gaal"])
        if "digits_gan500" in args.experiments:
            digits_runs(args.out, args.seeds, ["asal", "gaal"], "digits_gan500", 500)
        has_mnist = args.mnist and os.path.isdir(args.mnist)
        if "mnist" in args.experiments and has_mnist:
            mnist_runs(args.out, args.seeds, ["random", "margin", "clue"], args.mnist)
        if "mnist_to_digits" in args.experiments and has_mnist:
            reverse_runs(args.out, args.seeds, ["random", "margin", "clue"], args.mnist)
    report(args.out)


if __name__ == "__main__":
    main()
