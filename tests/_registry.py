"""The registry of public strategies that shared tests run over, a learner for each, and
targets of the kind each one handles."""

import numpy as np
import pytest

import skal.strategies as strategies
from skal import ActiveLearner, ActiveRegressor, CommitteeLearner, CommitteeRegressor

STRATEGY_NAMES = [
    name for name in strategies.__all__
    if isinstance(getattr(strategies, name), type)
    and issubclass(getattr(strategies, name), strategies.QueryStrategy)
    and name not in ("QueryStrategy", "PoolScoringStrategy")
]
# Strategies that work before any model exists (usable as initial_strategy).
COLD_START = {"RandomSampling", "CoreSet", "TypiClust", "ProbCover"}
# Strategies that need posterior samples (a committee or an MC-dropout network).
NEEDS_SAMPLES = {"VoteEntropy", "KLDivergence", "ConsensusEntropy", "BALD", "BatchBALD",
                 "StochasticBALD", "EMCM", "EPIG"}
# The kind of target each strategy is for; the others are for single-label classification.
# RandomSampling, CoreSet, TypiClust and ProbCover take any target and are tested with
# class labels here.
REGRESSION = {"VarianceSampling", "EMCM", "GreedySampling"}
# Strategies that train a network of their own at the first query (a second or more each),
# or whose learner is a network fitted at every cycle (LearningLoss): the random-input runs of
# a whole learner take them in the slow set only.
TRAINS_A_NETWORK = {"ASAL", "LearningLoss"}
MULTILABEL = {"MultilabelMargin", "MMC", "AdaptiveMultilabel"}
# Strategies that need a network with a loss-prediction module (LearningLossClassifier).
NEEDS_LOSS_PREDICTION = {"LearningLoss"}
# Strategies that ask the learner for no prediction, only for its labelled rows.
TASK_AGNOSTIC = {"VAAL"}
# Parameters that keep a strategy's shared tests fast (networks trained at every query).
FAST_PARAMS = {"VAAL": {"latent_dim": 2, "hidden_units": 4, "max_epochs": 1}}


def strategy_for(name, **params):
    """Strategy ``name`` with ``params``, over its :data:`FAST_PARAMS`."""
    return getattr(strategies, name)(**{**FAST_PARAMS.get(name, {}), **params})


def learner_for(name, **params):
    """A learner that offers what strategy ``name`` needs, with ``params`` set.

    ``n_estimators`` sizes the committee of the strategies that need posterior samples.
    Regressors mark unlabelled rows with -1, as the classifiers do, so that one ``y`` made
    by :func:`targets_for` serves every test.
    """
    n_estimators = params.pop("n_estimators", 3)
    if name in REGRESSION:
        params.setdefault("missing_label", -1)
        if name in NEEDS_SAMPLES:
            return CommitteeRegressor(n_estimators=n_estimators, random_state=0, **params)
        return ActiveRegressor(random_state=0, **params)
    if name in NEEDS_SAMPLES:
        return CommitteeLearner(n_estimators=n_estimators, random_state=0, **params)
    if name in NEEDS_LOSS_PREDICTION:
        from skal.nets import LearningLossClassifier

        net = LearningLossClassifier(module__hidden_units=(8,), loss_hidden_units=4,
                                     max_epochs=1, batch_size=16, random_state=0)
        return ActiveLearner(net, random_state=0, **params)
    estimator = None
    if name == "DecisionMargin":
        from sklearn.svm import LinearSVC

        estimator = LinearSVC()
    if name in MULTILABEL:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        estimator = OneVsRestClassifier(LogisticRegression())
    return ActiveLearner(estimator, random_state=0, **params)


def targets_for(name, y, X=None):
    """Class labels ``y`` (-1 = unlabelled) turned into the targets strategy ``name`` is for.

    Regression: the labels as floats (-1 stays the missing mark). Multi-label: an indicator
    matrix with a column per class plus one from the sign of ``X[:, 0]`` (or the row parity),
    unlabelled rows -1 in every column.
    """
    y = np.asarray(y)
    if name in REGRESSION:
        return y.astype(np.float64)
    if name not in MULTILABEL:
        return y
    classes = np.unique(y[y != -1])
    extra = (np.arange(len(y)) % 2) if X is None else (np.asarray(X)[:, 0] > 0)
    Y = np.column_stack([y == c for c in classes] + [extra]).astype(int)
    Y[y == -1] = -1
    return Y


def slow_if_training(names):
    """``names`` as pytest parameters, those in ``TRAINS_A_NETWORK`` marked slow."""
    return [pytest.param(name, marks=pytest.mark.slow) if name in TRAINS_A_NETWORK else name
            for name in names]
