"""Re-contact by the age of a tie (E10): does a sender share again with a contact sooner after
they last interacted, and less as the tie ages?

A *contact* of user u is anyone u shared with or received a share from; the pair (u, c) is
*aged* a at time t when their last interaction (either direction, any item) was a before t.
Each pair's history splits into intervals between consecutive interactions; an interval that
ends with u sharing with c is a *re-contact* at the interval's length. Ages fall in the bins
``AGE_EDGES_DAYS`` (each bin (lo, hi], the last open).

``stats/recontact_hazard`` gives per age bin:

* the raw **hazard**: re-contacts per pair-day of exposure at that age, pooled over pairs;
* the **choice share**: re-contacts per share record the sender made while the contact was at
  that age, i.e. how often a share of u goes to c, given that u shares.

Why not test the raw hazard: it falls with age without any recency. Pairs differ in how often
they meet (a sender's favourite receivers, active senders, hubs), and the frequent pairs are
the ones seen at young ages, so pooling over pairs mixes who a pair is with how old the tie
is; and senders share in bursts (a cascade's re-shares come days after a receipt), so a young
tie also marks an active sender. On a generated world with E10 off the raw hazard of the
first day is 20-odd times that of the fourth week, the choice share 5 times.

Nor can a pair simply be compared with itself. Within a pair (stratum = pair), among the
sender's share records, is the share to c more likely when the tie is young? That holds the
pair's own rate and the sender's bursts fixed (it conditions on the sender sharing), but a
re-contact *resets* the age: the records after it are young and the re-contact itself ends
the oldest stretch, so even a memoryless sender shows re-contacts at older ages than their
records (z -10 on a 20k-record world with E10 off).

**The test** therefore compares that within-pair trend with the same trend on a *within-sender
null*: the world with each sender's receivers dealt at random to the sender's own records
(``shuffle_receivers``), which keeps every sender's times, activity and favourite receivers
and removes only any link between whom they share with and when. Without a recency mechanism a
sender's receivers are exchangeable over their records, so the two trends have the same
distribution and their difference is centred on zero (z 0.4-1.7 over three shuffles of a world
with E10 off, 24-26 with it on). The trend of each world is the pooled conditional score test
per pair (``significance.stratified_trend_counts``; score: the bin's middle age in days, ages
up to ``TEST_MAX_DAYS``): score U, information I. The statistic is
``z = -(U_obs - U_null) / sqrt(I_obs + I_null)``, the estimate the difference of the one-step
conditional-logistic slopes ``-(U_obs / I_obs - U_null / I_null)``: how much faster the log
choice rate falls per day of age than without recency, positive with recency, with the Wald
interval ``+- 1.96 sqrt(1 / I_obs + 1 / I_null)``.

Cost: a sender's records are counted per interval of each of their pairs by a running count
over the sender's sorted records and the intervals' age boundaries (``AGE_EDGES_DAYS`` after
each interaction): one sort per sender, no pair x record product, so a hub costs its
records plus seven rows per interval. The null doubles it.
"""

from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import stats as sps

from pipeline.stats import significance as sig

DAY_US = 86_400_000_000
#: The seed of the within-sender null's deal (``shuffle_receivers``).
NULL_SEED = 0
#: Age bins (lo, hi] in days; the last, from the last edge on, is open.
AGE_EDGES_DAYS = (0, 1, 3, 7, 14, 28)
#: The test reads the closed bins (ages up to 28 days), scored by their middle age.
TEST_MAX_DAYS = AGE_EDGES_DAYS[-1]

RECONTACT_HAZARD = T.StructType(
    [
        T.StructField("age_bin", T.IntegerType()),
        T.StructField("age_lo_days", T.DoubleType()),
        T.StructField("age_hi_days", T.DoubleType()),  # null: open
        T.StructField("exposure_days", T.DoubleType()),
        T.StructField("recontacts", T.LongType()),
        T.StructField("rate_per_day", T.DoubleType()),
        T.StructField("sender_records", T.LongType()),
        T.StructField("choice_share", T.DoubleType()),
        # the same counts on the within-sender null (``shuffle_receivers``)
        T.StructField("null_recontacts", T.LongType()),
        T.StructField("null_sender_records", T.LongType()),
        T.StructField("null_choice_share", T.DoubleType()),
    ]
)


def world_end_us(origin: dt.date, weeks: int) -> int:
    """The end of week ``weeks`` counted from ``origin`` (a Monday, UTC), in epoch micros:
    where the last interval of every pair is cut."""
    end = dt.datetime.combine(origin, dt.time(), tzinfo=dt.UTC) + dt.timedelta(weeks=weeks)
    return int(end.timestamp()) * 1_000_000


def pair_intervals(shares: DataFrame, end_us: int) -> DataFrame:
    """(user_id, contact_id, start_us, end_us, recontact): each pair's intervals between
    consecutive interactions (distinct times, both directions; self-shares left out), the last
    cut at ``end_us``; ``recontact``: the interval ends with the user sharing with the
    contact."""
    pairs = shares.where(F.col("sender_id") != F.col("receiver_id")).select(
        "sender_id", "receiver_id", F.unix_micros("ts").alias("at")
    )
    both = pairs.select(
        F.col("sender_id").alias("user_id"), F.col("receiver_id").alias("contact_id"), "at",
        F.lit(True).alias("sent"),
    ).unionByName(pairs.select(
        F.col("receiver_id").alias("user_id"), F.col("sender_id").alias("contact_id"), "at",
        F.lit(False).alias("sent"),
    ))
    touches = both.groupBy("user_id", "contact_id", "at").agg(F.max("sent").alias("sent"))
    after = Window.partitionBy("user_id", "contact_id").orderBy("at")
    return (
        touches.withColumn("next_at", F.lead("at").over(after))
        .withColumn("next_sent", F.lead("sent").over(after))
        .select(
            "user_id",
            "contact_id",
            F.col("at").alias("start_us"),
            F.coalesce("next_at", F.lit(end_us)).alias("end_us"),
            F.coalesce("next_sent", F.lit(False)).alias("recontact"),
        )
        .where(F.col("end_us") > F.col("start_us"))
    )


def _boundaries() -> list:
    """The query times of an interval: its start plus each edge, none past its end, then its
    end (``len(AGE_EDGES_DAYS) + 1`` points, so bin k is between points k and k + 1)."""
    start, end = F.col("start_us"), F.col("end_us")
    points = [F.least(start + F.lit(e * DAY_US), end) for e in AGE_EDGES_DAYS]
    return [*points, end]


def with_sender_records(intervals: DataFrame, shares: DataFrame) -> DataFrame:
    """Add ``sender_records``: per age bin, the user's share records (to anyone) at times the
    pair was that old, i.e. in (start + lo, start + hi] within the interval (an array, one
    count per bin). A record at an interval's end belongs to it, not to the next one.

    ``R(x)``, the user's records at or before x, comes from one running count over the
    user's records and the intervals' boundary points sorted together (records before points
    at equal times); a bin's count is ``R`` at its upper point minus ``R`` at its lower."""
    key = ["user_id", "contact_id", "start_us"]
    points = intervals.select(
        *key, F.posexplode(F.array(*_boundaries())).alias("k", "at")
    ).withColumn("record", F.lit(0))
    records = shares.select(
        F.col("sender_id").alias("user_id"), F.unix_micros("ts").alias("at"),
        F.lit(1).alias("record"),
    )
    upto = (
        Window.partitionBy("user_id")
        .orderBy(F.col("at"), F.col("record").desc())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    counted = (
        points.unionByName(records, allowMissingColumns=True)
        .withColumn("R", F.sum("record").over(upto))
        .where(F.col("record") == 0)
        .groupBy(*key)
        .agg(F.array_sort(F.collect_list(F.struct("k", "R"))).alias("_r"))
    )
    bins = len(AGE_EDGES_DAYS)
    per_bin = F.transform(
        F.sequence(F.lit(0), F.lit(bins - 1)),
        lambda b: (F.element_at("_r", b + 2)["R"] - F.element_at("_r", b + 1)["R"]).cast("long"),
    )
    return intervals.join(counted.select(*key, per_bin.alias("sender_records")), key)


def shuffle_receivers(shares: DataFrame, seed: int = NULL_SEED) -> DataFrame:
    """The within-sender null: ``shares`` (sender_id, receiver_id, ts) with each sender's
    receivers dealt to the sender's own records in a hashed random order (``seed``), times
    kept. Each sender keeps how often they share, when, and with whom how often; only which
    share went to whom is random, as it is when no recency acts."""
    order = Window.partitionBy("sender_id")
    by_time = order.orderBy("ts", "receiver_id", "item_id")
    key = F.xxhash64(F.lit(seed), F.lit("recency-null"), "sender_id", "receiver_id", "item_id",
                     "ts")
    ranked = (
        shares.select("sender_id", "receiver_id", "item_id", "ts")
        .withColumn("_k", F.row_number().over(by_time))
        .withColumn("_deal", F.row_number().over(order.orderBy(key, "ts", "receiver_id")))
    )
    times = ranked.select("sender_id", "item_id", "ts", "_k")
    receivers = ranked.select("sender_id", "receiver_id", F.col("_deal").alias("_k"))
    return times.join(receivers, ["sender_id", "_k"]).drop("_k")


def pair_bins(shares: DataFrame, end_us: int) -> DataFrame:
    """(user_id, contact_id, age_bin, exposure_days, recontacts, sender_records): per pair
    and age bin, the days the pair spent at that age, its re-contacts at it and the user's
    share records meanwhile. Bins a pair never reached have no row."""
    intervals = with_sender_records(pair_intervals(shares, end_us), shares)
    length = (F.col("end_us") - F.col("start_us")) / F.lit(float(DAY_US))
    edges = [*AGE_EDGES_DAYS, None]
    rows = []
    for b in range(len(AGE_EDGES_DAYS)):
        lo, hi = edges[b], edges[b + 1]
        upper = length if hi is None else F.least(length, F.lit(float(hi)))
        inside = (length > lo) & (F.lit(True) if hi is None else (length <= hi))
        rows.append(F.struct(
            F.lit(b).alias("age_bin"),
            (upper - F.lit(float(lo))).alias("exposure_days"),
            (F.col("recontact") & inside).cast("long").alias("recontacts"),
            F.element_at("sender_records", b + 1).alias("sender_records"),
        ))
    return (
        intervals.select("user_id", "contact_id", F.explode(F.array(*rows)).alias("_b"))
        .select("user_id", "contact_id", "_b.*")
        .where(F.col("exposure_days") > 0)
        .groupBy("user_id", "contact_id", "age_bin")
        .agg(
            F.sum("exposure_days").alias("exposure_days"),
            F.sum("recontacts").alias("recontacts"),
            F.sum("sender_records").alias("sender_records"),
        )
    )


def _bin_totals(bins: DataFrame, prefix: str = "") -> DataFrame:
    return bins.groupBy("age_bin").agg(
        F.sum("exposure_days").alias(f"{prefix}exposure_days"),
        F.sum("recontacts").alias(f"{prefix}recontacts"),
        F.sum("sender_records").alias(f"{prefix}sender_records"),
    )


def recontact_hazard(bins: DataFrame, null_bins: DataFrame) -> DataFrame:
    """``stats/recontact_hazard`` (``RECONTACT_HAZARD``) from the ``pair_bins`` of the world
    and of its within-sender null (``shuffle_receivers``)."""
    edges = [*map(float, AGE_EDGES_DAYS), None]
    labels = bins.sparkSession.createDataFrame(
        [(b, edges[b], edges[b + 1]) for b in range(len(AGE_EDGES_DAYS))],
        "age_bin int, age_lo_days double, age_hi_days double",
    )
    counts = ["exposure_days", "recontacts", "sender_records", "null_recontacts",
              "null_sender_records"]
    return (
        labels.join(_bin_totals(bins), "age_bin", "left")
        .join(_bin_totals(null_bins, "null_").drop("null_exposure_days"), "age_bin", "left")
        .fillna(0, counts)
        .withColumn("rate_per_day", _ratio("recontacts", "exposure_days"))
        .withColumn("choice_share", _ratio("recontacts", "sender_records"))
        .withColumn("null_choice_share", _ratio("null_recontacts", "null_sender_records"))
        .select(*[F.col(f.name).cast(f.dataType) for f in RECONTACT_HAZARD.fields])
        .orderBy("age_bin")
    )


def _ratio(num: str, den: str):
    """num / den, null where den is 0 (a bin no pair reached)."""
    return F.when(F.col(den) > 0, F.col(num) / F.col(den))


def mid_age_days(age_bin):
    """The score of a closed bin: its middle age in days (a column expression of a bin)."""
    edges = AGE_EDGES_DAYS
    mids = F.array(*[F.lit((edges[b] + edges[b + 1]) / 2) for b in range(len(edges) - 1)])
    return F.element_at(mids, age_bin + 1)


def within_pair_trend(bins: DataFrame) -> dict:
    """The pooled within-pair trend of one world's ``pair_bins``: the sender's choice of the
    contact on the tie's age (middle age of the closed bins), per pair; the result of
    ``significance.stratified_trend_counts`` (``d``: the score U, ``information``: I)."""
    closed = bins.where(F.col("age_bin") < len(AGE_EDGES_DAYS) - 1).withColumn(
        "age_days", mid_age_days(F.col("age_bin"))
    )
    return sig.stratified_trend_counts(
        closed, ["user_id", "contact_id"], "age_days", "sender_records", "recontacts"
    )


def recency_test(observed: dict, null: dict, hazard: list[dict] | None = None) -> sig.TestResult:
    """E10's test: the world's ``within_pair_trend`` against its within-sender null's (see the
    module docstring). ``hazard``, the rows of ``recontact_hazard``, adds the raw youngest /
    oldest closed-bin ratios to the detail."""
    info = observed["information"] + null["information"]
    estimate = z = p = None
    detail = f"{observed['strata']} pairs"
    if observed["information"] > 0 and null["information"] > 0:
        estimate = -(observed["d"] / observed["information"] - null["d"] / null["information"])
        z = -(observed["d"] - null["d"]) / math.sqrt(info)
        p = float(2 * sps.norm.sf(abs(z)))
        half = 1.96 * math.sqrt(1 / observed["information"] + 1 / null["information"])
        detail += f"; 95 % CI {estimate - half:.4g} .. {estimate + half:.4g} per day"
        detail += f"; z world {-observed['z']:.3g}, null {-null['z']:.3g}"
    if hazard:
        detail += "; " + _raw_ratios(hazard)
    return sig.TestResult(
        "recontact_hazard", "E10",
        "within-pair trend of the sender's choice of a contact on the tie's age (days since "
        f"the pair last interacted, bins up to {TEST_MAX_DAYS} d), given the sender shares, "
        "against the same trend with each sender's receivers shuffled over their records",
        estimate, "extra fall of the log choice rate per day of age", z, p, observed["n"],
        detail,
    )


def _raw_ratios(hazard: list[dict]) -> str:
    """The pooled youngest / oldest closed-bin ratios of the hazard and the choice share."""
    rows = {r["age_bin"]: r for r in hazard}
    young, old = rows.get(0), rows.get(len(AGE_EDGES_DAYS) - 2)
    out = []
    for name, label in (("rate_per_day", "raw hazard"), ("choice_share", "choice share"),
                        ("null_choice_share", "null choice share")):
        a, b = (young or {}).get(name), (old or {}).get(name)
        ratio = f"{a / b:.3g}" if a is not None and b else "n/a"
        out.append(f"{label} youngest / oldest bin {ratio}")
    return ", ".join(out)
