"""DM-GNN shards: the social interactions as a typed edge stream, the consumption events as
dynamic node attributes, and each user's consumption tier per window (``contracts.dmgnn``).

    python -m jobs.build_shards --lake LAKE --task dmgnn [--rows-per-file 1000000]

From the raw tables:

* ``edges``: every share record is an edge sender -> receiver at its time, of type ``repost``
  when the sender had received the same item before (a share record to her, strictly
  earlier), else ``share``. The contract's ``like`` and ``comment`` have no raw table yet, so
  no edge carries them.
* ``attributes``: a browse with action ``cart`` is a ``cart`` event, any other browse a
  ``browse`` event, both with the item's price (0 when the item is not in ``raw/items``); a
  purchase is a ``payment`` of its amount. Types are made here from the raw actions (which
  ingest validates), so no unknown type can arise.
* ``tiers``: windows of ``WINDOW_DAYS`` days counted from the world's first Monday; a user's
  tier in a window is ``contract.tier`` of her payments there, for every window from the first
  holding one of her edge or attribute events to the stream's last window.

Event ids: each table is sorted globally by (time, stable key) -- a range-partitioned sort --
and numbered like ``zipWithIndex``: the row's place in its partition plus the rows of the
partitions before it (one small count per partition goes to the driver). No step puts the
whole stream in one partition.

Node ids are the raw user ids, which a generated world numbers densely from 0. The trainer
sizes its tables by the largest id, so ids spread over more than ``MAX_ID_SPREAD`` times the
users that have events are refused (``SparseNodeIdsError``): renumber them before ingest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from dataclasses import asdict, dataclass, fields
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts import dmgnn as contract
from pipeline.lake import Lake
from pipeline.schemas import spark_schema
from pipeline.stats.common import world_origin
from pipeline.systems import register
from pipeline.systems.steps import Steps, commit_shards, shard_run

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
WINDOW_MS = contract.WINDOW_DAYS * DAY_MS
#: The largest id + 1 may be at most this many times the number of users with an event.
MAX_ID_SPREAD = 2
#: The Spark schemas the written tables must have, by the contract's table names.
SPARK_SCHEMA = {name: spark_schema(contract.SCHEMA[name])
                for name in ("edges", "attributes", "tiers")}
RAW_TABLES = ("shares", "browses", "purchases", "items")
#: A partition's rows are numbered in the low 33 bits of ``monotonically_increasing_id``.
_ROW_BITS = 33


class SparseNodeIdsError(ValueError):
    """The raw user ids are too sparse to serve as the contract's dense node ids."""


@dataclass
class DmgnnShardConfig:
    """Options of the DM-GNN shard builder (see the module docstring)."""

    rows_per_file: int = 1_000_000

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DmgnnShardConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in known and v is not None})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows-per-file", type=int, default=DmgnnShardConfig.rows_per_file,
                        help="most rows in one Parquet file of a shard table")


def edge_events(shares: DataFrame) -> DataFrame:
    """(src, dst, ts, edge_type, item_id): one edge per share record, ``ts`` in epoch ms."""
    first_received = shares.groupBy(F.col("receiver_id").alias("sender_id"), "item_id").agg(
        F.min("ts").alias("first_received"))
    repost = F.coalesce(F.col("first_received") < F.col("ts"), F.lit(False))
    return (
        shares.join(first_received, ["sender_id", "item_id"], "left")
        .select(
            F.col("sender_id").alias("src"),
            F.col("receiver_id").alias("dst"),
            F.unix_millis("ts").alias("ts"),
            F.when(repost, "repost").otherwise("share").alias("edge_type"),
            "item_id",
        )
    )


def attribute_events(browses: DataFrame, purchases: DataFrame, items: DataFrame) -> DataFrame:
    """(user_id, ts, event_type, amount, item_id): browses and carts at the item's price (the
    mean of its prices where ``raw/items`` lists an item twice), payments at the purchase's
    amount."""
    # One price per item, so that the join keeps one row per browse.
    prices = items.groupBy("item_id").agg(F.avg("price").alias("price"))
    looked = browses.join(prices, "item_id", "left").select(
        "user_id",
        F.unix_millis("ts").alias("ts"),
        F.when(F.col("action") == "cart", "cart").otherwise("browse").alias("event_type"),
        F.coalesce(F.col("price"), F.lit(0.0)).alias("amount"),
        "item_id",
    )
    paid = purchases.select(
        "user_id", F.unix_millis("ts").alias("ts"), F.lit("payment").alias("event_type"),
        F.col("amount").cast("double").alias("amount"), "item_id",
    )
    return looked.unionByName(paid)


def with_event_ids(df: DataFrame, order: list[str], steps: Steps, name: str) -> DataFrame:
    """``df`` with ``event_id`` = its row's place (from 0) in the order of ``order``.

    The sort range-partitions the rows; each row's place in its partition comes from
    ``monotonically_increasing_id`` taken right after the sort, and each partition's offset
    is the count of the partitions before it.
    """
    spark = df.sparkSession
    sorted_rows = steps(name, df.orderBy(*order).select(
        "*",
        F.spark_partition_id().alias("_part"),
        F.monotonically_increasing_id().alias("_mono"),
    ))
    counts = sorted(
        (r["_part"], r["n"])
        for r in sorted_rows.groupBy("_part").agg(F.count(F.lit(1)).alias("n")).collect()
    )
    offsets, total = [], 0
    for part, n in counts:
        offsets.append((part, total))
        total += n
    offset_df = spark.createDataFrame(offsets, "_part int, _offset long")
    local = F.col("_mono") - F.shiftleft(F.col("_part").cast("long"), _ROW_BITS)
    return (
        sorted_rows.join(F.broadcast(offset_df), "_part")
        .withColumn("event_id", F.col("_offset") + local)
        .drop("_part", "_mono", "_offset")
    )


def tier_col(spend: Column) -> Column:
    """``contract.tier`` as a column: 1, plus one for each bound the spend reaches."""
    reached = [(spend >= F.lit(bound)).cast("int") for bound in contract.TIER_BOUNDS]
    return reduce(lambda a, b: a + b, reached, F.lit(1)).cast("byte")


def _window(ts_ms: Column, origin_ms: int) -> Column:
    return F.floor((ts_ms - F.lit(origin_ms)) / WINDOW_MS).cast("long")


def tier_rows(first_seen: DataFrame, attributes: DataFrame, origin_ms: int,
              last_window: int) -> DataFrame:
    """(user_id, window_start, window_end, tier): every window of each user from that of her
    first event (``first_seen``: user_id, first_ts) to ``last_window``."""
    spend = (
        attributes.where(F.col("event_type") == "payment")
        .groupBy("user_id", _window(F.col("ts"), origin_ms).alias("window"))
        .agg(F.sum("amount").alias("spend"))
    )
    windows = first_seen.select(
        "user_id",
        F.explode(F.sequence(_window(F.col("first_ts"), origin_ms),
                             F.lit(last_window).cast("long"))).alias("window"),
    )
    start = F.lit(origin_ms) + F.col("window") * WINDOW_MS
    return windows.join(spend, ["user_id", "window"], "left").select(
        "user_id",
        start.cast("long").alias("window_start"),
        (start + WINDOW_MS).cast("long").alias("window_end"),
        tier_col(F.coalesce(F.col("spend"), F.lit(0.0))).alias("tier"),
    )


def first_and_last(shares: DataFrame, browses: DataFrame, purchases: DataFrame) -> DataFrame:
    """(user_id, first_ts, last_ts): the times of each user's first and last edge (sent or
    received) or attribute event, in epoch ms."""
    seen = reduce(DataFrame.unionByName, [
        shares.select(F.col("sender_id").alias("user_id"), "ts"),
        shares.select(F.col("receiver_id").alias("user_id"), "ts"),
        browses.select("user_id", "ts"),
        purchases.select("user_id", "ts"),
    ])
    return seen.groupBy("user_id").agg(F.unix_millis(F.min("ts")).alias("first_ts"),
                                       F.unix_millis(F.max("ts")).alias("last_ts"))


def check_dense(first_seen: DataFrame) -> tuple[int, int, int | None]:
    """(num_nodes, users with an event, the stream's last time) of ``first_seen`` (user_id,
    first_ts, last_ts); ``SparseNodeIdsError`` when the largest id + 1 is more than
    ``MAX_ID_SPREAD`` times those users."""
    row = first_seen.agg(F.count(F.lit(1)).alias("n"), F.max("user_id").alias("top"),
                         F.max("last_ts").alias("last")).first()
    users, top = int(row["n"]), row["top"]
    num_nodes = 0 if top is None else int(top) + 1
    if num_nodes > MAX_ID_SPREAD * users:
        raise SparseNodeIdsError(
            f"raw user ids reach {num_nodes - 1} but only {users} users have an event: "
            f"node ids 0..{num_nodes - 1} would be more than {MAX_ID_SPREAD} times the users "
            f"(renumber the users densely from 0 before ingest)")
    return num_nodes, users, row["last"]


def build_dmgnn_tables(
    shares: DataFrame,
    browses: DataFrame,
    purchases: DataFrame,
    items: DataFrame,
    steps: Steps | None = None,
) -> tuple[DataFrame, DataFrame, DataFrame, dict]:
    """Raw tables -> (edges, attributes, tiers, facts for the manifest)."""
    steps = steps or Steps(measure=False)
    origin = world_origin(shares, browses, purchases)
    origin_ms = int(dt.datetime.combine(origin, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
    # The ids are checked before the stream is sorted: a sparse world fails fast.
    first_seen = steps("first_seen", first_and_last(shares, browses, purchases))
    num_nodes, active, last_ts = check_dense(first_seen)
    last_window = 0 if last_ts is None else (last_ts - origin_ms) // WINDOW_MS
    edges = with_event_ids(edge_events(shares), ["ts", "src", "dst", "item_id"], steps,
                           "edges_sorted")
    attributes = with_event_ids(attribute_events(browses, purchases, items),
                                ["ts", "user_id", "event_type", "item_id", "amount"], steps,
                                "attributes_sorted")
    tiers = tier_rows(first_seen, attributes, origin_ms, last_window)
    facts = {"num_nodes": num_nodes, "active_nodes": active, "origin": origin.isoformat(),
             "origin_ms": origin_ms, "windows": int(last_window) + 1}
    return (
        edges.select(*contract.EDGES.names),
        attributes.select(*contract.ATTRIBUTES.names),
        tiers,
        facts,
    )


def manifest(edges: DataFrame, attributes: DataFrame, tiers: DataFrame, facts: dict,
             cfg: DmgnnShardConfig) -> dict:
    """The contract's keys (``num_nodes``, ``edges``, ``attributes``, ``tiers``, ``first_ts``,
    ``last_ts``) and counts per type and tier, read from the written tables."""
    def by(df: DataFrame, column: str) -> list:
        return df.groupBy(column).agg(F.count(F.lit(1)).alias("n"), F.min("ts").alias("lo"),
                                      F.max("ts").alias("hi")).collect()  # a row per type

    e_rows, a_rows = by(edges, "edge_type"), by(attributes, "event_type")
    e_types = {r["edge_type"]: r["n"] for r in e_rows}
    a_types = {r["event_type"]: r["n"] for r in a_rows}
    tier_counts = {str(r["tier"]): r["count"] for r in tiers.groupBy("tier").count().collect()}
    los, his = [r["lo"] for r in e_rows + a_rows], [r["hi"] for r in e_rows + a_rows]
    return {
        "schema_version": contract.SCHEMA_VERSION,
        "task": "dmgnn",
        "edges": sum(e_types.values()),
        "attributes": sum(a_types.values()),
        "tiers": sum(tier_counts.values()),
        "first_ts": min(los) if los else None,
        "last_ts": max(his) if his else None,
        "edge_types": e_types,
        "attribute_types": a_types,
        "tier_counts": dict(sorted(tier_counts.items())),
        "window_days": contract.WINDOW_DAYS,
        "tier_bounds": list(contract.TIER_BOUNDS),
        "config": asdict(cfg),
        **facts,
    }


@register("dmgnn", arguments=add_arguments)
def build(spark: SparkSession, lake: Lake, args: argparse.Namespace) -> dict:
    cfg = DmgnnShardConfig.from_args(args)
    config = asdict(cfg)
    paths = contract.tables()
    # the attribute and tier tables are committed beside commit_shards' edge table under its
    # app id (a re-run commits none)
    run_id, app_id, _ = shard_run(lake, "dmgnn", config, RAW_TABLES, args.run_id)

    def build_rows(raw: list[DataFrame], steps: Steps) -> tuple[DataFrame, dict]:
        edges, attributes, tiers, facts = build_dmgnn_tables(*raw, steps)
        # The side tables first: the edge stream, then the manifest, close the build.
        for name, rows in (("attributes", attributes), ("tiers", tiers)):
            lake.write(rows, "shards", paths[name], mode="overwrite", app_id=app_id,
                       expected_schema=SPARK_SCHEMA[name],
                       max_records_per_file=cfg.rows_per_file)
        return edges, facts

    def manifest_of(edges: DataFrame, facts: dict) -> dict:
        written = {name: lake.read(spark, "shards", paths[name])
                   for name in ("attributes", "tiers")}
        return manifest(edges, written["attributes"], written["tiers"], facts, cfg)

    return commit_shards(
        spark, lake, "dmgnn", config, RAW_TABLES, build_rows, manifest_of,
        run_id=run_id, tables=(paths["edges"], paths["manifest"]),
        schema_version=contract.SCHEMA_VERSION, shard_schema=SPARK_SCHEMA["edges"],
        rows_per_file=cfg.rows_per_file,
    )
