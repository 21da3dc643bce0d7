"""Cascade import: validation reasons, dense ids, splits, reconciliation, idempotence."""

from __future__ import annotations

import argparse
import json

import pytest

from pipeline.systems.ndm.cascades import (
    BAD_PAIR,
    BAD_TIME,
    DECREASING,
    DUPLICATE,
    EMPTY,
    FILE_STRIDE,
)

TRAIN = "\n".join(
    [
        "b,10 a,11 c,12",  # 1 ok
        "a,5 c,6",  # 2 ok
        "",  # 3 empty line
        "a,1 b",  # 4 bad pair
        "a,1 b,x",  # 5 non-numeric timestamp
        "a,1 b,2 a,3",  # 6 duplicate user
        "a,3 b,2",  # 7 timestamps decreasing
        "d,1.5 e,1.5 b,2e1",  # 8 ok (equal times are not decreasing; 2e1 is a number)
    ]
) + "\n"
TEST = "e,1 f,2\n   \n"


def _args(tmp_path, **kw):
    (tmp_path / "train.txt").write_text(TRAIN)
    (tmp_path / "test.txt").write_text(TEST)
    base = dict(lake=str(tmp_path / "lake"), name="tiny", train=str(tmp_path / "train.txt"),
                test=str(tmp_path / "test.txt"), val_fraction=0.0, seed=0, run_id=None,
                master=None)
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.slow  # ~45 s of Spark jobs on the shared 2-core box
def test_import_quarantines_bad_lines_and_maps_users(spark, tmp_path, lake):
    from jobs.import_cascades import run

    args = _args(tmp_path, lake=str(lake.root))
    info = run(spark, lake, args)

    q = lake.read(spark, "quarantine", "cascades_tiny").collect()
    got = sorted((r["source_file"].endswith("test.txt"), r["row_number"], r["reason"]) for r in q)
    assert got == [
        (False, 3, EMPTY),
        (False, 4, BAD_PAIR),
        (False, 5, BAD_TIME),
        (False, 6, DUPLICATE),
        (False, 7, DECREASING),
        (True, 2, EMPTY),
    ]
    assert {r["raw"] for r in q if r["row_number"] == 4} == {"a,1 b"}
    # Counts reconcile: lines read = kept + quarantined, per file.
    files = {f["file_index"]: f for f in info["files"]}
    assert (files[0]["lines"], files[0]["kept"], files[0]["quarantined"]) == (8, 3, 5)
    assert (files[1]["lines"], files[1]["kept"], files[1]["quarantined"]) == (2, 1, 1)
    assert sum(info["quarantine_reasons"].values()) == 6

    # Dense ids by first appearance: train line 1 (b, a, c), line 8 (d, e), test (f).
    users = {r["user_name"]: r["user_id"] for r in lake.read(spark, "shards", "ndm/tiny_users")
             .collect()}
    assert users == {"b": 0, "a": 1, "c": 2, "d": 3, "e": 4, "f": 5}
    assert info["n_users"] == 6
    rows = {r["cascade_id"]: r for r in lake.read(spark, "shards", "ndm/tiny").collect()}
    assert sorted(rows) == [1, 2, 8, FILE_STRIDE + 1]
    assert rows[1]["users"] == [0, 1, 2] and rows[1]["times"] == [10.0, 11.0, 12.0]
    assert rows[8]["users"] == [3, 4, 0] and rows[8]["times"] == [1.5, 1.5, 20.0]
    assert rows[FILE_STRIDE + 1]["users"] == [4, 5]
    assert {r["split"] for k, r in rows.items() if k < FILE_STRIDE} == {"train"}
    assert rows[FILE_STRIDE + 1]["split"] == "test"
    manifest = json.loads(lake.to_arrow("shards", "ndm/tiny_manifest").column("json")[0].as_py())
    assert manifest["splits"]["train"]["cascades"] == 3

    # The same files again: nothing is committed twice.
    versions = {t: lake.table(*t.split("/", 1)).version()
                for t in ("shards/ndm/tiny", "quarantine/cascades_tiny")}
    run(spark, lake, args)
    for t, v in versions.items():
        assert lake.table(*t.split("/", 1)).version() == v


def test_val_split_is_seeded_fraction_of_train(spark, tmp_path):
    from pyspark.sql import functions as F

    from pipeline.systems.ndm.cascades import assign_split

    df = spark.range(2000).select(F.col("id").alias("cascade_id"), F.lit(0).alias("file_index"))
    split = assign_split(F.col("file_index"), F.col("cascade_id"), 0.1, 7)
    first = [r["s"] for r in df.select(split.alias("s")).orderBy("cascade_id").collect()]
    again = [r["s"] for r in df.select(split.alias("s")).orderBy("cascade_id").collect()]
    assert first == again
    share = first.count("val") / len(first)
    assert 0.07 < share < 0.13 and set(first) == {"train", "val"}
