"""Simulated active-learning experiments: learning curves, their summaries and plots.

:func:`run_experiment` runs learners (or a grid of strategies x estimators) over repeats with
known labels and returns a tidy :class:`pandas.DataFrame`; :func:`summarize`,
:func:`compare_to_random`, :func:`compare_at_labels`, :func:`aulc` and
:func:`labels_to_target` condense it; the ``plot_*`` functions draw it. The
``skal run`` command is built on them.
:class:`BalancedInitialSet`, :func:`early_stopping_params` and :func:`fixed_length_loader`
reproduce published protocols (the BatchBALD paper's MNIST set-up); :func:`run_tabular_benchmark`
runs Lu, Li & Lin's tabular benchmark (``docs/tabular_benchmark.rst``).
"""

from skal.experiments._plot import plot_labels_to_target, plot_learning_curves
from skal.experiments._recipes import (
    BalancedInitialSet,
    class_balanced_rows,
    early_stopping_params,
    fixed_length_loader,
)
from skal.experiments._simulate import run_experiment
from skal.experiments._summary import (
    aulc,
    compare_at_labels,
    compare_to_random,
    labels_to_target,
    quantiles,
    summarize,
)
from skal.experiments._tabular_benchmark import (
    QueryModel,
    load_benchmark_data,
    protocol_aubc,
    protocol_split,
    run_tabular_benchmark,
    summarize_tabular_benchmark,
)

__all__ = [
    "run_experiment",
    "summarize",
    "compare_to_random",
    "compare_at_labels",
    "aulc",
    "labels_to_target",
    "quantiles",
    "plot_learning_curves",
    "plot_labels_to_target",
    "BalancedInitialSet",
    "class_balanced_rows",
    "early_stopping_params",
    "fixed_length_loader",
    "QueryModel",
    "load_benchmark_data",
    "protocol_split",
    "protocol_aubc",
    "run_tabular_benchmark",
    "summarize_tabular_benchmark",
]
