"""NDM shards from a generated world: one cascade per shared item, from ``raw/shares``.

    python -m jobs.build_shards --lake LAKE --task ndm [--name world] [--train-frac 0.8] \
        [--val-frac 0.1] [--min-size 2]

A cascade is the users an item reached, in order of infection (NDM paper Sec. 4.1): the sender
of the item's first share record comes first (at that record's time), then every receiver in
order of the first time it received the item (ties by user id); a user is in a cascade once
(the first sender is not repeated when the item comes back to them). Items reaching fewer than
``--min-size`` users are left out (and counted in the manifest).

Split by time, not at random, so no cascade trains on the future of a test cascade: cascades
are ordered by start time; those before the ``train_frac`` quantile are ``train``, before the
``train_frac + val_frac`` quantile ``val``, the rest ``test``.

Writes ``shards/ndm/<name>`` (``contracts.ndm.CASCADES``: cascade_id = item_id, split, users
as dense ids, times as epoch seconds), ``shards/ndm/<name>_users`` (dense id -> original user id
as text, ids by first appearance), ``shards/ndm/<name>_social`` and
``shards/ndm/<name>_manifest`` (one row, ``json``; its ``social`` entry counts the graph's
records).

The social network of NDM+SN (paper Sec. 5.4; ``contracts.ndm.SOCIAL``): the share graph of the
training period, one row per (sender, receiver) pair of dense ids with ``weight`` = the number of
share records from sender to receiver at a time t < t_val, t_val = the start of the first
cascade that is not ``train`` (the first val cascade; the first test cascade when val is empty;
no cut when every cascade is train). Nothing from the val / test period reaches the graph. It is
stored *directed*, as the records are: a reader that wants an undirected graph (DeepWalk does)
symmetrises it, while the direction stays available to one that does not. Records whose sender
or receiver is in no kept cascade have no dense id and stay out (users only in items below
``--min-size``, and senders who share an item without having received it and are not its first
sender: a cascade holds the first sender and the receivers); the manifest counts them.
"""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from contracts import ndm as contract
from contracts.runs import run_digest
from pipeline.lake import Lake
from pipeline.schemas import spark_schema
from pipeline.systems import register
from pipeline.systems.ndm.cascades import (
    cascade_rows,
    dense_user_ids,
    write_cascade_shards,
    write_manifest,
)

#: The training-period share graph, as ``contracts.ndm.SOCIAL`` declares.
SOCIAL = spark_schema(contract.SOCIAL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="world", help="shards/ndm/<name>")
    parser.add_argument("--train-frac", type=float, default=0.8)
    parser.add_argument("--val-frac", type=float, default=0.1)
    parser.add_argument("--min-size", type=int, default=2, help="fewest users per cascade")


def cascade_events(shares: DataFrame) -> DataFrame:
    """Shares -> (item_id, user_id, time, pos): each item's users in order of infection."""
    first_w = Window.partitionBy("item_id").orderBy("ts", "sender_id", "receiver_id")
    seeds = (
        shares.withColumn("_rn", F.row_number().over(first_w))
        .where(F.col("_rn") == 1)
        .select(
            "item_id",
            F.col("sender_id").alias("user_id"),
            F.col("ts").cast("double").alias("time"),
            F.lit(0).alias("_seed_first"),
        )
    )
    receipts = (
        shares.groupBy("item_id", F.col("receiver_id").alias("user_id"))
        .agg(F.min(F.col("ts").cast("double")).alias("time"))
        .join(seeds.select("item_id", "user_id"), ["item_id", "user_id"], "left_anti")
        .withColumn("_seed_first", F.lit(1))
    )
    order_w = Window.partitionBy("item_id").orderBy("_seed_first", "time", "user_id")
    return (
        seeds.unionByName(receipts)
        .withColumn("pos", F.row_number().over(order_w) - 1)
        .drop("_seed_first")
    )


def time_split(starts: DataFrame, train_frac: float, val_frac: float) -> DataFrame:
    """(item_id, start) -> plus ``split`` by start-time quantiles."""
    q_train, q_val = starts.approxQuantile("start", [train_frac, train_frac + val_frac], 0.0)
    return starts.withColumn(
        "split",
        F.when(F.col("start") < q_train, "train")
        .when(F.col("start") < q_val, "val")
        .otherwise("test"),
    )


def build_world_cascades(
    shares: DataFrame, train_frac: float = 0.8, val_frac: float = 0.1, min_size: int = 2
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(cascades, user map, per-item sizes) from ``raw/shares``."""
    events = cascade_events(shares.select("sender_id", "receiver_id", "item_id", "ts"))
    sizes = events.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("size"), F.min("time").alias("start")
    )
    kept = sizes.where(F.col("size") >= min_size)
    splits = time_split(kept.select("item_id", "start"), train_frac, val_frac)
    events = events.join(splits, "item_id").select(
        F.col("item_id").alias("cascade_id"),
        "split",
        "pos",
        F.col("user_id").cast("string").alias("user_name"),
        "time",
        F.struct("start", "item_id", "pos").alias("order"),
    )
    user_map = dense_user_ids(events.select("user_name", "order"))
    cascades = cascade_rows(events.drop("order"), user_map)
    return cascades, user_map, sizes


def training_cutoff(cascades: DataFrame) -> float | None:
    """t_val: the earliest start (epoch seconds) of a cascade that is not ``train``; None when
    all are train. Cascades split by start time, so t_val is the first val cascade's start."""
    row = (
        cascades.where(F.col("split") != "train")
        .agg(F.min(F.element_at("times", 1)).alias("cutoff"))
        .first()  # one row
    )
    return row["cutoff"]


def shares_before(shares: DataFrame, cutoff: float | None) -> DataFrame:
    """The share records at ts < ``cutoff`` (epoch seconds); all of them when None."""
    if cutoff is None:
        return shares
    return shares.where(F.col("ts").cast("double") < F.lit(cutoff))


def training_share_graph(
    shares: DataFrame, user_map: DataFrame, cutoff: float | None
) -> DataFrame:
    """Share records at ts < ``cutoff`` (all when None) -> ``SOCIAL`` rows: one per directed
    (src, dst) pair of dense ids, ``weight`` = records; records with an end outside
    ``user_map`` (``contracts.ndm.USERS``) have no dense id and are left out."""
    ids = F.broadcast(user_map.select("user_name", "user_id"))  # one row per user: small
    return (
        shares_before(shares, cutoff)
        .select(
            F.col("sender_id").cast("string").alias("src_name"),
            F.col("receiver_id").cast("string").alias("dst_name"),
        )
        .join(ids.withColumnsRenamed({"user_name": "src_name", "user_id": "src"}), "src_name")
        .join(ids.withColumnsRenamed({"user_name": "dst_name", "user_id": "dst"}), "dst_name")
        .groupBy("src", "dst")
        .agg(F.count(F.lit(1)).alias("weight"))
        .select(
            F.col("src").cast("long"),
            F.col("dst").cast("long"),
            F.col("weight").cast("long"),
        )
    )


def write_social_graph(spark, lake: Lake, name: str, shares: DataFrame, app_id: str):
    """Commit ``shards/ndm/<name>_social`` (overwrite) from the committed cascades and users;
    return the commit and the manifest's ``social`` entry (t_val, records before it, records
    kept in the graph, edges)."""
    cutoff = training_cutoff(lake.read(spark, "shards", contract.cascades_table(name)))
    users = lake.read(spark, "shards", contract.users_table(name))
    graph = training_share_graph(shares, users, cutoff)
    commit = lake.write(graph, "shards", contract.social_table(name), mode="overwrite",
                        app_id=app_id, expected_schema=SOCIAL)
    stats = (
        lake.read(spark, "shards", contract.social_table(name))
        .agg(F.count(F.lit(1)).alias("edges"), F.sum("weight").alias("records"))
        .first()  # one row
    )
    records_before = shares_before(shares, cutoff).count()
    summary = {
        "table": contract.social_table(name),
        "cutoff": cutoff,
        "records_before_cutoff": records_before,
        "records_in_graph": int(stats["records"] or 0),
        "records_without_dense_id": records_before - int(stats["records"] or 0),
        "edges": stats["edges"],
    }
    return commit, summary


@register("ndm", arguments=add_arguments)
def build(spark, lake: Lake, args: argparse.Namespace) -> dict:
    settings = {
        "name": args.name,
        "train_frac": args.train_frac,
        "val_frac": args.val_frac,
        "min_size": args.min_size,
        "shares_version": lake.version("raw", "shares"),
    }
    run_id = args.run_id or run_digest(settings)
    app_id = f"build_shards-ndm-{run_id}"
    shares = lake.read(spark, "raw", "shares")
    cascades, users, sizes = build_world_cascades(
        shares, args.train_frac, args.val_frac, args.min_size
    )
    commits, summary = write_cascade_shards(spark, lake, args.name, cascades, users, app_id)
    social_commit, social = write_social_graph(spark, lake, args.name, shares, app_id)
    commits.append(social_commit)
    small = sizes.where(F.col("size") < args.min_size).count()
    info = {
        **settings,
        "run_id": run_id,
        "n_users": summary["n_users"],
        "splits": summary["splits"],
        "items_below_min_size": small,
        "social": social,
    }
    commits.append(write_manifest(lake, args.name, run_id, info, app_id))
    info["commits"] = [str(c) for c in commits]
    return info
