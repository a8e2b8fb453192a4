"""ActiveLearner and ActiveRegressor: one scikit-learn estimator inside the active-learning loop."""

import inspect

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, clone
from sklearn.linear_model import BayesianRidge
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from skal.learners._base import (
    BaseActiveLearner,
    _last_step,
    _model_has,
    default_estimator,
    enable_warm_start,
    seed_estimator,
)
from skal.learners._targets import targets_for_classifier, targets_for_regressor
from skal.strategies._multilabel import MultilabelMargin
from skal.strategies._regression import GreedySampling, VarianceSampling
from skal.strategies._uncertainty import DecisionMargin, MarginSampling


def default_regressor():
    """The regressor used when ``ActiveRegressor(estimator=None)``."""
    return BayesianRidge()


def predicts_std(model):
    """Does ``model.predict`` (a Pipeline's last step's) take ``return_std``?"""
    predict = getattr(_last_step(model), "predict", None)
    if predict is None:
        return False
    try:
        return "return_std" in inspect.signature(predict).parameters
    except (TypeError, ValueError):
        return False


class _SingleEstimatorLearner(BaseActiveLearner):
    """The loop around one estimator: fit a seeded clone, update it, delegate to it."""

    def _configured_estimator(self):
        return self._default_estimator() if self.estimator is None else self.estimator

    def _models_for_delegation(self):
        if hasattr(self, "estimator_"):
            return [self.estimator_]
        return [self._configured_estimator()]

    def _fit_model(self, X, y):
        estimator = seed_estimator(
            clone(self._configured_estimator()), self._model_seed, overwrite=False
        )
        if self.update == "warm_start":
            enable_warm_start(estimator)
        self.estimator_ = estimator.fit(*self._training_set(estimator, X, y))

    def _update_model(self, X_new, y_new, X_all, y_all):
        if self.update == "warm_start":
            self.estimator_.fit(*self._training_set(self.estimator_, X_all, y_all))
        else:
            if not hasattr(self.estimator_, "partial_fit"):
                raise ValueError(
                    f"update='partial_fit' needs an estimator with partial_fit; "
                    f"{type(self.estimator_).__name__} has none."
                )
            self.estimator_.partial_fit(X_new, y_new, **self._targets.partial_fit_kwargs(self))

    def _predict(self, X):
        return self.estimator_.predict(X)

    def _predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    def _last_step_call(self, method, X, **kwargs):
        """``method`` of the estimator's last step, on ``X`` through the earlier steps."""
        check_is_fitted(self)
        X = self._check_X(X)
        if isinstance(self.estimator_, Pipeline):
            X = self.estimator_[:-1].transform(X)
        return getattr(_last_step(self.estimator_), method)(X, **kwargs)

    @available_if(_model_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the current model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(self._check_X(X))

    @available_if(_model_has("transform"))
    def fit_transform(self, X, y, **fit_params):
        """Fit (see :meth:`fit`), then embed ``X`` with :meth:`transform`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        **fit_params : dict
            Passed on to :meth:`fit`.

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components)
        """
        return self.fit(X, y, **fit_params).transform(X)

    @available_if(_model_has("transform"))
    def transform(self, X):
        """Embed ``X`` with the estimator's ``transform`` (e.g. a network's penultimate layer).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        return self.estimator_.transform(self._check_X(X))


class ActiveLearner(ClassifierMixin, _SingleEstimatorLearner):
    """Active learning around any scikit-learn classifier or Pipeline.

    ``fit(X, y)`` trains on the labelled rows (``y != missing_label``); ``query(X_pool)``
    returns the rows to label next; ``teach(X_new, y_new)`` adds labels and updates the model.
    With ``budget`` set, ``fit`` instead simulates a whole active-learning run with ``y`` as
    the oracle, so that ``cross_val_score`` and ``GridSearchCV`` can compare query
    strategies and models at a fixed labelling budget.

    Multi-label data works too: ``y`` as a 0/1 indicator matrix of shape
    ``(n_samples, n_labels)`` with unlabelled rows ``missing_label`` in every column, an
    estimator that takes such targets (``OneVsRestClassifier``, ``MultiOutputClassifier``,
    ``ClassifierChain``, ``KNeighborsClassifier``) and a multi-label strategy such as
    :class:`~skal.strategies.MultilabelMargin`. For numeric targets use
    :class:`ActiveRegressor`.

    Parameters
    ----------
    estimator : estimator object, default=None
        The classifier (or Pipeline ending in one). ``None`` means
        ``LogisticRegression(max_iter=1000)``. It is cloned, never modified.
    query_strategy : callable, default=None
        A strategy from :mod:`skal.strategies` or a function
        ``(learner, X_pool, batch_size) -> indices``. ``None`` means
        :class:`~skal.strategies.MarginSampling`, or
        :class:`~skal.strategies.DecisionMargin` for estimators without ``predict_proba``;
        for multi-label ``y``, :class:`~skal.strategies.MultilabelMargin`.
    batch_size : int, default=10
        Rows selected per query.
    budget : int, default=None
        Total number of labels of a simulated run (``n_initial`` included). ``None``: ``fit``
        trains on the labelled rows instead of simulating.
    n_initial : int, default=10
        Size of the initial labelled set of a simulated run.
    initial_strategy : callable, default=None
        How a simulated run picks its ``n_initial`` rows, called with an unfitted learner
        (a cold-start strategy). ``None`` means uniformly at random.
    stopping : StoppingCriterion or list of them, default=None
        When to stop early (:mod:`skal.stopping`): a simulated run stops when any criterion
        says so, before ``budget`` is spent, and ``history_`` records why; interactively,
        ask :meth:`should_stop` after each :meth:`teach`. ``None``: never stop early.
    label_cost : str, int, callable or None, default=None
        What labelling a row costs: a column of ``X`` (a DataFrame column name or an array
        column position), or a callable ``label_cost(X_rows) -> costs``. With it, ``budget``
        is in cost units: a simulated run keeps each batch's picks, in order, while they fit
        in what is left, and stops when the next pick does not. ``history_`` records the
        cost so far (``cost``) either way. ``None``: every label costs 1.
    missing_label : int, float, str or None, default=-1
        The value of ``y`` that marks an unlabelled row; ``np.nan`` and ``None`` work too.
    update : {"refit", "warm_start", "partial_fit"}, default="refit"
        How the model learns from new labels: refit a fresh clone on all labelled rows, fit
        the current model again with its ``warm_start`` parameter(s) set, or ``partial_fit``
        it on the new rows only.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial set and the estimator's ``random_state`` parameters left at None.
    n_jobs : int, default=None
        Threads for scoring the pool in chunks (``joblib.parallel_config`` applies).
    chunk_size : int, default=None
        Rows per scoring chunk; ``None`` follows ``sklearn.set_config(working_memory=...)``,
        capped at 16,384 rows.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted model.
    query_strategy_ : callable
        The strategy in use.
    classes_ : ndarray of shape (n_classes,)
        Class labels of the fitted model (multi-label: as the estimator gives them).
    target_kind_ : {"classification", "multilabel"}
        What ``y`` was: one class per row, or an indicator matrix.
    X_labeled_ : array-like of shape (n_labels, n_features)
        The labelled rows the model is trained on: in a simulated run in pool order, after
        :meth:`teach` in the order taught.
    X_unlabeled_ : array-like of shape (n_unlabeled, n_features)
        Only for a semi-supervised estimator (``SelfTrainingClassifier``, ``LabelSpreading``,
        :class:`~skal.semi_supervised.CEAL`, ...): the rows without a label it is also
        trained on, with the label -1.
    y_labeled_ : ndarray of shape (n_labels,) or (n_labels, n_labels_per_row)
        Their labels.
    labeled_indices_ : ndarray of shape (n_labels,)
        Simulated runs only: the rows of ``X`` acquired, in acquisition order.
    history_ : list of dict
        One entry per fit: ``cycle``, ``event`` (``"fit"``, ``"initial"``, ``"query"`` or
        ``"teach"``), ``n_labels``, ``indices`` (rows of ``X`` acquired in the cycle;
        ``None`` for :meth:`teach`), ``scores`` (their selection scores or None),
        ``fit_seconds``, ``query_seconds``, ``cost``, ``pseudo_labels`` (rows of ``X`` a
        semi-supervised model labelled itself, else None) and ``stop`` (why the run
        stopped after this fit, else None). ``pandas.DataFrame(history_)`` tabulates it.
    stop_reason_ : str or None
        Why the run stopped early (``"<criterion>: <why>"``), or None.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> from skal import ActiveLearner
    >>> from skal.strategies import EntropySampling
    >>> X, y = load_iris(return_X_y=True)
    >>> learner = ActiveLearner(query_strategy=EntropySampling(), budget=30, batch_size=5,
    ...                         random_state=0)
    >>> cross_val_score(learner, X, y, cv=3).mean() > 0.8
    np.True_
    """

    def __init__(
        self,
        estimator=None,
        query_strategy=None,
        *,
        batch_size=10,
        budget=None,
        n_initial=10,
        initial_strategy=None,
        stopping=None,
        label_cost=None,
        missing_label=-1,
        update="refit",
        random_state=None,
        n_jobs=None,
        chunk_size=None,
    ):
        self.estimator = estimator
        self.query_strategy = query_strategy
        self.batch_size = batch_size
        self.budget = budget
        self.n_initial = n_initial
        self.initial_strategy = initial_strategy
        self.stopping = stopping
        self.label_cost = label_cost
        self.missing_label = missing_label
        self.update = update
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.chunk_size = chunk_size


    _default_estimator = staticmethod(default_estimator)
    _target_rules = staticmethod(targets_for_classifier)

    def _default_strategy(self):
        # before fit (a labelling session asks) the targets are not known yet: classes
        if getattr(getattr(self, "_targets", None), "kind", None) == "multilabel":
            return MultilabelMargin()
        if hasattr(self._configured_estimator(), "predict_proba"):
            return MarginSampling()
        return DecisionMargin()

    def _fit_model(self, X, y):
        super()._fit_model(X, y)
        self.classes_ = self.estimator_.classes_

    @available_if(_model_has("predict_proba_samples", through_pipeline=True))
    def predict_proba_samples(self, X, **kwargs):
        """Posterior samples of class probabilities, when the estimator provides them.

        Parameters
        ----------
        X : array-like of shape (n_pool, n_features)
        **kwargs : dict
            Passed on to the estimator (e.g. ``n_samples`` for MC-dropout networks). When the
            estimator is a Pipeline, ``X`` goes through its first steps' ``transform`` and
            the last step samples.

        Returns
        -------
        samples : ndarray of shape (n_samples, n_pool, n_classes)
        """
        return self._last_step_call("predict_proba_samples", X, **kwargs)

    @available_if(_model_has("predict_loss", through_pipeline=True))
    def predict_loss(self, X):
        """Predicted loss of each row, when the estimator has a loss-prediction module.

        Parameters
        ----------
        X : array-like of shape (n_pool, n_features)

        Returns
        -------
        loss : ndarray of shape (n_pool,)
            E.g. :meth:`skal.nets.LearningLossClassifier.predict_loss`.
        """
        return self._last_step_call("predict_loss", X)


class ActiveRegressor(RegressorMixin, _SingleEstimatorLearner):
    """Active learning for regression, around any scikit-learn regressor or Pipeline.

    The same loop as :class:`ActiveLearner` (``fit``, ``query``, ``teach``, simulated runs
    with ``budget``, ``history_``), for numeric targets: ``y`` of shape ``(n_samples,)`` or
    ``(n_samples, n_outputs)`` with unlabelled rows marked ``NaN``; ``score`` is R².
    Uncertainty comes from the model: ``predict(X, return_std=True)`` for models that give a
    predictive standard deviation (``GaussianProcessRegressor``, ``BayesianRidge``,
    :class:`skal.nets.NetRegressor`), ``predict_samples`` for posterior samples (MC-dropout
    networks). For query by committee use :class:`CommitteeRegressor`.

    Parameters
    ----------
    estimator : estimator object, default=None
        The regressor (or Pipeline ending in one). ``None`` means ``BayesianRidge()``, a
        linear model with a predictive standard deviation. It is cloned, never modified.
    query_strategy : callable, default=None
        A regression strategy from :mod:`skal.strategies` or a function
        ``(learner, X_pool, batch_size) -> indices``. ``None`` means
        :class:`~skal.strategies.VarianceSampling` for models whose ``predict`` takes
        ``return_std``, else :class:`~skal.strategies.GreedySampling` (iGS).
    batch_size : int, default=10
        Rows selected per query.
    budget : int, default=None
        Total number of labels of a simulated run (``n_initial`` included). ``None``: ``fit``
        trains on the labelled rows instead of simulating.
    n_initial : int, default=10
        Size of the initial labelled set of a simulated run.
    initial_strategy : callable, default=None
        How a simulated run picks its ``n_initial`` rows, called with an unfitted learner.
        ``None`` means uniformly at random; ``GreedySampling(space="x")`` is the GSx start.
    stopping : StoppingCriterion or list of them, default=None
        When to stop early (:mod:`skal.stopping`): a simulated run stops when any criterion
        says so, before ``budget`` is spent, and ``history_`` records why; interactively,
        ask :meth:`should_stop` after each :meth:`teach`. ``None``: never stop early.
    label_cost : str, int, callable or None, default=None
        What labelling a row costs: a column of ``X`` (a DataFrame column name or an array
        column position), or a callable ``label_cost(X_rows) -> costs``. With it, ``budget``
        is in cost units: a simulated run keeps each batch's picks, in order, while they fit
        in what is left, and stops when the next pick does not. ``history_`` records the
        cost so far (``cost``) either way. ``None``: every label costs 1.
    missing_label : float or None, default=np.nan
        The value of ``y`` that marks an unlabelled row (in every output column).
    update : {"refit", "warm_start", "partial_fit"}, default="refit"
        How the model learns from new labels (see :class:`ActiveLearner`).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial set and the estimator's ``random_state`` parameters left at None.
    n_jobs : int, default=None
        Threads for scoring the pool in chunks (``joblib.parallel_config`` applies).
    chunk_size : int, default=None
        Rows per scoring chunk; ``None`` follows ``sklearn.set_config(working_memory=...)``,
        capped at 16,384 rows.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted model.
    query_strategy_ : callable
        The strategy in use.
    target_kind_ : str
        ``"regression"``.
    X_labeled_ : array-like of shape (n_labels, n_features)
        The labelled rows the model is trained on.
    y_labeled_ : ndarray of shape (n_labels,) or (n_labels, n_outputs)
        Their targets, as float64.
    labeled_indices_, history_, stop_reason_, n_features_in_, feature_names_in_ :
        As in :class:`ActiveLearner`.

    Examples
    --------
    >>> from sklearn.datasets import make_friedman1
    >>> from skal import ActiveRegressor
    >>> X, y = make_friedman1(n_samples=300, random_state=0)
    >>> learner = ActiveRegressor(budget=60, batch_size=10, random_state=0).fit(X, y)
    >>> learner.n_labels_, type(learner.query_strategy_).__name__
    (60, 'VarianceSampling')
    >>> mean, std = learner.predict(X[:3], return_std=True)
    >>> std.shape
    (3,)
    """

    _default_estimator = staticmethod(default_regressor)
    _target_rules = staticmethod(targets_for_regressor)

    def __init__(
        self,
        estimator=None,
        query_strategy=None,
        *,
        batch_size=10,
        budget=None,
        n_initial=10,
        initial_strategy=None,
        stopping=None,
        label_cost=None,
        missing_label=np.nan,
        update="refit",
        random_state=None,
        n_jobs=None,
        chunk_size=None,
    ):
        self.estimator = estimator
        self.query_strategy = query_strategy
        self.batch_size = batch_size
        self.budget = budget
        self.n_initial = n_initial
        self.initial_strategy = initial_strategy
        self.stopping = stopping
        self.label_cost = label_cost
        self.missing_label = missing_label
        self.update = update
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.chunk_size = chunk_size

    def _default_strategy(self):
        if predicts_std(self._configured_estimator()):
            return VarianceSampling()
        return GreedySampling()

    def predict(self, X, return_std=False):
        """Predict targets with the current model, optionally with its predictive std.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the standard deviation of the predictive distribution; the model's
            ``predict`` must take ``return_std`` (``GaussianProcessRegressor``,
            ``BayesianRidge``, ``ARDRegression``, :class:`skal.nets.NetRegressor`).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        y_std : ndarray of the same shape
            Only when ``return_std=True``.
        """
        check_is_fitted(self)
        X = self._check_X(X)
        if not return_std:
            return self.estimator_.predict(X)
        if not predicts_std(self.estimator_):
            raise TypeError(
                f"return_std=True needs a regressor whose predict gives a predictive std; "
                f"{type(_last_step(self.estimator_)).__name__}.predict takes no return_std. "
                "Use GaussianProcessRegressor or BayesianRidge, a skal.nets.NetRegressor "
                "with dropout, or a CommitteeRegressor for the spread of a committee."
            )
        if isinstance(X, np.ndarray) and X.dtype.kind == "O":
            # BayesianRidge.predict(return_std=True) takes the square root of an object
            # array and fails (scikit-learn 1.9): give it the numbers as floats.
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError):
                pass
        return self.estimator_.predict(X, return_std=True)

    @available_if(_model_has("predict_samples", through_pipeline=True))
    def predict_samples(self, X, **kwargs):
        """Posterior samples of the prediction, when the estimator provides them.

        Parameters
        ----------
        X : array-like of shape (n_pool, n_features)
        **kwargs : dict
            Passed on to the estimator (e.g. ``n_samples`` for MC-dropout networks).

        Returns
        -------
        samples : ndarray of shape (n_samples, n_pool) or (n_samples, n_pool, n_outputs)
        """
        return self._last_step_call("predict_samples", X, **kwargs)
