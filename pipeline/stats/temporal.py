"""InfNet Sec. 3.4: 2-hop temporal CI (Fig. 2d).

For a record (sender u2 -> receiver u3, item p, time t), look at u2's own receipts of p before
t. ``delta_weeks`` is 0 when u2 never received p before t; otherwise the weeks between u2's most
recent earlier receipt and t, counted from 1 (a receipt less than 7 days earlier is week 1, so
that it is not confused with "never"), clipped at ``max_delta``. ``sender_bought`` says whether
u2 bought p after that receipt and before t.

Both lookups are 1:1 joins against per-(user, item) sorted timestamp arrays, so a hub sender
costs one row per record, not one per (record, earlier receipt) pair.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.stats.common import conversion_counts, timestamps_by_key

TWO_HOP = T.StructType(
    [
        T.StructField("delta_weeks", T.IntegerType()),
        T.StructField("sender_bought", T.BooleanType()),
        T.StructField("records", T.LongType()),
        T.StructField("conversions", T.LongType()),
        T.StructField("ci", T.DoubleType()),
        T.StructField("items", T.LongType()),
        T.StructField("ci_item_mean", T.DoubleType()),
        T.StructField("ci_item_sd", T.DoubleType()),
    ]
)


def with_two_hop(shares: DataFrame, purchases: DataFrame, max_delta: int = 4) -> DataFrame:
    """Add ``delta_weeks`` and ``sender_bought`` to share records (see the module docstring)."""
    receipts = (
        timestamps_by_key(shares, "receiver_id")
        .withColumnRenamed("user_id", "sender_id")
        .withColumnRenamed("times", "_received")
    )
    bought = (
        timestamps_by_key(purchases, "user_id")
        .withColumnRenamed("user_id", "sender_id")
        .withColumnRenamed("times", "_bought")
    )
    return (
        shares.join(receipts, ["sender_id", "item_id"], "left")
        .join(bought, ["sender_id", "item_id"], "left")
        .transform(two_hop_columns(F.col("_received"), F.col("_bought"), max_delta))
        .drop("_received", "_bought")
    )


def two_hop_columns(received: Column, bought: Column, max_delta: int = 4):
    """``DataFrame -> DataFrame`` adding ``delta_weeks`` and ``sender_bought`` to records at
    ``ts`` from the sender's sorted receipt times and purchase times of the item (or nulls)."""
    last = F.col("_last")
    days = (F.unix_micros(F.col("ts")) - F.unix_micros(last)) / 86_400_000_000
    delta = F.when(last.isNull(), F.lit(0)).otherwise(
        F.least(F.floor(days / 7) + 1, F.lit(max_delta))
    )
    sender_bought = F.coalesce(
        F.exists(bought, lambda p: (p >= last) & (p < F.col("ts"))), F.lit(False)
    )

    def add(records: DataFrame) -> DataFrame:
        return (
            records.withColumn("_last", F.array_max(F.filter(received, lambda r: r < F.col("ts"))))
            .withColumn("delta_weeks", delta.cast("int"))
            .withColumn("sender_bought", last.isNotNull() & sender_bought)
            .drop("_last")
        )

    return add


def two_hop_ci(shares_with_two_hop: DataFrame, min_item_records: int = 5) -> DataFrame:
    """CI by (delta_weeks, sender_bought), pooled and as mean/sd of per-item CIs.

    Per-item CIs use items with at least ``min_item_records`` records in the group, so the sd
    describes items, not the noise of single records.
    """
    keys = ("delta_weeks", "sender_bought")
    pooled = conversion_counts(shares_with_two_hop, *keys)
    per_item = (
        conversion_counts(shares_with_two_hop, *keys, "item_id")
        .where(F.col("records") >= min_item_records)
        .groupBy(*keys)
        .agg(
            F.count(F.lit(1)).alias("items"),
            F.avg("ci").alias("ci_item_mean"),
            F.stddev_samp("ci").alias("ci_item_sd"),
        )
    )
    return (
        pooled.join(per_item, list(keys), "left")
        .withColumn("items", F.coalesce("items", F.lit(0)))
        .select(*[F.col(f.name).cast(f.dataType) for f in TWO_HOP.fields])
    )
