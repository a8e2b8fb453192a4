"""Before/after table of the BatchBALD MNIST CPU runs around the random-draws fix (issue 18).

Reads the finished reruns in runs/ beside this file and the pre-fix results.csv of
../batchbald_mnist_cpu/, writes before_after.csv and before_after.rst here:

    python docs/results/batchbald_mnist_cpu_rerun/compare.py
"""

import glob
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OLD = pd.read_csv(HERE.parent / "batchbald_mnist_cpu" / "results.csv")


def labels_to(run, target):
    reached = run.n_labels[run.score >= target]
    return int(reached.min()) if len(reached) else None


def near_previous_share(run):
    """Share of picks within two rows of a pick of the batch before."""
    batches = [np.array(list(map(int, s.split()))) for s in run.indices[1:]]
    near = [np.mean(np.min(np.abs(b[:, None] - a[None, :]), axis=1) <= 2)
            for a, b in zip(batches[:-1], batches[1:], strict=True)]
    return float(np.mean(near))


def cell(value):
    return "–" if value is None else str(value)


rows = []
for path in sorted(glob.glob(str(HERE / "runs" / "*.csv"))):
    new = pd.read_csv(path)
    method, seed = new.method.iloc[0], int(new.seed.iloc[0])
    old = OLD[(OLD.method == method) & (OLD.seed == seed)]
    rows.append({
        "method": method, "seed": seed,
        "mean_acc_before": old.score.mean(), "mean_acc_after": new.score.mean(),
        "to90_before": labels_to(old, 0.90), "to90_after": labels_to(new, 0.90),
        "to95_before": labels_to(old, 0.95), "to95_after": labels_to(new, 0.95),
        "final_before": old.score.iloc[-1], "final_after": new.score.iloc[-1],
        "near_previous_before": near_previous_share(old),
        "near_previous_after": near_previous_share(new),
    })
pd.DataFrame(rows).to_csv(HERE / "before_after.csv", index=False)

lines = [".. list-table::", "   :header-rows: 1", "",
         "   * - method, seed", "     - mean accuracy over the run",
         "     - labels to 90 %", "     - labels to 95 %", "     - accuracy at 300 labels",
         "     - picks within 2 rows of the last batch's"]
for r in rows:
    lines += [f"   * - {r['method']} b=10, seed {r['seed']}",
              f"     - {r['mean_acc_before']:.4f} → {r['mean_acc_after']:.4f}",
              f"     - {cell(r['to90_before'])} → {cell(r['to90_after'])}",
              f"     - {cell(r['to95_before'])} → {cell(r['to95_after'])}",
              f"     - {r['final_before']:.4f} → {r['final_after']:.4f}",
              f"     - {r['near_previous_before']:.1%} → {r['near_previous_after']:.1%}"]
(HERE / "before_after.rst").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
