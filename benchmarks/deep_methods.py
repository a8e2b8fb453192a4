"""Learning loss and VAAL against random sampling and Core-Set on scikit-learn's digits.

Each run: a seeded 70/30 stratified split of ``load_digits`` (features / 16), 10 random
initial labels, batches of 10 up to 200 labels; the network (an MLP, 128 hidden units,
dropout 0.5, 30 epochs of Adam in batches of 32 per fit, refitted from scratch every cycle)
is scored on the test part after every fit. Strategies:

- ``random``, ``coreset`` (on the network's penultimate layer), ``batchbald`` (on 20
  MC-dropout samples of the network) and ``vaal`` use a plain
  :class:`~skal.nets.NetClassifier`;
- ``learning_loss`` uses :class:`~skal.nets.LearningLossClassifier` (the same MLP plus the
  loss-prediction module on its hidden layer, trained jointly) and queries by predicted loss;
  ``learning_loss_subset`` ranks a random fifth of the pool only, as the paper does;
- ``asal`` and ``gaal`` use a plain :class:`~skal.nets.NetClassifier` and one
  :class:`~skal.nets.PoolGAN` per seed (default settings), fitted on the pool before the first
  query; ASAL queries the pool rows nearest to rows synthesised at the network's boundary,
  GAAL adds the synthesised rows themselves, labelled by their nearest pool row (the
  simulation's stand-in for a person);
- ``random_ll`` draws at random but trains the same ``LearningLossClassifier``, so that the
  effect of the joint training on accuracy is told apart from that of the picks.

One CSV per (strategy, seed) under docs/results/deep_methods/ (``cycle, n_labels, accuracy,
fit_seconds, query_seconds, gan_seconds``); existing files are skipped, so a stopped run
resumes. ``--synthesis-grid`` draws pool images, generator samples and GAAL's synthesised
rows for the first seed (``synthesis_samples.png``). ``--summary`` writes the table
(docs/results/deep_methods/summary.csv) and the plot
(docs/results/deep_methods/learning_curves.png) from whatever CSVs exist; ``--diagnose``
follows learning loss's picks cycle by cycle (learning_loss_diagnosis.csv).

    nice -n 10 python benchmarks/deep_methods.py --seeds 0 1 2 3 4
    python benchmarks/deep_methods.py --summary
    nice -n 10 python benchmarks/deep_methods.py --diagnose --seeds 0 1

``--data mnist`` runs the same protocol on MNIST's t10k images (``SKAL_MNIST_DIR``, default
../shared/data/mnist): per seed a stratified pool of 2,000 and a test set of 2,000 images, the
same MLP on the flat pixels, VAAL with ``architecture="conv"``; results under
docs/results/deep_methods/mnist/.
"""

import argparse
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "deep_methods"
STRATEGIES = ["random", "coreset", "batchbald", "vaal", "asal", "gaal", "learning_loss",
              "learning_loss_subset", "random_ll"]
N_INITIAL, BATCH, BUDGET, TARGET = 10, 10, 200, 0.90
# VAAL's networks: the paper's latent size, 10 passes over the pool per query (about 200
# steps: the CPU budget of this benchmark; the paper trains far longer)
VAAL_PARAMS = {"latent_dim": 32, "hidden_units": (128,), "max_epochs": 10, "batch_size": 64}


def split(data, seed):
    """Pool and test rows of one seed: digits 70/30; MNIST 2,000 + 2,000 of the t10k images."""
    from sklearn.model_selection import train_test_split

    if data == "mnist":
        from skal.datasets import load_mnist_idx

        X, y = load_mnist_idx(os.environ.get("SKAL_MNIST_DIR", ROOT.parent / "shared" / "data"
                                             / "mnist"))
        return train_test_split(X, y, train_size=2000, test_size=2000, stratify=y,
                                random_state=seed)
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)


def initial_rows(n_pool, seed):
    labelled = np.zeros(n_pool, dtype=bool)
    labelled[np.random.RandomState(seed).choice(n_pool, N_INITIAL, replace=False)] = True
    return labelled


def make_learner(strategy, seed, data="digits", generator=None):
    from skal import ActiveLearner
    from skal.nets import LearningLossClassifier, NetClassifier
    from skal.strategies import ASAL, VAAL, BatchBALD, CoreSet, LearningLoss, RandomSampling

    net_params = dict(module__hidden_units=(128,), max_epochs=30, batch_size=32, lr=1e-2,
                      classes=np.arange(10), random_state=seed)
    plain, joint = NetClassifier(**net_params), LearningLossClassifier(**net_params)
    estimator, query = {
        "random": (plain, RandomSampling(random_state=seed)),
        "coreset": (plain, CoreSet(random_state=seed)),
        # the same network's MC-dropout samples (20, dropout 0.5)
        "batchbald": (plain, BatchBALD(random_state=seed)),
        "vaal": (plain, VAAL(**VAAL_PARAMS, architecture="conv" if data == "mnist" else "mlp",
                             random_state=seed)),
        "learning_loss": (joint, LearningLoss(random_state=seed)),
        "learning_loss_subset": (joint, LearningLoss(candidate_fraction=0.2,
                                                     random_state=seed)),
        "random_ll": (joint, RandomSampling(random_state=seed)),
        "asal": (plain, ASAL(generator, random_state=seed)),
        # GAAL's rows are synthesised in run(); the learner's own strategy is never asked
        "gaal": (plain, RandomSampling(random_state=seed)),
    }[strategy]
    return ActiveLearner(estimator, query, random_state=seed)


def run(strategy, seed, data="digits"):
    import torch
    from sklearn.frozen import FrozenEstimator
    from sklearn.neighbors import KNeighborsClassifier

    from skal.nets import PoolGAN
    from skal.strategies import GAAL

    torch.set_num_threads(1)
    X_pool, X_test, y_pool, y_test = split(data, seed)
    labelled = initial_rows(len(y_pool), seed)
    generator, gan_seconds = None, np.nan
    if strategy in ("asal", "gaal"):
        # one generator per seed, fitted on the pool before the loop (the learner clones its
        # strategy at every fit, so an unfitted one would be refitted every cycle)
        start = time.perf_counter()
        generator = FrozenEstimator(PoolGAN(random_state=seed).fit(X_pool))
        gan_seconds = time.perf_counter() - start
    learner = make_learner(strategy, seed, data, generator)
    # GAAL: synthesised rows, labelled by the nearest pool row (the simulation's person); one
    # object for the run, so that each cycle's search draws its own stream (rule 5)
    X_made, y_made = np.empty((0, X_pool.shape[1]), X_pool.dtype), np.empty(0, y_pool.dtype)
    if strategy == "gaal":
        synthesizer = GAAL(generator, random_state=seed)
        oracle = KNeighborsClassifier(n_neighbors=1).fit(X_pool, y_pool)
    rows = []
    while True:
        n_labels = int(labelled.sum()) + len(y_made)
        start = time.perf_counter()
        learner.fit(np.r_[X_pool, X_made], np.r_[np.where(labelled, y_pool, -1), y_made])
        fit_seconds = time.perf_counter() - start
        rows.append({"cycle": len(rows), "n_labels": n_labels,
                     "accuracy": learner.score(X_test, y_test), "fit_seconds": fit_seconds,
                     "query_seconds": np.nan, "gan_seconds": gan_seconds})
        if n_labels >= BUDGET:
            break
        unlabelled = np.flatnonzero(~labelled)
        start = time.perf_counter()
        if strategy == "gaal":
            X_new = synthesizer.synthesize(learner, X_pool, BATCH)
            X_made = np.r_[X_made, X_new.astype(X_pool.dtype)]
            y_made = np.r_[y_made, oracle.predict(X_new)]
        else:
            picks = learner.query(X_pool[unlabelled], BATCH)
            labelled[unlabelled[picks]] = True
        rows[-1]["query_seconds"] = time.perf_counter() - start
    return pd.DataFrame(rows)


def diagnose(seed, budget=120):
    """Learning loss's picks cycle by cycle: how well the predicted loss ranks the network's
    true loss on the pool (Spearman), and how many of the 10 picks fall in each class."""
    import torch
    from scipy.stats import spearmanr

    torch.set_num_threads(1)
    X_pool, _, y_pool, _ = split("digits", seed)
    labelled = initial_rows(len(y_pool), seed)
    learner = make_learner("learning_loss", seed)
    rows = []
    while labelled.sum() < budget:
        learner.fit(X_pool, np.where(labelled, y_pool, -1))
        unlabelled = np.flatnonzero(~labelled)
        predicted = learner.predict_loss(X_pool[unlabelled])
        proba = learner.predict_proba(X_pool[unlabelled])
        true = -np.log(np.maximum(proba[np.arange(len(unlabelled)), y_pool[unlabelled]], 1e-12))
        picks = unlabelled[learner.query(X_pool[unlabelled], BATCH)]
        counts = np.bincount(y_pool[picks], minlength=10)
        rows.append({"seed": seed, "n_labels": int(labelled.sum()),
                     "spearman_predicted_true_loss": spearmanr(predicted, true).statistic,
                     "largest_class_share_of_picks": counts.max() / BATCH,
                     "picked_classes": " ".join(map(str, counts))})
        labelled[picks] = True
    return pd.DataFrame(rows)


def synthesis_grid(data, seed=0):
    """PNG beside the results: pool images, PoolGAN samples and GAAL's rows for the network
    trained on the seed's initial labels (what a person would be asked to label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from sklearn.frozen import FrozenEstimator

    from skal.nets import PoolGAN
    from skal.strategies import GAAL

    torch.set_num_threads(1)
    X_pool, _, y_pool, _ = split(data, seed)
    labelled = initial_rows(len(y_pool), seed)
    generator = FrozenEstimator(PoolGAN(random_state=seed).fit(X_pool))
    learner = make_learner("gaal", seed, data, generator)
    learner.fit(X_pool, np.where(labelled, y_pool, -1))
    rows = {
        "pool rows": X_pool[np.random.RandomState(seed).choice(len(X_pool), 10)],
        "generator samples": generator.sample(10, random_state=seed),
        "GAAL rows": GAAL(generator, random_state=seed).synthesize(learner, X_pool, 10),
    }
    side = int(np.sqrt(X_pool.shape[1]))
    figure, axes = plt.subplots(3, 10, figsize=(8, 2.8))
    for r, (title, images) in enumerate(rows.items()):
        for c in range(10):
            axes[r, c].imshow(images[c].reshape(side, side), cmap="gray_r", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
    figure.tight_layout()
    results = RESULTS / "mnist" if data == "mnist" else RESULTS
    figure.savefig(results / "synthesis_samples.png", dpi=90)
    plt.close(figure)


def labels_to(curve, target):
    reached = curve.loc[curve["accuracy"] >= target, "n_labels"]
    return float(reached.iloc[0]) if len(reached) else np.nan


def summary(results=RESULTS, title="digits, MLP, batch 10"):
    frames = [pd.read_csv(path).assign(strategy=path.stem.rsplit("_seed", 1)[0],
                                       seed=int(path.stem.rsplit("_seed", 1)[1]))
              for path in sorted(results.glob("*_seed*.csv"))]
    data = pd.concat(frames, ignore_index=True)
    table = []
    random_acc = data[data["strategy"] == "random"].groupby("seed")["accuracy"].mean()
    for strategy, runs in data.groupby("strategy", sort=False):
        per_seed = runs.groupby("seed")
        mean_acc = per_seed["accuracy"].mean()
        # paired by seed: the same split and initial labels as random's run
        gain = (mean_acc - random_acc).dropna()
        to_target = per_seed.apply(lambda c: labels_to(c, TARGET), include_groups=False)
        final = per_seed.apply(lambda c: c["accuracy"].iloc[-1], include_groups=False)
        table.append({
            "strategy": strategy, "seeds": runs["seed"].nunique(),
            "mean_accuracy": mean_acc.mean(),
            "mean_accuracy_se": mean_acc.std(ddof=1) / np.sqrt(len(mean_acc)),
            "minus_random": gain.mean(),
            "minus_random_se": gain.std(ddof=1) / np.sqrt(len(gain)),
            "final_accuracy": final.mean(),
            "labels_to_90": to_target.mean(), "seeds_reaching_90": int(to_target.notna().sum()),
            "labels_to_90_per_seed": " ".join(">200" if np.isnan(v) else str(int(v))
                                              for v in to_target),
            "fit_seconds_median": runs["fit_seconds"].median(),
            "query_seconds_median": runs["query_seconds"].median(),
            # ASAL and GAAL: the generator, fitted once per seed before the first query
            "gan_seconds_median": (runs.groupby("seed")["gan_seconds"].first().median()
                                   if "gan_seconds" in runs else np.nan),
        })
    table = pd.DataFrame(table).set_index("strategy")
    table = table.loc[[s for s in STRATEGIES if s in table.index]]
    table.to_csv(results / "summary.csv", float_format="%.4f")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    (results / "table.rst").write_text(rst_table(table), encoding="utf-8")
    plot(data, results / "learning_curves.png", title)


def rst_table(table):
    """The summary as the reST list-table that docs/deep_methods.rst includes."""
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - strategy", "     - seeds", "     - mean accuracy over the curve (± SE)",
             "     - minus random's, paired by seed (± SE)",
             "     - accuracy at 200 labels", "     - labels to 90 % per seed",
             "     - fit s per cycle (median)", "     - query s per cycle (median)"]
    for strategy, row in table.iterrows():
        lines += [f"   * - ``{strategy}``", f"     - {row['seeds']}",
                  f"     - {row['mean_accuracy']:.3f}{_se(row['mean_accuracy_se'])}",
                  f"     - {row['minus_random']:+.3f}{_se(row['minus_random_se'])}",
                  f"     - {row['final_accuracy']:.3f}", f"     - {row['labels_to_90_per_seed']}",
                  f"     - {row['fit_seconds_median']:.2f}",
                  f"     - {row['query_seconds_median']:.3f}" + (
                      "" if np.isnan(row["gan_seconds_median"])
                      else f" (+ {row['gan_seconds_median']:.0f} s once for the GAN)")]
    return "\n".join(lines) + "\n"


def _se(value):
    return " (one seed)" if np.isnan(value) else f" ± {value:.3f}"


def plot(data, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for strategy in STRATEGIES:
        runs = data[data["strategy"] == strategy]
        if runs.empty:
            continue
        curve = runs.groupby("n_labels")["accuracy"].agg(["mean", "std", "count"])
        se = curve["std"] / np.sqrt(curve["count"])
        ax.plot(curve.index, curve["mean"], label=strategy)
        ax.fill_between(curve.index, curve["mean"] - se, curve["mean"] + se, alpha=0.2)
    ax.axhline(TARGET, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (mean of seeds, ±1 SE)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    parser.add_argument("--data", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--diagnose", action="store_true",
                        help="learning loss's picks per cycle (learning_loss_diagnosis.csv)")
    parser.add_argument("--synthesis-grid", action="store_true",
                        help="draw the pool, PoolGAN and GAAL images of the first seed")
    args = parser.parse_args()
    results = RESULTS / "mnist" if args.data == "mnist" else RESULTS
    if args.synthesis_grid:
        synthesis_grid(args.data, args.seeds[0])
        return
    if args.summary:
        title = ("MNIST (t10k, 2,000-image pool), MLP, batch 10" if args.data == "mnist"
                 else "digits, MLP, batch 10")
        summary(results, title)
        return
    if args.diagnose:
        table = pd.concat([diagnose(seed) for seed in args.seeds], ignore_index=True)
        table.to_csv(RESULTS / "learning_loss_diagnosis.csv", index=False, float_format="%.3f")
        print(table.to_string())
        return
    results.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for strategy in args.strategies:
            path = results / f"{strategy}_seed{seed}.csv"
            if path.exists():
                continue
            start = time.perf_counter()
            curve = run(strategy, seed, args.data)
            curve.to_csv(path, index=False, float_format="%.5f")
            print(f"{strategy} seed {seed}: final accuracy {curve['accuracy'].iloc[-1]:.3f}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
