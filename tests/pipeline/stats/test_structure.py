"""Degrees, degree-gap CI, close neighbours and 2-hop on the tiny world."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.stats import structure, temporal
from pipeline.stats.common import neighbour_pairs, user_degrees, with_conversion
from tests.pipeline.stats import tiny_world


def annotated(spark):
    raw = tiny_world.frames(spark)
    shares = raw["shares"].join(raw["items"].select("item_id", "top_category"), "item_id")
    return raw, with_conversion(shares, raw["purchases"], "receiver_id", 7)


def test_user_degrees(spark):
    raw = tiny_world.frames(spark)
    # edges 1->2, 1->3, 2->4, 3->4, 4->1: out 2,1,1,1; in 1,1,1,2
    expected = spark.createDataFrame(
        [(1, 1, 2, 3), (2, 1, 1, 2), (3, 1, 1, 2), (4, 2, 1, 3)],
        "user_id long, in_degree long, out_degree long, degree long",
    )
    assertDataFrameEqual(user_degrees(raw["shares"]), expected)


def test_degree_gap_ci(spark):
    raw, shares = annotated(spark)
    with_deg = structure.with_degrees(shares, user_degrees(raw["shares"]))
    # s1 (3->2, converts), s2 (3->2): cell (3,2) 1/2; s3 (2->3), s4 (2->3, converts): (2,3)
    # 1/2; s5 (3->3): 0/1
    expected = spark.createDataFrame(
        [(3, 2, 2, 1, 0.5), (2, 3, 2, 1, 0.5), (3, 3, 1, 0, 0.0)],
        structure.DEGREE_GAP_CI,
    )
    assertDataFrameEqual(structure.degree_gap_ci(with_deg, 9), expected)
    # Degrees above max_degree drop out.
    assert structure.degree_gap_ci(with_deg, 2).count() == 0


def test_close_neighbours(spark):
    raw, shares = annotated(spark)
    neighbours = neighbour_pairs(raw["shares"])
    adoption = structure.neighbour_adoption_times(raw["shares"], raw["purchases"], neighbours)
    # Adopters (received, then bought): 2/item 10 on Jan 3, 4/item 11 on Jan 4, 4/item 10 on
    # Jan 20. Only s3 (receiver 4, item 10, Jan 9) has an earlier adopter among 4's
    # neighbours {1, 2, 3}: user 2 (Jan 3). s1 and s2 see 4's adoption of Jan 20: too late.
    with_close = structure.with_close_neighbours(shares, adoption)
    counts = {
        (r["sender_id"], r["receiver_id"]): r["close_neighbours"]
        for r in with_close.collect()
    }
    assert counts == {(1, 2): 0, (1, 3): 0, (2, 4): 1, (3, 4): 0, (4, 1): 0}
    ci = structure.close_neighbours_ci(with_close)
    # overall and category 1 alike: 0 -> s1, s2, s4, s5 (s1, s4 convert) = 2/4; 1 -> s3, 0/1
    expected = spark.createDataFrame(
        [(None, 0, 4, 2, 0.5), (None, 1, 1, 0, 0.0), (1, 0, 4, 2, 0.5), (1, 1, 1, 0, 0.0)],
        structure.CLOSE_NEIGHBOURS,
    )
    assertDataFrameEqual(ci, expected)
    # sum of adopters' degrees: user 2 (degree 2: {1, 4}) + user 4 twice ({1, 2, 3}) = 8
    assert structure.close_neighbour_join_rows(raw["shares"], raw["purchases"], neighbours) == 8


def test_two_hop(spark):
    raw, shares = annotated(spark)
    got = temporal.with_two_hop(shares, raw["purchases"], max_delta=4)
    # s3: sender 2 received item 10 on Jan 1, 8 days before -> week gap floor(8/7)+1 = 2, and
    # bought it on Jan 3 (after the receipt, before s3) -> sender_bought. Others: never received.
    rows = {
        r["sender_id"]: (r["delta_weeks"], r["sender_bought"]) for r in got.collect()
    }
    assert rows == {1: (0, False), 2: (2, True), 3: (0, False), 4: (0, False)}
    capped = temporal.with_two_hop(shares, raw["purchases"], max_delta=1)
    assert capped.where(F.col("sender_id") == 2).first()["delta_weeks"] == 1
    table = temporal.two_hop_ci(got, min_item_records=1)
    # (0, False): s1, s2, s4, s5 -> 2/4; per item (>= 1 record): item 10 1/2, 11 1/1, 12 0/1
    # -> mean 0.5, sd 0.5. (2, True): s3 -> 0/1, one item, sd undefined.
    expected = spark.createDataFrame(
        [(0, False, 4, 2, 0.5, 3, 0.5, 0.5), (2, True, 1, 0, 0.0, 1, 0.0, None)],
        temporal.TWO_HOP,
    )
    assertDataFrameEqual(table, expected)


def test_tie_history_by_hand(spark):
    from pipeline.stats.common import tie_history, with_tie_score

    # (sender, receiver, week, price_index); dear means PI >= 0.5.
    history = [
        (1, 2, 1, 0.7), (1, 2, 1, 0.9), (1, 2, 1, 0.2),  # week 1: 2 dear, 1 cheap
        (1, 2, 3, 0.1),  # week 3: 1 cheap
        (3, 4, 1, 0.8), (3, 4, 1, 0.8), (3, 4, 1, 0.8), (3, 4, 1, 0.8), (3, 4, 1, 0.8),
        (5, 5, 1, 0.9),  # a self-share is not a tie
    ]
    shares = spark.createDataFrame(
        history, "sender_id long, receiver_id long, week int, price_index double"
    )
    records = spark.createDataFrame(
        [(1, 2, 1), (1, 2, 2), (1, 2, 4), (1, 2, 5), (1, 2, 6), (2, 1, 3), (3, 4, 2),
         (3, 4, 6), (5, 5, 2)],
        "sender_id long, receiver_id long, week int",
    )
    got = {
        (r["sender_id"], r["receiver_id"], r["week"]): r["tie_score"]
        for r in with_tie_score(records, tie_history(shares)).collect()
    }
    assert got == {
        (1, 2, 1): 0.0,  # nothing before week 1
        (1, 2, 2): pytest.approx(1 / 3),  # weeks -2..1: 2 dear - 1 cheap = 1, / 3
        (1, 2, 4): 0.0,  # weeks 0..3: 2 dear - 2 cheap
        (1, 2, 5): 0.0,  # weeks 1..4: the same
        (1, 2, 6): pytest.approx(-1 / 3),  # weeks 2..5: week 3's cheap item only
        (2, 1, 3): 0.0,  # the other direction has no history
        (3, 4, 2): 1.0,  # 5 dear, clipped at 3
        (3, 4, 6): 0.0,  # week 1 is more than 4 weeks back
        (5, 5, 2): 0.0,
    }


def test_tie_ci(spark):
    df = spark.createDataFrame(
        [(0.0, True), (0.0, False), (1.0, True), (-1 / 3, False)],
        "tie_score double, converted boolean",
    )
    got = {r["tie_score"]: (r["records"], r["conversions"], r["ci"])
           for r in structure.tie_ci(df).collect()}
    assert got == {0.0: (2, 1, 0.5), 1.0: (1, 1, 1.0), -1 / 3: (1, 0, 0.0)}
