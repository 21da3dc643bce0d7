"""E10 in the generator: the contacts it reads and the exponential race among them, by hand."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from pipeline.world import WorldConfig
from pipeline.world.recency import contact_history, recent_contacts, with_recency

DAY = 86_400


def test_contact_history_has_both_ends(spark):
    records = spark.createDataFrame(
        [(1, 2, 10), (3, 1, DAY + 5), (4, 4, 7)], "sender_id long, receiver_id long, t long")
    got = sorted(tuple(r) for r in contact_history(records).collect())
    # (user, contact, time, day); the self-share 4 -> 4 is no contact
    assert got == [(1, 2, 10, 0), (1, 3, DAY + 5, 1), (2, 1, 10, 0), (3, 1, DAY + 5, 1)]


def test_race_picks_recent_contacts_by_their_weight(spark):
    # Sender 1 met user 2 last at day 9.5 (and also at day 2: only the last counts) and user 3
    # at day 7, user 4 at day 10.5 (after the shares: not yet a contact) and user 5 at day
    # -20 (past the 25-day horizon of tau 2.5 d). 4000 records share at day 10: ages 0.5 and
    # 3 days, weights exp(-0.2) = 0.8187 and exp(-1.2) = 0.3012: user 2 wins 73.1 %.
    cfg = WorldConfig(e10_repeat=1.0, e10_tau_days=2.5)
    contacts = contact_history(spark.createDataFrame(
        [(1, 2, int(9.5 * DAY)), (1, 2, 2 * DAY), (3, 1, 7 * DAY), (1, 4, int(10.5 * DAY)),
         (1, 5, -20 * DAY)],
        "sender_id long, receiver_id long, t long"))
    recs = spark.range(4000).select(
        F.col("id").alias("rec_key"), F.lit(1).cast("long").alias("sender_id"),
        F.lit(10 * DAY).cast("long").alias("share_t"))
    picks = {r["e10_contact"]: r["n"] for r in recent_contacts(recs, contacts, cfg, 0)
             .groupBy("e10_contact").agg(F.count(F.lit(1)).alias("n")).collect()}
    assert set(picks) == {2, 3}
    share = picks[2] / 4000
    expected = math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.2))
    assert share == pytest.approx(expected, abs=3 * math.sqrt(expected * (1 - expected) / 4000))


def test_repeat_probability_and_no_contact(spark):
    # e10_repeat 0.5: about half the records of sender 1 go to its one contact; sender 9 has
    # none and keeps the drawn receiver.
    cfg = WorldConfig(e10_repeat=0.5)
    contacts = contact_history(spark.createDataFrame(
        [(1, 2, 0)], "sender_id long, receiver_id long, t long"))
    recs = spark.range(2000).select(
        F.col("id").alias("rec_key"),
        F.when(F.col("id") % 2 == 0, 1).otherwise(9).cast("long").alias("sender_id"),
        F.lit(DAY).cast("long").alias("share_t"), F.lit(77).cast("long").alias("receiver_id"))
    out = with_recency(recs, contacts, cfg, 0)
    by_sender = {(r["sender_id"], r["receiver_id"], r["recontact"]): r["n"] for r in
                 out.groupBy("sender_id", "receiver_id", "recontact")
                 .agg(F.count(F.lit(1)).alias("n")).collect()}
    assert by_sender[(9, 77, False)] == 1000
    assert by_sender[(1, 2, True)] + by_sender[(1, 77, False)] == 1000
    assert abs(by_sender[(1, 2, True)] - 500) < 3 * math.sqrt(250)
    # without contacts (E10 off) nothing changes
    same = with_recency(recs, None, cfg, 0)
    assert same.where(F.col("recontact") | (F.col("receiver_id") != 77)).count() == 0
