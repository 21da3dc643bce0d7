"""The static report: InfNet Fig. 2(a)-(d), RiseNet Fig. 2(a)-(d) and Fig. 3 from ``stats/*``.

``build_report(lake, out_dir)`` writes ``index.html`` and one PNG per figure. Every figure comes
with its numbers in an HTML table, one sentence saying what it shows, the significance tests
of ``stats/tests`` that belong to it and, when the lake holds ``truth/world`` (a generated
world), the planted effect's truth rows beside the measurement.

Only small tables are read, as Arrow (aggregates, histograms, per-leaf and per-window rows);
the record-level ``stats/share_features`` never is.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.lake import Lake  # noqa: E402

RISING_COLOUR, NORMAL_COLOUR = "#d62728", "#1f77b4"


@dataclass
class Figure:
    """One figure of the report: its PNG, caption, numbers and the truth it is checked against."""

    key: str
    title: str
    sentence: str
    png: str | None
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    effects: tuple[str, ...] = ()
    statistics: tuple[str, ...] = ()


def _read(lake: Lake, table: str) -> pd.DataFrame | None:
    if not lake.exists("stats", table):
        return None
    return lake.to_arrow("stats", table).to_pandas()


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return html.escape(str(value))


def _html_table(df: pd.DataFrame, max_rows: int = 60) -> str:
    shown = df.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False)
    )
    more = f"<p class='note'>first {max_rows} of {len(df)} rows</p>" if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _hist_summary(hist: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per group (rising / normal): items, mean, median, p90 from a (rising, value, items) table."""
    rows = []
    for rising, part in hist.groupby("rising"):
        part = part.sort_values(value)
        counts = part["items"].to_numpy()
        values = part[value].to_numpy(dtype=float)
        total = counts.sum()
        cum = np.cumsum(counts) / total
        rows.append(
            {
                "group": "rising" if rising else "normal",
                "items": int(total),
                "mean": float((values * counts).sum() / total),
                "median": float(values[np.searchsorted(cum, 0.5)]),
                "p90": float(values[np.searchsorted(cum, 0.9)]),
            }
        )
    return pd.DataFrame(rows)


def _hist_plot(ax, hist: pd.DataFrame, value: str, xlabel: str) -> None:
    for rising, colour, label in ((False, NORMAL_COLOUR, "normal"), (True, RISING_COLOUR,
                                                                       "rising stars")):
        part = hist[hist["rising"] == rising].sort_values(value)
        if part.empty:
            continue
        share = part["items"] / part["items"].sum()
        ax.step(part[value], share, where="mid", color=colour,
                label=f"{label} (n={int(part['items'].sum())})")
        ax.fill_between(part[value], share, step="mid", alpha=0.2, color=colour)
    ax.set_xscale("symlog")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of items")
    ax.legend()


# -- InfNet Fig. 2 ----------------------------------------------------------------------------


def fig_ci_lift(lake: Lake, out: Path) -> Figure:
    leaves = _read(lake, "ci_lift_by_leaf")
    ci = _read(lake, "conversion_index")
    png = None
    tables = []
    if ci is not None:
        both = ci.dropna(subset=["ci_browse", "ci_taocode"])
        tables.append(("Conversion index over items with both kinds of records", pd.DataFrame([{
            "items": len(both),
            "mean CI browse": both["ci_browse"].mean(),
            "mean CI Taocode": both["ci_taocode"].mean(),
            "relative difference": both["ci_taocode"].mean() / both["ci_browse"].mean() - 1
            if both["ci_browse"].mean() else float("nan"),
        }])))
    if leaves is not None and not leaves.empty:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        ax.scatter(leaves["mean_price_index"], leaves["ci_lift"], s=14 + leaves["items"] / 4,
                   alpha=0.7)
        if len(leaves) >= 2 and leaves["mean_price_index"].nunique() > 1:
            slope, intercept = np.polyfit(leaves["mean_price_index"], leaves["ci_lift"], 1)
            xs = np.linspace(leaves["mean_price_index"].min(), leaves["mean_price_index"].max())
            ax.plot(xs, intercept + slope * xs, color="k", lw=1,
                    label=f"OLS slope {slope:.3g}")
            ax.legend()
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("mean price index of the leaf category")
        ax.set_ylabel("CI lift = CI(Taocode) / CI(browse) - 1")
        ax.set_title("InfNet Fig. 2(a): CI lift vs price index")
        png = _save(fig, out, "infnet_fig2a_ci_lift.png")
        tables.append(("Per leaf category", leaves.sort_values("mean_price_index")))
    return Figure(
        "infnet-2a", "InfNet Fig. 2(a): CI lift vs price index",
        "Each point is a leaf category: if shares convert better than browses the lift is above "
        "zero, and if they matter more for dear items the lift rises with price index.",
        png, tables, ("E1",), ("conversion_index", "ci_lift_by_leaf"),
    )


def fig_degree_gap(lake: Lake, out: Path) -> Figure:
    cells = _read(lake, "degree_gap_ci")
    png, tables = None, []
    if cells is not None and not cells.empty:
        size = int(max(cells["sender_degree"].max(), cells["receiver_degree"].max()))
        grid = np.full((size, size), np.nan)
        for r in cells.itertuples():
            grid[r.receiver_degree - 1, r.sender_degree - 1] = r.ci * 100
        fig, ax = plt.subplots(figsize=(6, 5))
        im = ax.imshow(grid, origin="lower", cmap="viridis")
        ticks = np.arange(size)
        ax.set_xticks(ticks, [str(t + 1) for t in ticks])
        ax.set_yticks(ticks, [str(t + 1) for t in ticks])
        ax.set_xlabel("sender degree")
        ax.set_ylabel("receiver degree")
        for i in range(size):
            for j in range(size):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="w")
        fig.colorbar(im, ax=ax, label="Taocode CI (%)")
        ax.set_title("InfNet Fig. 2(b): CI by sender x receiver degree")
        png = _save(fig, out, "infnet_fig2b_degree_gap.png")
        matrix = cells.pivot(index="receiver_degree", columns="sender_degree", values="ci")
        matrix.columns = [f"sender {c}" for c in matrix.columns]
        tables.append(("Taocode CI (rows: receiver degree)", matrix.reset_index()))
        cells = cells.assign(gap=cells["sender_degree"] - cells["receiver_degree"])
        by_gap = cells.groupby("gap")[["records", "conversions"]].sum().reset_index()
        by_gap["ci"] = by_gap["conversions"] / by_gap["records"]
        tables.append(("CI by degree gap (sender - receiver)", by_gap))
    return Figure(
        "infnet-2b", "InfNet Fig. 2(b): degree-gap CI",
        "Taocode CI for each pair of sender and receiver degree (1-9): a planted gap effect "
        "shows as CI growing toward high-sender / low-receiver cells.",
        png, tables, ("E2",), ("degree_gap_ci",),
    )


def fig_close_neighbours(lake: Lake, out: Path) -> Figure:
    ci = _read(lake, "close_neighbours")
    png, tables = None, []
    if ci is not None and not ci.empty:
        overall = ci[ci["top_category"].isna()].sort_values("close_neighbours")
        cats = ci[ci["top_category"].notna()]
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        cap = int(ci["close_neighbours"].max())
        labels = [str(k) if k < cap else f"{k}+" for k in overall["close_neighbours"]]
        ax.bar(labels, overall["ci"] * 100, color="#999999", label="all categories")
        for cat, part in cats.groupby("top_category"):
            part = part.sort_values("close_neighbours")
            ax.plot([str(k) if k < cap else f"{k}+" for k in part["close_neighbours"]],
                    part["ci"] * 100, marker="o", lw=0.8, ms=3, label=f"category {int(cat)}")
        ax.set_xlabel("close neighbours of the receiver (received and bought earlier)")
        ax.set_ylabel("Taocode CI (%)")
        ax.legend(fontsize=6, ncol=2)
        ax.set_title("InfNet Fig. 2(c): CI by close neighbours")
        png = _save(fig, out, "infnet_fig2c_close_neighbours.png")
        tables.append(("All categories", overall.drop(columns=["top_category"])))
        wide = cats.pivot(index="top_category", columns="close_neighbours", values="ci")
        wide.columns = [f"CI at {c}" for c in wide.columns]
        tables.append(("CI per top category", wide.reset_index()))
    return Figure(
        "infnet-2c", "InfNet Fig. 2(c): close neighbours",
        "Records grouped by how many of the receiver's share-graph neighbours received and "
        "bought the item before: CI rising with the count is the planted neighbour effect.",
        png, tables, ("E3",), ("close_neighbours",),
    )


def fig_two_hop(lake: Lake, out: Path) -> Figure:
    th = _read(lake, "two_hop")
    png, tables = None, []
    if th is not None and not th.empty:
        th = th.sort_values(["sender_bought", "delta_weeks"])
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        deltas = sorted(th["delta_weeks"].unique())
        width = 0.38
        cap = max(deltas)
        for offset, bought, colour, label in ((-width / 2, False, RISING_COLOUR,
                                               "sender did not buy"),
                                              (width / 2, True, NORMAL_COLOUR, "sender bought")):
            part = th[th["sender_bought"] == bought].set_index("delta_weeks").reindex(deltas)
            ax.bar(np.arange(len(deltas)) + offset, part["ci"] * 100, width, color=colour,
                   label=label, yerr=part["ci_item_sd"].fillna(0) * 100, capsize=2,
                   error_kw={"lw": 0.6})
        ax.set_xticks(np.arange(len(deltas)),
                      [("none" if d == 0 else (f"{d}+" if d == cap else str(d))) for d in deltas])
        ax.set_xlabel("weeks since the sender received the item (delta)")
        ax.set_ylabel("Taocode CI (%), pooled; bars: sd over items")
        ax.legend()
        ax.set_title("InfNet Fig. 2(d): 2-hop temporal CI")
        png = _save(fig, out, "infnet_fig2d_two_hop.png")
        tables.append(("CI by delta and sender purchase", th))
    return Figure(
        "infnet-2d", "InfNet Fig. 2(d): 2-hop temporal CI",
        "CI of a record by how long ago its sender received the same item (none = never), "
        "split by whether the sender bought it: the planted 2-hop effect lifts both bars "
        "above 'none', the bought ones more.",
        png, tables, ("E4",), ("two_hop",),
    )


def fig_tie(lake: Lake, out: Path) -> Figure:
    ci = _read(lake, "tie_ci")
    png, tables = None, []
    if ci is not None and not ci.empty:
        ci = ci.sort_values("tie_score")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar([f"{v:+.2f}" for v in ci["tie_score"]], ci["ci"] * 100, color="#999999")
        for x, n in enumerate(ci["records"]):
            ax.annotate(f"n={n}", (x, 0), ha="center", va="bottom", fontsize=6)
        ax.set_xlabel("tie score: dear - cheap items the sender shared with the receiver "
                      "before, clipped, / 3")
        ax.set_ylabel("Taocode CI (%)")
        ax.set_title("CI by the tie's price history (E9)")
        png = _save(fig, out, "tie_price_history.png")
        tables.append(("CI by tie score", ci))
    return Figure(
        "tie", "The tie's price history (Taocode edge features)",
        "Records grouped by what their sender shared with the same receiver in the four weeks "
        "before (dear minus cheap items, clipped to 3, scaled to [-1, 1]; 0 is also 'no "
        "history'). Raw CIs mix in the item's own price (dear items' senders share dear "
        "items); the specific test compares records of the same item.",
        png, tables, ("E9",), ("tie_ci",),
    )


# -- RiseNet Fig. 2 and 3 ---------------------------------------------------------------------


def _distribution_figure(
    hist, value: str, xlabel: str, title: str, out: Path, filename: str, tables: list,
    summary_title: str,
) -> str | None:
    """Rising vs normal histogram of ``value`` as a PNG, its summary appended to ``tables``;
    None when there is no histogram."""
    if hist is None or hist.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    _hist_plot(ax, hist, value, xlabel)
    ax.set_title(title)
    tables.append((summary_title, _hist_summary(hist, value)))
    return _save(fig, out, filename)


def fig_mdsw(lake: Lake, out: Path) -> Figure:
    hist = _read(lake, "mdsw_distribution")
    labels = _read(lake, "rising_stars")
    tables = []
    if labels is not None:
        per_window = labels.groupby("window_start").agg(
            items=("item_id", "count"), rising=("rising", "sum")
        ).reset_index()
        tables.append(("Rising stars per window (window = first of 4 + 2 weeks)", per_window))
    png = _distribution_figure(
        hist, "mdsw", "MDSW: max |scale difference| between consecutive weeks",
        "RiseNet Fig. 2(a): MDSW, rising vs normal", out, "risenet_fig2a_mdsw.png",
        tables, "MDSW distribution summary",
    )
    return Figure(
        "risenet-2a", "RiseNet Fig. 2(a): MDSW",
        "Distribution of the largest week-to-week change in an item's diffusion scale during "
        "the 4 weeks before labelling (pooled over the sliding windows): rising stars sitting "
        "to the right is the planted "
        "burst pattern.",
        png, tables, ("E5",), ("rising_stars", "mdsw"),
    )


def fig_hub_counts(lake: Lake, out: Path) -> Figure:
    hist = _read(lake, "hub_count_distribution")
    hubs = _read(lake, "hub_nodes")
    tables = []
    if hubs is not None:
        summary = hubs.assign(scope=hubs["top_category"].map(
            lambda c: "all" if pd.isna(c) else f"category {int(c)}"
        )).groupby("scope").agg(hubs=("user_id", "count"), threshold=("threshold", "min"))
        tables.append(("Hub nodes (top 1% of senders by records)", summary.reset_index()))
    png = _distribution_figure(
        hist, "hubs", "hub nodes in the item's diffusion graph",
        "RiseNet Fig. 2(b): hubs per diffusion graph", out, "risenet_fig2b_hub_counts.png",
        tables, "Hub-count distribution summary",
    )
    return Figure(
        "risenet-2b", "RiseNet Fig. 2(b): hub nodes per diffusion graph",
        "How many hub users appear in an item's diffusion graph before labelling: rising "
        "stars with more hubs is the planted hub preference.",
        png, tables, ("E5",), ("hub_counts",),
    )


def fig_scale_sales(lake: Lake, out: Path) -> Figure:
    sv = _read(lake, "scale_vs_sales")
    weekly = _read(lake, "scale_sales_weekly")
    png, tables = None, []
    if sv is not None and not sv.empty:
        sv = sv.sort_values("scale")
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.errorbar(sv["scale"], sv["mean_sales"], yerr=sv["sd_sales"].fillna(0) /
                     np.sqrt(sv["item_weeks"]), fmt="o-", ms=3, lw=0.8)
        ax1.set_xlabel(f"weekly diffusion scale (distinct receivers; last point: "
                       f"{int(sv['scale'].max())} or more)")
        ax1.set_ylabel("mean sales that week (+- s.e.)")
        ax1.set_title("sales vs scale (item-weeks)")
        if weekly is not None and not weekly.empty:
            weekly = weekly.sort_values("week")
            ax2.plot(weekly["week"], weekly["mean_scale"], "o-", label="mean scale")
            ax2.plot(weekly["week"], weekly["mean_sales"], "s-", label="mean sales")
            ax2.set_xlabel("week")
            ax2.set_ylabel("per active item")
            ax2.legend()
            ax2.set_title("weekly averages")
            tables.append(("Weekly averages", weekly))
        fig.suptitle("RiseNet Fig. 2(c): diffusion scale vs sales")
        png = _save(fig, out, "risenet_fig2c_scale_sales.png")
        tables.insert(0, ("Sales by weekly scale (last row: cap or more)", sv))
    return Figure(
        "risenet-2c", "RiseNet Fig. 2(c): diffusion scale vs sales",
        "Mean weekly sales of items by their weekly diffusion scale: sales growing with scale "
        "is the scale-sales correlation the paper reports.",
        png, tables, (), ("scale_vs_sales",),
    )


def fig_hub_sales(lake: Lake, out: Path) -> Figure:
    hs = _read(lake, "hub_sales")
    png, tables = None, []
    if hs is not None and not hs.empty:
        wide = hs.pivot(index="top_category", columns="shared_by_hub", values="mean_sales")
        wide = wide.rename(columns={True: "shared by a hub", False: "not shared by a hub"})
        fig, ax = plt.subplots(figsize=(7, 4))
        x = np.arange(len(wide))
        for k, col in enumerate([c for c in ("not shared by a hub", "shared by a hub")
                                 if c in wide.columns]):
            ax.bar(x + (k - 0.5) * 0.4, wide[col], 0.4, label=col,
                   color=NORMAL_COLOUR if k == 0 else RISING_COLOUR)
        ax.set_xticks(x, [str(int(c)) for c in wide.index])
        ax.set_xlabel("top category")
        ax.set_ylabel("mean item sales (purchases)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.set_title("RiseNet Fig. 2(d): sales of items shared by hubs")
        png = _save(fig, out, "risenet_fig2d_hub_sales.png")
        tables.append(("Mean sales per top category", hs.sort_values(["top_category",
                                                                      "shared_by_hub"])))
    return Figure(
        "risenet-2d", "RiseNet Fig. 2(d): items shared by hubs",
        "Mean sales of items that a hub of their category shared vs items no hub shared; the "
        "test compares items with similar share counts, so only the hub's own effect counts.",
        png, tables, ("E6",), ("hub_sales",),
    )


def fig_dynamics(lake: Lake, out: Path) -> Figure:
    nxt = _read(lake, "next_week_sales")
    fl = _read(lake, "scale_fluctuation")
    png, tables = None, []
    if nxt is not None and fl is not None and not nxt.empty:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        pooled = nxt.groupby("next_week_sales")["items"].sum().sort_index()
        ax1.bar(pooled.index, pooled.values / pooled.sum(), color="#777777")
        ax1.set_xlabel("next-week sales of items whose sales equalled the week's average")
        ax1.set_ylabel("share of items")
        ax1.set_title("same sales this week, next week spread")
        at_avg = fl[fl["at_average"]]
        groups, names = [], []
        for scope, part in (("near avg", at_avg), ("all", fl)):
            for rising, name in ((False, "normal"), (True, "rising")):
                values = part[part["rising"] == rising]["fluctuation_sd"]
                groups.append(values)
                names.append(f"{name}, {scope}\n(n={len(values)})")
        ax2.boxplot(groups, tick_labels=names)
        ax2.tick_params(axis="x", labelsize=7)
        ax2.set_yscale("symlog")
        ax2.set_ylabel("sd of weekly diffusion scale, history weeks")
        ax2.set_title("scale near the average in the last week: fluctuation")
        fig.suptitle("RiseNet Fig. 3: the last week is not enough")
        png = _save(fig, out, "risenet_fig3_dynamics.png")
        spread = []
        for week, part in nxt.groupby("week"):
            values = np.repeat(part["next_week_sales"].to_numpy(), part["items"].to_numpy())
            spread.append({"week": int(week), "reference_sales": int(part["reference_sales"]
                                                                       .iloc[0]),
                           "items": len(values), "next mean": values.mean(),
                           "next sd": values.std(), "next min": values.min(),
                           "next max": values.max()})
        tables.append(("Next-week sales of items at the week's average", pd.DataFrame(spread)))
        summary = fl.groupby(["at_average", "rising"])["fluctuation_sd"].agg(
            ["count", "mean", "median"]).reset_index()
        tables.append(("Scale fluctuation (sd) by group", summary))
    return Figure(
        "risenet-3", "RiseNet Fig. 3: dynamic information",
        "Left: items with the same sales in a week spread widely the next week. Right: among "
        "items whose diffusion scale in the last week before labelling was near the average "
        "(within 50%), and among all items, rising stars fluctuated more over the previous "
        "weeks when the planted burst pattern is on.",
        png, tables, ("E5",), ("next_week_sales", "scale_fluctuation"),
    )


FIGURES = (
    fig_ci_lift, fig_degree_gap, fig_close_neighbours, fig_two_hop, fig_tie,
    fig_mdsw, fig_hub_counts, fig_scale_sales, fig_hub_sales, fig_dynamics,
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
    tests = _read(lake, "tests")
    truth = lake.to_arrow("truth", "world").to_pandas() if lake.exists("truth", "world") else None
    run = _read(lake, "observe_run")
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
            parts.append(f"<h4>{html.escape(caption)}</h4>{_html_table(table)}")
        side = []
        if tests is not None and figure.statistics:
            mine = tests[tests["statistic"].isin(figure.statistics)]
            if not mine.empty:
                side.append("<div><h4>Measured: significance tests</h4>" + _html_table(
                    mine[["statistic", "test", "estimate_name", "estimate", "statistic_value",
                          "p_value", "n", "detail"]]) + "</div>")
        if truth is not None and figure.effects:
            planted = truth[truth["effect"].isin(figure.effects)]
            side.append("<div><h4>Planted truth (truth/world)</h4>" + _html_table(
                planted[["effect", "enabled", "parameter", "value", "description"]]) + "</div>")
        if side:
            parts.append("<div class='pair'>" + "".join(side) + "</div>")
        parts.append("</section>")
    if tests is not None:
        parts.append("<section id='tests'><h2>All tests</h2>" + _html_table(tests, 200)
                     + "</section>")
    if run is not None:
        parts.append("<section id='run'><h2>Observe run</h2>" + _html_table(run, 200)
                     + "</section>")
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path
