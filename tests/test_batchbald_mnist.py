"""Smoke test of the BatchBALD MNIST reproduction (examples/batchbald_mnist.py and its
``skal run`` config): a few acquisitions on a small pool with a tiny training budget.

Needs the MNIST t10k IDX files (the ``mnist_dir`` fixture of conftest.py says where it
looks); skipped without them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("skorch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "batchbald_mnist.py"
CONFIG = ROOT / "examples" / "configs" / "batchbald_mnist.toml"
pytestmark = pytest.mark.slow

TINY = ["--pool-size", "200", "--validation-size", "128", "--test-size", "500",
        "--mc-samples", "4", "--epochs", "2", "--epoch-samples", "128", "--max-labels", "40",
        "--joint-samples", "200", "--device", "cpu", "--threads", "1", "--quiet"]


def test_script_runs_acquisitions_and_writes_every_output(tmp_path, mnist_dir):
    out = tmp_path / "out"
    command = [sys.executable, str(SCRIPT), "--mnist", str(mnist_dir), "--output", str(out),
               "--seeds", "0", "--methods", "batchbald", "bald", "random", *TINY]
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("results.csv", "results.json", "labels_to_target.csv", "table.md",
                 "timing.csv", "learning_curves.png"):
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "results.csv")
    assert set(results["learner"]) == {"BatchBALD b=10", "BALD b=10", "random b=10"}
    assert sorted(results["n_labels"].unique()) == [20, 30, 40]
    first = results[results["cycle"] == 0]
    assert first["indices"].nunique() == 1  # one initial set for every method
    acquisitions = results[results["cycle"] > 0]
    sampled = acquisitions[acquisitions["method"] != "random"]
    assert (sampled["mc_seconds"] > 0).all()
    assert (acquisitions[acquisitions["method"] == "random"]["mc_seconds"] == 0).all()
    assert (acquisitions["selection_seconds"] >= 0).all()
    assert (results["epochs"] <= 2).all()
    assert "| BatchBALD b=10 | 1 |" in (out / "table.md").read_text()
    payload = json.loads((out / "results.json").read_text())
    assert payload["options"]["mc_samples"] == 4 and payload["machine"]["device"] == "cpu"
    # A second call finds every run done and only rewrites the summaries.
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and again.stdout.count("skipped") == 3


def test_skal_run_config_runs_a_tiny_variant(tmp_path, capsys, mnist_dir):
    from skal._cli import main

    status = main(["run", "--config", str(CONFIG), "--data", str(mnist_dir), "--budget", "30",
                   "--repeats", "1", "--mc-samples", "4", "--epochs", "1", "--epoch-samples",
                   "64", "--pool-size", "300", "--validation-size", "100", "--strategies",
                   "batchbald", "random", "--device", "cpu", "--quiet", "--output",
                   str(tmp_path / "cli")])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "200 pool rows, 100 validation rows, 2000 test rows" in captured.out
    assert "20 balanced initial" in captured.out

