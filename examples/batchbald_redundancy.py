"""How much does top-10 BALD lose to BatchBALD, and does it depend on the pool's size?

A check behind ``docs/batchbald_mnist.rst``. Its reduced CPU run used a 2,000-image pool, and
there BALD b=10 did about as well as BatchBALD, unlike in the paper (a 60,000-image pool). The
explanation offered there: top-10 BALD wastes a batch on near-copies of one ambiguous image, and
a small pool holds fewer near-copies. This script measures that directly, without a whole
active-learning run: the paper's CNN is trained on a few labels, K consistent MC-dropout
samples are drawn once over the full 6,976-image pool (the 2,000-image pool of the CPU run is
a subset of it, so both pools see the same K networks), and on each pool it compares

* the top-10 BALD batch and the BatchBALD batch (greedy, as :class:`skal.strategies.BatchBALD`),
* by their joint mutual information ``I(y_1, ..., y_10; w)``, estimated for both batches by
  the same plain Monte Carlo estimator (``--configurations`` label configurations drawn from
  the K-sample posterior, independent of BatchBALD's own estimate), with its standard error,
* and by how many digits each batch spans.

If the explanation holds, BALD's share of BatchBALD's information is smaller on the larger
pool. K=100 is the paper's; K=20 (the first 20 of the same samples) is the CPU run's.

Usage (about 5 minutes per labelled set on 2 CPU cores)::

    python examples/batchbald_redundancy.py --output /tmp/redundancy
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import batchbald_mnist  # noqa: E402  (the data split and the network of the reproduction)

from skal.experiments import class_balanced_rows  # noqa: E402
from skal.strategies import bald_terms, greedy_batchbald, top_k  # noqa: E402


def joint_mutual_information(samples, batch, n_configurations, rng):
    """Monte Carlo estimate of ``I(y_batch; w)`` in nats, and its standard error.

    ``H(y_batch) - sum_i E_w H(y_i | w)``; the joint entropy is ``-E log p(y)`` over label
    configurations ``y`` drawn from the posterior mixture (a sample ``k``, then every
    ``y_i ~ p_k(y_i)``), with ``p(y) = mean_k prod_i p_k(y_i)`` computed exactly.
    """
    proba = np.asarray(samples[:, batch, :], dtype=np.float64)  # (K, b, C)
    n_samples, size, n_classes = proba.shape
    which = rng.randint(n_samples, size=n_configurations)
    cumulative = proba[which].cumsum(axis=2)  # (M, b, C)
    draws = (rng.random_sample((n_configurations, size, 1)) > cumulative).sum(axis=2)
    draws = np.minimum(draws, n_classes - 1)  # (M, b): the configurations
    log_proba = np.log(np.maximum(proba, 1e-300))
    # log p_k(y) for every configuration and sample: sum over the batch of log p_k(y_i).
    per_sample = log_proba[:, np.arange(size), draws].sum(axis=2).T  # (M, K)
    log_marginal = logsumexp(per_sample, axis=1) - np.log(n_samples)
    joint_entropy = -log_marginal.mean()
    expected = bald_terms(proba)[1].sum()
    return joint_entropy - expected, log_marginal.std(ddof=1) / np.sqrt(n_configurations)


def train(args, data, n_labels, seed, exclude):
    """The paper's CNN (early stopping and all) on a balanced 20 plus random rows."""
    X_pool, y_pool, X_valid, y_valid, _, _ = data
    rng = np.random.RandomState(seed)
    allowed = np.setdiff1d(np.arange(len(y_pool)), exclude)
    initial = allowed[class_balanced_rows(y_pool[allowed], args.initial_per_class, rng)]
    rest = rng.choice(np.setdiff1d(allowed, initial), n_labels - len(initial), replace=False)
    labelled = np.concatenate([initial, rest])
    net = batchbald_mnist.make_net(args, X_valid, y_valid, args.device)
    net.set_params(random_state=seed)
    net.fit(X_pool[labelled], y_pool[labelled])
    return net, labelled


def compare(samples, candidates, y_pool, args, rng):
    """Top-10 BALD against BatchBALD over the candidate rows; one dict of results."""
    pool_samples = samples[:, candidates, :]
    bald, _ = bald_terms(pool_samples)
    top = top_k(bald, args.batch_size, rng)  # what BALD() picks
    chosen, gains = greedy_batchbald(
        pool_samples, args.batch_size, n_joint_samples=args.joint_samples, random_state=rng,
    )
    row = {}
    for name, batch in (("bald", top), ("batchbald", chosen)):
        info, error = joint_mutual_information(pool_samples, batch, args.configurations, rng)
        row[f"{name}_joint_mi"] = info
        row[f"{name}_se"] = error
        row[f"{name}_sum_bald"] = float(bald[batch].sum())
        row[f"{name}_digits"] = int(np.unique(y_pool[candidates[batch]]).size)
    row["batchbald_greedy_gains"] = float(np.sum(gains))
    row["bald_share"] = row["bald_joint_mi"] / row["batchbald_joint_mi"]
    return row


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--mnist", default=str(batchbald_mnist.DEFAULT_MNIST))
    parser.add_argument("--output", default="batchbald-redundancy")
    parser.add_argument("--labels", type=int, nargs="+", default=[20, 100],
                        help="labelled-set sizes to train on (20 = the balanced initial set)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--mc-samples", type=int, nargs="+", default=[20, 100],
                        help="K values; the largest is drawn, the others are its first K")
    parser.add_argument("--small-pool", type=int, default=2000,
                        help="the CPU run's pool size (a seeded subset of the full pool)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--joint-samples", type=int, default=10000)
    parser.add_argument("--configurations", type=int, default=20000,
                        help="label configurations of the Monte Carlo joint-MI estimate")
    parser.add_argument("--epochs", type=int, default=30, help="at most, per training")
    parser.add_argument("--epoch-samples", type=int, default=5056)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    # The rest of what make_net and load_split read: the reproduction's protocol.
    defaults = batchbald_mnist.parse_args([])
    for name in ("test_size", "validation_size", "split_seed", "initial_per_class",
                 "patience", "lr", "inference_batch_size"):
        setattr(args, name, getattr(defaults, name))
    args.pool_size = None
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = batchbald_mnist.load_split(args)
    y_pool = data[1]
    small = batchbald_mnist.pool_subset(len(y_pool), args.small_pool, args.split_seed)
    rng = np.random.RandomState(0)
    rows = []
    for seed in args.seeds:
        for n_labels in args.labels:
            net, labelled = train(args, data, n_labels, seed, exclude=small)
            samples = net.predict_proba_samples(data[0], n_samples=max(args.mc_samples))
            accuracy = float(net.score(data[4], data[5]))
            pools = {
                "small": small,
                "full": np.setdiff1d(np.arange(len(y_pool)), labelled),
            }
            for k in sorted(args.mc_samples):
                for pool, candidates in pools.items():
                    pool_size = len(candidates)
                    row = {"seed": seed, "n_labels": n_labels, "test_accuracy": accuracy,
                           "K": k, "pool": pool, "pool_size": pool_size}
                    row.update(compare(samples[:k], candidates, y_pool, args, rng))
                    rows.append(row)
                    print(
                        f"seed {seed}, {n_labels} labels (acc {accuracy:.3f}), K={k}, pool "
                        f"{pool_size}: joint MI BALD-10 {row['bald_joint_mi']:.3f} vs "
                        f"BatchBALD {row['batchbald_joint_mi']:.3f} nats "
                        f"(share {row['bald_share']:.2f}); digits {row['bald_digits']} vs "
                        f"{row['batchbald_digits']}",
                        flush=True,
                    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "redundancy.csv", index=False)
    (out / "options.json").write_text(json.dumps(vars(args), indent=2, default=str))
    summary = table.groupby(["n_labels", "K", "pool"])[
        ["bald_joint_mi", "batchbald_joint_mi", "bald_share", "bald_digits", "batchbald_digits"]
    ].mean()
    print(summary.round(3).to_string())
    return table


if __name__ == "__main__":
    main()
