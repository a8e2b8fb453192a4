"""The redundancy check of the BatchBALD reproduction (examples/batchbald_redundancy.py): its
joint mutual information estimator against exact enumeration, and a tiny run on MNIST when
the files are there."""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "batchbald_redundancy.py"


@pytest.fixture(scope="module")
def redundancy():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import batchbald_redundancy
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return batchbald_redundancy


def exact_joint_mutual_information(proba, batch):
    """H(y_batch) by enumerating all C^b configurations, minus the expected entropies."""
    sub = proba[:, batch, :]
    joint = 0.0
    for configuration in itertools.product(range(sub.shape[2]), repeat=len(batch)):
        p = np.mean(np.prod(sub[:, np.arange(len(batch)), configuration], axis=1))
        joint -= p * np.log(p)
    conditional = -(sub * np.log(sub)).sum(axis=2).mean(axis=0).sum()
    return joint - conditional


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_joint_mutual_information_matches_enumeration(redundancy, seed):
    rng = np.random.RandomState(seed)
    proba = rng.dirichlet(np.full(3, 0.5), size=(6, 5))  # K=6 samples, 5 rows, 3 classes
    batch = np.array([0, 2, 4])
    exact = exact_joint_mutual_information(proba, batch)
    estimate, error = redundancy.joint_mutual_information(
        proba, batch, 100_000, np.random.RandomState(0)
    )
    assert error < 0.01
    assert abs(estimate - exact) < 4 * error


def test_copies_of_a_row_add_nothing_when_each_network_is_certain(redundancy):
    # Every posterior sample is certain (one-hot) but they disagree: a copy's label equals the
    # original's under every sample, so three copies hold exactly the single row's BALD.
    rng = np.random.RandomState(0)
    proba = np.eye(4)[rng.randint(4, size=8)][:, None, :].repeat(3, axis=1)  # K=8, 3 copies
    proba = np.clip(proba, 1e-12, None)
    single = exact_joint_mutual_information(proba, np.array([0]))
    estimate, error = redundancy.joint_mutual_information(
        proba, np.arange(3), 50_000, np.random.RandomState(1)
    )
    assert single > 0.5
    assert abs(estimate - single) < 4 * error + 1e-6


@pytest.mark.slow
def test_script_compares_both_pools(tmp_path, mnist_dir):
    pytest.importorskip("skorch")
    out = tmp_path / "out"
    command = [sys.executable, str(SCRIPT), "--mnist", str(mnist_dir), "--output", str(out),
               "--labels", "20", "--mc-samples", "3", "5", "--small-pool", "300",
               "--epochs", "2", "--epoch-samples", "128", "--configurations", "2000",
               "--joint-samples", "200", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(out / "redundancy.csv")
    assert sorted(table["K"].unique()) == [3, 5]
    assert sorted(table["pool"].unique()) == ["full", "small"]
    assert sorted(table["pool_size"].unique()) == [300, 6956]
    # Neither batch can hold more information than log K nats, the posterior's entropy.
    for column in ("bald_joint_mi", "batchbald_joint_mi"):
        error = table[column.replace("joint_mi", "se")]
        assert (table[column] <= np.log(table["K"]) + 4 * error).all()
        assert (table[column] > 0).all()
    assert (table["bald_digits"] >= 1).all() and (table["batchbald_digits"] <= 10).all()
