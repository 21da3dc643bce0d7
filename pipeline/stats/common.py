"""Building blocks shared by the statistic families: weeks, conversion flags, adopters.

Every function is a pure ``DataFrame -> DataFrame`` transformation. Two habits keep the joins
bounded on hub users and popular items:

* Per-(user, item) timestamps are first collapsed into one sorted array per key, so a record
  meets its key's purchases (or receipts) in a 1:1 join and a higher-order array function
  answers "is there one in [t, t + window)?" -- no record x purchase explosion.
* Neighbour joins start from the (item, adopter) pairs, the rare side, never from all edges.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SECONDS_PER_DAY = 86_400


def world_origin(*frames: DataFrame):
    """The world's first Monday: the smallest ``week_start`` over the given raw tables.

    Returns a ``datetime.date`` (a single scalar aggregate per table goes to the driver).
    """
    starts = []
    for df in frames:
        row = df.agg(F.min("week_start").alias("m")).first()
        if row is not None and row["m"] is not None:
            starts.append(row["m"])
    if not starts:
        raise ValueError("no week_start in any raw table: the world is empty")
    return min(starts)


def with_week(df: DataFrame, origin, ts_col: str = "ts", name: str = "week") -> DataFrame:
    """Add ``week = floor(datediff(ts, origin) / 7) + 1`` (week 1 starts on the first Monday)."""
    days = F.datediff(F.to_date(F.col(ts_col)), F.lit(origin))
    return df.withColumn(name, (F.floor(days / 7) + 1).cast("int"))


def timestamps_by_key(df: DataFrame, user_col: str, ts_col: str = "ts") -> DataFrame:
    """(user_id, item_id, times): every key's timestamps as one sorted array."""
    return (
        df.groupBy(F.col(user_col).alias("user_id"), "item_id")
        .agg(F.array_sort(F.collect_list(F.col(ts_col))).alias("times"))
    )


def with_conversion(
    records: DataFrame,
    purchases: DataFrame,
    user_col: str,
    window_days: float,
    attribution: str = "last_touch",
) -> DataFrame:
    """Add ``converted``: the record's user bought its item within ``window_days`` after it.

    Args:
        records: rows with ``user_col``, ``item_id`` and ``ts`` (browses or share records).
        purchases: raw purchases (``user_id``, ``item_id``, ``ts``).
        user_col: whose purchase counts (``user_id`` for browses, ``receiver_id`` for shares).
        window_days: the conversion window; a purchase at the record's own instant counts.
        attribution: ``"last_touch"`` (default) closes a record's window early at the next
            record of the same (user, item), so one purchase converts one record, the last
            before it; ``"any"`` counts every record with a purchase in its window. Why: a
            user who receives the same item five times and buys once would otherwise convert
            up to five records, which inflates the CI of users who receive an item often
            (popular receivers, dense neighbourhoods) and fakes structural effects.
    """
    if attribution not in ("last_touch", "any"):
        raise ValueError(f"attribution must be 'last_touch' or 'any', got {attribution!r}")
    bought = timestamps_by_key(purchases, "user_id").withColumnRenamed("times", "_bought")
    joined = records.join(
        bought.withColumnRenamed("user_id", user_col), on=[user_col, "item_id"], how="left"
    )
    start = F.col("ts")
    end = start + F.make_dt_interval(secs=F.lit(float(window_days * SECONDS_PER_DAY)))
    if attribution == "last_touch":
        own = timestamps_by_key(records.select(user_col, "item_id", "ts"), user_col)
        joined = joined.join(
            own.withColumnRenamed("user_id", user_col).withColumnRenamed("times", "_own"),
            on=[user_col, "item_id"],
            how="left",
        )
        following = F.array_min(F.filter(F.col("_own"), lambda t: t > start))
        end = F.when(following.isNotNull() & (following < end), following).otherwise(end)
    converted = F.exists(F.col("_bought"), lambda p: (p >= start) & (p < end))
    return (
        joined.withColumn("converted", F.coalesce(converted, F.lit(False)))
        .drop("_bought", "_own")
    )


def conversion_counts(df: DataFrame, *keys: str) -> DataFrame:
    """(keys..., records, conversions, ci) from rows carrying ``converted``."""
    return (
        df.groupBy(*keys)
        .agg(
            F.count(F.lit(1)).alias("records"),
            F.sum(F.col("converted").cast("long")).alias("conversions"),
        )
        .withColumn("ci", F.col("conversions") / F.col("records"))
    )


def adopters(shares: DataFrame, purchases: DataFrame) -> DataFrame:
    """(user_id, item_id, received_ts, adopt_ts): users who received an item and then bought it.

    ``received_ts`` is the user's first receipt of the item, ``adopt_ts`` the first purchase at
    or after it. Users who bought without ever receiving are not adopters.
    """
    first_receipt = shares.groupBy(F.col("receiver_id").alias("user_id"), "item_id").agg(
        F.min("ts").alias("received_ts")
    )
    return (
        first_receipt.join(purchases.select("user_id", "item_id", "ts"), ["user_id", "item_id"])
        .where(F.col("ts") >= F.col("received_ts"))
        .groupBy("user_id", "item_id", "received_ts")
        .agg(F.min("ts").alias("adopt_ts"))
    )


def neighbour_pairs(shares: DataFrame) -> DataFrame:
    """(user_id, neighbour_id): both directions of every share edge, merged over all time."""
    edges = shares.select(
        F.col("sender_id").alias("user_id"), F.col("receiver_id").alias("neighbour_id")
    )
    reverse = edges.select(
        F.col("neighbour_id").alias("user_id"), F.col("user_id").alias("neighbour_id")
    )
    return edges.unionByName(reverse).where(F.col("user_id") != F.col("neighbour_id")).distinct()


def user_degrees(shares: DataFrame) -> DataFrame:
    """(user_id, in_degree, out_degree, degree): distinct in- and out-neighbours, and their sum."""
    edges = shares.select("sender_id", "receiver_id").where(
        F.col("sender_id") != F.col("receiver_id")
    ).distinct()
    out_deg = edges.groupBy(F.col("sender_id").alias("user_id")).agg(
        F.count(F.lit(1)).alias("out_degree")
    )
    in_deg = edges.groupBy(F.col("receiver_id").alias("user_id")).agg(
        F.count(F.lit(1)).alias("in_degree")
    )
    return (
        in_deg.join(out_deg, "user_id", "full")
        .select(
            "user_id",
            F.coalesce("in_degree", F.lit(0)).cast("long").alias("in_degree"),
            F.coalesce("out_degree", F.lit(0)).cast("long").alias("out_degree"),
        )
        .withColumn("degree", F.col("in_degree") + F.col("out_degree"))
    )


def with_prior_degrees(shares: DataFrame) -> DataFrame:
    """Add ``sender_prior_degree`` / ``receiver_prior_degree``: degrees from edges first seen in
    weeks before the record's week (``shares`` carries ``week``).

    Why: degrees over the merged graph include edges a user formed *because* of this record
    (a receiver who buys re-shares, gaining out-neighbours), so a merged-graph degree is
    partly an outcome of the conversion it is meant to explain. Prior degrees are not.
    Each user's edge weeks are one sorted array, so the lookup is a 1:1 join.
    """
    edges = (
        shares.where(F.col("sender_id") != F.col("receiver_id"))
        .groupBy("sender_id", "receiver_id")
        .agg(F.min("week").alias("first_week"))
    )
    ends = edges.select(F.col("sender_id").alias("user_id"), "first_week").unionByName(
        edges.select(F.col("receiver_id").alias("user_id"), "first_week")
    )
    weeks = ends.groupBy("user_id").agg(F.array_sort(F.collect_list("first_week")).alias("_w"))
    out = shares
    for role in ("sender", "receiver"):
        out = (
            out.join(weeks.withColumnRenamed("user_id", f"{role}_id"), f"{role}_id", "left")
            .withColumn(
                f"{role}_prior_degree",
                F.coalesce(
                    F.size(F.filter(F.col("_w"), lambda w: w < F.col("week"))), F.lit(0)
                ).cast("long"),
            )
            .drop("_w")
        )
    return out
