"""Semi-supervised models in the loop: fitted on every row with the unlabelled ones marked -1
(supervised ones on the labelled rows only), and CEAL's pseudo-labels."""

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_circles
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelPropagation, LabelSpreading, SelfTrainingClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from skal import ActiveLearner, CommitteeLearner, EntropySampling, MarginSampling
from skal.learners._semi import is_semi_supervised
from skal.semi_supervised import CEAL


def circles_with_two_labels():
    """Two rings; only the first (outer ring) and last (inner ring) rows are labelled."""
    X, y = make_circles(200, shuffle=False)
    y_partial = np.full(200, -1)
    y_partial[[0, -1]] = y[[0, -1]]
    return X, y, y_partial


def test_the_rule_that_says_which_models_learn_from_unlabelled_rows():
    for model in [SelfTrainingClassifier(LogisticRegression()), LabelSpreading(),
                  LabelPropagation(), CEAL(), make_pipeline(StandardScaler(), LabelSpreading())]:
        assert is_semi_supervised(model)
    for model in [LogisticRegression(), make_pipeline(StandardScaler(), LogisticRegression())]:
        assert not is_semi_supervised(model)


def test_semi_supervised_estimator_is_fitted_on_every_row_and_follows_the_rings():
    X, y, y_partial = circles_with_two_labels()
    learner = ActiveLearner(LabelSpreading(kernel="knn", alpha=0.8)).fit(X, y_partial)
    # Label spreading along the rings labels every row right from two labels; the labelled
    # rows alone cannot tell the rings apart.
    assert learner.score(X, y) == 1.0
    assert learner.estimator_.transduction_.shape == (200,)
    assert learner.X_unlabeled_.shape == (198, 2)
    assert learner.n_labels_ == 2
    alone = LabelSpreading(kernel="knn", alpha=0.8, n_neighbors=1).fit(X[[0, -1]], y[[0, -1]])
    assert alone.score(X, y) < 0.7


def test_supervised_estimator_sees_the_labelled_rows_only():
    X, _, y_partial = circles_with_two_labels()
    learner = ActiveLearner(KNeighborsClassifier(n_neighbors=1)).fit(X, y_partial)
    assert learner.estimator_.n_samples_fit_ == 2
    assert not hasattr(learner, "X_unlabeled_")
    assert learner.history_[0]["pseudo_labels"] is None


def test_simulated_run_hands_the_rows_not_yet_labelled_to_the_model():
    X, y, _ = circles_with_two_labels()
    cycles = []

    def record(learner, entry):
        model = learner.estimator_
        labeled = np.zeros(200, dtype=bool)
        labeled[learner.labeled_indices_] = True
        # The model was fitted on the labelled rows, then every other row marked -1.
        assert model.transduction_.shape == (200,)
        np.testing.assert_array_equal(learner.X_unlabeled_, X[~labeled])
        cycles.append(entry["n_labels"])

    learner = ActiveLearner(
        LabelSpreading(kernel="knn", alpha=0.8), MarginSampling(), budget=20, n_initial=4,
        batch_size=4, random_state=0,
    ).fit(X, y, on_cycle=record)
    assert cycles == [4, 8, 12, 16, 20]
    assert learner.score(X, y) == 1.0


def test_committee_of_self_training_members_with_bootstrap():
    X, y = load_iris(return_X_y=True)
    committee = CommitteeLearner(
        SelfTrainingClassifier(GaussianNB(), max_iter=2), n_estimators=3, budget=15,
        n_initial=9, batch_size=3, random_state=0,
    ).fit(X, y)
    n_unlabeled = 150 - 15
    for member in committee.estimators_:
        # a bootstrap of the 15 labelled rows, then all unlabelled rows
        assert member.labeled_iter_.shape == (15 + n_unlabeled,)
        assert (member.labeled_iter_[:15] == 0).all()
    pseudo = committee.history_[-1]["pseudo_labels"]
    assert pseudo.size > 0
    assert not np.isin(pseudo, committee.labeled_indices_).any()
    assert committee.n_labels_ == 15


def test_grid_search_chooses_between_supervised_and_semi_supervised_models():
    X, y = make_circles(300, noise=0.05, factor=0.5, random_state=0)
    spreading = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.8)
    search = GridSearchCV(
        ActiveLearner(budget=12, n_initial=4, batch_size=4, random_state=0),
        {"estimator": [LogisticRegression(), spreading]},
        cv=3,
    ).fit(X, y)
    # 12 labels: a linear model cannot separate rings; spreading over the pool can
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [0.6033, 1.0], atol=1e-3)
    assert isinstance(search.best_params_["estimator"], LabelSpreading)


def test_teach_moves_rows_from_unlabelled_to_labelled():
    X, y, y_partial = circles_with_two_labels()
    learner = ActiveLearner(LabelSpreading(kernel="knn", alpha=0.8)).fit(X, y_partial)
    learner.teach(X[5:8], y[5:8])
    assert learner.X_unlabeled_.shape == (195, 2)
    assert not any((learner.X_unlabeled_ == row).all(axis=1).any() for row in X[5:8])
    assert learner.estimator_.transduction_.shape == (200,)


def test_labels_a_semi_supervised_model_cannot_take_are_refused_with_the_way_out():
    X, y = load_iris(return_X_y=True)
    # classes -1, 0, 1; -2 marks the unlabelled rows: -1 collides with the model's mark
    y_partial = np.where(np.arange(150) % 5 == 0, y - 1, -2)
    with pytest.raises(ValueError, match="-1 is one of the classes.*LabelEncoder"):
        ActiveLearner(LabelSpreading(), missing_label=-2).fit(X, y_partial)
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    names[np.arange(150) % 5 != 0] = None
    with pytest.raises(ValueError, match="LabelSpreading needs numeric class labels"):
        ActiveLearner(LabelSpreading(), missing_label=None).fit(X, names)
    # SelfTrainingClassifier takes strings with the mark -1 in an object array
    learner = ActiveLearner(SelfTrainingClassifier(LogisticRegression(max_iter=1000)),
                            missing_label=None).fit(X, names)
    assert set(learner.classes_) == {"setosa", "versicolor", "virginica"}


def test_ceal_pseudo_labels_by_hand_with_a_one_nearest_neighbour_model():
    X = np.array([[0.0], [10.0], [1.0], [9.0], [5.1]])
    y = np.array([0, 1, -1, -1, -1])
    # 1-NN probabilities are one-hot (entropy 0): every unlabelled row takes the class of
    # its nearest labelled row (5.1 is 4.9 from 10, 5.1 from 0).
    model = CEAL(KNeighborsClassifier(n_neighbors=1), threshold=0.01).fit(X, y)
    np.testing.assert_array_equal(model.transduction_, [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(model.labeled_iter_, [0, 0, 1, 1, 1])
    assert model.n_pseudo_labels_ == 3
    assert model.estimator_.n_samples_fit_ == 5
    # 2-NN over two labelled rows: probabilities (1/2, 1/2), entropy ln 2 = 0.6931. A
    # threshold of 0.7 takes every row; 0.7 - 0.01 * 2 labels = 0.68 takes none.
    two = KNeighborsClassifier(n_neighbors=2)
    assert CEAL(two, threshold=0.7, threshold_decay=0.0).fit(X, y).n_pseudo_labels_ == 3
    decayed = CEAL(two, threshold=0.7, threshold_decay=0.01).fit(X, y)
    assert decayed.threshold_ == pytest.approx(0.68)
    assert decayed.n_pseudo_labels_ == 0
    assert decayed.estimator_.n_samples_fit_ == 2


def test_ceal_in_a_simulated_run_pseudo_labels_are_redecided_and_never_labels():
    X, y = load_iris(return_X_y=True)
    learner = ActiveLearner(
        CEAL(make_pipeline(StandardScaler(), LogisticRegression(C=100, max_iter=1000)),
             threshold=0.05),
        EntropySampling(), budget=30, n_initial=10, batch_size=10, random_state=0,
    ).fit(X, y)
    pseudo = [entry["pseudo_labels"] for entry in learner.history_]
    assert all(p.size > 0 for p in pseudo)
    for entry, rows in zip(learner.history_, pseudo, strict=True):
        assert entry["n_labels"] == len(learner.history_[: entry["cycle"] + 1]) * 10
        labeled_so_far = np.concatenate(
            [e["indices"] for e in learner.history_[: entry["cycle"] + 1]]
        )
        assert not np.isin(rows, labeled_so_far).any()
    assert learner.n_labels_ == 30
    assert learner.estimator_.n_pseudo_labels_ == pseudo[-1].size
    assert not {tuple(p) for p in pseudo[:1]} == {tuple(pseudo[-1])}


def test_ceal_refuses_bad_parameters_and_models_without_probabilities():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        CEAL(threshold=-1).fit(X, y)
    with pytest.raises(TypeError, match="needs predict_proba.*CalibratedClassifierCV"):
        from sklearn.svm import LinearSVC

        CEAL(LinearSVC()).fit(X, y)
    with pytest.raises(ValueError, match="no labelled rows"):
        CEAL().fit(X, np.full(150, -1))


@parametrize_with_checks(
    [CEAL()],
    expected_failed_checks=lambda estimator: {
        # as for scikit-learn's own semi-supervised estimators: -1 marks an unlabelled row
        "check_classifiers_classes": "y in {-1, 1}; -1 marks an unlabelled row",
    },
)
def test_ceal_is_a_scikit_learn_classifier(estimator, check):
    check(estimator)
