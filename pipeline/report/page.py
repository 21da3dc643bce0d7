"""The report page: every figure's section, the tests, the observe run and the model results."""

from __future__ import annotations

import html
from pathlib import Path

from pipeline.lake import Lake
from pipeline.report.common import html_table, read_stats
from pipeline.report.infnet import (
    fig_ci_lift,
    fig_close_neighbours,
    fig_degree_gap,
    fig_tie,
    fig_two_hop,
)
from pipeline.report.intent import fig_intent
from pipeline.report.recency import fig_recency
from pipeline.report.results import results_section
from pipeline.report.risenet import (
    fig_dynamics,
    fig_hub_counts,
    fig_hub_sales,
    fig_mdsw,
    fig_scale_sales,
)

FIGURES = (
    fig_ci_lift, fig_degree_gap, fig_close_neighbours, fig_two_hop, fig_tie,
    fig_mdsw, fig_hub_counts, fig_scale_sales, fig_hub_sales, fig_dynamics, fig_intent,
    fig_recency,
)

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; }
.pair { display: flex; gap: 2em; flex-wrap: wrap; }
.note { color: #666; font-size: 0.85em; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
"""


def build_report(lake: Lake, out_dir: str | Path) -> Path:
    """Write ``index.html`` and the figures' PNGs into ``out_dir``; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tests = read_stats(lake, "tests")
    truth = lake.to_arrow("truth", "world").to_pandas() if lake.exists("truth", "world") else None
    run = read_stats(lake, "observe_run")
    parts = [f"<html><head><meta charset='utf-8'><title>sharecast observations</title>"
             f"<style>{STYLE}</style></head><body>",
             "<h1>Observational statistics</h1>",
             f"<p class='note'>lake: {html.escape(str(lake.root))}</p>"]
    if truth is not None:
        effects = truth[truth["effect"].str.startswith("E")].groupby("effect")["enabled"].first()
        on = ", ".join(e for e, v in effects.items() if v) or "none"
        parts.append(f"<p>Generated world; planted effects switched on: <b>{on}</b>.</p>")
    for build in FIGURES:
        figure = build(lake, out)
        parts.append(f"<section id='{figure.key}'><h2>{html.escape(figure.title)}</h2>")
        parts.append(f"<p>{html.escape(figure.sentence)}</p>")
        if figure.png:
            parts.append(f"<img src='{figure.png}' alt='{html.escape(figure.title)}'>")
        else:
            parts.append("<p class='note'>no data for this figure in the lake</p>")
        for caption, table in figure.tables:
            parts.append(f"<h4>{html.escape(caption)}</h4>{html_table(table)}")
        side = []
        if tests is not None and figure.statistics:
            mine = tests[tests["statistic"].isin(figure.statistics)]
            if not mine.empty:
                side.append("<div><h4>Measured: significance tests</h4>" + html_table(
                    mine[["statistic", "test", "estimate_name", "estimate", "statistic_value",
                          "p_value", "n", "detail"]]) + "</div>")
        if truth is not None and figure.effects:
            planted = truth[truth["effect"].isin(figure.effects)]
            side.append("<div><h4>Planted truth (truth/world)</h4>" + html_table(
                planted[["effect", "enabled", "parameter", "value", "description"]]) + "</div>")
        if side:
            parts.append("<div class='pair'>" + "".join(side) + "</div>")
        parts.append("</section>")
    if tests is not None:
        parts.append("<section id='tests'><h2>All tests</h2>" + html_table(tests, 200)
                     + "</section>")
    if run is not None:
        parts.append("<section id='run'><h2>Observe run</h2>" + html_table(run, 200)
                     + "</section>")
    read = read_stats(lake, "batches")
    if read is not None and not read.empty:
        parts.append(_batches_section(read))
    parts.append(results_section(lake, out))
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path


def _batches_section(read) -> str:
    """The input batches the statistics read (``stats/batches``), the unwhole ones called out."""
    bad = read[read["state"] != "whole"]
    if bad.empty:
        note = f"<p>All {len(read)} input batches were whole when the statistics were computed.</p>"
    else:
        names = ", ".join(f"{t}/{b} ({s})" for t, b, s in
                          bad[["table", "batch_id", "state"]].itertuples(index=False))
        note = (f"<p><b>{len(bad)} of {len(read)} input batches were not whole</b>: "
                f"{html.escape(names)}. Re-run each batch's ingest with its run id, or remove"
                " it with <code>jobs.ingest --undo-batch</code>, then re-run observe.</p>")
    return ("<section id='batches'><h2>Input batches</h2>" + note + html_table(read, 200)
            + "</section>")
