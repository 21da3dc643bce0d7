"""Ingest of hostile input: names Spark could read as patterns, bytes that are not UTF-8 deep
in a file, quotes left open, negative ids, duplicate JSON keys and trailing text, compressed
files. One ingest of one folder covers the CSV cases; every record is accepted or quarantined
with its reason, and the counts reconcile."""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from pipeline.ingest import REASON, ROW, IngestInputError, Rules, ingest, read_validated
from pipeline.lake import Lake

MAX_TS = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
HEADER = "sender_id,receiver_id,item_id,ts"
GOOD_ROWS = 3000  # ~110 KB of lines: the bad byte after them is past the first 64 KB
NOT_UTF8 = "line is not UTF-8 text"
OPEN_QUOTE = (
    "malformed CSV line: expected 4 comma-separated fields "
    "(sender_id, receiver_id, item_id, ts) with balanced quotes"
)


def _csv(*lines: str) -> bytes:
    return "\n".join([HEADER, *lines, ""]).encode()


def _late_bad_byte() -> bytes:
    good = [f"{i},{i + 1},{200_000 + i},2024-01-02 10:00:00" for i in range(1, GOOD_ROWS + 1)]
    return (
        _csv(*good)
        + b"5,6,\xff7,2024-01-02 10:00:00\n"  # line GOOD_ROWS + 2
        + b"8,9,10,2024-01-02 10:00:00\n"
    )


def _zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


# file name -> content; the names with [ ] { } , would be patterns if given to Spark as is.
FILES = {
    "a1.csv": _csv("1,2,100,2024-01-01 10:00:00"),
    "a[1].csv": _csv("1,2,101,2024-01-01 10:00:00", "2,3,102,2024-01-01 10:00:00"),
    "b{x,y}.csv": _csv("3,4,103,2024-01-01 10:00:00"),
    "late-bad-byte.csv": _late_bad_byte(),
    "quotes.csv": _csv(
        '27,28,29,"2024-01-10',  # a record broken over two lines: both halves are malformed
        '10:00:00"',
        '30,31,32,"2024-01-03 10:00:00"',  # quoted and closed: fine
    ),
    "ids.csv": _csv(
        "-1,2,300,2024-01-01 10:00:00",
        "0,5,301,2024-01-01 10:00:00",  # 0 is an id (the generator numbers from 0)
        "4,5,-302,2024-01-01 10:00:00",
    ),
    "logs.csv.gz": gzip.compress(
        _csv("9,9,400,2024-01-01 10:00:00", "9,10,401,2024-01-01 10:00:00")
    ),
    "logs.csv.bz2": bz2.compress(
        _csv("11,12,402,2024-01-01 10:00:00", "11,12,x,2024-01-01 10:00:00")
    ),
    "logs.csv.zst": _zstd(
        _csv(
            "13,14,403,2024-01-01 10:00:00",
            "13,15,404,2024-01-01 10:00:00",
            "13,,405,2024-01-01 10:00:00",
        )
    ),
}
# (file, line) -> reason; every other record is accepted.
EXPECTED_REASONS = {
    ("late-bad-byte.csv", GOOD_ROWS + 2): NOT_UTF8,
    ("quotes.csv", 2): OPEN_QUOTE,
    ("quotes.csv", 3): OPEN_QUOTE,
    ("ids.csv", 2): "sender_id < 0",
    ("ids.csv", 4): "item_id < 0",
    ("logs.csv.gz", 2): "sender_id == receiver_id",
    ("logs.csv.bz2", 3): "column item_id: 'x' is not a bigint",
    ("logs.csv.zst", 4): "null key column receiver_id",
}
RECORDS = 1 + 2 + 1 + (GOOD_ROWS + 2) + 3 + 3 + 2 + 2 + 3


def _text(data: bytes, name: str) -> list[str]:
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    elif name.endswith(".bz2"):
        data = bz2.decompress(data)
    elif name.endswith(".zst"):
        data = pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
    return data.decode("utf-8", errors="replace").splitlines()


@pytest.fixture(scope="module")
def hostile(spark, tmp_path_factory):
    """The folder above ingested once into a lake whose path holds glob characters too."""
    root = tmp_path_factory.mktemp("hostile")
    folder = root / "in put"
    folder.mkdir()
    for name, content in FILES.items():
        (folder / name).write_bytes(content)
    lake = Lake(root / "lake [1] {a,b}")
    summary = ingest(spark, lake, "shares", folder, "csv", run_id="h1", max_ts=MAX_TS)
    # Read outside Spark: Arrow refuses text that is not UTF-8, so this reads it as any
    # reader of the lake would.
    quarantine = DeltaTable(lake.path("quarantine", "shares")).to_pyarrow_table()
    quarantined = {
        (r["source_file"].rsplit("/", 1)[-1], r["row_number"]): r for r in quarantine.to_pylist()
    }
    return lake, summary, folder, quarantined


def test_counts_reconcile_over_every_hostile_file(hostile):
    _, summary, _, quarantined = hostile
    assert summary.files == len(FILES)
    quarantined_n = len(EXPECTED_REASONS)
    assert (summary.read, summary.accepted, summary.quarantined) == (
        RECORDS,
        RECORDS - quarantined_n,
        quarantined_n,
    )
    assert {key: row["reason"] for key, row in quarantined.items()} == EXPECTED_REASONS


def test_glob_characters_in_file_and_lake_names(spark, hostile):
    lake, summary, folder, _ = hostile
    # Every row of a1.csv, a[1].csv and b{x,y}.csv is in, each once; reads of the lake work.
    items = [r.item_id for r in lake.read(spark, "raw", "shares").collect()]
    assert sorted(i for i in items if 100 <= i <= 103) == [100, 101, 102, 103]
    assert len(items) == summary.accepted


def test_invalid_utf8_past_the_first_64kb_is_quarantined(hostile):
    lake, _, folder, quarantined = hostile
    row = quarantined[("late-bad-byte.csv", GOOD_ROWS + 2)]
    assert row["raw"] == "5,6,\ufffd7,2024-01-02 10:00:00"  # stored as text every reader reads
    assert row["source_file"] == str(folder / "late-bad-byte.csv")
    # The raw table is readable outside Spark as well, and holds the good rows on both sides.
    items = set(DeltaTable(lake.path("raw", "shares")).to_pyarrow_table()["item_id"].to_pylist())
    assert {200_001, 200_000 + GOOD_ROWS, 10} <= items


def test_open_quotes_are_quarantined_not_cut(spark, hostile):
    lake, _, _, quarantined = hostile
    assert quarantined[("quotes.csv", 2)]["raw"] == '27,28,29,"2024-01-10'
    items = {r.item_id for r in lake.read(spark, "raw", "shares").collect()}
    assert 29 not in items and 32 in items


def test_negative_ids_are_quarantined(spark, hostile, tmp_path):
    lake, _, _, _ = hostile
    items = {r.item_id for r in lake.read(spark, "raw", "shares").collect()}
    assert 301 in items and not {300, -302} & items
    # Parquet values arrive typed: the same rule applies to them.
    source = tmp_path / "shares.parquet"
    stamp = pa.array([dt.datetime(2024, 1, 1, 10)] * 3, pa.timestamp("us", tz="UTC"))
    pq.write_table(
        pa.table(
            {
                "sender_id": [1, -7, 2],
                "receiver_id": [2, 3, -1],
                "item_id": [5, 5, 5],
                "ts": stamp,
            }
        ),
        source,
    )
    rules = Rules.for_table("shares", max_ts=MAX_TS)
    rows = read_validated(spark, [source], "parquet", rules).collect()
    assert sorted((r[ROW], r[REASON]) for r in rows) == [
        (1, None),
        (2, "sender_id < 0"),
        (3, "receiver_id < 0"),
    ]


def test_compressed_input_keeps_line_numbers(hostile):
    _, _, folder, quarantined = hostile
    for (name, line), row in quarantined.items():
        assert row["raw"] == _text(FILES[name], name)[line - 1]
        assert row["source_file"] == str(folder / name)


def test_truncated_compressed_file_fails_before_any_commit(spark, tmp_path):
    lines = [f"{i},{i + 1},{i},2024-01-02 10:00:00" for i in range(1, 20_000)]
    whole = gzip.compress(_csv(*lines), mtime=0)
    source = tmp_path / "cut.csv.gz"
    source.write_bytes(whole[: len(whole) * 9 // 10])  # the first 64 KB still decompress
    lake = Lake(tmp_path / "lake")
    with pytest.raises(IngestInputError, match=r"cut\.csv\.gz") as err:
        ingest(spark, lake, "shares", source, "csv")
    assert len(str(err.value).splitlines()) == 1
    assert lake.tables() == []


def test_json_duplicate_keys_and_trailing_text_are_quarantined(spark, tmp_path):
    record = {"sender_id": 1, "receiver_id": 2, "item_id": 10, "ts": "2024-01-01 10:00:00"}
    one = json.dumps(record)
    source = tmp_path / "shares.json"
    source.write_text(
        "\n".join(
            [
                one,  # line 1: good
                one[:-1] + ', "item_id": 11}',  # line 2: a key twice
                one + " x",  # line 3: text after the object
                one + " " + one,  # line 4: two objects
                one + ", " + one,  # line 5
                one + "]",  # line 6
                one + "   ",  # line 7: good (white space only)
            ]
        )
        + "\n"
    )
    rules = Rules.for_table("shares", max_ts=MAX_TS)
    rows = read_validated(spark, [source], "json", rules).collect()
    after = "malformed JSON line: text after the closing brace"
    assert sorted((r[ROW], r[REASON]) for r in rows) == [
        (1, None),
        (2, "malformed JSON line: key 'item_id' appears twice"),
        (3, after),
        (4, after),
        (5, after),
        (6, after),
        (7, None),
    ]


def test_csv_header_naming_a_column_twice_is_refused(spark, tmp_path):
    source = tmp_path / "shares.csv"
    source.write_text("sender_id,receiver_id,item_id,ts,TS\n1,2,3,2024-01-01,2024-01-01\n")
    lake = Lake(tmp_path / "lake")
    with pytest.raises(IngestInputError, match=r"shares\.csv: the header names column 'ts' twice"):
        ingest(spark, lake, "shares", source, "csv")
    assert lake.tables() == []
