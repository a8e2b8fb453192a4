"""CommitteeLearner and CommitteeRegressor: active learning with a committee (bagged or
heterogeneous members)."""

import numpy as np
from joblib import Parallel, delayed
from sklearn import config_context
from sklearn.base import ClassifierMixin, RegressorMixin, clone
from sklearn.linear_model import Ridge
from sklearn.utils import assert_all_finite, check_random_state, get_tags
from sklearn.utils.validation import check_is_fitted

from skal.learners._base import (
    _MAX_SEED,
    BaseActiveLearner,
    _check_positive_int,
    default_estimator,
    enable_warm_start,
    seed_estimator,
)
from skal.learners._targets import targets_for_classifier, targets_for_regressor
from skal.strategies._base import take_rows
from skal.strategies._committee import VoteEntropy
from skal.strategies._regression import VarianceSampling

# Redraws of a bootstrap sample that holds a single class before falling back to one row of
# each class; a classifier cannot be fitted on one class.
_MAX_BOOTSTRAP_REDRAWS = 100


def _bootstrap_rows(y, rng, can_train):
    n = y.shape[0]
    for _ in range(_MAX_BOOTSTRAP_REDRAWS):
        rows = rng.randint(n, size=n)
        if can_train(y[rows]):
            return rows
    _, first_of_class = np.unique(y, return_index=True, axis=0 if y.ndim > 1 else None)
    return np.concatenate([first_of_class, rng.randint(n, size=n - first_of_class.size)])


def _fit_member(member, X, y, bootstrap, seed, can_train, training_set):
    # The bootstrap resamples the labelled rows; a semi-supervised member then gets every
    # unlabelled row too (training_set).
    if bootstrap:
        rows = _bootstrap_rows(y, check_random_state(seed), can_train)
        X, y = take_rows(X, rows), y[rows]
    return member.fit(*training_set(member, X, y))


def _member_proba(member, X, classes):
    """Member probabilities as columns of the committee's ``classes`` (zero where unseen).

    Members without ``predict_proba`` vote with one-hot rows of their ``predict``.
    """
    if hasattr(member, "predict_proba"):
        member_proba = np.asarray(member.predict_proba(X), dtype=np.float64)
        member_classes = member.classes_
    else:
        member_classes, votes = np.unique(member.predict(X), return_inverse=True)
        member_proba = np.eye(member_classes.size)[votes]
    proba = np.zeros((member_proba.shape[0], classes.size))
    proba[:, np.searchsorted(classes, member_classes)] = member_proba
    return proba


class _Committee(BaseActiveLearner):
    """The loop around a committee: seeded (bootstrapped) members, fitted in parallel."""

    _model_attribute = "estimators_"

    def _configured_members(self):
        if isinstance(self.estimator, list | tuple):
            if len(self.estimator) == 0:
                raise ValueError("estimator is an empty list: a committee needs members.")
            return list(self.estimator)
        base = self._default_estimator() if self.estimator is None else self.estimator
        n_estimators = _check_positive_int(self.n_estimators, "n_estimators")
        return [base] * n_estimators

    def _models_for_delegation(self):
        if hasattr(self, "estimators_"):
            return self.estimators_
        return self._configured_members()

    def _member_seeds(self, n_members):
        return check_random_state(self._model_seed).randint(_MAX_SEED, size=n_members)

    def _fit_model(self, X, y):
        members = self._configured_members()
        seeds = self._member_seeds(len(members))
        members = [
            seed_estimator(clone(member), int(seed), overwrite=True)
            for member, seed in zip(members, seeds, strict=True)
        ]
        if self.update == "warm_start":
            members = [enable_warm_start(member) for member in members]
        can_train = self._targets.can_train
        # read once per fit: computing tags for every scored chunk costs more than the check
        self._members_allow_nan = all(get_tags(m).input_tags.allow_nan for m in members)
        self.estimators_ = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(_fit_member)(
                member, X, y, self.bootstrap, int(seed), can_train, self._training_set
            )
            for member, seed in zip(members, seeds, strict=True)
        )

    def _update_model(self, X_new, y_new, X_all, y_all):
        seeds = self._member_seeds(len(self.estimators_))
        if self.update == "warm_start":
            # A fresh bootstrap of the grown labelled set, continuing from current weights.
            n_labels = y_all.shape[0]
            Parallel(n_jobs=self.n_jobs, prefer="threads")(
                delayed(_fit_member)(
                    member, X_all, y_all, self.bootstrap, (seed + n_labels) % _MAX_SEED,
                    self._targets.can_train, self._training_set,
                )
                for member, seed in zip(self.estimators_, seeds.tolist(), strict=True)
            )
            return
        for member in self.estimators_:
            if not hasattr(member, "partial_fit"):
                raise ValueError(
                    f"update='partial_fit' needs members with partial_fit; "
                    f"{type(member).__name__} has none."
                )
        Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(member.partial_fit)(X_new, y_new, **self._targets.partial_fit_kwargs(self))
            for member in self.estimators_
        )



class CommitteeLearner(ClassifierMixin, _Committee):
    """Active learning with a committee of classifiers (query by committee).

    The members are either ``n_estimators`` clones of one estimator, each trained on its own
    bootstrap sample of the labelled rows and seeded from ``random_state`` (as in bagging), or
    an explicit list of (possibly different) estimators. ``predict_proba`` is the members'
    mean; ``predict_proba_samples`` stacks the members' probabilities, aligned to the
    committee's ``classes_`` even when a member's sample missed a class, for the committee
    strategies (:class:`~skal.strategies.VoteEntropy`, :class:`~skal.strategies.KLDivergence`,
    :class:`~skal.strategies.ConsensusEntropy`) and BALD-style ones.

    Parameters
    ----------
    estimator : estimator object or list of estimator objects, default=None
        One estimator, cloned ``n_estimators`` times, or a list of members (then
        ``n_estimators`` is ignored). ``None`` means ``LogisticRegression(max_iter=1000)``.
        Members without ``predict_proba`` vote with their ``predict``.
    query_strategy : callable, default=None
        ``None`` means :class:`~skal.strategies.VoteEntropy` (the entropy of the members'
        hard votes). With logistic members it beat random sampling on all 8 data sets of
        :doc:`/committee_default` and had the best mean rank of the committee strategies;
        :class:`~skal.strategies.KLDivergence` (the default before) and BALD fell below
        random sampling on the 10- and 26-class sets.
    n_estimators : int, default=5
        Committee size when ``estimator`` is a single estimator.
    bootstrap : bool, default=True
        Train each member on a bootstrap sample of the labelled rows (redrawn if it holds a
        single class). Without it, members differ only through their seeds (or types).
    batch_size : int, default=10
        Rows selected per query.
    budget : int, default=None
        Total labels of a simulated run; ``None`` trains on the labelled rows of ``y``.
    n_initial : int, default=10
        Size of the initial labelled set of a simulated run.
    initial_strategy : callable, default=None
        How a simulated run picks its initial rows; ``None`` means at random.
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
        The value of ``y`` that marks an unlabelled row.
    update : {"refit", "warm_start", "partial_fit"}, default="refit"
        How members learn from new labels (see :class:`~skal.ActiveLearner`).
    random_state : int, RandomState instance or None, default=None
        Seeds the members' ``random_state`` parameters (all of them, so that members
        differ), their bootstrap samples and the initial set.
    n_jobs : int, default=None
        Threads for fitting members and for scoring the pool in chunks.
    chunk_size : int, default=None
        Rows per scoring chunk; ``None`` follows ``sklearn.set_config(working_memory=...)``.

    Attributes
    ----------
    estimators_ : list of estimator objects
        The fitted members.
    classes_ : ndarray of shape (n_classes,)
        Classes seen in the labelled rows.
    query_strategy_, X_labeled_, y_labeled_, labeled_indices_, history_, stop_reason_,
    n_features_in_ :
        As in :class:`~skal.ActiveLearner`.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal import CommitteeLearner
    >>> X, y = load_iris(return_X_y=True)
    >>> committee = CommitteeLearner(n_estimators=3, budget=30, random_state=0).fit(X, y)
    >>> committee.predict_proba_samples(X[:2]).shape
    (3, 2, 3)
    """

    def __init__(
        self,
        estimator=None,
        query_strategy=None,
        *,
        n_estimators=5,
        bootstrap=True,
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
        self.n_estimators = n_estimators
        self.bootstrap = bootstrap
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

    def _target_rules(self, y):
        targets = targets_for_classifier(y)
        if targets.kind != "classification":
            raise ValueError(
                "CommitteeLearner takes one class label per row; for multi-label y use "
                "ActiveLearner with a multi-label estimator (e.g. OneVsRestClassifier) and a "
                "multi-label strategy such as MultilabelMargin."
            )
        return targets

    def _default_strategy(self):
        return VoteEntropy()

    def _fit_model(self, X, y):
        self.classes_ = np.unique(y)
        super()._fit_model(X, y)

    def predict_proba_samples(self, X):
        """The members' class probabilities, aligned to ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_pool, n_features)

        Returns
        -------
        samples : ndarray of shape (n_members, n_pool, n_classes)
            Columns of classes a member never saw are 0; members without ``predict_proba``
            give one-hot votes.
        """
        check_is_fitted(self)
        X = self._check_X(X)
        return np.stack([_member_proba(m, X, self.classes_) for m in self.estimators_])

    def _predict_proba(self, X):
        return self.predict_proba_samples(X).mean(axis=0)

    def predict_proba(self, X):
        """Consensus class probabilities: the mean over members.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self._predict_proba(X)

    def _predict(self, X):
        return self.classes_[np.argmax(self._predict_proba(X), axis=1)]



def default_committee_regressor():
    """The member used when ``CommitteeRegressor(estimator=None)``."""
    return Ridge()


class CommitteeRegressor(RegressorMixin, _Committee):
    """Active learning for regression with a committee of regressors.

    The members are ``n_estimators`` clones of one regressor, each trained on its own
    bootstrap sample of the labelled rows (as in bagging), or an explicit list of (possibly
    different) regressors. ``predict`` is the members' mean and ``predict(X,
    return_std=True)`` adds their spread, which is what
    :class:`~skal.strategies.VarianceSampling` queries by (query by committee for
    regression); ``predict_samples`` stacks the members' predictions for
    :class:`~skal.strategies.EMCM`.

    Parameters
    ----------
    estimator : estimator object or list of estimator objects, default=None
        One regressor, cloned ``n_estimators`` times, or a list of members (then
        ``n_estimators`` is ignored). ``None`` means ``Ridge()``.
    query_strategy : callable, default=None
        ``None`` means :class:`~skal.strategies.VarianceSampling`: the variance of the
        members' predictions.
    n_estimators : int, default=5
        Committee size when ``estimator`` is a single estimator.
    bootstrap : bool, default=True
        Train each member on a bootstrap sample of the labelled rows. Without it, members
        differ only through their seeds (or types).
    batch_size : int, default=10
        Rows selected per query.
    budget : int, default=None
        Total labels of a simulated run; ``None`` trains on the labelled rows of ``y``.
    n_initial : int, default=10
        Size of the initial labelled set of a simulated run.
    initial_strategy : callable, default=None
        How a simulated run picks its initial rows; ``None`` means at random.
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
        How members learn from new labels (see :class:`~skal.ActiveLearner`).
    random_state : int, RandomState instance or None, default=None
        Seeds the members' ``random_state`` parameters, their bootstrap samples and the
        initial set.
    n_jobs : int, default=None
        Threads for fitting members and for scoring the pool in chunks.
    chunk_size : int, default=None
        Rows per scoring chunk; ``None`` follows ``sklearn.set_config(working_memory=...)``.

    Attributes
    ----------
    estimators_ : list of estimator objects
        The fitted members.
    target_kind_ : str
        ``"regression"``.
    query_strategy_, X_labeled_, y_labeled_, labeled_indices_, history_, stop_reason_,
    n_features_in_ :
        As in :class:`~skal.ActiveRegressor`.

    Examples
    --------
    >>> from sklearn.datasets import make_friedman1
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> from skal import CommitteeRegressor
    >>> X, y = make_friedman1(n_samples=300, random_state=0)
    >>> committee = CommitteeRegressor(DecisionTreeRegressor(), n_estimators=4, budget=50,
    ...                                random_state=0).fit(X, y)
    >>> committee.predict_samples(X[:2]).shape
    (4, 2)
    """

    _default_estimator = staticmethod(default_committee_regressor)
    _target_rules = staticmethod(targets_for_regressor)

    def __init__(
        self,
        estimator=None,
        query_strategy=None,
        *,
        n_estimators=5,
        bootstrap=True,
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
        self.n_estimators = n_estimators
        self.bootstrap = bootstrap
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
        return VarianceSampling()

    def predict_samples(self, X):
        """The members' predictions.

        Parameters
        ----------
        X : array-like of shape (n_pool, n_features)

        Returns
        -------
        samples : ndarray of shape (n_members, n_pool) or (n_members, n_pool, n_outputs)
        """
        check_is_fitted(self)
        X = self._check_X(X)
        if isinstance(X, np.ndarray) and X.dtype.kind in "fc" and not self._members_allow_nan:
            # One finite check here instead of one per member: the members' own checks are
            # most of the cost of a query on a large pool.
            assert_all_finite(X, input_name="X")
            with config_context(assume_finite=True):
                predictions = [m.predict(X) for m in self.estimators_]
        else:
            predictions = [m.predict(X) for m in self.estimators_]
        return np.stack([np.asarray(p, dtype=np.float64) for p in predictions])


    def _predict(self, X):
        return self.predict_samples(X).mean(axis=0)

    def predict(self, X, return_std=False):
        """The members' mean prediction, and with ``return_std`` their standard deviation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the members' spread (population standard deviation).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        y_std : ndarray of the same shape
            Only when ``return_std=True``.
        """
        samples = self.predict_samples(X)
        mean = samples.mean(axis=0)
        return (mean, samples.std(axis=0)) if return_std else mean
