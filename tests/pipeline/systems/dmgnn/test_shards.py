"""DM-GNN shards on a hand-made world (origin Monday 2024-01-01; window 0 is days 0-6, window 1
days 7-13; T(d, h) is day d at hour h).

Share records (sender -> receiver, item, time) and the edges, numbered by (ts, src, dst, item):
    A 0 -> 1 item 7 T(0,10)  id 0 share
    B 0 -> 2 item 7 T(0,10)  id 1 share   (tie with A: dst 2 after 1)
    E 0 -> 3 item 8 T(1,10)  id 2 share   (0 received 8 in D, at the same time: not before)
    C 1 -> 2 item 7 T(1,10)  id 3 repost  (1 received 7 in A)
    D 2 -> 0 item 8 T(1,10)  id 4 share   (2 never received 8)
    F 2 -> 3 item 7 T(8,9)   id 5 repost  (2 received 7 in B and C)
Items: 7 costs 10, 8 costs 50, 9 is not in raw/items (price 0). Attributes by (ts, user, type):
    id 0 user 1 browse  10 T(0,9)      (view)
    id 1 user 1 cart    10 T(0,9:30)
    id 2 user 1 payment 10 T(0,11)
    id 3 user 3 browse   0 T(2,12)     (click on item 9; "browse" sorts before "payment")
    id 4 user 3 payment 0.5 T(2,12)
    id 5 user 1 payment 95 T(3,12)
    id 6 user 2 payment 600 T(9,8)
    id 7 user 4 browse  50 T(10,0)     (favourite of item 8)
    id 8 user 0 payment  1 T(12,0)
Tiers (bounds 1, 30, 75, 150); users 0-3 start in window 0, user 4 in window 1, and the
stream's last window is 1 (T(12,0)):
    user 0: w0 spend 0 -> 1, w1 spend 1 -> 2      user 1: w0 105 -> 4, w1 0 -> 1
    user 2: w0 0 -> 1, w1 600 -> 5                user 3: w0 0.5 -> 1, w1 0 -> 1
    user 4: w1 0 -> 1
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from contracts import dmgnn as contract
from pipeline import schemas
from pipeline.schemas import RAW, with_partitions
from pipeline.systems.dmgnn.shards import (
    SPARK_SCHEMA,
    SparseNodeIdsError,
    build_dmgnn_tables,
    check_dense,
    tier_col,
    with_event_ids,
)
from pipeline.systems.steps import Steps

ORIGIN_MS = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


def T(day, h, m=0):
    return dt.datetime(2024, 1, 1 + day, h, m, tzinfo=dt.UTC)


def ms(t):
    return int(t.timestamp() * 1000)


def monday(t):
    d = t.date()
    return d - dt.timedelta(days=d.weekday())


# sender_id, receiver_id, item_id, ts
SHARES = [(0, 1, 7, T(0, 10)), (0, 2, 7, T(0, 10)), (1, 2, 7, T(1, 10)), (2, 0, 8, T(1, 10)),
          (0, 3, 8, T(1, 10)), (2, 3, 7, T(8, 9))]
# user_id, item_id, ts, action, page, stay_s
BROWSES = [(1, 7, T(0, 9), "view", "item", 3.0), (1, 7, T(0, 9, 30), "cart", "item", 5.0),
           (3, 9, T(2, 12), "click", "home", 1.0), (4, 8, T(10, 0), "favorite", "item", 2.0)]
# user_id, item_id, ts, amount
PURCHASES = [(1, 7, T(0, 11), 10.0), (3, 7, T(2, 12), 0.5), (1, 8, T(3, 12), 95.0),
             (2, 8, T(9, 8), 600.0), (0, 7, T(12, 0), 1.0)]
# item_id, top_category, leaf_category, price, price_index
ITEMS = [(7, 1, 3, 10.0, 0.5), (8, 2, 4, 50.0, 0.7)]


def frames(spark, shares=SHARES, browses=BROWSES, purchases=PURCHASES, items=ITEMS):
    def df(name, rows, at):
        return spark.createDataFrame(
            [(*r, monday(r[at])) if at is not None else r for r in rows],
            with_partitions(name, RAW[name]),
        )

    return (df("shares", shares, 3), df("browses", browses, 2), df("purchases", purchases, 2),
            df("items", items, None))


@pytest.fixture(scope="module")
def built(spark):
    edges, attributes, tiers, facts = build_dmgnn_tables(*frames(spark))
    return ([tuple(r) for r in edges.orderBy("event_id").collect()],
            [tuple(r) for r in attributes.orderBy("event_id").collect()],
            sorted(tuple(r) for r in tiers.collect()), facts,
            (edges.schema, attributes.schema, tiers.schema))


def test_edges_are_shares_and_reposts_in_time_order(built):
    edges = built[0]
    t0, t1, t8 = ms(T(0, 10)), ms(T(1, 10)), ms(T(8, 9))
    assert edges == [(0, 0, 1, t0, "share"), (1, 0, 2, t0, "share"), (2, 0, 3, t1, "share"),
                     (3, 1, 2, t1, "repost"), (4, 2, 0, t1, "share"), (5, 2, 3, t8, "repost")]


def test_attributes_carry_types_and_amounts(built):
    attributes = built[1]
    assert attributes == [
        (0, 1, ms(T(0, 9)), "browse", 10.0), (1, 1, ms(T(0, 9, 30)), "cart", 10.0),
        (2, 1, ms(T(0, 11)), "payment", 10.0), (3, 3, ms(T(2, 12)), "browse", 0.0),
        (4, 3, ms(T(2, 12)), "payment", 0.5), (5, 1, ms(T(3, 12)), "payment", 95.0),
        (6, 2, ms(T(9, 8)), "payment", 600.0), (7, 4, ms(T(10, 0)), "browse", 50.0),
        (8, 0, ms(T(12, 0)), "payment", 1.0),
    ]


def test_tiers_per_user_and_window(built):
    tiers, facts = built[2], built[3]
    w0, w1, w2 = ORIGIN_MS, ORIGIN_MS + WEEK_MS, ORIGIN_MS + 2 * WEEK_MS
    assert tiers == [(0, w0, w1, 1), (0, w1, w2, 2), (1, w0, w1, 4), (1, w1, w2, 1),
                     (2, w0, w1, 1), (2, w1, w2, 5), (3, w0, w1, 1), (3, w1, w2, 1),
                     (4, w1, w2, 1)]
    assert facts["num_nodes"] == 5 and facts["active_nodes"] == 5
    assert facts["origin"] == "2024-01-01" and facts["windows"] == 2


def test_tables_have_the_contract_schemas(built):
    for schema, name in zip(built[4], ("edges", "attributes", "tiers"), strict=True):
        schemas.check_schema(schema, SPARK_SCHEMA[name], f"shards/dmgnn/{name}")


def test_tier_col_matches_the_contract(spark):
    spends = [0.0, 0.99, 1.0, 29.9, 30.0, 74.9, 75.0, 149.9, 150.0, 1e6]
    got = spark.createDataFrame([(s,) for s in spends], "spend double").select(
        tier_col(F.col("spend")).alias("t")).collect()
    assert [r["t"] for r in got] == [contract.tier(s) for s in spends]
    assert [contract.tier(s) for s in spends] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_event_ids_follow_a_global_sort_over_many_partitions(spark):
    # 300 rows in 3 input partitions sorted into 5 ranges: ts = (7 i) mod 40 repeats, ties
    # broken by the key i; the ids must be the places 0..299 of the sorted (ts, key) pairs.
    rows = [((7 * i) % 40, i) for i in range(300)]
    df = spark.createDataFrame(rows, "ts long, key long").repartition(3)
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "5")
    try:
        got = with_event_ids(df, ["ts", "key"], Steps(measure=False), "sorted").collect()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    by_id = sorted((r["event_id"], r["ts"], r["key"]) for r in got)
    assert [e for e, _, _ in by_id] == list(range(300))
    assert [(t, k) for _, t, k in by_id] == sorted(rows)


def test_sparse_user_ids_are_refused(spark):
    # users 0 and 10 only: ids 0..10 would be 11 nodes for 2 users (more than 2 x 2); users
    # 0, 1 and 5 make 6 nodes for 3 users, which passes
    seen = "user_id long, first_ts long, last_ts long"
    with pytest.raises(SparseNodeIdsError, match="reach 10 but only 2 users"):
        check_dense(spark.createDataFrame([(0, 5, 9), (10, 1, 7)], seen))
    assert check_dense(spark.createDataFrame([(0, 5, 9), (1, 1, 7), (5, 2, 8)], seen)) == (6, 3, 9)


def run_job(lake, run_id, capsys):
    from jobs import build_shards

    assert build_shards.main(["--lake", lake.root, "--task", "dmgnn", "--run-id", run_id]) == 0
    return json.loads(capsys.readouterr().out)


def test_build_shards_job_on_a_generated_world(spark, world_lake, monkeypatch, capsys):
    """``jobs.build_shards --task dmgnn`` on the shared generated world: the torch task reads
    and checks every row (contract schemas, types, time order), and the tables agree with the
    raw tables recounted here with pandas: one edge per share record with its repost flag,
    one attribute event per browse and purchase, dense event ids, and a tier for every user
    and window from her first event to the last window, ``contract.tier`` of her payments."""
    import numpy as np
    import pandas as pd
    from deltalake import DeltaTable

    from models.systems.dmgnn.task import DmgnnTask

    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    lake, _, _ = world_lake
    summary = run_job(lake, "tiny", capsys)
    task = DmgnnTask(lake.root, hist_negatives=2)
    s = task.stream()

    def raw(name, columns):
        return DeltaTable(lake.path("raw", name)).to_pandas(columns=columns)

    shares = raw("shares", ["sender_id", "receiver_id", "item_id", "ts"])
    got = shares.groupby(["receiver_id", "item_id"], as_index=False).ts.min()
    got.columns = ["sender_id", "item_id", "got"]
    merged = shares.merge(got, on=["sender_id", "item_id"], how="left")
    reposts = int((merged["got"] < merged["ts"]).sum())
    assert 0 < reposts < len(shares)
    assert summary["edge_types"] == {"share": len(shares) - reposts, "repost": reposts}
    assert s.event_id.tolist() == list(range(len(shares))) == list(range(summary["edges"]))
    assert int((s.edge_type == contract.EDGE_TYPES.index("repost")).sum()) == reposts
    browses, purchases = raw("browses", ["user_id"]), raw("purchases", ["user_id", "amount"])
    assert len(s.attr_ts) == len(browses) + len(purchases) == summary["attributes"]
    assert s.num_nodes == summary["num_nodes"] == int(max(s.src.max(), s.dst.max(),
                                                          s.attr_user.max())) + 1

    week, origin = contract.WINDOW_DAYS * DAY_MS, summary["origin_ms"]
    events = pd.DataFrame({"user": np.r_[s.src, s.dst, s.attr_user],
                           "ts": np.r_[s.ts, s.ts, s.attr_ts]})
    first = (events.groupby("user").ts.min() - origin) // week
    last = (events.ts.max() - origin) // week
    assert len(s.tier) == summary["tiers"] == int((last - first + 1).sum())
    paid = s.attr_type == contract.ATTRIBUTE_TYPES.index("payment")
    spend = pd.DataFrame({"user": s.attr_user[paid], "w": (s.attr_ts[paid] - origin) // week,
                          "amount": s.attr_amount[paid]}).groupby(["user", "w"]).amount.sum()
    assert abs(spend.sum() - purchases["amount"].sum()) < 1e-6 * purchases["amount"].sum()
    tiers = pd.DataFrame({"user": s.tier_user, "w": (s.tier_start - origin) // week,
                          "tier": s.tier})
    tiers["spend"] = [spend.get((u, w), 0.0) for u, w in zip(tiers.user, tiers.w, strict=True)]
    assert (tiers.tier == tiers.spend.map(contract.tier)).all()
    assert tiers.groupby("user").w.min().to_dict() == first.to_dict()
    assert (tiers.groupby("user").w.max() == last).all()
    assert (s.tier_end - s.tier_start == week).all()

    train, test = task.load_split("train"), task.load_split("test")
    assert train.store.n_link > 0 and len(train.store.tier_user) > 0 and test.store.n_link > 0


@pytest.mark.slow
def test_a_rerun_commits_nothing(spark, world_lake, monkeypatch, capsys):
    """The attribute and tier tables are committed under the edge table's app id, so a re-run
    with the same run id leaves all four tables at their versions."""
    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    lake, _, _ = world_lake
    first = run_job(lake, "again", capsys)
    versions = {t: lake.version("shards", f"dmgnn/{t}") for t in contract.TABLES}
    assert run_job(lake, "again", capsys)["run_id"] == first["run_id"] == "again"
    assert {t: lake.version("shards", f"dmgnn/{t}") for t in contract.TABLES} == versions
