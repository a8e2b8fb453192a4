"""Stream-based selective sampling: budget managers by hand, and a learner on a stream."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
)

from skal.strategies import EntropySampling, MarginSampling, RandomSampling
from skal.stream import (
    FixedUncertainty,
    RandomBudget,
    SplitBudget,
    StreamLearner,
    VariableUncertainty,
    simulate_stream,
)

MANAGERS = [
    RandomBudget(budget=0.2),
    FixedUncertainty(threshold=0.3, budget=0.2),
    VariableUncertainty(threshold=0.3, budget=0.2),
    VariableUncertainty(threshold=0.3, randomize=0.5, budget=0.2),
    SplitBudget(threshold=0.3, budget=0.2),
]


@pytest.mark.parametrize("manager", MANAGERS, ids=lambda m: type(m).__name__)
def test_no_manager_overspends(manager):
    manager = clone(manager).reset(0)
    scores = np.random.default_rng(0).random(5000)
    mask = manager.decide(scores)
    spent = np.cumsum(mask) / np.arange(1, mask.size + 1)
    assert (spent <= 0.2 + 1e-12).all()
    assert manager.n_seen_ == 5000 and manager.n_labeled_ == mask.sum() > 0


def test_fixed_uncertainty_by_hand():
    manager = FixedUncertainty(threshold=0.5, budget=0.5).reset()
    # Budget allows a label while labelled < 0.5 * seen.
    mask = manager.decide([0.9, 0.9, 0.1, 0.6, 0.6, 0.6, 0.4])
    assert mask.tolist() == [False, True, False, True, False, True, False]
    confident = FixedUncertainty(threshold=0.5, budget=1.0).reset().decide(np.full(100, 0.2))
    assert not confident.any()


def test_variable_uncertainty_adapts_to_spend_the_budget():
    # A confident model (utilities all 0.05): a fixed threshold of 0.3 never labels, the
    # variable one lowers its threshold until it spends the budget.
    scores = np.full(3000, 0.05)
    assert not FixedUncertainty(threshold=0.3, budget=0.1).reset().decide(scores).any()
    manager = VariableUncertainty(threshold=0.3, step=0.05, budget=0.1).reset()
    mask = manager.decide(scores)
    assert 0.08 < mask.mean() <= 0.1
    # Uncertain stream: the threshold rises after each label.
    manager = VariableUncertainty(threshold=0.0, step=0.1, budget=1.0).reset()
    manager.decide([0.5])
    assert manager.threshold_ == pytest.approx(1 - 0.9)


def test_split_labels_at_random_where_the_model_is_confident():
    mask = SplitBudget(random_share=0.5, threshold=0.9, step=1e-6, budget=0.2).reset(0).decide(
        np.zeros(4000)
    )
    # Only the random half buys labels here: about 0.5 * 0.2 of the stream.
    assert 0.07 < mask.mean() < 0.13


def test_random_budget_spends_its_share():
    mask = RandomBudget(budget=0.3).reset(0).decide(np.zeros(5000))
    assert 0.27 < mask.mean() <= 0.3


def test_bad_parameters():
    with pytest.raises(ValueError, match="budget"):
        RandomBudget(budget=0).reset()
    with pytest.raises(ValueError, match="step"):
        VariableUncertainty(step=1.5).reset()
    with pytest.raises(ValueError, match="NaN"):
        RandomBudget().reset().decide([np.nan])
    X, y = make_classification(40, random_state=0)
    with pytest.raises(TypeError, match="one at a time"):
        StreamLearner(query_strategy=RandomSampling()).fit(X, y)
    with pytest.raises(TypeError, match="BudgetManager"):
        StreamLearner(budget_manager=0.1).fit(X, y)


@pytest.mark.parametrize(
    "estimator",
    [StreamLearner(), *MANAGERS],
    ids=lambda e: type(e).__name__,
)
def test_sklearn_parameter_conventions(estimator):
    name = type(estimator).__name__
    check_parameters_default_constructible(name, estimator)
    check_no_attributes_set_in_init(name, estimator)
    check_get_params_invariance(name, estimator)


def test_stream_learner_learns_within_budget_and_beats_random():
    X, y = make_classification(
        800, n_features=6, n_informative=4, class_sep=1.0, flip_y=0.0, random_state=3
    )
    X_test, y_test = X[400:], y[400:]
    accuracy = {}
    for name, manager, strategy in [
        ("random", RandomBudget(budget=0.08), None),
        ("variable", VariableUncertainty(threshold=0.3, budget=0.08), None),
        ("split", SplitBudget(threshold=-0.4, max_score=0.0, budget=0.08), MarginSampling()),
        ("entropy", VariableUncertainty(threshold=0.3, max_score=np.log(2), budget=0.08),
         EntropySampling()),
    ]:
        runs = []
        for seed in range(2):
            learner, bought = simulate_stream(
                StreamLearner(query_strategy=strategy, budget_manager=manager,
                              random_state=seed),
                X[:400], y[:400], n_initial=10,
            )
            assert bought[10:].sum() <= 0.08 * 390
            assert learner.n_labels_ == bought.sum()
            runs.append(learner.score(X_test, y_test))
        accuracy[name] = np.mean(runs)
    assert accuracy["random"] > 0.65, accuracy
    assert min(accuracy.values()) > 0.65, accuracy
    # Uncertainty-driven selection is, on average over the managers, no worse than random.
    informed = np.mean([accuracy[k] for k in ("variable", "split", "entropy")])
    assert informed >= accuracy["random"] - 0.02, accuracy


def test_stream_learner_delegates_and_scores():
    X, y = make_classification(100, random_state=0)
    learner = StreamLearner(random_state=0).fit(X[:20], y[:20])
    np.testing.assert_allclose(learner.score_samples(X[:5]),
                               1 - learner.predict_proba(X[:5]).max(axis=1))
    assert learner.predict(X[:3]).shape == (3,)
    mask = learner.query(X[20:40])
    assert mask.dtype == bool and learner.budget_manager_.n_seen_ == 20


def test_stream_learner_tags_are_its_estimators_and_true():
    import scipy.sparse as sp
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.utils import get_tags

    X, y = make_classification(60, n_features=5, random_state=0)
    dense = StreamLearner(random_state=0)
    assert get_tags(dense).input_tags.sparse and not get_tags(dense).input_tags.allow_nan
    # Sparse rows work all the way: fit, score, query, teach, predict, as dense rows do.
    sparse = StreamLearner(random_state=0).fit(sp.csr_matrix(X[:20]), y[:20])
    dense.fit(X[:20], y[:20])
    assert get_tags(sparse).input_tags.sparse
    np.testing.assert_allclose(sparse.score_samples(sp.csr_matrix(X[20:])),
                               dense.score_samples(X[20:]), atol=1e-6)
    np.testing.assert_array_equal(sparse.query(sp.csr_matrix(X[20:40])), dense.query(X[20:40]))
    sparse.teach(sp.csr_matrix(X[20:25]), y[20:25])
    assert sparse.n_labels_ == 25
    assert sparse.predict(sp.csr_matrix(X[40:])).shape == (20,)
    with pytest.raises(ValueError, match="NaN"):
        StreamLearner().fit(np.where(X == X[0, 0], np.nan, X)[:20], y[:20])
    # An estimator that takes NaN but not sparse input: the tags follow it, as does fit.
    hgb = StreamLearner(HistGradientBoostingClassifier(max_iter=3), random_state=0)
    assert get_tags(hgb).input_tags.allow_nan and not get_tags(hgb).input_tags.sparse
    X_nan = np.where(X == X[0, 0], np.nan, X)
    assert get_tags(hgb.fit(X_nan[:20], y[:20])).input_tags.allow_nan
    assert hgb.query(X_nan[20:30]).shape == (10,)
    with pytest.raises(TypeError, match="[Ss]parse"):
        clone(hgb).fit(sp.csr_matrix(X[:20]), y[:20])
