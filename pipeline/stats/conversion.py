"""InfNet Sec. 3.2: conversion index (Def. 4) and CI lift vs price index (Fig. 2a).

CI of an item = f(#records followed by a purchase / #records), with the privacy map f the
identity. A record "is followed by a purchase" when its user (the browser, or the Taocode
receiver) buys the record's item within ``window_days`` from the record's time.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.stats.common import conversion_counts, with_conversion

CONVERSION_INDEX = T.StructType(
    [
        T.StructField("item_id", T.LongType()),
        T.StructField("top_category", T.IntegerType()),
        T.StructField("leaf_category", T.IntegerType()),
        T.StructField("price_index", T.DoubleType()),
        T.StructField("browse_records", T.LongType()),
        T.StructField("browse_conversions", T.LongType()),
        T.StructField("ci_browse", T.DoubleType()),
        T.StructField("share_records", T.LongType()),
        T.StructField("share_conversions", T.LongType()),
        T.StructField("ci_taocode", T.DoubleType()),
    ]
)

CI_LIFT_BY_LEAF = T.StructType(
    [
        T.StructField("leaf_category", T.IntegerType()),
        T.StructField("items", T.LongType()),
        T.StructField("mean_price_index", T.DoubleType()),
        T.StructField("browse_records", T.LongType()),
        T.StructField("ci_browse", T.DoubleType()),
        T.StructField("share_records", T.LongType()),
        T.StructField("ci_taocode", T.DoubleType()),
        T.StructField("ci_lift", T.DoubleType()),
    ]
)


def conversion_index(
    shares: DataFrame,
    browses: DataFrame,
    purchases: DataFrame,
    items: DataFrame,
    window_days: float = 7.0,
    attribution: str = "last_touch",
    converted_shares: DataFrame | None = None,
) -> DataFrame:
    """Per item: CI of browsing and CI of Taocode (schema ``CONVERSION_INDEX``).

    ``attribution`` is passed to ``common.with_conversion``. ``converted_shares``: the share
    records already carrying ``converted`` for the same window and attribution (the observe
    run's ``share_features``), so the share side is an aggregation, not a second pass.

    Items with records of only one kind keep nulls on the other side; items with no records
    are left out.
    """
    browse_ci = conversion_counts(
        with_conversion(
            browses.select("user_id", "item_id", "ts"), purchases, "user_id", window_days,
            attribution,
        ),
        "item_id",
    ).select(
        "item_id",
        F.col("records").alias("browse_records"),
        F.col("conversions").alias("browse_conversions"),
        F.col("ci").alias("ci_browse"),
    )
    if converted_shares is None:
        converted_shares = with_conversion(
            shares.select("receiver_id", "item_id", "ts"), purchases, "receiver_id", window_days,
            attribution,
        )
    share_ci = conversion_counts(converted_shares.select("item_id", "converted"), "item_id").select(
        "item_id",
        F.col("records").alias("share_records"),
        F.col("conversions").alias("share_conversions"),
        F.col("ci").alias("ci_taocode"),
    )
    return (
        browse_ci.join(share_ci, "item_id", "full")
        .join(items.select("item_id", "top_category", "leaf_category", "price_index"),
              "item_id", "left")
        .select(*[F.col(f.name).cast(f.dataType) for f in CONVERSION_INDEX.fields])
    )


def ci_lift_by_leaf(conversion: DataFrame, min_records: int = 1) -> DataFrame:
    """Per leaf category: mean PI of its items and CI lift = CI_taocode / CI_browse - 1.

    Both CIs are pooled over the category's items that have records of both kinds
    (conversions / records), which weighs items by their records and keeps empty items from
    dividing by zero. Categories with fewer than ``min_records`` of either kind, or with a
    browse CI of zero, are left out (their lift is undefined).
    """
    both = conversion.where(
        F.col("browse_records").isNotNull() & F.col("share_records").isNotNull()
    )
    grouped = both.groupBy("leaf_category").agg(
        F.count(F.lit(1)).alias("items"),
        F.avg("price_index").alias("mean_price_index"),
        F.sum("browse_records").alias("browse_records"),
        F.sum("browse_conversions").alias("_bc"),
        F.sum("share_records").alias("share_records"),
        F.sum("share_conversions").alias("_sc"),
    )
    return (
        grouped.withColumn("ci_browse", F.col("_bc") / F.col("browse_records"))
        .withColumn("ci_taocode", F.col("_sc") / F.col("share_records"))
        .where(
            (F.col("browse_records") >= min_records)
            & (F.col("share_records") >= min_records)
            & (F.col("ci_browse") > 0)
        )
        .withColumn("ci_lift", F.col("ci_taocode") / F.col("ci_browse") - 1)
        .select(*[F.col(f.name).cast(f.dataType) for f in CI_LIFT_BY_LEAF.fields])
    )
