"""Query strategies: callables ``strategy(learner, X_pool, batch_size) -> indices``.

See :mod:`skal.strategies._base` for the learner <-> strategy protocol.
"""

from skal.strategies._base import PoolScoringStrategy, QueryStrategy, top_k
from skal.strategies._bayesian import (
    BALD,
    BatchBALD,
    StochasticBALD,
    bald_terms,
    greedy_batchbald,
)
from skal.strategies._coldstart import ProbCover, TypiClust
from skal.strategies._committee import ConsensusEntropy, KLDivergence, VoteEntropy
from skal.strategies._contrastive import CAL, OpenSetFilter
from skal.strategies._cost import CostAware
from skal.strategies._density import InformationDensity
from skal.strategies._diversity import BADGE, CoreSet, RankedBatch
from skal.strategies._domain import CLUE
from skal.strategies._error_reduction import ExpectedErrorReduction
from skal.strategies._learning_loss import LearningLoss
from skal.strategies._multilabel import MMC, AdaptiveMultilabel, MultilabelMargin
from skal.strategies._portfolio import ActiveLearningByLearning
from skal.strategies._prediction import EPIG
from skal.strategies._regression import EMCM, GreedySampling, VarianceSampling
from skal.strategies._synthesis import ASAL, GAAL
from skal.strategies._uncertainty import (
    DecisionMargin,
    EntropySampling,
    LeastConfidence,
    MarginSampling,
    RandomSampling,
)
from skal.strategies._vaal import VAAL

__all__ = [
    "QueryStrategy",
    "PoolScoringStrategy",
    "top_k",
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
    "CostAware",
    "ActiveLearningByLearning",
    "EPIG",
    "InformationDensity",
    "ExpectedErrorReduction",
    "CAL",
    "OpenSetFilter",
    "LearningLoss",
    "VAAL",
    "ASAL",
    "CLUE",
    "GAAL",
    "bald_terms",
    "greedy_batchbald",
]
