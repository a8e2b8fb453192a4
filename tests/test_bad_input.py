"""Bad input gets a clear ValueError/TypeError naming the parameter: the defects of issue #10."""

import signal
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from _registry import (
    COLD_START,
    MULTILABEL,
    NEEDS_LOSS_PREDICTION,
    NEEDS_SAMPLES,
    REGRESSION,
    STRATEGY_NAMES,
    TASK_AGNOSTIC,
    learner_for,
    targets_for,
)
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import BayesianRidge, LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.estimator_checks import check_classifiers_classes

import skal.strategies as strategies
from skal import ActiveLearner, ActiveRegressor, CommitteeLearner, CommitteeRegressor
from skal.strategies import top_k

X = np.random.RandomState(0).normal(size=(60, 3))
y = (X[:, 0] > 0).astype(int)
yl = np.where(np.arange(60) < 20, y, -1)

@contextmanager
def _no_hang(seconds=30):
    def fail(*_):
        raise AssertionError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------ items 2 and 3
def test_short_plain_function_strategy_is_an_error_not_a_hang():
    learner = ActiveLearner(None, lambda lrn, X_pool, k: np.array([], int), budget=30)
    with _no_hang(), pytest.raises(ValueError, match="returned 0 indices when 10 were asked"):
        learner.fit(X, y)


def test_plain_function_strategy_must_return_exactly_batch_size():
    def ten(learner, X_pool, batch_size):
        return np.arange(10)

    learner = ActiveLearner(None, ten, batch_size=5).fit(X, yl)
    with pytest.raises(ValueError, match="returned 10 indices when 5 were asked"):
        learner.query(X[20:])
    with pytest.raises(ValueError, match="returned 10 indices when 5 were asked"):
        ActiveLearner(None, ten, batch_size=5, budget=42, random_state=0).fit(X, y)


# ------------------------------------------------------------------ item 4
def test_teach_with_labels_of_another_type_is_a_type_error():
    learner = ActiveLearner().fit(X, yl)
    with pytest.raises(TypeError, match="y_new holds string labels but the learner's classes_"):
        learner.teach(X[20:22], ["a", "b"])
    assert learner.classes_.tolist() == [0, 1]
    y_text = np.where(yl == 1, "yes", np.where(yl == 0, "no", None))
    learner = ActiveLearner(missing_label=None).fit(X, y_text)
    with pytest.raises(TypeError, match="number"):
        learner.teach(X[20:22], [0, 1])


def test_teach_accepts_another_width_of_the_same_type():
    y_text = np.where(y == 1, "cat", "dog")
    learner = ActiveLearner().fit(X[:20], y_text[:20])
    learner.teach(X[20:22], np.array(["horse", "cat"]))
    assert "horse" in learner.classes_


# ------------------------------------------------------------------ item 5
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_initial_strategy_needing_a_model_says_cold_start(name):
    strategy = getattr(strategies, name)()
    learner = learner_for(name, initial_strategy=strategy, budget=30, n_initial=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if name in COLD_START:
            assert learner.fit(X, y).n_labels_ == 30
            return
        with pytest.raises(NotFittedError, match="cold start") as error:
            learner.fit(X, targets_for(name, y, X))
    assert isinstance(error.value, ValueError)
    assert name in str(error.value) and "RandomSampling" in str(error.value)


# ------------------------------------------------------------------ item 6
class _NaNModel(ClassifierMixin, BaseEstimator):
    """Simulates a broken model: a fitted classifier whose outputs are NaN for some rows."""

    def fit(self, X, y):
        self.model_ = LogisticRegression().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        proba = self.model_.predict_proba(X)
        proba[::7] = np.nan
        return proba

    def decision_function(self, X):
        decision = self.model_.decision_function(X)
        decision[::7] = np.nan
        return decision

    def predict(self, X):
        return self.model_.predict(X)

    def transform(self, X):
        return np.asarray(X)

    def predict_loss(self, X):
        loss = self.model_.predict_proba(X)[:, 0]
        loss[::7] = np.nan
        return loss


class _NaNRegressor(RegressorMixin, BaseEstimator):
    """Simulates a broken regressor: NaN predictions (and std) for some rows."""

    def fit(self, X, y):
        self.model_ = BayesianRidge().fit(X, y)
        return self

    def predict(self, X, return_std=False):
        mean, std = self.model_.predict(X, return_std=True)
        mean[::7] = np.nan
        std[::7] = np.nan
        return (mean, std) if return_std else mean


@pytest.mark.parametrize(
    # a task-agnostic strategy asks for no prediction that could be NaN
    "name", [n for n in STRATEGY_NAMES if n not in COLD_START | TASK_AGNOSTIC]
)
def test_nan_predictions_are_one_clear_error_in_every_strategy(name):
    targets = targets_for(name, yl, X)
    if name in REGRESSION:
        kind = CommitteeRegressor if name in NEEDS_SAMPLES else ActiveRegressor
        learner = kind(_NaNRegressor(), missing_label=-1, random_state=0).fit(X, targets)
    elif name in MULTILABEL:
        learner = ActiveLearner(OneVsRestClassifier(_NaNModel())).fit(X, targets)
    elif name in NEEDS_SAMPLES:
        learner = CommitteeLearner(_NaNModel(), n_estimators=3, random_state=0).fit(X, targets)
    else:
        learner = ActiveLearner(_NaNModel()).fit(X, targets)
    with pytest.raises(ValueError, match=r"returned NaN or infinite values for \d+ pool row"):
        learner.query(X[20:], 3)


# ------------------------------------------------------------------ item 7
def test_minus_one_and_plus_one_labels_in_a_simulated_run_are_two_classes():
    y_pm = np.where(y == 1, 1, -1)
    with pytest.warns(UserWarning, match="-1 is taken as a class"):
        learner = ActiveLearner(budget=30, random_state=0).fit(X, y_pm)
    assert learner.classes_.tolist() == [-1, 1]
    assert set(learner.predict(X)) <= {-1, 1}
    quiet = ActiveLearner(budget=30, missing_label=None, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert quiet.fit(X, y_pm).classes_.tolist() == [-1, 1]


def test_minus_one_rows_of_an_oracle_are_a_warning_with_the_way_out():
    y3 = y.copy()
    y3[:10] = -1
    with pytest.warns(UserWarning, match="10 rows of y equal missing_label=-1.*missing_label=None"):
        learner = ActiveLearner(budget=30, random_state=0).fit(X, y3)
    assert not set(learner.labeled_indices_) & set(range(10))


def test_one_labelled_class_interactively_names_the_way_out():
    y_one = np.where(np.arange(60) < 20, 1, -1)
    with pytest.raises(ValueError, match="only one class.*missing_label=None"):
        ActiveLearner().fit(X, y_one)


@pytest.mark.parametrize(
    "learner",
    [ActiveLearner(budget=40, batch_size=5, random_state=0),
     CommitteeLearner(n_estimators=3, budget=40, random_state=0)],
    ids=["ActiveLearner", "CommitteeLearner"],
)
def test_simulated_runs_pass_sklearns_classes_check(learner):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_classifiers_classes(type(learner).__name__, learner)


# ------------------------------------------------------------------ item 8
@pytest.mark.parametrize("name", ["CoreSet", "TypiClust", "ProbCover"])
def test_huge_finite_values_are_one_clear_error(name):
    strategy = getattr(strategies, name)(random_state=0)
    with pytest.raises(ValueError, match="overflow.*Scale the features"):
        strategy(None, X * 1e300, 3)
    # Large but safe values still work, and give the picks of the unscaled data.
    if name == "CoreSet":
        assert strategy(None, X * 1e100, 3).tolist() == strategy(None, X, 3).tolist()


@pytest.mark.parametrize("dtype", [np.float64, object])
def test_huge_features_at_fit_are_a_clear_error_not_a_hang(dtype):
    from sklearn.svm import LinearSVC

    X_huge = X.copy()
    X_huge[3, 1] = 1e300  # LinearSVC's solver never returns on this
    with _no_hang(), pytest.raises(ValueError, match="overflow float64.*StandardScaler"):
        ActiveLearner(LinearSVC()).fit(X_huge.astype(dtype), yl)


# ------------------------------------------------------------------ item 9
def test_three_dimensional_pool_names_the_layout():
    learner = ActiveLearner().fit(np.c_[X, X[:, :1]], yl)
    with pytest.raises(ValueError, match=r"X_pool has 3 dimensions \(shape \(60, 2, 2\)\)"):
        learner.query(np.zeros((60, 2, 2)))


@pytest.mark.parametrize(("k", "error"), [(0, ValueError), (6, ValueError), (1.5, TypeError)])
def test_top_k_checks_k(k, error):
    with pytest.raises(error, match="k must be"):
        top_k(np.arange(5.0), k)


def test_mixed_number_and_string_labels_are_named():
    y_mixed = np.array([1, "a"] * 30, dtype=object)
    with pytest.raises(TypeError, match="y mixes numbers and strings as labels"):
        ActiveLearner().fit(X, y_mixed)


# ------------------------------------------------------------------ item 11 (strategies)
def test_probcover_checks_n_clusters():
    with pytest.raises(ValueError, match="'n_clusters' parameter of ProbCover"):
        strategies.ProbCover(n_clusters=0)(None, X, 2)


# ------------------------------------------------------------------ item 13 (tags)
@pytest.mark.parametrize(
    ("name", "as_initial"),
    [(name, False) for name in STRATEGY_NAMES] + [(name, True) for name in sorted(COLD_START)],
)
def test_sparse_tag_tells_the_truth_for_every_strategy(name, as_initial):
    import scipy.sparse as sp
    from sklearn.utils import get_tags

    strategy = getattr(strategies, name)(random_state=0)
    params = {"initial_strategy": strategy} if as_initial else {"query_strategy": strategy}
    learner = learner_for("LogisticRegression", budget=24, batch_size=4, n_initial=6)
    targets = y
    if (name in NEEDS_SAMPLES | REGRESSION | MULTILABEL | NEEDS_LOSS_PREDICTION
            and not as_initial):
        learner = learner_for(name, budget=24, batch_size=4, n_initial=6)
        targets = targets_for(name, y, X)
    learner.set_params(**params)
    X_sparse = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    declared = get_tags(learner).input_tags.sparse
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            learner.fit(X_sparse, targets)
        works = True
    except TypeError as error:
        assert "sparse" in str(error).lower()
        works = False
    assert declared == works


# ------------------------------------------------------------------ the Pipeline goes inside
def test_a_pipeline_ending_in_a_learner_is_pointed_inside():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    outer = make_pipeline(StandardScaler(), ActiveLearner())
    with pytest.raises(TypeError, match=r"inside it: ActiveLearner\(make_pipeline"):
        ActiveLearner(outer).fit(X, yl)
    with pytest.raises(TypeError, match="itself an active learner"):
        CommitteeLearner([ActiveLearner(), LogisticRegression()]).fit(X, yl)
