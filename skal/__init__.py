"""skal: active learning as first-class scikit-learn estimators.

``import skal`` never imports torch; the deep-learning parts load it on first use.
"""

from skal.learners import ActiveLearner, ActiveRegressor, CommitteeLearner, CommitteeRegressor
from skal.strategies import (
    BADGE,
    BALD,
    EMCM,
    EPIG,
    MMC,
    ActiveLearningByLearning,
    AdaptiveMultilabel,
    BatchBALD,
    ConsensusEntropy,
    CoreSet,
    DecisionMargin,
    EntropySampling,
    ExpectedErrorReduction,
    GreedySampling,
    InformationDensity,
    KLDivergence,
    LeastConfidence,
    MarginSampling,
    MultilabelMargin,
    ProbCover,
    RandomSampling,
    RankedBatch,
    StochasticBALD,
    TypiClust,
    VarianceSampling,
    VoteEntropy,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ActiveLearner",
    "ActiveRegressor",
    "CommitteeLearner",
    "CommitteeRegressor",
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
    "VarianceSampling",
    "EMCM",
    "GreedySampling",
    "MultilabelMargin",
    "MMC",
    "AdaptiveMultilabel",
    "ActiveLearningByLearning",
    "EPIG",
    "InformationDensity",
    "ExpectedErrorReduction",
]
