"""The synthetic Taocode world: users, items, share cascades, purchases, browses and touches
with planted, switchable effects whose true strengths are recorded in ``truth/world``.

No public Taocode data exists, so every statistic and model is first tested here. Everything is
generated on the executors: each random draw is a hash of (seed, salt, the row's identity), so a
seed gives the same tables whatever the partitioning, and nothing loops over users or records on
the driver. The only driver-side loop is over the fixed number of cascade hops.

The world, in order of generation:

* **Users** live in communities of ``community_size``; position ``pos`` inside a community sets
  how often they are picked as receivers (low positions are popular) and their consumption tier
  ``1 + pos % 5``. Sending activity is Pareto; a ``hub_fraction`` of users are hubs whose
  activity is multiplied by ``hub_boost`` and who share to more receivers.
* **Items** have a price tier ``1 + id % 5`` and a popularity rank ``id // 5`` inside it; price is
  log-normal around the tier's level; the price index is ``PI = 1 - 1 / (1 + (price/60)^0.8)``,
  monotone and non-linear, in (0, 1). Appeal (a latent purchase propensity) decays with rank.
  Top and leaf categories are hashed. Every ``rising_every``-th item (offset
  ``137 % rising_every``) is a rising star when E5 is on.
* **Browses** are organic: a user views an item (Zipf over ranks); the browse converts with
  probability ``sigmoid(base_logit + appeal)``, the *browse model*. Seeds of cascades are browses
  too: a user who browsed (and maybe bought) an item shares it.
* **Cascades**: each seed sender shares with ~``fanout`` receivers, mostly in their community;
  each record (the time the receiver opens the Taocode) converts with the *share model*, and its
  receiver re-shares with a probability that is higher if they bought. ``hops`` rounds.
* **Share model**, the logit of a purchase within ``buy_delay`` after a record::

      base_logit + appeal
        + E1 * (e1_lift + e1_pi_slope * PI)                 receiving a share, more for dear items
        + E2 * e2_gap * (log1p prior degree_sender - log1p prior degree_receiver)   gap
        + E3 * e3_close * log1p(min(10, receiver's neighbours who adopted the item earlier))
        + E4 * sender_received * (e4_received + e4_bought * sender_bought)     2-hop
        + E6 * e6_hub * sender_is_hub
        + E9 * e9_tie * tie_score(sender -> receiver shares of dear / cheap items, 4 weeks before)

  With an effect off its term is zero. With E1 off a share converts exactly like a browse.
  E2 and E3 act on what Fig. 2(b) and 2(c) and ``observe`` measure. E2's degree: distinct
  in- plus out-neighbours over the share edges first used in weeks before the record's (gap
  clipped to [-3, 3]). E3's count: the receiver's neighbours in the merged share graph who
  received the item and bought it (first purchase at or after receipt) before the record. A
  record's outcome cannot wait for the whole network, so with E2, E3 or E9 on the cascades are
  generated twice from the same random draws: first without E2, E3 and E9, giving the network
  whose prior degrees E2 reads (``prior_degrees``) and whose neighbours E3 counts
  (``network_neighbours``) and whose ties E9 reads, then with them. E2, E3 and E9 change only
  which records convert and, through re-sharing, a few subtrees, so the degrees E2 reads are the
  observed ones for most records (92 % on ``test_world``'s world); E3 counts the adopters of
  earlier hops (not those of the same hop). Before: E2 read latent log *sending activity*, of
  which hubs have 40 times more while an ordinary user's observed degree is mostly in-degree, so
  at the same observed gap hub senders carried a larger true gap and E2 alone made the hub test
  fire with E6 off; E3 counted buyers in the receiver's latent community, more of whom lie
  beyond the observed neighbours deeper in a cascade, so E3 alone made the 2-hop test fire with
  E4 off.
  Nothing acts backwards in time: E3 counts neighbours who bought the item *before* the
  record (in earlier hops; never the receiver), and E4's ``sender_bought`` is a
  purchase by a re-sharer before they re-shared. A cascade seed never received the item, so
  its own purchase is not a 2-hop signal. (Before, E3 counted every buyer of earlier hops
  whatever the time, which made it a function of the hop and leaked into the 2-hop and
  degree tests; a seed's purchase, possibly after its share, counted as E4.)
* **E9** a tie's price history: a share converts better when its sender shared *dear* items
  (price index >= 0.5) with this receiver in the four weeks before the record's week, and worse
  when they shared cheap ones: ``tie_score = clip(dear - cheap, -3, 3) / 3`` in [-1, 1], 0
  without history (``pipeline.stats.common.tie_history``, the function ``observe`` uses). It
  does not depend on the item being shared, and of all the share graph's traces only the
  weekly Taocode edge features (PI bins per pair and week) carry it: it is the mechanism the
  InfNet paper credits those features with. Like E2 and E3 it reads the network of the first
  pass (``tie_history`` of its records); re-sharing changes a few subtrees in between.
* **E5** rising stars: before the surge their seeds come in bursts in two of weeks 1-4 (the
  weekly diffusion scale fluctuates) and hubs pick them ``e5_hub_pick`` more often; after week 4
  an outside demand surge adds organic purchases so that each one's sales in weeks 5-6 are
  ``surge_factor`` times those of its top category's k-th best ordinary item (k: the top
  ``surge_permille``). By default one item in 2000 rises, at least one per top category.
* **E6** hubs pick items from the top of the popularity ranks (high appeal) and their receivers
  convert more (``e6_hub``). Off: hubs pick items like everyone else.
* **E7** receivers are chosen from the sender's consumption tier (``e7_same_tier``) and seeds
  pick items of the sender's price tier, so receivers buy in their neighbours' tiers: spending
  drifts toward the share neighbours'.
* **E8** touch sessions before a browse carry the intent of what follows: sessions followed by a
  purchase within 1 hour are long and rich in zoom / long-press / cart events, within 1 day
  moderately so. Off: sessions look the same whatever follows.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts.runs import run_digest
from pipeline import schemas
from pipeline.stats import common
from pipeline.stats.common import DEAR_PI, TIE_CAP, TIE_WEEKS

EFFECTS = ("E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9")

_TWO53 = float(2**53)
_RISING_OFFSET = 137


@dataclass
class WorldConfig:
    """Size, seed, effects and the true strengths of the planted mechanisms.

    Args:
        share_records: target number of share records (the result is within a few percent).
        seed: everything is a deterministic function of it.
        weeks: length of the world in weeks, starting on ``start`` (a Monday).
        effects: the planted effects switched on (subset of ``EFFECTS``).
    """

    share_records: int = 200_000
    seed: int = 7
    weeks: int = 12
    start: dt.date = dt.date(2026, 1, 5)
    effects: frozenset[str] = field(default_factory=lambda: frozenset(EFFECTS))
    # population
    users_per_record: float = 0.3
    items_per_record: float = 0.01
    min_items: int = 500
    community_size: int = 40
    top_categories: int = 10
    leaves_per_top: int = 8
    hub_fraction: float = 0.01
    hub_boost: float = 40.0
    pareto_alpha: float = 1.6
    # cascades
    hops: int = 3
    fanout: float = 2.0
    hub_fanout: float = 6.0
    in_community: float = 0.85
    reshare: float = 0.18
    reshare_bought: float = 0.45
    reshare_delay_days: float = 4.0
    item_zipf: float = 2.2
    browses_per_record: float = 0.4
    touch_session_rate: float = 0.12
    buy_delay_hours: float = 8.0
    seed_bought: float = 0.3
    # conversion model
    base_logit: float = -4.0
    appeal_scale: float = 1.0
    e1_lift: float = 0.35
    e1_pi_slope: float = 1.2
    e2_gap: float = 0.2
    e3_close: float = 0.6
    e4_received: float = 0.35
    e4_bought: float = 0.5
    e6_hub: float = 0.4
    e9_tie: float = 2.0
    e5_hub_pick: float = 0.03
    e5_other_pick: float = 0.003
    rising_every: int = 0  # 0: one star per 2000 items, at least one per top category
    surge_factor: float = 1.5
    surge_permille: float = 1.0
    e7_same_tier: float = 0.7

    def __post_init__(self) -> None:
        unknown = set(self.effects) - set(EFFECTS)
        if unknown:
            raise ValueError(f"unknown effects {sorted(unknown)}; known: {EFFECTS}")
        if self.start.weekday() != 0:
            raise ValueError(f"start must be a Monday, got {self.start} ({self.start:%A})")
        if self.share_records < 100:
            raise ValueError("share_records must be at least 100")
        self.effects = frozenset(self.effects)
        self._resolve_rising_every()

    @property
    def n_users(self) -> int:
        n = max(self.community_size * 10, int(self.share_records * self.users_per_record))
        return n - n % self.community_size

    @property
    def n_items(self) -> int:
        n = max(self.min_items, int(self.share_records * self.items_per_record))
        return n - n % 5

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time()) + dt.timedelta(weeks=self.weeks)

    def _resolve_rising_every(self) -> None:
        if self.rising_every <= 0:
            stars = max(self.top_categories, self.n_items // 2000)
            self.rising_every = max(1, self.n_items // stars)

    @property
    def rising_offset(self) -> int:
        """Rising stars are the items with ``id % rising_every == rising_offset``."""
        return _RISING_OFFSET % self.rising_every

    def on(self, effect: str) -> bool:
        return effect in self.effects

    def records_per_seed(self, hub: bool) -> float:
        """Expected share records of a cascade seeded by a hub or a normal user."""

        def receivers(n: float) -> float:  # E[1 + floor(Exp(1) * (n - 1))]
            return 1 + 1 / (math.exp(1 / (n - 1)) - 1) if n > 1 else 1.0

        later = (1 - self.hub_fraction) * receivers(self.fanout) + self.hub_fraction * receivers(
            self.hub_fanout
        )
        p_buy = 0.15  # typical share conversion with the default effects
        reshare = (1 - p_buy) * self.reshare + p_buy * self.reshare_bought
        total, level = 0.0, receivers(self.hub_fanout if hub else self.fanout)
        for _ in range(self.hops):
            total += level
            level *= reshare * later
        # Records past the world's end are dropped: the late ones of the last weeks.
        return total * 0.95


def parse_effects(text: str) -> frozenset[str]:
    """``"all"``, ``"none"`` or a comma list like ``"E1,E3"`` (``-E2`` removes from all)."""
    text = text.strip()
    if text.lower() == "all":
        return frozenset(EFFECTS)
    if text.lower() == "none":
        return frozenset()
    parts = [p.strip().upper() for p in text.split(",") if p.strip()]
    if parts and all(p.startswith("-") for p in parts):
        chosen = set(EFFECTS) - {p[1:] for p in parts}
    else:
        chosen = set(parts)
    unknown = chosen - set(EFFECTS)
    if unknown:
        raise ValueError(f"unknown effects {sorted(unknown)}; use {', '.join(EFFECTS)}")
    return frozenset(chosen)


# -- randomness -------------------------------------------------------------------------------


def uniform(seed: int, salt: str, *cols: Column | str) -> Column:
    """A uniform draw in [0, 1): a hash of (seed, salt, cols), the same on every executor."""
    h = F.xxhash64(F.lit(seed), F.lit(salt), *[F.col(c) if isinstance(c, str) else c for c in cols])
    return (F.pmod(h, F.lit(2**53)) + F.lit(0.5)) / F.lit(_TWO53)


def exponential(seed: int, salt: str, mean: float, *cols: Column | str) -> Column:
    return -F.log(uniform(seed, salt, *cols)) * F.lit(mean)


def normal(seed: int, salt: str, *cols: Column | str) -> Column:
    """Box-Muller from two hashed uniforms."""
    u1 = uniform(seed, salt + ":a", *cols)
    u2 = uniform(seed, salt + ":b", *cols)
    return F.sqrt(-2 * F.log(u1)) * F.cos(2 * math.pi * u2)


def _sigmoid(x: Column) -> Column:
    return F.lit(1.0) / (F.lit(1.0) + F.exp(-x))


def _ts(cfg: WorldConfig, seconds: Column) -> Column:
    start = int(dt.datetime.combine(cfg.start, dt.time(), tzinfo=dt.UTC).timestamp())
    return F.timestamp_seconds(F.lit(start) + seconds)


def _partitions(rows: int) -> int:
    return max(2, min(4000, rows // 400_000 + 1))


# -- entities ---------------------------------------------------------------------------------


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
    top = (uniform(s, "top", iid) * cfg.top_categories).cast("int")
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
        "rising": (iid % cfg.rising_every == cfg.rising_offset) & F.lit(cfg.on("E5")),
    }


def _with_item(df: DataFrame, cfg: WorldConfig, names=("appeal", "price", "price_index")):
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
            _ts(cfg, -(uniform(s, "reg", uid) * 3 * 365 * 86400).cast("long")),
        )
    )


def items(spark: SparkSession, cfg: WorldConfig) -> DataFrame:
    """All items with hidden appeal, popularity rank and rising-star flag."""
    return (
        spark.range(cfg.n_items, numPartitions=_partitions(cfg.n_items * 50))
        .withColumnRenamed("id", "item_id")
        .withColumns(item_attributes(cfg, F.col("item_id")))
    )


def _pick_item(cfg: WorldConfig, salt: str, key: Column, tier: Column, concentrate: Column):
    """Item id by Zipf over popularity ranks inside a price tier (tier in 1..5)."""
    per_tier = cfg.n_items // 5
    u = uniform(cfg.seed, salt, key)
    rank = F.least((F.pow(u, concentrate) * per_tier).cast("long"), F.lit(per_tier - 1))
    return rank * 5 + (tier - 1)


def _pick_rising(cfg: WorldConfig, salt: str, key: Column) -> Column:
    n = max(1, (cfg.n_items - cfg.rising_offset - 1) // cfg.rising_every + 1)
    k = (uniform(cfg.seed, salt, key) * n).cast("long")
    return k * cfg.rising_every + cfg.rising_offset


# -- browses, seeds and cascades --------------------------------------------------------------


def browses(spark: SparkSession, cfg: WorldConfig) -> DataFrame:
    """Organic browses with the browse-model purchase decision (``buy_at``: null = no buy)."""
    s = cfg.seed
    n = int(cfg.share_records * cfg.browses_per_record)
    weeks_s = cfg.weeks * 7 * 86400
    bid = F.col("browse_id")
    tier = (uniform(s, "b-tier", bid) * 5).cast("int") + 1
    base = (
        spark.range(n, numPartitions=_partitions(n))
        .withColumnRenamed("id", "browse_id")
        .withColumn("user_id", (uniform(s, "b-user", bid) * cfg.n_users).cast("long"))
        .withColumn("item_id", _pick_item(cfg, "b-item", bid, tier, F.lit(cfg.item_zipf)))
        .withColumn("t", (uniform(s, "b-time", bid) * weeks_s).cast("long"))
    )
    return _browse_outcome(_with_item(base, cfg), cfg)


def _browse_outcome(df: DataFrame, cfg: WorldConfig) -> DataFrame:
    """Browse-model purchase decision, action/page/stay (E8 makes them carry the intent)."""
    s = cfg.seed
    bid = F.col("browse_id")
    p_buy = _sigmoid(F.lit(cfg.base_logit) + F.col("appeal"))
    delay = exponential(s, "b-delay", cfg.buy_delay_hours * 3600, bid).cast("long")
    bought = uniform(s, "b-buy", bid) < p_buy
    df = df.withColumn("buy_t", F.when(bought, F.col("t") + delay))
    # intent: 2 = buys within 1 hour, 1 = within 1 day, 0 = otherwise
    intent = (
        F.when(F.col("buy_t").isNull(), 0)
        .when(F.col("buy_t") - F.col("t") <= 3600, 2)
        .when(F.col("buy_t") - F.col("t") <= 86400, 1)
        .otherwise(0)
    )
    df = df.withColumn("intent", intent if cfg.on("E8") else F.lit(0))
    u_act = uniform(s, "b-action", bid)
    action = (
        F.when(u_act < F.lit(0.55) - F.col("intent") * 0.2, "view")
        .when(u_act < F.lit(0.75) - F.col("intent") * 0.2, "click")
        .when(u_act < F.lit(0.85) - F.col("intent") * 0.1, "search")
        .when(u_act < 0.93, "favorite")
        .otherwise("cart")
    )
    pages = F.array(*[F.lit(p) for p in schemas.BROWSE_PAGES])
    page = F.element_at(
        pages, (uniform(s, "b-page", bid) * len(schemas.BROWSE_PAGES)).cast("int") + 1
    )
    stay = F.round(exponential(s, "b-stay", 40.0, bid) * (F.col("intent") + 1), 1)
    return df.withColumn("action", action).withColumn("page", page).withColumn("stay_s", stay)


def seeds(cfg: WorldConfig, user_df: DataFrame) -> DataFrame:
    """Hop-0 sharers: users who browsed an item (and maybe bought it) and share it."""
    s = cfg.seed
    # One small aggregate sizes the seeds so the world hits its target despite heavy tails.
    weight = F.col("activity") * F.when(F.col("is_hub"), cfg.records_per_seed(True)).otherwise(
        cfg.records_per_seed(False)
    )
    expected_per_unit = user_df.agg(F.sum(weight)).first()[0]
    rate = cfg.share_records / expected_per_unit
    weeks_s = cfg.weeks * 7 * 86400
    count = (F.col("activity") * rate + uniform(s, "seed-count", "user_id")).cast("int")
    key = F.xxhash64(F.col("user_id"), F.col("k"))
    own_tier = F.col("tier") if cfg.on("E7") else (uniform(s, "s-tier", key) * 5).cast("int") + 1
    tier = F.when(uniform(s, "s-tier-keep", key) < cfg.e7_same_tier, own_tier).otherwise(
        (uniform(s, "s-tier2", key) * 5).cast("int") + 1
    )
    hub_zipf = cfg.item_zipf * (3.0 if cfg.on("E6") else 1.0)
    concentrate = F.when(F.col("is_hub"), F.lit(hub_zipf)).otherwise(F.lit(cfg.item_zipf))
    item = _pick_item(cfg, "s-item", key, tier, concentrate)
    if cfg.on("E5"):
        pick = F.when(F.col("is_hub"), cfg.e5_hub_pick).otherwise(cfg.e5_other_pick)
        item = F.when(
            uniform(s, "s-rise", key) < pick, _pick_rising(cfg, "s-rise-item", key)
        ).otherwise(item)
    t = (uniform(s, "s-time", key) * weeks_s).cast("long")
    df = (
        user_df.select("user_id", "community", "pos", "tier", "is_hub", "activity")
        .where(count > 0)
        .withColumn("k", F.explode(F.sequence(F.lit(1), count)))
        .withColumn("seed_key", key)
        .withColumn("item_id", item)
        .withColumn("t", t)
    )
    df = _with_item(df, cfg, ("appeal", "rising"))
    if cfg.on("E5"):
        # Before the surge, a rising star's seeds come in bursts: two of weeks 1-4 hold them.
        burst_week = (
            F.pmod(F.xxhash64(F.lit(s), F.col("item_id")), F.lit(4))
            + (uniform(s, "s-burst", "seed_key") < 0.5).cast("int") * 2
        ) % 4
        in_week = (uniform(s, "s-burst-t", "seed_key") * 7 * 86400).cast("long")
        df = df.withColumn(
            "t",
            F.when(
                F.col("rising") & (F.col("t") < 4 * 7 * 86400),
                burst_week * 7 * 86400 + in_week,
            ).otherwise(F.col("t")),
        )
    bought = uniform(s, "s-bought", "seed_key") < _sigmoid(F.lit(cfg.base_logit) + F.col("appeal"))
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


def expand(
    sharers: DataFrame,
    cfg: WorldConfig,
    adoptions: DataFrame | None,
    hop: int,
    degrees: DataFrame | None = None,
    ties: DataFrame | None = None,
) -> DataFrame:
    """One hop: every sharer sends the item to receivers; each record gets its outcome.

    ``adoptions``: (receiver_id, item_id, adopt_times) from ``neighbour_adoptions`` over the
    records of earlier hops, for E3: a record counts the receiver's neighbours who adopted the
    item before it (None: no earlier adopters, E3 adds nothing). ``degrees``:
    ``prior_degrees`` of the network E2 reads (None: E2 adds nothing); ``ties``: its
    ``tie_history`` that E9 reads (None: E9 adds nothing). Returns the records with
    ``bought``/``buy_t``/``reshare``.
    """
    s = cfg.seed
    size = cfg.community_size
    n_recv = F.when(F.col("s_hub"), cfg.hub_fanout).otherwise(cfg.fanout)
    # at least one receiver; geometric-like tail
    count = F.lit(1) + (exponential(s, f"n-recv{hop}", 1.0, "rid") * (n_recv - 1)).cast("int")
    rec_key = F.xxhash64(F.col("rid"), F.col("j"))
    in_comm = uniform(s, f"r-comm{hop}", "rec_key") < cfg.in_community
    pos_popular = (F.pow(uniform(s, f"r-pos{hop}", "rec_key"), F.lit(2.0)) * size).cast("long")
    if cfg.on("E7"):
        same_tier = uniform(s, f"r-tier{hop}", "rec_key") < cfg.e7_same_tier
        tier_pos = (F.col("s_tier") - 1) + (
            uniform(s, f"r-tpos{hop}", "rec_key") * (size // 5)
        ).cast("long") * 5
        pos = F.when(same_tier, tier_pos).otherwise(pos_popular)
    else:
        pos = pos_popular
    receiver = F.when(in_comm, F.col("s_community") * size + pos).otherwise(
        (uniform(s, f"r-any{hop}", "rec_key") * cfg.n_users).cast("long")
    )
    receiver = F.when(
        receiver == F.col("sender_id"),
        F.col("s_community") * size + F.pmod(F.col("sender_id") + 1, F.lit(size)),
    ).otherwise(receiver)
    open_delay = exponential(s, f"open{hop}", 3 * 3600.0, "rec_key").cast("long")
    recs = (
        sharers.withColumn("j", F.explode(F.sequence(F.lit(1), count)))
        .withColumn("rec_key", rec_key)
        .withColumn("receiver_id", receiver)
        .withColumn("t", F.col("share_t") + open_delay)
        .where(F.col("t") < cfg.weeks * 7 * 86400)
    )
    r = user_attributes(cfg, F.col("receiver_id"))
    recs = _with_item(
        recs.withColumns(
            {
                "r_community": r["community"],
                "r_tier": r["tier"],
                "r_hub": r["is_hub"],
            }
        ),
        cfg,
        ("appeal", "price_index"),
    )
    if adoptions is not None:
        earlier = F.filter(F.col("adopt_times"), lambda a: a < F.col("t"))
        recs = (
            recs.join(adoptions, ["receiver_id", "item_id"], "left")
            .withColumn(
                "n_close",
                F.when(F.col("adopt_times").isNull(), F.lit(0)).otherwise(F.size(earlier)),
            )
            .drop("adopt_times")
        )
    else:
        recs = recs.withColumn("n_close", F.lit(0))
    if degrees is not None:
        recs = with_prior_degrees(recs, degrees)
    else:
        recs = recs.withColumn("s_deg", F.lit(None).cast("double")).withColumn(
            "r_deg", F.lit(None).cast("double")
        )
    if ties is not None:
        recs = with_tie_score(recs, ties)
    else:
        recs = recs.withColumn("tie", F.lit(0.0))
    logit = F.lit(cfg.base_logit) + F.col("appeal")
    if cfg.on("E1"):
        logit = logit + cfg.e1_lift + cfg.e1_pi_slope * F.col("price_index")
    if degrees is not None:
        gap = F.greatest(F.lit(-3.0), F.least(F.lit(3.0), F.col("s_deg") - F.col("r_deg")))
        logit = logit + cfg.e2_gap * gap
    if cfg.on("E3"):
        close = F.least(F.col("n_close"), F.lit(10)).cast("double")
        logit = logit + cfg.e3_close * F.log1p(close)
    if cfg.on("E4"):
        logit = (
            logit
            + cfg.e4_received * F.col("s_received").cast("double")
            + cfg.e4_bought * (F.col("s_received") & F.col("s_bought")).cast("double")
        )
    if cfg.on("E6"):
        logit = logit + cfg.e6_hub * F.col("s_hub").cast("double")
    if ties is not None:
        logit = logit + cfg.e9_tie * F.col("tie")
    bought = uniform(s, f"buy{hop}", "rec_key") < _sigmoid(logit)
    buy_delay = exponential(s, f"buy-delay{hop}", cfg.buy_delay_hours * 3600, "rec_key").cast(
        "long"
    )
    p_reshare = F.when(bought, cfg.reshare_bought).otherwise(cfg.reshare)
    reshare_delay = exponential(s, f"reshare-delay{hop}", cfg.reshare_delay_days * 86400, "rec_key")
    return (
        recs.withColumn("bought", bought)
        .withColumn("buy_t", F.when(bought, F.col("t") + buy_delay))
        .withColumn("reshare", uniform(s, f"reshare{hop}", "rec_key") < p_reshare)
        .withColumn("reshare_t", F.col("t") + reshare_delay.cast("long"))
        .withColumn("hop", F.lit(hop))
        .select(
            "sender_id",
            "receiver_id",
            "item_id",
            "t",
            "hop",
            "rec_key",
            "r_community",
            "r_tier",
            "r_hub",
            "bought",
            "buy_t",
            "reshare",
            "reshare_t",
            # the share model's inputs, kept for checking the planted effects
            "s_deg",
            "r_deg",
            "s_hub",
            "s_received",
            "s_bought",
            "n_close",
            "tie",
            "price_index",
            "appeal",
        )
    )


WEEK_S = 7 * 86400


def _first_edges(records: DataFrame) -> DataFrame:
    from pipeline.stats.common import first_edges

    week = F.floor(F.col("t") / WEEK_S).cast("int").alias("week")
    return first_edges(records.select("sender_id", "receiver_id", week))


def prior_degrees(records: DataFrame) -> DataFrame:
    """(user_id, _new_edges) of the records' share graph, built by the functions ``observe``
    uses (``first_edges``, ``prior_degree_weeks``): weeks numbered from the world's start."""
    from pipeline.stats.common import prior_degree_weeks

    return prior_degree_weeks(_first_edges(records))


def network_neighbours(records: DataFrame) -> DataFrame:
    """(user_id, neighbour_id) of the records' merged share graph (``neighbour_pairs``)."""
    from pipeline.stats.common import neighbour_pairs

    return neighbour_pairs(_first_edges(records))


def with_prior_degrees(recs: DataFrame, degrees: DataFrame) -> DataFrame:
    """Add ``s_deg`` / ``r_deg``: log1p of the sender's and the receiver's prior degree (in +
    out, edges first used in weeks before the record's) in ``degrees`` (``prior_degrees``)."""
    from pipeline.stats.common import join_prior_degrees

    recs = join_prior_degrees(
        recs.withColumn("week", F.floor(F.col("t") / WEEK_S).cast("int")), degrees
    )
    return (
        recs.withColumn("s_deg", F.log1p(F.col("sender_prior_degree").cast("double")))
        .withColumn("r_deg", F.log1p(F.col("receiver_prior_degree").cast("double")))
        .drop("week", "sender_prior_degree", "receiver_prior_degree")
    )


def tie_history(records: DataFrame) -> DataFrame:
    """``common.tie_history`` of the records (weeks numbered from the world's start), the
    table E9 reads."""
    week = F.floor(F.col("t") / WEEK_S).cast("int").alias("week")
    return common.tie_history(records.select("sender_id", "receiver_id", week, "price_index"))


def with_tie_score(recs: DataFrame, ties: DataFrame) -> DataFrame:
    """Add ``tie``: the ``tie_score`` of each record's pair in ``ties`` (``tie_history``)."""
    recs = recs.withColumn("week", F.floor(F.col("t") / WEEK_S).cast("int"))
    return common.with_tie_score(recs, ties, "tie").drop("week")


def next_sharers(records: DataFrame, cfg: WorldConfig) -> DataFrame:
    """Receivers who re-share become the next hop's senders."""
    return records.where(F.col("reshare") & (F.col("reshare_t") < cfg.weeks * 7 * 86400)).select(
        F.col("receiver_id").alias("sender_id"),
        F.col("r_community").alias("s_community"),
        F.col("r_tier").alias("s_tier"),
        F.col("r_hub").alias("s_hub"),
        "item_id",
        F.col("rec_key").alias("rid"),
        F.col("reshare_t").alias("share_t"),
        F.lit(True).alias("s_received"),
        # bought before re-sharing: a purchase after it cannot act on the next hop (E4)
        (F.col("bought") & (F.col("buy_t") < F.col("reshare_t"))).alias("s_bought"),
    )


def neighbour_adoptions(hops: list[DataFrame], neighbours: DataFrame) -> DataFrame:
    """(receiver_id, item_id, adopt_times): for E3, the times the receiver's neighbours adopted
    the item (received it and bought it), from the records of ``hops``, as ``observe``
    computes close neighbours: an adopter's first purchase through a record, joined to its
    ``neighbours`` (``network_neighbours``) by ``structure.adoption_times_of``."""
    from pipeline.stats.structure import adoption_times_of

    bought = None
    for prev in hops:
        part = prev.where(F.col("bought")).select(
            F.col("receiver_id").alias("user_id"), "item_id", F.col("buy_t").alias("adopt_ts")
        )
        bought = part if bought is None else bought.unionByName(part)
    first = bought.groupBy("user_id", "item_id").agg(F.min("adopt_ts").alias("adopt_ts"))
    return adoption_times_of(first, neighbours, None)


def surge(spark: SparkSession, cfg: WorldConfig, item_df: DataFrame, sales: DataFrame):
    """E5: outside demand after week 4 lifts each rising star into its top category's top
    ``surge_permille`` by sales in weeks 5-6: ``surge_factor`` times the sales of the category's
    k-th best ordinary item, k = ceil(surge_permille * items in the category).

    ``sales``: purchases so far (item_id, t). Returns extra purchases (user_id, item_id, t).
    """
    from pyspark.sql import Window

    s = cfg.seed
    wk = 7 * 86400
    window = sales.where((F.col("t") >= 4 * wk) & (F.col("t") < 6 * wk))
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
    targets = (
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


def touches(browse_df: DataFrame, cfg: WorldConfig) -> DataFrame:
    """Touch sessions just before browses; with E8 on they carry the purchase intent."""
    s = cfg.seed
    bid = F.col("browse_id")
    has_session = uniform(s, "touch-session", bid) < cfg.touch_session_rate
    n_events = F.lit(2) + (exponential(s, "touch-n", 3.0, bid) * (F.col("intent") + 1)).cast("int")
    key = F.xxhash64(F.col("browse_id"), F.col("e"))
    u_ev = uniform(s, "touch-ev", key)
    rich = F.col("intent") * 0.15
    event = (
        F.when(u_ev < F.lit(0.45) - rich, "scroll")
        .when(u_ev < F.lit(0.75) - rich * 1.5, "tap")
        .when(u_ev < F.lit(0.85) - rich, "swipe")
        .when(u_ev < 0.93 - rich * 0.2, "zoom")
        .otherwise("long_press")
    )
    pages = F.array(*[F.lit(p) for p in schemas.BROWSE_PAGES])
    page = F.when(uniform(s, "touch-cart", key) < F.col("intent") * 0.25, "cart").otherwise(
        F.element_at(
            pages, (uniform(s, "touch-page", key) * len(schemas.BROWSE_PAGES)).cast("int") + 1
        )
    )
    return (
        browse_df.where(has_session)
        .withColumn("e", F.explode(F.sequence(F.lit(1), n_events)))
        .withColumn(
            "t_touch",
            F.col("t") - (F.col("e") * (uniform(s, "touch-gap", key) * 20 + 5)).cast("long"),
        )
        .select(
            "user_id",
            "item_id",
            F.col("t_touch").alias("t"),
            F.col("browse_id").alias("session_id"),
            event.alias("event"),
            page.alias("page"),
        )
    )


# -- truth --------------------------------------------------------------------------------------


def truth_rows(cfg: WorldConfig) -> list[tuple]:
    """(effect, enabled, parameter, value, description) for ``truth/world``."""
    on = cfg.on
    rows = [
        ("E1", on("E1"), "e1_lift", cfg.e1_lift, "logit lift of a share record over a browse"),
        ("E1", on("E1"), "e1_pi_slope", cfg.e1_pi_slope, "extra logit lift per unit of PI"),
        ("E2", on("E2"), "e2_gap", cfg.e2_gap,
         "logit per log1p prior-degree gap (s - r, in + out, earlier weeks), in [-3, 3]"),
        ("E3", on("E3"), "e3_close", cfg.e3_close,
         "logit per log1p(min(10, neighbours who adopted it earlier))"),
        ("E4", on("E4"), "e4_received", cfg.e4_received, "logit if the sender received it"),
        ("E4", on("E4"), "e4_bought", cfg.e4_bought,
         "extra logit if the re-sharer bought it first"),
        ("E5", on("E5"), "rising_every", float(cfg.rising_every), "every k-th item rises"),
        ("E5", on("E5"), "e5_hub_pick", cfg.e5_hub_pick, "P(hub seed shares a rising star)"),
        ("E5", on("E5"), "surge_factor", cfg.surge_factor, "weeks 5-6 sales vs k-th best"),
        ("E6", on("E6"), "e6_hub", cfg.e6_hub, "logit if the sender is a hub"),
        ("E7", on("E7"), "e7_same_tier", cfg.e7_same_tier, "P(receiver/item in sender's tier)"),
        ("E8", on("E8"), "touch_session_rate", cfg.touch_session_rate, "sessions per browse"),
        ("E9", on("E9"), "e9_tie", cfg.e9_tie,
         f"logit per tie_score: clip(dear - cheap, -{TIE_CAP}, {TIE_CAP}) / {TIE_CAP} over the "
         f"pair's shares in the {TIE_WEEKS} weeks before; dear: PI >= {DEAR_PI}"),
    ]
    for key, value in asdict(cfg).items():
        if key in {"effects", "start"}:
            continue
        rows.append(("world", True, key, float(value), "generator setting"))
    rows.append(("world", True, "start_epoch_days", float(cfg.start.toordinal() - 719163), "start"))
    return rows


# -- the whole world ----------------------------------------------------------------------------


def _week_start(ts: Column) -> Column:
    return F.to_date(F.date_trunc("week", ts))


def to_raw_shares(records: DataFrame, cfg: WorldConfig) -> DataFrame:
    return records.select(
        "sender_id", "receiver_id", "item_id", _ts(cfg, F.col("t")).alias("ts")
    ).withColumn("week_start", _week_start(F.col("ts")))


def to_raw_purchases(purchases: DataFrame, cfg: WorldConfig) -> DataFrame:
    """(user_id, item_id, t) -> raw purchases; amount = price x quantity (mostly 1)."""
    s = cfg.seed
    key = F.xxhash64(F.col("user_id"), F.col("item_id"), F.col("t"))
    qty = F.when(uniform(s, "qty", key) < 0.85, 1).otherwise(2)
    return (
        purchases.where((F.col("t") >= 0) & (F.col("t") < cfg.weeks * 7 * 86400))
        .withColumn("price", item_attributes(cfg, F.col("item_id"))["price"])
        .select(
            "user_id",
            "item_id",
            _ts(cfg, F.col("t")).alias("ts"),
            F.round(F.col("price") * qty, 2).alias("amount"),
        )
        .withColumn("week_start", _week_start(F.col("ts")))
    )


def _materialize(df: DataFrame, path, spark: SparkSession) -> DataFrame:
    """Write an intermediate to scratch Parquet and read it back (no recomputation later)."""
    df.write.mode("overwrite").option("compression", "snappy").parquet(str(path))
    return spark.read.parquet(str(path))


def _cascades(
    spark: SparkSession,
    cfg: WorldConfig,
    sharers: DataFrame,
    degrees: DataFrame | None,
    neighbours: DataFrame | None,
    scratch,
    progress,
    ties: DataFrame | None = None,
) -> DataFrame:
    """All hops of the cascades from the seeds ``sharers``; E2 reads ``degrees``, E3
    ``neighbours`` and E9 ``ties`` (all None: the network pass, without E2, E3 and E9)."""
    network_pass = _two_pass(cfg) and degrees is None and neighbours is None and ties is None
    hops: list[DataFrame] = []
    for hop in range(cfg.hops):
        adoptions = None
        if hops and neighbours is not None:
            adoptions = neighbour_adoptions(hops, neighbours)
        recs = expand(sharers, cfg, adoptions, hop, degrees, ties)
        recs = _materialize(recs, f"{scratch}/hop={hop}", spark)
        hops.append(recs)
        sharers = next_sharers(recs, cfg)
        note = " (network without E2, E3, E9)" if network_pass else ""
        progress(f"world: hop {hop} done{note}")
    records = hops[0]
    for h in hops[1:]:
        records = records.unionByName(h)
    return records


def _two_pass(cfg: WorldConfig) -> bool:
    """E2, E3 and E9 read the network of a first pass without them."""
    return cfg.on("E2") or cfg.on("E3") or cfg.on("E9")


def generate(
    spark: SparkSession, cfg: WorldConfig, scratch, progress=print
) -> dict[str, DataFrame]:
    """Generate the world; returns the raw tables (schema ``schemas.with_partitions``) and
    ``truth``. Intermediates are materialized under ``scratch`` (delete it afterwards)."""

    scratch = str(scratch).rstrip("/")
    user_df = users(spark, cfg)
    item_df = items(spark, cfg)
    progress(f"world: {cfg.n_users} users, {cfg.n_items} items, effects {sorted(cfg.effects)}")

    browse_df = _materialize(browses(spark, cfg), f"{scratch}/browses", spark)
    seed_df = _materialize(seeds(cfg, user_df), f"{scratch}/seeds", spark)
    progress("world: browses and cascade seeds done")

    sharers = seed_df.drop("browse_t", "buy_t")
    degrees = neighbours = ties = None
    if _two_pass(cfg):
        # The network without E2, E3 and E9 (same draws), whose prior degrees E2 reads, whose
        # neighbours E3 counts and whose ties' price history E9 reads; see the module docstring.
        network = _cascades(spark, cfg, sharers, None, None, f"{scratch}/network", progress)
        if cfg.on("E2"):
            degrees = _materialize(prior_degrees(network), f"{scratch}/degrees", spark)
        if cfg.on("E3"):
            neighbours = _materialize(network_neighbours(network), f"{scratch}/neighbours", spark)
        if cfg.on("E9"):
            ties = _materialize(tie_history(network), f"{scratch}/ties", spark)
    records = _cascades(spark, cfg, sharers, degrees, neighbours, scratch, progress, ties)
    inputs = records
    if degrees is None:
        # Not read by the share model; in ``_records`` as the observable covariate.
        inputs = with_prior_degrees(inputs.drop("s_deg", "r_deg"), prior_degrees(records))
    if ties is None:
        inputs = with_tie_score(inputs.drop("tie"), tie_history(records))

    purchases = (
        browse_df.where(F.col("buy_t").isNotNull())
        .select("user_id", "item_id", F.col("buy_t").alias("t"))
        .unionByName(
            seed_df.where(F.col("buy_t").isNotNull()).select(
                F.col("sender_id").alias("user_id"), "item_id", F.col("buy_t").alias("t")
            )
        )
        .unionByName(
            records.where(F.col("bought")).select(
                F.col("receiver_id").alias("user_id"), "item_id", F.col("buy_t").alias("t")
            )
        )
    )
    if cfg.on("E5"):
        purchases = purchases.unionByName(surge(spark, cfg, item_df, purchases))

    seed_browses = seed_df.select(
        F.col("sender_id").alias("user_id"),
        "item_id",
        F.col("browse_t").alias("t"),
        F.col("rid").alias("browse_id"),
    ).withColumn("buy_t", F.lit(None).cast("long"))
    seed_browses = _browse_outcome(_with_item(seed_browses, cfg), cfg).withColumn(
        "intent", F.lit(0)
    )
    all_browses = browse_df.unionByName(seed_browses.select(*browse_df.columns))

    raw_browses = all_browses.select(
        "user_id",
        "item_id",
        _ts(cfg, F.col("t")).alias("ts"),
        "action",
        "page",
        F.col("stay_s").cast("double").alias("stay_s"),
    ).where(F.col("ts") >= _ts(cfg, F.lit(0)))
    raw_touches = (
        touches(browse_df, cfg)
        .select(
            "user_id",
            "item_id",
            _ts(cfg, F.col("t")).alias("ts"),
            "session_id",
            "event",
            "page",
        )
        .where(F.col("ts") >= _ts(cfg, F.lit(0)))
    )
    tables = {
        "users": user_df.select(
            "user_id",
            "age_band",
            "city_level",
            F.col("tier").alias("consumption_tier"),
            "registered_ts",
        ),
        "items": item_df.select("item_id", "top_category", "leaf_category", "price", "price_index"),
        "shares": to_raw_shares(records, cfg),
        "purchases": to_raw_purchases(purchases, cfg),
        "browses": raw_browses.withColumn("week_start", _week_start(F.col("ts"))),
        "touches": raw_touches.withColumn("week_start", _week_start(F.col("ts"))),
    }
    out = {}
    for name, df in tables.items():
        want = schemas.with_partitions(name, schemas.RAW[name])
        out[name] = df.select(*[F.col(f.name).cast(f.dataType) for f in want.fields])
    out["truth"] = spark.createDataFrame(truth_rows(cfg), schemas.TRUTH)
    # Not committed: every record with its share-model inputs, and the browses with theirs.
    out["_records"] = inputs
    out["_browses"] = all_browses
    return out


def config_id(cfg: WorldConfig) -> str:
    """A short stable id of a configuration, the default run id of ``generate_world``."""
    return run_digest(asdict(cfg))


def generate_to_lake(
    spark: SparkSession, lake, cfg: WorldConfig, run_id: str | None = None, progress=print
) -> dict[str, object]:
    """Generate the world and commit ``raw/*`` and ``truth/world`` (overwriting a previous
    world). Re-running the same run id commits nothing new."""
    run_id = run_id or f"world-{config_id(cfg)}"
    app_id = f"generate_world:{run_id}"
    names = ["users", "items", "shares", "purchases", "browses", "touches"]
    if all(lake.committed("raw", n, app_id) for n in names) and lake.committed(
        "truth", "world", app_id
    ):
        progress(f"world {run_id} is already committed; nothing to do")
        return {"run_id": run_id, "skipped": True}
    scratch = lake.location("_scratch", run_id)
    try:
        tables = generate(spark, cfg, scratch, progress)
        results = {}
        for name in names:
            res = lake.write(
                tables[name],
                "raw",
                name,
                mode="overwrite",
                partition_by=schemas.RAW_PARTITIONS.get(name),
                app_id=app_id,
                max_records_per_file=5_000_000,
            )
            progress(f"world: {res}")
            results[name] = res.rows
        res = lake.write(
            tables["truth"].coalesce(1), "truth", "world", mode="overwrite", app_id=app_id
        )
        results["truth"] = res.rows
    finally:
        lake.remove(scratch)
    return {"run_id": run_id, "skipped": False, "rows": results}
