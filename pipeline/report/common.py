"""What every section of the report shares: the figure record, reading ``stats/*``, saving PNGs
and writing HTML tables."""

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


def read_stats(lake: Lake, table: str) -> pd.DataFrame | None:
    if not lake.exists("stats", table):
        return None
    return lake.to_arrow("stats", table).to_pandas()


def save_png(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return html.escape(str(value))


def html_table(df: pd.DataFrame, max_rows: int = 60) -> str:
    shown = df.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False)
    )
    more = f"<p class='note'>first {max_rows} of {len(df)} rows</p>" if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"

