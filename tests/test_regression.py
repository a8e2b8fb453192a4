"""Active learning for regression: ActiveRegressor, CommitteeRegressor and the regression
strategies, with answers computed by hand and by a plain reference loop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_linnerud, make_friedman1
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.linear_model import BayesianRidge, LinearRegression, Ridge, SGDRegressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skal import (
    EMCM,
    ActiveRegressor,
    CommitteeRegressor,
    CoreSet,
    GreedySampling,
    MarginSampling,
    RandomSampling,
    TypiClust,
    VarianceSampling,
)

X_F, y_F = make_friedman1(n_samples=240, random_state=0)


def _unlabelled(y, n_labelled):
    y = np.asarray(y, dtype=np.float64).copy()
    y[n_labelled:] = np.nan
    return y


# ------------------------------------------------------------------ the learners
def test_active_regressor_is_a_regressor_with_r2_score():
    learner = ActiveRegressor().fit(X_F, _unlabelled(y_F, 40))
    assert learner.target_kind_ == "regression"
    assert learner.n_labels_ == 40
    prediction = learner.predict(X_F)
    model = BayesianRidge().fit(X_F[:40], y_F[:40])
    np.testing.assert_allclose(prediction, model.predict(X_F))
    r2 = 1 - ((y_F - prediction) ** 2).sum() / ((y_F - y_F.mean()) ** 2).sum()
    assert learner.score(X_F, y_F) == pytest.approx(r2)
    assert not hasattr(learner, "classes_") and not hasattr(learner, "predict_proba")


def test_nan_marks_unlabelled_rows_and_minus_one_is_a_target():
    y = _unlabelled(y_F, 30)
    y[0] = -1.0  # a real target, not a missing mark, for a regressor
    learner = ActiveRegressor(Ridge()).fit(X_F, y)
    assert learner.n_labels_ == 30
    assert -1.0 in learner.y_labeled_


def test_partly_missing_multi_output_row_is_refused():
    X, Y = load_linnerud(return_X_y=True)
    Y = Y.astype(float)
    Y[3, 1] = np.nan
    with pytest.raises(ValueError, match="partly missing_label"):
        ActiveRegressor(Ridge()).fit(X, Y)


def test_nan_target_without_nan_missing_label_names_the_way_out():
    y = _unlabelled(y_F, 30)
    with pytest.raises(ValueError, match="missing_label=np.nan"):
        ActiveRegressor(missing_label=-999).fit(X_F, y)


def test_text_targets_are_a_type_error():
    with pytest.raises(TypeError, match="must hold numbers"):
        ActiveRegressor().fit(X_F[:4], ["a", "b", "c", "d"])


def test_teach_adds_targets_and_checks_outputs():
    learner = ActiveRegressor(Ridge()).fit(X_F, _unlabelled(y_F, 20))
    learner.teach(X_F[20:25], y_F[20:25])
    assert learner.n_labels_ == 25
    np.testing.assert_allclose(
        learner.predict(X_F[:5]), Ridge().fit(X_F[:25], y_F[:25]).predict(X_F[:5])
    )
    with pytest.raises(ValueError, match="same number of outputs"):
        learner.teach(X_F[25:27], np.ones((2, 2)))
    with pytest.raises(ValueError, match="unlabelled entries"):
        learner.teach(X_F[25:27], [1.0, np.nan])


def test_partial_fit_update_passes_no_classes():
    learner = ActiveRegressor(SGDRegressor(random_state=0), update="partial_fit")
    learner.fit(X_F, _unlabelled(y_F, 20))
    learner.teach(X_F[20:30], y_F[20:30])
    assert learner.n_labels_ == 30


def test_return_std_needs_a_model_that_gives_it():
    learner = ActiveRegressor(Ridge()).fit(X_F, _unlabelled(y_F, 20))
    with pytest.raises(TypeError, match="takes no return_std"):
        learner.predict(X_F, return_std=True)
    mean, std = ActiveRegressor(GaussianProcessRegressor()).fit(
        X_F, _unlabelled(y_F, 20)
    ).predict(X_F[:4], return_std=True)
    assert mean.shape == std.shape == (4,)


def test_default_strategy_follows_the_model():
    assert isinstance(
        ActiveRegressor(budget=20, random_state=0).fit(X_F, y_F).query_strategy_,
        VarianceSampling,
    )
    greedy = ActiveRegressor(Ridge(), budget=20, random_state=0).fit(X_F, y_F)
    assert isinstance(greedy.query_strategy_, GreedySampling)
    assert greedy.query_strategy_.space == "xy"


def test_committee_regressor_mean_std_and_samples():
    committee = CommitteeRegressor(
        [Ridge(alpha=1.0), DecisionTreeRegressor(max_depth=2, random_state=0)],
        bootstrap=False,
    ).fit(X_F, _unlabelled(y_F, 50))
    members = [Ridge(alpha=1.0).fit(X_F[:50], y_F[:50]),
               DecisionTreeRegressor(max_depth=2, random_state=0).fit(X_F[:50], y_F[:50])]
    a, b = (m.predict(X_F[50:60]) for m in members)
    samples = committee.predict_samples(X_F[50:60])
    np.testing.assert_allclose(samples, np.stack([a, b]))
    mean, std = committee.predict(X_F[50:60], return_std=True)
    np.testing.assert_allclose(mean, (a + b) / 2)
    np.testing.assert_allclose(std, np.abs(a - b) / 2)  # two members: half their gap
    assert committee.score(X_F, y_F) == pytest.approx(
        1 - ((y_F - committee.predict(X_F)) ** 2).sum() / ((y_F - y_F.mean()) ** 2).sum()
    )


def test_multi_output_regression_on_linnerud():
    X, Y = load_linnerud(return_X_y=True)
    learner = ActiveRegressor(
        make_pipeline(StandardScaler(), GaussianProcessRegressor(normalize_y=True)),
        budget=12, n_initial=4, batch_size=2, random_state=0,
    ).fit(X, Y)
    assert learner.y_labeled_.shape == (12, 3)
    mean, std = learner.predict(X, return_std=True)
    assert mean.shape == std.shape == (20, 3)
    committee = CommitteeRegressor(budget=12, n_initial=4, batch_size=2, random_state=0)
    assert committee.fit(X, Y).predict_samples(X).shape == (5, 20, 3)


# ------------------------------------------------------------------ known answers
def test_variance_sampling_scores_are_the_committee_variance():
    committee = CommitteeRegressor(
        [Ridge(alpha=1.0), DecisionTreeRegressor(max_depth=2, random_state=0)],
        bootstrap=False,
    ).fit(X_F, _unlabelled(y_F, 50))
    a = Ridge(alpha=1.0).fit(X_F[:50], y_F[:50]).predict(X_F[50:])
    b = DecisionTreeRegressor(max_depth=2, random_state=0).fit(X_F[:50], y_F[:50]).predict(
        X_F[50:]
    )
    np.testing.assert_allclose(VarianceSampling().score(committee, X_F[50:]), (a - b) ** 2 / 4)
    assert committee.query(X_F[50:], 3).tolist() == np.argsort(-(a - b) ** 2)[:3].tolist()


def test_variance_sampling_of_a_gaussian_process_by_hand():
    # Noise-free GP with a fixed RBF kernel k(x, x') = exp(-(x - x')^2 / 2), one training
    # point at 0: var(x) = 1 - k(x, 0)^2 = 1 - exp(-x^2).
    from sklearn.gaussian_process.kernels import RBF

    gp = GaussianProcessRegressor(RBF(1.0), optimizer=None).fit([[0.0]], [1.0])
    X_pool = np.array([[0.5], [2.0], [-1.0]])
    np.testing.assert_allclose(
        VarianceSampling().score(gp, X_pool), 1 - np.exp(-X_pool[:, 0] ** 2), atol=1e-8
    )
    assert VarianceSampling()(gp, X_pool, 1).tolist() == [1]


def test_emcm_by_hand():
    committee = CommitteeRegressor(Ridge(), n_estimators=4, random_state=0).fit(
        X_F, _unlabelled(y_F, 40)
    )
    X_pool = X_F[40:80]
    f = committee.predict(X_pool)
    samples = committee.predict_samples(X_pool)
    expected = np.abs(samples - f).mean(axis=0) * np.linalg.norm(X_pool, axis=1)
    np.testing.assert_allclose(EMCM().score(committee, X_pool), expected)


def _greedy_reference(x_pool, f_pool, x_lab, y_lab, batch_size, space):
    """GSx / GSy / iGS as a plain loop over pairs (Wu, Lin & Huang 2019, with picked rows
    joining the labelled set with their predicted target)."""
    x_lab, y_lab = list(x_lab), list(y_lab)
    chosen = []
    for _ in range(batch_size):
        best, best_value = None, -1.0
        for n in range(len(x_pool)):
            if n in chosen:
                continue
            dists = []
            for xm, ym in zip(x_lab, y_lab, strict=True):
                dx = float(np.linalg.norm(x_pool[n] - xm))
                dy = float(np.linalg.norm(np.atleast_1d(f_pool[n] - ym)))
                dists.append({"x": dx, "y": dy, "xy": dx * dy}[space])
            value = min(dists)
            if value > best_value + 1e-9:
                best, best_value = n, value
        chosen.append(best)
        x_lab.append(x_pool[best])
        y_lab.append(f_pool[best])
    return chosen


def test_greedy_sampling_by_hand_on_a_line():
    # f(x) = x from two labelled points 0 and 4; pool 1, 2, 3, 5.
    learner = ActiveRegressor(LinearRegression(), GreedySampling(space="x"))
    learner.fit(np.array([[0.0], [4.0]]), np.array([0.0, 4.0]))
    X_pool = np.array([[1.0], [2.0], [3.0], [5.0]])
    # min distances to {0, 4}: 1, 2, 1, 1 in x and in y; products 1, 4, 1, 1.
    for space in ("x", "y", "xy"):
        learner.set_params(query_strategy=GreedySampling(space=space))
        learner.fit(np.array([[0.0], [4.0]]), np.array([0.0, 4.0]))
        indices, scores = learner.query(X_pool, 1, return_scores=True)
        assert indices.tolist() == [1]
        assert scores[0] == pytest.approx(4.0 if space == "xy" else 2.0)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    space=st.sampled_from(["x", "y", "xy"]),
    n_outputs=st.sampled_from([1, 2]),
    batch_size=st.integers(1, 5),
)
def test_greedy_sampling_equals_the_reference_loop(seed, space, n_outputs, batch_size):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(30, 3))
    y = X @ rng.normal(size=(3, n_outputs)) + rng.normal(scale=0.3, size=(30, n_outputs))
    y = y[:, 0] if n_outputs == 1 else y
    learner = ActiveRegressor(LinearRegression(), GreedySampling(space=space))
    learner.fit(X[:6], y[:6])
    got = learner.query(X[6:], batch_size)
    f = learner.predict(X[6:])
    assert got.tolist() == _greedy_reference(X[6:], f, X[:6], y[:6], batch_size, space)


def test_gsx_cold_start_takes_the_row_nearest_the_centroid_first():
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    assert GreedySampling(space="x")(None, X, 2).tolist() == [2, 3]
    learner = ActiveRegressor(Ridge(), initial_strategy=GreedySampling(space="x"),
                              budget=30, n_initial=10, random_state=0).fit(X_F, y_F)
    centroid = X_F.mean(axis=0)
    assert learner.labeled_indices_[0] == np.argmin(((X_F - centroid) ** 2).sum(axis=1))


# ------------------------------------------------------------------ composition
@pytest.mark.parametrize(
    "strategy",
    [VarianceSampling(), GreedySampling(), GreedySampling(space="y"), RandomSampling(),
     CoreSet(), TypiClust()],
    ids=lambda s: repr(s),
)
def test_budget_mode_runs_every_regression_strategy(strategy):
    learner = ActiveRegressor(
        make_pipeline(StandardScaler(), BayesianRidge()),
        strategy, budget=40, batch_size=10, random_state=0,
    ).fit(X_F, y_F)
    assert learner.n_labels_ == 40
    assert [row["event"] for row in learner.history_] == ["initial"] + ["query"] * 3
    again = clone(learner).fit(X_F, y_F)
    np.testing.assert_array_equal(again.labeled_indices_, learner.labeled_indices_)


def test_grid_search_over_regression_strategies_and_models():
    X, y = load_diabetes(return_X_y=True)
    search = GridSearchCV(
        ActiveRegressor(budget=40, batch_size=10, random_state=0),
        {"query_strategy": [RandomSampling(), VarianceSampling(), GreedySampling()],
         "estimator": [BayesianRidge(), make_pipeline(StandardScaler(), BayesianRidge())]},
        cv=3,
    ).fit(X, y)
    assert search.best_score_ > 0.3  # R², as the regressor's score
    assert len(search.cv_results_["params"]) == 6


def test_cross_val_score_of_a_committee_regressor():
    scores = cross_val_score(
        CommitteeRegressor(Ridge(), query_strategy=EMCM(), budget=40, random_state=0),
        X_F, y_F, cv=3,
    )
    assert scores.shape == (3,) and np.all(scores > 0.3)


def test_classification_strategy_on_a_regressor_is_named():
    with pytest.raises(TypeError, match="MarginSampling handles classification targets"):
        ActiveRegressor(query_strategy=MarginSampling(), budget=30, random_state=0).fit(
            X_F, y_F
        )
    with pytest.raises(TypeError, match="VarianceSampling handles regression targets"):
        from skal import ActiveLearner

        ActiveLearner(query_strategy=VarianceSampling(), budget=30, random_state=0).fit(
            X_F, (y_F > y_F.mean()).astype(int)
        )


def test_emcm_without_samples_says_what_to_use():
    learner = ActiveRegressor(Ridge()).fit(X_F, _unlabelled(y_F, 20))
    with pytest.raises(TypeError, match="CommitteeRegressor"):
        EMCM()(learner, X_F[20:], 2)


def test_strategy_scores_do_not_depend_on_row_order():
    committee = CommitteeRegressor(Ridge(), n_estimators=4, random_state=0).fit(
        X_F, _unlabelled(y_F, 40)
    )
    order = np.random.RandomState(0).permutation(200)
    X_pool = X_F[40:]
    for strategy in (VarianceSampling(), EMCM()):
        np.testing.assert_allclose(
            strategy.score(committee, X_pool)[order], strategy.score(committee, X_pool[order])
        )
