"""Shared fixtures: one local Spark session for the whole run, a fresh lake per test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)


@pytest.fixture(scope="session")
def spark():
    pyspark = pytest.importorskip("pyspark")
    del pyspark
    from pipeline.session import get_spark

    session = get_spark(
        "sharecast-tests",
        master="local[2]",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "2g",
            "spark.sql.adaptive.enabled": "false",
        },
    )
    yield session
    session.stop()


#: The generated world that several test files share (``world_lake``): six weeks, so that the
#: rising stars' surges (weeks 5 and on) fall inside it.
SHARED_WORLD = {"share_records": 1500, "seed": 5, "weeks": 6}


@pytest.fixture(scope="session")
def world_lake(spark, tmp_path_factory):
    """``SHARED_WORLD`` (every effect on, the default rates) committed by ``generate_to_lake``
    once per run: (lake, config, the commit's summary). Generating a world costs half a minute,
    so the generator's, the shard job's and observe's tests read this one; they may add tables
    (shards, stats) but never change ``raw/*`` or ``truth/*``."""
    from pipeline.lake import Lake
    from pipeline.world import WorldConfig, generate_to_lake

    lake = Lake(tmp_path_factory.mktemp("world") / "lake")
    cfg = WorldConfig(**SHARED_WORLD)
    return lake, cfg, generate_to_lake(spark, lake, cfg, progress=lambda m: None)


@pytest.fixture
def lake(tmp_path):
    from pipeline.lake import Lake

    return Lake(tmp_path / "lake")


def duckdb_with_delta():
    """A DuckDB connection with the Delta extension loaded from the wheel (no network here)."""
    import glob

    import duckdb
    import duckdb_extension_delta

    folder = os.path.dirname(duckdb_extension_delta.__file__)
    (ext,) = glob.glob(os.path.join(folder, "extensions", "*", "delta.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    return con
