"""The fused ``share_features`` equals the chain of single-statistic functions."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.stats import features, structure, temporal
from pipeline.stats.common import (
    neighbour_pairs,
    tie_history,
    user_degrees,
    with_conversion,
    with_prior_degrees,
    with_tie_score,
    with_week,
)
from tests.pipeline.stats import tiny_world


def reference(shares, purchases, items, window_days, attribution, max_delta):
    """What the observe run computed before the fused path: one function per statistic."""
    degrees = user_degrees(shares)
    adoption = structure.neighbour_adoption_times(shares, purchases, neighbour_pairs(shares))
    priced = shares.join(items.select("item_id", "top_category", "price_index"), "item_id", "left")
    annotated = with_conversion(priced, purchases, "receiver_id", window_days, attribution)
    annotated = structure.with_degrees(annotated, degrees)
    annotated = with_prior_degrees(annotated)
    annotated = structure.with_close_neighbours(annotated, adoption)
    annotated = temporal.with_two_hop(annotated, purchases, max_delta=max_delta)
    annotated = with_tie_score(annotated, tie_history(priced))
    return annotated.select(*features.SHARE_FEATURE_COLUMNS)


def fused(shares, purchases, items, window_days, attribution, max_delta):
    lookups = features.Lookups.build(shares, purchases)
    return features.share_features(
        shares, items, lookups.degrees(), lookups, window_days, attribution, max_delta
    )


def random_world(spark, seed: int):
    """6 users, 3 items, 4 weeks: repeated receipts, self-shares, purchases before and after."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

    def when():
        return start + dt.timedelta(hours=rng.randrange(0, 28 * 24))

    shares = [(rng.randint(1, 6), rng.randint(1, 6), rng.randint(10, 12), when())
              for _ in range(80)]
    purchases = [(rng.randint(1, 6), rng.randint(10, 12), when()) for _ in range(30)]
    shares_df = spark.createDataFrame(
        shares, "sender_id long, receiver_id long, item_id long, ts timestamp"
    )
    purchases_df = spark.createDataFrame(purchases, "user_id long, item_id long, ts timestamp")
    items = spark.createDataFrame([(10, 1, 0.2), (11, 1, 0.7), (12, 2, 0.9)],
                                  "item_id long, top_category int, price_index double")
    origin = dt.date(2024, 1, 1)
    return with_week(shares_df, origin), with_week(purchases_df, origin), items


def _tiny_args(spark):
    raw = tiny_world.frames(spark)
    shares = with_week(raw["shares"], tiny_world.ORIGIN)
    purchases = with_week(raw["purchases"], tiny_world.ORIGIN)
    return shares, purchases, raw["items"], 7.0, "last_touch", 4


def test_fused_on_tiny_world_by_hand(spark):
    # s3 (2 -> 4, item 10, Jan 9): of 4's neighbours {1, 2, 3} only 2 received and bought item
    # 10 before (s1 Jan 1, p1 Jan 3): 1 close neighbour. Its sender 2 received the item 8 days
    # before (weeks counted from 1: floor(8 / 7) + 1 = 2) and bought it in between.
    got = fused(*_tiny_args(spark))
    s3 = got.where(F.col("sender_id") == 2).first()
    assert (s3["close_neighbours"], s3["delta_weeks"], s3["sender_bought"]) == (1, 2, True)


@pytest.mark.slow  # the reference chain is slow; random world 1 compares the same arguments
def test_fused_equals_reference_on_tiny_world(spark):
    args = _tiny_args(spark)
    assertDataFrameEqual(fused(*args), reference(*args))


def test_fused_equals_reference_on_random_worlds(spark):
    for seed, attribution, window, max_delta in ((1, "last_touch", 7.0, 4), (2, "any", 3.0, 2)):
        shares, purchases, items = random_world(spark, seed)
        args = (shares, purchases, items, window, attribution, max_delta)
        got = fused(*args)
        # the world is busy enough to exercise every column
        row = got.agg(*[F.max(c).alias(c) for c in ("converted", "close_neighbours",
                                                    "delta_weeks", "sender_prior_degree")],
                      F.min("tie_score").alias("tie_min"),
                      F.max("tie_score").alias("tie_max")).first()
        assert row["converted"] and row["close_neighbours"] > 0 and row["delta_weeks"] > 0
        assert row["sender_prior_degree"] > 0
        assert row["tie_min"] < 0 < row["tie_max"]
        assertDataFrameEqual(got, reference(*args))


def test_lookups_join_rows_and_degrees(spark):
    raw = tiny_world.frames(spark)
    shares = with_week(raw["shares"], tiny_world.ORIGIN)
    purchases = with_week(raw["purchases"], tiny_world.ORIGIN)
    lookups = features.Lookups.build(shares, purchases)
    neighbours = neighbour_pairs(shares)
    assert lookups.join_rows() == structure.close_neighbour_join_rows(
        shares, purchases, neighbours
    ) == 8
    assertDataFrameEqual(lookups.degrees(), user_degrees(shares))
    assertDataFrameEqual(lookups.neighbours, neighbours)
