"""Multi-label strategies: binary-relevance margins (BinMin and mean), MMC and the adaptive
strategy of Li & Guo. The learner's targets are a 0/1 indicator matrix."""

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from skal._validation import concat_rows
from skal.strategies._base import PoolScoringStrategy, QueryStrategy, require, take_rows, top_k


def label_probabilities(learner, X, strategy_name):
    """``P(label j = 1 | x)`` for every row and label, shape ``(n, n_labels)``.

    Accepts every layout scikit-learn's multi-label ``predict_proba`` has: one column per
    label (``OneVsRestClassifier``, ``ClassifierChain``) or a list of per-label
    ``(n, n_classes_j)`` arrays (``MultiOutputClassifier``, ``KNeighborsClassifier``,
    forests), where a label never seen positive has probability 0.
    """
    proba = require(learner, "predict_proba", strategy_name)(X)
    if not isinstance(proba, list | tuple):
        return np.asarray(proba, dtype=np.float64)
    classes = getattr(learner, "classes_", None)
    columns = []
    for j, part in enumerate(proba):
        part = np.asarray(part, dtype=np.float64)
        label_classes = np.arange(part.shape[1]) if classes is None else np.asarray(classes[j])
        positive = np.flatnonzero(label_classes == 1)
        columns.append(part[:, positive[0]] if positive.size else np.zeros(part.shape[0]))
    return np.column_stack(columns)


def label_scores(learner, X, strategy_name):
    """Signed per-label scores ``f`` of shape ``(n, n_labels)``, positive = label predicted.

    ``decision_function`` where the model has one (the SVM outputs the multi-label papers
    use), else ``2 p - 1`` from :func:`label_probabilities`.
    """
    if callable(getattr(learner, "decision_function", None)):
        scores = require(learner, "decision_function", strategy_name)(X)
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim == 2:
            return scores
    return 2.0 * label_probabilities(learner, X, strategy_name) - 1.0


class MultilabelMargin(PoolScoringStrategy):
    """Binary-relevance uncertainty: the margins ``|f_j(x)|`` of the per-label classifiers,
    aggregated over labels.

    ``aggregate="min"`` is Brinker's SVM binary minimum (BinMin, 2006): a row is as uncertain
    as its most uncertain label. ``aggregate="mean"`` averages the margins over labels. The
    rows with the smallest aggregated margin are queried; the score is its negative. ``f``
    is the decision function where the model has one, else ``2 p - 1``.

    Parameters
    ----------
    aggregate : {"min", "mean"}, default="min"
        How the per-label margins combine.
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_multilabel_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.multiclass import OneVsRestClassifier
    >>> from skal.strategies import MultilabelMargin
    >>> X, Y = make_multilabel_classification(n_samples=60, n_classes=3, random_state=0)
    >>> model = OneVsRestClassifier(LogisticRegression()).fit(X[:40], Y[:40])
    >>> MultilabelMargin(aggregate="mean")(model, X[40:], batch_size=3).shape
    (3,)
    """

    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "aggregate": [str],
    }
    # predict_proba or decision_function, whichever the model has (see label_scores)
    _requires = "predict"
    _target_kinds = frozenset({"multilabel"})

    def __init__(self, aggregate="min", random_state=None):
        self.aggregate = aggregate
        self.random_state = random_state

    def score(self, learner, X_pool):
        if self.aggregate not in ("min", "mean"):
            raise ValueError(f"aggregate must be 'min' or 'mean', got {self.aggregate!r}.")
        return super().score(learner, X_pool)

    def _score_chunk(self, learner, X_chunk):
        margins = np.abs(label_scores(learner, X_chunk, type(self).__name__))
        return -(margins.min(axis=1) if self.aggregate == "min" else margins.mean(axis=1))


def _sorted_normalised(proba):
    ordered = -np.sort(-proba, axis=1)
    total = ordered.sum(axis=1, keepdims=True)
    return np.divide(ordered, total, out=np.full_like(ordered, 1.0 / ordered.shape[1]),
                     where=total > 0)


class MMC(QueryStrategy):
    """Maximum loss reduction with maximal confidence (Yang, Sun, Wang, Chen & Zhang, KDD
    2009).

    A logistic regression learns, on the labelled rows, how many labels a row has from its
    per-label probabilities (sorted in decreasing order and normalised to sum 1). For a pool
    row it predicts that number ``m``; the ``m`` labels with the highest scores are taken
    as its labels (``y_j = +1``), the rest as absent (``y_j = -1``), and the row's expected
    loss reduction is

    ``sum_j (1 - y_j f_j(x)) / 2``

    with ``f_j`` the per-label decision function (the paper's SVM outputs; ``2 p - 1`` for
    models without one). The rows with the largest reduction are queried.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    _target_kinds = frozenset({"multilabel"})

    def _select(self, learner, X_pool, batch_size, random_state):
        scores = self.score(learner, X_pool)
        indices = top_k(scores, batch_size, random_state)
        return indices, scores[indices]

    def score(self, learner, X_pool):
        """Expected loss reduction of every pool row (higher = more informative)."""
        name = type(self).__name__
        f = label_scores(learner, X_pool, name)
        proba = _probabilities_or_sigmoid(learner, X_pool, f, name)
        n_labels = f.shape[1]
        counts = self._predict_label_counts(learner, _sorted_normalised(proba), name)
        return mmc_loss_reduction(f, np.clip(counts, 0, n_labels))

    def _predict_label_counts(self, learner, features, name):
        X_labeled = getattr(learner, "X_labeled_", None)
        y_labeled = getattr(learner, "y_labeled_", None)
        if X_labeled is None or y_labeled is None:
            raise TypeError(
                f"{name} learns the number of labels per row from the learner's labelled "
                f"rows, and {type(learner).__name__} has no X_labeled_/y_labeled_: use it "
                "inside ActiveLearner."
            )
        f_labeled = label_scores(learner, X_labeled, name)
        proba_labeled = _probabilities_or_sigmoid(learner, X_labeled, f_labeled, name)
        counts = np.asarray(y_labeled).sum(axis=1).astype(int)
        if np.unique(counts).size == 1:
            return np.full(features.shape[0], counts[0])
        model = LogisticRegression(max_iter=1000).fit(_sorted_normalised(proba_labeled), counts)
        return model.predict(features)


def mmc_loss_reduction(f, counts):
    """MMC's ``sum_j (1 - y_j f_j) / 2``, with ``y_j = +1`` for the ``counts[i]``
    highest-scoring labels of row ``i`` and ``-1`` for the others."""
    rank = np.argsort(np.argsort(-f, axis=1, kind="stable"), axis=1, kind="stable")
    y_hat = np.where(rank < np.asarray(counts)[:, None], 1.0, -1.0)
    return ((1.0 - y_hat * f) / 2.0).sum(axis=1)


def _probabilities_or_sigmoid(learner, X, f, name):
    if callable(getattr(learner, "predict_proba", None)):
        return label_probabilities(learner, X, name)
    return 1.0 / (1.0 + np.exp(-f))


def _separation_margin(f):
    """Gap between the lowest positive and the highest negative score of each row; the
    threshold 0 stands in for an empty side."""
    lowest_positive = np.where(f > 0, f, np.inf).min(axis=1)
    highest_negative = np.where(f <= 0, f, -np.inf).max(axis=1)
    lowest_positive = np.where(np.isinf(lowest_positive), 0.0, lowest_positive)
    highest_negative = np.where(np.isinf(highest_negative), 0.0, highest_negative)
    return lowest_positive - highest_negative


def _hinge_error(f):
    """The multi-label hinge loss of each row under its own predicted labels: the worst
    positive's ``1 - f`` plus the worst negative's ``1 + f`` (0 for an empty side)."""
    positive = np.where(f > 0, 1.0 - f, 0.0).max(axis=1)
    negative = np.where(f <= 0, 1.0 + f, 0.0).max(axis=1)
    return positive + negative


class AdaptiveMultilabel(QueryStrategy):
    """Adaptive active learning for multi-label data (Li & Guo, IJCAI 2013).

    Two measures of a pool row, from the per-label scores ``f_j(x)`` (positive = label
    predicted):

    - max-margin uncertainty ``u(x) = 1 / sep(x)``, where ``sep(x)`` is the gap between
      the lowest-scoring predicted label and the highest-scoring absent one;
    - label cardinality inconsistency ``c(x) = |#predicted labels - mean #labels of the
      labelled rows|``.

    They combine as ``q_beta(x) = u(x)^beta * c(x)^(1 - beta)``. The trade-off ``beta`` is
    chosen afresh at every query among ``betas``: for each ``beta`` its best row is added to
    the labelled set with its predicted labels, a clone of the learner is refitted, and the
    ``beta`` whose refit has the smallest approximate error on the pool (the multi-label
    hinge loss under the refit's own predictions) wins; the batch is the top of its
    ``q_beta``. This costs one refit per distinct candidate row (at most ``len(betas)``).

    Parameters
    ----------
    betas : tuple of float, default=(0.0, 0.1, ..., 1.0)
        Candidate trade-offs, each in [0, 1].
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.

    Attributes
    ----------
    beta_ : float
        The trade-off chosen at the last query (on the strategy object the learner holds).
    """

    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "betas": ["array-like"],
    }
    _target_kinds = frozenset({"multilabel"})

    def __init__(
        self, betas=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), random_state=None
    ):
        self.betas = betas
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        name = type(self).__name__
        betas = np.asarray(self.betas, dtype=np.float64).ravel()
        if betas.size == 0 or np.any((betas < 0) | (betas > 1)) or np.isnan(betas).any():
            raise ValueError(f"betas must be a non-empty list of values in [0, 1], got "
                             f"{self.betas!r}.")
        f = label_scores(learner, X_pool, name)  # an unfitted model fails here
        y_labeled = getattr(learner, "y_labeled_", None)
        if y_labeled is None:
            raise TypeError(
                f"{name} compares predicted label counts with the labelled rows' and refits "
                f"the learner; {type(learner).__name__} has no X_labeled_/y_labeled_: use it "
                "inside ActiveLearner."
            )
        log_u = -np.log(np.maximum(_separation_margin(f), 1e-12))
        mean_count = np.asarray(y_labeled).sum(axis=1).mean()
        with np.errstate(divide="ignore"):
            log_c = np.log(np.abs((f > 0).sum(axis=1) - mean_count))

        def q(beta):
            # log q_beta, with 0 * log 0 = 0 at the ends of the range
            return (beta * log_u if beta > 0 else 0.0) + (
                (1.0 - beta) * log_c if beta < 1 else 0.0
            )

        candidates = {}
        for beta in betas:
            best = int(top_k(q(beta), 1, random_state)[0])
            candidates.setdefault(best, []).append(beta)
        if len(candidates) == 1:
            chosen_beta = next(iter(candidates.values()))[0]
        else:
            errors = {row: self._refit_error(learner, X_pool, f, row, name)
                      for row in candidates}
            best_row = min(errors, key=lambda row: (errors[row], row))
            chosen_beta = candidates[best_row][0]
        self.beta_ = float(chosen_beta)
        scores = q(chosen_beta)
        indices = top_k(scores, batch_size, random_state)
        return indices, scores[indices]

    def _refit_error(self, learner, X_pool, f, row, name):
        model = clone(learner)
        if "budget" in model.get_params():
            model.set_params(budget=None)
        x = take_rows(X_pool, [row])
        y = (f[row : row + 1] > 0).astype(learner.y_labeled_.dtype)
        model.fit(concat_rows(learner.X_labeled_, x), np.concatenate([learner.y_labeled_, y]))
        return float(_hinge_error(label_scores(model, X_pool, name)).sum())
