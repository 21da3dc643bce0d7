"""RiseNet shards on a hand-made world (weeks from Monday 2024-01-01 = week 1).

Items 1, 2, 3 in top category 0 (cut-offs ceil(3 * 3 / 1000) = ceil(3 * 1 / 1000) = 1 slot).

    shares (sender -> receiver, item, day of Jan)      purchases (user, item, day, amount)
    1 -> 2  item 1  Jan 8   week 2                     2  item 1  Jan 9   10.0  week 2
    1 -> 3  item 1  Jan 9   week 2                     4  item 1  Jan 11  20.0  week 2 (two)
    2 -> 4  item 1  Jan 10  week 2 (2 received it)     6  item 2  Feb 1, 2, 3   week 5
    3 -> 1  item 2  Jan 2   week 1                     2  item 3  Feb 20  week 8 (after)
    5 -> 6  item 1  Jan 22  week 4
    1 -> 2  item 1  Feb 13  week 7 (after the test window's weeks 3-6)

Windows: train 1 (weeks 1-4, label 5-6), val 2, test 3; three stored weeks per row.
Item 2 sold nothing before and is the only seller in weeks 5-6: rising in window 1. Item 1 sold
2 in weeks 1-4: in the top before, so not rising.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pipeline.schemas import RAW, with_partitions
from pipeline.systems.risenet.shards import RiseNetShardConfig, build_risenet_shards


def ts(month, day, hour=10):
    return dt.datetime(2024, month, day, hour, tzinfo=dt.UTC)


def monday(t):
    d = t.date()
    return d - dt.timedelta(days=d.weekday())


SHARES = [(1, 2, 1, ts(1, 8)), (1, 3, 1, ts(1, 9)), (2, 4, 1, ts(1, 10)), (3, 1, 2, ts(1, 2)),
          (5, 6, 1, ts(1, 22)), (1, 2, 1, ts(2, 13))]
PURCHASES = [(2, 1, ts(1, 9), 10.0), (4, 1, ts(1, 11), 20.0), (6, 2, ts(2, 1), 5.0),
             (6, 2, ts(2, 2), 5.0), (6, 2, ts(2, 3), 5.0), (2, 3, ts(2, 20), 7.0)]
ITEMS = [(1, 0, 0, 12.5, 0.2), (2, 0, 0, 5.0, 0.1), (3, 0, 0, 7.0, 0.1)]
USERS = [(u, 1, 1, 1 + u % 5, ts(1, 1)) for u in range(1, 7)]
CFG = RiseNetShardConfig(train_windows=(1,), val_window=2, test_window=3, history_weeks=3,
                         min_records=1, weeks=12)


def frames(spark, cut=None):
    def df(name, rows):
        return spark.createDataFrame(rows, with_partitions(name, RAW[name]))

    keep = (lambda t: t < cut) if cut else (lambda t: True)
    return (
        df("shares", [(*r, monday(r[3])) for r in SHARES if keep(r[3])]),
        df("purchases", [(*r, monday(r[2])) for r in PURCHASES if keep(r[2])]),
        df("items", ITEMS),
        df("users", USERS),
    )


def build(spark, cfg=CFG, cut=None):
    rows, _ = build_risenet_shards(spark, *frames(spark, cut), cfg)
    return {(r["item_id"], r["window_start"]): r.asDict(recursive=True) for r in rows.collect()}


@pytest.fixture(scope="module")
def built(spark):
    return build(spark)


def test_labels_splits_and_stored_weeks(built):
    assert sorted(built) == [(1, 1), (1, 2), (1, 3), (2, 1)]
    assert built[(2, 1)]["label"] == 1 and built[(1, 1)]["label"] == 0
    assert built[(1, 1)]["split"] == "train" and built[(1, 3)]["split"] == "test"
    # window 1 stores weeks 2, 3, 4 (ending at its last observed week 4)
    assert [w["week"] for w in built[(1, 1)]["weeks"]] == [2, 3, 4]
    assert [w["week"] for w in built[(1, 3)]["weeks"]] == [4, 5, 6]
    # qualifying by records in the observed weeks: item 2 has one record (week 1), seen by
    # window 1 only; item 3 has none
    assert built[(1, 1)]["records_before"] == 4


def test_week_graph_and_item_features(built):
    w2 = built[(1, 1)]["weeks"][0]
    # price: the lowest amount paid in week 2 (10.0; 20.0 was two of it); 2 sales, 3 records,
    # receivers 2, 3, 4
    assert (w2["price"], w2["sales"], w2["records"], w2["scale"]) == (10.0, 2, 3, 3)
    assert w2["users"] == [1, 2, 3, 4]
    assert list(zip(w2["edge_src"], w2["edge_dst"], strict=True)) == [(0, 1), (0, 2), (1, 3)]
    tie = math.log1p(1)  # each pair once in weeks 2-4
    assert w2["edge_x"] == pytest.approx([tie, 0, tie, 0, tie, 1])  # 2 -> 4 forwards
    w3 = built[(1, 1)]["weeks"][1]  # nothing in week 3: empty graph, the list price
    assert (w3["price"], w3["sales"], w3["users"], w3["edge_src"]) == (12.5, 0, [], [])


def test_user_features(built):
    w2 = built[(1, 1)]["weeks"][0]
    x = [w2["user_x"][i * 7:(i + 1) * 7] for i in range(4)]
    third = math.log1p(1 / 3)  # one event over the three stored weeks
    # user 2: tier 1 + 2 % 5 = 3; bought item 1 (category 0) once, all in category 0; sent
    # once (a forward), received once; senders in weeks 2-4: 1 (twice), 2, 5 -> the hub
    # cut-off (top 1 %, at least one user) is 2 records: only user 1 is a hub
    assert x[1] == pytest.approx([3, 1.0, third, third, third, third, 0.0])
    assert x[0] == pytest.approx([2, 0.0, 0.0, math.log1p(2 / 3), 0.0, 0.0, 1.0])


@pytest.mark.slow
def test_graph_cap_keeps_the_earliest_edges(spark):
    capped = build(spark, RiseNetShardConfig(**{**CFG.__dict__, "max_edges": 2}))
    row = capped[(1, 1)]
    assert row["graph_capped"] == 1
    week = row["weeks"][0]
    assert list(zip(week["edge_src"], week["edge_dst"], strict=True)) == [(0, 1), (0, 2)]


def test_nothing_from_after_the_observed_weeks(spark, built):
    """The test window (weeks 3-6) built from records cut at week 7 equals the full build:
    the week-7 share (tie strength, hub flag, sent counts) and the week-8 purchase (category
    share) must not reach its features."""
    cut = build(spark, cut=ts(2, 12, 0))
    keys = [k for k in built if k[1] == 3]
    assert keys
    for k in keys:
        assert cut[k]["weeks"] == built[k]["weeks"]
        assert cut[k]["records_before"] == built[k]["records_before"]


def test_bad_windows_are_named(spark):
    with pytest.raises(ValueError, match="test window starting in week 8 needs weeks 8..13"):
        build(spark, RiseNetShardConfig(**{**CFG.__dict__, "test_window": 8}))


@pytest.mark.slow
def test_build_shards_job_then_training_on_a_generated_world(spark, lake, monkeypatch, capsys,
                                                             tmp_path):
    """``jobs.build_shards --task risenet`` on a small 12-week generated world: the contract's
    schema as the trainer reads it, a manifest whose counts are the rows', every window's
    positives, and ``models.train --task risenet`` on them."""
    import json

    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from contracts import check_schema
    from contracts.risenet import SHARD
    from jobs import build_shards
    from models.config import TrainConfig
    from models.loop import train
    from pipeline import schemas
    from pipeline.world import WorldConfig, generate

    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    world = WorldConfig(share_records=20_000, seed=5)
    tables = generate(spark, world, lake.location("_scratch", "small"), progress=lambda m: None)
    for name in ("shares", "purchases", "items", "users"):  # what the builder reads
        lake.write(tables[name], "raw", name, partition_by=schemas.RAW_PARTITIONS.get(name),
                   app_id="small-world")
    assert build_shards.main(["--lake", lake.root, "--task", "risenet", "--run-id", "small",
                              "--min-records", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    shards = DeltaTable(lake.path("shards", "risenet")).to_pyarrow_table()
    check_schema("shards/risenet", shards.schema, SHARD)
    per_split = {v["values"]: v["counts"] for v in pc.value_counts(shards["split"]).to_pylist()}
    assert {s: sum(c.values()) for s, c in summary["counts"].items()} == per_split
    # 500 items in 10 categories: one top slot per category and window, filled by a star
    assert all(int(c.get("1", 0)) >= 5 for c in summary["windows"].values())
    result = train(TrainConfig(lake=lake.root, task="risenet", model="risenet", epochs=2,
                               out=str(tmp_path / "run"), run_id="small", threads=1))
    assert 0 <= result["metrics"]["test"]["f1"] <= 1
