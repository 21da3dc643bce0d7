"""E5, rising stars: bursty diffusion and hub attention before an outside demand surge.

Every ``rising_every``-th item (offset ``137 % rising_every``) is a star and surges, with E5
on or off: E5 is the diffusion before the surge, which is what a model can read. Star ``j``
(``star_index``) belongs to top category ``j % C`` and surges in week
``5 + (j // C) % len(surge_weeks)`` (``surge_week``; weeks from 1, see
``WorldConfig.surge_weeks``), so every (category, surge week) gets the same number of stars:
by default as many as the category has top slots after a window.

With E5 on, a star is quiet, then loud before its surge week s: every seed of it that falls
before week s is moved into two of the four weeks s-4 .. s-1 (per item; the weekly diffusion
scale fluctuates), and hubs pick stars ``e5_hub_pick`` of their seeds (others
``e5_other_pick``). From week s an outside demand surge adds organic purchases so that its
sales in weeks s and s+1 are ``surge_factor`` times those of its top category's best ordinary
item over the same two weeks (at least 3); the surge keeps going after week s+1 at half
strength. So a star is a rising star of the window that starts at week s-4: not in the top
before, in the top after.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.world.config import WEEK_S, WorldConfig
from pipeline.world.draws import uniform


def star_index(cfg: WorldConfig, iid: Column) -> Column:
    """``j`` for the j-th star candidate (``iid = j * rising_every + rising_offset``), else null."""
    is_star = iid % cfg.rising_every == cfg.rising_offset
    return F.when(is_star, ((iid - cfg.rising_offset) / cfg.rising_every).cast("long"))


def surge_week(cfg: WorldConfig, star: Column) -> Column:
    """The week (from 1) in which star ``star`` (``star_index``) starts to surge."""
    weeks = cfg.surge_weeks
    return (F.lit(weeks.start) + (star / cfg.top_categories).cast("long") % len(weeks)).cast("int")


def pick_rising(cfg: WorldConfig, salt: str, key: Column) -> Column:
    """A rising star's item id, uniform over the stars."""
    n = max(1, (cfg.n_items - cfg.rising_offset - 1) // cfg.rising_every + 1)
    k = (uniform(cfg.seed, salt, key) * n).cast("long")
    return k * cfg.rising_every + cfg.rising_offset


def burst_seed_times(seeds: DataFrame, cfg: WorldConfig) -> DataFrame:
    """Move a rising star's seeds that fall before its surge week s into two of the weeks
    s-4 .. s-1 (per item), keeping their time of week. ``seeds`` has ``item_id``, ``rising``,
    ``surge_week``, ``seed_key`` and ``t``."""
    s = cfg.seed
    burst_week = (
        F.pmod(F.xxhash64(F.lit(s), F.col("item_id")), F.lit(4))
        + (uniform(s, "s-burst", "seed_key") < 0.5).cast("int") * 2
    ) % 4
    first = (F.col("surge_week") - 5).cast("long")  # week s-4, counted from 0
    # u * 7 * 86400 rounds twice, u * WEEK_S once: a seed's time is this exact expression
    in_week = (uniform(s, "s-burst-t", "seed_key") * 7 * 86400).cast("long")
    return seeds.withColumn(
        "t",
        F.when(
            F.col("rising") & (F.col("t") < (F.col("surge_week") - 1) * WEEK_S),
            (first + burst_week) * WEEK_S + in_week,
        ).otherwise(F.col("t")),
    )


def _surge_targets(cfg: WorldConfig, item_df: DataFrame, sales: DataFrame) -> DataFrame:
    """(item_id, surge_week, extra) per rising star: the purchases it needs in weeks s, s+1 to
    reach ``surge_factor`` times its category's best ordinary item there (at least 3)."""
    weekly = sales.groupBy("item_id", (F.col("t") / WEEK_S).cast("int").alias("wk")).agg(
        F.count(F.lit(1)).alias("n")
    )
    stars = item_df.where(F.col("rising")).select("item_id", "top_category", "surge_week")
    own = (
        stars.join(weekly, "item_id", "left")
        .where(F.col("wk").isNull() | F.col("wk").between(F.col("surge_week") - 1,
                                                          F.col("surge_week")))
        .groupBy("item_id", "top_category", "surge_week")
        .agg(F.sum(F.coalesce(F.col("n"), F.lit(0))).alias("n"))
    )
    spark = sales.sparkSession
    periods = spark.createDataFrame([(w,) for w in cfg.surge_weeks], "surge_week int")
    ordinary = item_df.where(~F.col("rising")).select("item_id", "top_category")
    best = (
        ordinary.join(weekly, "item_id")
        .crossJoin(F.broadcast(periods))
        .where(F.col("wk").between(F.col("surge_week") - 1, F.col("surge_week")))
        .groupBy("top_category", "surge_week", "item_id")
        .agg(F.sum("n").alias("n"))
        .groupBy("top_category", "surge_week")
        .agg(F.max("n").alias("best"))
    )
    return own.join(best, ["top_category", "surge_week"], "left").withColumn(
        "extra",
        F.greatest(
            F.lit(3),
            (F.coalesce(F.col("best"), F.lit(1)) * cfg.surge_factor).cast("long") - F.col("n"),
        ),
    )


def surge(spark: SparkSession, cfg: WorldConfig, item_df: DataFrame, sales: DataFrame):
    """E5: outside demand from each rising star's surge week s lifts it into its top category's
    top slots by sales in weeks s and s+1: ``surge_factor`` times the sales of the category's
    best ordinary item there. After week s+1 it goes on at half strength to the world's end.

    ``sales``: purchases so far (item_id, t). Returns extra purchases (user_id, item_id, t).
    """
    s = cfg.seed
    wk = WEEK_S
    targets = _surge_targets(cfg, item_df, sales)
    key = F.xxhash64(F.col("item_id"), F.col("k"))
    after = F.greatest(F.lit(0), F.lit(cfg.weeks) - F.col("surge_week") - 1)  # weeks after s+1
    start = (F.col("surge_week") - 1).cast("long") * wk
    return (
        targets.withColumn(
            "k",
            F.explode(
                F.sequence(F.lit(1), F.col("extra") + (F.col("extra") * after / 4).cast("long"))
            ),
        )
        .withColumn("key", key)
        .withColumn("user_id", (uniform(s, "surge-user", "key") * cfg.n_users).cast("long"))
        .withColumn(
            "t",
            F.when(
                F.col("k") <= F.col("extra"),
                (uniform(s, "surge-t", "key") * 2 * wk).cast("long") + start,
            ).otherwise(
                (uniform(s, "surge-t2", "key") * F.greatest(after, F.lit(1)) * wk).cast("long")
                + start + 2 * wk
            ),
        )
        .select("user_id", "item_id", "t")
    )
