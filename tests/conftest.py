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
