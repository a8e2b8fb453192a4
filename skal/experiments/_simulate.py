"""Simulated active-learning experiments: learners x repeats, scored on a test set every cycle.

Each run is the learner's own simulated ``fit`` (``budget`` set) with an ``on_cycle`` callback,
so every cycle's model is scored once, right after it is trained, and the loop, refit logic
(``update``, committees, seeding) and initial-set handling are the core's, unchanged.
"""

import numbers

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid
from sklearn.utils import check_random_state
from sklearn.utils.validation import _num_samples

from skal._validation import as_row_container, missing_mask
from skal.learners._base import seed_estimator

_MAX_SEED = np.iinfo(np.int32).max

#: Columns of the tidy result, in order; one ``score_<metric>`` column is added per extra metric.
RESULT_COLUMNS = [
    "learner",
    "strategy",
    "estimator",
    "repeat",
    "seed",
    "cycle",
    "n_labels",
    "cost",
    "score",
    "fit_seconds",
    "query_seconds",
    "indices",
]


def _name_of(obj):
    """A short display name: a class name, a function name, or ``"default"`` for None."""
    if obj is None:
        return "default"
    if isinstance(obj, str):
        return obj
    if hasattr(obj, "steps"):  # a Pipeline: name it by its last step
        return _name_of(obj.steps[-1][1])
    if hasattr(obj, "get_params"):
        return type(obj).__name__
    return getattr(obj, "__name__", type(obj).__name__)


def _learner_names(learner):
    strategy = getattr(learner, "query_strategy", None)
    if strategy is None and hasattr(learner, "_default_strategy"):
        strategy = learner._default_strategy()
    estimator = getattr(learner, "estimator", None)
    if estimator is None and hasattr(learner, "_configured_estimator"):
        estimator = learner._configured_estimator()
    if isinstance(estimator, list | tuple):
        estimator = "+".join(_name_of(e) for e in estimator)
    return _name_of(strategy), _name_of(estimator)


def _expand_learners(learner, param_grid):
    """Return ``{name: learner}`` from a learner, a dict or list of learners, and a grid."""
    if isinstance(learner, dict):
        if param_grid is not None:
            raise ValueError("param_grid needs a single learner, not a dict of learners.")
        if not learner:
            raise ValueError("The dict of learners is empty.")
        return {str(name): est for name, est in learner.items()}
    if isinstance(learner, list | tuple):
        if param_grid is not None:
            raise ValueError("param_grid needs a single learner, not a list of learners.")
        learners = list(learner)
    elif param_grid is not None:
        grid = list(ParameterGrid(param_grid))
        learners = [clone(learner).set_params(**params) for params in grid]
    else:
        learners = [learner]
    if not learners:
        raise ValueError("No learners to run.")
    names = [" | ".join(_learner_names(est)) for est in learners]
    varying = [len({n.split(" | ")[i] for n in names}) > 1 for i in range(2)]
    if any(varying):
        names = [
            " | ".join(part for part, keep in zip(n.split(" | "), varying, strict=True) if keep)
            for n in names
        ]
    else:
        names = [n.split(" | ")[0] for n in names]
    if len(set(names)) < len(names):
        # Same classes with different parameters: fall back to scikit-learn's repr.
        names = [repr(est) for est in learners]
    if len(set(names)) < len(names):
        names = [f"{n} #{i}" for i, n in enumerate(names)]
    return dict(zip(names, learners, strict=True))


def _repeat_seeds(random_state, n_repeats):
    rng = check_random_state(random_state)
    return [int(s) for s in rng.randint(_MAX_SEED, size=n_repeats)]


def _check_oracle(y_pool, missing):
    """The oracle labels every row: none may equal the learner's ``missing_label``."""
    is_missing = missing_mask(y_pool, missing)
    if is_missing.any():
        raise ValueError(
            f"y_pool contains the learner's missing_label={missing!r}; the oracle must label "
            "every row. Set the learner's missing_label to a value that is not a class."
        )


def _run_one(name, learner, X_pool, y_pool, X_test, y_test, settings, repeat, seed, progress):
    """One learner, one repeat: the learner's own simulated run, scored after every fit.

    Every learner of a repeat gets the repeat's seed, hence the same initial rows (paired).
    """
    budget, batch_size, n_initial, scoring, initial_strategy = settings
    learner = seed_estimator(clone(learner), seed, overwrite=False)
    overrides = {"random_state": seed, "budget": budget, "batch_size": batch_size,
                 "n_initial": n_initial, "initial_strategy": initial_strategy}
    learner.set_params(**{k: v for k, v in overrides.items() if v is not None})
    if learner.n_initial > budget:
        learner.set_params(n_initial=budget)
    _check_oracle(y_pool, learner.missing_label)
    strategy_name, estimator_name = _learner_names(learner)
    rows = []

    def record(fitted, entry):
        score = scoring(fitted, X_test, y_test)
        scores = score if isinstance(score, dict) else {"score": score}
        rows.append(
            {
                "learner": name,
                "strategy": strategy_name,
                "estimator": estimator_name,
                "repeat": repeat,
                "seed": seed,
                "cycle": int(entry["cycle"]),
                "n_labels": int(entry["n_labels"]),
                "cost": float(entry.get("cost", entry["n_labels"])),
                **{key: float(value) for key, value in scores.items()},
                "fit_seconds": float(entry["fit_seconds"]),
                "query_seconds": float(entry["query_seconds"]),
                "indices": [int(i) for i in entry["indices"]],
            }
        )
        if progress is not None:
            progress(1)

    learner.fit(X_pool, y_pool, on_cycle=record)
    return rows


def _multimetric_columns(scoring):
    if scoring is None or isinstance(scoring, str) or callable(scoring):
        return None
    names = list(scoring)
    return names


def run_experiment(
    learner,
    X_pool,
    y_pool,
    X_test,
    y_test,
    *,
    budget,
    param_grid=None,
    batch_size=None,
    n_initial=None,
    initial_strategy=None,
    n_repeats=3,
    scoring=None,
    random_state=0,
    n_jobs=None,
    progress=False,
):
    """Simulate active learning with known labels and score every cycle's model on a test set.

    Each run is the learner's own simulated ``fit`` (``budget`` set), with an ``on_cycle``
    callback that scores the model of every cycle once.

    Every learner (or every point of ``param_grid``) runs ``n_repeats`` times. Repeat ``r``
    uses the same seed and the same initial labelled rows for every learner, so learners are
    compared paired. A run fits on the initial rows, then queries ``batch_size`` pool rows per
    cycle, reveals their labels from ``y_pool`` (the oracle) and refits, until ``budget``
    labels are used; after every fit the model is scored on ``(X_test, y_test)``.

    The learner x repeat runs are spread over ``n_jobs`` joblib workers; the backend follows
    :func:`joblib.parallel_config`, so ``parallel_config(backend="dask")`` runs them on a dask
    cluster. Scores and acquired indices do not depend on ``n_jobs``.

    Parameters
    ----------
    learner : ActiveLearner, CommitteeLearner, list or dict of them
        The learner(s) to simulate; a dict names them. Parameters ``random_state`` left at None
        (the learner's, its estimator's, its strategy's) are set from the repeat's seed.
    X_pool : array-like of shape (n_pool, n_features)
        The rows that can be labelled.
    y_pool : array-like of shape (n_pool,)
        Their true labels: the oracle.
    X_test : array-like of shape (n_test, n_features)
        Held-out rows the model of every cycle is scored on.
    y_test : array-like of shape (n_test,)
        Their labels.
    budget : int or float
        Total labels per run, the initial rows included (in cost units for learners with a
        ``label_cost``).
    param_grid : dict or list of dicts, default=None
        A grid over ``learner``'s parameters, as for :class:`~sklearn.model_selection.GridSearchCV`,
        e.g. ``{"query_strategy": [RandomSampling(), MarginSampling()], "estimator": [...]}``.
    batch_size : int, default=None
        Rows queried per cycle; None uses each learner's ``batch_size``.
    n_initial : int, default=None
        Size of the initial labelled set; None uses each learner's ``n_initial``.
    initial_strategy : callable, default=None
        How the initial rows are picked (a cold-start strategy, called with an unfitted
        learner). None uses the learner's ``initial_strategy``, or else rows drawn uniformly at
        random from the repeat's seed (extended with random rows until they hold two classes,
        as in :meth:`ActiveLearner.fit <skal.ActiveLearner.fit>`).
    n_repeats : int, default=3
        Number of repeats (seeds).
    scoring : str, callable, list or dict, default=None
        Test metric(s), as for :func:`~sklearn.metrics.check_scoring`; None uses the learner's
        ``score`` (accuracy). With several metrics, the first fills the ``score`` column and
        every metric gets a ``score_<name>`` column.
    random_state : int, RandomState instance or None, default=0
        Draws the seeds of the repeats.
    n_jobs : int, default=None
        Parallel learner x repeat runs (``-1``: all cores); :func:`joblib.parallel_config`
        applies.
    progress : bool, default=False
        Show a tqdm progress bar over cycles (on stderr).

    Returns
    -------
    result : pandas.DataFrame
        One row per learner, repeat and cycle, with columns ``learner``, ``strategy``,
        ``estimator``, ``repeat``, ``seed``, ``cycle``, ``n_labels``, ``cost`` (of the labels
        so far: their number, or their ``label_cost`` sum), ``score`` (and
        ``score_<name>`` per metric), ``fit_seconds``, ``query_seconds`` and ``indices`` (the
        rows of ``X_pool`` acquired in the cycle, as a list; cycle 0 holds the initial rows).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import train_test_split
    >>> from skal import ActiveLearner, MarginSampling, RandomSampling
    >>> from skal.experiments import run_experiment
    >>> X, y = load_iris(return_X_y=True)
    >>> X_pool, X_test, y_pool, y_test = train_test_split(X, y, random_state=0)
    >>> result = run_experiment(
    ...     ActiveLearner(batch_size=5, n_initial=6), X_pool, y_pool, X_test, y_test,
    ...     param_grid={"query_strategy": [RandomSampling(), MarginSampling()]},
    ...     budget=21, n_repeats=2)
    >>> result.groupby("learner")["n_labels"].max().tolist()
    [21, 21]
    """
    # an int counts labels; a learner with label_cost also takes cost units (a float)
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not budget > 0:
        raise ValueError(f"budget must be a positive number, got {budget!r}.")
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, numbers.Integral) or n_repeats < 1:
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}.")
    learners = _expand_learners(learner, param_grid)
    X_pool = as_row_container(X_pool)
    X_test = as_row_container(X_test)
    y_pool = np.asarray(y_pool)
    y_test = np.asarray(y_test)
    if _num_samples(X_pool) != y_pool.shape[0]:
        raise ValueError(
            f"X_pool has {_num_samples(X_pool)} rows but y_pool has {y_pool.shape[0]} labels."
        )
    if _num_samples(X_test) != y_test.shape[0]:
        raise ValueError(
            f"X_test has {_num_samples(X_test)} rows but y_test has {y_test.shape[0]} labels."
        )
    budget = min(int(budget), y_pool.shape[0])
    first = next(iter(learners.values()))
    scorer = check_scoring(first, scoring=scoring)
    metric_names = _multimetric_columns(scoring)
    settings = (budget, batch_size, n_initial, scorer, initial_strategy)
    seeds = _repeat_seeds(random_state, n_repeats)
    tasks = [
        (name, est, repeat, seed)
        for repeat, seed in enumerate(seeds)
        for name, est in learners.items()
    ]
    n_cycles = sum(_expected_cycles(est, budget, batch_size, n_initial) for _, est, _, _ in tasks)
    bar = _progress_bar(n_cycles) if progress else None
    try:
        if effective_n_jobs(n_jobs) == 1:
            chunks = []
            for name, est, repeat, seed in tasks:
                if bar is not None:
                    bar.set_postfix_str(f"{name}, repeat {repeat}")
                chunks.append(
                    _run_one(
                        name, est, X_pool, y_pool, X_test, y_test, settings, repeat, seed,
                        None if bar is None else bar.update,
                    )
                )
        else:
            chunks = []
            runs = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_run_one)(
                    name, est, X_pool, y_pool, X_test, y_test, settings, repeat, seed, None
                )
                for name, est, repeat, seed in tasks
            )
            for rows in runs:
                chunks.append(rows)
                if bar is not None:
                    bar.update(len(rows))
    finally:
        if bar is not None:
            bar.close()
    result = pd.DataFrame([row for rows in chunks for row in rows])
    if metric_names:
        for metric in metric_names:
            result = result.rename(columns={metric: f"score_{metric}"})
        result.insert(result.columns.get_loc(f"score_{metric_names[0]}"), "score",
                      result[f"score_{metric_names[0]}"])
    order = [c for c in RESULT_COLUMNS if c in result.columns]
    extra = [c for c in result.columns if c not in order]
    order = order[: order.index("score") + 1] + extra + order[order.index("score") + 1 :]
    result = result[order]
    result = result.sort_values(["learner", "repeat", "cycle"], kind="stable")
    result["learner"] = pd.Categorical(result["learner"], categories=list(learners))
    result = result.sort_values(["learner", "repeat", "cycle"], kind="stable")
    result["learner"] = result["learner"].astype(str)
    return result.reset_index(drop=True)


def _expected_cycles(learner, budget, batch_size, n_initial):
    params = learner.get_params(deep=False)
    batch_size = batch_size or params.get("batch_size", 10)
    n_initial = min(n_initial or params.get("n_initial", 10), budget)
    return 1 + int(np.ceil((budget - n_initial) / batch_size))


def _progress_bar(total):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="cycle", desc="simulating", leave=True, dynamic_ncols=True)
