"""Turning several annotators' labels into one label per sample: majority vote and
Dawid–Skene EM (Dawid & Skene 1979), which also estimates each annotator's confusion matrix."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skal._validation import missing_mask


def _encode(annotations, classes, missing_label):
    """Integer codes (-1 = no label) of an (n_samples, n_annotators) label matrix."""
    annotations = np.asarray(annotations, dtype=object if classes is None else None)
    if annotations.ndim != 2:
        raise ValueError(
            "annotations must be a 2-d array of shape (n_samples, n_annotators), got shape "
            f"{annotations.shape}."
        )
    flat = annotations.ravel()
    missing = missing_mask(flat, missing_label)
    given = flat[~missing]
    if classes is None:
        classes = np.unique(given.tolist()) if given.size else np.array([])
    classes = np.asarray(classes)
    lookup = {c.item() if isinstance(c, np.generic) else c: i for i, c in enumerate(classes)}
    codes = np.full(flat.shape[0], -1, dtype=np.intp)
    for pos in np.flatnonzero(~missing):
        value = flat[pos]
        value = value.item() if isinstance(value, np.generic) else value
        if value not in lookup:
            raise ValueError(f"Label {value!r} is not among the classes {classes.tolist()}.")
        codes[pos] = lookup[value]
    return codes.reshape(annotations.shape), classes


def _vote_counts(codes, n_classes):
    counts = np.zeros((codes.shape[0], n_classes))
    rows, cols = np.nonzero(codes >= 0)
    np.add.at(counts, (rows, codes[rows, cols]), 1.0)
    return counts


def majority_vote(annotations, *, classes=None, missing_label=-1, random_state=None):
    """The most frequent label of each sample; ties broken at random.

    Parameters
    ----------
    annotations : array-like of shape (n_samples, n_annotators)
        Entry ``[i, j]`` is annotator j's label for sample i, or ``missing_label``.
    classes : array-like, default=None
        The class set; ``None`` uses the labels that occur.
    missing_label : int, float, str or None, default=-1
    random_state : int, RandomState instance or None, default=None
        Breaks ties.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        ``missing_label`` (as object) for samples nobody labelled.

    Examples
    --------
    >>> from skal.labeling import majority_vote
    >>> majority_vote([[0, 0, 1], [1, -1, 1], [-1, -1, -1]]).tolist()
    [0, 1, -1]
    """
    codes, classes = _encode(annotations, classes, missing_label)
    counts = _vote_counts(codes, len(classes))
    rng = check_random_state(random_state)
    best = counts.max(axis=1, keepdims=True)
    jitter = rng.random_sample(counts.shape)
    winner = np.argmax(np.where(counts == best, 1.0 + jitter, 0.0), axis=1)
    labelled = counts.sum(axis=1) > 0
    if labelled.all():
        return classes[winner]
    out = np.empty(codes.shape[0], dtype=object)
    out[:] = missing_label
    out[labelled] = classes[winner[labelled]]
    return out


def disagreement(annotations, *, classes=None, missing_label=-1):
    """Share of each sample's labels that differ from its most frequent label (0 = unanimous).

    Returns
    -------
    disagreement : ndarray of shape (n_samples,)
    """
    codes, classes = _encode(annotations, classes, missing_label)
    counts = _vote_counts(codes, len(classes))
    total = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, 1.0 - counts.max(axis=1, initial=0) / total, 0.0)
    return share


class DawidSkene(BaseEstimator):
    """Labels from several noisy annotators by Dawid–Skene expectation maximisation.

    Each annotator j has a confusion matrix ``confusion_[j, k, l] = P(j says l | truth k)``
    and the classes have priors ``priors_``. EM alternates the posterior of each sample's true
    class (E-step) with the maximum a posteriori confusion matrices and priors (M-step),
    starting from the majority vote's soft counts.

    Parameters
    ----------
    max_iter : int, default=100
    tol : float, default=1e-6
        Stop when the log-likelihood improves by less than this (relative).
    smoothing : float, default=0.01
        Dirichlet pseudo-count added to every confusion-matrix cell and prior, so that a
        class an annotator never saw does not get probability zero.
    missing_label : int, float, str or None, default=-1

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    confusion_ : ndarray of shape (n_annotators, n_classes, n_classes)
        Rows are true classes, columns the annotator's answers; rows sum to one.
    priors_ : ndarray of shape (n_classes,)
    posterior_ : ndarray of shape (n_samples, n_classes)
        P(true class | labels) of each sample (the priors for unlabelled samples).
    labels_ : ndarray of shape (n_samples,)
        The most probable class of each sample.
    n_iter_ : int
    log_likelihood_ : float

    Examples
    --------
    >>> import numpy as np
    >>> from skal.labeling import DawidSkene
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 1, 0]])
    >>> DawidSkene().fit(L).labels_.tolist()
    [0, 1, 0, 1]
    """

    def __init__(self, max_iter=100, tol=1e-6, smoothing=0.01, missing_label=-1):
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.missing_label = missing_label

    def fit(self, annotations, classes=None):
        """Estimate the confusion matrices, priors and posteriors.

        Parameters
        ----------
        annotations : array-like of shape (n_samples, n_annotators)
            Entry ``[i, j]`` is annotator j's label for sample i, or ``missing_label``.
        classes : array-like, default=None
            The class set; ``None`` uses the labels that occur.

        Returns
        -------
        self : object
        """
        if not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}.")
        if self.smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {self.smoothing!r}.")
        codes, classes = _encode(annotations, classes, self.missing_label)
        if len(classes) == 0:
            raise ValueError("annotations hold no labels at all.")
        n_samples, n_annotators = codes.shape
        n_classes = len(classes)
        # One-hot answers: onehot[i, j, l] = 1 when annotator j said l for sample i.
        onehot = np.zeros((n_samples, n_annotators, n_classes))
        rows, cols = np.nonzero(codes >= 0)
        onehot[rows, cols, codes[rows, cols]] = 1.0
        counts = onehot.sum(axis=1)
        total = counts.sum(axis=1, keepdims=True)
        posterior = np.where(total > 0, counts / np.maximum(total, 1), 1.0 / n_classes)
        previous = -np.inf
        log_likelihood = -np.inf
        iteration = 0
        while iteration < self.max_iter:
            iteration += 1
            priors, confusion = self._m_step(posterior, onehot)
            # log P(answers, truth k) per sample: log prior + sum over answers of log confusion.
            log_joint = np.log(priors)[None, :] + np.einsum(
                "ijl,jkl->ik", onehot, np.log(confusion)
            )
            top = log_joint.max(axis=1, keepdims=True)
            norm = top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1))
            posterior = np.exp(log_joint - norm[:, None])
            log_likelihood = float(norm.sum())
            if abs(log_likelihood - previous) <= self.tol * max(1.0, abs(log_likelihood)):
                break
            previous = log_likelihood
        self.classes_ = classes
        self.priors_, self.confusion_ = self._m_step(posterior, onehot)
        self.posterior_ = posterior
        self.labels_ = classes[np.argmax(posterior, axis=1)]
        self.n_iter_ = iteration
        self.log_likelihood_ = log_likelihood
        return self

    def _m_step(self, posterior, onehot):
        priors = posterior.sum(axis=0) + self.smoothing
        priors = priors / priors.sum()
        # confusion[j, k, l] = sum_i T[i, k] * onehot[i, j, l]
        confusion = np.einsum("ik,ijl->jkl", posterior, onehot) + self.smoothing
        sums = confusion.sum(axis=2, keepdims=True)
        confusion = np.where(sums > 0, confusion / np.where(sums > 0, sums, 1), 1.0)
        # A zero cell (smoothing=0) would make log() -inf and stall EM; floor it.
        return priors, np.clip(confusion, 1e-12, None)

    def fit_predict(self, annotations, classes=None):
        """Fit and return ``labels_``."""
        return self.fit(annotations, classes).labels_

    def predict_proba(self):
        """The posterior of each sample's true class (``posterior_``)."""
        check_is_fitted(self)
        return self.posterior_
