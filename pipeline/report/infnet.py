"""InfNet Fig. 2(a)-(d) and the tie's price history (the Taocode edge features) from ``stats/*``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.lake import Lake
from pipeline.report.common import (
    NORMAL_COLOUR,
    RISING_COLOUR,
    Figure,
    plt,
    read_stats,
    save_png,
)


def fig_ci_lift(lake: Lake, out: Path) -> Figure:
    leaves = read_stats(lake, "ci_lift_by_leaf")
    ci = read_stats(lake, "conversion_index")
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
        png = save_png(fig, out, "infnet_fig2a_ci_lift.png")
        tables.append(("Per leaf category", leaves.sort_values("mean_price_index")))
    return Figure(
        "infnet-2a", "InfNet Fig. 2(a): CI lift vs price index",
        "Each point is a leaf category: if shares convert better than browses the lift is above "
        "zero, and if they matter more for dear items the lift rises with price index.",
        png, tables, ("E1",), ("conversion_index", "ci_lift_by_leaf"),
    )


def fig_degree_gap(lake: Lake, out: Path) -> Figure:
    cells = read_stats(lake, "degree_gap_ci")
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
        png = save_png(fig, out, "infnet_fig2b_degree_gap.png")
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
    ci = read_stats(lake, "close_neighbours")
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
        png = save_png(fig, out, "infnet_fig2c_close_neighbours.png")
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
    th = read_stats(lake, "two_hop")
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
        png = save_png(fig, out, "infnet_fig2d_two_hop.png")
        tables.append(("CI by delta and sender purchase", th))
    return Figure(
        "infnet-2d", "InfNet Fig. 2(d): 2-hop temporal CI",
        "CI of a record by how long ago its sender received the same item (none = never), "
        "split by whether the sender bought it: the planted 2-hop effect lifts both bars "
        "above 'none', the bought ones more.",
        png, tables, ("E4",), ("two_hop",),
    )


def fig_tie(lake: Lake, out: Path) -> Figure:
    ci = read_stats(lake, "tie_ci")
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
        png = save_png(fig, out, "tie_price_history.png")
        tables.append(("CI by tie score", ci))
    return Figure(
        "tie", "The tie's price history (Taocode edge features)",
        "Records grouped by what their sender shared with the same receiver in the four weeks "
        "before (dear minus cheap items, clipped to 3, scaled to [-1, 1]; 0 is also 'no "
        "history'). Raw CIs mix in the item's own price (dear items' senders share dear "
        "items); the specific test compares records of the same item.",
        png, tables, ("E9",), ("tie_ci",),
    )

