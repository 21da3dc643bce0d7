"""The lake on delta-spark: one commit per write, idempotent by Delta's app transactions,
snapshots, time travel, one-week replacement, schema enforcement, concurrent writers, history,
optimize and vacuum, and outside readers (deltalake, DuckDB, Polars) seeing the committed rows."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from models import lakeio
from pipeline.lake import ConcurrentWriteError, InvalidNameError, Lake
from pipeline.schemas import SchemaMismatchError
from tests.conftest import duckdb_with_delta

UTC = dt.UTC


def _shares(spark, n: int, offset: int = 0):
    # n records, one per hour from Monday 2026-01-05: 168 per week, so n=200 spans two weeks.
    start = dt.datetime(2026, 1, 5, tzinfo=UTC)
    rows = [
        Row(
            sender_id=i + offset,
            receiver_id=i + offset + 1,
            item_id=i % 3,
            ts=start + dt.timedelta(hours=i),
        )
        for i in range(n)
    ]
    return spark.createDataFrame(rows).withColumn(
        "week_start", F.to_date(F.date_trunc("week", "ts"))
    )


def test_write_commits_the_rows_partitioned(spark, lake):
    df = _shares(spark, 200)
    result = lake.write(df, "raw", "shares", partition_by=["week_start"], app_id="job-1")
    assert result.version == 0 and result.rows == 200
    back = lake.read(spark, "raw", "shares")
    assertDataFrameEqual(back, df)
    folder = Path(lake.path("raw", "shares"))
    parts = {p.name for p in folder.iterdir() if p.name.startswith("week")}
    assert parts == {"week_start=2026-01-05", "week_start=2026-01-12"}
    assert spark.read.format("delta").load(str(folder)).count() == 200


def test_per_file_stats_in_the_log(spark, lake):
    lake.write(_shares(spark, 50).coalesce(1), "raw", "shares", app_id="s")
    log = Path(lake.path("raw", "shares")) / "_delta_log" / "00000000000000000000.json"
    adds = [json.loads(line)["add"] for line in log.read_text().splitlines() if '"add"' in line]
    stats = json.loads(adds[0]["stats"])
    # senders 0..49, items i % 3 in 0..2, times 00:00 .. 49 hours later
    assert stats["numRecords"] == 50
    assert stats["minValues"]["sender_id"] == 0 and stats["maxValues"]["sender_id"] == 49
    assert stats["maxValues"]["item_id"] == 2
    assert stats["minValues"]["ts"] == "2026-01-05T00:00:00.000Z"
    assert stats["maxValues"]["ts"] == "2026-01-07T01:00:00.000Z"
    assert stats["nullCount"]["receiver_id"] == 0


def test_rerun_of_same_app_id_commits_nothing(spark, lake):
    df = _shares(spark, 20)
    lake.write(df, "raw", "shares", app_id="run-7")
    again = lake.write(df, "raw", "shares", app_id="run-7")
    assert again.skipped
    assert lake.version("raw", "shares") == 0
    assert lake.read(spark, "raw", "shares").count() == 20
    assert lake.committed("raw", "shares", "run-7")
    assert not lake.committed("raw", "shares", "run-8")


def test_append_overwrite_and_time_travel(spark, lake):
    lake.write(_shares(spark, 10), "raw", "shares", app_id="a")
    lake.write(_shares(spark, 5, offset=100), "raw", "shares", app_id="b")
    assert lake.read(spark, "raw", "shares").count() == 15
    lake.write(_shares(spark, 3, offset=500), "raw", "shares", mode="overwrite", app_id="c")
    assert lake.read(spark, "raw", "shares").count() == 3
    assert lake.read(spark, "raw", "shares", version=0).count() == 10
    assert lake.read(spark, "raw", "shares", version=1).count() == 15


def test_schema_mismatch_names_the_column(spark, lake):
    lake.write(_shares(spark, 5), "raw", "shares", app_id="a")
    wrong = _shares(spark, 5).withColumn("item_id", F.col("item_id").cast("int"))
    with pytest.raises(SchemaMismatchError, match="item_id.*int.*bigint"):
        lake.write(wrong, "raw", "shares", app_id="b")
    missing = _shares(spark, 5).drop("receiver_id")
    with pytest.raises(SchemaMismatchError, match="receiver_id"):
        lake.write(missing, "raw", "shares", app_id="c")
    extra = _shares(spark, 5).withColumn("note", F.lit("x"))
    with pytest.raises(SchemaMismatchError, match="note"):
        lake.write(extra, "raw", "shares", app_id="d")
    assert lake.version("raw", "shares") == 0


def test_overwrite_schema_replaces_columns_and_keeps_old_versions(spark, lake):
    lake.write(_shares(spark, 4), "stats", "t", app_id="a")
    changed = _shares(spark, 2).drop("receiver_id").withColumn("note", F.lit("x"))
    with pytest.raises(ValueError, match="mode='overwrite'"):
        lake.write(changed, "stats", "t", app_id="b", overwrite_schema=True)
    with pytest.raises(SchemaMismatchError, match="receiver_id"):
        lake.write(changed, "stats", "t", mode="overwrite", app_id="b")
    lake.write(changed, "stats", "t", mode="overwrite", app_id="b", overwrite_schema=True)
    now = lake.read(spark, "stats", "t")
    assert now.count() == 2 and "note" in now.columns and "receiver_id" not in now.columns
    old = lake.read(spark, "stats", "t", version=0)  # time travel keeps the old schema
    assert old.count() == 4 and "receiver_id" in old.columns and "note" not in old.columns
    small = pa.table({"k": pa.array([1], pa.int64())})
    lake.write_arrow(small, "stats", "t", mode="overwrite", app_id="c", overwrite_schema=True)
    assert lake.to_arrow("stats", "t").column_names == ["k"]


def _age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    for file in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(file, (then, then))


def test_uncommitted_files_are_invisible_and_vacuumed(spark, lake):
    lake.write(_shares(spark, 10), "raw", "shares", app_id="a")
    folder = Path(lake.path("raw", "shares"))
    # A killed job: Spark wrote files into the table folder but never committed them.
    orphan = folder / "part-99999-orphan.parquet"
    _shares(spark, 4).toPandas().to_parquet(orphan)
    stray = folder / "crashed"
    _shares(spark, 7).write.parquet(str(stray))
    assert lake.read(spark, "raw", "shares").count() == 10
    assert lake.vacuum("raw", "shares") == []  # younger than the 7-day retention: kept
    _age(orphan, 24 * 8)
    _age(stray, 24 * 8)
    assert lake.vacuum("raw", "shares", dry_run=True) == sorted(
        ["part-99999-orphan.parquet"]
        + [p.relative_to(folder).as_posix() for p in stray.rglob("part-*")]
    )  # hidden files (Spark's .crc) are Delta's to ignore
    assert orphan.exists()
    removed = lake.vacuum("raw", "shares")
    assert "part-99999-orphan.parquet" in removed
    assert not orphan.exists() and not any(stray.rglob("part-*"))
    assert lake.read(spark, "raw", "shares").count() == 10


def test_vacuum_keeps_the_retention_safety(spark, lake):
    lake.write(_shares(spark, 10), "raw", "shares", app_id="a")
    with pytest.raises(Exception, match="retention"):
        lake.vacuum("raw", "shares", retain_hours=1)


def test_vacuum_keeps_time_travel_within_retention(spark, lake):
    lake.write(_shares(spark, 10), "raw", "shares", app_id="a")
    lake.write(_shares(spark, 3), "raw", "shares", mode="overwrite", app_id="b")
    assert lake.vacuum("raw", "shares") == []  # the replaced files are younger than 7 days
    assert lake.read(spark, "raw", "shares", version=0).count() == 10


def test_replace_where_replaces_one_week(spark, lake):
    df = _shares(spark, 200)  # weeks of 2026-01-05 (168 rows) and 2026-01-12 (32 rows)
    lake.write(df, "raw", "shares", partition_by=["week_start"], app_id="full")
    week2 = _shares(spark, 5, offset=10_000).withColumn(
        "week_start", F.lit(dt.date(2026, 1, 12))
    )
    result = lake.write(
        week2, "raw", "shares", mode="overwrite", partition_by=["week_start"],
        replace_where="week_start = '2026-01-12'", app_id="week-2",
    )
    assert result.rows == 5
    counts = {
        r["week_start"]: r["count"]
        for r in lake.read(spark, "raw", "shares").groupBy("week_start").count().collect()
    }
    assert counts == {dt.date(2026, 1, 5): 168, dt.date(2026, 1, 12): 5}
    outside = week2.withColumn("week_start", F.lit(dt.date(2026, 1, 5)))
    with pytest.raises(Exception, match="(?i)replaceWhere|does not conform|DELTA_REPLACE_WHERE"):
        lake.write(outside, "raw", "shares", mode="overwrite", partition_by=["week_start"],
                   replace_where="week_start = '2026-01-12'", app_id="week-2-wrong")
    assert lake.read(spark, "raw", "shares").count() == 173


def test_history_names_each_job_run(spark, lake):
    lake.write(_shares(spark, 10), "raw", "shares", app_id="ingest:run-1")
    lake.write(_shares(spark, 4), "raw", "shares", app_id="ingest:run-2")
    history = lake.history("raw", "shares")
    assert [(h["version"], h["userMetadata"]) for h in history] == [
        (1, "ingest:run-2"), (0, "ingest:run-1"),
    ]
    sql = spark.sql(f"DESCRIBE HISTORY delta.`{lake.path('raw', 'shares')}`")
    assert {r["userMetadata"] for r in sql.collect()} == {"ingest:run-1", "ingest:run-2"}
    assert history[0]["operationMetrics"]["numOutputRows"] == "4"


@pytest.mark.parametrize("folder", ["what? #1", "100% [a]"])
def test_write_result_and_history_under_a_url_breaking_folder(spark, tmp_path, folder):
    """A path that is no URL ("?" starts a query, "#" a fragment, "%" an escape): the write
    still reports its own commit, and a second write of the same run is a skip."""
    lake = Lake(tmp_path / folder / "lake")
    first = lake.write(_shares(spark, 3), "raw", "shares", app_id="ingest:run-1")
    assert (first.version, first.rows, first.skipped) == (0, 3, False)
    assert [h["userMetadata"] for h in lake.history("raw", "shares")] == ["ingest:run-1"]
    assert lake.write(_shares(spark, 3), "raw", "shares", app_id="ingest:run-1").skipped


def _together(*writes):
    """Run the writes in threads released at once; returns (results, errors) in order."""
    gate = threading.Barrier(len(writes))
    results, errors = [None] * len(writes), [None] * len(writes)

    def run(i, write):
        gate.wait()
        try:
            results[i] = write()
        except Exception as error:  # noqa: BLE001 - the test inspects it
            errors[i] = error

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(writes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_two_writers_with_one_app_id_commit_once(spark, lake):
    lake.write(_shares(spark, 3), "raw", "shares", app_id="seed")
    for attempt in range(3):
        app = f"same-{attempt}"
        df = _shares(spark, 6, offset=100 * attempt)
        def write(df=df, app=app):
            return lake.write(df, "raw", "shares", app_id=app)

        results, errors = _together(write, write)
        assert errors == [None, None]
        assert sorted(r.skipped for r in results) in ([False, True], [False, False])
        commits = [h for h in lake.history("raw", "shares") if h["userMetadata"] == app]
        assert len(commits) == 1
    assert lake.read(spark, "raw", "shares").count() == 3 + 3 * 6


def test_conflicting_writers_never_half_apply(spark, lake):
    lake.write(_shares(spark, 10), "raw", "shares", app_id="seed")
    results, errors = _together(
        lambda: lake.write(_shares(spark, 2), "raw", "shares", mode="overwrite", app_id="o1"),
        lambda: lake.write(_shares(spark, 5), "raw", "shares", mode="overwrite", app_id="o2"),
    )
    done = [r for r in results if r is not None]
    assert len(done) >= 1
    for error in errors:
        assert error is None or isinstance(error, ConcurrentWriteError)
    if any(errors):
        assert "re-run" in str(next(e for e in errors if e))
    # whatever won, the table holds exactly one writer's rows
    assert lake.read(spark, "raw", "shares").count() in (2, 5)
    # blind appends never conflict: both commit
    _together(
        lambda: lake.write(_shares(spark, 1), "raw", "shares", app_id="x1"),
        lambda: lake.write(_shares(spark, 1), "raw", "shares", app_id="x2"),
    )
    assert lake.committed("raw", "shares", "x1") and lake.committed("raw", "shares", "x2")


def test_optimize_compacts_files(spark, lake):
    for i in range(4):
        lake.write(_shares(spark, 5, offset=10 * i).coalesce(1), "raw", "shares", app_id=f"a{i}")
    metrics = lake.optimize("raw", "shares", zorder_by=["receiver_id"])
    assert metrics == {"files_added": 1, "files_removed": 4}
    assert lake.read(spark, "raw", "shares").count() == 20
    assert lake.history("raw", "shares", limit=1)[0]["operation"] == "OPTIMIZE"


def test_outside_readers_see_exactly_the_snapshot(spark, lake):
    lake.write(_shares(spark, 30), "raw", "shares", partition_by=["week_start"], app_id="a")
    lake.write(_shares(spark, 12, 1000), "raw", "shares", partition_by=["week_start"], app_id="b")
    path = lake.path("raw", "shares")
    con = duckdb_with_delta()
    n, senders = con.execute(
        f"select count(*), sum(sender_id) from delta_scan('{path}')"
    ).fetchone()
    # senders 0..29 and 1000..1011: 435 + 12*1000 + 66
    assert (n, senders) == (42, 435 + 12_000 + 66)
    weeks = con.execute(f"select distinct week_start from delta_scan('{path}')").fetchall()
    assert weeks == [(dt.date(2026, 1, 5),)]

    import polars as pl

    frame = pl.read_delta(path)
    assert frame.height == 42 and frame["sender_id"].sum() == 12_501

    # and the torch side's pyarrow-only reader
    table = lakeio.read_table(path, columns=["sender_id", "week_start"])
    assert table.num_rows == 42
    assert lakeio.read_table(path, version=0).num_rows == 30
    assert lakeio.transaction_version(path, "b") == 1


def test_readers_follow_checkpoints(spark, lake):
    for i in range(12):  # delta-spark writes a checkpoint every 10 commits
        lake.write(_shares(spark, 2, offset=10 * i).coalesce(1), "raw", "shares", app_id=f"c{i}")
    path = lake.path("raw", "shares")
    assert list((Path(path) / "_delta_log").glob("*.checkpoint.parquet"))
    assert lakeio.read_table(path).num_rows == 24
    assert lakeio.transaction_version(path, "c3") == 1  # folded into the checkpoint
    assert duckdb_with_delta().execute(f"select count(*) from delta_scan('{path}')").fetchone() == (
        24,
    )
    import polars as pl

    assert pl.read_delta(path).height == 24


def test_write_arrow_and_torch_side_append(spark, lake, tmp_path):
    data = pa.table({"metric": ["auc"], "value": [0.5]})
    first = lake.write_arrow(data, "results", "demo", app_id="r1")
    assert first.version == 0
    assert lake.write_arrow(data, "results", "demo", app_id="r1").skipped
    table = tmp_path / "results" / "t"
    assert lakeio.append_rows(table, data, "run-1") == 0
    assert lakeio.append_rows(table, data, "run-1") is None
    assert lakeio.append_rows(table, data, "run-2") == 1
    assert Lake(tmp_path).to_arrow("results", "t").num_rows == 2
    with pytest.raises(ValueError, match="schema"):
        lakeio.append_rows(table, pa.table({"metric": [1]}), "run-3")


def test_tables_lists_nested_names(spark, lake):
    lake.write_arrow(pa.table({"a": [1]}), "shards", "ndm/irvine", app_id="x")
    lake.write_arrow(pa.table({"a": [1]}), "stats", "ci", app_id="x")
    assert lake.tables() == ["shards/ndm/irvine", "stats/ci"]


@pytest.mark.parametrize("log_reader", ["auto", "spark"])
def test_odd_characters_in_the_lake_path(spark, tmp_path, log_reader):
    # Spaces, glob characters and non-ASCII: Spark gets the path as it is, never a pattern.
    # log_reader="spark" reads the log the way a lake on HDFS or S3A is read.
    lake = Lake(tmp_path / "my lake [1] {a,b} é", log_reader=log_reader)
    assert lake.write(_shares(spark, 6), "raw", "shares", app_id="r1").version == 0
    assert lake.write(_shares(spark, 6), "raw", "shares", app_id="r1").skipped
    assert lake.committed("raw", "shares", "r1") and not lake.committed("raw", "shares", "r2")
    assert lake.read(spark, "raw", "shares").count() == 6
    assert lake.version("raw", "shares") == 0 and lake.partition_columns("raw", "shares") == []
    assert [h["userMetadata"] for h in lake.history("raw", "shares")] == ["r1"]
    assert lake.tables() == ["raw/shares"]
    orphan = Path(lake.path("raw", "shares")) / "part-orphan.parquet"
    _shares(spark, 2).toPandas().to_parquet(orphan)
    _age(orphan, 24 * 8)
    assert lake.vacuum("raw", "shares", dry_run=True) == ["part-orphan.parquet"]
    assert lakeio.read_table(lake.path("raw", "shares")).num_rows == 6


def test_unknown_layer_is_refused(lake):
    with pytest.raises(ValueError, match="layer"):
        lake.path("bronze", "x")


def test_names_that_leave_the_lake_are_refused(spark, lake):
    bad = ["../x", "ndm/../../x", "/etc", "ndm//x", "", ".", "ndm/.hidden", "a b", "x\ny",
           "ndm/x/_delta_log"]
    for table in bad:
        with pytest.raises(InvalidNameError, match="table name"):
            lake.path("shards", table)
        with pytest.raises(InvalidNameError):
            lake.write_arrow(pa.table({"a": [1]}), "shards", table, app_id="x")
    for part in ["..", "../../x", "a/b", ""]:
        with pytest.raises(InvalidNameError):
            lake.location("_scratch", part)
    assert lake.path("shards", "ndm/irvine_users").endswith("/shards/ndm/irvine_users")
    assert lake.location("_scratch", "world-0a1b").endswith("/_scratch/world-0a1b")
    assert lake.tables() == []
