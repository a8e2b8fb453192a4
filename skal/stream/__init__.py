"""Stream-based selective sampling: a learner that sees one sample at a time and decides,
under a labelling budget, whether to buy its label."""

from skal.stream._budget import (
    BudgetManager,
    FixedUncertainty,
    RandomBudget,
    SplitBudget,
    VariableUncertainty,
)
from skal.stream._learner import StreamLearner, simulate_stream

__all__ = [
    "StreamLearner",
    "simulate_stream",
    "BudgetManager",
    "FixedUncertainty",
    "VariableUncertainty",
    "SplitBudget",
    "RandomBudget",
]
