"""CAL and OpenSetFilter: known answers by hand, and out-of-task rows kept out of the batch on
sklearn's digits."""

import math

import numpy as np
import pytest
from _posteriors import logistic_with_proba
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from skal import ActiveLearner
from skal.strategies import CAL, MarginSampling, OpenSetFilter, RandomSampling
from skal.strategies._contrastive import kl_to_neighbours, spread_from

# Rows 0, 1 labelled; 2, 3 in the pool. The model's predictions, set by hand:
PROBA = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.4, 0.3, 0.3], [0.2, 0.2, 0.6]])
POSITION = np.array([0.0, 10.0, 1.0, 9.0])


def _model_on_a_line():
    """A real LogisticRegression predicting PROBA on rows [one-hot(i), 100 * position_i].

    The position column has weight 0, so it moves the embedding (the raw features) and not
    the predictions: row 2 is next to row 0 and row 3 next to row 1.
    """
    model = logistic_with_proba(PROBA)
    model.coef_ = np.c_[model.coef_, np.zeros(3)]
    model.n_features_in_ = 5
    X = np.c_[np.eye(4), 100 * POSITION]
    model.X_labeled_ = X[:2]
    return model, X


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_cal_known_answer():
    model, X = _model_on_a_line()
    np.testing.assert_allclose(model.predict_proba(X), PROBA, atol=1e-12)
    # k = 1: KL(p_neighbour || p_candidate), the neighbour's distribution first.
    kl_02 = 0.8 * math.log(0.8 / 0.4) + 2 * 0.1 * math.log(0.1 / 0.3)  # 0.334795
    kl_13 = 2 * 0.1 * math.log(0.1 / 0.2) + 0.8 * math.log(0.8 / 0.6)  # 0.091516
    assert kl_02 == pytest.approx(_kl(PROBA[0], PROBA[2]))
    np.testing.assert_allclose(CAL(n_neighbors=1).score(model, X[2:]), [kl_02, kl_13])
    # k = 2 (and any larger k: only two rows are labelled): the mean over both.
    kl_12 = 0.1 * math.log(0.1 / 0.4) + 0.1 * math.log(0.1 / 0.3) + 0.8 * math.log(0.8 / 0.3)
    kl_03 = 0.8 * math.log(0.8 / 0.2) + 0.1 * math.log(0.1 / 0.2) + 0.1 * math.log(0.1 / 0.6)
    expected = [(kl_02 + kl_12) / 2, (kl_03 + kl_13) / 2]
    np.testing.assert_allclose(CAL(n_neighbors=10).score(model, X[2:]), expected)
    assert CAL(n_neighbors=1)(model, X[2:], 1).tolist() == [0]
    assert CAL(n_neighbors=2)(model, X[2:], 1).tolist() == [1]


def test_kl_to_neighbours_is_zero_for_agreement_and_finite_for_certain_disagreement():
    p = np.array([[0.3, 0.7], [1.0, 0.0]])
    assert np.allclose(kl_to_neighbours(p, p[:, None, :]), 0.0)
    certain = kl_to_neighbours(np.array([[0.0, 1.0]]), np.array([[[1.0, 0.0]]]))
    assert np.isfinite(certain).all() and certain[0] > 20


def test_strategies_need_the_labelled_rows():
    model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    for strategy in (CAL(), OpenSetFilter()):
        with pytest.raises(TypeError, match="X_labeled_.*ActiveLearner"):
            strategy(model, np.eye(4), 1)


def test_spread_from_known_answer():
    # Two rows, each the other's only neighbour; the mass starts on row 0. The fixed point
    # of s0 = a s1 + (1 - a), s1 = a s0 is s0 = 1 / (1 + a), s1 = a / (1 + a).
    score = spread_from(np.array([[0.0], [1.0]]), [0], n_neighbors=1, alpha=0.5)
    np.testing.assert_allclose(score, [2 / 3, 1 / 3], atol=2e-3)


def test_open_set_filter_keeps_a_disconnected_cluster_out():
    # Cluster A around 0 holds the labelled rows; cluster B around 100 has no edge to it
    # in the 2-nearest-neighbour graph, so it receives no mass and is never picked, even
    # though the base strategy (margin) prefers it.
    X_a = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    X_b = np.array([[0.45, 100.0], [0.55, 100.0], [0.45, 101.0], [0.55, 101.0]])
    X = np.r_[X_a, X_b]  # B lies on the decision boundary x = 0.5 of the two labels
    y = np.array([0, 1, -1, -1, -1, -1, -1, -1])
    learner = ActiveLearner(LogisticRegression()).fit(X, y)
    strategy = OpenSetFilter(n_neighbors=2, keep=0.25, random_state=0)
    semantic = strategy.semantic_score(learner, X[2:])
    assert (semantic[:2] > 0).all() and np.all(semantic[2:] == 0)
    assert set(MarginSampling()(learner, X[2:], 2)) <= {2, 3, 4, 5}
    assert sorted(strategy(learner, X[2:], 2)) == [0, 1]


def test_open_set_filter_keeps_out_of_task_digits_out_of_the_batch():
    # The task is digits 0-7 (30 labels); 8s and 9s are 20 % of the pool. Margin sampling
    # favours them; the filter takes far fewer than random does, on every seed.
    X, y = load_digits(return_X_y=True)
    X = X / 16
    out_of_task = y >= 8
    fractions = {"random": [], "margin": [], "filter": []}
    for seed in range(3):
        labeled = np.random.RandomState(seed).choice(np.flatnonzero(~out_of_task), 30,
                                                      replace=False)
        y_known = np.full(y.shape, -1)
        y_known[labeled] = y[labeled]
        pool = np.flatnonzero(y_known == -1)
        learner = ActiveLearner(LogisticRegression(max_iter=1000)).fit(X, y_known)
        for name, strategy in [("random", RandomSampling(random_state=seed)),
                               ("margin", MarginSampling()),
                               ("filter", OpenSetFilter(random_state=seed))]:
            picks = strategy(learner, X[pool], 50)
            fractions[name].append(out_of_task[pool[picks]].mean())
    random, margin, filtered = (np.array(fractions[k]) for k in ("random", "margin", "filter"))
    assert margin.mean() > random.mean() > 0.15
    assert filtered.mean() < 0.5 * random.mean()
    assert (filtered < random).all()
