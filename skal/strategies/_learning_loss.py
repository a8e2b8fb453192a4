"""Learning loss (Yoo & Kweon 2019): query the rows whose loss a loss-prediction module,
trained with the network, predicts to be highest."""

import numpy as np

from skal.strategies._base import PoolScoringStrategy, require


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

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.

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

    _requires = "predict_loss"

    def _score_chunk(self, learner, X_chunk):
        predict_loss = require(learner, "predict_loss", type(self).__name__)
        return np.asarray(predict_loss(X_chunk), dtype=np.float64).reshape(-1)
