"""The generator: determinism, schemas, integrity, size, heavy tails, the lake commit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline import schemas
from pipeline.world import WorldConfig, generate, generate_to_lake


@pytest.fixture(scope="module")
def small_world(spark, tmp_path_factory):
    cfg = WorldConfig(share_records=6000, seed=3, weeks=8)
    return cfg, generate(spark, cfg, tmp_path_factory.mktemp("scratch"), progress=lambda m: None)


def test_same_seed_same_tables(spark, world_lake, tmp_path):
    """The shared world generated again gives the rows its lake holds (every raw table)."""
    lake, cfg, _ = world_lake
    again = generate(spark, cfg, tmp_path / "again", progress=lambda m: None)
    for name in schemas.RAW:
        stored = lake.read(spark, "raw", name).select(*again[name].columns)
        assertDataFrameEqual(stored, again[name])


def test_tables_have_their_schemas(small_world):
    _, world = small_world
    for name, schema in schemas.RAW.items():
        want = schemas.with_partitions(name, schema)
        assert [f.name for f in world[name].schema] == want.names
        schemas.check_schema(world[name].schema, want, name)


def test_referential_integrity(small_world):
    _, world = small_world
    users = world["users"].select("user_id")
    items = world["items"].select("item_id")
    shares = world["shares"]
    for col in ("sender_id", "receiver_id"):
        orphan = shares.join(users, shares[col] == users.user_id, "left_anti").count()
        assert orphan == 0, col
    for name in ("shares", "purchases", "browses", "touches"):
        assert world[name].join(items, "item_id", "left_anti").count() == 0, name
    for name in ("purchases", "browses", "touches"):
        assert world[name].join(users, "user_id", "left_anti").count() == 0, name
    assert shares.where(F.col("sender_id") == F.col("receiver_id")).count() == 0
    assert world["purchases"].where(F.col("amount") <= 0).count() == 0


def test_times_inside_the_world(small_world):
    cfg, world = small_world
    lo = dt.datetime.combine(cfg.start, dt.time(), tzinfo=dt.UTC)
    for name in ("shares", "purchases", "browses", "touches"):
        row = world[name].agg(F.min("ts").alias("lo"), F.max("ts").alias("hi")).first()
        assert row.lo.astimezone(dt.UTC) >= lo, name
        assert row.hi.astimezone(dt.UTC) < lo + dt.timedelta(weeks=cfg.weeks), name


def test_week_start_is_the_monday_of_the_records_week(small_world):
    cfg, world = small_world
    shares = world["shares"]
    mondays = {r.week_start for r in shares.select("week_start").distinct().collect()}
    assert mondays == {cfg.start + dt.timedelta(weeks=k) for k in range(cfg.weeks)}
    wrong = shares.where(
        (F.col("ts") < F.col("week_start").cast("timestamp"))
        | (F.col("ts") >= F.date_add("week_start", 7).cast("timestamp"))
    )
    assert wrong.count() == 0


def test_size_close_to_target(small_world):
    cfg, world = small_world
    n = world["shares"].count()
    assert 0.7 * cfg.share_records < n < 1.4 * cfg.share_records


def test_heavy_tailed_degrees_and_hubs(small_world):
    _, world = small_world
    shares = world["shares"]
    edges = shares.select(F.col("sender_id").alias("u"), F.col("receiver_id").alias("v")).union(
        shares.select(F.col("receiver_id").alias("u"), F.col("sender_id").alias("v"))
    )
    degrees = edges.distinct().groupBy("u").count()
    small = degrees.where(F.col("count").between(1, 9)).count() / degrees.count()
    assert small > 0.8
    sent = np.sort(
        np.array([r[0] for r in shares.groupBy("sender_id").count().select("count").collect()])
    )[::-1]
    top = max(1, len(sent) // 100)
    assert sent[:top].sum() / sent.sum() > 0.1  # the top 1% send far more than 1%


def test_generate_to_lake_is_idempotent(spark, world_lake):
    lake, cfg, first = world_lake
    assert not first["skipped"]
    versions = {t: lake.version("raw", t) for t in ("shares", "purchases")}
    again = generate_to_lake(spark, lake, cfg, progress=lambda m: None)
    assert again["skipped"]
    assert {t: lake.version("raw", t) for t in versions} == versions
    assert lake.read(spark, "raw", "shares").count() == first["rows"]["shares"]
    truth = {r.parameter: r.value for r in lake.read(spark, "truth", "world").collect()}
    assert truth["e1_pi_slope"] == cfg.e1_pi_slope
    scratch = Path(lake.location("_scratch"))
    assert not scratch.exists() or not any(scratch.iterdir())
