"""The report's results section: per system, the test metrics of each model's latest runs from
``results/<system>`` (written by the trainer, one row per run, model, split and metric).

Per (dataset, model) the section takes the latest run of every seed (the newest ``created_at``
of that seed's rows) and shows, per test metric, the mean and sample standard deviation over those
seeds, or the value alone when there is one seed. Metrics that describe the split rather than the
model (its size, positive rate, cold-user count) go in the caption, not the table.

Beside the table, two figures: the metrics themselves, per model with their spread over seeds
and where the metric has one the level of a random ranking (AUC-PR: the positive rate; AUC-ROC:
0.5); and, for binary tasks, whose trainer keeps each test example's score in
``results/<system>_scores`` (``contracts.results``), the precision-recall curve of each model's
latest run.
"""

from __future__ import annotations

import html
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from contracts import results as contract
from pipeline.lake import Lake
from pipeline.report.common import fmt, html_table, plt, save_png

RESULT_COLUMNS = ("run_id", "dataset", "model", "split", "metric", "value", "seed", "created_at")
REPORTED_SPLIT = "test"
#: Metrics that are facts of the split (its size, base rate), the same for every model.
SPLIT_FACTS = ("n", "n_cold", "positive_rate", "rank_n")
#: Sensitivity runs are labelled ``<model>-<axis><value>`` (``risenet-T3``: three weeks read,
#: ``risenet-L1``: one GNN layer; ``benchmarks/risenet_compare.py``); the unlabelled model
#: stands at its defaults on each axis.
SENSITIVITY_AXES = {"T": "weeks read (T)", "L": "GNN layers"}
SENSITIVITY_DEFAULTS = {"risenet": {"T": 4, "L": 2}}


@dataclass
class ModelResult:
    """One model's test metrics over the latest run of each seed."""

    model: str
    seeds: list[int]
    latest: pd.Timestamp
    values: dict[str, list[float]]
    latest_run: str = ""

    def mean(self, metric: str) -> float:
        return statistics.fmean(self.values[metric]) if self.values.get(metric) else np.nan

    def sd(self, metric: str) -> float:
        values = self.values.get(metric) or []
        return statistics.stdev(values) if len(values) > 1 else np.nan


@dataclass
class SystemResults:
    """The results of one (system, dataset): one entry per model, plus the split's facts."""

    system: str
    dataset: str
    metrics: list[str]
    models: list[ModelResult]
    split_facts: dict[str, float]

    @property
    def key(self) -> str:
        return f"{self.system}-{self.dataset}" if self.dataset else self.system


def auc_pr_interval(auc_pr: float, positives: float, z: float = 1.96) -> tuple[float, float]:
    """The logit interval of an AUC-PR measured on a split with ``positives`` positive examples
    (Boyd, Eng and Page, "Area Under the Precision-Recall Curve: Point Estimates and Confidence
    Intervals", ECML PKDD 2013): expit(logit(a) -+ z / sqrt(positives * a * (1 - a))). It
    reflects the split's size alone, not the spread over training seeds."""
    if not 0 < auc_pr < 1 or positives <= 0:
        return (math.nan, math.nan)
    centre = math.log(auc_pr / (1 - auc_pr))
    half = z / math.sqrt(positives * auc_pr * (1 - auc_pr))
    return (1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half))))


def result_tables(lake: Lake) -> list[str]:
    """The names of the lake's ``results/<system>`` metrics tables (not their scores)."""
    names = [name.split("/", 1)[1] for name in lake.tables() if name.startswith("results/")]
    return [name for name in names if contract.is_metrics_table(name)]


def read_results(lake: Lake, system: str) -> pd.DataFrame:
    """``results/<system>`` as pandas; a table without the trainer's columns is an error."""
    frame = lake.to_arrow("results", contract.metrics_table(system)).to_pandas()
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{lake.path('results', system)}: missing column(s) {missing}; a results table "
            f"has {list(RESULT_COLUMNS)}"
        )
    frame["dataset"] = frame["dataset"].fillna("")
    return frame


def summarise(frame: pd.DataFrame, system: str) -> list[SystemResults]:
    """Per dataset, the test metrics of each model's latest run of every seed."""
    out = []
    test = frame[frame["split"] == REPORTED_SPLIT]
    for dataset, rows in test.groupby("dataset", sort=True):
        runs = rows.groupby(["model", "seed", "run_id"], as_index=False)["created_at"].max()
        latest = runs.sort_values(["created_at", "run_id"]).groupby(["model", "seed"]).tail(1)
        kept = rows.merge(latest[["model", "seed", "run_id"]], on=["model", "seed", "run_id"])
        metrics = sorted(set(kept["metric"]) - set(SPLIT_FACTS))
        facts = (
            kept[kept["metric"].isin(SPLIT_FACTS)].groupby("metric")["value"].first().to_dict()
        )
        models = []
        for model, part in kept.groupby("model", sort=True):
            part = part.sort_values("seed")
            mine = latest[latest["model"] == model].sort_values("seed")
            models.append(
                ModelResult(
                    model=str(model),
                    seeds=[int(s) for s in mine["seed"]],
                    latest=mine["created_at"].max(),
                    values={m: part[part["metric"] == m]["value"].astype(float).tolist()
                            for m in metrics},
                    latest_run=str(mine.sort_values(["created_at", "run_id"])["run_id"].iloc[-1]),
                )
            )
        out.append(SystemResults(system, str(dataset), metrics, models, facts))
    return out


def _cell(result: ModelResult, metric: str) -> str:
    mean, sd = result.mean(metric), result.sd(metric)
    if np.isnan(mean):
        return ""
    return f"{mean:.3f} ± {sd:.3f}" if not np.isnan(sd) else f"{mean:.3f}"


def results_table(results: SystemResults) -> pd.DataFrame:
    """One row per model: seeds, latest run time, and each metric as mean ± sd (3 decimals);
    where the split has a size and a positive rate, the 95 % interval its size alone puts on
    the mean AUC-PR (:func:`auc_pr_interval`)."""
    facts = results.split_facts
    positives = facts.get("n", math.nan) * facts.get("positive_rate", math.nan)
    rows = []
    for r in results.models:
        row = {"model": r.model, "seeds": ", ".join(str(s) for s in r.seeds),
               "latest run (UTC)": pd.Timestamp(r.latest).strftime("%Y-%m-%d %H:%M"),
               **{m: _cell(r, m) for m in results.metrics}}
        if "auc_pr" in results.metrics and not math.isnan(positives):
            low, high = auc_pr_interval(r.mean("auc_pr"), positives)
            row["auc_pr 95 % interval (split size)"] = f"{low:.3f} - {high:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def results_figure(results: SystemResults, out: Path) -> str:
    """Grouped bars: per metric, one bar per model at its mean, the sd over seeds as error bar."""
    metrics, models = results.metrics, results.models
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(metrics) + 2), 4.2))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(metrics))
    for k, result in enumerate(models):
        means = [result.mean(m) for m in metrics]
        sds = [0.0 if np.isnan(result.sd(m)) else result.sd(m) for m in metrics]
        label = f"{result.model} ({len(result.seeds)} seed{'s' if len(result.seeds) > 1 else ''})"
        bars = ax.bar(x + (k - (len(models) - 1) / 2) * width, means, width,
                      yerr=sds if any(sds) else None, capsize=3, label=label)
        ax.bar_label(bars, [f"{v:.3f}" for v in means], fontsize=6, padding=2)
    drawn = False
    chance = {"auc_roc": 0.5, "auc_pr": results.split_facts.get("positive_rate")}
    for i, metric in enumerate(metrics):
        level = chance.get(metric)
        if level is not None and not np.isnan(level):
            ax.hlines(level, i - 0.45, i + 0.45, colors="k", lw=0.8, ls="--", zorder=3,
                      label=None if drawn else "random ranking (positive rate; 0.5)")
            drawn = True
    ax.set_xticks(x, metrics, rotation=30 if len(metrics) > 5 else 0)
    ax.set_ylabel(f"{REPORTED_SPLIT} split; bars: mean, lines: sd over seeds")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    name = results.system + (f" / {results.dataset}" if results.dataset else "")
    ax.set_title(f"{name}: {REPORTED_SPLIT} metrics of the latest runs")
    filename = "results_" + "".join(c if c.isalnum() else "_" for c in results.key) + ".png"
    return save_png(fig, out, filename)


def results_section(lake: Lake, out: Path) -> str:
    """The HTML section with every system's results; says so when the lake has none."""
    parts = ["<section id='results'><h2>Model results</h2>"]
    systems = result_tables(lake)
    if not systems:
        parts.append("<p class='note'>no results in this lake yet: the trainer "
                     "(<code>python -m models.train</code>) writes them to "
                     "<code>results/&lt;system&gt;</code>.</p></section>")
        return "\n".join(parts)
    parts.append(
        f"<p>Per system, the {REPORTED_SPLIT} metrics of each model's latest run of every seed "
        "(mean ± sample sd over seeds where there are several), drawn beside the table; for "
        "binary tasks also the precision-recall curve of each model's latest run.</p>")
    for system in systems:
        scores = read_scores(lake, system)
        for results in summarise(read_results(lake, system), system):
            parts.append(_system_html(results, out, scores))
    parts.append("</section>")
    return "\n".join(parts)


def read_scores(lake: Lake, system: str) -> pd.DataFrame | None:
    """``results/<system>_scores`` as pandas, or None where the task keeps no scores."""
    name = contract.scores_table(system)
    if not lake.exists("results", name):
        return None
    frame = lake.to_arrow("results", name).to_pandas()
    frame["dataset"] = frame["dataset"].fillna("")
    return frame


@dataclass
class Curve:
    """One run's precision-recall curve on the scored split."""

    model: str
    run_id: str
    recall: np.ndarray
    precision: np.ndarray
    average_precision: float
    n: int
    positives: int


def pr_curve(model: str, run_id: str, label: np.ndarray, score: np.ndarray) -> Curve:
    """Precision and recall at every distinct score threshold (highest first), and the average
    precision: the sum over positives of the precision at their rank, over the positives (ties
    counted at the last rank of their score), the ``auc_pr`` the trainer reports."""
    order = np.argsort(-score, kind="stable")
    label, score = label[order].astype(np.int64), score[order]
    true_pos = np.cumsum(label)
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # last index of each score
    tp, seen = true_pos[last], last + 1
    positives = int(true_pos[-1]) if len(true_pos) else 0
    precision = tp / seen
    recall = tp / positives if positives else np.zeros_like(tp, dtype=float)
    gained = np.diff(np.r_[0, tp])
    average_precision = float(np.sum(gained * precision) / positives) if positives else np.nan
    return Curve(model, run_id, np.r_[0.0, recall], np.r_[1.0, precision], average_precision,
                 len(label), positives)


def curves_for(results: SystemResults, scores: pd.DataFrame | None) -> list[Curve]:
    """The curve of each model's latest run, where its scores are kept."""
    if scores is None:
        return []
    mine = scores[(scores["dataset"] == results.dataset)
                  & (scores["split"] == contract.SCORED_SPLIT)]
    curves = []
    for result in results.models:
        run = mine[(mine["run_id"] == result.latest_run) & (mine["model"] == result.model)]
        if not run.empty:
            run = run.sort_values("example_id")
            curves.append(pr_curve(result.model, result.latest_run,
                                   run["label"].to_numpy(), run["score"].to_numpy(float)))
    return curves


def pr_figure(results: SystemResults, curves: list[Curve], out: Path) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for curve in curves:
        ax.step(curve.recall, curve.precision, where="post",
                label=f"{curve.model} (AP {curve.average_precision:.3f})")
    base = curves[0].positives / curves[0].n if curves[0].n else np.nan
    ax.axhline(base, color="k", lw=0.8, ls="--", label=f"random ranking ({base:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    name = results.system + (f" / {results.dataset}" if results.dataset else "")
    ax.set_title(f"{name}: precision-recall, latest run per model ({contract.SCORED_SPLIT})")
    filename = "pr_" + "".join(c if c.isalnum() else "_" for c in results.key) + ".png"
    return save_png(fig, out, filename)


def curves_table(curves: list[Curve]) -> pd.DataFrame:
    return pd.DataFrame([
        {"model": c.model, "run": c.run_id, "examples": c.n, "positives": c.positives,
         "average precision": f"{c.average_precision:.3f}"} for c in curves
    ])


def _curves_html(results: SystemResults, scores: pd.DataFrame | None, out: Path) -> str:
    curves = curves_for(results, scores)
    if not curves:
        return ""
    name = results.system + (f" / {results.dataset}" if results.dataset else "")
    caption = f"{name}: precision-recall curves ({contract.SCORED_SPLIT}, latest run per model)"
    png = pr_figure(results, curves, out)
    return (f"<img src='{png}' alt='{html.escape(caption)}'>"
            f"<h4>{html.escape(caption)}</h4>{html_table(curves_table(curves))}")


def sensitivity_points(results: SystemResults) -> dict[tuple[str, str], list[tuple]]:
    """(model, axis) -> [(value, ModelResult)] from runs labelled ``<model>-<axis><value>``,
    the model's own runs added at its default value; only axes with two values or more."""
    import re

    by_name = {r.model: r for r in results.models}
    points: dict[tuple[str, str], list[tuple]] = {}
    for r in results.models:
        match = re.fullmatch(r"(?P<base>.+)-(?P<axis>[A-Z])(?P<value>\d+)", r.model)
        if match and match["axis"] in SENSITIVITY_AXES:
            points.setdefault((match["base"], match["axis"]), []).append((int(match["value"]), r))
    for (base, axis), found in points.items():
        default = SENSITIVITY_DEFAULTS.get(base, {}).get(axis)
        if default is not None and base in by_name and default not in {v for v, _ in found}:
            found.append((default, by_name[base]))
        found.sort(key=lambda p: p[0])
    return {k: v for k, v in points.items() if len(v) > 1}


def sensitivity_figure(results: SystemResults, out: Path, metric: str) -> str | None:
    """One panel per (model, axis): ``metric`` mean over seeds against the axis, sd as bars."""
    points = sensitivity_points(results)
    if not points or metric not in results.metrics:
        return None
    fig, axes = plt.subplots(1, len(points), figsize=(4.0 * len(points), 3.4), squeeze=False)
    for ax, ((base, axis), found) in zip(axes[0], sorted(points.items()), strict=True):
        xs = [v for v, _ in found]
        means = [r.mean(metric) for _, r in found]
        sds = [0.0 if np.isnan(r.sd(metric)) else r.sd(metric) for _, r in found]
        ax.errorbar(xs, means, yerr=sds, marker="o", capsize=3)
        ax.set_xticks(xs)
        ax.set_xlabel(SENSITIVITY_AXES[axis])
        ax.set_ylabel(f"{REPORTED_SPLIT} {metric}")
        ax.set_title(f"{base}: {SENSITIVITY_AXES[axis]}", fontsize=9)
    filename = "sensitivity_" + "".join(c if c.isalnum() else "_" for c in results.key) + ".png"
    return save_png(fig, out, filename)


def _system_html(results: SystemResults, out: Path, scores: pd.DataFrame | None = None) -> str:
    name = results.system + (f" / {results.dataset}" if results.dataset else "")
    facts = ", ".join(f"{k} {fmt(float(v))}" for k, v in sorted(results.split_facts.items()))
    caption = f"{name}: {REPORTED_SPLIT} metrics" + (f" ({facts})" if facts else "")
    if not results.models:
        return f"<h3>{html.escape(name)}</h3><p class='note'>no {REPORTED_SPLIT} rows</p>"
    png = results_figure(results, out)
    metric = "f1" if "f1" in results.metrics else "auc_pr"
    sensitivity = sensitivity_figure(results, out, metric)
    extra = "" if sensitivity is None else (
        f"<img src='{sensitivity}' alt='{html.escape(name)}: {metric} against each "
        "sensitivity axis'>")
    return (f"<div id='results-{html.escape(results.key)}'><h3>{html.escape(name)}</h3>"
            f"<img src='{png}' alt='{html.escape(caption)}'>"
            f"<h4>{html.escape(caption)}</h4>{html_table(results_table(results))}"
            f"{extra}{_curves_html(results, scores, out)}</div>")
