"""CEAL: the confident pool rows train the model with pseudo-labels (Wang et al. 2017)."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from skal._validation import as_row_container, check_same_length, missing_mask
from skal.strategies._base import take_rows
from skal.strategies._uncertainty import entropy


def _estimator_has(attr):
    def check(self):
        model = self.estimator_ if hasattr(self, "estimator_") else self._configured()
        return hasattr(model, attr)

    return check


class CEAL(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Cost-effective active learning's pseudo-labels, as a semi-supervised classifier.

    CEAL (Wang et al. 2017, "Cost-Effective Active Learning for Deep Image Classification")
    trains on the labelled rows and, besides, on the unlabelled rows its model is already
    sure about, labelled with its own predictions. ``fit(X, y)`` takes every row, the
    unlabelled ones with the label -1 (as scikit-learn's semi-supervised estimators do;
    skal's learners hand a semi-supervised estimator its pool that way):

    1. fit a clone of ``estimator`` on the labelled rows;
    2. give each unlabelled row whose predictive entropy is below the current threshold
       its predicted class as a pseudo-label;
    3. fit a fresh clone on the labelled and the pseudo-labelled rows: that is the model.

    Pseudo-labels are decided afresh at every ``fit`` from the labels of that fit, so a
    wrong one does not stay, and they never become labels (a learner's ``n_labels_`` and
    ``y_labeled_`` hold only a person's labels; its ``history_`` lists the pseudo-labelled
    rows under ``pseudo_labels``). As the model gets better with more labels it grows
    confident about more rows, so the paper lowers the threshold as labelling goes on: here
    it is ``threshold - threshold_decay * n_labeled`` (not below 0), with ``n_labeled`` the
    rows labelled in ``y``. That keeps ``fit`` a function of its data, so a clone or a grid
    search sees the same schedule. The paper queries the least certain rows at the same
    time: use the learner's query strategy for that (e.g.
    :class:`~skal.strategies.EntropySampling`).

    Parameters
    ----------
    estimator : classifier with predict_proba, default=None
        The model trained on labels and pseudo-labels (a Pipeline or a
        :class:`~skal.nets.NetClassifier` works). ``None`` means
        ``LogisticRegression(max_iter=1000)``. It is cloned, never modified.
    threshold : float, default=0.05
        Predictive entropy (in nats) below which an unlabelled row gets a pseudo-label,
        before any decay. The paper uses 0.05 (Caltech-256) and 0.005 (CACD). 0 turns
        pseudo-labelling off.
    threshold_decay : float, default=3.3e-5
        How much the threshold drops per labelled row. The paper lowers it by
        ``dr = 0.00033`` per iteration; with batches of ``k`` labels that is ``dr / k`` per
        label (the default is ``k = 10``).

    Attributes
    ----------
    estimator_ : estimator object
        The model fitted on labels and pseudo-labels.
    classes_ : ndarray of shape (n_classes,)
        The classes of the labelled rows.
    threshold_ : float
        The entropy threshold this fit used.
    transduction_ : ndarray of shape (n_samples,)
        Each row's training label: its label, its pseudo-label, or -1 when it had neither.
    labeled_iter_ : ndarray of shape (n_samples,)
        As in scikit-learn's ``SelfTrainingClassifier``: 0 for a given label, 1 for a
        pseudo-label, -1 for a row that was not trained on.
    n_pseudo_labels_ : int
        How many rows got a pseudo-label.
    n_features_in_ : int
        Number of features seen during fit (from ``estimator_``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skal.semi_supervised import CEAL
    >>> X, y = load_digits(return_X_y=True)
    >>> y_some = np.full_like(y, -1)
    >>> y_some[:100] = y[:100]          # 100 labelled rows, the rest unlabelled
    >>> model = CEAL(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)))
    >>> model.fit(X, y_some).n_pseudo_labels_ > 0
    True
    """

    _skal_semi_supervised = True

    def __init__(self, estimator=None, *, threshold=0.05, threshold_decay=3.3e-5):
        self.estimator = estimator
        self.threshold = threshold
        self.threshold_decay = threshold_decay

    def _configured(self):
        if self.estimator is None:
            from skal.learners._base import default_estimator

            return default_estimator()
        return self.estimator

    def _check_params(self):
        for name in ("threshold", "threshold_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                value >= 0 and np.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if not hasattr(self._configured(), "predict_proba"):
            raise TypeError(
                f"CEAL's estimator needs predict_proba to tell confident rows apart; "
                f"{type(self._configured()).__name__} has none. Use e.g. "
                "LogisticRegression, or wrap an SVM in CalibratedClassifierCV."
            )

    def fit(self, X, y):
        """Fit on the labelled rows, pseudo-label the confident unlabelled rows, refit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            All rows, labelled and not (anything ``estimator`` accepts).
        y : array-like of shape (n_samples,)
            Class labels; -1 marks an unlabelled row.

        Returns
        -------
        self : object
        """
        self._check_params()
        if y is None:
            raise ValueError("CEAL requires y to be passed, but the target y is None.")
        X = as_row_container(X)
        check_same_length(X, y)
        y = column_or_1d(y, warn=True)
        unlabeled = missing_mask(y, -1)
        labeled = np.flatnonzero(~unlabeled)
        if labeled.size == 0:
            raise ValueError("y has no labelled rows: every label is -1 (unlabelled).")
        check_classification_targets(y[labeled])
        model = clone(self._configured()).fit(take_rows(X, labeled), y[labeled])
        self.threshold_ = max(self.threshold - self.threshold_decay * labeled.size, 0.0)
        self.transduction_ = y.copy()
        self.labeled_iter_ = np.where(unlabeled, -1, 0)
        candidates = np.flatnonzero(unlabeled)
        if candidates.size and self.threshold_ > 0:
            proba = model.predict_proba(take_rows(X, candidates))
            confident = entropy(proba) < self.threshold_
            pseudo = candidates[confident]
            if pseudo.size:
                self.transduction_[pseudo] = model.classes_[np.argmax(proba[confident], axis=1)]
                self.labeled_iter_[pseudo] = 1
                train = np.sort(np.concatenate([labeled, pseudo]))
                model = clone(self._configured()).fit(
                    take_rows(X, train), self.transduction_[train]
                )
        self.estimator_ = model
        self.classes_ = model.classes_
        self.n_pseudo_labels_ = int((self.labeled_iter_ == 1).sum())
        if hasattr(model, "n_features_in_"):
            self.n_features_in_ = model.n_features_in_
        if hasattr(model, "feature_names_in_"):
            self.feature_names_in_ = model.feature_names_in_
        return self

    def predict(self, X):
        """Predict classes with the model trained on labels and pseudo-labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities of the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    @available_if(_estimator_has("predict_proba_samples"))
    def predict_proba_samples(self, X, **kwargs):
        """Posterior samples of the model's class probabilities (e.g. MC dropout).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        **kwargs : dict
            Passed on to the model's ``predict_proba_samples``.

        Returns
        -------
        samples : ndarray of shape (n_posterior_samples, n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba_samples(X, **kwargs)

    @available_if(_estimator_has("transform"))
    def transform(self, X):
        """Embed ``X`` with the model's ``transform``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        return self.estimator_.transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self._configured().__sklearn_tags__()
        tags.input_tags = inner.input_tags
        return tags
