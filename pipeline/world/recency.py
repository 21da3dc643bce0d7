"""E10, recency: a sender shares again with the people they were in touch with lately, the more
so the more recent the contact.

With E10 on, each record's receiver (drawn as ``cascades`` says) is, with probability
``e10_repeat``, replaced by one of the sender's *earlier contacts*: the people the sender shared
with or received a share from before the moment they share (``share_t``; so never another
receiver of the same share, whose records open after it). A contact is chosen with weight
``exp(-age / e10_tau_days)``, where age is the time from the pair's *last* interaction (either
direction, any item) to ``share_t``. A sender with no earlier contact keeps the drawn receiver.
With E10 off a receiver depends on no history, so which of the sender's contacts a share goes
to does not depend on how long ago the pair last met: what ``pipeline.stats.recency`` tests.

**Whose contacts.** The contacts come from the *contacts pass*: the cascades generated from the
same draws with no effect that reads the network (E2, E3, E9, E10), the way E2, E3 and E9 read
a first pass (see ``cascades``). E10 decides who receives, so the network that E2, E3 and E9
read is a pass *with* E10 (reading the contacts pass) and without them; with E10 and any of them
on, a world is generated in three passes (``generate``). The final world's contacts are not the
contacts pass's (a replaced receiver re-shares to others), so observe sees the recency diluted,
not removed.

**The weighted choice** is an exponential race, computed on the executors: each candidate c
gets a hashed draw ``E_c ~ Exp(1)`` (seed, salt, record, contact) and the smallest
``E_c / w_c`` wins, which happens with probability ``w_c / sum(w)``. In logs the key is
``log E_c + age_c / tau``; with one ``E_c`` per (record, contact), the smallest key over all of
a contact's interactions is that of its last one, so the race runs over the interactions
themselves and no per-contact "last interaction" is ever aggregated.

**Horizon.** Interactions more than ``HORIZON_TAUS`` decay times before ``share_t`` are left
out: their weight is below ``exp(-HORIZON_TAUS)`` of a fresh contact's, and cutting them keeps
the join to the sender's interactions of the last few weeks (day buckets, an equi-join), however
long the world. A sender whose contacts are all older than that keeps the drawn receiver.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipeline.world.config import WorldConfig
from pipeline.world.draws import exponential, uniform

DAY_S = 86_400
#: Interactions older than this many ``e10_tau_days`` do not compete (weight < e^-10).
HORIZON_TAUS = 10.0


def contact_history(records: DataFrame) -> DataFrame:
    """(user_id, contact_id, it, day): every interaction of the records' share graph from both
    ends (the sender shared with the contact, or received from them) at the record's time
    ``t``, with its day ``floor(t / DAY_S)``; self-shares left out."""
    pairs = records.where(F.col("sender_id") != F.col("receiver_id"))
    both = pairs.select(
        F.col("sender_id").alias("user_id"), F.col("receiver_id").alias("contact_id"),
        F.col("t").alias("it"),
    ).unionByName(pairs.select(
        F.col("receiver_id").alias("user_id"), F.col("sender_id").alias("contact_id"),
        F.col("t").alias("it"),
    ))
    return both.distinct().withColumn("day", F.floor(F.col("it") / DAY_S))


def horizon_s(cfg: WorldConfig) -> float:
    """How far back, in seconds, an interaction still competes (``HORIZON_TAUS`` decay times)."""
    return HORIZON_TAUS * cfg.e10_tau_days * DAY_S


def recent_contacts(recs: DataFrame, contacts: DataFrame, cfg: WorldConfig, hop: int) -> DataFrame:
    """(rec_key, e10_contact): for each record drawn to repeat (probability ``e10_repeat``),
    the winner of the exponential race among its sender's earlier contacts in ``contacts``
    (``contact_history``); records without a candidate have no row.

    Each drawn record meets the sender's interactions of the days its horizon spans, so a
    record costs the sender's interactions of the last ``HORIZON_TAUS * e10_tau_days`` days.
    """
    s = cfg.seed
    share_t = F.col("share_t")
    day = F.floor(share_t / DAY_S)
    first_day = F.floor((share_t - F.lit(horizon_s(cfg))) / DAY_S)
    drawn = (
        recs.where(uniform(s, f"e10-repeat{hop}", "rec_key") < cfg.e10_repeat)
        .select("rec_key", "sender_id", "share_t")
        .withColumn("day", F.explode(F.sequence(first_day, day)))
    )
    candidates = drawn.join(
        contacts.withColumnRenamed("user_id", "sender_id"), ["sender_id", "day"]
    ).where((F.col("it") < share_t) & (share_t - F.col("it") <= horizon_s(cfg)))
    race = F.log(exponential(s, f"e10-race{hop}", 1.0, "rec_key", "contact_id")) + (
        share_t - F.col("it")
    ) / F.lit(cfg.e10_tau_days * DAY_S)
    return (
        candidates.groupBy("rec_key")
        .agg(F.min(F.struct(race.alias("key"), F.col("contact_id"))).alias("_won"))
        .select("rec_key", F.col("_won.contact_id").alias("e10_contact"))
    )


def with_recency(recs: DataFrame, contacts: DataFrame | None, cfg: WorldConfig, hop: int):
    """Replace the receivers of the records E10 draws to repeat (``recent_contacts``) and add
    ``recontact``: whether the receiver is E10's pick. ``contacts`` None (E10 off, or the
    contacts pass): nothing changes and ``recontact`` is False."""
    if contacts is None:
        return recs.withColumn("recontact", F.lit(False))
    picks = recent_contacts(recs, contacts, cfg, hop)
    picked: Column = F.col("e10_contact").isNotNull()
    return (
        recs.join(picks, "rec_key", "left")
        .withColumn("receiver_id", F.when(picked, F.col("e10_contact"))
                    .otherwise(F.col("receiver_id")))
        .withColumn("recontact", picked)
        .drop("e10_contact")
    )

