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
``MAX_LEN`` before the day's first cut to its last cut. Events are matched to rows through
chunks of ``MAX_LEN`` positions, an equi-join on (user, view, chunk), so a user's long history
is never joined whole against each of their days.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from dataclasses import asdict, dataclass, fields

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contracts import dipn as contract
from contracts.dipn import MANIFEST_TABLE, MAX_LEN, SCHEMA_VERSION, SHARD_TABLE
from pipeline.lake import Lake
from pipeline.schemas import spark_schema
from pipeline.stats.common import world_origin
from pipeline.systems import register
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
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
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


def _day(ts_ms: Column, origin_ms: int) -> Column:
    return F.floor((ts_ms - F.lit(origin_ms)) / DAY_MS).cast("int")


def choose_cuts(events: DataFrame, splits: dict[int, str], origin_ms: int,
                cfg: DipnShardConfig) -> DataFrame:
    """(user_id, day, split, ts, key): up to ``cuts_per_day`` of each user-day's touches (the
    swipe view holds them all) and browses (not purchases), ranked by a seeded hash."""
    days = F.create_map(*[x for d, s in splits.items() for x in (F.lit(d), F.lit(s))])
    actions = (
        events.where((F.col("view") == "swipe")
                     | ((F.col("view") == "browse") & (F.col("action") != "purchase")))
        .select("user_id", "ts", "key")
        .dropDuplicates(["user_id", "ts"])  # one cut per time: its sequences are the same
        .withColumn("day", _day(F.col("ts"), origin_ms))
        .withColumn("split", days[F.col("day")])
        .where(F.col("split").isNotNull())
    )
    rank = F.row_number().over(
        Window.partitionBy("user_id", "day").orderBy(
            F.xxhash64(F.lit(cfg.seed), "user_id", "ts", "key"), "ts", "key")
    )
    return actions.withColumn("r", rank).where(F.col("r") <= cfg.cuts_per_day).drop("r")


def labels_and_history(cuts: DataFrame, events: DataFrame) -> DataFrame:
    """The cuts with ``label_1h``, ``label_1d`` (the next purchase after tau) and the history
    counts (favourites, carts, purchases with a time in ``[tau - window, tau]``)."""
    acts = events.where(F.col("view") == "browse").select(
        "user_id", "ts", F.col("action"), F.lit(0).alias("is_cut")
    )
    marks = cuts.withColumn("action", F.lit(None).cast("string")).withColumn("is_cut", F.lit(1))
    both = acts.unionByName(marks, allowMissingColumns=True)  # the cuts' own columns ride along
    # Cuts sort after the events of their own time: a purchase at tau is history, not label.
    after = Window.partitionBy("user_id").orderBy("ts", "is_cut").rowsBetween(
        1, Window.unboundedFollowing)
    nxt = F.min(F.when(F.col("action") == "purchase", F.col("ts"))).over(after)
    both = both.withColumn("next_buy", nxt)
    for days in contract.HISTORY_WINDOWS_DAYS:
        span = Window.partitionBy("user_id").orderBy("ts").rangeBetween(-days * DAY_MS, 0)
        for action in contract.HISTORY_ACTIONS:
            count = F.sum((F.col("action") == action).cast("int")).over(span)
            both = both.withColumn(f"{action}_{days}d", F.coalesce(count, F.lit(0)))
    got = both.where(F.col("is_cut") == 1)
    delta = F.col("next_buy") - F.col("ts")
    history = F.array(*[
        (F.least(F.col(name), F.lit(contract.HISTORY_CAP)) + 1).cast("short")
        for name in contract.HISTORY_FEATURES
    ])
    return got.select(
        *cuts.columns,
        F.coalesce((delta <= HOUR_MS).cast("byte"), F.lit(0).cast("byte")).alias("label_1h"),
        F.coalesce((delta <= DAY_MS).cast("byte"), F.lit(0).cast("byte")).alias("label_1d"),
        history.alias("history"),
    )


def cut_ends(cuts: DataFrame, events: DataFrame) -> DataFrame:
    """The cuts (``is_cut`` 1, with their own columns) and the events (0), each with
    ``end_<view>``: how many of the user's events of that view have a time <= its time (for an
    event, its 1-based position in its view)."""
    ev = events.select("user_id", "view", "ts", "key", "x")
    marks = cuts.withColumn("view", F.lit(None).cast("string"))
    both = ev.unionByName(marks, allowMissingColumns=True).withColumn(
        "is_cut", F.col("view").isNull().cast("int"))
    running = Window.partitionBy("user_id").orderBy("ts", "is_cut", "view", "key").rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    for v in VIEWS:
        both = both.withColumn(f"end_{v}", F.sum((F.col("view") == v).cast("int")).over(running))
    return both


def assemble(cuts: DataFrame, positioned: DataFrame, profiles: DataFrame,
             steps: Steps) -> DataFrame:
    """One row per (user, day): each view's events from ``MAX_LEN`` before the day's first cut
    to its last, and the cuts with their end offsets into them."""
    cuts = steps("cuts", positioned.where(F.col("is_cut") == 1).select(
        *cuts.columns, *[F.coalesce(F.col(f"end_{v}"), F.lit(0)).alias(f"end_{v}")
                         for v in VIEWS]))
    ranges = cuts.groupBy("user_id", "day").agg(
        *[F.greatest(F.min(f"end_{v}") - MAX_LEN, F.lit(0)).alias(f"lo_{v}") for v in VIEWS],
        *[F.max(f"end_{v}").alias(f"hi_{v}") for v in VIEWS],
    )
    events = positioned.where(F.col("is_cut") == 0).select(
        "user_id", "view", "ts", "x",
        F.when(F.col("view") == "swipe", F.col("end_swipe"))
        .when(F.col("view") == "tap", F.col("end_tap"))
        .otherwise(F.col("end_browse")).alias("pos"),
    ).withColumn("chunk", F.floor((F.col("pos") - 1) / MAX_LEN).cast("int"))
    per_view = []
    for v in VIEWS:
        lo, hi = F.col(f"lo_{v}"), F.col(f"hi_{v}")
        need = ranges.where(hi > lo).select(
            "user_id", "day", lo.alias("lo"), hi.alias("hi"),
            F.explode(F.sequence(F.floor(lo / MAX_LEN).cast("int"),
                                 F.floor((hi - 1) / MAX_LEN).cast("int"))).alias("chunk"),
        )
        got = (
            events.where(F.col("view") == v)
            .join(need, ["user_id", "chunk"])
            .where((F.col("pos") > F.col("lo")) & (F.col("pos") <= F.col("hi")))
            .groupBy("user_id", "day")
            .agg(F.sort_array(F.collect_list(F.struct("pos", "ts", "x"))).alias("e"))
            .select("user_id", "day",
                    F.transform("e", lambda e: e["ts"]).alias(f"{v}_ts"),
                    F.flatten(F.transform("e", lambda e: e["x"])).alias(f"{v}_x"))
        )
        per_view.append(got)
    order = F.sort_array(F.collect_list(F.struct(
        "ts", *[(F.col(f"end_{v}") - F.col(f"lo_{v}")).cast("int").alias(f"end_{v}")
                for v in VIEWS],
        "label_1h", "label_1d", "history")))
    grouped = (
        cuts.join(ranges, ["user_id", "day"])
        .groupBy("user_id", "day", "split")
        .agg(order.alias("c"))
    )
    rows = grouped
    for got in per_view:
        rows = rows.join(got, ["user_id", "day"], "left")
    rows = rows.join(profiles, "user_id", "left")
    empty = {f"{v}_{k}": F.array().cast("array<long>" if k == "ts" else "array<short>")
             for v in VIEWS for k in ("ts", "x")}
    return rows.select(
        "user_id", "day", "split",
        F.coalesce("profile", F.array(*[F.lit(0).cast("short")] * 3)).alias("profile"),
        *[F.coalesce(F.col(name), empty[name]).alias(name)
          for v in VIEWS for name in (f"{v}_ts", f"{v}_x")],
        F.transform("c", lambda c: c["ts"]).alias("cut_ts"),
        *[F.transform("c", _field(f"end_{v}")).alias(f"cut_{v}_end") for v in VIEWS],
        F.transform("c", lambda c: c["label_1h"]).alias("label_1h"),
        F.transform("c", lambda c: c["label_1d"]).alias("label_1d"),
        F.flatten(F.transform("c", lambda c: c["history"])).alias("history"),
    )


def _field(name: str):
    """``transform``'s one-argument function reading ``name`` of each element."""
    return lambda c: c[name]


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
    cuts = choose_cuts(events, splits, origin_ms, cfg)
    cuts = labels_and_history(cuts, events)
    positioned = cut_ends(cuts, events)
    rows = assemble(cuts, positioned, profile_ids(users), steps)
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
