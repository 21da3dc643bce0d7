"""Building blocks shared by the statistic families: weeks, conversion flags, adopters.

Every function is a pure ``DataFrame -> DataFrame`` transformation. Two habits keep the joins
bounded on hub users and popular items:

* Per-(user, item) timestamps are first collapsed into one sorted array per key, so a record
  meets its key's purchases (or receipts) in a 1:1 join and a higher-order array function
  answers "is there one in [t, t + window)?" -- no record x purchase explosion.
* Neighbour joins start from the (item, adopter) pairs, the rare side, never from all edges.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
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


def any_in_window(times: Column, start: Column, window_days: float) -> Column:
    """True when some element of ``times`` lies in ``[start, start + window_days)``."""
    end = start + F.make_dt_interval(secs=F.lit(float(window_days * SECONDS_PER_DAY)))
    return F.coalesce(F.exists(times, lambda p: (p >= start) & (p < end)), F.lit(False))


def with_conversion(
    records: DataFrame, purchases: DataFrame, user_col: str, window_days: float
) -> DataFrame:
    """Add ``converted``: the record's user bought its item within ``window_days`` after it.

    Args:
        records: rows with ``user_col``, ``item_id`` and ``ts`` (browses or share records).
        purchases: raw purchases (``user_id``, ``item_id``, ``ts``).
        user_col: whose purchase counts (``user_id`` for browses, ``receiver_id`` for shares).
        window_days: the conversion window; a purchase at the record's own instant counts.
    """
    bought = timestamps_by_key(purchases, "user_id").withColumnRenamed("times", "_bought")
    return (
        records.join(
            bought.withColumnRenamed("user_id", user_col), on=[user_col, "item_id"], how="left"
        )
        .withColumn("converted", any_in_window(F.col("_bought"), F.col("ts"), window_days))
        .drop("_bought")
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
