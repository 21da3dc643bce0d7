"""RiseNet Sec. 2-3: rising-star labels, MDSW, hub nodes, scale vs sales, scale fluctuation.

Everything starts from the item-week grid (``item_weekly``): per item and week the diffusion
scale (distinct receivers of the item's Taocodes), the share records and the sales (purchase
records), zero-filled so consecutive-week differences see empty weeks.

Rising star (RiseNet Sec. 2), per sliding window starting at week ``w0``: the item is *not*
among the top ``before_permille`` per mille of its top category by sales summed over weeks
``w0 .. w0+before_weeks-1``, and *is* among the top ``after_permille`` per mille by sales summed
over the next ``after_weeks`` weeks. Cut-offs are ``ceil(permille / 1000 * items in the
category)``, so a small world keeps at least one slot per category (a plain per-mille cut-off
rounds to zero items below 334 / 1000 items per category). Ranks are competition ranks
(ties share the best rank) and an item with zero sales is never "in the top".
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

ITEM_WEEKLY = T.StructType(
    [
        T.StructField("item_id", T.LongType()),
        T.StructField("top_category", T.IntegerType()),
        T.StructField("week", T.IntegerType()),
        T.StructField("records", T.LongType()),
        T.StructField("scale", T.LongType()),
        T.StructField("sales", T.LongType()),
    ]
)

RISING_STARS = T.StructType(
    [
        T.StructField("window_start", T.IntegerType()),
        T.StructField("item_id", T.LongType()),
        T.StructField("top_category", T.IntegerType()),
        T.StructField("sales_before", T.LongType()),
        T.StructField("rank_before", T.IntegerType()),
        T.StructField("cutoff_before", T.IntegerType()),
        T.StructField("sales_after", T.LongType()),
        T.StructField("rank_after", T.IntegerType()),
        T.StructField("cutoff_after", T.IntegerType()),
        T.StructField("rising", T.BooleanType()),
        T.StructField("records_before", T.LongType()),
        T.StructField("scale_last", T.LongType()),
    ]
)

MDSW = T.StructType(
    [
        T.StructField("window_start", T.IntegerType()),
        T.StructField("item_id", T.LongType()),
        T.StructField("rising", T.BooleanType()),
        T.StructField("records_before", T.LongType()),
        T.StructField("mdsw", T.LongType()),
    ]
)

HUB_NODES = T.StructType(
    [
        T.StructField("top_category", T.IntegerType()),  # null: hubs over all categories
        T.StructField("user_id", T.LongType()),
        T.StructField("records_sent", T.LongType()),
        T.StructField("threshold", T.LongType()),
    ]
)

HUB_COUNTS = T.StructType(
    [
        T.StructField("window_start", T.IntegerType()),
        T.StructField("item_id", T.LongType()),
        T.StructField("rising", T.BooleanType()),
        T.StructField("records_before", T.LongType()),
        T.StructField("hubs", T.LongType()),
    ]
)

HUB_ITEM_SALES = T.StructType(
    [
        T.StructField("item_id", T.LongType()),
        T.StructField("top_category", T.IntegerType()),
        T.StructField("shared_by_hub", T.BooleanType()),
        T.StructField("records", T.LongType()),
        T.StructField("sales", T.LongType()),
    ]
)

HUB_SALES = T.StructType(
    [
        T.StructField("top_category", T.IntegerType()),
        T.StructField("shared_by_hub", T.BooleanType()),
        T.StructField("items", T.LongType()),
        T.StructField("mean_sales", T.DoubleType()),
        T.StructField("sd_sales", T.DoubleType()),
        T.StructField("mean_records", T.DoubleType()),
    ]
)

SCALE_VS_SALES = T.StructType(
    [
        T.StructField("scale", T.LongType()),  # the last value means "cap or more"
        T.StructField("item_weeks", T.LongType()),
        T.StructField("mean_sales", T.DoubleType()),
        T.StructField("sd_sales", T.DoubleType()),
    ]
)

SCALE_SALES_WEEKLY = T.StructType(
    [
        T.StructField("week", T.IntegerType()),
        T.StructField("items", T.LongType()),
        T.StructField("mean_scale", T.DoubleType()),
        T.StructField("mean_sales", T.DoubleType()),
    ]
)

NEXT_WEEK_SALES = T.StructType(
    [
        T.StructField("week", T.IntegerType()),
        T.StructField("reference_sales", T.LongType()),
        T.StructField("next_week_sales", T.LongType()),
        T.StructField("items", T.LongType()),
    ]
)

SCALE_FLUCTUATION = T.StructType(
    [
        T.StructField("window_start", T.IntegerType()),
        T.StructField("item_id", T.LongType()),
        T.StructField("rising", T.BooleanType()),
        T.StructField("scale_last", T.LongType()),
        T.StructField("at_average", T.BooleanType()),
        T.StructField("weeks", T.IntegerType()),
        T.StructField("fluctuation_sd", T.DoubleType()),
    ]
)


def _typed(df: DataFrame, schema: T.StructType) -> DataFrame:
    return df.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])


def item_weekly(
    shares: DataFrame, purchases: DataFrame, items: DataFrame, weeks: int
) -> DataFrame:
    """The zero-filled item x week grid (``ITEM_WEEKLY``) for items with any share or sale.

    ``shares`` and ``purchases`` carry ``week`` (``common.with_week``); weeks run 1..``weeks``.
    """
    diffusion = shares.groupBy("item_id", "week").agg(
        F.count(F.lit(1)).alias("records"), F.countDistinct("receiver_id").alias("scale")
    )
    sales = purchases.groupBy("item_id", "week").agg(F.count(F.lit(1)).alias("sales"))
    active = diffusion.select("item_id").unionByName(sales.select("item_id")).distinct()
    spark = shares.sparkSession
    grid = active.crossJoin(
        spark.range(1, weeks + 1).select(F.col("id").cast("int").alias("week"))
    )
    return _typed(
        grid.join(diffusion, ["item_id", "week"], "left")
        .join(sales, ["item_id", "week"], "left")
        .join(items.select("item_id", "top_category"), "item_id", "left")
        .fillna(0, subset=["records", "scale", "sales"]),
        ITEM_WEEKLY,
    )


def window_starts(
    weeks: int, before_weeks: int = 4, after_weeks: int = 2, step: int = 1
) -> list[int]:
    """First weeks of every sliding window that fits inside weeks 1..``weeks``."""
    return list(range(1, weeks - before_weeks - after_weeks + 2, step))


def rising_stars(
    weekly: DataFrame,
    items: DataFrame,
    starts: list[int],
    before_weeks: int = 4,
    after_weeks: int = 2,
    before_permille: float = 3.0,
    after_permille: float = 1.0,
) -> DataFrame:
    """Rising-star label per (window, item) with the ranks behind it (``RISING_STARS``)."""
    spark: SparkSession = weekly.sparkSession
    windows = spark.createDataFrame([(w,) for w in starts], "window_start int")
    last_before = F.col("window_start") + before_weeks - 1
    in_before = F.col("week").between(F.col("window_start"), last_before)
    in_after = F.col("week").between(last_before + 1, last_before + after_weeks)
    per_window = (
        weekly.join(F.broadcast(windows), in_before | in_after)
        .groupBy("window_start", "item_id", "top_category")
        .agg(
            F.sum(F.when(in_before, F.col("sales")).otherwise(0)).alias("sales_before"),
            F.sum(F.when(in_after, F.col("sales")).otherwise(0)).alias("sales_after"),
            F.sum(F.when(in_before, F.col("records")).otherwise(0)).alias("records_before"),
            F.sum(F.when(F.col("week") == last_before, F.col("scale")).otherwise(0)).alias(
                "scale_last"
            ),
        )
    )
    category_items = items.groupBy("top_category").agg(F.count(F.lit(1)).alias("_n"))
    by_category = Window.partitionBy("window_start", "top_category")
    ranked = (
        per_window.join(F.broadcast(category_items), "top_category", "left")
        .withColumn("cutoff_before", F.ceil(F.col("_n") * before_permille / 1000.0))
        .withColumn("cutoff_after", F.ceil(F.col("_n") * after_permille / 1000.0))
        .withColumn("rank_before", F.rank().over(by_category.orderBy(F.desc("sales_before"))))
        .withColumn("rank_after", F.rank().over(by_category.orderBy(F.desc("sales_after"))))
    )
    top_before = (F.col("sales_before") > 0) & (F.col("rank_before") <= F.col("cutoff_before"))
    top_after = (F.col("sales_after") > 0) & (F.col("rank_after") <= F.col("cutoff_after"))
    return _typed(ranked.withColumn("rising", ~top_before & top_after), RISING_STARS)


def mdsw(weekly: DataFrame, labels: DataFrame, before_weeks: int = 4) -> DataFrame:
    """Max |scale difference| between consecutive weeks inside each window's first weeks."""
    diffs = weekly.withColumn(
        "diff",
        F.abs(
            F.col("scale")
            - F.lag("scale").over(Window.partitionBy("item_id").orderBy("week"))
        ),
    ).where(F.col("diff").isNotNull())
    keyed = labels.select("window_start", "item_id", "rising", "records_before")
    # diff at week m compares m with m-1: both inside the window means m in (w0, w0+before-1].
    inside = F.col("week").between(F.col("window_start") + 1,
                                   F.col("window_start") + before_weeks - 1)
    return _typed(
        keyed.join(diffs.select("item_id", "week", "diff"), "item_id")
        .where(inside)
        .groupBy("window_start", "item_id", "rising", "records_before")
        .agg(F.max("diff").alias("mdsw")),
        MDSW,
    )


def hub_threshold(counts: DataFrame, percent: float, *keys: str) -> DataFrame:
    """Per key group, the smallest ``records_sent`` that puts a user in the top ``percent``.

    ``ceil(percent / 100 * users)`` users are hubs (at least one); users tied with the last
    one are hubs too. Works on the histogram of counts, which is small, not on users.
    """
    hist = counts.groupBy(*keys, "records_sent").agg(F.count(F.lit(1)).alias("_users"))
    desc = Window.partitionBy(*keys).orderBy(F.desc("records_sent"))
    total = Window.partitionBy(*keys)
    return (
        hist.withColumn("_above", F.sum("_users").over(desc) - F.col("_users"))
        .withColumn("_k", F.ceil(F.sum("_users").over(total) * percent / 100.0))
        .where(F.col("_above") < F.col("_k"))
        .groupBy(*keys)
        .agg(F.min("records_sent").alias("threshold"))
    )


def hub_nodes(shares: DataFrame, items: DataFrame, percent: float = 1.0) -> DataFrame:
    """Hub users: top ``percent`` of senders by share records, overall and per top category.

    The population is the users who sent at least one record (overall, or in the category).
    """
    overall = shares.groupBy(F.col("sender_id").alias("user_id")).agg(
        F.count(F.lit(1)).alias("records_sent")
    )
    per_category = (
        shares.join(items.select("item_id", "top_category"), "item_id")
        .groupBy("top_category", F.col("sender_id").alias("user_id"))
        .agg(F.count(F.lit(1)).alias("records_sent"))
    )
    overall_hubs = (
        overall.crossJoin(hub_threshold(overall, percent))
        .where(F.col("records_sent") >= F.col("threshold"))
        .withColumn("top_category", F.lit(None).cast("int"))
    )
    category_hubs = (
        per_category.join(hub_threshold(per_category, percent, "top_category"), "top_category")
        .where(F.col("records_sent") >= F.col("threshold"))
    )
    return _typed(overall_hubs.unionByName(category_hubs), HUB_NODES)


def hub_counts(
    shares: DataFrame, hubs: DataFrame, labels: DataFrame, before_weeks: int = 4
) -> DataFrame:
    """Distinct overall hubs in each item's diffusion graph (senders and receivers) per window.

    ``shares`` carries ``week``; only the window's first ``before_weeks`` weeks count.
    """
    overall = hubs.where(F.col("top_category").isNull()).select("user_id")
    members = shares.select("item_id", "week", F.col("sender_id").alias("user_id")).unionByName(
        shares.select("item_id", "week", F.col("receiver_id").alias("user_id"))
    )
    hub_members = members.join(F.broadcast(overall), "user_id").distinct()
    keyed = labels.select("window_start", "item_id", "rising", "records_before")
    inside = F.col("week").between(
        F.col("window_start"), F.col("window_start") + before_weeks - 1
    )
    counted = (
        keyed.join(hub_members, "item_id")
        .where(inside)
        .groupBy("window_start", "item_id")
        .agg(F.countDistinct("user_id").alias("hubs"))
    )
    return _typed(
        keyed.join(counted, ["window_start", "item_id"], "left").fillna(0, subset=["hubs"]),
        HUB_COUNTS,
    )


def hub_item_sales(
    shares: DataFrame, purchases: DataFrame, items: DataFrame, hubs: DataFrame
) -> DataFrame:
    """Per shared item: whether a hub of the item's own top category sent it, records, sales."""
    category_hubs = hubs.where(F.col("top_category").isNotNull()).select(
        "top_category", F.col("user_id").alias("sender_id"), F.lit(True).alias("_hub")
    )
    per_item = (
        shares.join(items.select("item_id", "top_category"), "item_id")
        .join(F.broadcast(category_hubs), ["top_category", "sender_id"], "left")
        .groupBy("item_id", "top_category")
        .agg(
            F.count(F.lit(1)).alias("records"),
            F.coalesce(F.max("_hub"), F.lit(False)).alias("shared_by_hub"),
        )
    )
    sales = purchases.groupBy("item_id").agg(F.count(F.lit(1)).alias("sales"))
    return _typed(
        per_item.join(sales, "item_id", "left").fillna(0, subset=["sales"]), HUB_ITEM_SALES
    )


def hub_sales(item_sales: DataFrame) -> DataFrame:
    """Mean sales of items shared by hubs vs not, per top category (RiseNet Fig. 2d)."""
    return _typed(
        item_sales.groupBy("top_category", "shared_by_hub").agg(
            F.count(F.lit(1)).alias("items"),
            F.avg("sales").alias("mean_sales"),
            F.stddev_samp("sales").alias("sd_sales"),
            F.avg("records").alias("mean_records"),
        ),
        HUB_SALES,
    )


def scale_vs_sales(weekly: DataFrame, cap: int = 50) -> DataFrame:
    """Mean weekly sales by weekly diffusion scale (item-weeks with scale >= 1, capped)."""
    return _typed(
        weekly.where(F.col("scale") > 0)
        .withColumn("scale", F.least(F.col("scale"), F.lit(cap)))
        .groupBy("scale")
        .agg(
            F.count(F.lit(1)).alias("item_weeks"),
            F.avg("sales").alias("mean_sales"),
            F.stddev_samp("sales").alias("sd_sales"),
        ),
        SCALE_VS_SALES,
    )


def scale_sales_weekly(weekly: DataFrame) -> DataFrame:
    """Per week: mean diffusion scale and mean sales over the active items."""
    return _typed(
        weekly.groupBy("week").agg(
            F.count(F.lit(1)).alias("items"),
            F.avg("scale").alias("mean_scale"),
            F.avg("sales").alias("mean_sales"),
        ),
        SCALE_SALES_WEEKLY,
    )


def next_week_sales(weekly: DataFrame) -> DataFrame:
    """RiseNet Fig. 3 (left): next-week sales of items whose sales equal the week's average.

    The average is the rounded mean over items that sold in the week.
    """
    nxt = weekly.withColumn(
        "next_sales", F.lead("sales").over(Window.partitionBy("item_id").orderBy("week"))
    ).where(F.col("next_sales").isNotNull())
    average = (
        weekly.where(F.col("sales") > 0)
        .groupBy("week")
        .agg(F.round(F.avg("sales")).cast("long").alias("reference_sales"))
    )
    return _typed(
        nxt.join(F.broadcast(average), "week")
        .where(F.col("sales") == F.col("reference_sales"))
        .groupBy("week", "reference_sales", F.col("next_sales").alias("next_week_sales"))
        .agg(F.count(F.lit(1)).alias("items")),
        NEXT_WEEK_SALES,
    )


def scale_fluctuation(
    weekly: DataFrame,
    labels: DataFrame,
    before_weeks: int = 4,
    history_weeks: int = 6,
    tolerance: float = 0.5,
) -> DataFrame:
    """RiseNet Fig. 3 (right): sd of weekly scale over the ``history_weeks`` weeks ending at the
    window's last "before" week (clipped at week 1), per (window, item).

    ``at_average`` marks items whose last-week scale is within ``tolerance`` (relative) of
    the window's rounded mean scale over items with scale >= 1 that week: the paper's "same
    diffusion scale as average". The paper's exact equality leaves almost no rising star in a
    small world, hence the band (``tolerance=0`` is exact equality).
    """
    last = F.col("window_start") + before_weeks - 1
    keyed = labels.select("window_start", "item_id", "rising", "scale_last")
    history = (
        keyed.join(weekly.select("item_id", "week", "scale"), "item_id")
        .where(F.col("week").between(last - history_weeks + 1, last))
        .groupBy("window_start", "item_id", "rising", "scale_last")
        .agg(
            F.count(F.lit(1)).alias("weeks"),
            F.coalesce(F.stddev_pop("scale"), F.lit(0.0)).alias("fluctuation_sd"),
        )
    )
    average = (
        labels.where(F.col("scale_last") > 0)
        .groupBy("window_start")
        .agg(F.round(F.avg("scale_last")).cast("long").alias("_avg"))
    )
    return _typed(
        history.join(F.broadcast(average), "window_start", "left").withColumn(
            "at_average",
            F.coalesce(
                (F.col("scale_last") > 0)
                & (F.abs(F.col("scale_last") - F.col("_avg")) <= F.col("_avg") * tolerance),
                F.lit(False),
            ),
        ),
        SCALE_FLUCTUATION,
    )


def permille_cutoff(items_in_category: int, permille: float) -> int:
    """The number of top slots: ``ceil(permille / 1000 * n)`` (documented in the module)."""
    return math.ceil(items_in_category * permille / 1000.0)
