"""Send coupons on the test day by a DIPN run's scores, and count the purchases they add.

    python benchmarks/dipn_coupons.py --lake LAKE [--models dipn,gbdt,timing] [--band 0.7,0.95]

The world's answer to a coupon is ``pipeline.world.coupons`` (its settings from the lake's
``truth/world``): a coupon brings a purchase planned later that day into the hour with
probability ``coupon_hesitant``, wins a non-buyer with ``coupon_cold``, and is spent for nothing
on a user who buys within the hour anyway. The test cuts, with both labels, come from
``shards/dipn``; each run's real-time scores from ``results/dipn_scores`` (what
``benchmarks/dipn_compare.py`` leaves in the lake). Strategies, per run:

* ``none``: no coupon; ``all``: a coupon at every cut;
* ``band``: a coupon where the score lies between the ``--band`` quantiles of the test scores
  (the paper's Table 7: the hesitant sit below the surest buyers);
* ``top``: as many coupons as ``band``, to the highest scores;
* ``random``: as many coupons as ``band``, to cuts drawn at random (seeded);
* ``hesitant``: to the cuts that buy later that day and not within the hour, which only the
  world knows: the ceiling.

The table gives, per model, the mean and sd over its seeds of the coupons sent and of the
extra purchases per 1,000 coupons. A script, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from deltalake import DeltaTable

from contracts import dipn as contract
from contracts.results import scores_table
from pipeline.world.coupons import BUYS_LATER, coin, extra_purchases, outcome_class

STRATEGIES = ("none", "all", "band", "top", "random", "hesitant")


def cuts_of_test_day(lake: Path) -> dict[int, tuple[int, int]]:
    """example id (the trainer's: user << 28 | day << 16 | k) -> (label_1h, label_1d) of
    every test cut."""
    table = DeltaTable(str(lake / "shards" / contract.SHARD_TABLE)).to_pyarrow_table(
        columns=["user_id", "day", "split", "label_1h", "label_1d"])
    table = table.filter(pc.equal(table["split"], "test"))
    out = {}
    for user, day, l1h, l1d in zip(*(table[c].to_pylist() for c in
                                     ("user_id", "day", "label_1h", "label_1d")), strict=True):
        for k, (a, b) in enumerate(zip(l1h, l1d, strict=True)):
            out[(user << 28) + (day << 16) + k] = (a, b)
    return out


def world_setting(lake: Path, name: str) -> float:
    truth = DeltaTable(str(lake / "truth" / "world")).to_pyarrow_table().to_pylist()
    values = [r["value"] for r in truth if r["parameter"] == name]
    if not values:
        raise SystemExit(f"{lake}/truth/world has no {name!r}: regenerate the world")
    return float(values[0])


def strategy_sends(name: str, score: np.ndarray, classes: np.ndarray, band: tuple[float, float],
                   seed: int) -> np.ndarray:
    """Which cuts get a coupon under strategy ``name`` (bool per cut)."""
    n = len(score)
    lo, hi = np.quantile(score, band)
    in_band = (score >= lo) & (score <= hi)
    count = int(in_band.sum())
    if name == "none":
        return np.zeros(n, bool)
    if name == "all":
        return np.ones(n, bool)
    if name == "band":
        return in_band
    sent = np.zeros(n, bool)
    if name == "top":
        sent[np.argsort(-score, kind="stable")[:count]] = True
    elif name == "random":
        sent[np.random.default_rng(seed).choice(n, size=count, replace=False)] = True
    elif name == "hesitant":
        sent = classes == BUYS_LATER
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, type=Path)
    parser.add_argument("--models", default=None, help="comma list (default: every model)")
    parser.add_argument("--band", default="0.7,0.95", help="quantiles lo,hi of the band")
    parser.add_argument("--seed", type=int, default=0, help="seed of the coupons' coins")
    args = parser.parse_args()
    band = tuple(float(x) for x in args.band.split(","))
    hesitant = world_setting(args.lake, "coupon_hesitant")
    cold = world_setting(args.lake, "coupon_cold")
    cuts = cuts_of_test_day(args.lake)
    scores = DeltaTable(str(args.lake / "results" / scores_table("dipn"))).to_pyarrow_table()
    scores = scores.filter(pc.equal(scores["split"], "test")).to_pandas()
    if args.models:
        scores = scores[scores["model"].isin(args.models.split(","))]
    per_model: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for (model, run_id), run in scores.groupby(["model", "run_id"], sort=True):
        ids = run["example_id"].to_numpy()
        missing = [i for i in ids[:5] if int(i) not in cuts]
        if missing:
            raise SystemExit(f"{run_id}: test example {missing[0]} is not a cut of the shards")
        labels = np.array([cuts[int(i)] for i in ids])
        classes = outcome_class(labels[:, 0], labels[:, 1])
        u = coin(args.seed, ids)
        score = run["score"].to_numpy()
        for name in STRATEGIES:
            sent = strategy_sends(name, score, classes, band, args.seed)
            gained = extra_purchases(classes, sent, u, hesitant, cold)
            per_model.setdefault(model, {}).setdefault(name, []).append((int(sent.sum()),
                                                                         gained))
    print(f"coupon_hesitant {hesitant}, coupon_cold {cold}, band {band}")
    print("| model | runs | " + " | ".join(f"{s}: coupons / extra per 1k" for s in STRATEGIES)
          + " |")
    print("|---|---|" + "---|" * len(STRATEGIES))
    for model, rows in per_model.items():
        cells = []
        for name in STRATEGIES:
            runs = rows[name]
            sent = [s for s, _ in runs]
            rate = [1000 * g / s for s, g in runs if s]
            cells.append(f"{statistics.mean(sent):.0f} / " + (_mean_sd(rate) if rate else "-"))
        print(f"| {model} | {len(rows['none'])} | " + " | ".join(cells) + " |")
    return 0


def _mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} +- {statistics.stdev(values):.1f}"


if __name__ == "__main__":
    sys.exit(main())
