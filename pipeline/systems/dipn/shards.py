"""DIPN shards: per (user, day), the user's swipe, tap and browse views and the day's cuts.

    python -m jobs.build_shards --lake LAKE --task dipn [--cuts-per-day 20] [--train-days 12]

A cut is a user at the time ``tau`` of one of their own touches or browses (the paper's groups
end at an action, the last action of each sequence sharing one time). Each user-day keeps at
most ``--cuts-per-day`` of its actions, chosen by a seeded hash (``--seed``), so a rerun picks
the same cuts. Labels read purchases alone: a purchase in ``(tau, tau + 1 h]`` (real-time) and in
``(tau, tau + 1 d]`` (long-term). History counts favourites, add-to-carts and purchases in the 7,
14 and 28 days up to tau (inclusive); every sequence holds the view's events with a time <= tau.

Splits by day (the paper: the first 13 days train, the last tests): the world's last day has no
full day of labels after it, so the test day is the one before it, the validation day the one
before that, and ``--train-days`` days before those train. Days are counted from the world's
first Monday (``week_start``).

A row stores each view once for all its cuts (``contracts.dipn``): the view's events from
``MAX_LEN`` before the day's first cut to its last cut. The views' events are made in Spark
(``features``); the rest is per user (``assemble``: one grouped map, a shuffle by user and a
sorted scan of each user's events), so the executors need this package installed, as for any
job of this repository.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
from dataclasses import asdict, dataclass, fields

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from contracts import dipn as contract
from contracts.dipn import MANIFEST_TABLE, MAX_LEN, SCHEMA_VERSION, SHARD_TABLE
from pipeline.lake import Lake
from pipeline.schemas import spark_schema
from pipeline.stats.common import world_origin
from pipeline.systems import register
from pipeline.systems.dipn.assemble import COLUMNS, DAY_MS, user_rows
from pipeline.systems.dipn.features import (
    VIEWS,
    browse_events,
    profile_ids,
    swipe_events,
    tap_events,
)
from pipeline.systems.steps import Steps, commit_shards

log = logging.getLogger(__name__)

DIPN_SHARD = spark_schema(contract.SHARD)
#: A row's cuts are numbered in 16 bits where the trainer names its examples.
MAX_CUTS = 65_535


@dataclass
class DipnShardConfig:
    """Options of the DIPN shard builder (see the module docstring)."""

    cuts_per_day: int = 20
    train_days: int = 12
    seed: int = 0
    days: int | None = None  # days in the world; None: up to the last raw event's day
    rows_per_file: int = 5000

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DipnShardConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in known and v is not None})

    def check(self) -> None:
        if not 1 <= self.cuts_per_day <= MAX_CUTS or self.train_days < 1:
            raise ValueError(f"--cuts-per-day must be in 1..{MAX_CUTS} and --train-days >= 1: "
                             f"{asdict(self)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DipnShardConfig()
    parser.add_argument("--cuts-per-day", type=int, default=d.cuts_per_day,
                        help="cut times kept per user and day (chosen by a seeded hash)")
    parser.add_argument("--train-days", type=int, default=d.train_days,
                        help="days before the validation day that train")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the cut choice")
    parser.add_argument("--days", type=int, default=None, help="days in the world")
    parser.add_argument("--rows-per-file", type=int, default=d.rows_per_file)


def day_splits(days: int, cfg: DipnShardConfig) -> dict[int, str]:
    """Day index -> split: the last day has no full label day after it and is left out."""
    test = days - 2
    first_train = test - 1 - cfg.train_days
    if first_train < 0:
        raise ValueError(
            f"--train-days {cfg.train_days} needs {cfg.train_days + 3} days; the world has {days}"
        )
    out = {d: "train" for d in range(first_train, test - 1)}
    out[test - 1] = "val"
    out[test] = "test"
    return out


def user_rows_of(events: DataFrame, splits: dict[int, str], origin_ms: int,
                 cfg: DipnShardConfig) -> DataFrame:
    """The shard rows less ``profile``: ``assemble.user_rows`` over each user's events (the
    cut candidates ranked by ``xxhash64(seed, user_id, ts, key)``)."""
    fn = functools.partial(user_rows, splits=splits, origin_ms=origin_ms,
                           cuts_per_day=cfg.cuts_per_day, max_len=MAX_LEN)
    schema = StructType([f for f in DIPN_SHARD.fields if f.name in COLUMNS])
    return (
        events.select("user_id", "view", "ts", "key", "x", "action",
                      F.xxhash64(F.lit(cfg.seed), "user_id", "ts", "key").alias("h"))
        .groupBy("user_id")
        .applyInPandas(fn, schema=schema)
    )


def with_profiles(rows: DataFrame, profiles: DataFrame) -> DataFrame:
    """The rows in the contract's column order, with the profile ids (zeros if none)."""
    rows = rows.join(profiles, "user_id", "left")
    return rows.select(
        *[F.coalesce("profile", F.array(*[F.lit(0).cast("short")] * 3)).alias("profile")
          if f.name == "profile" else F.col(f.name) for f in DIPN_SHARD.fields]
    )


def build_dipn_shards(
    spark: SparkSession,
    touches: DataFrame,
    browses: DataFrame,
    purchases: DataFrame,
    items: DataFrame,
    users: DataFrame,
    cfg: DipnShardConfig,
    steps: Steps | None = None,
) -> tuple[DataFrame, dict]:
    """Raw tables -> (shard rows, facts for the manifest)."""
    cfg.check()
    steps = steps or Steps(measure=False)
    origin = world_origin(touches, browses, purchases)
    origin_ms = int(dt.datetime.combine(origin, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
    days = cfg.days
    if days is None:
        last = max(
            (df.agg(F.max(F.unix_millis("ts"))).first()[0] or origin_ms)
            for df in (touches, browses, purchases)
        )
        days = (last - origin_ms) // DAY_MS + 1
    splits = day_splits(days, cfg)
    events = steps("events", swipe_events(touches).unionByName(
        tap_events(touches).withColumn("action", F.lit(None).cast("string")),
        allowMissingColumns=True,
    ).unionByName(browse_events(browses, purchases, items), allowMissingColumns=True))
    rows = with_profiles(user_rows_of(events, splits, origin_ms, cfg), profile_ids(users))
    facts = {"origin": origin.isoformat(), "days": int(days),
             "splits": {s: [d for d, x in splits.items() if x == s] for s in contract.SPLITS}}
    return rows, facts


def manifest(shards: DataFrame, facts: dict, cfg: DipnShardConfig) -> dict:
    """Rows, cuts and positive labels per split; mean stored events per view and row."""
    agg = shards.groupBy("split").agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.size("cut_ts")).alias("cuts"),
        F.sum(F.aggregate("label_1h", F.lit(0), lambda a, x: a + x)).alias("label_1h"),
        F.sum(F.aggregate("label_1d", F.lit(0), lambda a, x: a + x)).alias("label_1d"),
        F.countDistinct("user_id").alias("users"),
        *[F.avg(F.size(f"{v}_ts")).alias(f"mean_{v}_events") for v in VIEWS],
    ).collect()
    counts = {r["split"]: {k: (round(float(r[k]), 1) if k.startswith("mean") else int(r[k]))
                           for k in r.asDict() if k != "split"} for r in agg}
    return {
        "schema_version": SCHEMA_VERSION,
        "task": "dipn",
        "counts": counts,
        "max_len": MAX_LEN,
        "features": {"swipe": list(contract.SWIPE_FEATURES), "tap": list(contract.TAP_FEATURES),
                     "browse": list(contract.BROWSE_FEATURES),
                     "history": list(contract.HISTORY_FEATURES),
                     "profile": list(contract.PROFILE_FEATURES)},
        "config": asdict(cfg),
        **facts,
    }


RAW_TABLES = ("touches", "browses", "purchases", "items", "users")


@register("dipn", arguments=add_arguments)
def build(spark: SparkSession, lake: Lake, args: argparse.Namespace) -> dict:
    cfg = DipnShardConfig.from_args(args)
    return commit_shards(
        spark, lake, "dipn", asdict(cfg), RAW_TABLES,
        lambda raw, steps: build_dipn_shards(spark, *raw, cfg, steps),
        lambda written, facts: manifest(written, facts, cfg),
        run_id=args.run_id, tables=(SHARD_TABLE, MANIFEST_TABLE),
        schema_version=SCHEMA_VERSION, shard_schema=DIPN_SHARD,
        rows_per_file=cfg.rows_per_file,
    )
