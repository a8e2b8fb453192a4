"""Plots of experiment results: learning curves and labels-to-target bars (matplotlib)."""

import numpy as np

from skal.experiments._summary import summarize


def _axes(ax, figsize=(6.4, 4.2)):
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def plot_learning_curves(result, *, score="score", spread="std", target=None, ax=None):
    """Test score against number of labels: the mean over repeats and a band per learner.

    Parameters
    ----------
    result : pandas.DataFrame
        The tidy result of :func:`run_experiment`.
    score : str, default="score"
        The score column to plot.
    spread : {"std", "quantiles", None}, default="std"
        The band: mean +/- one standard deviation over repeats, the 25-75 % quantiles, or none.
    target : float, default=None
        Draw a dotted horizontal line at this score.
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new figure.

    Returns
    -------
    fig : matplotlib Figure
    """
    if spread not in ("std", "quantiles", None):
        raise ValueError(f"spread must be 'std', 'quantiles' or None, got {spread!r}.")
    fig, ax = _axes(ax)
    for learner, group in result.groupby("learner", sort=False):
        stats = group.groupby("n_labels")[score]
        mean = stats.mean()
        (line,) = ax.plot(mean.index, mean.to_numpy(), marker=".", label=str(learner))
        if spread == "std":
            std = stats.std(ddof=1).fillna(0.0).to_numpy()
            low, high = mean.to_numpy() - std, mean.to_numpy() + std
        elif spread == "quantiles":
            low, high = stats.quantile(0.25).to_numpy(), stats.quantile(0.75).to_numpy()
        if spread is not None:
            ax.fill_between(mean.index, low, high, color=line.get_color(), alpha=0.2, lw=0)
    if target is not None:
        ax.axhline(target, color="0.4", ls=":", lw=1, label=f"target {target:g}")
    ax.set_xlabel("number of labels")
    ax.set_ylabel(score if score != "score" else "test score")
    n_repeats = result.groupby("learner")["repeat"].nunique().max()
    band = {"std": "mean ± 1 std", "quantiles": "median, 25–75 %", None: "mean"}[spread]
    ax.set_title(f"Learning curves ({band} over {n_repeats} repeats)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_labels_to_target(result, target, *, score="score", ax=None, greater_is_better=True):
    """Bars of the median labels needed to reach ``target``, with 25-75 % whiskers.

    Learners that reach the target in fewer than half of the repeats get a hatched bar at the
    budget, marked "not reached".

    Parameters
    ----------
    result : pandas.DataFrame
        The tidy result of :func:`run_experiment`.
    target : float
        The score to reach.
    score : str, default="score"
        The score column.
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new figure.
    greater_is_better : bool, default=True
        False for a loss: the target is reached when the score falls to it.

    Returns
    -------
    fig : matplotlib Figure
    """
    summary = summarize(result, target=target, score=score, greater_is_better=greater_is_better)
    fig, ax = _axes(ax)
    names = [str(name) for name in summary.index]
    budget = float(summary["final_labels"].max())
    median = summary["labels_to_target_q50"].to_numpy(dtype=float)
    low = summary["labels_to_target_q25"].to_numpy(dtype=float)
    high = np.minimum(summary["labels_to_target_q75"].to_numpy(dtype=float), budget)
    reached = np.isfinite(median)
    heights = np.where(reached, median, budget)
    positions = np.arange(len(names))
    bars = ax.bar(positions, heights, color=[f"C{i}" for i in range(len(names))], alpha=0.8)
    for bar, ok in zip(bars, reached, strict=True):
        if not ok:
            bar.set_hatch("//")
            bar.set_alpha(0.3)
            ax.annotate("not reached", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize="small")
    if reached.any():
        err = np.vstack([median[reached] - low[reached], high[reached] - median[reached]])
        ax.errorbar(positions[reached], median[reached], yerr=err, fmt="none",
                    ecolor="black", capsize=4)
    ax.set_xticks(positions, names, rotation=20, ha="right")
    ax.set_ylabel(f"labels to reach {target:g}")
    ax.set_title("Labels needed (median, 25–75 %)")
    ax.grid(True, axis="y", alpha=0.3)
    return fig
