"""Annotation costs: the budget in cost units, history_ in cost units, and CostAware."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from skal import ActiveLearner, CostAware, MarginSampling, RandomSampling

X_D, Y_D = load_digits(return_X_y=True)
# a label costs 1 + (number of ink pixels) / 10: busier images take longer to judge
COSTS = 1 + (X_D > 0).sum(axis=1) / 10


def ink_cost(rows):
    return 1 + (np.asarray(rows) > 0).sum(axis=1) / 10


def test_label_costs_from_a_callable_a_column_or_nothing():
    learner = ActiveLearner(label_cost=ink_cost)
    np.testing.assert_allclose(learner.label_costs(X_D), COSTS)
    frame = pd.DataFrame(X_D).assign(cost=COSTS)
    np.testing.assert_allclose(ActiveLearner(label_cost="cost").label_costs(frame), COSTS)
    with_column = np.column_stack([X_D, COSTS])
    np.testing.assert_allclose(ActiveLearner(label_cost=64).label_costs(with_column), COSTS)
    np.testing.assert_array_equal(ActiveLearner().label_costs(X_D[:3]), [1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("label_cost", "error", "message"),
    [(lambda rows: -np.ones(len(rows)), ValueError, "positive and finite"),
     (lambda rows: np.ones(3), ValueError, "gave 3 costs for 1797 rows"),
     ("price", ValueError, "names no column"),
     (1.5, TypeError, "label_cost must be None, a column"),
     (lambda rows: ["a"] * len(rows), ValueError, "not numbers")],
)
def test_bad_label_costs_are_named(label_cost, error, message):
    with pytest.raises(error, match=message):
        ActiveLearner(label_cost=label_cost, budget=100, random_state=0).fit(X_D, Y_D)


def test_budget_in_cost_units():
    learner = ActiveLearner(label_cost=ink_cost, budget=300.0, batch_size=10,
                            random_state=0).fit(X_D, Y_D)
    spent = COSTS[learner.labeled_indices_].sum()
    assert spent <= 300.0
    assert [row["cost"] for row in learner.history_] == pytest.approx(
        [COSTS[learner.labeled_indices_[:row["n_labels"]]].sum() for row in learner.history_]
    )
    # it stopped because the next pick did not fit in what was left
    assert learner.stop_reason_.startswith("budget: the next pick costs")
    left = 300.0 - spent
    assert left < COSTS.max()


def test_costs_are_priced_once_per_row_and_teach_adds_the_new_rows():
    priced = []

    def counting_cost(rows):
        priced.append(len(rows))
        return ink_cost(rows)

    learner = ActiveLearner(label_cost=counting_cost, budget=200.0, batch_size=10,
                            random_state=0).fit(X_D[:500], Y_D[:500])
    # the pool once, never the labelled rows again at every cycle
    assert priced == [500] and len(learner.history_) >= 5
    spent = learner.history_[-1]["cost"]
    assert spent == pytest.approx(COSTS[learner.labeled_indices_].sum())
    learner.teach(X_D[600:603], Y_D[600:603])
    assert learner.history_[-1]["cost"] == pytest.approx(spent + COSTS[600:603].sum())


def test_without_costs_history_cost_counts_labels():
    learner = ActiveLearner(budget=40, batch_size=10, random_state=0).fit(X_D, Y_D)
    assert [row["cost"] for row in learner.history_] == [10.0, 20.0, 30.0, 40.0]


def test_cost_budget_smaller_than_the_initial_rows_is_named():
    with pytest.raises(ValueError, match="smaller than the 3 initial_rows"):
        ActiveLearner(label_cost=ink_cost, budget=5.0).fit(
            X_D, Y_D, initial_rows=[0, 1, 2]
        )
    with pytest.raises(ValueError, match="budget must be a positive number"):
        ActiveLearner(label_cost=ink_cost, budget=-1.0).fit(X_D, Y_D)


def test_cost_aware_divides_benefit_by_cost_by_hand():
    model = LogisticRegression(max_iter=1000).fit(X_D[:200], Y_D[:200])
    pool = X_D[200:400]
    scores = MarginSampling().score(model, pool)
    ratio = (scores - scores.min()) / COSTS[200:400]
    picked, got = CostAware(label_cost=ink_cost).select(model, pool, 5)
    assert picked.tolist() == np.argsort(-ratio, kind="stable")[:5].tolist()
    np.testing.assert_allclose(got, np.sort(ratio)[::-1][:5])


def test_cost_aware_takes_the_learners_costs_and_spends_less_per_label():
    def run(strategy):
        return ActiveLearner(query_strategy=strategy, label_cost=ink_cost, budget=400.0,
                             batch_size=10, random_state=0).fit(X_D, Y_D)

    plain, aware = run(MarginSampling()), run(CostAware())
    assert aware.n_labels_ > plain.n_labels_  # cheaper labels: more of them for the budget
    with pytest.raises(TypeError, match="label_costs"):
        CostAware()(LogisticRegression().fit(X_D[:50], Y_D[:50]), X_D[50:], 2)


def test_grid_search_over_cost_aware_and_plain_strategies():
    search = GridSearchCV(
        ActiveLearner(label_cost=ink_cost, budget=200.0, batch_size=10, random_state=0),
        {"query_strategy": [RandomSampling(), MarginSampling(), CostAware()]}, cv=2,
    ).fit(X_D, Y_D)
    assert len(search.cv_results_["mean_test_score"]) == 3


def test_a_strategy_passed_as_the_estimator_is_pointed_to_query_strategy():
    with pytest.raises(TypeError, match="pass it as query_strategy="):
        ActiveLearner(MarginSampling(), budget=30).fit(X_D, Y_D)


def test_run_experiment_draws_learning_curves_in_cost_units():
    from skal.experiments import run_experiment

    learner = ActiveLearner(label_cost=ink_cost, batch_size=20, random_state=0)
    result = run_experiment(learner, X_D[:1200], Y_D[:1200], X_D[1200:], Y_D[1200:],
                            budget=300.0, n_repeats=1)
    for _, row in result.iterrows():
        acquired = np.concatenate(result["indices"][: row["cycle"] + 1].to_list())
        assert row["cost"] == pytest.approx(COSTS[:1200][acquired].sum())
    assert result["cost"].max() <= 300.0
