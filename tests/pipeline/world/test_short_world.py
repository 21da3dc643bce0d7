"""A world shorter than E5's lead-up: its seeds' bursts fall past the end, and the raw tables
still hold nothing outside the world."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from pipeline.world import WorldConfig, generate


@pytest.mark.slow
def test_a_three_week_world_keeps_its_rows_inside(spark, tmp_path):
    # surges start in week 5 at the earliest, so E5's bursts (the four weeks before) reach
    # week 4, past a three-week world's end; a seed's browse precedes its share by 1-31 min.
    # Every seed shares a rising star here, so about a quarter of them burst in week 4
    cfg = WorldConfig(share_records=1500, seed=5, weeks=3, effects=frozenset({"E5"}),
                      e5_hub_pick=1.0, e5_other_pick=1.0)
    world = generate(spark, cfg, tmp_path, progress=lambda m: None)
    lo = dt.datetime.combine(cfg.start, dt.time(), tzinfo=dt.UTC)
    hi = lo + dt.timedelta(weeks=cfg.weeks)
    for name in ("shares", "purchases", "browses", "touches"):
        row = world[name].agg(F.min("ts").alias("lo"), F.max("ts").alias("hi")).first()
        assert row.lo.astimezone(dt.UTC) >= lo, name
        assert row.hi.astimezone(dt.UTC) < hi, name
