"""ActiveLearner: the loop, scikit-learn composition, and clear errors on bad input."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skal import ActiveLearner
from skal.strategies import (
    DecisionMargin,
    EntropySampling,
    KLDivergence,
    LeastConfidence,
    MarginSampling,
    RandomSampling,
)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def _partly_labelled(y, n_labelled, seed=0, missing=-1):
    rng = np.random.RandomState(seed)
    y_known = np.full(y.shape, missing, dtype=object if missing is None else y.dtype)
    rows = rng.choice(len(y), n_labelled, replace=False)
    y_known[rows] = y[rows]
    return y_known, rows


# ------------------------------------------------------------------ fit / query / teach
def test_fit_trains_on_labelled_rows_only(iris):
    X, y = iris
    y_known, rows = _partly_labelled(y, 30)
    learner = ActiveLearner(LogisticRegression(max_iter=500)).fit(X, y_known)
    reference = LogisticRegression(max_iter=500).fit(X[np.sort(rows)], y[np.sort(rows)])
    np.testing.assert_allclose(learner.predict_proba(X), reference.predict_proba(X))
    assert learner.n_labels_ == 30
    assert set(learner.classes_) == {0, 1, 2}


def test_query_then_teach_grows_the_labelled_set(iris):
    X, y = iris
    y_known, _ = _partly_labelled(y, 15)
    learner = ActiveLearner(query_strategy=MarginSampling(), batch_size=5).fit(X, y_known)
    pool = np.flatnonzero(y_known == -1)
    picked = pool[learner.query(X[pool])]
    assert len(picked) == 5
    learner.teach(X[picked], y[picked])
    assert learner.n_labels_ == 20
    assert [h["n_labels"] for h in learner.history_] == [15, 20]
    np.testing.assert_array_equal(learner.y_labeled_[-5:], y[picked])


def test_query_returns_scores_sorted_by_priority(iris):
    X, y = iris
    learner = ActiveLearner(query_strategy=EntropySampling()).fit(*_masked(iris, 20))
    indices, scores = learner.query(X, batch_size=7, return_scores=True)
    assert np.all(np.diff(scores) <= 0)
    full = EntropySampling().score(learner, X)
    np.testing.assert_allclose(scores, np.sort(full)[::-1][:7])


def _masked(data, n):
    X, y = data
    return X, _partly_labelled(y, n)[0]


def test_query_independent_of_chunk_size_and_n_jobs():
    X, y = make_blobs(n_samples=3000, centers=4, n_features=6, random_state=0)
    y_known, _ = _partly_labelled(y, 40)
    base = ActiveLearner(query_strategy=MarginSampling(random_state=0)).fit(X, y_known)
    expected = base.query(X, batch_size=25)
    for chunk_size, n_jobs in [(1, None), (7, 2), (1000, 2), (None, None)]:
        learner = clone(base).set_params(chunk_size=chunk_size, n_jobs=n_jobs).fit(X, y_known)
        assert learner.query(X, batch_size=25).tolist() == expected.tolist()
    with config_context(working_memory=1):  # 1 MiB per chunk
        assert base.query(X, batch_size=25).tolist() == expected.tolist()


def test_default_strategy_follows_the_estimator(iris):
    X, y_known = _masked(iris, 30)
    assert isinstance(ActiveLearner().fit(X, y_known).query_strategy_, MarginSampling)
    svm = ActiveLearner(LinearSVC()).fit(X, y_known)
    assert isinstance(svm.query_strategy_, DecisionMargin)
    assert not hasattr(svm, "predict_proba")
    assert svm.query(X, 3).shape == (3,)


def test_plain_function_strategy_is_accepted(iris):
    X, y_known = _masked(iris, 30)

    def first_rows(learner, X_pool, batch_size):
        return np.arange(batch_size)

    learner = ActiveLearner(query_strategy=first_rows).fit(X, y_known)
    assert learner.query(X, 4).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("bad_strategy", "error", "match"),
    [
        (lambda learner, X_pool, n: np.zeros(n, dtype=int), ValueError, "duplicate"),
        (lambda learner, X_pool, n: np.arange(n) + 10**6, ValueError, "outside the pool"),
        (lambda learner, X_pool, n: np.linspace(0, 1, n), TypeError, "integer indices"),
    ],
)
def test_faulty_user_strategy_fails_clearly(iris, bad_strategy, error, match):
    X, y_known = _masked(iris, 30)
    learner = ActiveLearner(query_strategy=bad_strategy).fit(X, y_known)
    with pytest.raises(error, match=match):
        learner.query(X, 3)


def test_non_callable_strategy_is_a_type_error(iris):
    with pytest.raises(TypeError, match="query_strategy must be"):
        ActiveLearner(query_strategy="margin").fit(*_masked(iris, 30))


# ------------------------------------------------------------------ simulated runs
def test_simulated_run_spends_exactly_the_budget(iris):
    X, y = iris
    learner = ActiveLearner(budget=47, n_initial=12, batch_size=10, random_state=0).fit(X, y)
    assert [h["n_labels"] for h in learner.history_] == [12, 22, 32, 42, 47]
    acquired = np.concatenate([h["indices"] for h in learner.history_])
    assert len(np.unique(acquired)) == 47
    np.testing.assert_array_equal(acquired, learner.labeled_indices_)
    np.testing.assert_array_equal(learner.y_labeled_, y[np.sort(acquired)])  # pool order
    in_pool_order = np.sort(acquired)
    reference = LogisticRegression(max_iter=1000).fit(X[in_pool_order], y[in_pool_order])
    np.testing.assert_array_equal(learner.predict_proba(X), reference.predict_proba(X))
    assert all(h["fit_seconds"] >= 0 and h["query_seconds"] >= 0 for h in learner.history_)
    assert learner.history_[0]["scores"] is None  # random initial set
    assert len(learner.history_[1]["scores"]) == 10


def test_refit_forgets_the_previous_run(iris):
    X, y = iris
    seen = []

    def record_state(learner, X_pool, batch_size):
        seen.append(hasattr(learner, "estimator_") or hasattr(learner, "X_labeled_"))
        return np.arange(batch_size) * 10

    learner = ActiveLearner(budget=20, initial_strategy=record_state, random_state=0)
    first = learner.fit(X, y).labeled_indices_
    second = learner.fit(X, y).labeled_indices_
    assert seen == [False, False]
    np.testing.assert_array_equal(first, second)


def test_simulated_run_is_reproducible(iris):
    X, y = iris
    runs = [
        ActiveLearner(RandomForestClassifier(n_estimators=10), budget=40, random_state=3)
        .fit(X, y)
        .labeled_indices_
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*runs)


def test_uncertainty_beats_random_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    scores = {}
    for name, strategy in [("margin", MarginSampling()), ("random", RandomSampling())]:
        scores[name] = np.mean([
            ActiveLearner(model, strategy, budget=160, n_initial=20, batch_size=20,
                          random_state=seed)
            .fit(X_train, y_train)
            .score(X_test, y_test)
            for seed in range(3)
        ])
    assert scores["margin"] > scores["random"] + 0.01


def test_rows_without_oracle_labels_are_never_acquired(iris):
    X, y = iris
    y_partial, rows = _partly_labelled(y, 60)
    with pytest.warns(UserWarning, match="90 rows of y equal missing_label=-1"):
        learner = ActiveLearner(budget=50, random_state=0).fit(X, y_partial)
    assert set(learner.labeled_indices_) <= set(rows)


def test_budget_above_available_labels_warns_and_uses_them_all(iris):
    X, y = iris
    y_partial, rows = _partly_labelled(y, 25)
    with pytest.warns(UserWarning, match="exceeds the 25 rows"), pytest.warns(
        UserWarning, match="missing_label=-1"
    ):
        learner = ActiveLearner(budget=100, random_state=0).fit(X, y_partial)
    assert sorted(learner.labeled_indices_) == sorted(rows)


def test_initial_strategy_chooses_the_first_rows(iris):
    X, y = iris

    def take_first(learner, X_pool, batch_size):
        return np.arange(batch_size) * 10  # rows 0, 10, 20, ... cover all three classes

    learner = ActiveLearner(
        budget=30, n_initial=15, initial_strategy=take_first, random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(learner.history_[0]["indices"], np.arange(15) * 10)


# ------------------------------------------------------------------ scikit-learn composition
def test_grid_search_over_strategies_and_estimators(iris):
    X, y = iris
    grid = GridSearchCV(
        ActiveLearner(budget=30, batch_size=5, random_state=0),
        {
            "query_strategy": [RandomSampling(), MarginSampling(), LeastConfidence()],
            "query_strategy__random_state": [0, 1],
            "estimator": [LogisticRegression(max_iter=500), KNeighborsClassifier(3)],
        },
        cv=3,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 12
    assert grid.best_score_ > 0.8
    assert grid.best_estimator_.n_labels_ == 30


def test_grid_search_over_nested_estimator_params(iris):
    X, y = iris
    grid = GridSearchCV(
        ActiveLearner(make_pipeline(StandardScaler(), LogisticRegression()), budget=30,
                      random_state=0),
        {"estimator__logisticregression__C": [0.01, 1.0], "batch_size": [5, 10]},
        cv=3,
    ).fit(X, y)
    assert grid.best_params_["estimator__logisticregression__C"] in (0.01, 1.0)


def test_cross_val_score_with_budget(iris):
    scores = cross_val_score(ActiveLearner(budget=30, random_state=0), *iris, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8


def test_active_learner_as_last_pipeline_step(iris):
    X, y = iris
    pipe = Pipeline([("scale", StandardScaler()), ("al", ActiveLearner(budget=30, random_state=0))])
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    y_known, _ = _partly_labelled(y, 30)
    pipe.set_params(al__budget=None).fit(X, y_known)
    indices = pipe[-1].query(pipe[:-1].transform(X), batch_size=4)
    assert indices.shape == (4,)


def test_dataframe_input_with_named_columns(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    model = Pipeline([
        ("cols", ColumnTransformer([("petal", StandardScaler(), ["petal_l", "petal_w"])])),
        ("clf", LogisticRegression()),
    ])
    y_known, _ = _partly_labelled(y, 30)
    learner = ActiveLearner(model, batch_size=5).fit(frame, y_known)
    assert list(learner.feature_names_in_) == list(frame.columns)
    picked = learner.query(frame)
    learner.teach(frame.iloc[picked], y[picked])
    assert learner.n_labels_ == 35 and isinstance(learner.X_labeled_, pd.DataFrame)
    with pytest.raises(ValueError, match="feature names"):
        learner.query(frame[frame.columns[::-1]])
    simulated = ActiveLearner(model, budget=30, random_state=0).fit(frame, y)
    assert simulated.score(frame, y) > 0.8


def test_string_labels_with_none_as_missing(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    y_known, rows = _partly_labelled(names, 30, missing=None)
    learner = ActiveLearner(missing_label=None).fit(X, y_known)
    assert set(learner.classes_) == {"setosa", "versicolor", "virginica"}
    assert set(learner.predict(X)) <= set(learner.classes_)
    simulated = ActiveLearner(budget=30, random_state=0).fit(X, names.astype(str))
    assert simulated.predict(X[:1])[0] in {"setosa", "versicolor", "virginica"}


def test_float_labels_with_nan_as_missing(iris):
    X, y = iris
    y_float = y.astype(float)
    y_float[::2] = np.nan
    learner = ActiveLearner(missing_label=np.nan).fit(X, y_float)
    assert learner.n_labels_ == 75


def test_clone_and_pickle_round_trip(iris):
    X, y = iris
    learner = ActiveLearner(query_strategy=EntropySampling(random_state=2), budget=30,
                            random_state=0).fit(X, y)
    cloned = clone(learner)
    assert not hasattr(cloned, "estimator_")
    assert cloned.get_params()["query_strategy"].get_params() == {"random_state": 2}
    restored = pickle.loads(pickle.dumps(learner))
    np.testing.assert_array_equal(restored.predict(X), learner.predict(X))
    np.testing.assert_array_equal(restored.query(X, 5), learner.query(X, 5))


def test_estimator_is_not_mutated(iris):
    estimator = LogisticRegression()
    ActiveLearner(estimator, budget=30, random_state=0).fit(*iris)
    assert not hasattr(estimator, "coef_")
    assert estimator.random_state is None


# ------------------------------------------------------------------ update modes
def test_partial_fit_update(iris):
    X, y = iris
    y_known, _ = _partly_labelled(y, 30)
    learner = ActiveLearner(
        SGDClassifier(loss="log_loss", random_state=0), update="partial_fit"
    ).fit(X, y_known)
    model = learner.estimator_
    learner.teach(X[:5], y[:5])
    assert learner.estimator_ is model  # updated in place, not refitted
    simulated = ActiveLearner(SGDClassifier(loss="log_loss"), update="partial_fit",
                              budget=40, random_state=0).fit(X, y)
    assert simulated.n_labels_ == 40


def test_warm_start_update_keeps_fitting_the_same_model(iris):
    X, y = iris
    learner = ActiveLearner(make_pipeline(StandardScaler(), LogisticRegression()),
                            update="warm_start",
                            budget=40, random_state=0).fit(X, y)
    assert learner.estimator_[-1].warm_start is True
    with pytest.raises(ValueError, match="needs an estimator with a warm_start parameter"):
        ActiveLearner(KNeighborsClassifier(), update="warm_start").fit(X, y)
    with pytest.raises(ValueError, match="needs an estimator with partial_fit"):
        ActiveLearner(KNeighborsClassifier(), update="partial_fit", budget=30).fit(X, y)


def test_teach_learns_a_new_class_on_refit_and_refuses_it_incrementally(iris):
    X, y = iris
    two_classes = np.where(y == 2, -1, y)
    learner = ActiveLearner().fit(X, two_classes)
    learner.teach(X[y == 2][:3], y[y == 2][:3])
    assert learner.classes_.tolist() == [0, 1, 2]
    incremental = ActiveLearner(SGDClassifier(), update="partial_fit").fit(X, two_classes)
    with pytest.raises(ValueError, match=r"labels \[2\] not among the classes seen at fit"):
        incremental.teach(X[y == 2][:3], y[y == 2][:3])
    assert incremental.n_labels_ == 100  # nothing half-added


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_are_rejected(iris, bad):
    X, y = iris
    X_bad = X.copy()
    X_bad[3, 1] = bad
    with pytest.raises(ValueError, match="Input X contains"):
        ActiveLearner(budget=30).fit(X_bad, y)
    learner = ActiveLearner().fit(X, y)
    with pytest.raises(ValueError, match="contains"):
        learner.query(X_bad)


def test_wrong_feature_count_in_pool(iris):
    learner = ActiveLearner().fit(*_masked(iris, 30))
    with pytest.raises(ValueError, match="X has 3 features, but ActiveLearner is expecting 4"):
        learner.query(iris[0][:, :3])


def test_empty_pool(iris):
    learner = ActiveLearner().fit(*_masked(iris, 30))
    with pytest.raises(ValueError, match="X_pool is empty"):
        learner.query(iris[0][:0])


def test_batch_larger_than_pool_takes_the_pool_with_a_warning(iris):
    learner = ActiveLearner().fit(*_masked(iris, 30))
    with pytest.warns(UserWarning, match="whole pool"):
        indices = learner.query(iris[0][:4], batch_size=10)
    assert sorted(indices) == [0, 1, 2, 3]


def test_budget_smaller_than_n_initial(iris):
    with pytest.raises(ValueError, match="budget=5 is smaller than n_initial=10"):
        ActiveLearner(budget=5).fit(*iris)


def test_one_labelled_class(iris):
    X, y = iris
    y_known = np.full_like(y, -1)
    y_known[:10] = 0
    with pytest.raises(ValueError, match="only one class"):
        ActiveLearner().fit(X, y_known)


def test_no_labelled_rows(iris):
    with pytest.raises(ValueError, match="no labelled rows"):
        ActiveLearner().fit(iris[0], np.full(150, -1))


def test_none_labels_without_missing_label_none(iris):
    X, y = iris
    y_obj = y.astype(object)
    y_obj[:5] = None
    with pytest.raises(ValueError, match="set missing_label=None"):
        ActiveLearner().fit(X, y_obj)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be a positive integer"),
        ({"budget": -1}, ValueError, "budget must be a positive integer"),
        ({"update": "sometimes"}, ValueError, "update must be one of"),
    ],
)
def test_bad_parameters(iris, params, error, match):
    with pytest.raises(error, match=match):
        ActiveLearner(**params).fit(*iris)


def test_teach_rejects_unlabelled_and_mismatched_rows(iris):
    X, y = iris
    learner = ActiveLearner().fit(*_masked(iris, 30))
    with pytest.raises(ValueError, match="unlabelled entries"):
        learner.teach(X[:2], [-1, 0])
    with pytest.raises(ValueError, match="X_new has 2 rows but y_new has 3 labels"):
        learner.teach(X[:2], [0, 1, 2])
    assert learner.n_labels_ == 30


def test_importing_skal_does_not_import_torch():
    code = (
        "import sys, skal, skal.strategies; "
        "from skal import ActiveLearner; "
        "assert 'torch' not in sys.modules and 'skorch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_warnings_on_a_clean_run(iris):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ActiveLearner(budget=30, random_state=0).fit(*iris).query(iris[0], 5)


def test_incremental_simulation_refits_when_a_new_class_appears(iris):
    X, y = iris
    order = np.argsort(y, kind="stable")  # classes 0, then 1, then 2

    def in_order(learner, X_pool, batch_size):
        return np.arange(batch_size)

    X_sorted, y_sorted = X[order], y[order]
    y_sorted = y_sorted.copy()
    learner = ActiveLearner(
        SGDClassifier(loss="log_loss", random_state=0), in_order, update="partial_fit",
        budget=120, n_initial=60, batch_size=30, initial_strategy=in_order, random_state=0,
    ).fit(X_sorted, y_sorted)
    assert learner.classes_.tolist() == [0, 1, 2]


def test_predict_proba_samples_through_a_pipeline():
    from sklearn.base import BaseEstimator, ClassifierMixin

    class TwoSampleLogistic(ClassifierMixin, BaseEstimator):
        """A real LogisticRegression with C=1 and C=0.01 as two posterior samples."""

        def fit(self, X, y):
            self.models_ = [LogisticRegression(C=c).fit(X, y) for c in (1.0, 0.01)]
            self.classes_ = self.models_[0].classes_
            return self

        def predict_proba(self, X):
            return self.predict_proba_samples(X).mean(axis=0)

        def predict(self, X):
            return self.classes_[self.predict_proba(X).argmax(axis=1)]

        def predict_proba_samples(self, X):
            return np.stack([m.predict_proba(X) for m in self.models_])

    X, y = load_iris(return_X_y=True)
    learner = ActiveLearner(make_pipeline(StandardScaler(), TwoSampleLogistic())).fit(X, y)
    samples = learner.predict_proba_samples(X)
    scaled = learner.estimator_[0].transform(X)
    np.testing.assert_allclose(samples[1], learner.estimator_[-1].models_[1].predict_proba(scaled))
    assert ActiveLearner(query_strategy=KLDivergence()).set_params(
        estimator=make_pipeline(StandardScaler(), TwoSampleLogistic())
    ).fit(X, y).query(X, 3).shape == (3,)


def test_on_cycle_sees_every_fitted_model(iris):
    X, y = iris
    seen = []

    def score_cycle(learner, record):
        seen.append((record["n_labels"], learner.n_labels_, learner.score(X, y)))

    learner = ActiveLearner(budget=40, batch_size=10, random_state=0)
    learner.fit(X, y, on_cycle=score_cycle)
    assert [s[0] for s in seen] == [10, 20, 30, 40]
    assert all(n_record == n_fitted for n_record, n_fitted, _ in seen)
    assert seen[-1][2] == learner.score(X, y)
    seen.clear()
    ActiveLearner().fit(X, y, on_cycle=score_cycle)
    assert len(seen) == 1


def test_pool_scoring_honours_joblib_parallel_config():
    from joblib import parallel_config

    X, y = make_blobs(n_samples=2000, centers=3, n_features=5, random_state=0)
    y_known, _ = _partly_labelled(y, 30)
    learner = ActiveLearner(query_strategy=EntropySampling(random_state=0), chunk_size=300,
                            n_jobs=2).fit(X, y_known)
    expected = EntropySampling().score(learner.set_params(n_jobs=None), X)
    learner.set_params(n_jobs=2)
    with parallel_config(backend="loky"):  # processes: the learner travels by pickle
        np.testing.assert_allclose(EntropySampling().score(learner, X), expected)


def test_teach_keeps_longer_string_labels_intact(iris):
    X, y = iris
    names = np.array(["cat", "dog", "horse"])[y]
    y_known = np.array([n if n != "horse" else "" for n in names])  # dtype "<U3"
    learner = ActiveLearner(missing_label="").fit(X, y_known)
    assert learner.y_labeled_.dtype.itemsize < np.array(["horse"]).dtype.itemsize
    learner.teach(X[y == 2][:2], ["horse", "horse"])
    assert learner.y_labeled_[-2:].tolist() == ["horse", "horse"]
    assert "horse" in learner.classes_
