"""skal: active learning as first-class scikit-learn estimators.

``import skal`` never imports torch; the deep-learning parts load it on first use.
"""

from skal.learners import ActiveLearner, CommitteeLearner
from skal.strategies import (
    BADGE,
    BALD,
    ActiveLearningByLearning,
    BatchBALD,
    ConsensusEntropy,
    CoreSet,
    DecisionMargin,
    EntropySampling,
    KLDivergence,
    LeastConfidence,
    MarginSampling,
    ProbCover,
    RandomSampling,
    RankedBatch,
    StochasticBALD,
    TypiClust,
    VoteEntropy,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ActiveLearner",
    "CommitteeLearner",
    "RandomSampling",
    "LeastConfidence",
    "MarginSampling",
    "EntropySampling",
    "DecisionMargin",
    "VoteEntropy",
    "KLDivergence",
    "ConsensusEntropy",
    "CoreSet",
    "BADGE",
    "RankedBatch",
    "TypiClust",
    "ProbCover",
    "BALD",
    "BatchBALD",
    "StochasticBALD",
    "ActiveLearningByLearning",
]
