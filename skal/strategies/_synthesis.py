"""Query synthesis with a generator fitted on the pool: GAAL (Zhu & Bento 2017) synthesises
rows near the decision boundary for a person to label; ASAL (Mayer & Timofte 2020) queries
the pool rows nearest to such synthesised rows."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from skal.strategies._base import QueryStrategy, _is_fitted, embed, num_rows, require
from skal.strategies._diversity import _as_numpy
from skal.strategies._domain import nearest_unique_rows
from skal.strategies._uncertainty import entropy, top_two

_MAX_SEED = np.iinfo(np.int32).max

_SEARCH_CONSTRAINTS = {
    "generator": [HasMethods(["fit", "generate", "sample_latent"]), None],
    "uncertainty": [StrOptions({"margin", "entropy"})],
    "n_candidates": [Interval(numbers.Integral, 1, None, closed="left")],
    "n_steps": [Interval(numbers.Integral, 0, None, closed="left")],
    "n_proposals": [Interval(numbers.Integral, 1, None, closed="left")],
    "step_size": [Interval(numbers.Real, 0, None, closed="neither")],
}


def boundary_distance(learner, X, uncertainty="margin", name="GAAL"):
    """How far each row of ``X`` is from the learner's decision boundary; lower is nearer.

    ``"margin"``: ``p1 - p2``, the gap between the two largest class probabilities; for a
    learner without ``predict_proba``, the decision function's ``|f(x)|`` (binary) or the gap
    between its two largest values (multi-class), as GAAL's ``|w . x + b|`` for a linear
    SVM. ``"entropy"``: minus the predictive entropy (ASAL's score).

    Parameters
    ----------
    learner : fitted classifier
    X : array-like of shape (n_samples, ...)
    uncertainty : {"margin", "entropy"}, default="margin"
    name : str, default="GAAL"
        The strategy named in errors.

    Returns
    -------
    distance : ndarray of shape (n_samples,)
    """
    if uncertainty == "margin" and not callable(getattr(learner, "predict_proba", None)) \
            and callable(getattr(learner, "decision_function", None)):
        values = np.asarray(require(learner, "decision_function", name)(X), dtype=np.float64)
        if values.ndim == 1:
            return np.abs(values)
    else:
        values = np.asarray(require(learner, "predict_proba", name)(X), dtype=np.float64)
        if uncertainty == "entropy":
            return -entropy(values)
    first, second = top_two(values)
    return first - second  # one class: -inf - ... = inf, no boundary anywhere


def search_latent(generator, objective, n_samples, *, n_candidates, n_steps, n_proposals,
                  step_size, random_state):
    """Latent codes whose generated rows minimise ``objective``, by derivative-free search.

    ``n_candidates`` codes are drawn from the prior and the best ``n_samples`` kept; each is
    then improved for ``n_steps`` steps by a (1 + lambda) evolution strategy: ``n_proposals``
    Gaussian perturbations (standard deviation ``step_size``, shrinking geometrically to a
    tenth of it), the best replacing the code when it lowers the objective. Codes stay inside
    the ball where the prior ``N(0, I)`` puts almost all its mass (``||z||^2`` at most the
    chi-square mean plus three standard deviations), so the generator is never asked for
    codes it was not trained on.

    Any classifier works (no gradient is needed); for a linear SVM the objective is
    ``|w . G(z) + b|``, which GAAL minimises by gradient descent.

    Returns
    -------
    Z : ndarray of shape (n_samples, latent_dim)
    values : ndarray of shape (n_samples,)
        The objective of each code's row, ascending.
    """
    rng = check_random_state(random_state)
    Z = np.asarray(generator.sample_latent(max(n_candidates, n_samples), rng), dtype=np.float64)
    dim = Z.shape[1]
    radius = np.sqrt(dim + 3 * np.sqrt(2 * dim))
    Z = _into_ball(Z, radius)
    values = objective(generator.generate(Z))
    best = np.argsort(values, kind="stable")[:n_samples]
    Z, values = Z[best], values[best]
    for step in range(n_steps):
        sigma = step_size * 0.1 ** (step / max(n_steps - 1, 1))
        noise = rng.standard_normal((n_samples, n_proposals, dim))
        proposals = _into_ball((Z[:, None, :] + sigma * noise).reshape(-1, dim), radius)
        scores = objective(generator.generate(proposals)).reshape(n_samples, n_proposals)
        pick = scores.argmin(axis=1)
        rows = np.arange(n_samples)
        better = scores[rows, pick] < values
        Z[better] = proposals.reshape(n_samples, n_proposals, dim)[rows, pick][better]
        values[better] = scores[rows, pick][better]
    order = np.argsort(values, kind="stable")
    return Z[order], values[order]


def _into_ball(Z, radius):
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return np.where(norms > radius, Z * (radius / np.maximum(norms, 1e-12)), Z)


class _Synthesizer:
    """What GAAL and ASAL share: the generator (fitted once, then reused) and the search."""

    def _fitted_generator(self, X_pool, rng):
        generator = self.__dict__.get("generator_")
        if generator is not None:
            return generator
        if self.generator is None:
            from skal.nets import PoolGAN

            generator = PoolGAN(random_state=int(rng.randint(_MAX_SEED))).fit(X_pool)
        elif _is_fitted(self.generator):
            generator = self.generator  # fitted by the user (wrap it in FrozenEstimator)
        else:
            generator = clone(self.generator)
            if "random_state" in generator.get_params() and \
                    generator.get_params()["random_state"] is None:
                generator.set_params(random_state=int(rng.randint(_MAX_SEED)))
            generator.fit(X_pool)
        self.generator_ = generator
        return generator

    def _synthesize(self, learner, X_pool, n_samples, rng):
        name = type(self).__name__
        boundary_distance(learner, _first_row(X_pool), self.uncertainty, name)  # fail early
        generator = self._fitted_generator(X_pool, rng)

        def objective(X):
            return boundary_distance(learner, X, self.uncertainty, name)

        Z, values = search_latent(
            generator, objective, n_samples, n_candidates=self.n_candidates,
            n_steps=self.n_steps, n_proposals=self.n_proposals, step_size=self.step_size,
            random_state=rng,
        )
        # The rows are made again in a batch of their own, whose float32 rounding can differ
        # from the search's larger batches: score what is returned, nearest first.
        X_new = generator.generate(Z)
        values = objective(X_new)
        order = np.argsort(values, kind="stable")
        return X_new[order], values[order]


def _first_row(X):
    return X[:1] if not hasattr(X, "iloc") else X.iloc[:1]


class GAAL(_Synthesizer, BaseEstimator):
    """Generative adversarial active learning: synthesise rows at the decision boundary.

    Query synthesis (Zhu & Bento 2017): a generator ``G`` is fitted on the unlabelled pool
    (by default a :class:`~skal.nets.PoolGAN`), and latent codes ``z`` are searched so
    that the generated rows ``G(z)`` lie where the current model is least sure, for a person
    to label. The paper minimises ``|w . G(z) + b|`` for a linear SVM by gradient descent;
    here any classifier works: the distance to the boundary is the margin ``p1 - p2`` of
    ``predict_proba`` (or ``|decision_function|`` for a model without probabilities, the
    paper's objective for a linear SVM), or minus the entropy, minimised by a
    derivative-free search in latent space (:func:`search_latent`).

    GAAL does not select pool rows, so it is not a query strategy (protocol rule 1 asks
    for indices of ``X_pool``): call :meth:`synthesize`, label the rows it returns and add
    them with ``learner.teach(X_new, y_new)``; or give it to
    :class:`~skal.labeling.LabelingSession` as ``synthesizer``, which journals the rows
    with their features and asks the annotator about them. In a simulation the labels must
    come from an oracle you supply for rows that exist nowhere (e.g. a classifier trained
    on all the data, or the label of the nearest pool row).

    A generator that is poorly trained makes abnormal rows that a person cannot label (the
    survey's warning for GAAL). Look at ``generator_.sample(...)`` first.

    Parameters
    ----------
    generator : estimator with fit, generate and sample_latent, default=None
        The generator; ``None`` is a :class:`~skal.nets.PoolGAN` seeded from
        ``random_state``. An unfitted one is cloned and fitted on the first pool; a fitted
        one is used as it is (wrap it in :class:`sklearn.frozen.FrozenEstimator` so that a
        ``clone`` keeps it fitted).
    uncertainty : {"margin", "entropy"}, default="margin"
        What "near the boundary" means (see :func:`boundary_distance`).
    n_candidates : int, default=200
        Latent codes drawn from the prior before the search; the best ``batch_size`` are
        refined.
    n_steps : int, default=30
        Refinement steps of the search.
    n_proposals : int, default=16
        Perturbations tried per code and step.
    step_size : float, default=0.5
        Initial standard deviation of the perturbations (latent units); it shrinks to a
        tenth over the steps.
    random_state : int, RandomState instance or None, default=None
        Seeds the default generator and the search. An int gives every call its own
        stream (as protocol rule 5 does for queries).

    Attributes
    ----------
    generator_ : estimator
        The fitted generator, reused by later calls.

    References
    ----------
    J.-J. Zhu and J. Bento, "Generative Adversarial Active Learning", arXiv:1702.07956,
    2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skal.nets import PoolGAN
    >>> from skal.strategies import GAAL
    >>> X, y = load_digits(return_X_y=True)
    >>> model = LogisticRegression(max_iter=500).fit(X[:50], y[:50])
    >>> gaal = GAAL(PoolGAN(max_epochs=2, random_state=0), n_steps=2, random_state=0)
    >>> gaal.synthesize(model, X[50:400], batch_size=4).shape
    (4, 64)
    """

    _parameter_constraints = {**_SEARCH_CONSTRAINTS, "random_state": ["random_state"]}

    def __init__(self, generator=None, uncertainty="margin", n_candidates=200, n_steps=30,
                 n_proposals=16, step_size=0.5, random_state=None):
        self.generator = generator
        self.uncertainty = uncertainty
        self.n_candidates = n_candidates
        self.n_steps = n_steps
        self.n_proposals = n_proposals
        self.step_size = step_size
        self.random_state = random_state

    def fit(self, X_pool, y=None):
        """Fit the generator on the pool (:meth:`synthesize` does it on its first call).

        Parameters
        ----------
        X_pool : array-like of shape (n_pool, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        self._validate_params()
        self.__dict__.pop("generator_", None)
        self._fitted_generator(X_pool, QueryStrategy._random_state(self))
        return self

    def synthesize(self, learner, X_pool, batch_size=1, *, return_scores=False):
        """Synthesise ``batch_size`` rows near the learner's decision boundary.

        Parameters
        ----------
        learner : fitted classifier
            With ``predict_proba`` (or ``decision_function`` for ``uncertainty="margin"``).
        X_pool : array-like of shape (n_pool, n_features)
            The unlabelled pool; the generator is fitted on it when it is not fitted yet.
        batch_size : int, default=1
        return_scores : bool, default=False
            Also return each row's distance to the boundary (lower is nearer).

        Returns
        -------
        X_new : ndarray of shape (batch_size, n_features)
            New rows, nearest to the boundary first; they are not rows of ``X_pool``.
        scores : ndarray of shape (batch_size,)
            Only with ``return_scores=True``.
        """
        self._validate_params()
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if num_rows(X_pool) == 0 and "generator_" not in self.__dict__:
            raise ValueError("X_pool is empty: there is nothing to fit the generator on.")
        X_new, values = self._synthesize(learner, X_pool, int(batch_size),
                                         QueryStrategy._random_state(self))
        return (X_new, values) if return_scores else X_new


class ASAL(_Synthesizer, QueryStrategy):
    """Adversarial sampling: synthesise uncertain rows, query the pool rows nearest them.

    ASAL (Mayer & Timofte 2020) searches a generator fitted on the pool for rows of high
    uncertainty, as :class:`GAAL` does, but asks the annotator about real rows: each
    synthesised row (most uncertain first) is matched to its nearest pool row not taken
    yet, in the learner's embedding (:func:`~skal.strategies._base.embed`: a network's
    ``transform``, a Pipeline's preprocessing, or the raw features). The paper uses the
    entropy and a nearest-neighbour index, so that the pool is never scored in full.

    The answer holds exactly ``batch_size`` unique pool indices. Its scores are the
    synthesised rows' uncertainties (minus their :func:`boundary_distance`), not the
    matched rows'.

    The generator is fitted on the first pool queried and reused (``generator_``); a
    learner clones its strategy at every ``fit``, so in a labelling session (refitted
    every round) pass a fitted generator wrapped in :class:`sklearn.frozen.FrozenEstimator`.

    Parameters
    ----------
    generator : estimator with fit, generate and sample_latent, default=None
        See :class:`GAAL`.
    uncertainty : {"margin", "entropy"}, default="entropy"
        What the synthesised rows maximise (see :func:`boundary_distance`).
    n_candidates : int, default=200
    n_steps : int, default=30
    n_proposals : int, default=16
    step_size : float, default=0.5
        The latent search (see :class:`GAAL`).
    random_state : int, RandomState instance or None, default=None
        Seeds the default generator and the search.

    Attributes
    ----------
    generator_ : estimator
        The fitted generator, set at the first query.

    References
    ----------
    C. Mayer and R. Timofte, "Adversarial Sampling for Active Learning", WACV 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skal.nets import PoolGAN
    >>> from skal.strategies import ASAL
    >>> X, y = load_digits(return_X_y=True)
    >>> model = LogisticRegression(max_iter=500).fit(X[:50], y[:50])
    >>> asal = ASAL(PoolGAN(max_epochs=2, random_state=0), n_steps=2, random_state=0)
    >>> asal(model, X[50:400], batch_size=4).shape
    (4,)
    """

    _needs_dense_embedding = True
    _parameter_constraints = {**QueryStrategy._parameter_constraints, **_SEARCH_CONSTRAINTS}

    def __init__(self, generator=None, uncertainty="entropy", n_candidates=200, n_steps=30,
                 n_proposals=16, step_size=0.5, random_state=None):
        self.generator = generator
        self.uncertainty = uncertainty
        self.n_candidates = n_candidates
        self.n_steps = n_steps
        self.n_proposals = n_proposals
        self.step_size = step_size
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        X_new, values = self._synthesize(learner, X_pool, batch_size, random_state)
        pool = _as_numpy(embed(learner, X_pool)).astype(np.float64, copy=False)
        made = _as_numpy(embed(learner, X_new)).astype(np.float64, copy=False)
        return nearest_unique_rows(pool, made), -values
