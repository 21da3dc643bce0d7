"""Conversion index and CI lift on the tiny world (see tiny_world's docstring)."""

from __future__ import annotations

from pyspark.testing import assertDataFrameEqual

from pipeline.stats.common import with_conversion, world_origin
from pipeline.stats.conversion import CONVERSION_INDEX, ci_lift_by_leaf, conversion_index
from tests.pipeline.stats import tiny_world


def test_world_origin_is_first_monday(spark):
    raw = tiny_world.frames(spark)
    assert world_origin(raw["shares"], raw["purchases"]) == tiny_world.ORIGIN


def test_conversion_window_is_half_open(spark):
    # s3 (Jan 9) meets p2 11 days later: outside 7 days, inside 12.
    raw = tiny_world.frames(spark)
    s3 = raw["shares"].where("sender_id = 2")
    assert not with_conversion(s3, raw["purchases"], "receiver_id", 7).first()["converted"]
    assert with_conversion(s3, raw["purchases"], "receiver_id", 12).first()["converted"]


def test_conversion_index(spark):
    raw = tiny_world.frames(spark)
    got = conversion_index(raw["shares"], raw["browses"], raw["purchases"], raw["items"], 7)
    # item 10: browses b1 (converts), b2 -> 1/2; shares s1 (converts), s2, s3 -> 1/3
    # item 11: browses b3 (purchase was before), b5 -> 0/2; share s4 converts -> 1/1
    # item 12: browse b4 converts -> 1/1; share s5 (receiver 1 never buys 12) -> 0/1
    expected = spark.createDataFrame(
        [
            (10, 1, 100, 1.0, 2, 1, 0.5, 3, 1, 1 / 3),
            (11, 1, 100, 2.0, 2, 0, 0.0, 1, 1, 1.0),
            (12, 1, 101, 3.0, 1, 1, 1.0, 1, 0, 0.0),
        ],
        CONVERSION_INDEX,
    )
    assertDataFrameEqual(got, expected)


def test_ci_lift_by_leaf(spark):
    raw = tiny_world.frames(spark)
    ci = conversion_index(raw["shares"], raw["browses"], raw["purchases"], raw["items"], 7)
    got = ci_lift_by_leaf(ci).collect()
    # leaf 100 pools items 10, 11: browse 1/4, taocode 2/4 -> lift 1.0, mean PI 1.5
    # leaf 101: browse CI 1, taocode CI 0 -> lift -1, PI 3
    by_leaf = {r["leaf_category"]: r for r in got}
    assert by_leaf[100]["items"] == 2
    assert by_leaf[100]["mean_price_index"] == 1.5
    assert by_leaf[100]["ci_browse"] == 0.25
    assert by_leaf[100]["ci_taocode"] == 0.5
    assert by_leaf[100]["ci_lift"] == 1.0
    assert by_leaf[101]["ci_lift"] == -1.0


def test_last_touch_attribution(spark):
    # User 1 receives item 5 on Jan 1 and Jan 2 and buys it once on Jan 3: with "any" both
    # records convert, with "last_touch" only the Jan 2 one (Jan 1's window closes at Jan 2).
    records = spark.createDataFrame(
        [(1, 5, tiny_world.ts(1, 10)), (1, 5, tiny_world.ts(2, 10))],
        "receiver_id long, item_id long, ts timestamp",
    )
    purchases = spark.createDataFrame(
        [(1, 5, tiny_world.ts(3, 10))], "user_id long, item_id long, ts timestamp"
    )
    last = with_conversion(records, purchases, "receiver_id", 7)
    anyone = with_conversion(records, purchases, "receiver_id", 7, attribution="any")
    assert sorted((r["ts"].day, r["converted"]) for r in last.collect()) == [
        (1, False), (2, True)
    ]
    assert [r["converted"] for r in anyone.collect()] == [True, True]
