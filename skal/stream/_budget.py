"""Budget managers for stream-based selective sampling (Žliobaitė et al. 2014, "Active
learning with drifting streaming data"): each sees one utility score at a time and says
whether to buy the label, never spending more than a share ``budget`` of the samples seen."""

import numbers
from abc import ABCMeta, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state


def _check_budget(budget):
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not 0 < budget <= 1:
        raise ValueError(f"budget must be a share in (0, 1], got {budget!r}.")


class BudgetManager(BaseEstimator, metaclass=ABCMeta):
    """Base class: decide label / skip for each incoming utility score within a budget.

    Utilities are a strategy's scores (higher = more informative), e.g.
    :class:`~skal.strategies.LeastConfidence`'s ``1 - max_c p(c | x)``. Subclasses implement
    ``_wants(score, rng) -> bool`` and may update their state in ``_after(score, labelled)``.
    A label is bought only if afterwards ``n_labeled_ <= budget * n_seen_`` (the sample being
    decided counts as seen), so the share of the stream labelled never exceeds ``budget``.

    Attributes
    ----------
    n_seen_ : int
    n_labeled_ : int
    """

    def reset(self, random_state=None):
        """Forget everything seen; start a new stream.

        Returns
        -------
        self : object
        """
        _check_budget(self.budget)
        self._check_params()
        self.n_seen_ = 0
        self.n_labeled_ = 0
        self._rng = check_random_state(random_state)
        self._init_state()
        return self

    def decide(self, scores):
        """Label / skip for each score, in order, updating the manager as it goes.

        Parameters
        ----------
        scores : array-like of shape (n_samples,)

        Returns
        -------
        mask : ndarray of bool of shape (n_samples,)
        """
        if not hasattr(self, "n_seen_"):
            self.reset()
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if np.isnan(scores).any():
            raise ValueError("The utility scores contain NaN.")
        mask = np.zeros(scores.shape[0], dtype=bool)
        for i, score in enumerate(scores):
            self.n_seen_ += 1
            within = self.n_labeled_ + 1 <= self.budget * self.n_seen_ + 1e-9
            label = bool(within and self._wants(score, self._rng))
            if label:
                self.n_labeled_ += 1
            self._after(score, label, within)
            mask[i] = label
        return mask

    @property
    def spent_(self):
        """Share of the samples seen that were labelled."""
        return self.n_labeled_ / max(self.n_seen_, 1)

    def _check_params(self):
        pass

    def _init_state(self):
        pass

    def _after(self, score, labelled, within):
        pass

    @abstractmethod
    def _wants(self, score, rng):
        """Would the manager label a sample of this utility (budget permitting)?"""


class RandomBudget(BudgetManager):
    """Label each sample with probability ``budget``, ignoring its utility (the baseline).

    Parameters
    ----------
    budget : float, default=0.1
        Largest share of the stream to label.
    """

    def __init__(self, budget=0.1):
        self.budget = budget

    def _wants(self, score, rng):
        return rng.random_sample() < self.budget


class FixedUncertainty(BudgetManager):
    """Label every sample whose utility reaches a fixed ``threshold``, budget permitting.

    Žliobaitė et al.'s "fixed uncertainty": with least-confidence utilities, a threshold of
    ``1 - theta`` labels the samples whose top posterior is below ``theta``. On a stream whose
    model grows confident it stops spending its budget.

    Parameters
    ----------
    threshold : float, default=0.1
        Smallest utility labelled.
    budget : float, default=0.1
    """

    def __init__(self, threshold=0.1, budget=0.1):
        self.threshold = threshold
        self.budget = budget

    def _wants(self, score, rng):
        return score >= self.threshold


class VariableUncertainty(BudgetManager):
    """A threshold that adapts so that the budget is spent: Žliobaitė et al.'s "variable
    uncertainty", optionally randomised.

    The paper labels a sample when its top posterior is below ``theta``, then lowers ``theta``
    by a factor ``(1 - step)`` (ask less); otherwise, if the budget allowed, raises it by
    ``(1 + step)`` (ask more). On the utility scale ``u`` with an upper bound ``max_score``
    (1 for least confidence, ``u = 1 - max p``), that is a threshold ``tau = max_score - theta``
    updated as ``max_score - (max_score - tau)(1 -/+ step)``; the same rule serves any score
    with a known upper bound (0 for margin, ``log C`` for entropy). With ``randomize > 0``
    (the paper's randomised variant), each comparison uses ``theta`` times a draw from
    ``N(1, randomize)``, so that samples the model is sure about are sometimes labelled.

    Parameters
    ----------
    threshold : float, default=0.1
        Initial utility threshold ``tau``.
    step : float, default=0.01
        Relative adjustment ``s`` of the threshold.
    max_score : float, default=1.0
        Upper bound of the utilities.
    randomize : float, default=0.0
        Standard deviation ``delta`` of the multiplicative noise on ``theta``.
    budget : float, default=0.1
    """

    def __init__(self, threshold=0.1, step=0.01, max_score=1.0, randomize=0.0, budget=0.1):
        self.threshold = threshold
        self.step = step
        self.max_score = max_score
        self.randomize = randomize
        self.budget = budget

    def _check_params(self):
        if not 0 < self.step < 1:
            raise ValueError(f"step must be in (0, 1), got {self.step!r}.")
        if self.threshold > self.max_score:
            raise ValueError(
                f"threshold={self.threshold} exceeds max_score={self.max_score}."
            )

    def _init_state(self):
        # theta: the distance of the utility threshold below max_score.
        self.theta_ = float(self.max_score - self.threshold)

    @property
    def threshold_(self):
        """The current utility threshold."""
        return self.max_score - self.theta_

    def _wants(self, score, rng):
        theta = self.theta_
        if self.randomize:
            theta = theta * rng.normal(1.0, self.randomize)
        return score >= self.max_score - theta

    def _after(self, score, labelled, within):
        if labelled:
            self.theta_ *= 1.0 - self.step
        elif within:
            self.theta_ *= 1.0 + self.step


class SplitBudget(VariableUncertainty):
    """Split: a share of the stream is labelled at random, the rest by variable uncertainty.

    Žliobaitė et al.'s "split" strategy keeps a random sample of labels (to notice drift
    where the model is confident) next to uncertainty-driven ones: each sample falls in the
    random part with probability ``random_share`` and is then labelled with probability
    ``budget``; otherwise :class:`VariableUncertainty` decides.

    Parameters
    ----------
    random_share : float, default=0.2
        Probability ``nu`` that a sample is decided at random.
    threshold, step, max_score, randomize, budget
        As in :class:`VariableUncertainty`.
    """

    def __init__(self, random_share=0.2, threshold=0.1, step=0.01, max_score=1.0,
                 randomize=0.0, budget=0.1):
        self.random_share = random_share
        self.threshold = threshold
        self.step = step
        self.max_score = max_score
        self.randomize = randomize
        self.budget = budget

    def _check_params(self):
        super()._check_params()
        if not 0 <= self.random_share <= 1:
            raise ValueError(f"random_share must be in [0, 1], got {self.random_share!r}.")

    def _wants(self, score, rng):
        self._random_part = rng.random_sample() < self.random_share
        if self._random_part:
            return rng.random_sample() < self.budget
        return super()._wants(score, rng)

    def _after(self, score, labelled, within):
        if within and not self._random_part:
            super()._after(score, labelled, within)
