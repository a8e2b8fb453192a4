"""Simulated active-learning experiments: learners x repeats, scored on a test set every cycle.

Each run drives a learner through its public ``fit`` / ``query`` / ``teach`` API with the pool
labels as the oracle, so every cycle's model is scored once, right after it is trained, and
the learner's own refit logic (``update``, committees, seeding) is reused unchanged.
"""

import numbers
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid
from sklearn.utils import check_random_state
from sklearn.utils.validation import _num_samples

from skal._learner import seed_estimator
from skal._validation import as_row_container
from skal.strategies._base import select_with_scores, take_rows

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


def _initial_rows(y_pool, n_initial, seed):
    """The initial labelled rows for one repeat: the same for every learner (paired design).

    Redrawn (up to 100 times) until it holds at least two classes, since a classifier cannot
    be fitted on one.
    """
    rng = check_random_state(seed)
    n_pool = y_pool.shape[0]
    for _ in range(100):
        rows = np.sort(rng.choice(n_pool, size=n_initial, replace=False))
        if np.unique(y_pool[rows]).size > 1:
            return rows
    raise ValueError(
        f"Could not draw {n_initial} initial rows holding two classes; raise n_initial."
    )


def _mask_labels(y_pool, rows, missing):
    """``y_pool`` with every row but ``rows`` set to ``missing`` (the learner's marker)."""
    if missing is not None and not isinstance(missing, str) and y_pool.dtype.kind in "iuf":
        dtype = np.result_type(y_pool.dtype, np.asarray(missing).dtype)
    else:
        dtype = object
    is_missing = y_pool != y_pool if missing != missing else y_pool == missing  # NaN marker
    if np.any(is_missing):
        raise ValueError(
            f"y_pool contains the learner's missing_label={missing!r}; the oracle must label "
            "every row. Set the learner's missing_label to a value that is not a class."
        )
    y_known = np.full(y_pool.shape[0], missing, dtype=dtype)
    y_known[rows] = y_pool[rows]
    return y_known


def _run_one(name, learner, X_pool, y_pool, X_test, y_test, settings, repeat, seed, progress):
    """One learner, one repeat: fit on the initial rows, then query/teach to the budget."""
    budget, batch_size, n_initial, scoring, initial_strategy = settings
    learner = seed_estimator(clone(learner), seed, overwrite=False)
    if "random_state" in learner.get_params(deep=False):
        learner.set_params(random_state=seed)
    params = learner.get_params(deep=False)
    if batch_size is None:
        batch_size = params.get("batch_size", 10)
    if n_initial is None:
        n_initial = params.get("n_initial", 10)
    if initial_strategy is None:
        initial_strategy = params.get("initial_strategy")
    if "budget" in params:
        learner.set_params(budget=None)  # the experiment drives the loop itself

    n_pool = y_pool.shape[0]
    start = time.perf_counter()
    if initial_strategy is None:
        acquired = _initial_rows(y_pool, min(n_initial, budget), seed)
    else:
        strategy = clone(initial_strategy) if hasattr(initial_strategy, "get_params") else (
            initial_strategy
        )
        if hasattr(strategy, "get_params"):
            seed_estimator(strategy, seed, overwrite=False)
        acquired, _ = select_with_scores(strategy, learner, X_pool, min(n_initial, budget))
        acquired = np.asarray(acquired)
    initial_seconds = time.perf_counter() - start

    missing = learner.get_params(deep=False).get("missing_label", -1)
    y_known = _mask_labels(y_pool, acquired, missing)
    learner.fit(X_pool, y_known)
    strategy_name, estimator_name = _learner_names(learner)
    rows = []

    def record(indices, query_seconds):
        score = scoring(learner, X_test, y_test)
        scores = score if isinstance(score, dict) else {"score": score}
        entry = learner.history_[-1]
        rows.append(
            {
                "learner": name,
                "strategy": strategy_name,
                "estimator": estimator_name,
                "repeat": repeat,
                "seed": seed,
                "cycle": len(rows),
                "n_labels": int(entry["n_labels"]),
                **{key: float(value) for key, value in scores.items()},
                "fit_seconds": float(entry["fit_seconds"]),
                "query_seconds": float(query_seconds),
                "indices": [int(i) for i in indices],
            }
        )
        if progress is not None:
            progress(1)

    record(acquired, initial_seconds)
    in_pool = np.ones(n_pool, dtype=bool)
    in_pool[acquired] = False
    n_labels = acquired.size
    while n_labels < budget and in_pool.any():
        pool = np.flatnonzero(in_pool)
        n_query = min(batch_size, budget - n_labels, pool.size)
        start = time.perf_counter()
        picked = learner.query(take_rows(X_pool, pool), batch_size=n_query)
        query_seconds = time.perf_counter() - start
        new = pool[np.asarray(picked)]
        in_pool[new] = False
        n_labels += new.size
        learner.teach(take_rows(X_pool, new), y_pool[new])
        record(new, query_seconds)
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
    budget : int
        Total labels per run, the initial rows included.
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
        random from the repeat's seed, redrawn until they hold two classes.
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
        ``estimator``, ``repeat``, ``seed``, ``cycle``, ``n_labels``, ``score`` (and
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
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}.")
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
