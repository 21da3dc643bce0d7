"""The specific (mutually adjusted) tests: covariates by hand, and a confounder they remove."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import functions as F

from pipeline.stats import significance as sig
from pipeline.stats import specific

COLUMNS = ["sender_id", "receiver_id", "item_id", "ts", "converted", "sender_prior_degree",
           "receiver_prior_degree", "close_neighbours", "delta_weeks", "sender_bought",
           "tie_score"]
T0 = dt.datetime(2026, 1, 5, 12)


def record(sender, receiver, item, hours, converted, sender_degree, receiver_degree=0,
           close=0, delta=0, bought=False, tie=0.0):
    return (sender, receiver, item, T0 + dt.timedelta(hours=hours), converted, sender_degree,
            receiver_degree, close, delta, bought, tie)


def features(spark, rows):
    return spark.createDataFrame(rows, COLUMNS)


def test_covariates_by_hand(spark):
    rows = [
        record(1, 10, 7, 0, False, 20, 3, close=9, delta=2, bought=True),
        record(1, 11, 7, 1, True, 20, 0),
        record(2, 10, 7, 5, False, 0, 3),  # user 10's second receipt of item 7
    ]
    got = {
        (r["sender_id"], r["receiver_id"]): r
        for r in specific.with_covariates(features(spark, rows), 50.0, close_cap=5).collect()
    }
    first, second, repeat = got[(1, 10)], got[(1, 11)], got[(2, 10)]
    # hub-like = top 2 x hub_percent % of the 2 senders: 2 x 50 % -> both; 2 x 25 % -> 1,
    # sender 1 (2 records)
    assert first["log_gap"] == pytest.approx(math.log(21) - math.log(4))
    assert first["gap_s"] == "1"  # floor(1.658)
    assert second["gap_s"] == "3"  # floor(log 21 = 3.04)
    assert repeat["gap_s"] == "-2"  # floor(-log 4 = -1.39)
    assert first["recv_deg_s"] == "2"  # floor(log2(3 + 1))
    assert (first["close"], first["close_s"]) == (5, "5")  # capped
    assert (first["received"], first["delta_s"], first["bought"]) == (1, "2", 1)
    assert (second["received"], second["delta_s"], second["bought"]) == (0, "0", 0)
    assert [first["repeat_s"], second["repeat_s"], repeat["repeat_s"]] == ["0", "0", "1"]
    assert first["hub"] == repeat["hub"] == 1
    one_hub = {
        r["sender_id"]: r["hub"]
        for r in specific.with_covariates(features(spark, rows), 25.0, 5).collect()
    }
    assert one_hub == {1: 1, 2: 0}


def test_degree_gap_test_holds_hubs_fixed(spark):
    # One item. Hub-like senders 1 and 2 (10 records each) convert 5 in 10 whatever their
    # degree; ordinary senders 3 and 4 (8 records each) convert 1 in 8. Hubs also have the
    # larger degrees, so a within-item trend on the degree gap is positive, but inside the
    # hub and the ordinary stratum the gap does nothing: the specific E2 trend is exactly 0.
    rows, receiver = [], 100
    for sender, n, conversions, degree in ((1, 10, 5, 20), (2, 10, 5, 7), (3, 8, 1, 2),
                                           (4, 8, 1, 0)):
        for k in range(n):
            rows.append(record(sender, receiver, 7, k, k < conversions, degree))
            receiver += 1
    df = features(spark, rows)
    ci = spark.createDataFrame([(7, 10, 1)], ["item_id", "browse_records", "browse_conversions"])
    # top 2 x 25 % of 4 senders = 2 hub-like senders: 1 and 2
    tests = specific.specific_tests(df, ci, hub_percent=25.0)
    (gap,) = [t for t in tests if t.effect == "E2"]
    assert gap.estimate == pytest.approx(0.0, abs=1e-12)
    assert gap.p_value == pytest.approx(1.0)
    plain = sig.stratified_trend(
        specific.with_covariates(df, 25.0, 5), "item_id", "log_gap", "converted"
    )
    assert plain["slope"] > 0.05 and plain["p"] < 0.05
    assert {t.effect for t in tests} == {"E1", "E2", "E3", "E4", "E6", "E9"}


def test_tie_test_holds_the_item_fixed(spark):
    # Dear item 7: ties with a dear history (score 1) and none (0), each 2 of 5 convert.
    # Cheap item 8: ties with a cheap history (-1) and none (0), each 1 of 5 converts.
    # Pooled, a higher tie score goes with more conversion (item 7 converts more and has the
    # dear ties: what E1 and E7 do), but within each item the tie does nothing: the specific
    # E9 trend is exactly 0. Every sender-receiver pair is new, so no other covariate varies.
    rows, receiver = [], 100
    for item, tie, conversions in ((7, 1.0, 2), (7, 0.0, 2), (8, -1.0, 1), (8, 0.0, 1)):
        for k in range(5):
            rows.append(record(receiver, receiver + 1, item, k, k < conversions, 0, tie=tie))
            receiver += 2
    df = features(spark, rows)
    ci = spark.createDataFrame([(7, 10, 1)], ["item_id", "browse_records", "browse_conversions"])
    (tie,) = [t for t in specific.specific_tests(df, ci) if t.effect == "E9"]
    assert tie.estimate == pytest.approx(0.0, abs=1e-12)
    assert tie.p_value == pytest.approx(1.0)
    pooled = sig.stratified_trend(df.withColumn("all", F.lit(1)), "all", "tie_score",
                                  "converted")
    # pooled: x = 1 (5 records, 2 conversions), 0 (10, 3), -1 (5, 1); mean x 0, sum of
    # squares 10, sum x*y = 2 - 1 = 1: slope 1 / 10
    assert pooled["slope"] == pytest.approx(0.1)
