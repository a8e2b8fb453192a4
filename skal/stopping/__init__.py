"""Stopping criteria: when are more labels unlikely to help?

Give one (or a list) to a learner as ``stopping=`` and a simulated run stops when any of them
says so (``history_`` records why); in a loop of your own, ask ``learner.should_stop(X_pool)``
after every ``teach``.
"""

from skal.stopping._criteria import (
    ConfidenceDrop,
    StabilizingPredictions,
    StoppingCriterion,
    UncertaintyThreshold,
)

__all__ = [
    "StoppingCriterion",
    "StabilizingPredictions",
    "UncertaintyThreshold",
    "ConfidenceDrop",
]
