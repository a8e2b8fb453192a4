"""StreamLearner: stream-based selective sampling, one sample (or a small batch) at a time."""

import copy

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from skal.learners import ActiveLearner
from skal.strategies._base import PoolScoringStrategy
from skal.strategies._uncertainty import LeastConfidence
from skal.stream._budget import BudgetManager, VariableUncertainty


def _inner_has(attr):
    def check(self):
        model = getattr(self, "learner_", None)
        return hasattr(model if model is not None else self._make_learner(), attr)

    return check


class StreamLearner(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Decide for each arriving sample whether to buy its label, under a budget.

    Each sample is scored by a single-sample strategy (its ``score``, higher = more
    informative) and a budget manager turns the score into label / skip, spending at most a
    share ``budget_manager.budget`` of the stream. :meth:`teach` updates the model with the
    labels bought.

    Parameters
    ----------
    estimator : estimator object, default=None
        The classifier; ``None`` means ``LogisticRegression(max_iter=1000)``.
    query_strategy : PoolScoringStrategy, default=None
        Gives the utilities; ``None`` means :class:`~skal.strategies.LeastConfidence`.
    budget_manager : BudgetManager, default=None
        ``None`` means :class:`~skal.stream.VariableUncertainty` with ``budget=0.1``.
    update : {"refit", "warm_start", "partial_fit"}, default="refit"
        How :meth:`teach` updates the model (see :class:`~skal.ActiveLearner`).
    missing_label : int, float, str or None, default=-1
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    learner_ : ActiveLearner
        The fitted learner holding the model and the labelled set.
    budget_manager_ : BudgetManager
        The manager's state on this stream (``n_seen_``, ``n_labeled_``).
    classes_ : ndarray of shape (n_classes,)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from skal.stream import StreamLearner, VariableUncertainty
    >>> X, y = make_classification(600, random_state=0)
    >>> learner = StreamLearner(budget_manager=VariableUncertainty(budget=0.1),
    ...                         random_state=0).fit(X[:10], y[:10])
    >>> for x, label in zip(X[10:], y[10:]):
    ...     if learner.query(x[None])[0]:
    ...         _ = learner.teach(x[None], [label])
    >>> learner.budget_manager_.n_labeled_ <= 0.1 * 590
    True
    """

    def __init__(self, estimator=None, query_strategy=None, budget_manager=None, *,
                 update="refit", missing_label=-1, random_state=None):
        self.estimator = estimator
        self.query_strategy = query_strategy
        self.budget_manager = budget_manager
        self.update = update
        self.missing_label = missing_label
        self.random_state = random_state

    def _make_learner(self, seed=None):
        return ActiveLearner(
            self.estimator, update=self.update, missing_label=self.missing_label,
            random_state=seed,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Every row goes to the learner (and through it to the estimator), so the stream
        # takes the input the learner takes: sparse matrices, NaN, ... as the estimator does.
        learner = getattr(self, "learner_", None)
        if learner is None:
            learner = self._make_learner()
        tags.input_tags = copy.deepcopy(get_tags(learner).input_tags)
        return tags

    def fit(self, X, y):
        """Fit on the initial labelled rows and start a new stream.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Rows equal to ``missing_label`` are ignored.

        Returns
        -------
        self : object
        """
        strategy = LeastConfidence() if self.query_strategy is None else self.query_strategy
        if not isinstance(strategy, PoolScoringStrategy):
            raise TypeError(
                "query_strategy must score samples one at a time (a PoolScoringStrategy such "
                f"as LeastConfidence, MarginSampling or EntropySampling), got "
                f"{type(strategy).__name__}."
            )
        manager = VariableUncertainty() if self.budget_manager is None else self.budget_manager
        if not isinstance(manager, BudgetManager):
            raise TypeError(
                f"budget_manager must be a BudgetManager, got {type(manager).__name__}."
            )
        rng = check_random_state(self.random_state)
        self.query_strategy_ = clone(strategy)
        self.learner_ = self._make_learner(int(rng.randint(2**31 - 1))).fit(X, y)
        self.budget_manager_ = clone(manager).reset(int(rng.randint(2**31 - 1)))
        self.classes_ = self.learner_.classes_
        self.n_features_in_ = self.learner_.n_features_in_
        if hasattr(self.learner_, "feature_names_in_"):
            self.feature_names_in_ = self.learner_.feature_names_in_
        return self

    def score_samples(self, X):
        """The strategy's utility of each row of ``X`` (higher = more informative)."""
        check_is_fitted(self)
        return self.query_strategy_.score(self.learner_, X)

    def query(self, X):
        """Label / skip for each arriving row of ``X``, in order, within the budget.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One sample (shape ``(1, n_features)``) or a small batch.

        Returns
        -------
        mask : ndarray of bool of shape (n_samples,)
            True for the rows whose label should be bought.
        """
        return self.budget_manager_.decide(self.score_samples(X))

    def teach(self, X, y):
        """Update the model with bought labels.

        Returns
        -------
        self : object
        """
        check_is_fitted(self)
        self.learner_.teach(X, y)
        self.classes_ = self.learner_.classes_
        return self

    def predict(self, X):
        """Predict class labels with the current model."""
        check_is_fitted(self)
        return self.learner_.predict(X)

    @available_if(_inner_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the current model."""
        check_is_fitted(self)
        return self.learner_.predict_proba(X)

    @property
    def n_labels_(self):
        """Labelled rows the model is trained on (initial ones included)."""
        check_is_fitted(self)
        return self.learner_.n_labels_


def simulate_stream(learner, X, y, n_initial=10, random_state=None):
    """Run a stream-based learner over ``(X, y)`` with ``y`` as the oracle.

    The first ``n_initial`` rows are labelled to fit; each later row is queried in order and
    its label revealed when the learner asks for it.

    Returns
    -------
    learner : StreamLearner
        Fitted on what it bought.
    bought : ndarray of bool of shape (n_samples,)
        Which rows were labelled (the initial ones included).
    """
    y = np.asarray(y)
    learner.fit(X[:n_initial], y[:n_initial])
    bought = np.zeros(len(y), dtype=bool)
    bought[:n_initial] = True
    for i in range(n_initial, len(y)):
        if learner.query(X[i:i + 1])[0]:
            learner.teach(X[i:i + 1], y[i:i + 1])
            bought[i] = True
    return learner, bought
