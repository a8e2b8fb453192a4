"""Summaries of learning curves: AULC, labels needed to reach a target, paired comparisons."""

import numpy as np
import pandas as pd
from scipy import stats

QUANTILES = (0.25, 0.5, 0.75)


def _check_curve(n_labels, scores):
    n_labels = np.asarray(n_labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if n_labels.ndim != 1 or n_labels.shape != scores.shape:
        raise ValueError(
            f"n_labels and scores must be 1-D and of the same length, got shapes "
            f"{n_labels.shape} and {scores.shape}."
        )
    if n_labels.size == 0:
        raise ValueError("The learning curve is empty.")
    order = np.argsort(n_labels, kind="stable")
    return n_labels[order], scores[order]


def aulc(n_labels, scores, *, score_range=(0.0, 1.0)):
    """Area under a learning curve, normalised to [0, 1] (AULC, also called AUBC).

    The curve ``score(n_labels)`` is integrated with the trapezoidal rule from its first to its
    last number of labels and divided by the area of the box ``(n_last - n_first) x
    (score_max - score_min)`` after shifting by ``score_min``::

        AULC = 1 / (n_last - n_first) * integral of s(n) dn  over [n_first, n_last],
        s(n) = (score(n) - score_min) / (score_max - score_min)

    so a curve at ``score_max`` throughout gives 1, one at ``score_min`` gives 0, and the value
    is the curve's mean normalised score over the labelling budget. A curve with a single point
    gives that point's normalised score.

    Parameters
    ----------
    n_labels : array-like of shape (n_points,)
        Number of labels at each point of the curve (sorted here if needed).
    scores : array-like of shape (n_points,)
        Test score at each point.
    score_range : tuple of float, default=(0.0, 1.0)
        ``(score_min, score_max)``: the range of the metric (accuracy: 0 to 1).

    Returns
    -------
    aulc : float

    Examples
    --------
    >>> from skal.experiments import aulc
    >>> aulc([10, 20, 30], [0.5, 0.5, 1.0])
    0.625
    """
    n_labels, scores = _check_curve(n_labels, scores)
    low, high = score_range
    if not high > low:
        raise ValueError(f"score_range must be (min, max) with max > min, got {score_range}.")
    normalised = (scores - low) / (high - low)
    width = n_labels[-1] - n_labels[0]
    if width == 0:
        return float(normalised.mean())
    area = np.sum((normalised[1:] + normalised[:-1]) * np.diff(n_labels)) / 2.0
    return float(area / width)


def labels_to_target(n_labels, scores, target, *, greater_is_better=True):
    """The number of labels at which a learning curve first reaches ``target``.

    Parameters
    ----------
    n_labels : array-like of shape (n_points,)
        Number of labels at each point of the curve.
    scores : array-like of shape (n_points,)
        Test score at each point.
    target : float
        The score to reach (``score >= target``; ``score <= target`` for a loss).
    greater_is_better : bool, default=True
        False for a loss (RMSE, Hamming loss): the curve reaches the target from above.

    Returns
    -------
    n : float
        The smallest ``n_labels`` whose score is at least ``target``; ``inf`` if the curve
        never reaches it.

    Examples
    --------
    >>> from skal.experiments import labels_to_target
    >>> labels_to_target([10, 20, 30], [0.5, 0.9, 0.8], 0.85)
    20.0
    >>> labels_to_target([10, 20], [0.5, 0.6], 0.85)
    inf
    """
    n_labels, scores = _check_curve(n_labels, scores)
    reached = np.flatnonzero(scores >= target if greater_is_better else scores <= target)
    return float(n_labels[reached[0]]) if reached.size else float("inf")


def quantiles(values, q=QUANTILES):
    """Quantiles (linear interpolation) that treat ``inf`` ("never reached") as larger than all.

    Unlike :func:`numpy.quantile`, a quantile that falls between a finite value and ``inf`` is
    ``inf`` rather than NaN, so "median labels to target" reads ``inf`` when fewer than half of
    the repeats reach the target.

    Parameters
    ----------
    values : array-like of shape (n_values,)
    q : sequence of float, default=(0.25, 0.5, 0.75)

    Returns
    -------
    quantiles : ndarray of shape (len(q),)

    Examples
    --------
    >>> from skal.experiments import quantiles
    >>> quantiles([10, 20, 30, float("inf")]).tolist()
    [17.5, 25.0, inf]
    """
    values = np.sort(np.asarray(values, dtype=float))
    if values.size == 0:
        return np.full(len(q), np.nan)
    out = []
    for level in q:
        position = level * (values.size - 1)
        lo, hi = int(np.floor(position)), int(np.ceil(position))
        if np.isinf(values[hi]) and position > lo or np.isinf(values[lo]):
            out.append(np.inf)
        else:
            out.append(values[lo] + (position - lo) * (values[hi] - values[lo]))
    return np.asarray(out, dtype=float)


def _curves(result, score):
    if score not in result.columns:
        raise KeyError(f"No column {score!r} in the result; columns: {list(result.columns)}.")
    return result.groupby(["learner", "repeat"], sort=False)


def _per_repeat(result, score, target, score_range, greater_is_better=True):
    rows = []
    for (learner, repeat), curve in _curves(result, score):
        row = {
            "learner": learner,
            "repeat": repeat,
            "seed": curve["seed"].iloc[0] if "seed" in curve else repeat,
            "final_labels": curve["n_labels"].max(),
            "final_score": curve.loc[curve["n_labels"].idxmax(), score],
            "aulc": aulc(curve["n_labels"], curve[score], score_range=score_range),
        }
        if target is not None:
            row["labels_to_target"] = labels_to_target(
                curve["n_labels"], curve[score], target, greater_is_better=greater_is_better
            )
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(result, *, target=None, score="score", score_range=(0.0, 1.0),
              greater_is_better=True):
    """One row per learner: final score, AULC and labels-to-target quantiles over repeats.

    Parameters
    ----------
    result : pandas.DataFrame
        The tidy result of :func:`run_experiment`.
    target : float, default=None
        Score to reach for the labels-to-target columns; None leaves them out.
    score : str, default="score"
        The score column to summarise.
    score_range : tuple of float, default=(0.0, 1.0)
        The metric's range, for the AULC normalisation (see :func:`aulc`).
    greater_is_better : bool, default=True
        False for a loss: the target is reached when the score falls to it.

    Returns
    -------
    summary : pandas.DataFrame
        Indexed by learner, with ``n_repeats``, ``final_labels``, ``final_score_mean``,
        ``final_score_std``, ``aulc_mean``, ``aulc_std`` and, with a ``target``,
        ``labels_to_target_q25``/``_q50``/``_q75`` (``inf``: not reached) and
        ``reached`` (the fraction of repeats that reached it). Standard deviations are over
        repeats (``ddof=1``; NaN for one repeat).
    """
    per_repeat = _per_repeat(result, score, target, score_range, greater_is_better)
    rows = []
    for learner, group in per_repeat.groupby("learner", sort=False):
        row = {
            "learner": learner,
            "n_repeats": len(group),
            "final_labels": int(group["final_labels"].max()),
            "final_score_mean": group["final_score"].mean(),
            "final_score_std": group["final_score"].std(ddof=1),
            "aulc_mean": group["aulc"].mean(),
            "aulc_std": group["aulc"].std(ddof=1),
        }
        if target is not None:
            q25, q50, q75 = quantiles(group["labels_to_target"])
            row.update(
                labels_to_target_q25=q25,
                labels_to_target_q50=q50,
                labels_to_target_q75=q75,
                reached=float(np.isfinite(group["labels_to_target"]).mean()),
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("learner")


def _is_random(name):
    return "random" in str(name).lower()


def _baselines(result, baseline):
    learners = list(dict.fromkeys(result["learner"]))
    if baseline is not None:
        if baseline not in learners:
            raise KeyError(f"Baseline {baseline!r} is not among the learners {learners}.")
        return {learner: baseline for learner in learners if learner != baseline}
    firsts = result.drop_duplicates("learner").set_index("learner")
    randoms = [
        name
        for name in learners
        if _is_random(firsts.loc[name, "strategy"] if "strategy" in firsts else name)
    ]
    if not randoms:
        raise ValueError(
            "No random-sampling learner in the result to compare against; pass baseline=NAME."
        )
    pairs = {}
    for learner in learners:
        if learner in randoms:
            continue
        if len(randoms) == 1:
            pairs[learner] = randoms[0]
            continue
        # Several random baselines (a grid over estimators): pair with the same estimator.
        estimator = firsts.loc[learner, "estimator"]
        same = [r for r in randoms if firsts.loc[r, "estimator"] == estimator]
        if len(same) != 1:
            raise ValueError(
                f"Cannot tell which random baseline to pair {learner!r} with; pass baseline=NAME."
            )
        pairs[learner] = same[0]
    return pairs


def _paired(mine, theirs, learner, base):
    """The repeats ``mine`` and ``theirs`` (frames indexed by repeat) share, checked paired."""
    common = mine.index.intersection(theirs.index)
    if not (mine.loc[common, "seed"] == theirs.loc[common, "seed"]).all():
        raise ValueError(f"{learner!r} and {base!r} do not share their seeds; not paired.")
    return common


def _paired_test(diff, greater_is_better):
    """Wins (repeats where the learner is better) and the two-sided Wilcoxon signed-rank
    p-value of the paired differences ``diff`` (learner minus baseline)."""
    diff = np.asarray(diff, dtype=float)
    wins = int((diff > 0).sum() if greater_is_better else (diff < 0).sum())
    if diff.size and np.any(diff != 0):
        return wins, float(stats.wilcoxon(diff).pvalue)
    return wins, float("nan")


def compare_to_random(result, *, baseline=None, score="score", score_range=(0.0, 1.0),
                      greater_is_better=True):
    """Paired comparison of every learner against random sampling, repeat by repeat.

    Repeat ``r`` of every learner shares its seed and initial labelled rows (see
    :func:`run_experiment`), so differences are taken per repeat, which removes the variance
    due to the initial set.

    Parameters
    ----------
    result : pandas.DataFrame
        The tidy result of :func:`run_experiment`.
    baseline : str, default=None
        The learner to compare against. None picks the learner whose strategy is random
        sampling (with a grid over estimators, the one with the same estimator).
    score : str, default="score"
        The score column.
    score_range : tuple of float, default=(0.0, 1.0)
        The metric's range, for the AULC normalisation.
    greater_is_better : bool, default=True
        False for a loss (RMSE, Hamming loss): a win is then a lower AULC, i.e. a lower
        mean loss over the budget.

    Returns
    -------
    comparison : pandas.DataFrame
        Indexed by learner, with ``baseline``, ``n_pairs``, ``aulc_diff_mean``,
        ``aulc_diff_std``, ``final_diff_mean`` (learner minus baseline, whatever the
        direction), ``wins`` (repeats where the learner's AULC is better: higher, or lower
        for a loss), and ``p_value``: the two-sided Wilcoxon signed-rank test of the AULC
        differences (NaN when all differences are zero; with few repeats it cannot be
        small: 3 pairs give at least 0.25).
    """
    pairs = _baselines(result, baseline)
    per_repeat = _per_repeat(result, score, None, score_range).set_index(["learner", "repeat"])
    rows = []
    for learner, base in pairs.items():
        mine = per_repeat.loc[learner]
        theirs = per_repeat.loc[base]
        common = _paired(mine, theirs, learner, base)
        diff = mine.loc[common, "aulc"] - theirs.loc[common, "aulc"]
        final = mine.loc[common, "final_score"] - theirs.loc[common, "final_score"]
        wins, p_value = _paired_test(diff, greater_is_better)
        rows.append(
            {
                "learner": learner,
                "baseline": base,
                "n_pairs": len(common),
                "aulc_diff_mean": diff.mean(),
                "aulc_diff_std": diff.std(ddof=1),
                "final_diff_mean": final.mean(),
                "wins": wins,
                "p_value": p_value,
            }
        )
    # random sampling alone has nothing to compare with: an empty table, not a KeyError
    columns = ["learner", "baseline", "n_pairs", "aulc_diff_mean", "aulc_diff_std",
               "final_diff_mean", "wins", "p_value"]
    return pd.DataFrame(rows, columns=columns).set_index("learner")


def compare_at_labels(result, n_labels, *, baseline=None, score="score",
                      greater_is_better=True):
    """Paired comparison with random sampling at fixed numbers of labels.

    At ``n`` labels a run's score is that of the last model trained on at most ``n`` labels
    (the model a user would hold with that budget). Differences are taken repeat by repeat,
    as in :func:`compare_to_random`, and tested with the two-sided Wilcoxon signed-rank test.

    Parameters
    ----------
    result : pandas.DataFrame
        The tidy result of :func:`run_experiment`.
    n_labels : int or sequence of int
        The label counts to compare at.
    baseline : str, default=None
        The learner to compare against; None picks random sampling (see
        :func:`compare_to_random`).
    score : str, default="score"
        The score column.
    greater_is_better : bool, default=True
        False for a loss: a win is then a lower score.

    Returns
    -------
    comparison : pandas.DataFrame
        Indexed by ``(learner, n_labels)`` for every learner, the baseline included (its
        comparison columns empty), with ``mean`` and ``std`` over repeats, ``baseline``,
        ``diff_mean`` (learner minus baseline), ``wins``, ``n_pairs`` and ``p_value``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skal.experiments import compare_at_labels
    >>> result = pd.DataFrame({
    ...     "learner": ["random"] * 4 + ["greedy"] * 4, "strategy": ["random"] * 4 + ["x"] * 4,
    ...     "repeat": [0, 0, 1, 1] * 2, "seed": [5, 5, 6, 6] * 2, "n_labels": [10, 20] * 4,
    ...     "score": [9.0, 8.0, 9.0, 7.0, 9.0, 6.0, 9.0, 6.5]})  # an RMSE
    >>> table = compare_at_labels(result, 20, greater_is_better=False)
    >>> row = table.loc[("greedy", 20)]  # RMSE 6.0 and 6.5 against 8.0 and 7.0: lower
    >>> float(row["diff_mean"]), int(row["wins"])
    (-1.25, 2)
    """
    if score not in result.columns:
        raise KeyError(f"No column {score!r} in the result; columns: {list(result.columns)}.")
    counts = [int(n) for n in np.atleast_1d(n_labels)]
    pairs = _baselines(result, baseline)
    learners = list(dict.fromkeys(result["learner"]))
    at = {}
    for n in counts:
        upto = result[result["n_labels"] <= n].sort_values("n_labels", kind="stable")
        last = upto.groupby(["learner", "repeat"], sort=False).tail(1)
        at[n] = last.set_index(["learner", "repeat"])[["seed", score]]
    rows = []
    for learner in learners:
        for n in counts:
            table = at[n]
            if learner not in table.index.get_level_values(0):
                raise ValueError(f"{learner!r} has no score with at most {n} labels.")
            mine = table.loc[learner]
            row = {"learner": learner, "n_labels": n, "mean": mine[score].mean(),
                   "std": mine[score].std(ddof=1)}
            base = pairs.get(learner)
            if base is not None:
                theirs = table.loc[base]
                common = _paired(mine, theirs, learner, base)
                diff = mine.loc[common, score] - theirs.loc[common, score]
                wins, p_value = _paired_test(diff, greater_is_better)
                row.update(baseline=base, diff_mean=diff.mean(), wins=wins,
                           n_pairs=len(common), p_value=p_value)
            rows.append(row)
    columns = ["learner", "n_labels", "mean", "std", "baseline", "diff_mean", "wins",
               "n_pairs", "p_value"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table[["wins", "n_pairs"]] = table[["wins", "n_pairs"]].astype("Int64")  # NA: the baseline
    return table.set_index(["learner", "n_labels"])
