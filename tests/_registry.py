"""The registry of public strategies that shared tests run over, and a learner for each."""

import skal.strategies as strategies
from skal import ActiveLearner, CommitteeLearner

STRATEGY_NAMES = [
    name for name in strategies.__all__
    if isinstance(getattr(strategies, name), type)
    and name not in ("QueryStrategy", "PoolScoringStrategy")
]
# Strategies that work before any model exists (usable as initial_strategy).
COLD_START = {"RandomSampling", "CoreSet", "TypiClust", "ProbCover"}
# Strategies that need posterior samples (a committee or an MC-dropout network).
NEEDS_SAMPLES = {"VoteEntropy", "KLDivergence", "ConsensusEntropy", "BALD", "BatchBALD",
                 "StochasticBALD"}


def learner_for(name, **params):
    """A learner that offers what strategy ``name`` needs, with ``params`` set.

    ``n_estimators`` sizes the committee of the strategies that need posterior samples.
    """
    n_estimators = params.pop("n_estimators", 3)
    if name in NEEDS_SAMPLES:
        return CommitteeLearner(n_estimators=n_estimators, random_state=0, **params)
    estimator = None
    if name == "DecisionMargin":
        from sklearn.svm import LinearSVC

        estimator = LinearSVC()
    return ActiveLearner(estimator, random_state=0, **params)
