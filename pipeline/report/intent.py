"""E8 from ``stats/intent_histogram``: does a touch session's intent score, or a browse's stay,
differ before a purchase? (DIPN Sec. 1; the tests are ``pipeline.stats.intent``'s.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.lake import Lake
from pipeline.report.common import NORMAL_COLOUR, RISING_COLOUR, Figure, plt, read_stats, save_png
from pipeline.stats.intent import VIEWS, WINDOWS, auc

LABELS = {"touch": "session intent score (purchase-tap share + detail/comments time share)",
          "browse": "browse stay (s)"}


def _weighted(values: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """(mean, median) of values repeated counts times (values sorted)."""
    if not counts.sum():
        return float("nan"), float("nan")
    cum = np.cumsum(counts) / counts.sum()
    return float((values * counts).sum() / counts.sum()), float(values[np.searchsorted(cum, 0.5)])


def intent_summary(hist: pd.DataFrame) -> pd.DataFrame:
    """Per view and window: rows that converted and not, their means and medians, and the AUC
    the test reports (from the same histogram)."""
    rows = []
    for view in VIEWS:
        for window in WINDOWS:
            part = hist[(hist["view"] == view) & (hist["window"] == window)].sort_values("value")
            if part.empty:
                continue
            row = {"view": view, "window": window}
            for converted, name in ((True, "converting"), (False, "other")):
                side = part[part["converted"] == converted]
                mean, median = _weighted(side["value"].to_numpy(dtype=float),
                                         side["rows"].to_numpy())
                row.update({name: int(side["rows"].sum()), f"mean {name}": mean,
                            f"median {name}": median})
            row["AUC"] = auc([{"group": bool(r.converted), "value": r.value, "count": r.rows}
                              for r in part.itertuples()])
            rows.append(row)
    return pd.DataFrame(rows)


def _ecdf(ax, part: pd.DataFrame, colour: str, label: str, style: str = "-") -> None:
    part = part.groupby("value")["rows"].sum().sort_index()
    if part.empty:
        return
    # from 0 at the smallest value up to 1 at the largest
    values = np.concatenate([[part.index[0]], part.index.to_numpy(dtype=float)])
    share = np.concatenate([[0.0], (part.cumsum() / part.sum()).to_numpy()])
    ax.step(values, share, where="post", color=colour, ls=style,
            label=f"{label} (n={int(part.sum())})")


def fig_intent(lake: Lake, out: Path) -> Figure:
    hist = read_stats(lake, "intent_histogram")
    png, tables = None, []
    if hist is not None and not hist.empty:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, view in zip(axes, VIEWS, strict=True):
            part = hist[hist["view"] == view]
            if part.empty:
                ax.text(0.5, 0.5, f"no {view} view in the lake", ha="center", va="center",
                        transform=ax.transAxes)
                ax.set_axis_off()
                continue
            day = part[part["window"] == "1d"]
            hour = part[(part["window"] == "1h") & part["converted"]]
            _ecdf(ax, day[~day["converted"]], NORMAL_COLOUR, "no purchase within 1 day")
            _ecdf(ax, day[day["converted"]], RISING_COLOUR, "purchase within 1 day")
            _ecdf(ax, hour, RISING_COLOUR, "purchase within 1 hour", "--")
            if view == "browse" and (part["value"] > 0).all():
                ax.set_xscale("log")
            ax.set_xlabel(LABELS[view])
            ax.set_ylabel("share of rows at or below")
            ax.set_title(f"{view} view")
            ax.legend(fontsize=7)
        fig.suptitle("E8: intent before a purchase (DIPN Sec. 1)")
        png = save_png(fig, out, "e8_intent.png")
        tables.append(("Intent by view and purchase window", intent_summary(hist)))
    return Figure(
        "e8-intent", "E8: purchase intent in the touch and browse views",
        "Distributions (cumulative) of a touch session's intent score and of a browse's stay, "
        "for rows whose user buys the item within 1 hour / 1 day after and for the others: "
        "a view that carries the planted intent shifts the converting rows to the right (AUC "
        "above 0.5); a view without it keeps them together.",
        png, tables, ("E8",), ("touch_intent", "browse_intent"),
    )
