"""Expected error reduction (Roy & McCallum 2001): refit on every hypothetical label of a
candidate and measure the expected error on the pool, with subsampled candidates and
evaluation rows so that pools of thousands stay usable."""

import numbers

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples
from threadpoolctl import threadpool_limits

from skal._validation import concat_rows
from skal.strategies._base import (
    QueryStrategy,
    _describe,
    _n_columns,
    num_rows,
    require,
    take_rows,
    top_k,
)
from skal.strategies._uncertainty import entropy

# Labelled sets of fewer values (rows x features) than this are refitted on one BLAS thread.
_SMALL_FIT = 2**22


def _error(proba, loss):
    """Mean estimated error over rows: ``1 - max_c p`` (0/1 loss) or ``H[p]`` (log loss)."""
    proba = np.asarray(proba, dtype=np.float64)
    if loss == "zero_one":
        return float(np.mean(1.0 - proba.max(axis=1)))
    return float(np.mean(entropy(proba, axis=1)))


def _expected_error(template, X_labeled, y_labeled, x_row, labels, weights, X_eval, loss):
    """``sum_c p(c | x) error(model refitted with (x, c))`` for one candidate ``x``."""
    X_new = concat_rows(X_labeled, x_row)
    total = 0.0
    for label, weight in zip(labels, weights, strict=True):
        if weight <= 0:
            continue  # a label of probability 0 adds nothing (and its refit is skipped)
        y_new = np.concatenate([y_labeled, np.asarray([label], dtype=y_labeled.dtype)])
        model = clone(template).fit(X_new, y_new)
        total += weight * _error(model.predict_proba(X_eval), loss)
    return total


class ExpectedErrorReduction(QueryStrategy):
    """Expected error reduction: the rows whose label should most lower the error on the pool.

    For a candidate ``x`` and each class ``c``, weighted by the current model's ``p(c | x)``,
    the learner is refitted with ``(x, c)`` added to its labelled set, giving ``p'_{x,c}``;
    the expected error after labelling ``x`` is::

        E(x) = sum_c p(c | x) * (1/|V|) sum_{u in V} err(p'_{x,c}(. | u))

    with ``err(p) = 1 - max_c p_c`` (``loss="zero_one"``) or ``H[p]`` (``loss="log_loss"``)
    over evaluation rows ``V`` of the pool (Roy & McCallum 2001, who sum over the pool: the
    mean ranks the same). The score is the expected reduction ``err_now - E(x)``, where
    ``err_now`` is the current model's error on ``V``; higher is better.

    Exact EER refits ``N C`` times per query and evaluates each refit on ``N`` rows. The
    subsampled approximation keeps it usable on pools of thousands:

    - only ``n_candidates`` candidates are scored: the most uncertain rows (entropy of
      ``predict_proba``) or rows drawn at random; at least ``batch_size`` of them;
    - the error is measured on ``n_evaluation`` pool rows drawn at random for each query;

    so a query costs ``n_candidates * C`` refits plus their predictions on ``n_evaluation``
    rows, whatever the pool size. A batch is the top ``batch_size`` candidates by expected
    reduction, each scored alone: the greedy "top-b" approximation, not the reduction of the
    batch labelled jointly.

    Refits are :func:`sklearn.base.clone` s of the learner with ``budget=None`` (and
    ``missing_label=None``, so that any class value is a label) fitted on the learner's
    ``X_labeled_`` and ``y_labeled_`` plus the candidate; they run in joblib workers over the
    candidates with the learner's ``n_jobs``. The learner's seed makes the refits
    deterministic.

    Parameters
    ----------
    loss : {"zero_one", "log_loss"}, default="zero_one"
        The error estimated on the evaluation rows.
    n_candidates : int or None, default=10
        Candidates scored per query; ``None`` scores every pool row (exact EER, ``N C``
        refits).
    candidates : {"uncertainty", "random"}, default="uncertainty"
        Which candidates: the ``n_candidates`` of highest predictive entropy, or random rows.
    n_evaluation : int or None, default=1000
        Pool rows the error is measured on, drawn at random per query; ``None`` (or a pool
        this small) uses every pool row.
    random_state : int, RandomState instance or None, default=None
        Draws candidates and evaluation rows and breaks ties.

    Notes
    -----
    Needs a learner that keeps its labelled set (``X_labeled_``, ``y_labeled_``), such as
    :class:`~skal.ActiveLearner` or :class:`~skal.CommitteeLearner`, and ``predict_proba``.
    :meth:`select` returns the expected reductions of the picks.

    References
    ----------
    N. Roy and A. McCallum, "Toward Optimal Active Learning through Sampling Estimation of
    Error Reduction", ICML 2001.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal import ActiveLearner
    >>> from skal.strategies import ExpectedErrorReduction
    >>> X, y = load_iris(return_X_y=True)
    >>> y_partial = y.copy()
    >>> y_partial[1::5] = -1
    >>> learner = ActiveLearner(random_state=0).fit(X, y_partial)
    >>> strategy = ExpectedErrorReduction(n_candidates=5, random_state=0)
    >>> strategy(learner, X[1::5], batch_size=2).shape
    (2,)
    """

    _parameter_constraints = {
        **QueryStrategy._parameter_constraints,
        "loss": [StrOptions({"zero_one", "log_loss"})],
        "n_candidates": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "candidates": [StrOptions({"uncertainty", "random"})],
        "n_evaluation": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(self, loss="zero_one", n_candidates=10, candidates="uncertainty",
                 n_evaluation=1000, random_state=None):
        self.loss = loss
        self.n_candidates = n_candidates
        self.candidates = candidates
        self.n_evaluation = n_evaluation
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        name = type(self).__name__
        predict_proba = require(learner, "predict_proba", name)
        X_labeled = getattr(learner, "X_labeled_", None)
        y_labeled = getattr(learner, "y_labeled_", None)
        if X_labeled is None or y_labeled is None:
            raise TypeError(
                f"{name} needs the learner's labelled set (X_labeled_ and y_labeled_) to "
                f"refit on, but {_describe(learner)} has none. Use it with a skal learner "
                "such as ActiveLearner or CommitteeLearner."
            )
        n_pool = num_rows(X_pool)
        # One pass over the pool: it ranks the candidates, weights their labels and gives
        # the current error on the evaluation rows.
        proba = np.asarray(predict_proba(X_pool), dtype=np.float64)
        candidates = self._candidates(proba, batch_size, random_state)
        if self.n_evaluation is None or n_pool <= self.n_evaluation:
            eval_rows = np.arange(n_pool)
        else:
            eval_rows = np.sort(random_state.choice(n_pool, self.n_evaluation, replace=False))
        X_eval = take_rows(X_pool, eval_rows)
        current_error = _error(proba[eval_rows], self.loss)

        n_jobs = getattr(learner, "n_jobs", None)
        template = clone(learner)
        params = template.get_params(deep=False)
        overrides = {key: None for key in ("budget", "missing_label") if key in params}
        if n_jobs not in (None, 1) and "n_jobs" in params:
            overrides["n_jobs"] = None  # the candidates are parallel already
        template.set_params(**overrides)
        # Refits of a small labelled set are several times faster (wall and CPU) on one
        # BLAS thread than on threads that wake for every tiny product; joblib's process
        # workers limit their own threads.
        small = _num_samples(X_labeled) * _n_columns(X_labeled) < _SMALL_FIT
        with threadpool_limits(1 if small else None, user_api="blas"):
            expected = Parallel(n_jobs=n_jobs)(
                delayed(_expected_error)(
                    template, X_labeled, np.asarray(y_labeled), take_rows(X_pool, [i]),
                    learner.classes_, proba[i], X_eval, self.loss,
                )
                for i in candidates
            )
        reduction = current_error - np.asarray(expected)
        order = top_k(reduction, batch_size, random_state)
        return candidates[order], reduction[order]

    def _candidates(self, proba, batch_size, random_state):
        n_pool = proba.shape[0]
        n_candidates = n_pool if self.n_candidates is None else self.n_candidates
        n_candidates = min(n_pool, max(n_candidates, batch_size))
        if n_candidates == n_pool:
            return np.arange(n_pool)
        if self.candidates == "random":
            return np.sort(random_state.choice(n_pool, n_candidates, replace=False))
        return np.sort(top_k(entropy(proba, axis=1), n_candidates, random_state))
