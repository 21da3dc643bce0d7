"""RiseNet Fig. 2(a)-(d) and Fig. 3 from ``stats/*``: rising stars against normal items."""

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


def hist_summary(hist: pd.DataFrame, value: str) -> pd.DataFrame:
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


def hist_plot(ax, hist: pd.DataFrame, value: str, xlabel: str) -> None:
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


def _distribution_figure(
    hist, value: str, xlabel: str, title: str, out: Path, filename: str, tables: list,
    summary_title: str,
) -> str | None:
    """Rising vs normal histogram of ``value`` as a PNG, its summary appended to ``tables``;
    None when there is no histogram."""
    if hist is None or hist.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    hist_plot(ax, hist, value, xlabel)
    ax.set_title(title)
    tables.append((summary_title, hist_summary(hist, value)))
    return save_png(fig, out, filename)


def fig_mdsw(lake: Lake, out: Path) -> Figure:
    hist = read_stats(lake, "mdsw_distribution")
    labels = read_stats(lake, "rising_stars")
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
    hist = read_stats(lake, "hub_count_distribution")
    hubs = read_stats(lake, "hub_nodes")
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
    sv = read_stats(lake, "scale_vs_sales")
    weekly = read_stats(lake, "scale_sales_weekly")
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
        png = save_png(fig, out, "risenet_fig2c_scale_sales.png")
        tables.insert(0, ("Sales by weekly scale (last row: cap or more)", sv))
    return Figure(
        "risenet-2c", "RiseNet Fig. 2(c): diffusion scale vs sales",
        "Mean weekly sales of items by their weekly diffusion scale: sales growing with scale "
        "is the scale-sales correlation the paper reports.",
        png, tables, (), ("scale_vs_sales",),
    )


def fig_hub_sales(lake: Lake, out: Path) -> Figure:
    hs = read_stats(lake, "hub_sales")
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
        png = save_png(fig, out, "risenet_fig2d_hub_sales.png")
        tables.append(("Mean sales per top category", hs.sort_values(["top_category",
                                                                      "shared_by_hub"])))
    return Figure(
        "risenet-2d", "RiseNet Fig. 2(d): items shared by hubs",
        "Mean sales of items that a hub of their category shared vs items no hub shared; the "
        "test compares items with similar share counts, so only the hub's own effect counts.",
        png, tables, ("E6",), ("hub_sales",),
    )


def fig_dynamics(lake: Lake, out: Path) -> Figure:
    nxt = read_stats(lake, "next_week_sales")
    fl = read_stats(lake, "scale_fluctuation")
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
        png = save_png(fig, out, "risenet_fig3_dynamics.png")
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

