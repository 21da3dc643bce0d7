"""E10's statistic on a hand-made share log: the pairs' intervals, the hazard table and the
within-pair test, every number worked out by hand.

Users 1, 2, 3; times in days after Monday 2024-01-01 00:00 UTC; the world ends on day 14.

    s1  1 -> 2  day 0
    s2  1 -> 3  day 0.5
    s3  1 -> 2  day 2      pair (1, 2) again after 2 days: a re-contact in bin (1, 3]
    s4  3 -> 1  day 4      pair (3, 1) again after 3.5 days (s2 was their last): bin (3, 7]
    s5  1 -> 2  day 10     pair (1, 2) again after 8 days: bin (7, 14]

Intervals between a pair's interactions (the last cut at day 14), lengths in days; R: the
interval ends with the user sharing with the contact:

    (1, 2): (0, 2] R, (2, 10] R, (10, 14]        (2, 1): the same, none R (2 never shares)
    (1, 3): (0.5, 4] (ends with a receipt), (4, 14]
    (3, 1): (0.5, 4] R, (4, 14]

Exposure per bin (0,1], (1,3], (3,7], (7,14]: an interval of length L spends min(L, hi) - lo
days in each bin it reaches: (1, 2) and (2, 1) 3, 5, 5, 1 each; (1, 3) and (3, 1) 2, 4,
4.5, 3 each; in all 10, 18, 19, 8 days; re-contacts 0, 1, 1, 1.

The sender's records (to anyone) at each age of the pair: user 1 shares on days 0, 0.5, 2,
10; user 3 on day 4. (1, 2): day 0.5 at age 0.5, day 2 at age 2 (interval (0, 2]), day 10 at
age 8; (1, 3): day 2 at age 1.5, day 10 at age 6; (3, 1): day 4 at age 3.5. Per bin 1, 2, 2,
1; choice shares 0, 1/2, 1/2, 1.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pipeline.stats import recency

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
END_US = recency.world_end_us(dt.date(2024, 1, 1), 2)
SHARES = [(1, 2, 0.0), (1, 3, 0.5), (1, 2, 2.0), (3, 1, 4.0), (1, 2, 10.0)]


def shares(spark, rows=SHARES):
    return spark.createDataFrame(
        [(s, r, 7, T0 + dt.timedelta(days=d)) for s, r, d in rows],
        "sender_id long, receiver_id long, item_id long, ts timestamp",
    )


def test_intervals_by_hand(spark):
    got = {
        (r.user_id, r.contact_id, (r.start_us - END_US) / recency.DAY_US + 14,
         (r.end_us - END_US) / recency.DAY_US + 14): r.recontact
        for r in recency.pair_intervals(shares(spark), END_US).collect()
    }
    assert got == {
        (1, 2, 0.0, 2.0): True, (1, 2, 2.0, 10.0): True, (1, 2, 10.0, 14.0): False,
        (2, 1, 0.0, 2.0): False, (2, 1, 2.0, 10.0): False, (2, 1, 10.0, 14.0): False,
        (1, 3, 0.5, 4.0): False, (1, 3, 4.0, 14.0): False,
        (3, 1, 0.5, 4.0): True, (3, 1, 4.0, 14.0): False,
    }


def test_hazard_table_by_hand(spark):
    bins = recency.pair_bins(shares(spark), END_US)
    # the null's counts here come from the world itself: a null equal to the world
    rows = [r.asDict() for r in recency.recontact_hazard(bins, bins).collect()]
    assert [r["age_bin"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [(r["age_lo_days"], r["age_hi_days"]) for r in rows] == [
        (0.0, 1.0), (1.0, 3.0), (3.0, 7.0), (7.0, 14.0), (14.0, 28.0), (28.0, None)]
    assert [r["exposure_days"] for r in rows] == pytest.approx([10, 18, 19, 8, 0, 0])
    assert [r["recontacts"] for r in rows] == [0, 1, 1, 1, 0, 0]
    assert [r["sender_records"] for r in rows] == [1, 2, 2, 1, 0, 0]
    assert [r["rate_per_day"] for r in rows[:4]] == pytest.approx([0, 1 / 18, 1 / 19, 1 / 8])
    assert [r["choice_share"] for r in rows[:4]] == pytest.approx([0, 0.5, 0.5, 1])
    assert rows[4]["rate_per_day"] is None and rows[5]["choice_share"] is None
    assert [r["null_recontacts"] for r in rows] == [r["recontacts"] for r in rows]
    assert [r["null_choice_share"] for r in rows] == [r["choice_share"] for r in rows]


def test_within_pair_trend_by_hand(spark):
    # Scores are the bins' middle ages 0.5, 2, 5, 10.5. Per pair, over the sender's records:
    # (1, 2): ages 0.5 (not to 2), 2 (to 2), 8 (to 2): N 3, S 2, SX 13, SXX 114.5, T 12.5;
    #   U = T - S SX / N = 12.5 - 26 / 3 = 3.8333, I = S (N - S) / (N (N - 1)) x
    #   (SXX - SX^2 / N) = 1 / 3 x 58.1667 = 19.3889.
    # (1, 3): two records, neither to 3: S 0, no information. (3, 1): one record (N 1): left
    # out. (2, 1): user 2 never shares. z = U / sqrt(I) = 0.8706: the older re-contact
    # outweighs the younger.
    trend = recency.within_pair_trend(recency.pair_bins(shares(spark), END_US))
    assert trend["d"] == pytest.approx(3.8333333, rel=1e-6)
    assert trend["information"] == pytest.approx(19.3888889, rel=1e-6)
    assert trend["z"] == pytest.approx(0.8706, abs=1e-4)
    assert (trend["n"], trend["strata"]) == (5, 2)  # the records of pairs with N > 1: 3 + 2


def test_recency_test_against_the_null_by_hand():
    # World U 3.8333, I 19.3889 (above); a null with U 1, I 5:
    # z = -(3.8333 - 1) / sqrt(24.3889) = -0.5737, p 0.5661;
    # estimate -(3.8333 / 19.3889 - 1 / 5) = 0.00229 per day, CI +- 1.96 sqrt(1 / 19.3889
    # + 1 / 5) = +- 0.9831.
    world = {"d": 3.8333333, "information": 19.3888889, "z": 0.8706, "n": 5, "strata": 2}
    null = {"d": 1.0, "information": 5.0, "z": 1 / math.sqrt(5), "n": 5, "strata": 2}
    hazard = [{"age_bin": 0, "rate_per_day": 0.2, "choice_share": 0.1, "null_choice_share": 0.1},
              {"age_bin": 4, "rate_per_day": 0.01, "choice_share": 0.05,
               "null_choice_share": 0.1}]
    result = recency.recency_test(world, null, hazard)
    assert (result.statistic, result.effect, result.n) == ("recontact_hazard", "E10", 5)
    assert result.statistic_value == pytest.approx(-0.5737, abs=1e-4)
    assert result.p_value == pytest.approx(0.5661, abs=1e-4)
    assert result.estimate == pytest.approx(-(3.8333333 / 19.3888889 - 0.2), rel=1e-6)
    assert "95 % CI -0.9808 .. 0.9854 per day" in result.detail
    assert result.detail.endswith("raw hazard youngest / oldest bin 20, choice share youngest "
                                  "/ oldest bin 2, null choice share youngest / oldest bin 1")
    # no information on either side: no test
    empty = {"d": 0.0, "information": 0.0, "z": None, "n": 0, "strata": 0}
    assert recency.recency_test(empty, null).p_value is None


def test_shuffle_keeps_each_senders_times_and_receivers(spark):
    df = shares(spark, SHARES + [(3, 2, 5.0), (3, 4, 6.0)])
    got = recency.shuffle_receivers(df).collect()
    before = df.collect()
    for sender in (1, 3):
        mine = [r for r in got if r.sender_id == sender]
        theirs = [r for r in before if r.sender_id == sender]
        assert sorted(r.ts for r in mine) == sorted(r.ts for r in theirs)
        assert sorted(r.receiver_id for r in mine) == sorted(r.receiver_id for r in theirs)
    # another seed deals user 3's three receivers in another order
    orders = {tuple(r.receiver_id for r in sorted(
        (r for r in recency.shuffle_receivers(df, seed).collect() if r.sender_id == 3),
        key=lambda r: r.ts)) for seed in range(6)}
    assert len(orders) > 1


def test_within_pair_trend_fires_when_young_ties_are_chosen(spark):
    # Sender 1 shares once a day. On days 1-3 it goes back to user 2 (the tie one day old
    # each time); from day 4 on it shares with a new user each day while the tie with 2 ages
    # (1 to 10 days): within pair (1, 2) the shares to 2 are the young ones.
    rows = [(1, 2, float(d)) for d in range(4)] + [(1, 100 + d, float(d)) for d in range(4, 14)]
    trend = recency.within_pair_trend(recency.pair_bins(shares(spark, rows), END_US))
    assert trend["z"] < 0 and trend["p"] < 0.05
