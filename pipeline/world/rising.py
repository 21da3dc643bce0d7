"""E5, rising stars: bursty diffusion and hub attention before an outside demand surge.

Every ``rising_every``-th item (offset ``137 % rising_every``) is a rising star when E5 is on;
by default one item in 2000 rises, at least one per top category. Before the surge their seeds
come in bursts in two of weeks 1-4 (the weekly diffusion scale fluctuates) and hubs pick them
``e5_hub_pick`` more often (others ``e5_other_pick``); after week 4 an outside demand surge adds
organic purchases so that each one's sales in weeks 5-6 are ``surge_factor`` times those of its
top category's k-th best ordinary item (k: the top ``surge_permille``). The surge keeps going
after week 6 at half strength.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipeline.world.config import WEEK_S, WorldConfig
from pipeline.world.draws import uniform


def pick_rising(cfg: WorldConfig, salt: str, key: Column) -> Column:
    """A rising star's item id, uniform over the stars."""
    n = max(1, (cfg.n_items - cfg.rising_offset - 1) // cfg.rising_every + 1)
    k = (uniform(cfg.seed, salt, key) * n).cast("long")
    return k * cfg.rising_every + cfg.rising_offset


def burst_seed_times(seeds: DataFrame, cfg: WorldConfig) -> DataFrame:
    """Move the rising stars' seeds of weeks 1-4 into two of those weeks (per item), keeping
    their time of week. ``seeds`` has ``item_id``, ``rising``, ``seed_key`` and ``t``."""
    s = cfg.seed
    burst_week = (
        F.pmod(F.xxhash64(F.lit(s), F.col("item_id")), F.lit(4))
        + (uniform(s, "s-burst", "seed_key") < 0.5).cast("int") * 2
    ) % 4
    # u * 7 * 86400 rounds twice, u * WEEK_S once: a seed's time is this exact expression
    in_week = (uniform(s, "s-burst-t", "seed_key") * 7 * 86400).cast("long")
    return seeds.withColumn(
        "t",
        F.when(
            F.col("rising") & (F.col("t") < 4 * WEEK_S),
            burst_week * WEEK_S + in_week,
        ).otherwise(F.col("t")),
    )


def _surge_targets(cfg: WorldConfig, item_df: DataFrame, sales: DataFrame) -> DataFrame:
    """(item_id, extra, ...) per rising star: the purchases it needs in weeks 5-6 to reach
    ``surge_factor`` times its category's k-th best ordinary item (at least 3)."""
    window = sales.where((F.col("t") >= 4 * WEEK_S) & (F.col("t") < 6 * WEEK_S))
    per_item = window.groupBy("item_id").agg(F.count("*").alias("n"))
    cats = item_df.select("item_id", "top_category", "rising")
    k = max(1, math.ceil(cfg.surge_permille / 1000 * cfg.n_items / cfg.top_categories))
    ranked = (
        cats.where(~F.col("rising"))
        .join(per_item, "item_id", "left")
        .withColumn("n", F.coalesce(F.col("n"), F.lit(0)))
        .withColumn(
            "rank",
            F.row_number().over(Window.partitionBy("top_category").orderBy(F.desc("n"))),
        )
    )
    threshold = ranked.where(F.col("rank") == k).select("top_category", F.col("n").alias("kth"))
    return (
        cats.where(F.col("rising"))
        .join(threshold, "top_category", "left")
        .join(per_item, "item_id", "left")
        .withColumn(
            "extra",
            F.greatest(
                F.lit(3),
                (F.coalesce(F.col("kth"), F.lit(1)) * cfg.surge_factor).cast("long")
                - F.coalesce(F.col("n"), F.lit(0)),
            ),
        )
    )


def surge(spark: SparkSession, cfg: WorldConfig, item_df: DataFrame, sales: DataFrame):
    """E5: outside demand after week 4 lifts each rising star into its top category's top
    ``surge_permille`` by sales in weeks 5-6: ``surge_factor`` times the sales of the category's
    k-th best ordinary item, k = ceil(surge_permille * items in the category).

    ``sales``: purchases so far (item_id, t). Returns extra purchases (user_id, item_id, t).
    """
    s = cfg.seed
    wk = WEEK_S
    targets = _surge_targets(cfg, item_df, sales)
    key = F.xxhash64(F.col("item_id"), F.col("k"))
    # the surge keeps going after week 6, at half strength
    return (
        targets.withColumn(
            "k",
            F.explode(
                F.sequence(
                    F.lit(1),
                    F.col("extra") + (F.col("extra") * max(0, cfg.weeks - 6) / 4).cast("long"),
                )
            ),
        )
        .withColumn("key", key)
        .withColumn("user_id", (uniform(s, "surge-user", "key") * cfg.n_users).cast("long"))
        .withColumn(
            "t",
            F.when(
                F.col("k") <= F.col("extra"),
                (uniform(s, "surge-t", "key") * 2 * wk).cast("long") + 4 * wk,
            ).otherwise(
                (uniform(s, "surge-t2", "key") * max(1, cfg.weeks - 6) * wk).cast("long") + 6 * wk
            ),
        )
        .select("user_id", "item_id", "t")
    )
