"""Send coupons on the test day by a DIPN run's scores, and count the purchases they add.

    python benchmarks/dipn_coupons.py --lake LAKE [--models dipn,gbdt,timing] [--band 0.7,0.95]
    python benchmarks/dipn_coupons.py --lake LAKE --runs LAKE/_runs/dipn

The world's answer to a coupon is ``pipeline.world.coupons`` (its settings from the lake's
``truth/world``): a coupon brings a purchase planned later that day into the hour with
probability ``coupon_hesitant``, wins a non-buyer with ``coupon_cold``, and is spent for nothing
on a user who buys within the hour anyway. The test cuts, with both labels, come from
``shards/dipn``; each run's real-time scores from ``results/dipn_scores`` (what
``benchmarks/dipn_compare.py`` leaves in the lake) or, with ``--runs``, both heads' scores from
rescoring the best checkpoint of every run folder there that trained both. Strategies, per run:

* ``none``: no coupon; ``all``: a coupon at every cut;
* ``band``: a coupon where the score lies between the ``--band`` quantiles of the test scores
  (the paper's Table 7: the hesitant sit below the surest buyers);
* ``top``: as many coupons as ``band``, to the highest scores;
* ``random``: as many coupons as ``band``, to cuts drawn at random (seeded);
* ``later`` (two heads only): as many coupons as ``band``, to the highest ``p_1d - p_1h``, the
  cuts likeliest to buy later that day but not within the hour;
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

STRATEGIES = ("none", "all", "band", "top", "random", "later", "hesitant")


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
                   seed: int, score_1d: np.ndarray | None = None) -> np.ndarray | None:
    """Which cuts get a coupon under strategy ``name`` (bool per cut); None for ``later``
    without the long-term scores."""
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
    elif name == "later":
        if score_1d is None:
            return None
        sent[np.argsort(-(score_1d - score), kind="stable")[:count]] = True
    elif name == "hesitant":
        sent = classes == BUYS_LATER
    return sent


def rescored_runs(lake: Path, runs: Path, models: list[str] | None = None
                  ) -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]:
    """(model, run id, example ids, real-time scores, long-term scores) of every run folder
    under ``runs`` whose ``best.pt`` trained both heads (and, given ``models``, is one of
    them), rescored on the test split."""
    import torch

    from models.evaluate import load_for_eval

    out, splits = [], {}
    for ckpt_path in sorted(runs.glob("*/best.pt")):
        ckpt, task, model = load_for_eval(str(lake), str(ckpt_path), task="dipn")
        if list(task.heads) != ["1h", "1d"] or (models and ckpt["model_name"] not in models):
            continue
        key = repr(task.options)  # runs trained on the same options share the test split
        if key not in splits:
            splits[key] = task.load_split("test")
        examples = splits[key]
        with torch.no_grad():
            score = task.scores(model, examples, torch.device("cpu")).astype(np.float64)
        ids = np.array([ex.example_id for ex in examples], dtype=np.int64)
        out.append((ckpt["model_name"], ckpt_path.parent.name, ids, score[:, 0], score[:, 1]))
    if not out:
        raise SystemExit(f"{runs}: no run folder with a two-head best.pt")
    return out


def scored_runs(lake: Path) -> list[tuple[str, str, np.ndarray, np.ndarray, None]]:
    """(model, run id, example ids, real-time scores, None) of every run in
    ``results/dipn_scores``."""
    scores = DeltaTable(str(lake / "results" / scores_table("dipn"))).to_pyarrow_table()
    scores = scores.filter(pc.equal(scores["split"], "test")).to_pandas()
    return [(model, run_id, run["example_id"].to_numpy(), run["score"].to_numpy(), None)
            for (model, run_id), run in scores.groupby(["model", "run_id"], sort=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, type=Path)
    parser.add_argument("--models", default=None, help="comma list (default: every model)")
    parser.add_argument("--band", default="0.7,0.95", help="quantiles lo,hi of the band")
    parser.add_argument("--seed", type=int, default=0, help="seed of the coupons' coins")
    parser.add_argument("--runs", type=Path, default=None,
                        help="rescore the two-head runs under this folder (both heads' scores)")
    args = parser.parse_args()
    band = tuple(float(x) for x in args.band.split(","))
    hesitant = world_setting(args.lake, "coupon_hesitant")
    cold = world_setting(args.lake, "coupon_cold")
    cuts = cuts_of_test_day(args.lake)
    models = args.models.split(",") if args.models else None
    runs = rescored_runs(args.lake, args.runs, models) if args.runs else scored_runs(args.lake)
    if models:
        runs = [r for r in runs if r[0] in models]
    per_model: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for model, run_id, ids, score, score_1d in runs:
        missing = [i for i in ids[:5] if int(i) not in cuts]
        if missing:
            raise SystemExit(f"{run_id}: test example {missing[0]} is not a cut of the shards")
        labels = np.array([cuts[int(i)] for i in ids])
        classes = outcome_class(labels[:, 0], labels[:, 1])
        u = coin(args.seed, ids)
        for name in STRATEGIES:
            sent = strategy_sends(name, score, classes, band, args.seed, score_1d)
            if sent is None:
                continue
            gained = extra_purchases(classes, sent, u, hesitant, cold)
            per_model.setdefault(model, {}).setdefault(name, []).append((int(sent.sum()),
                                                                         gained))
    print(f"coupon_hesitant {hesitant}, coupon_cold {cold}, band {band}")
    shown = [s for s in STRATEGIES if any(s in rows for rows in per_model.values())]
    print("| model | runs | " + " | ".join(f"{s}: coupons / extra per 1k" for s in shown)
          + " |")
    print("|---|---|" + "---|" * len(shown))
    for model, rows in per_model.items():
        cells = []
        for name in shown:
            runs = rows.get(name, [])
            if not runs:
                cells.append("")
                continue
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
