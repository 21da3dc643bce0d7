"""Users, items, organic browses and the seeds of the share cascades.

* **Users** live in communities of ``community_size``; position ``pos`` inside a community sets
  how often they are picked as receivers (low positions are popular) and their consumption tier
  ``1 + pos % 5``. Sending activity is Pareto; a ``hub_fraction`` of users are hubs whose
  activity is multiplied by ``hub_boost`` and who share to more receivers.
* **Items** have a price tier ``1 + id % 5`` and a popularity rank ``id // 5`` inside it; price is
  log-normal around the tier's level; the price index is ``PI = 1 - 1 / (1 + (price/60)^0.8)``,
  monotone and non-linear, in (0, 1). Appeal (a latent purchase propensity) decays with rank.
  Top and leaf categories are hashed, except that the rising-star candidates (every
  ``rising_every``-th item) take turns over the top categories. Rising stars and their surge
  weeks are set here, see ``rising`` (E5 is the diffusion before the surge, not the surge).
* **Browses** are organic: a user views an item (Zipf over ranks); the browse converts with
  probability ``sigmoid(base_logit + appeal)``, the *browse model*. Its ``intent`` is 2 when the
  purchase follows within 1 hour, 1 within 1 day, else 0. With E8 on and "browse" in
  ``e8_views`` the browse's action and stay carry it (``browse_intent``): fewer views, clicks
  and searches, more favourites and add-to-carts, stays ``intent + 1`` times as long. With E8 on
  and "touch" in ``e8_views`` the touch session around the browse carries it (``touch_intent``,
  read by ``touches``). Otherwise both are 0 and the browse looks the same whatever follows.
* **Seeds** of cascades are browses too: a user who browsed (and maybe bought) an item shares
  it. With E6 on, hubs pick items from the top of the popularity ranks (high appeal); off, they
  pick like everyone else. With E7 on, seeds pick items of the sender's price tier
  (``e7_same_tier`` of the time).

Users' and items' attributes are pure functions of their ids (``user_attributes``,
``item_attributes``): no join is needed to know a receiver's community or an item's price.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline import schemas
from pipeline.world.clock import timestamp
from pipeline.world.config import WorldConfig
from pipeline.world.draws import exponential, normal, sigmoid, uniform
from pipeline.world.rising import burst_seed_times, pick_rising, star_index, surge_week


def _partitions(rows: int) -> int:
    return max(2, min(4000, rows // 400_000 + 1))


def user_attributes(cfg: WorldConfig, uid: Column) -> dict[str, Column]:
    """A user's hidden attributes, a pure function of the id: no join is ever needed."""
    s, size = cfg.seed, cfg.community_size
    pareto = F.pow(uniform(s, "activity", uid), F.lit(-1.0 / cfg.pareto_alpha))
    is_hub = uniform(s, "hub", uid) < cfg.hub_fraction
    pos = (uid % size).cast("int")
    return {
        "community": (uid / size).cast("long"),
        "pos": pos,
        "is_hub": is_hub,
        "activity": F.least(pareto, F.lit(60.0)) * F.when(is_hub, cfg.hub_boost).otherwise(1.0),
        "tier": (pos % 5 + 1).cast("int"),
    }


def item_attributes(cfg: WorldConfig, iid: Column) -> dict[str, Column]:
    """An item's attributes (public and hidden), a pure function of the id."""
    s = cfg.seed
    per_tier = cfg.n_items // 5
    tier = (iid % 5 + 1).cast("int")
    rank = (iid / 5).cast("long")
    log_price = F.lit(2.2) + tier * 0.55 + normal(s, "price", iid) * 0.35
    price = F.round(F.exp(log_price), 2)
    star = star_index(cfg, iid)
    # a star candidate's category is set so each (category, surge week) gets the same number
    top = F.when(
        star.isNotNull(), (star % cfg.top_categories).cast("int")
    ).otherwise((uniform(s, "top", iid) * cfg.top_categories).cast("int"))
    leaf = top * cfg.leaves_per_top + (uniform(s, "leaf", iid) * cfg.leaves_per_top).cast("int")
    appeal = (
        F.exp(-rank.cast("double") / F.lit(max(1.0, 0.05 * per_tier))) * 0.8
        + normal(s, "appeal", iid) * 0.3
    ) * cfg.appeal_scale
    return {
        "price_tier": tier,
        "rank": rank,
        "price": price,
        "price_index": F.lit(1.0) - F.lit(1.0) / (F.pow(price / 60.0, 0.8) + 1),
        "top_category": top,
        "leaf_category": leaf,
        "appeal": appeal,
        # every star surges; E5 adds the diffusion that announces it (``rising``)
        "rising": star.isNotNull(),
        "surge_week": F.when(star.isNotNull(), surge_week(cfg, star)),
    }


def with_item(df: DataFrame, cfg: WorldConfig, names=("appeal", "price", "price_index")):
    """Add item attributes by a broadcast join with the (small) item table: one hash lookup a
    row instead of recomputing a dozen hashes."""
    lookup = items(df.sparkSession, cfg).select("item_id", *names)
    return df.join(F.broadcast(lookup), "item_id")


def users(spark: SparkSession, cfg: WorldConfig) -> DataFrame:
    """All users with the generator's hidden attributes (activity, hub flag, community)."""
    s = cfg.seed
    uid = F.col("user_id")
    return (
        spark.range(cfg.n_users, numPartitions=_partitions(cfg.n_users))
        .withColumnRenamed("id", "user_id")
        .withColumns(user_attributes(cfg, uid))
        .withColumn("age_band", (uniform(s, "age", uid) * 7).cast("int") + 1)
        .withColumn("city_level", (uniform(s, "city", uid) * 5).cast("int") + 1)
        .withColumn(
            "registered_ts",
            timestamp(cfg, -(uniform(s, "reg", uid) * 3 * 365 * 86400).cast("long")),
        )
    )


def items(spark: SparkSession, cfg: WorldConfig) -> DataFrame:
    """All items with hidden appeal, popularity rank and rising-star flag."""
    return (
        spark.range(cfg.n_items, numPartitions=_partitions(cfg.n_items * 50))
        .withColumnRenamed("id", "item_id")
        .withColumns(item_attributes(cfg, F.col("item_id")))
    )


def pick_item(cfg: WorldConfig, salt: str, key: Column, tier: Column, concentrate: Column):
    """Item id by Zipf over popularity ranks inside a price tier (tier in 1..5)."""
    per_tier = cfg.n_items // 5
    u = uniform(cfg.seed, salt, key)
    rank = F.least((F.pow(u, concentrate) * per_tier).cast("long"), F.lit(per_tier - 1))
    return rank * 5 + (tier - 1)


def browses(spark: SparkSession, cfg: WorldConfig) -> DataFrame:
    """Organic browses with the browse-model purchase decision (``buy_t``: null = no buy)."""
    s = cfg.seed
    n = int(cfg.share_records * cfg.browses_per_record)
    weeks_s = cfg.weeks * 7 * 86400
    bid = F.col("browse_id")
    tier = (uniform(s, "b-tier", bid) * 5).cast("int") + 1
    base = (
        spark.range(n, numPartitions=_partitions(n))
        .withColumnRenamed("id", "browse_id")
        .withColumn("user_id", (uniform(s, "b-user", bid) * cfg.n_users).cast("long"))
        .withColumn("item_id", pick_item(cfg, "b-item", bid, tier, F.lit(cfg.item_zipf)))
        .withColumn("t", (uniform(s, "b-time", bid) * weeks_s).cast("long"))
    )
    return browse_outcome(with_item(base, cfg), cfg)


def browse_outcome(df: DataFrame, cfg: WorldConfig) -> DataFrame:
    """Browse-model purchase decision (``buy_t``), its ``intent`` (2: a purchase within 1 hour,
    1: within 1 day, 0: none), the intent each view carries (``browse_intent``,
    ``touch_intent``: ``intent`` where E8 plants it in that view, else 0), and action/page/stay,
    which follow ``browse_intent``."""
    s = cfg.seed
    bid = F.col("browse_id")
    p_buy = sigmoid(F.lit(cfg.base_logit) + F.col("appeal"))
    delay = exponential(s, "b-delay", cfg.buy_delay_hours * 3600, bid).cast("long")
    bought = uniform(s, "b-buy", bid) < p_buy
    df = df.withColumn("buy_t", F.when(bought, F.col("t") + delay))
    intent = (
        F.when(F.col("buy_t").isNull(), 0)
        .when(F.col("buy_t") - F.col("t") <= 3600, 2)
        .when(F.col("buy_t") - F.col("t") <= 86400, 1)
        .otherwise(0)
    )
    df = (
        df.withColumn("intent", intent)
        .withColumn("browse_intent", F.col("intent") if cfg.intent_in("browse") else F.lit(0))
        .withColumn("touch_intent", F.col("intent") if cfg.intent_in("touch") else F.lit(0))
    )
    carried = F.col("browse_intent")
    u_act = uniform(s, "b-action", bid)
    action = (
        F.when(u_act < F.lit(0.55) - carried * 0.2, "view")
        .when(u_act < F.lit(0.75) - carried * 0.2, "click")
        .when(u_act < F.lit(0.85) - carried * 0.1, "search")
        .when(u_act < 0.93, "favorite")
        .otherwise("cart")
    )
    pages = F.array(*[F.lit(p) for p in schemas.BROWSE_PAGES])
    page = F.element_at(
        pages, (uniform(s, "b-page", bid) * len(schemas.BROWSE_PAGES)).cast("int") + 1
    )
    stay = F.round(exponential(s, "b-stay", 40.0, bid) * (carried + 1), 1)
    return df.withColumn("action", action).withColumn("page", page).withColumn("stay_s", stay)


def _seed_rate(cfg: WorldConfig, user_df: DataFrame) -> float:
    """Seeds per unit of sending activity, so that the world hits its target size despite the
    heavy tails: one small aggregate over the users."""
    weight = F.col("activity") * F.when(F.col("is_hub"), cfg.records_per_seed(True)).otherwise(
        cfg.records_per_seed(False)
    )
    expected_per_unit = user_df.agg(F.sum(weight)).first()[0]
    return cfg.share_records / expected_per_unit


def _seed_item(cfg: WorldConfig, key: Column) -> Column:
    """The item a seed shares: its price tier follows the sender's with E7, hubs concentrate on
    the most popular items with E6, and with E5 some seeds share a rising star."""
    s = cfg.seed
    own_tier = F.col("tier") if cfg.on("E7") else (uniform(s, "s-tier", key) * 5).cast("int") + 1
    tier = F.when(uniform(s, "s-tier-keep", key) < cfg.e7_same_tier, own_tier).otherwise(
        (uniform(s, "s-tier2", key) * 5).cast("int") + 1
    )
    hub_zipf = cfg.item_zipf * (3.0 if cfg.on("E6") else 1.0)
    concentrate = F.when(F.col("is_hub"), F.lit(hub_zipf)).otherwise(F.lit(cfg.item_zipf))
    item = pick_item(cfg, "s-item", key, tier, concentrate)
    if cfg.on("E5"):
        pick = F.when(F.col("is_hub"), cfg.e5_hub_pick).otherwise(cfg.e5_other_pick)
        item = F.when(
            uniform(s, "s-rise", key) < pick, pick_rising(cfg, "s-rise-item", key)
        ).otherwise(item)
    return item


def seeds(cfg: WorldConfig, user_df: DataFrame) -> DataFrame:
    """Hop-0 sharers: users who browsed an item (and maybe bought it) and share it."""
    s = cfg.seed
    rate = _seed_rate(cfg, user_df)
    weeks_s = cfg.weeks * 7 * 86400
    count = (F.col("activity") * rate + uniform(s, "seed-count", "user_id")).cast("int")
    key = F.xxhash64(F.col("user_id"), F.col("k"))
    t = (uniform(s, "s-time", key) * weeks_s).cast("long")
    df = (
        user_df.select("user_id", "community", "pos", "tier", "is_hub", "activity")
        .where(count > 0)
        .withColumn("k", F.explode(F.sequence(F.lit(1), count)))
        .withColumn("seed_key", key)
        .withColumn("item_id", _seed_item(cfg, key))
        .withColumn("t", t)
    )
    df = with_item(df, cfg, ("appeal", "rising", "surge_week"))
    if cfg.on("E5"):
        df = burst_seed_times(df, cfg)
    bought = uniform(s, "s-bought", "seed_key") < sigmoid(F.lit(cfg.base_logit) + F.col("appeal"))
    delay = exponential(s, "s-buy-delay", 3600.0, "seed_key").cast("long")
    browse_before = (uniform(s, "s-browse", "seed_key") * 1800).cast("long") + 60
    return (
        df.withColumn("browse_t", F.col("t") - browse_before)
        .withColumn("bought", bought & F.lit(True))
        .withColumn("buy_t", F.when(bought, F.col("browse_t") + delay))
        .select(
            F.col("user_id").alias("sender_id"),
            F.col("community").alias("s_community"),
            F.col("tier").alias("s_tier"),
            F.col("is_hub").alias("s_hub"),
            "item_id",
            F.col("seed_key").alias("rid"),
            F.col("t").alias("share_t"),
            F.lit(False).alias("s_received"),
            F.col("bought").alias("s_bought"),
            "browse_t",
            "buy_t",
        )
    )
