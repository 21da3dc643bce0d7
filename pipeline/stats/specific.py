"""Mutually adjusted tests of the share mechanisms: one test per effect that stays silent when
only that effect is absent ("specific" tests).

The InfNet mechanisms act on the same share records and their observable traces overlap:

* degree gap (E2): the sender's and the receiver's prior degrees;
* close neighbours (E3): the receiver's neighbours who adopted the item before the record;
* 2-hop (E4): whether the sender received the item earlier, and bought it in between;
* hubs (E6): whether the sender is among the top senders;
* a tie's price history (E9): dear minus cheap items the sender shared with this receiver in
  the weeks before (``tie_score``).

Seeds of cascades are active users (high degree, often hubs) who never received the item, and
re-sharers received it and often bought it; a receiver with many neighbours has more adopters
around them and is also a more active buyer. So a plain within-item trend on one covariate
picks up the others' mechanisms: on a world with E2 switched off and the rest on, the
within-item degree-gap trend was significant. Each test here is therefore a within-stratum
trend (``significance.stratified_trend``) whose strata are the item crossed with the binned
covariates of every *other* mechanism; the E1 test compares browses with the share records
that carry none of the other mechanisms' covariates. What each test adjusts for, and why, is in
``specific_tests``. The raw statistics (the papers' figures) are not changed by any of this.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.stats import significance as sig

# Senders in the top ADJUST_HUB_FACTOR x hub_percent % by records count as hub-like for the
# adjustment. The paper's hub cut (top 1 %) is arbitrary: users just below it share like hubs,
# and leaving them among ordinary senders lets the hub mechanism leak into the degree trend.
ADJUST_HUB_FACTOR = 2.0


def sender_hubs(features: DataFrame, percent: float) -> DataFrame:
    """(sender_id, sender_hub): True for the top ``percent`` % of senders by share records."""
    from pipeline.stats.rising import hub_threshold

    counts = features.groupBy("sender_id").agg(F.count(F.lit(1)).alias("records_sent"))
    return (
        counts.crossJoin(F.broadcast(hub_threshold(counts, percent)))
        .select("sender_id", (F.col("records_sent") >= F.col("threshold")).alias("sender_hub"))
    )


def with_covariates(features: DataFrame, hub_percent: float, close_cap: int) -> DataFrame:
    """Add every mechanism's observable covariate, as a score and as a stratum label.

    Scores: ``log_gap`` = log1p(sender prior degree) - log1p(receiver prior degree) (E2),
    ``close`` = close neighbours capped at ``close_cap`` (E3), ``received`` / ``bought``
    (E4), ``hub`` (E6, the top ``ADJUST_HUB_FACTOR * hub_percent`` % of senders),
    ``tie_score`` (E9).
    Strata labels (strings): ``gap_s`` (log gap floored, clipped to -3..3), ``recv_deg_s``
    (log2 bin of the receiver's prior degree), ``close_s``, ``delta_s`` (the 2-hop week gap,
    0 = never received), ``bought_s``, ``hub_s``, ``tie_s`` (the tie score, 7 values) and
    ``repeat_s`` (the receiver had received the item before this record).
    """
    hubs = sender_hubs(features, ADJUST_HUB_FACTOR * hub_percent)
    first = features.groupBy("receiver_id", "item_id").agg(F.min("ts").alias("_first_ts"))
    log_gap = F.log1p("sender_prior_degree") - F.log1p("receiver_prior_degree")
    close = F.least(F.col("close_neighbours"), F.lit(close_cap))
    return (
        features.join(hubs, "sender_id", "left")
        .join(first, ["receiver_id", "item_id"])
        .withColumn("log_gap", log_gap)
        .withColumn("close", close)
        .withColumn("received", (F.col("delta_weeks") > 0).cast("int"))
        .withColumn("bought", F.col("sender_bought").cast("int"))
        .withColumn("hub", F.coalesce(F.col("sender_hub"), F.lit(False)).cast("int"))
        .withColumn(
            "gap_s",
            F.greatest(F.lit(-3), F.least(F.lit(3), F.floor(F.col("log_gap")))).cast("string"),
        )
        .withColumn(
            "recv_deg_s",
            F.floor(F.log2(F.col("receiver_prior_degree").cast("double") + 1))
            .cast("int")
            .cast("string"),
        )
        .withColumn("close_s", F.col("close").cast("string"))
        .withColumn("delta_s", F.col("delta_weeks").cast("string"))
        .withColumn("repeat_s", (F.col("ts") > F.col("_first_ts")).cast("int").cast("string"))
        .withColumn("bought_s", F.col("bought").cast("string"))
        .withColumn("hub_s", F.col("hub").cast("string"))
        .withColumn("tie_s", F.col("tie_score").cast("string"))
    )


def _strata(*labels: str):
    return F.concat_ws(":", F.col("item_id").cast("string"), *[F.col(c) for c in labels])


def specific_tests(
    features: DataFrame,
    conversion_index: DataFrame,
    hub_percent: float = 1.0,
    close_cap: int = 5,
    min_item_records: int = 5,
) -> list[sig.TestResult]:
    """The specific test of each share mechanism (E1-E4, E6, E9); see the module docstring.

    Args:
        features: ``stats/share_features``.
        conversion_index: ``stats/conversion_index`` (browse counts per item, for E1).
        hub_percent: the observe run's hub cut (1); the adjustment uses twice it.
        close_cap: close-neighbour counts >= close_cap share a stratum (5).
        min_item_records: records of each kind an item needs in the E1 paired test (5).
    """
    # Six tests read the covariates: persisted once, not rebuilt (two shuffles of the share
    # records each) per test.
    cov = with_covariates(features, hub_percent, close_cap).persist(StorageLevel.DISK_ONLY)
    out: list[sig.TestResult] = []

    # E2 adjusts for E3 (close), E4 (2-hop week gap, bought) and E6 (hub-like sender), for
    # the receiver's prior-degree bin and for repeat receipts:
    # * receivers with many neighbours are active users who also buy on their own, so the
    #   receiver side of the gap measures the receiver's own propensity; within a
    #   receiver-degree bin the gap varies with the sender's degree;
    # * the week gap, not just "received before": an active seed that happened to receive
    #   the item weeks earlier is not passing on a Taocode it just got, and such seeds have
    #   the highest degrees;
    # * under last-touch attribution a repeat receipt inherits the purchases that the
    #   earlier receipt caused (its sender's mechanisms), and repeats come mostly from
    #   hubs and high-degree senders (about 9 % of records of degree-1 senders, over 50 %
    #   of those of degree-256 senders on a generated world).
    specs = [
        ("degree_gap_ci", "E2", cov, "log_gap",
         ("close_s", "delta_s", "bought_s", "hub_s", "recv_deg_s", "repeat_s"),
         "specific trend of conversion on log1p prior-degree gap (sender - receiver), strata = "
         "item x close neighbours x 2-hop week gap x sender bought x hub-like sender x "
         "log2 receiver prior degree x repeat receipt", "conversion per log degree"),
        # E3 adjusts for E4 (a sender who bought is itself a close neighbour), E6 and E2 (the
        # gap bin and the receiver's degree bin: receivers with more neighbours have more
        # adopters around them whatever the neighbours do), and E9 (the tie score: a sender
        # who shares dear items with a receiver does so with the receiver's neighbours too,
        # so under E9 they buy together; z 11 with E3 off without this stratum). Not for repeat
        # receipts: adopters re-share (to this receiver too), so a repeat receipt is on the
        # path from close neighbours to conversion, and holding it fixed biases the trend.
        ("close_neighbours", "E3", cov, "close",
         ("delta_s", "bought_s", "hub_s", "gap_s", "recv_deg_s", "tie_s"),
         "specific trend of conversion on close neighbours, strata = item x 2-hop week gap x "
         "sender bought x hub-like sender x degree-gap bin x log2 receiver prior degree x "
         "tie score", "conversion per close neighbour"),
        # E4 (received) adjusts for E2 and E6: senders who never received the item are cascade
        # seeds, active users and hubs, whose receivers convert more under E2 and E6.
        ("two_hop", "E4", cov, "received", ("close_s", "hub_s", "gap_s", "recv_deg_s"),
         "specific difference, sender received vs not, strata = item x close neighbours x "
         "hub-like sender x degree-gap bin x log2 receiver prior degree",
         "conversion difference"),
        ("two_hop", "E4", cov.where(F.col("received") == 1), "bought",
         ("close_s", "delta_s", "hub_s", "gap_s", "recv_deg_s"),
         "specific difference, sender received: bought vs not, strata = item x close "
         "neighbours x 2-hop week gap x hub-like sender x degree-gap bin x log2 receiver "
         "prior degree",
         "conversion difference"),
        # E6 at record level: receivers of hub senders convert more than receivers of ordinary
        # senders with the same degree gap (E2), close neighbours (E3) and 2-hop state (E4).
        # The item-level hub-sales comparison cannot separate these: a hub's items reach more
        # receivers with a large gap, so they sell more under E2 alone.
        ("hub_sales", "E6", cov, "hub",
         ("close_s", "delta_s", "bought_s", "gap_s", "recv_deg_s"),
         "specific record-level difference of conversion, hub-like sender vs not, strata = "
         "item x close neighbours x 2-hop week gap x sender bought x degree-gap bin x log2 "
         "receiver prior degree", "conversion difference"),
        # E9 within items: an item's own price (E1) and its sender's tier (E7, which sets both
        # the item's and the tie's price mix) are fixed in the item stratum; the other
        # mechanisms' covariates as for E6, and the hub bin: hubs share with the same
        # receivers often, so they have the longest tie histories.
        ("tie_ci", "E9", cov, "tie_score",
         ("close_s", "delta_s", "bought_s", "hub_s", "gap_s", "recv_deg_s"),
         "specific trend of conversion on the tie's price history (dear - cheap items the "
         "sender shared with the receiver in the weeks before, clipped, in [-1, 1]), strata = "
         "item x close neighbours x 2-hop week gap x sender bought x hub-like sender x "
         "degree-gap bin x log2 receiver prior degree", "conversion per unit tie score"),
    ]
    for statistic, effect, data, score, labels, text, unit in specs:
        r = sig.stratified_trend(data.withColumn("_stratum", _strata(*labels)), "_stratum",
                                 score, "converted")
        out.append(sig.TestResult(
            statistic, effect, text, r["slope"], unit, r["z"], r["p"], r["n"],
            f"{r['strata']} strata",
        ))
    out.append(_plain_share_vs_browse(cov, conversion_index, min_item_records))
    cov.unpersist()
    return out


def _plain_share_vs_browse(
    cov: DataFrame, conversion_index: DataFrame, min_item_records: int
) -> sig.TestResult:
    """E1 without the other mechanisms: per item, the CI of share records that carry none of
    their covariates (sender never received the item, no close neighbour, sender not hub-like,
    log1p prior-degree gap within +-0.5, tie score 0) against the item's browse CI, paired t.

    Why: every social mechanism lifts share conversion above browsing, so the raw paired t of
    Def. 4 finds a lift with E1 off (+71 % on a generated world). The gap band is symmetric
    around zero, where the degree-gap mechanism adds nothing either way. (A one-sided margin
    such as log gap <= -1 leaves E2's negative side in: -19 %, p 0.08 with E1 off.)
    """
    plain = cov.where(
        (F.col("received") == 0) & (F.col("close") == 0) & (F.col("hub") == 0)
        & (F.abs(F.col("log_gap")) < 0.5) & (F.col("tie_score") == 0)
    )
    per_item = plain.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("plain_records"),
        F.sum(F.col("converted").cast("long")).alias("plain_conversions"),
    )
    paired = (
        conversion_index.join(per_item, "item_id")
        .where(
            (F.col("plain_records") >= min_item_records)
            & (F.col("browse_records") >= min_item_records)
        )
        .select(
            (F.col("plain_conversions") / F.col("plain_records")).alias("ci_plain"),
            (F.col("browse_conversions") / F.col("browse_records")).alias("ci_browse"),
        )
    )
    t = sig.paired_t(paired, "ci_plain", "ci_browse")
    return sig.TestResult(
        "conversion_index", "E1", "specific paired t over items (CI of share records with no "
        "other mechanism's covariate - CI_browse): sender never received it, no close "
        "neighbour, sender not hub-like, |log1p prior-degree gap| < 0.5, tie score 0",
        t["rel_diff"], "relative difference of mean CIs", t["t"], t["p"], t["n"],
        f"mean CI plain taocode {sig.number(t['mean_a'])}, "
        f"mean CI browse {sig.number(t['mean_b'])}",
    )
