"""Online strategy selection: a portfolio of query strategies and a bandit that learns, from
the labels it gets, which of them to follow (Active Learning by Learning, Hsu & Lin 2015).

How it fits the protocol of :mod:`skal.strategies._base`:

- Rule 4: besides what its member strategies ask for, it asks the learner for ``predict``
  (the reward is the accuracy of the current model) and reads ``X_labeled_``/``y_labeled_``
  to find the labels of the rows it picked: it keeps those rows and looks them up there, so
  it works in budget mode and with ``query``/``teach`` alike, and needs nothing new from the
  learner. A picked row it cannot find (the user taught other rows, or rows that compare
  unequal to themselves such as NaN) simply earns no reward.
- Rule 5: every draw comes from the per-query generator of ``random_state``.
- The bandit's state lives on the strategy object the learner holds (``learner.query_strategy_``,
  a clone made at ``fit``), and its choices are fitted attributes of that object
  (``history_``, ``arm_probabilities_``, ``arm_share_``), not rows of the learner's
  ``history_``, whose entries the learner alone writes. A ``LabelingSession`` refits a fresh
  clone of the learner every round, so there the portfolio starts over each round (it then
  mixes its members' picks with equal weights and uniform exploration) and does not learn
  across rounds.
"""

import math
import numbers

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import Interval

from skal._validation import concat_rows
from skal.strategies._base import QueryStrategy, num_rows, require, take_rows
from skal.strategies._uncertainty import DecisionMargin, MarginSampling, RandomSampling

_MAX_SEED = np.iinfo(np.int32).max
# Draws of already-labelled rows allowed per pick before the draw is restricted to the pool;
# each such draw has probability at most 1/2, so this bound is never met in practice.
_MAX_FREE_DRAWS = 200


class ActiveLearningByLearning(QueryStrategy):
    """Learn online which strategy of a portfolio to follow (ALBL, Hsu & Lin, AAAI 2015).

    Every member strategy recommends a pool row (its top pick; :class:`RandomSampling`
    recommends the uniform distribution over the pool). The EXP4.P bandit (Beygelzimer et al.
    2011) mixes the recommendations with weights ``w_m`` and with uniform exploration::

        p(x) = (1 - K p_min) * sum_m w_m advice_m(x) / sum_m w_m + p_min

    over ``K`` actions: the pool rows and the rows the strategy picked before. A row is drawn
    from ``p``; a row picked before is already labelled, so it is "queried" for free (it
    counts in the reward below, no label is spent) and the draw is repeated until a pool row
    comes up. After its label is learnt, the reward is the importance-weighted accuracy of
    the learner's current model on every row drawn so far::

        reward = sum_tau W_tau [f(x_tau) = y_tau] / (n T),   W_tau = 1 / p_tau(x_tau)

    with ``n`` the number of rows (labelled and pool) at the first query and ``T`` the
    ``horizon``: an unbiased estimate of the model's accuracy on all ``n`` rows, scaled by
    ``t / T``. EXP4.P then raises the log-weight of each member by
    ``p_min / 2 * (advice_m(x) reward / p(x) + v_m sqrt(ln(N / delta) / (K T)))`` with
    ``v_m = sum_x advice_m(x) / p(x)``.

    A batch of ``b`` rows is ``b`` draws without replacement (each member recommending its
    best row not drawn yet); each pick of the batch earns the reward of the model trained
    after the batch.

    Parameters
    ----------
    strategies : list of query strategies, default=None
        The portfolio (at least one). ``None`` means ``[RandomSampling(), MarginSampling()]``,
        or :class:`DecisionMargin` instead of margin sampling when the learner has no
        ``predict_proba``. Members with ``random_state=None`` are seeded from this
        strategy's ``random_state``.
    p_min : float, default=None
        Probability of each action under uniform exploration. ``None`` means EXP4.P's
        ``sqrt(ln N / (K T))`` for ``N`` members. Capped at ``1 / (2 K)`` at every query, so
        that the members decide at least half of every draw.
    delta : float, default=0.1
        EXP4.P's confidence parameter (``ln(N / delta)`` in the exploration bonus).
    horizon : int, default=None
        ``T``, the number of queries the run is expected to make. ``None`` means the pool
        size at the first query (the whole pool gets labelled, as in budget mode with the
        whole pool as budget); set it to the budget when labelling stops earlier.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws and the members.

    Attributes
    ----------
    strategies_ : list of query strategies
        The members in use (clones, seeded).
    arm_probabilities_ : ndarray of shape (n_queries, n_members)
        The members' normalised weights ``w_m / sum w`` at every query.
    history_ : list of dict
        One entry per pick: ``query`` (query number), ``index`` (row of that query's pool),
        ``probability`` (``p`` of the row when drawn), ``recommended_by`` (class names of
        the members that recommended it: whose top row it was, and the uniform ones),
        ``free_draws``
        (labelled rows drawn before it) and ``reward`` (the reward it earned, ``None`` until
        its label is learnt).
    arm_share_ : ndarray of shape (n_members,)
        Fraction of the picks each member recommended (a uniform member counts ``1/K``).

    References
    ----------
    W.-N. Hsu and H.-T. Lin, "Active Learning by Learning", AAAI 2015.
    A. Beygelzimer, J. Langford, L. Li, L. Reyzin and R. Schapire, "Contextual bandit
    algorithms with supervised learning guarantees", AISTATS 2011.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skal import ActiveLearner, CoreSet, MarginSampling, RandomSampling
    >>> from skal.strategies import ActiveLearningByLearning
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> albl = ActiveLearningByLearning([RandomSampling(), MarginSampling(), CoreSet()])
    >>> learner = ActiveLearner(make_pipeline(StandardScaler(), LogisticRegression()), albl,
    ...                         budget=60, batch_size=5, random_state=0).fit(X, y)
    >>> learner.query_strategy_.arm_probabilities_.shape
    (10, 3)
    """

    _parameter_constraints = {
        "strategies": [list, tuple, None],
        "p_min": [Interval(numbers.Real, 0, 1, closed="right"), None],
        "delta": [Interval(numbers.Real, 0, None, closed="neither")],
        "horizon": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }
    # The reward is an accuracy: classification targets only.
    _target_kinds = ("classification",)

    def __init__(self, strategies=None, *, p_min=None, delta=0.1, horizon=None,
                 random_state=None):
        self.strategies = strategies
        self.p_min = p_min
        self.delta = delta
        self.horizon = horizon
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        members = self.strategies or []
        tags.input_tags.sparse = not any(
            getattr(member, "_needs_dense_embedding", False) for member in members
        )
        return tags

    @property
    def arm_share_(self):
        """Fraction of the picks each member recommended."""
        if not getattr(self, "_advice_log", None):
            return np.zeros(len(getattr(self, "strategies_", ())))
        return np.mean(self._advice_log, axis=0)

    # ------------------------------------------------------------------ the query
    def _select(self, learner, X_pool, batch_size, random_state):
        name = type(self).__name__
        predict = require(learner, "predict", name)
        n_pool = num_rows(X_pool)
        if not hasattr(self, "strategies_"):
            self._start(learner, n_pool, random_state)
        self._iw_correct = None  # the model may have been refitted since the last query
        self._learn_rewards(learner, predict)
        weights = self._normalised_weights()
        self.arm_probabilities_ = np.vstack([self.arm_probabilities_, weights])
        rankings = self._rankings(learner, X_pool, batch_size)

        n_free = len(self._picked_y)
        taken = np.zeros(n_pool, dtype=bool)
        picked, probabilities = [], []
        query = self.arm_probabilities_.shape[0] - 1
        for _ in range(batch_size):
            n_left = int((~taken).sum())
            n_actions = n_left + n_free
            p_min = min(self._p_min, 0.5 / n_actions)
            # advice[m, a]: member m's distribution over the actions, pool rows first (in
            # pool order, taken ones dropped), then the labelled rows picked before.
            left = np.flatnonzero(~taken)
            advice = np.zeros((len(self.strategies_), n_actions))
            for m, ranking in enumerate(rankings):
                if ranking is None:  # a uniform member
                    advice[m, :n_left] = 1.0 / n_left
                else:
                    top = next(i for i in ranking if not taken[i])
                    advice[m, np.searchsorted(left, top)] = 1.0
            p = _mix(weights, advice, p_min)
            free_draws = 0
            action = int(random_state.choice(n_actions, p=p))
            while action >= n_left and free_draws < _MAX_FREE_DRAWS:
                # A labelled row: no label spent, but it enters the reward's sample.
                free_draws += 1
                row = action - n_left
                self._add_iw_sample(take_rows(self._picked_X, [row]), self._picked_y[row],
                                    1 / p[action])
                self._credit(advice[:, action], p[action], advice, p, p_min,
                             self._reward(predict))
                weights = self._normalised_weights()
                p = _mix(weights, advice, p_min)
                action = int(random_state.choice(n_actions, p=p))
            if action >= n_left:  # the free-draw bound was met: draw among the pool
                action = int(random_state.choice(n_left, p=p[:n_left] / p[:n_left].sum()))
            index = int(left[action])
            taken[index] = True
            picked.append(index)
            probabilities.append(float(p[action]))
            entry = {
                "query": query,
                "index": index,
                "probability": float(p[action]),
                "recommended_by": [self._names[m] for m in range(len(self.strategies_))
                                   if advice[m, action] > 0],
                "free_draws": free_draws,
                "reward": None,
            }
            self.history_.append(entry)
            self._advice_log.append(advice[:, action].copy())
            self._pending.append({
                "row": take_rows(X_pool, [index]), "entry": entry,
                "advice": advice[:, action].copy(), "p": float(p[action]),
                "v": (advice / p).sum(axis=1), "p_min": p_min,
            })
        return np.asarray(picked, dtype=np.intp), np.asarray(probabilities)

    # ------------------------------------------------------------------ pieces
    def _start(self, learner, n_pool, random_state):
        members = self.strategies
        if members is None:
            uncertain = MarginSampling() if hasattr(learner, "predict_proba") else DecisionMargin()
            members = [RandomSampling(), uncertain]
        if len(members) == 0:
            raise ValueError(f"{type(self).__name__} needs at least one strategy, got none.")
        self.strategies_ = []
        for member in members:
            if not callable(member):
                raise TypeError(
                    f"{type(self).__name__}'s strategies must be query strategies, got "
                    f"{type(member).__name__}."
                )
            member = clone(member) if hasattr(member, "get_params") else member
            seed = int(random_state.randint(_MAX_SEED))
            if hasattr(member, "get_params") and "random_state" in member.get_params(deep=False):
                if member.get_params(deep=False)["random_state"] is None:
                    member.set_params(random_state=seed)
            self.strategies_.append(member)
        self._names = [getattr(m, "__name__", type(m).__name__) for m in self.strategies_]
        n_members = len(self.strategies_)
        self._n_actions = n_pool
        # n: the rows at the first query, labelled ones included (none known for a plain
        # fitted estimator, which has no labelled set to read)
        self._n_rows = n_pool + len(getattr(learner, "y_labeled_", ()))
        self._horizon = self.horizon if self.horizon is not None else n_pool
        p_min = self.p_min
        if p_min is None:
            p_min = math.sqrt(math.log(max(n_members, 2)) / (n_pool * self._horizon))
        self._p_min = p_min
        self._bonus = math.sqrt(math.log(n_members / self.delta) / (n_pool * self._horizon)) \
            if n_members / self.delta > 1 else 0.0
        self._log_weights = np.zeros(n_members)
        self.arm_probabilities_ = np.empty((0, n_members))
        self.history_ = []
        self._pending = []
        self._iw_X, self._iw_y, self._iw_w, self._iw_correct = None, [], [], None
        self._picked_X, self._picked_y = None, []
        self._advice_log = []

    def _rankings(self, learner, X_pool, batch_size):
        """Each member's pool rows, best first (``None`` for a uniform member)."""
        rankings = []
        for member in self.strategies_:
            if isinstance(member, RandomSampling):
                rankings.append(None)
                continue
            if hasattr(member, "select"):
                indices = member.select(learner, X_pool, batch_size)[0]
            else:
                indices = np.asarray(member(learner, X_pool, batch_size))
            rankings.append([int(i) for i in indices])
        return rankings

    def _learn_rewards(self, learner, predict):
        """Find the labels of the last batch's picks; reward the bandit for them."""
        if not self._pending:
            return
        if getattr(learner, "X_labeled_", None) is None:
            labeled, y_labeled = None, None  # no labelled set to find the labels in
        else:
            labeled = _as_matrix(learner.X_labeled_)
            y_labeled = np.asarray(learner.y_labeled_)
        known = []
        for pick in self._pending:
            label = _lookup_label(labeled, y_labeled, pick["row"])
            if label is not None:
                self._add_iw_sample(pick["row"], label, 1 / pick["p"])
                self._picked_X = (pick["row"] if self._picked_X is None
                                  else concat_rows(self._picked_X, pick["row"]))
                self._picked_y.append(label)
                known.append(pick)
        self._pending = []
        if not known:
            return
        reward = self._reward(predict)
        for pick in known:
            gain = pick["advice"] * reward / pick["p"]
            self._log_weights += pick["p_min"] / 2 * (gain + pick["v"] * self._bonus)
            pick["entry"]["reward"] = reward

    def _add_iw_sample(self, row, label, weight):
        self._iw_X = row if self._iw_X is None else concat_rows(self._iw_X, row)
        self._iw_y.append(label)
        self._iw_w.append(float(weight))

    def _reward(self, predict):
        """Importance-weighted accuracy of the current model on the rows drawn so far.

        Within one query the model does not change, so after a free draw only the new row
        is predicted (free draws had made 29 % of these predictions on every row drawn so far,
        on german at batch size 1).
        """
        n_known = 0 if self._iw_correct is None else self._iw_correct.size
        if self._iw_correct is not None and n_known == len(self._iw_y) - 1:
            new = np.asarray(predict(take_rows(self._iw_X, [n_known])))
            correct = np.append(self._iw_correct, new == np.asarray(self._iw_y[-1:], dtype=object))
        else:
            correct = np.asarray(predict(self._iw_X)) == np.asarray(self._iw_y, dtype=object)
        self._iw_correct = correct
        return float(np.dot(self._iw_w, correct) / (self._n_rows * self._horizon))

    def _credit(self, advice_drawn, p_drawn, advice, p, p_min, reward):
        """EXP4.P's update of the log-weights for one drawn action."""
        gain = advice_drawn * reward / p_drawn
        self._log_weights += p_min / 2 * (gain + (advice / p).sum(axis=1) * self._bonus)

    def _normalised_weights(self):
        w = np.exp(self._log_weights - self._log_weights.max())
        return w / w.sum()


def _as_matrix(X):
    """Rows of ``X`` as a 2-d array for equality look-ups, or None when that is impossible."""
    try:
        if hasattr(X, "toarray"):
            X = X.toarray()
        elif hasattr(X, "to_numpy"):
            X = X.to_numpy()
        X = np.asarray(X)
        return X.reshape(X.shape[0], -1)
    except (TypeError, ValueError):  # ragged lists, exotic containers: no look-up
        return None


def _lookup_label(labeled, y_labeled, row):
    """The label of the first labelled row equal to ``row``, or None."""
    row = _as_matrix(row)
    if labeled is None or row is None or row.shape[1] != labeled.shape[1]:
        return None
    with np.errstate(invalid="ignore"):
        matches = np.flatnonzero((labeled == row[0]).all(axis=1))
    return y_labeled[matches[0]] if matches.size else None


def _mix(weights, advice, p_min):
    """EXP4.P's distribution over the actions: the weighted advice mixed with uniform."""
    n_actions = advice.shape[1]
    p = (1 - n_actions * p_min) * (weights @ advice) + p_min
    return p / p.sum()  # only rounding separates the sum from 1
