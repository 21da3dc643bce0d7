"""The world's answer to a coupon, on hand-made cuts."""

from __future__ import annotations

import numpy as np

from pipeline.world.config import WorldConfig
from pipeline.world.coupons import (
    BUYS_LATER,
    BUYS_NOW,
    NO_BUY,
    coin,
    extra_purchases,
    outcome_class,
)
from pipeline.world.truth import truth_rows


def test_outcome_class_reads_the_labels():
    # (1h, 1d): a purchase within the hour is within the day too; (1, 0) cannot occur in the
    # shards but still counts as buying now
    got = outcome_class([1, 0, 0, 1], [1, 1, 0, 0])
    assert got.tolist() == [BUYS_NOW, BUYS_LATER, NO_BUY, BUYS_NOW]


def test_only_hesitant_and_cold_users_add_purchases():
    classes = np.array([BUYS_NOW, BUYS_LATER, BUYS_LATER, NO_BUY, NO_BUY, BUYS_LATER])
    u = np.array([0.0, 0.3, 0.7, 0.01, 0.5, 0.1])
    # hesitant 0.5, cold 0.02: cut 1 moves (0.3 < 0.5), cut 2 does not (0.7), cut 3 is won
    # (0.01 < 0.02), cut 4 not, cut 0 buys anyway; cut 5 would move but gets no coupon
    sent = np.array([True, True, True, True, True, False])
    assert extra_purchases(classes, sent, u, hesitant=0.5, cold=0.02) == 2
    assert extra_purchases(classes, np.ones(6, bool), u, hesitant=0.5, cold=0.02) == 3
    assert extra_purchases(classes, np.zeros(6, bool), u, hesitant=0.5, cold=0.02) == 0
    assert extra_purchases(classes, sent, u, hesitant=0.0, cold=0.0) == 0


def test_coin_is_seeded_and_uniform():
    ids = np.arange(100_000, dtype=np.int64) * 65_537
    a, b = coin(3, ids), coin(3, ids)
    assert np.array_equal(a, b) and not np.array_equal(a, coin(4, ids))
    assert 0.0 <= a.min() and a.max() < 1.0
    # 10 equal bins of 10,000 each: a binomial sd of 95; 5 sd is 475
    counts = np.histogram(a, bins=10, range=(0, 1))[0]
    assert np.abs(counts - 10_000).max() < 475


def test_the_truth_records_the_answer():
    rows = {r[2]: r for r in truth_rows(WorldConfig(coupon_hesitant=0.4)) if r[0] == "coupon"}
    assert rows["coupon_hesitant"][1:4] == (True, "coupon_hesitant", 0.4)
    assert rows["coupon_cold"][3] == 0.02
