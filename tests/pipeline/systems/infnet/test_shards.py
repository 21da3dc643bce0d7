"""InfNet shard builder on a hand-made world (7 users, 3 items, 2 observation weeks), and the
whole ``jobs.build_shards --task infnet`` on a tiny generated world.

Prediction days start Mon 2024-01-29 (days 0, 1 train/val, day 2 test); 2 observation weeks.
For a query on day D, week 0 = [D-14, D-7), week 1 = [D-7, D).

    shares                          purchases
    2 -> 1  item 11  01-20          2 buys 12 on 2023-12-01 (100.0)  history, not recent
    3 -> 2  item 12  01-23          1 buys 11 on 01-29 15:00          -> q1 label 1
    4 -> 3  item 10  01-24
    5 -> 4  item 10  01-25
    20 -> 1 item 10  01-22, 21 -> 1 01-26, 22 -> 1 01-27   (a small hub around 1, fanout 2)
    2 -> 1  item 11  01-29 10:00    query q1 = (1, 11, 01-29)
    6 -> 3  item 12  01-31 09:00    query q2 = (3, 12, 01-31), test

Items 10, 11, 12 have price index 1, 5, 9: with 2 PI bins the edge is 5, so 10 and 11 fall in
bin 0 and 12 in bin 1; categories 0, 1, 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math

import pytest

from pipeline import schemas

pytest.importorskip("pyspark")

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def ts(month, day, hour=12):
    year = 2023 if month == 12 else 2024
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


BASE_SHARES = [
    (2, 1, 11, ts(1, 20)),
    (3, 2, 12, ts(1, 23)),
    (4, 3, 10, ts(1, 24)),
    (5, 4, 10, ts(1, 25)),
    (20, 1, 10, ts(1, 22)),
    (21, 1, 10, ts(1, 26)),
    (22, 1, 10, ts(1, 27)),
    (2, 1, 11, ts(1, 29, 10)),
    (6, 3, 12, ts(1, 31, 9)),
]
BASE_PURCHASES = [
    (2, 12, ts(12, 1), 100.0),
    (1, 11, ts(1, 29, 15), 30.0),
]
ITEMS = [(10, 0, 100, 1.0, 1.0), (11, 1, 110, 5.0, 5.0), (12, 1, 120, 9.0, 9.0)]


def write_world(spark, lake, shares, purchases):
    lake.write(spark.createDataFrame(shares, schemas.SHARES), "raw", "shares")
    lake.write(spark.createDataFrame(purchases, schemas.PURCHASES), "raw", "purchases")
    lake.write(spark.createDataFrame(ITEMS, schemas.ITEMS), "raw", "items")


OPTIONS = dict(obs_weeks=2, train_days=2, test_days=1, val_fraction=0.3,
               pred_start="2024-01-29", label_hours=24.0, history_days=365, recent_days=30,
               queries=None, fanout=2, pi_bins=2, seed=0, rows_per_file=1000)


def build(spark, lake, **over):
    """The registered builder on the lake's world -> (manifest, {(user, item): shard row})."""
    from pipeline.systems.infnet.shards import build as build_infnet

    summary = build_infnet(spark, lake, argparse.Namespace(**{**OPTIONS, "run_id": None, **over}))
    rows = lake.read(spark, "shards", "infnet").collect()
    return summary, {(r["user_id"], r["item_id"]): r for r in rows}


def by_id(row):
    """week -> (sorted node ids, sorted (src id, dst id, attr)) of one query row."""
    ids = row["node_ids"]
    out = {}
    for w in row["weeks"]:
        nodes = sorted(ids[i] for i in w["nodes"])
        edges = sorted(
            (ids[s], ids[d], list(a))
            for s, d, a in zip(w["edge_src"], w["edge_dst"], w["edge_attr"], strict=True)
        )
        out[w["week"]] = (nodes, edges)
    return out


def test_expand_hop_keeps_the_most_recent_neighbours(spark):
    """Node 1 has neighbours 20, 21, 22 (last active 01-22, 01-26, 01-27): fanout 2 keeps 22
    and 21 and reports the 3 neighbours it saw; node 2 has one neighbour, kept."""
    from pipeline.systems.infnet.shards import cap_neighbours, expand_hop

    day = dt.date(2024, 1, 29)
    adjacency = spark.createDataFrame(
        [(day, 1, 1, 20, ts(1, 22)), (day, 1, 1, 21, ts(1, 26)), (day, 1, 1, 22, ts(1, 27)),
         (day, 1, 2, 3, ts(1, 23))],
        "query_day date, week int, node long, nbr long, last_ts timestamp",
    )
    frontier = spark.createDataFrame([(7, day, 1, 1), (7, day, 1, 2)],
                                     "query_id long, query_day date, week int, node long")
    got = sorted(tuple(r) for r in expand_hop(frontier, cap_neighbours(adjacency, 2))
                 .select("node", "nbr", "n_nbrs").collect())
    assert got == [(1, 21, 3), (1, 22, 3), (2, 3, 1)]


def at(month, day, hour, minute=0):
    return dt.datetime(2024, month, day, hour, minute, tzinfo=dt.UTC)


def test_nothing_comes_from_the_query_day_or_after_the_query(spark):
    """q1 = (1, 11) at 01-29 10:00 in a world that also holds rows of its own day and later.

    Sub-graphs end where the query day starts: 8 -> 1 at 08:00 that day would otherwise be
    node 1's most recent neighbour (fanout 2). Features use rows strictly before 10:00: 4's
    purchase at 09:00 counts (item 10, PI bin 0, also in the last 30 days); 2's at 12:00 and
    the target's at 10:30 do not. So q1's sub-graphs and features are the ones worked out for
    the base world (see the slow tests below) plus 4's purchase.

    Receiver histories (window from D - 14 days, before query_ts, at most 4 records here):
    user 1 received item 11 on 01-20 and item 10 on 01-22, 01-26, 01-27 and 01-29 08:00; the
    4 newest stay. q1's own record (2 -> 1 at 10:00, not before itself) and everything later
    do not count. q2 = (3, 12) at 01-31 09:00: 3 sent 12 to 2 on 01-23 (kind 1), received 10
    from 4 on 01-24 (kind 0) and bought 11 on 01-30 (kind 2, added here); 6 -> 3 is q2 itself.
    """
    from pipeline.systems.infnet.shards import InfNetShardConfig, build_infnet_shards

    same_day_before = [(8, 1, 10, at(1, 29, 8))]
    later_shares = [(9, 1, 12, at(1, 29, 11)), (9, 2, 11, at(1, 30, 12)),
                    (2, 1, 10, at(1, 29, 23))]
    earlier_purchase = [(4, 10, at(1, 29, 9), 50.0), (3, 11, at(1, 30, 12), 5.0)]
    later_purchases = [(2, 12, at(1, 29, 12), 500.0), (1, 10, at(1, 29, 10, 30), 7.0)]
    shares = spark.createDataFrame(BASE_SHARES + same_day_before + later_shares, schemas.SHARES)
    purchases = spark.createDataFrame(
        BASE_PURCHASES + earlier_purchase + later_purchases, schemas.PURCHASES
    )
    items = spark.createDataFrame(ITEMS, schemas.ITEMS)
    # Plain semi-joins (no broadcast pre-filter: fewer Spark jobs); the job test below and
    # the slow tests take the default path.
    cfg = InfNetShardConfig(**OPTIONS, broadcast_nodes=0, history_len=4)
    rows, _, _ = build_infnet_shards(spark, shares, purchases, items, cfg)
    got = {(r["user_id"], r["item_id"]): r for r in rows.collect()}
    q1, q2 = got[1, 11], got[3, 12]

    assert q1["query_ts"].astimezone(dt.UTC) == at(1, 29, 10) and q1["label"] == 1
    weeks = by_id(q1)
    assert weeks[0] == ([1, 2], [(2, 1, [1.0, 0.0])])
    assert weeks[1] == ([1, 2, 3, 4, 21, 22], [
        (3, 2, [0.0, 1.0]), (4, 3, [1.0, 0.0]), (21, 1, [1.0, 0.0]), (22, 1, [1.0, 0.0])
    ])
    x = dict(zip(q1["node_ids"], q1["node_x"], strict=True))
    assert x[1] == [0.0] * 4 + [1.0, 0.0, 0.0] and q1["cold"] is True
    assert x[2] == pytest.approx([0.0, math.log1p(100.0), 0.0, 0.0, 0.0, 1.0, 0.0])
    spent = math.log1p(50.0)
    assert x[4] == pytest.approx([spent, 0.0, spent, 0.0, 0.0, 0.0, 1.0])

    assert q1["history_items"] == [10, 10, 10, 10] and q1["history_kinds"] == [0, 0, 0, 0]
    assert [t.astimezone(dt.UTC) for t in q1["history_ts"]] == [
        ts(1, 22), ts(1, 26), ts(1, 27), at(1, 29, 8)]
    assert q2["history_items"] == [12, 10, 11] and q2["history_kinds"] == [1, 0, 2]
    assert [t.astimezone(dt.UTC) for t in q2["history_ts"]] == [
        ts(1, 23), ts(1, 24), at(1, 30, 12)]


# The registered builder with its lake write and manifest, three times over: behind `slow`
# (the default suite runs the builder once in memory and the job once on a generated world).
@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    from pipeline.lake import Lake

    lake = Lake(tmp_path_factory.mktemp("infnet") / "lake")
    write_world(spark, lake, BASE_SHARES, BASE_PURCHASES)
    return lake, *build(spark, lake)


@pytest.mark.slow
def test_queries_labels_and_splits(built):
    _, summary, rows = built
    assert set(rows) == {(1, 11), (3, 12)}
    q1, q2 = rows[1, 11], rows[3, 12]
    assert (q1["item_id"], q1["label"], q1["query_day"]) == (11, 1, dt.date(2024, 1, 29))
    assert q1["split"] in {"train", "val"}
    assert (q2["item_id"], q2["label"], q2["split"]) == (12, 0, "test")
    assert summary["counts"]["test"] == {"0": 1}
    assert summary["node_dim"] == 2 + 2 + 3 and summary["edge_dim"] == 2
    # item_x = PI one-hot (2) + category one-hot (2): item 11 -> bin 0, category 1
    assert q1["item_x"] == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.slow
def test_weekly_subgraphs_bfs_depth_two_and_fanout(built):
    _, summary, rows = built
    q1 = by_id(rows[1, 11])
    # week 0 (01-15..01-21): only 2 -> 1 with item 11 (bin 0)
    assert q1[0] == ([1, 2], [(2, 1, [1.0, 0.0])])
    # week 1 (01-22..01-28): hop 1 from 1 keeps the 2 latest of {20, 21, 22}; from 2 reaches 3;
    # hop 2 from 3 reaches 4; 5 is three hops away.
    nodes, edges = q1[1]
    assert nodes == [1, 2, 3, 4, 21, 22]
    assert edges == [(3, 2, [0.0, 1.0]), (4, 3, [1.0, 0.0]), (21, 1, [1.0, 0.0]),
                     (22, 1, [1.0, 0.0])]
    assert rows[1, 11]["node_ids"][:2] == [1, 2] and rows[1, 11]["node_role"][:2] == [0, 1]
    assert rows[1, 11]["fanout_capped"] == 1
    assert summary["fanout_bites"]["queries_capped"] == 1
    # q2 on 01-31: week 0 = 01-17..01-23, week 1 = 01-24..01-30 (holds the 01-29 share 2 -> 1,
    # which 3 does not reach within two hops); 20 -> 1 (01-22) is beyond hop 2.
    q2 = by_id(rows[3, 12])
    assert q2[0] == ([1, 2, 3, 6], [(2, 1, [1.0, 0.0]), (3, 2, [0.0, 1.0])])
    assert q2[1] == ([3, 4, 5, 6], [(4, 3, [1.0, 0.0]), (5, 4, [1.0, 0.0])])


@pytest.mark.slow
def test_node_features_and_cold(built):
    _, _, rows = built
    q1 = rows[1, 11]
    x = dict(zip(q1["node_ids"], q1["node_x"], strict=True))
    # node 2 spent 100 on item 12 (bin 1) on 2023-12-01: in the year, not in the last 30 days
    assert x[2] == pytest.approx([0.0, math.log1p(100.0), 0.0, 0.0, 0.0, 1.0, 0.0])
    # the target bought nothing before 01-29 10:00 (its purchase at 15:00 is the label)
    assert x[1] == [0.0] * 4 + [1.0, 0.0, 0.0]
    assert x[4][-3:] == [0.0, 0.0, 1.0]
    assert q1["cold"] is True
    manifest = json.loads(built[0].to_arrow("shards", "infnet_manifest")["json"][0].as_py())
    assert manifest["schema_version"] == 2 and manifest["fanout"] == 2
    assert manifest["history_len"] == 50


@pytest.mark.slow
def test_no_feature_uses_information_after_the_query(spark, tmp_path, built):
    """Rows after q1's time (10:00 on 01-29) must not change q1's inputs; one before it must."""
    from pipeline.lake import Lake

    _, _, base = built
    later_shares = [(9, 1, 12, ts(1, 29, 11)), (9, 2, 11, ts(1, 30)), (2, 1, 10, ts(1, 29, 23))]
    later_purchases = [(2, 12, ts(1, 29, 12), 500.0),
                       (1, 10, dt.datetime(2024, 1, 29, 10, 30, tzinfo=dt.UTC), 7.0)]
    lake = Lake(tmp_path / "later")
    write_world(spark, lake, BASE_SHARES + later_shares, BASE_PURCHASES + later_purchases)
    _, rows = build(spark, lake)
    inputs = ["node_ids", "node_role", "node_x", "weeks", "item_x", "cold", "query_ts"]
    for col in inputs:
        assert rows[1, 11][col] == base[1, 11][col], col

    earlier = [(2, 12, dt.datetime(2024, 1, 29, 9, tzinfo=dt.UTC), 500.0)]
    lake = Lake(tmp_path / "earlier")
    write_world(spark, lake, BASE_SHARES, BASE_PURCHASES + earlier)
    _, rows = build(spark, lake)
    assert rows[1, 11]["node_x"] != base[1, 11]["node_x"]


def test_build_shards_job_on_a_generated_world(spark, world_lake, monkeypatch, capsys):
    """``jobs.build_shards --task infnet`` on the shared generated world: one row per query
    (distinct receiver, item and day over the prediction days, counted here from raw/shares),
    every split present, the contract's schema as the trainer reads it (delta-rs), and a
    manifest whose counts match the rows."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from contracts import check_schema
    from contracts.infnet import SHARD
    from jobs import build_shards

    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    lake, _, _ = world_lake
    argv = ["--lake", lake.root, "--task", "infnet", "--obs-weeks", "2", "--fanout", "5",
            "--run-id", "tiny"]
    assert build_shards.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)

    shards = DeltaTable(lake.path("shards", "infnet")).to_pyarrow_table()
    check_schema("shards/infnet", shards.schema, SHARD)
    assert shards.schema.names == SHARD.names
    shares = DeltaTable(lake.path("raw", "shares")).to_pandas(
        columns=["receiver_id", "item_id", "ts"]
    )
    first = dt.date.fromisoformat(summary["pred_start"])
    day = (shares["ts"].dt.tz_convert("UTC").dt.date - first).map(lambda d: d.days)
    queries = shares.assign(day=day)[(day >= 0) & (day < 3)]
    queries = queries.drop_duplicates(["receiver_id", "item_id", "day"])
    splits = pc.value_counts(shards["split"]).to_pylist()
    per_split = {v["values"]: v["counts"] for v in splits}
    assert shards.num_rows == len(queries) == summary["queries"] > 0
    assert per_split["test"] == (queries["day"] == 2).sum()
    assert per_split["train"] > 0 and per_split["val"] > 0
    assert per_split["train"] + per_split["val"] == (queries["day"] < 2).sum()
    assert len(set(shards["query_id"].to_pylist())) == shards.num_rows
    manifest = {split: sum(by_label.values()) for split, by_label in summary["counts"].items()}
    assert manifest == per_split
    assert summary["run_id"] == "tiny" and summary["num_weeks"] == 2
