"""NDM shards from hand-made share records: infection order, dedup, time split, dense ids, and
the training-period share graph of NDM+SN."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from pipeline import schemas

pytest.importorskip("pyspark")


def ts(day, hour=12):
    return dt.datetime(2024, 3, day, hour, tzinfo=dt.UTC)


SHARES = [
    # item 10 starts first: 1 -> 2, then 2 -> 3 and 1 -> 3 (3's first receipt counts),
    # then 3 -> 1 (1 is the seed: not repeated).
    (1, 2, 10, ts(4)),
    (2, 3, 10, ts(5)),
    (1, 3, 10, ts(6)),
    (3, 1, 10, ts(7)),
    # item 20: 5 shares to 7 and 6 at the same moment (ties by user id).
    (5, 7, 20, ts(5)),
    (5, 6, 20, ts(5)),
    # item 30 and 40 start later.
    (7, 8, 30, ts(11)),
    (2, 4, 40, ts(12)),
]


def _week_start(value: dt.datetime) -> dt.date:
    return (value - dt.timedelta(days=value.weekday())).date()


@pytest.mark.slow  # ~80 s of Spark jobs on the shared 2-core box
def test_world_cascades(spark, lake):
    from pipeline.systems import BUILDERS, load_all

    load_all()
    rows = [(*r, _week_start(r[3])) for r in SHARES]
    df = spark.createDataFrame(rows, schemas.with_partitions("shares", schemas.SHARES))
    lake.write(df, "raw", "shares", partition_by=["week_start"])
    args = argparse.Namespace(name="world", train_frac=0.5, val_frac=0.25, min_size=2,
                              run_id=None)
    info = BUILDERS["ndm"](spark, lake, args)

    users = {int(r["user_name"]): r["user_id"]
             for r in lake.read(spark, "shards", "ndm/world_users").collect()}
    # Ids by first appearance: item 10 (1, 2, 3), item 20 (5, 6, 7), item 30 (8), item 40 (4).
    assert users == {1: 0, 2: 1, 3: 2, 5: 3, 6: 4, 7: 5, 8: 6, 4: 7}
    got = {r["cascade_id"]: r for r in lake.read(spark, "shards", "ndm/world").collect()}
    assert got[10]["users"] == [users[1], users[2], users[3]]
    assert got[10]["times"] == [ts(4).timestamp(), ts(4).timestamp(), ts(5).timestamp()]
    assert got[20]["users"] == [users[5], users[6], users[7]]
    assert got[30]["users"] == [users[7], users[8]]
    # Split by start time: earliest train, then val, then test.
    order = sorted(got, key=lambda k: got[k]["times"][0])
    rank = {"train": 0, "val": 1, "test": 2}
    splits = [rank[got[k]["split"]] for k in order]
    assert splits == sorted(splits) and set(splits) == {0, 1, 2}
    assert info["n_users"] == 8
    assert sum(s["cascades"] for s in info["splits"].values()) == 4
    # The social graph: the records before the first non-train cascade starts, in dense ids.
    cutoff = min(got[k]["times"][0] for k in got if got[k]["split"] != "train")
    expected = {}
    for sender, receiver, _, when in SHARES:
        if when.timestamp() < cutoff:
            key = (users[sender], users[receiver])
            expected[key] = expected.get(key, 0) + 1
    social = {(r["src"], r["dst"]): r["weight"]
              for r in lake.read(spark, "shards", "ndm/world_social").collect()}
    assert social == expected and social  # at least 1 -> 2 on day 4 is before any val cascade
    assert info["social"]["cutoff"] == cutoff and info["social"]["edges"] == len(expected)


def test_training_share_graph_keeps_the_training_period_in_dense_ids(spark):
    from pipeline.systems.ndm.shards import training_cutoff, training_share_graph

    # Dense ids of users "1".."4"; user 9 is in no cascade (no dense id).
    user_map = spark.createDataFrame([("1", 0), ("2", 1), ("3", 2), ("4", 3)],
                                     "user_name string, user_id long")
    # The first cascade that is not train starts at t = 500: the cutoff.
    cascades = spark.createDataFrame(
        [("train", [100.0, 140.0]), ("val", [500.0]), ("train", [300.0]), ("test", [800.0])],
        "split string, times array<double>",
    )
    cutoff = training_cutoff(cascades)
    assert cutoff == 500.0
    assert training_cutoff(cascades.where("split = 'train'")) is None
    at = dt.datetime.fromtimestamp
    shares = spark.createDataFrame(
        [
            (1, 2, 10, at(100, dt.UTC)),  # 1 -> 2 twice: weight 2
            (1, 2, 11, at(200, dt.UTC)),
            (2, 3, 10, at(300, dt.UTC)),
            (3, 1, 12, at(499, dt.UTC)),  # the last second of the training period
            (9, 1, 10, at(150, dt.UTC)),  # 9 has no dense id: out
            (1, 4, 13, at(500, dt.UTC)),  # the val period starts at 500: out
            (4, 3, 14, at(900, dt.UTC)),  # test period: out
        ],
        schemas.SHARES,
    )
    got = {(r["src"], r["dst"]): r["weight"]
           for r in training_share_graph(shares, user_map, cutoff).collect()}
    assert got == {(0, 1): 2, (1, 2): 1, (2, 0): 1}
    every = {(r["src"], r["dst"]) for r in training_share_graph(shares, user_map, None).collect()}
    assert every == {(0, 1), (1, 2), (2, 0), (0, 3), (3, 2)}
