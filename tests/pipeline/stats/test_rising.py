"""RiseNet family on hand-made grids and on the tiny world."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.stats import rising
from pipeline.stats.common import with_week
from tests.pipeline.stats import tiny_world

# One category, three items, weeks 1-2 "before", week 3 "after"; 3 items -> both cut-offs
# ceil(3 * 3 / 1000) = ceil(3 * 1 / 1000) = 1 slot.
#   item  week1 (rec, scale, sales)  week2        week3
#   1     (2, 2, 5)                  (3, 3, 5)    (1, 1, 1)   before 10 (rank 1): not rising
#   2     (1, 1, 0)                  (4, 4, 1)    (5, 5, 9)   before 1 (rank 2), after 9
#                                                             (rank 1): rising
#   3     (0, 0, 0)                  (0, 0, 0)    (0, 0, 0)   never sells
GRID = [
    (1, 1, 1, 2, 2, 5), (1, 1, 2, 3, 3, 5), (1, 1, 3, 1, 1, 1),
    (2, 1, 1, 1, 1, 0), (2, 1, 2, 4, 4, 1), (2, 1, 3, 5, 5, 9),
    (3, 1, 1, 0, 0, 0), (3, 1, 2, 0, 0, 0), (3, 1, 3, 0, 0, 0),
]


@pytest.fixture
def grid(spark):
    weekly = spark.createDataFrame(GRID, rising.ITEM_WEEKLY)
    items = spark.createDataFrame(
        [(1, 1), (2, 1), (3, 1)], "item_id long, top_category int"
    )
    labels = rising.rising_stars(weekly, items, [1], before_weeks=2, after_weeks=1)
    return weekly, labels


def test_window_starts():
    assert rising.window_starts(12) == [1, 2, 3, 4, 5, 6, 7]
    assert rising.window_starts(12, step=3) == [1, 4, 7]
    assert rising.window_starts(5) == []


def test_permille_cutoff_keeps_one_slot():
    assert rising.permille_cutoff(80, 3) == 1
    assert rising.permille_cutoff(1000, 3) == 3
    assert rising.permille_cutoff(1001, 1) == 2


def test_rising_stars(spark, grid):
    _, labels = grid
    expected = spark.createDataFrame(
        [
            (1, 1, 1, 10, 1, 1, 1, 2, 1, False, 5, 3),
            (1, 2, 1, 1, 2, 1, 9, 1, 1, True, 5, 4),
            (1, 3, 1, 0, 3, 1, 0, 3, 1, False, 0, 0),
        ],
        rising.RISING_STARS,
    )
    assertDataFrameEqual(labels, expected)


def test_mdsw_and_fluctuation(spark, grid):
    weekly, labels = grid
    # Only the week 1 -> 2 difference lies inside the before-window: |3-2| = 1, |4-1| = 3, 0.
    got = rising.mdsw(weekly, labels, before_weeks=2)
    expected = spark.createDataFrame(
        [(1, 1, False, 5, 1), (1, 2, True, 5, 3), (1, 3, False, 0, 0)], rising.MDSW
    )
    assertDataFrameEqual(got, expected)
    # History weeks 1-2: population sd of (2, 3) = 0.5, of (1, 4) = 1.5, of (0, 0) = 0.
    # Average last-week scale over items with scale >= 1: round((3 + 4) / 2) = 4; exactly
    # equal: item 2; within 50%: items 1 and 2 (|3 - 4| <= 2).
    fl = rising.scale_fluctuation(weekly, labels, before_weeks=2, history_weeks=2, tolerance=0)
    assert [r["item_id"] for r in fl.where("at_average").collect()] == [2]
    fl = rising.scale_fluctuation(weekly, labels, before_weeks=2, history_weeks=2)
    expected = spark.createDataFrame(
        [
            (1, 1, False, 3, True, 2, 0.5),
            (1, 2, True, 4, True, 2, 1.5),
            (1, 3, False, 0, False, 2, 0.0),
        ],
        rising.SCALE_FLUCTUATION,
    )
    assertDataFrameEqual(fl, expected)


def tiny(spark):
    raw = tiny_world.frames(spark)
    shares = with_week(raw["shares"], tiny_world.ORIGIN)
    purchases = with_week(raw["purchases"], tiny_world.ORIGIN)
    return raw, shares, purchases


def test_item_weekly_on_tiny_world(spark):
    raw, shares, purchases = tiny(spark)
    weekly = rising.item_weekly(shares, purchases, raw["items"], 3)
    got = {(r["item_id"], r["week"]): (r["records"], r["scale"], r["sales"])
           for r in weekly.collect()}
    # item 10: s1, s2 in week 1 (receivers 2, 3), p1 in week 1; s3 in week 2; p2 in week 3
    assert got[(10, 1)] == (2, 2, 1)
    assert got[(10, 2)] == (1, 1, 0)
    assert got[(10, 3)] == (0, 0, 1)
    assert got[(11, 1)] == (1, 1, 1)
    assert got[(12, 2)] == (1, 1, 1)
    assert len(got) == 9  # 3 active items x 3 weeks, zero-filled


def test_hubs_on_tiny_world(spark):
    raw, shares, purchases = tiny(spark)
    # Senders: 1 sent 2 records, 2, 3, 4 one each; top 1% of 4 senders -> 1 slot -> user 1.
    hubs = rising.hub_nodes(shares, raw["items"], percent=1.0)
    expected = spark.createDataFrame(
        [(None, 1, 2, 2), (1, 1, 2, 2)], rising.HUB_NODES
    )
    assertDataFrameEqual(hubs, expected)
    # 50% -> 2 slots; users tied with the last slot (1 record) are all hubs.
    assert rising.hub_nodes(shares, raw["items"], percent=50.0).where(
        F.col("top_category").isNull()
    ).count() == 4

    weekly = rising.item_weekly(shares, purchases, raw["items"], 3)
    labels = rising.rising_stars(weekly, raw["items"], [1], before_weeks=2, after_weeks=1)
    counts = rising.hub_counts(shares, hubs, labels, before_weeks=2)
    # user 1 is in item 10's graph (sender) and item 12's (receiver), not in item 11's
    assert {r["item_id"]: r["hubs"] for r in counts.collect()} == {10: 1, 11: 0, 12: 1}

    item_sales = rising.hub_item_sales(shares, purchases, raw["items"], hubs)
    expected = spark.createDataFrame(
        [(10, 1, True, 3, 2), (11, 1, False, 1, 1), (12, 1, False, 1, 1)],
        rising.HUB_ITEM_SALES,
    )
    assertDataFrameEqual(item_sales, expected)
    expected = spark.createDataFrame(
        [(1, True, 1, 2.0, None, 3.0), (1, False, 2, 1.0, 0.0, 1.0)], rising.HUB_SALES
    )
    assertDataFrameEqual(rising.hub_sales(item_sales), expected)


def test_sales_dynamics_on_tiny_world(spark):
    raw, shares, purchases = tiny(spark)
    weekly = rising.item_weekly(shares, purchases, raw["items"], 3)
    # Sold items average 1 sale in every week. Week 1: items 10, 11 sold 1 -> next week 0, 0.
    # Week 2: item 12 sold 1 -> 0 in week 3. Week 3 has no next week.
    expected = spark.createDataFrame([(1, 1, 0, 2), (2, 1, 0, 1)], rising.NEXT_WEEK_SALES)
    assertDataFrameEqual(rising.next_week_sales(weekly), expected)
    # Item-weeks with scale >= 1: (10, w1) scale 2 / 1 sale; (10, w2), (11, w1), (12, w2)
    # scale 1 with 0, 1, 1 sales.
    got = {r["scale"]: (r["item_weeks"], r["mean_sales"])
           for r in rising.scale_vs_sales(weekly).collect()}
    assert got == {1: (3, pytest.approx(2 / 3)), 2: (1, 1.0)}
