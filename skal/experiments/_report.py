"""What ``skal run`` prints and writes after a run: one results table per test metric (the
paired comparison with random sampling, direction-aware for losses), summary.csv,
results.json and the learning-curve plot."""

import json
import math
import sys
from dataclasses import dataclass

import pandas as pd


@dataclass
class MetricReport:
    """The summary of one metric of a run: the :class:`~skal.experiments._tasks.Metric`,
    its result column, :func:`summarize`'s and :func:`compare_to_random`'s tables, and the
    target of the labels-to-target columns (None: none)."""

    metric: object
    column: str
    summary: pd.DataFrame
    comparison: pd.DataFrame
    target: float = None


def score_columns(metrics):
    """The result column of each metric: ``score`` alone, or ``score_<name>`` per metric."""
    if len(metrics) == 1:
        return ["score"]
    return [f"score_{metric.name}" for metric in metrics]


def scoring(metrics):
    """``run_experiment``'s ``scoring`` for ``metrics``: None (the learner's score) for one
    metric without a scorer, else ``{name: scorer}``."""
    if len(metrics) == 1 and metrics[0].scorer is None:
        return None
    return {metric.name: metric.scorer for metric in metrics}


def _default_target(summary, comparison, greater_is_better):
    """The baseline's final score, rounded to 0.01 towards the worse side."""
    if comparison is None or comparison.empty:
        return None
    final = summary.loc[comparison["baseline"].iloc[0], "final_score_mean"] * 100
    return (math.floor(final) if greater_is_better else math.ceil(final)) / 100


def summarize_metrics(result, metrics, target=None):
    """One :class:`MetricReport` per metric; ``target`` (None: the default, the final score of
    random sampling rounded to 0.01) applies to the first, the main metric."""
    from skal.experiments import compare_to_random, summarize

    reports = []
    for i, (metric, column) in enumerate(zip(metrics, score_columns(metrics), strict=True)):
        direction = {"score": column, "greater_is_better": metric.greater_is_better}
        try:
            comparison = compare_to_random(result, **direction)
        except ValueError:  # no random sampling among the strategies
            comparison = None
        metric_target = None
        if i == 0:
            metric_target = target
            if metric_target is None:
                metric_target = _default_target(summarize(result, score=column), comparison,
                                                metric.greater_is_better)
        summary = summarize(result, target=metric_target, **direction)
        reports.append(MetricReport(metric, column, summary, comparison, metric_target))
    return reports


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "never"
    if isinstance(value, float) and value.is_integer() and digits == 0:
        return str(int(value))
    return f"{value:.{digits}f}"


def format_table(summary, comparison, target, label="acc"):
    """The printed results table, one row per strategy."""
    headers = ["strategy", f"final {label}", "AULC"]
    if target is not None:
        headers.append(f"labels to {target:g} (25/50/75 %)")  # "never": not within budget
    headers += ["ΔAULC vs random", "wins", "p"]
    rows = []
    for learner, row in summary.iterrows():
        cells = [
            str(learner),
            f"{_fmt(row['final_score_mean'])} ± {_fmt(row['final_score_std'])}",
            f"{_fmt(row['aulc_mean'])} ± {_fmt(row['aulc_std'])}",
        ]
        if target is not None:
            cells.append(" / ".join(
                _fmt(row[f"labels_to_target_q{q}"], 0) for q in (25, 50, 75)
            ))
        if comparison is not None and learner in comparison.index:
            c = comparison.loc[learner]
            cells += [f"{c['aulc_diff_mean']:+.3f}", f"{c['wins']}/{c['n_pairs']}",
                      _fmt(c["p_value"], 2)]
        else:
            cells += ["(baseline)" if comparison is not None else "-", "", ""]
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def format_tables(reports):
    """One table per metric; with several, each under a line naming the metric and its
    direction."""
    if len(reports) == 1:
        report = reports[0]
        return format_table(report.summary, report.comparison, report.target,
                            report.metric.label)
    blocks = []
    for report in reports:
        better = "higher" if report.metric.greater_is_better else "lower"
        blocks.append(f"{report.metric.label} ({better} is better; wins: repeats where the "
                      f"strategy's AULC is {better} than random's)\n"
                      + format_table(report.summary, report.comparison, report.target,
                                     report.metric.label))
    return "\n\n".join(blocks)


def summary_table(reports):
    """summary.csv: the main metric's columns as they are, the others' prefixed by name."""
    tables = []
    for i, report in enumerate(reports):
        table = report.summary
        if report.comparison is not None:
            table = table.join(report.comparison)
        if i:
            table = table.drop(columns=["n_repeats", "final_labels", "baseline", "n_pairs"],
                               errors="ignore").add_prefix(f"{report.metric.name}_")
        tables.append(table)
    return pd.concat(tables, axis=1)


def write_outputs(out, options, result, reports, write_config):
    """results.csv, summary.csv, results.json, config.toml and learning_curves.png."""
    csv = result.copy()
    csv["indices"] = [" ".join(map(str, rows)) for rows in csv["indices"]]
    csv.to_csv(out / "results.csv", index=False)
    table = summary_table(reports)
    table.to_csv(out / "summary.csv")
    write_config(options, out / "config.toml")
    payload = {
        "options": options,
        "target": reports[0].target,
        "metrics": {report.metric.name: {"column": report.column,
                                         "greater_is_better": report.metric.greater_is_better}
                    for report in reports},
        "summary": json.loads(table.reset_index().to_json(orient="records")),
        "results": json.loads(result.to_json(orient="records")),
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    plot_reports(result, reports, out / "learning_curves.png")


def plot_reports(result, reports, path):
    """The learning curve of every metric, and the labels to the main metric's target."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed, so no plot was drawn "
              "(pip install 'skal[plot]')", file=sys.stderr)
        return
    from skal.experiments import plot_labels_to_target, plot_learning_curves

    target = reports[0].target
    ncols = len(reports) + (target is not None)
    fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols, 4.6), layout="constrained",
                             squeeze=False)
    for ax, report in zip(axes[0], reports, strict=False):
        plot_learning_curves(result, score=report.column, ax=ax,
                             target=target if report is reports[0] else None)
        label = {"acc": "accuracy"}.get(report.metric.label, report.metric.label)
        ax.set_ylabel(f"test {label}")
    if target is not None:
        main = reports[0]
        plot_labels_to_target(result, target, score=main.column, ax=axes[0, -1],
                              greater_is_better=main.metric.greater_is_better)
    fig.savefig(path, dpi=110)
    plt.close(fig)
