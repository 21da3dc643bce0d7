"""E10 from ``stats/recontact_hazard``: how soon a sender shares again with a contact, by the
time since the pair last interacted (the tests are ``pipeline.stats.recency``'s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.lake import Lake
from pipeline.report.common import NORMAL_COLOUR, RISING_COLOUR, Figure, plt, read_stats, save_png


def _labels(hazard) -> list[str]:
    """"0-1 d", ..., "28+ d" (the last bin is open: its upper edge is null, NaN in pandas)."""
    return [f"{lo:g}+ d" if np.isnan(hi) else f"{lo:g}-{hi:g} d"
            for lo, hi in zip(hazard["age_lo_days"], hazard["age_hi_days"].astype(float),
                              strict=True)]


def fig_recency(lake: Lake, out: Path) -> Figure:
    hazard = read_stats(lake, "recontact_hazard")
    png, tables = None, []
    if hazard is not None and not hazard.empty:
        hazard = hazard.sort_values("age_bin")
        x, labels = np.arange(len(hazard)), _labels(hazard)
        fig, (raw, choice) = plt.subplots(1, 2, figsize=(11, 4.2))
        raw.bar(x, hazard["rate_per_day"].fillna(0), color="#999999")
        raw.set_ylabel("re-contacts per pair-day")
        raw.set_title("raw hazard (pooled over pairs)")
        width = 0.4
        choice.bar(x - width / 2, hazard["choice_share"].fillna(0) * 100, width,
                   color=RISING_COLOUR, label="world")
        choice.bar(x + width / 2, hazard["null_choice_share"].fillna(0) * 100, width,
                   color=NORMAL_COLOUR, label="receivers shuffled within sender")
        choice.set_ylabel("shares to the contact per share of the sender (%)")
        choice.set_title("choice share")
        choice.legend(fontsize=7)
        for ax in (raw, choice):
            ax.set_xticks(x, labels)
            ax.set_xlabel("time since the pair last interacted")
        fig.suptitle("E10: re-contact by the age of a tie")
        png = save_png(fig, out, "e10_recency.png")
        tables.append(("Re-contact by the age of the tie", hazard))
    return Figure(
        "e10-recency", "E10: re-contact by the age of a tie",
        "How often a sender shares again with someone they shared with or received from, by "
        "the time since the pair last interacted: per pair-day (raw), and per share of the "
        "sender, beside the same world with each sender's receivers shuffled over their "
        "records. Both fall with age without any recency (frequent pairs are the young ones); "
        "a planted recency lifts the young bins above the shuffled world's.",
        png, tables, ("E10",), ("recontact_hazard",),
    )
