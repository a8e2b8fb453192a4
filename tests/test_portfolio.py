"""ActiveLearningByLearning: EXP4.P's distribution and reward by hand, learning a better arm,
and composing like any strategy (clone, grid search, budget mode, query/teach)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from skal import ActiveLearner, ActiveLearningByLearning, MarginSampling, RandomSampling


def first_rows(learner, X_pool, batch_size):
    return np.arange(batch_size)


def last_rows(learner, X_pool, batch_size):
    return np.arange(len(X_pool))[::-1][:batch_size]


def even_rows(learner, X_pool, batch_size):
    ids = X_pool[:, 0].astype(int)
    return np.argsort(ids % 2, kind="stable")[:batch_size]


def odd_rows(learner, X_pool, batch_size):
    ids = X_pool[:, 0].astype(int)
    return np.argsort(-(ids % 2), kind="stable")[:batch_size]


class StubLearner:
    """Rows are their own ids; ``rule(last_id)`` says whether the model is right everywhere."""

    def __init__(self, X_labeled, y_labeled, rule=lambda last: True):
        self.X_labeled_, self.y_labeled_ = X_labeled, y_labeled
        self.rule = rule

    def predict(self, X):
        right = self.rule(int(self.X_labeled_[-1, 0]))
        return np.zeros(len(X), dtype=int) if right else np.ones(len(X), dtype=int)

    def teach(self, rows):
        self.X_labeled_ = np.vstack([self.X_labeled_, rows])
        self.y_labeled_ = np.concatenate([self.y_labeled_, np.zeros(len(rows), dtype=int)])


def test_first_query_distribution_and_reward_by_hand():
    # 4 pool rows, 2 labelled; arms recommend row 0 and row 3; p_min 0.05:
    # p = (1 - 4 * 0.05) * [1/2, 0, 0, 1/2] + 0.05 = [0.45, 0.05, 0.05, 0.45].
    X_pool = np.arange(2, 6, dtype=float).reshape(-1, 1)
    learner = StubLearner(np.array([[0.0], [1.0]]), np.array([0, 0]))
    albl = ActiveLearningByLearning([first_rows, last_rows], p_min=0.05, horizon=2,
                                    random_state=0)
    picked, p = albl.select(learner, X_pool, 1)
    assert picked[0] in (0, 3) or p[0] == pytest.approx(0.05)
    expected_p = {0: 0.45, 1: 0.05, 2: 0.05, 3: 0.45}[int(picked[0])]
    assert p[0] == pytest.approx(expected_p)
    np.testing.assert_allclose(albl.arm_probabilities_[0], [0.5, 0.5])
    # The label arrives; the (always right) model earns W / (n T) = (1 / p) / (6 * 2).
    learner.teach(X_pool[picked])
    rest = np.delete(X_pool, picked, axis=0)
    albl.select(learner, rest, 1)
    reward = (1 / expected_p) / (6 * 2)
    assert albl.history_[0]["reward"] == pytest.approx(reward)
    # EXP4.P: both arms get the same variance bonus (each put its mass on a row of p=0.45),
    # the recommending arm also p_min / 2 * reward / p.
    log_ratio = np.log(albl.arm_probabilities_[1][0] / albl.arm_probabilities_[1][1])
    credited = 0.05 / 2 * reward / expected_p
    expected = {0: credited, 3: -credited}.get(int(picked[0]), 0.0)
    assert log_ratio == pytest.approx(expected)


def test_the_arm_that_makes_the_model_right_gains_probability():
    # The model is right everywhere after an even row was labelled, wrong after an odd one:
    # the arm recommending even rows earns every reward.
    X_pool = np.arange(2, 42, dtype=float).reshape(-1, 1)
    learner = StubLearner(np.array([[0.0], [1.0]]), np.array([0, 0]),
                          rule=lambda last: last % 2 == 0)
    albl = ActiveLearningByLearning([odd_rows, even_rows], horizon=1, random_state=1)
    for _ in range(25):
        picked = albl(learner, X_pool, 1)
        learner.teach(X_pool[picked])
        X_pool = np.delete(X_pool, picked, axis=0)
    probabilities = albl.arm_probabilities_[:, 1]
    assert probabilities[0] == pytest.approx(0.5)
    assert probabilities[-1] > 0.7
    assert albl.arm_share_[1] > albl.arm_share_[0]


def test_clone_grid_search_and_seeded_budget_runs():
    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    albl = ActiveLearningByLearning([RandomSampling(), MarginSampling()], random_state=3)
    assert clone(albl).get_params()["random_state"] == 3
    learner = ActiveLearner(LogisticRegression(), albl, budget=30, batch_size=4,
                            random_state=0)
    first = learner.fit(X, y).labeled_indices_.copy()
    assert np.array_equal(learner.fit(X, y).labeled_indices_, first)
    fitted = learner.query_strategy_
    assert fitted is not albl and not hasattr(albl, "history_")
    assert len(fitted.history_) == 20 and fitted.arm_probabilities_.shape == (5, 2)
    assert {name for entry in fitted.history_ for name in entry["recommended_by"]} <= {
        "RandomSampling", "MarginSampling"}
    search = GridSearchCV(learner, {"query_strategy__p_min": [None, 0.001]}, cv=2)
    assert search.fit(X, y).best_params_["query_strategy__p_min"] in (None, 0.001)


def test_query_and_teach_find_the_labels_of_its_picks():
    X, y = make_classification(n_samples=100, n_features=4, random_state=1)
    learner = ActiveLearner(LogisticRegression(), ActiveLearningByLearning(random_state=0),
                            batch_size=3)
    y_known = np.full(len(y), -1)
    y_known[:10] = y[:10]
    learner.fit(X, y_known)
    pool = np.arange(10, 100)
    for _ in range(3):
        picked = learner.query(X[pool])
        learner.teach(X[pool[picked]], y[pool[picked]])
        pool = np.delete(pool, picked)
    learner.query(X[pool])
    rewards = [entry["reward"] for entry in learner.query_strategy_.history_]
    assert all(r is not None and r > 0 for r in rewards[:9]) and rewards[9:] == [None] * 3
    # default portfolio: random and margin (the learner has predict_proba)
    assert [type(s).__name__ for s in learner.query_strategy_.strategies_] == [
        "RandomSampling", "MarginSampling"]


def test_empty_portfolio_is_an_error():
    X, y = make_classification(n_samples=40, random_state=0)
    learner = ActiveLearner(LogisticRegression(), ActiveLearningByLearning([]), budget=20)
    with pytest.raises(ValueError, match="at least one strategy"):
        learner.fit(X, y)


def test_runs_in_a_labeling_session(tmp_path):
    from skal.labeling import LabelingSession

    X, y = make_classification(n_samples=60, n_features=4, random_state=2)
    learner = ActiveLearner(LogisticRegression(), ActiveLearningByLearning(random_state=0),
                            batch_size=3)
    ids = [f"row-{i}" for i in range(len(X))]
    with LabelingSession(learner, X, tmp_path / "journal.sqlite", classes=[0, 1],
                         sample_ids=ids) as session:
        for _ in range(3):
            for query in session.next_batch():
                session.label(query.sample_id, int(y[ids.index(query.sample_id)]))
        assert session.n_labels_ == 9


def test_free_draws_predict_only_the_new_row_with_the_same_rewards(monkeypatch):
    # Within a query the model is fixed, so after a free draw the reward predicts only the
    # drawn row. The run must be identical to one that predicts every drawn row each time.
    X, y = make_classification(n_samples=150, n_features=5, random_state=0)

    def run():
        # (p_min is capped at 0.5 / actions: labelled rows are drawn more as they grow)
        strategy = ActiveLearningByLearning([RandomSampling(), MarginSampling()], p_min=0.2,
                                            random_state=0)
        return ActiveLearner(LogisticRegression(), query_strategy=strategy, budget=120,
                             n_initial=10, random_state=0).fit(X, y).query_strategy_

    predicted_rows = []
    original = LogisticRegression.predict
    monkeypatch.setattr(LogisticRegression, "predict",
                        lambda self, X: predicted_rows.append(len(X)) or original(self, X))
    cached = run()
    n_cached = sum(predicted_rows)
    full_reward = ActiveLearningByLearning._reward

    def reward_from_scratch(self, predict):
        self._iw_correct = None
        return full_reward(self, predict)

    monkeypatch.setattr(ActiveLearningByLearning, "_reward", reward_from_scratch)
    predicted_rows.clear()
    reference = run()
    assert sum(entry["free_draws"] for entry in cached.history_) > 5
    np.testing.assert_array_equal(cached.arm_probabilities_, reference.arm_probabilities_)
    assert [e["index"] for e in cached.history_] == [e["index"] for e in reference.history_]
    assert n_cached < sum(predicted_rows)
