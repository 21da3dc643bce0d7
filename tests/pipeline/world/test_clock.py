"""The world's weeks are the statistics' weeks: the same Monday-to-Monday UTC blocks, numbered
from 0 by the generator and from 1 by ``pipeline.stats.common.with_week``."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from pipeline.stats.common import with_week
from pipeline.world import WEEK_S, WorldConfig
from pipeline.world.clock import timestamp, week_index, week_start


def test_generator_and_statistics_agree_on_weeks(spark):
    cfg = WorldConfig(start=dt.date(2026, 1, 5))
    # the first and last second of week 1, the first of week 2, the last of week 3
    seconds = [0, WEEK_S - 1, WEEK_S, 3 * WEEK_S - 1]
    df = spark.createDataFrame([(t,) for t in seconds], "t long").select(
        "t",
        timestamp(cfg, F.col("t")).alias("ts"),
        week_index(F.col("t")).alias("world_week"),
    )
    df = with_week(df.withColumn("week_start", week_start(F.col("ts"))), cfg.start)
    rows = [tuple(r) for r in df.select("t", "world_week", "week", "week_start").collect()]
    monday = dt.date(2026, 1, 5)
    assert rows == [
        (0, 0, 1, monday),
        (WEEK_S - 1, 0, 1, monday),  # Sunday 2026-01-11 23:59:59 UTC
        (WEEK_S, 1, 2, monday + dt.timedelta(weeks=1)),
        (3 * WEEK_S - 1, 2, 3, monday + dt.timedelta(weeks=2)),
    ]
