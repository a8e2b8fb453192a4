"""Cost-aware selection: benefit per unit of annotation cost."""

from skal._validation import label_costs_of
from skal.strategies._base import (
    TARGET_KINDS,
    PoolScoringStrategy,
    QueryStrategy,
    check_target_kind,
    require,
    top_k,
)
from skal.strategies._uncertainty import MarginSampling


class CostAware(QueryStrategy):
    """Pick the rows with the most benefit per unit of labelling cost.

    The benefit of a pool row is its score under ``strategy``, shifted so that the pool's
    least informative row has benefit 0 (strategies score on different scales, some
    negative); the selection score is ``benefit / cost`` (return on investment, Settles,
    Craven & Friedland 2008). Costs come from ``label_cost`` or, when it is ``None``, from
    the learner's ``label_costs`` (its own ``label_cost`` parameter), so that one setting
    serves the budget and the strategy.

    Parameters
    ----------
    strategy : PoolScoringStrategy, default=None
        The benefit; ``None`` means ``MarginSampling()``.
    label_cost : str, int, callable or None, default=None
        A column of ``X_pool`` or a callable ``X_rows -> costs``; ``None`` asks the learner.
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal ratios.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skal.strategies import CostAware
    >>> X = np.array([[-2.0], [-0.1], [0.1], [2.0]])
    >>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
    >>> # rows 1 and 2 are equally uncertain; row 2 is ten times as expensive
    >>> CostAware(label_cost=lambda rows: np.where(rows[:, 0] > 0, 10.0, 1.0))(model, X, 1)
    array([1])
    """

    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "strategy": [PoolScoringStrategy, None],
        "label_cost": [str, "array-like", callable, None],
    }
    _target_kinds = frozenset(TARGET_KINDS)  # those of the wrapped strategy, checked below

    def __init__(self, strategy=None, label_cost=None, random_state=None):
        self.strategy = strategy
        self.label_cost = label_cost
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        strategy = MarginSampling() if self.strategy is None else self.strategy
        check_target_kind(strategy, learner)
        # fails first, naming the wrapper, on an unfitted model or a missing capability
        require(learner, strategy._requires, f"{type(self).__name__}({type(strategy).__name__})")
        scores = strategy.score(learner, X_pool)
        if self.label_cost is None:
            costs = require(learner, "label_costs", type(self).__name__)(X_pool)
        else:
            costs = label_costs_of(self.label_cost, X_pool, "label_cost")
        ratio = (scores - scores.min()) / costs
        indices = top_k(ratio, batch_size, random_state)
        return indices, ratio[indices]
