"""Share cascades: who shares with whom, and which share records convert.

Each seed sender shares with ~``fanout`` receivers (``hub_fanout`` for hubs), mostly in their
community (``in_community``); with E7 on, receivers are chosen from the sender's consumption
tier (``e7_same_tier``), so receivers buy in their neighbours' tiers and spending drifts toward
the share neighbours'. Each record (the time the receiver opens the Taocode) converts with the
*share model*, and its receiver re-shares with a probability that is higher if they bought
(``reshare_bought`` against ``reshare``). ``hops`` rounds. With E10 on, a receiver is often
replaced by one of the sender's recent contacts (``recency``).

**Share model**, the logit of a purchase within ``buy_delay`` after a record::

      base_logit + appeal
        + E1 * (e1_lift + e1_pi_slope * PI)                 receiving a share, more for dear items
        + E2 * e2_gap * (log1p prior degree_sender - log1p prior degree_receiver)   gap
        + E3 * e3_close * log1p(min(10, receiver's neighbours who adopted the item earlier))
        + E4 * sender_received * (e4_received + e4_bought * sender_bought)     2-hop
        + E6 * e6_hub * sender_is_hub
        + E9 * e9_tie * tie_score(sender -> receiver shares of dear / cheap items, 4 weeks before)

With an effect off its term is zero. With E1 off a share converts exactly like a browse. E2's
gap is clipped to [-3, 3]. E2 and E3 act on what Fig. 2(b) and 2(c) and ``observe`` measure;
E2, E3 and E9 read the network with the functions ``observe`` uses (see ``network``).

**Two passes.** A record's outcome cannot wait for the whole network, so with E2, E3 or E9 on
the cascades are generated twice from the same random draws: first without E2, E3 and E9,
giving the network whose prior degrees E2 reads, whose neighbours E3 counts and whose ties E9
reads, then with them. E2, E3 and E9 change only which records convert and, through
re-sharing, a few subtrees, so what they read is what ``observe`` measures on the final network
for most records (92 % of the prior degrees on ``test_world``'s world, 86 % with E10); E3
counts the adopters of earlier hops (not those of the same hop). E10 reads the contacts of a
pass without any network-reading effect and changes who receives, so with E10 on the first
pass is itself generated with E10, from that contacts pass (``recency``; three passes in all).

Why the observed network: E2 reads the observed prior degree, not the latent sending activity
(of which hubs have 40 times more, while an ordinary user's observed degree is mostly
in-degree), so at the same observed gap a hub sender carries no larger true gap and E2 alone
does not make the hub test fire; E3 counts observed share-graph neighbours, not the receiver's
latent community (more of whom lie beyond the observed neighbours deeper in a cascade), so E3
alone does not make the 2-hop test fire.

Nothing acts backwards in time: E3 counts neighbours who bought the item *before* the record
(in earlier hops; never the receiver), so it is no function of the hop and does not leak into
the 2-hop and degree tests; E4's ``sender_bought`` is a purchase by a re-sharer before they
re-shared. A cascade seed never received the item, so its own purchase is not a 2-hop signal.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.session import spark_path
from pipeline.world.config import WorldConfig
from pipeline.world.draws import exponential, sigmoid, uniform
from pipeline.world.entities import user_attributes, with_item
from pipeline.world.network import neighbour_adoptions, with_prior_degrees, with_tie_score
from pipeline.world.recency import with_recency

#: The columns of a hop's records: who, what, when, the outcome, and the share model's inputs
#: (``s_deg`` .. ``appeal``) and E10's pick (``recontact``), kept for checking the planted
#: effects.
RECORD_COLUMNS = (
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
    "s_deg",
    "r_deg",
    "s_hub",
    "s_received",
    "s_bought",
    "n_close",
    "tie",
    "price_index",
    "appeal",
    "recontact",
)


def materialize(df: DataFrame, path, spark: SparkSession) -> DataFrame:
    """Write an intermediate to scratch Parquet and read it back (no recomputation later)."""
    df.write.mode("overwrite").option("compression", "snappy").parquet(str(path))
    return spark.read.parquet(spark_path(path))  # the reader globs; the writer does not


def _receiver(cfg: WorldConfig, hop: int) -> Column:
    """The receiver of record ``rec_key``: mostly in the sender's community, at a popular
    position or, with E7, one of the sender's consumption tier; never the sender."""
    s = cfg.seed
    size = cfg.community_size
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
    return F.when(
        receiver == F.col("sender_id"),
        F.col("s_community") * size + F.pmod(F.col("sender_id") + 1, F.lit(size)),
    ).otherwise(receiver)


def _records(
    sharers: DataFrame, cfg: WorldConfig, hop: int, contacts: DataFrame | None = None
) -> DataFrame:
    """Every sharer's records of this hop (at least one receiver, a geometric-like tail),
    opened before the world's end, with the receiver's attributes and the item's appeal and
    price index. With ``contacts`` (E10's, ``recency.contact_history``), E10 replaces some
    receivers by the sender's recent contacts."""
    s = cfg.seed
    n_recv = F.when(F.col("s_hub"), cfg.hub_fanout).otherwise(cfg.fanout)
    count = F.lit(1) + (exponential(s, f"n-recv{hop}", 1.0, "rid") * (n_recv - 1)).cast("int")
    open_delay = exponential(s, f"open{hop}", 3 * 3600.0, "rec_key").cast("long")
    recs = (
        sharers.withColumn("j", F.explode(F.sequence(F.lit(1), count)))
        .withColumn("rec_key", F.xxhash64(F.col("rid"), F.col("j")))
        .withColumn("receiver_id", _receiver(cfg, hop))
        .withColumn("t", F.col("share_t") + open_delay)
        .where(F.col("t") < cfg.weeks * 7 * 86400)
        .transform(lambda df: with_recency(df, contacts, cfg, hop))
    )
    r = user_attributes(cfg, F.col("receiver_id"))
    return with_item(
        recs.withColumns(
            {"r_community": r["community"], "r_tier": r["tier"], "r_hub": r["is_hub"]}
        ),
        cfg,
        ("appeal", "price_index"),
    )


def _with_network_inputs(
    recs: DataFrame,
    adoptions: DataFrame | None,
    degrees: DataFrame | None,
    ties: DataFrame | None,
) -> DataFrame:
    """Add what E3 (``n_close``), E2 (``s_deg``, ``r_deg``) and E9 (``tie``) read; a missing
    table gives 0 (null degrees)."""
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
        return with_tie_score(recs, ties)
    return recs.withColumn("tie", F.lit(0.0))


def share_logit(cfg: WorldConfig, reads_degrees: bool, reads_ties: bool) -> Column:
    """The share model's logit over a record's inputs (the module docstring's formula). E2 and
    E9 act only when their network is read (not in the first of two passes)."""
    logit = F.lit(cfg.base_logit) + F.col("appeal")
    if cfg.on("E1"):
        logit = logit + cfg.e1_lift + cfg.e1_pi_slope * F.col("price_index")
    if reads_degrees:
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
    if reads_ties:
        logit = logit + cfg.e9_tie * F.col("tie")
    return logit


def _with_outcome(recs: DataFrame, cfg: WorldConfig, hop: int, logit: Column) -> DataFrame:
    """Draw each record's purchase (and its time) and whether, and when, its receiver
    re-shares."""
    s = cfg.seed
    bought = uniform(s, f"buy{hop}", "rec_key") < sigmoid(logit)
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
    )


def expand(
    sharers: DataFrame,
    cfg: WorldConfig,
    adoptions: DataFrame | None,
    hop: int,
    degrees: DataFrame | None = None,
    ties: DataFrame | None = None,
    contacts: DataFrame | None = None,
) -> DataFrame:
    """One hop: every sharer sends the item to receivers; each record gets its outcome.

    ``adoptions``: (receiver_id, item_id, adopt_times) from ``neighbour_adoptions`` over the
    records of earlier hops, for E3: a record counts the receiver's neighbours who adopted the
    item before it (None: no earlier adopters, E3 adds nothing). ``degrees``:
    ``prior_degrees`` of the network E2 reads (None: E2 adds nothing); ``ties``: its
    ``tie_history`` that E9 reads (None: E9 adds nothing); ``contacts``: the
    ``recency.contact_history`` that E10 reads (None: receivers as drawn). Returns the records
    (``RECORD_COLUMNS``) with ``bought``/``buy_t``/``reshare``.
    """
    recs = _with_network_inputs(_records(sharers, cfg, hop, contacts), adoptions, degrees, ties)
    logit = share_logit(cfg, reads_degrees=degrees is not None, reads_ties=ties is not None)
    return _with_outcome(recs, cfg, hop, logit).select(*RECORD_COLUMNS)


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


def two_pass(cfg: WorldConfig) -> bool:
    """E2, E3 and E9 read the network of a first pass without them."""
    return cfg.on("E2") or cfg.on("E3") or cfg.on("E9")


def cascades(
    spark: SparkSession,
    cfg: WorldConfig,
    sharers: DataFrame,
    degrees: DataFrame | None,
    neighbours: DataFrame | None,
    scratch,
    progress: Callable[[str], object],
    ties: DataFrame | None = None,
    contacts: DataFrame | None = None,
    note: str = "",
) -> DataFrame:
    """All hops of the cascades from the seeds ``sharers``; E2 reads ``degrees``, E3
    ``neighbours``, E9 ``ties`` and E10 ``contacts`` (None: that effect adds nothing, as in
    the earlier passes). Each hop is materialized under ``scratch``; ``note`` names the pass
    in the progress lines."""
    hops: list[DataFrame] = []
    for hop in range(cfg.hops):
        adoptions = None
        if hops and neighbours is not None:
            adoptions = neighbour_adoptions(hops, neighbours)
        recs = expand(sharers, cfg, adoptions, hop, degrees, ties, contacts)
        recs = materialize(recs, f"{scratch}/hop={hop}", spark)
        hops.append(recs)
        sharers = next_sharers(recs, cfg)
        progress(f"world: hop {hop} done{note}")
    records = hops[0]
    for h in hops[1:]:
        records = records.unionByName(h)
    return records
