"""Learning loss (Yoo & Kweon 2019): query the rows whose loss a loss-prediction module,
trained with the network, predicts to be highest."""

import functools
import numbers

import numpy as np
from sklearn.utils._param_validation import Interval

from skal.strategies._base import (
    PoolScoringStrategy,
    QueryStrategy,
    position_gumbel,
    require,
    tie_break_salt,
)


class LearningLoss(PoolScoringStrategy):
    """Select the rows with the highest predicted loss (Yoo & Kweon 2019).

    The learner's network carries a loss-prediction module trained jointly with it (use
    :class:`skal.nets.LearningLossClassifier` as the estimator); the strategy asks the
    learner's ``predict_loss`` for every pool row and takes the ``batch_size`` highest, as
    the paper does ("the data points with the top-K predicted losses are labelled"). The
    predictions are ranks learnt by a ranking loss, not calibrated losses: only their
    order counts.

    A learner without ``predict_loss`` is a ``TypeError`` at query time; an unfitted one (a
    cold start) a ``NotFittedError``: learning loss needs a trained network, so start with
    ``initial_strategy=RandomSampling()`` (the paper starts from 1,000 random labels).

    The paper ranks a random subset of the pool (10,000 of CIFAR-10's 50,000 images) rather
    than all of it, which is cheaper and spreads the picks: the rows of highest predicted loss
    are often alike. ``candidate_fraction`` does so: each pool row is a candidate with that
    probability (a draw keyed by its position and the query's random stream, so a dask pool
    gives the in-memory picks), and the top ``batch_size`` candidates are taken (the other
    rows only if there are too few).

    Parameters
    ----------
    candidate_fraction : float in (0, 1] or None, default=None
        The share of the pool drawn as candidates at each query (0.2 is the paper's ratio);
        ``None`` ranks the whole pool.
    random_state : int, RandomState instance or None, default=None
        Draws the candidates and breaks ties between equal scores.

    References
    ----------
    D. Yoo and I. S. Kweon, "Learning Loss for Active Learning", CVPR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skal import ActiveLearner
    >>> from skal.nets import LearningLossClassifier
    >>> from skal.strategies import LearningLoss
    >>> X, y = load_digits(return_X_y=True)
    >>> y_partial = np.where(np.arange(len(y)) < 100, y, -1)
    >>> net = LearningLossClassifier(max_epochs=5, random_state=0)
    >>> learner = ActiveLearner(net, LearningLoss(random_state=0), random_state=0)
    >>> learner.fit(X / 16, y_partial).query(X[100:] / 16, batch_size=5).shape
    (5,)
    """

    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "candidate_fraction": [Interval(numbers.Real, 0, 1, closed="right"), None],
    }
    _requires = "predict_loss"

    def __init__(self, candidate_fraction=None, random_state=None):
        self.candidate_fraction = candidate_fraction
        self.random_state = random_state

    def _score_chunk(self, learner, X_chunk):
        predict_loss = require(learner, "predict_loss", type(self).__name__)
        return np.asarray(predict_loss(X_chunk), dtype=np.float64).reshape(-1)

    def _ranking(self, random_state):
        if self.candidate_fraction is None or self.candidate_fraction >= 1:
            return None
        return functools.partial(_candidates_first, fraction=float(self.candidate_fraction),
                                 salt=tie_break_salt(random_state))


def _candidates_first(scores, positions, fraction, salt):
    """The scores of the candidate rows (drawn with probability ``fraction``, keyed by
    position); ``-inf`` for the others."""
    # a keyed uniform u is below the fraction f exactly when its Gumbel -log(-log u) is
    # below -log(-log f)
    candidate = position_gumbel(salt, positions) < -np.log(-np.log(fraction))
    return np.where(candidate, scores, -np.inf)
