"""Validated ingest: every rejection reason, counts, idempotency, wrong input, read-back."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.testing import assertDataFrameEqual

from pipeline.ingest import (
    REASON,
    ROW,
    SOURCE,
    IngestInputError,
    Rules,
    ingest,
    read_validated,
)
from pipeline.lake import Lake
from pipeline.schemas import SchemaMismatchError, stored_schema

UTC = dt.UTC

# Line numbers on the right: the header is line 1.
SHARES_CSV = """sender_id,receiver_id,item_id,ts
1,2,10,2024-01-01 10:00:00
2,3,10,2024-01-03T08:30:00Z
3,1,11,2024-01-09 12:00:00
x,2,10,2024-01-01 10:00:00
1,,10,2024-01-01 10:00:00
4,4,10,2024-01-02 10:00:00
1,2,10,abc
1,2,10,1999-12-31 23:59:59
1,2

1,2,12,2024-01-02 10:00:00
"""
# Lines 2, 3, 4 and 12 are good; 5..10 each fail one rule; line 11 is blank (skipped).
SHARES_REASONS = {
    5: "column sender_id: 'x' is not a bigint",
    6: "null key column receiver_id",
    7: "sender_id == receiver_id",
    8: "column ts: 'abc' is not a timestamp",
    9: "column ts: '1999-12-31 23:59:59' outside [2000-01-01 00:00:00, 2025-01-01 00:00:00]",
    10: "malformed CSV line: expected 4 comma-separated fields "
    "(sender_id, receiver_id, item_id, ts) with balanced quotes",
}
MAX_TS = dt.datetime(2025, 1, 1, tzinfo=UTC)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def quarantine_by_row(lake: Lake, table: str) -> dict[int, dict]:
    rows = lake.to_arrow("quarantine", table).to_pylist()
    return {r["row_number"]: r for r in rows}


@pytest.fixture(scope="module")
def shares_lake(spark, tmp_path_factory):
    """The shares CSV above, ingested once with run id r1."""
    root = tmp_path_factory.mktemp("shares")
    source = root / "in put" / "shares+1.csv"  # Spark sees file:/.../in%20put/shares+1.csv
    source.parent.mkdir()
    source.write_text(SHARES_CSV)
    lake = Lake(root / "lake")
    summary = ingest(spark, lake, "shares", source, "csv", run_id="r1", max_ts=MAX_TS)
    return lake, summary, source


def test_counts_reconcile(shares_lake):
    _, summary, _ = shares_lake
    # 12 lines - header - 1 blank = 10 records: 4 good (lines 2, 3, 4, 12), 6 bad (5..10).
    assert (summary.read, summary.accepted, summary.quarantined) == (10, 4, 6)
    assert summary.read == summary.accepted + summary.quarantined
    assert summary.blank_lines_skipped == 1
    assert summary.committed
    assert sum(summary.reasons.values()) == 6
    assert summary.reasons["column sender_id: '...' is not a bigint"] == 1


def test_each_rejection_reason(shares_lake):
    lake, _, source = shares_lake
    by_row = quarantine_by_row(lake, "shares")
    assert {n: r["reason"] for n, r in by_row.items()} == SHARES_REASONS
    lines = SHARES_CSV.splitlines()
    for number, row in by_row.items():
        assert row["raw"] == lines[number - 1]
        assert row["source_file"] == str(source.resolve())
        assert row["batch_id"] == "r1"


def test_read_back_is_exactly_the_accepted_rows(spark, shares_lake):
    lake, _, _ = shares_lake
    schema = stored_schema("shares")
    # week_start is the Monday of the record's week: 2024-01-01 is a Monday; batch r1.
    expected = spark.createDataFrame(
        [
            (1, 2, 10, ts("2024-01-01 10:00:00"), "r1", dt.date(2024, 1, 1)),
            (2, 3, 10, ts("2024-01-03 08:30:00"), "r1", dt.date(2024, 1, 1)),
            (3, 1, 11, ts("2024-01-09 12:00:00"), "r1", dt.date(2024, 1, 8)),
            (1, 2, 12, ts("2024-01-02 10:00:00"), "r1", dt.date(2024, 1, 1)),
        ],
        schema,
    )
    assertDataFrameEqual(lake.read(spark, "raw", "shares"), expected)
    assert lake.partition_columns("raw", "shares") == ["week_start"]


def test_same_run_id_adds_nothing(spark, shares_lake):
    lake, _, source = shares_lake
    before = (lake.version("raw", "shares"), lake.version("quarantine", "shares"))
    again = ingest(spark, lake, "shares", source, "csv", run_id="r1", max_ts=MAX_TS)
    after = (lake.version("raw", "shares"), lake.version("quarantine", "shares"))
    assert after == before
    assert not again.committed
    assert (again.read, again.accepted, again.quarantined) == (10, 4, 6)


def test_default_run_id_is_idempotent_and_a_new_run_id_appends(spark, lake, tmp_path):
    source = tmp_path / "two.csv"
    source.write_text("item_id,ts,sender_id,receiver_id\n10,2024-02-01 00:00:00,1,2\n")
    first = ingest(spark, lake, "shares", source, "csv")
    second = ingest(spark, lake, "shares", source, "csv")
    assert first.run_id == second.run_id and first.committed and not second.committed
    assert lake.version("raw", "shares") == 0
    third = ingest(spark, lake, "shares", source, "csv", run_id="again")
    assert third.committed
    # One row per run: the columns in a different header order still land in place.
    rows = lake.read(spark, "raw", "shares").collect()
    assert [(r.sender_id, r.receiver_id, r.item_id) for r in rows] == [(1, 2, 10)] * 2
    assert lake.to_arrow("quarantine", "shares").num_rows == 0


def test_browses_rules(spark, lake, tmp_path):
    source = tmp_path / "browses.csv"
    source.write_text(
        "user_id,item_id,ts,action,page,stay_s\n"
        "1,10,2024-01-01 10:00:00,view,home,3.5\n"  # line 2: good
        "1,10,2024-01-01 10:00:00,click,,\n"  # line 3: good (page, stay_s may be null)
        "1,10,2024-01-01 10:00:00,foo,home,1\n"  # line 4: unknown action
        "1,10,2024-01-01 10:00:00,view,moon,1\n"  # line 5: unknown page
        "1,10,2024-01-01 10:00:00,view,item,-2\n"  # line 6: negative stay
        "1,10,2024-01-01 10:00:00,view,item,NaN\n"  # line 7: not finite
        ",10,2024-01-01 10:00:00,cart,item,oops\n"  # line 8: two reasons
    )
    summary = ingest(spark, lake, "browses", source, "csv", max_ts=MAX_TS)
    assert (summary.read, summary.accepted, summary.quarantined) == (7, 2, 5)
    reasons = {n: r["reason"] for n, r in quarantine_by_row(lake, "browses").items()}
    assert reasons == {
        4: "action 'foo' not in (view, click, favorite, cart, search)",
        5: "page 'moon' not in (home, search, item, shop, cart, share)",
        6: "stay_s < 0",
        7: "column stay_s: NaN is not a finite number",
        8: "null key column user_id; column stay_s: 'oops' is not a double",
    }


def test_json_input(spark, lake, tmp_path):
    folder = tmp_path / "purchases"
    folder.mkdir()
    records = [
        {"user_id": 1, "item_id": 10, "ts": "2024-01-01T10:00:00Z", "amount": 9.5},  # good
        {"user_id": "2", "item_id": 11, "ts": "2024-01-08 00:00:00", "amount": 0},  # good
        {"user_id": 3, "item_id": 12, "ts": "2024-01-02 00:00:00", "amount": -1.0},  # < 0
        {"user_id": 4, "ts": "2024-01-02 00:00:00", "amount": 1.0},  # no item_id
        {"user_id": {"id": 5}, "item_id": 1, "ts": "2024-01-02 00:00:00", "amount": 1},
    ]
    lines = [json.dumps(r) for r in records] + ["{not json"]
    (folder / "part-1.json").write_text("\n".join(lines[:3]) + "\n")
    (folder / "part-2.json").write_text("\n".join(lines[3:]) + "\n")
    (folder / "_SUCCESS").write_text("")  # skipped, as Spark does
    summary = ingest(spark, lake, "purchases", folder, "json", max_ts=MAX_TS)
    # 2 files: 3 + 3 records; 2 good.
    assert (summary.files, summary.read, summary.accepted, summary.quarantined) == (2, 6, 2, 4)
    quarantined = {
        (r["source_file"].rsplit("/", 1)[-1], r["row_number"]): r["reason"]
        for r in lake.to_arrow("quarantine", "purchases").to_pylist()
    }
    assert quarantined == {
        ("part-1.json", 3): "amount < 0",
        ("part-2.json", 1): "null key column item_id",
        ("part-2.json", 2): """column user_id: '{"id":5}' is not a bigint""",
        ("part-2.json", 3): "malformed JSON line: not a JSON object",
    }
    got = lake.read(spark, "raw", "purchases").select("user_id", "amount", "week_start")
    expected = spark.createDataFrame(
        [(1, 9.5, dt.date(2024, 1, 1)), (2, 0.0, dt.date(2024, 1, 8))],
        "user_id long, amount double, week_start date",
    )
    assertDataFrameEqual(got, expected)


def test_only_bad_rows_still_commit_both_tables(spark, lake, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text("sender_id,receiver_id,item_id,ts\n7,7,1,2024-01-01 00:00:00\n")
    summary = ingest(spark, lake, "shares", source, "csv")
    assert (summary.read, summary.accepted, summary.quarantined) == (1, 0, 1)
    # An empty raw commit still records the run id, so a re-run is a no-op for both tables.
    assert lake.read(spark, "raw", "shares").count() == 0
    assert lake.committed("raw", "shares", f"ingest:shares:{summary.run_id}")


def test_parquet_with_a_wrong_column_type(spark, lake, tmp_path):
    source = tmp_path / "items.parquet"
    table = pa.table(
        {
            "item_id": pa.array([1, 2, 3], pa.int32()),  # int, the table wants bigint: cast
            "top_category": pa.array([1, 1, 2], pa.int32()),
            "leaf_category": pa.array([10, 11, 20], pa.int32()),
            "price": pa.array(["9.5", "abc", "-1"]),  # strings, checked value by value
            "price_index": pa.array([1.0, 0.5, 2.0]),
            "colour": pa.array(["red", "blue", "green"]),  # extra: ignored, kept in raw
        }
    )
    pq.write_table(table, source)
    summary = ingest(spark, lake, "items", source, "parquet")
    assert (summary.read, summary.accepted, summary.quarantined) == (3, 1, 2)
    by_row = quarantine_by_row(lake, "items")
    assert {n: r["reason"] for n, r in by_row.items()} == {
        2: "column price: 'abc' is not a double",
        3: "price < 0",
    }
    assert json.loads(by_row[2]["raw"])["colour"] == "blue"
    expected = spark.createDataFrame([(1, 1, 10, 9.5, 1.0, summary.run_id)],
                                     stored_schema("items"))
    assertDataFrameEqual(lake.read(spark, "raw", "items"), expected)


def test_parquet_files_with_different_column_types(spark, tmp_path):
    # Spark reads one footer per read: files that disagree are read apart and unioned.
    folder = tmp_path / "purchases"
    folder.mkdir()
    stamp = pa.array([dt.datetime(2024, 1, 1, 10)], pa.timestamp("us", tz="UTC"))
    base = {"user_id": [1], "item_id": [2], "ts": stamp}
    pq.write_table(pa.table({**base, "amount": [2.5]}), folder / "a.parquet")
    pq.write_table(pa.table({**base, "amount": ["-3"]}), folder / "b.parquet")
    rules = Rules.for_table("purchases", max_ts=MAX_TS)
    rows = read_validated(spark, sorted(folder.iterdir()), "parquet", rules).collect()
    got = sorted((r[SOURCE].rsplit("/", 1)[-1], r[ROW], r.amount, r[REASON]) for r in rows)
    assert got == [("a.parquet", 1, 2.5, None), ("b.parquet", 1, -3.0, "amount < 0")]


def test_parquet_missing_required_column(spark, lake, tmp_path):
    source = tmp_path / "shares.parquet"
    pq.write_table(pa.table({"sender_id": [1], "item_id": [2], "ts": ["2024-01-01"]}), source)
    with pytest.raises(SchemaMismatchError, match=r"shares\.parquet.*'receiver_id'"):
        ingest(spark, lake, "shares", source, "parquet")
    assert lake.tables() == []


@pytest.mark.parametrize(
    ("name", "content", "fmt", "message"),
    [
        ("shares.json", b'{"sender_id": 1}\n', "parquet", "is not a Parquet file"),
        ("shares.csv", bytes(range(256)) * 4, "csv", "is not a text file"),
        ("shares.parquet", b"PAR1 but not really\n", "json", "is not JSON Lines"),
        ("shares.csv", b'{"sender_id": 1, "receiver_id": 2}\n', "csv", "is not CSV"),
    ],
    ids=["json-as-parquet", "binary-as-csv", "text-as-json", "json-as-csv"],
)
def test_wrong_format_fails_and_creates_no_table(
    spark, lake, tmp_path, name, content, fmt, message
):
    source = tmp_path / name
    source.write_bytes(content)
    with pytest.raises(IngestInputError, match=message) as err:
        ingest(spark, lake, "shares", source, fmt)
    assert str(source) in str(err.value)
    assert lake.tables() == []


def test_csv_header_without_a_required_column(spark, lake, tmp_path):
    source = tmp_path / "shares.csv"
    source.write_text("sender_id,item_id,ts\n1,10,2024-01-01 00:00:00\n")
    with pytest.raises(SchemaMismatchError, match=r"shares\.csv.*'receiver_id' is missing"):
        ingest(spark, lake, "shares", source, "csv")
    assert lake.tables() == []


# A touch session's rows; line numbers on the right (the header is line 1).
TOUCHES_CSV = """user_id,item_id,ts,session_id,event,page,x,y,x_end,y_end,duration_ms,button
1,10,2024-01-01 10:00:00.125,7,open_page,Page_Detail,,,,,,
1,10,2024-01-01 10:00:00.225,7,swipe,Page_Detail,200.5,600,210,300.25,140,
1,10,2024-01-01 10:00:01.5,7,tap,Page_Detail,355,710,,,60,buy_now
1,10,2024-01-01 10:00:02,7,poke,Page_Detail,,,,,,
1,10,2024-01-01 10:00:02,7,tap,Page_Moon,10,10,,,50,
1,10,2024-01-01 10:00:02,7,tap,Page_Detail,500,10,,,50,
1,10,2024-01-01 10:00:02,7,swipe,Page_Detail,10,10,10,-1,50,
1,10,2024-01-01 10:00:02,7,tap,Page_Detail,10,10,,,-5,
1,10,2024-01-01 10:00:02,7,tap,Page_Detail,10,10,,,5,self_destruct
"""
# Lines 2-4 are good (the open_page's position fields are null); 5..10 each fail one rule.
TOUCHES_REASONS = {
    5: "event 'poke' not in (open_page, leave_page, swipe, tap)",
    6: "page 'Page_Moon' not in the 40 known values (Page_Home, Page_Search, "
    "Page_SearchResult, ...)",
    7: "column x: 500.0 outside [0, 414]",
    8: "column y_end: -1.0 outside [0, 736]",
    9: "duration_ms < 0",
    10: "button 'self_destruct' not in the 73 known values (back, close, more, ...)",
}


def test_touches_ingest(spark, lake, tmp_path):
    source = tmp_path / "touches.csv"
    source.write_text(TOUCHES_CSV)
    summary = ingest(spark, lake, "touches", source, "csv", max_ts=MAX_TS)
    # 9 records: 3 good, 6 bad
    assert (summary.read, summary.accepted, summary.quarantined) == (9, 3, 6)
    reasons = {n: r["reason"] for n, r in quarantine_by_row(lake, "touches").items()}
    assert reasons == TOUCHES_REASONS
    got = lake.to_arrow("raw", "touches").sort_by("ts").to_pylist()
    fields = ("ts", "event", "x", "y", "x_end", "y_end", "duration_ms", "button", "week_start")
    assert [tuple(r[f] for f in fields) for r in got] == [
        # milliseconds are kept: the events are 100 ms and 1275 ms apart
        (ts("2024-01-01 10:00:00.125"), "open_page", None, None, None, None, None, None,
         dt.date(2024, 1, 1)),
        (ts("2024-01-01 10:00:00.225"), "swipe", 200.5, 600.0, 210.0, 300.25, 140.0, None,
         dt.date(2024, 1, 1)),
        (ts("2024-01-01 10:00:01.500"), "tap", 355.0, 710.0, None, None, 60.0, "buy_now",
         dt.date(2024, 1, 1)),
    ]


def test_touches_and_users_rules(spark, tmp_path):
    touches = tmp_path / "touches.json"
    touches.write_text(
        '{"user_id": 1, "item_id": 2, "ts": "2024-01-01", "session_id": 7, "event": "tap"}\n'
        '{"user_id": 1, "item_id": 2, "ts": "2024-01-01", "session_id": 7, "event": "poke",'
        ' "page": "moon"}\n'
    )
    rules = Rules.for_table("touches", max_ts=MAX_TS)
    reasons = [r[REASON] for r in read_validated(spark, [touches], "json", rules).collect()]
    assert reasons == [
        None,
        "event 'poke' not in (open_page, leave_page, swipe, tap); "
        "page 'moon' not in the 40 known values (Page_Home, Page_Search, Page_SearchResult, ...)",
    ]
    # users: only user_id is required; the other columns may be absent from the file.
    users = tmp_path / "users.csv"
    users.write_text("user_id,age_band\n1,3\n2,\n,4\n3,old\n")
    rules = Rules.for_table("users", max_ts=MAX_TS)
    rows = read_validated(spark, [users], "csv", rules).collect()
    assert [(r.user_id, r.age_band, r.registered_ts, r[REASON]) for r in rows] == [
        (1, 3, None, None),
        (2, None, None, None),
        (None, 4, None, "null key column user_id"),
        (3, None, None, "column age_band: 'old' is not an int"),
    ]


def test_missing_path_fails(spark, lake, tmp_path):
    with pytest.raises(IngestInputError, match=f"{tmp_path / 'nope.csv'} does not exist"):
        ingest(spark, lake, "shares", tmp_path / "nope.csv", "csv")
    assert lake.tables() == []


def test_row_numbers_across_file_splits(spark, lake, tmp_path):
    # Force every file into several Spark splits: line numbers must still be per file.
    lines = ["sender_id,receiver_id,item_id,ts"]
    for i in range(2, 41):
        sender = "bad" if i in (7, 23, 40) else "1"
        lines.append(f"{sender},2,{i},2024-01-01 00:00:00")
    for name in ("a.csv", "b.csv"):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_text("\n".join(lines) + "\n")
    old = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "200")
    try:
        assert spark.read.text(str(tmp_path / "in" / "a.csv")).rdd.getNumPartitions() > 3
        summary = ingest(spark, lake, "shares", tmp_path / "in", "csv", max_ts=MAX_TS)
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", old)
    # 2 files x 39 records, 3 bad in each (lines 7, 23, 40).
    assert (summary.read, summary.accepted, summary.quarantined) == (78, 72, 6)
    got = sorted(
        (r["source_file"].rsplit("/", 1)[-1], r["row_number"], r["raw"])
        for r in lake.to_arrow("quarantine", "shares").to_pylist()
    )
    assert got == [(f, n, lines[n - 1]) for f in ("a.csv", "b.csv") for n in (7, 23, 40)]
