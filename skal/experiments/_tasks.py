"""What ``skal run`` does differently for classification, multi-label and regression data:
one :class:`Task` per kind of target (its data sets, models, default strategies, learners
and metrics), looked up from the data set and the model, so the run itself is one loop.
"""

from dataclasses import dataclass, field
from functools import partial

import numpy as np
from sklearn.metrics import f1_score, hamming_loss, root_mean_squared_error


# ---------------------------------------------------------------------------- metrics
def rmse(estimator, X, y):
    """Root mean squared error of ``estimator`` on ``(X, y)``, averaged over outputs."""
    return root_mean_squared_error(y, estimator.predict(X))


def f1_micro(estimator, X, y):
    """Micro-averaged F1 of a multi-label prediction (0 where nothing is predicted)."""
    return f1_score(y, estimator.predict(X), average="micro", zero_division=0)


def f1_macro(estimator, X, y):
    """Macro-averaged F1 over the labels (a label never predicted nor present counts 0)."""
    return f1_score(y, estimator.predict(X), average="macro", zero_division=0)


def hamming(estimator, X, y):
    """Hamming loss: the fraction of wrong label entries."""
    return hamming_loss(y, estimator.predict(X))


@dataclass(frozen=True)
class Metric:
    """A test metric of a run: ``name`` (its result column is ``score_<name>``), the label
    the tables and plots show, a scorer for :func:`~sklearn.metrics.check_scoring` (None:
    the learner's ``score``) and whether higher is better."""

    name: str
    label: str
    scorer: object = None
    greater_is_better: bool = True


# ---------------------------------------------------------------------------- models
def _scaled(model):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model)


def _logreg():
    from sklearn.linear_model import LogisticRegression

    return _scaled(LogisticRegression(max_iter=1000))


def _random_forest_classifier():
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100)


def _extra_trees_classifier():
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(n_estimators=100)


def _knn_classifier():
    from sklearn.neighbors import KNeighborsClassifier

    return _scaled(KNeighborsClassifier(n_neighbors=5))


def _naive_bayes():
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB()


def _label_spreading():
    # Semi-supervised: the learner fits it on the labelled rows and every unlabelled pool row
    # (marked -1), so the labels spread along a kNN graph of the whole pool.
    from skal.experiments._recipes import ReachingLabelSpreading

    return _scaled(ReachingLabelSpreading(kernel="knn", n_neighbors=10, alpha=0.2,
                                          max_iter=100))


def _linear_svm():
    from sklearn.svm import LinearSVC

    return _scaled(LinearSVC())


def _one_vs_rest_logreg():
    # binary relevance: one logistic regression per label
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    return _scaled(OneVsRestClassifier(LogisticRegression(max_iter=1000)))


def _one_vs_rest_linear_svm():
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    return _scaled(OneVsRestClassifier(LinearSVC()))


def _gaussian_process():
    # Standardised features, an isotropic RBF with a noise term and standardised targets:
    # a predictive std for variance sampling, on one output or several (linnerud).
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    kernel = ConstantKernel() * RBF() + WhiteKernel()
    return _scaled(GaussianProcessRegressor(kernel=kernel, normalize_y=True))


def _bayesian_ridge():
    from sklearn.linear_model import BayesianRidge

    return _scaled(BayesianRidge())


def _ridge():
    from sklearn.linear_model import Ridge

    return _scaled(Ridge())


def _random_forest_regressor():
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=100)


def _knn_regressor():
    from sklearn.neighbors import KNeighborsRegressor

    return _scaled(KNeighborsRegressor(n_neighbors=5))


# ---------------------------------------------------------------------------- committees
def _lacks(method):
    def lacks(estimator):
        return not hasattr(estimator, method)

    return lacks


def _no_spread(estimator):
    from skal.learners._active import predicts_std

    return not predicts_std(estimator) and not hasattr(estimator, "predict_samples")


# ---------------------------------------------------------------------------- the tasks
@dataclass(frozen=True)
class Task:
    """Everything of a ``skal run`` that depends on the kind of target.

    ``committee_for`` maps a strategy class name to a test of the model: true when the
    strategy needs a committee of that model (its posterior samples or its spread).
    """

    kind: str
    learner: str
    committee: str
    models: dict
    default_model: str
    default_strategies: tuple
    metrics: tuple
    stratify: bool
    committee_for: dict = field(default_factory=dict)

    def make_learner(self, estimator, strategy, committee_size, **params):
        """The learner ``strategy`` needs around ``estimator``: a committee or a single one."""
        import skal

        needs = self.committee_for.get(type(strategy).__name__)
        if needs is not None and needs(estimator):
            if committee_size < 2:
                raise ValueError(
                    f"strategy {type(strategy).__name__} needs a committee of models, but "
                    f"--committee-size {committee_size} is a single model; use "
                    "--committee-size 2 or more"
                )
            return getattr(skal, self.committee)(
                estimator, strategy, n_estimators=committee_size, **params
            )
        return getattr(skal, self.learner)(estimator, strategy, **params)

    def describe_targets(self, y):
        """``"10 classes"``, ``"5 labels"``, ``"1 output"``: what the data's targets are."""
        y = np.asarray(y)
        if self.kind == "classification":
            return f"{np.unique(y).size} classes"
        n = 1 if y.ndim == 1 else y.shape[1]
        word = "labels" if self.kind == "multilabel" else "outputs"
        return f"{n} {word[:-1] if n == 1 else word}"


_CLASSIFICATION = Task(
    kind="classification",
    learner="ActiveLearner",
    committee="CommitteeLearner",
    models={
        "logreg": _logreg,
        "random_forest": _random_forest_classifier,
        "extra_trees": _extra_trees_classifier,
        "knn": _knn_classifier,
        "naive_bayes": _naive_bayes,
        "linear_svm": _linear_svm,
        "label_spreading": _label_spreading,
    },
    default_model="logreg",
    default_strategies=("random", "margin", "entropy", "vote_entropy"),
    metrics=(Metric("accuracy", "acc"),),
    stratify=True,
    committee_for={name: _lacks("predict_proba_samples")
                   for name in ("VoteEntropy", "KLDivergence", "ConsensusEntropy")},
)

_REGRESSION = Task(
    kind="regression",
    learner="ActiveRegressor",
    committee="CommitteeRegressor",
    models={
        "gp": _gaussian_process,
        "bayesian_ridge": _bayesian_ridge,
        "ridge": _ridge,
        "random_forest": _random_forest_regressor,
        "knn": _knn_regressor,
    },
    default_model="gp",
    default_strategies=("random", "variance", "greedy", "greedy:space=x", "emcm", "coreset"),
    metrics=(Metric("r2", "R²", "r2"), Metric("rmse", "RMSE", rmse, greater_is_better=False)),
    stratify=False,
    # EMCM's bootstrap models (Cai et al.) and variance without a predictive std
    committee_for={"EMCM": _lacks("predict_samples"), "VarianceSampling": _no_spread},
)

_MULTILABEL = Task(
    kind="multilabel",
    learner="ActiveLearner",
    committee="CommitteeLearner",  # refuses multi-label targets with a clear error
    models={
        "logreg": _one_vs_rest_logreg,
        "linear_svm": _one_vs_rest_linear_svm,
        "knn": _knn_classifier,
        "random_forest": _random_forest_classifier,
    },
    default_model="logreg",
    default_strategies=("random", "multilabel_margin", "multilabel_margin:aggregate=mean",
                        "mmc", "adaptive_multilabel"),
    metrics=(
        Metric("f1_micro", "micro-F1", f1_micro),
        Metric("f1_macro", "macro-F1", f1_macro),
        Metric("hamming", "Hamming loss", hamming, greater_is_better=False),
    ),
    stratify=False,
)

TASKS = {task.kind: task for task in (_CLASSIFICATION, _REGRESSION, _MULTILABEL)}


# ---------------------------------------------------------------------------- data sets
def _bundled(name):
    import sklearn.datasets

    return getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)


def _generated(name, **params):
    import sklearn.datasets

    X, y = getattr(sklearn.datasets, f"make_{name}")(random_state=0, **params)[:2]
    return X, y


#: ``{name: (kind of target, loader)}``: the data sets that ship with scikit-learn. The
#: generated ones have fixed sizes and seed 0, so a name always means the same rows.
DATASETS = {
    "digits": ("classification", partial(_bundled, "digits")),
    "iris": ("classification", partial(_bundled, "iris")),
    "wine": ("classification", partial(_bundled, "wine")),
    "breast_cancer": ("classification", partial(_bundled, "breast_cancer")),
    "diabetes": ("regression", partial(_bundled, "diabetes")),
    "linnerud": ("regression", partial(_bundled, "linnerud")),
    "friedman1": ("regression", partial(_generated, "friedman1", n_samples=1000, noise=1.0)),
    "regression": ("regression", partial(_generated, "regression", n_samples=1000,
                                         n_features=20, n_informative=10, noise=10.0)),
    "multilabel": ("multilabel", partial(_generated, "multilabel_classification",
                                         n_samples=1000, n_features=20, n_classes=5,
                                         n_labels=2)),
}


def task_for(data, model, extra_models=()):
    """The :class:`Task` of a run on data set ``data`` with model ``model`` (None: the
    task's default).

    A bundled data set decides; other data (a CSV file, MNIST) are classification unless the
    model is a regression model only. ``extra_models`` are further names taken as
    classifiers (the torch networks).
    """
    if data in DATASETS:
        task = TASKS[DATASETS[data][0]]
    elif model is not None and model not in _CLASSIFICATION.models and model in (
        _REGRESSION.models
    ) and model not in extra_models:
        task = _REGRESSION
    else:
        task = _CLASSIFICATION
    known = list(task.models) + (list(extra_models) if task is _CLASSIFICATION else [])
    if model is not None and model not in known:
        where = f"data set {data!r}" if data in DATASETS else "this data"
        others = [kind for kind, other in TASKS.items() if model in other.models]
        what = f" (a {' or '.join(others)} model)" if others else ""
        raise ValueError(
            f"unknown model {model!r}{what} for {where}, a {task.kind} task; {task.kind} "
            f"models: {', '.join(known)}"
        )
    return task


def load_dataset(name):
    """``(X, y)`` of a data set of :data:`DATASETS`."""
    return DATASETS[name][1]()
