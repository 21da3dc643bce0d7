"""The dmgnn contract and task on a hand-made stream in a tmp lake (no Spark).

The stream (times in ms; types: s share, r repost, l like, c comment):
    edges  0: 0->1 @10 s   1: 1->2 @20 l   2: 0->2 @30 c   3: 2->0 @30 r   4: 0->1 @40 s
           5: 3->0 @50 l   6: 1->3 @60 s   7: 0->3 @70 c   8: 2->1 @80 s   9: 0->2 @90 l
    attributes: user 0 browse @5 (0), payment @15 (30), payment @35 (100); user 1 cart @25
        (20); user 2 payment @75 (600)
    tiers: user 0 [0, 50) tier 3 (spend 130), user 1 [0, 50) tier 1, user 2 [50, 100) tier 4
Split: ten events, so val starts at the time of event int(10 * 0.70) = 7 (t = 70) and test at
event int(10 * 0.85) = 8 (t = 80): train = events 0-6, val = event 7, test = events 8-9. The
tiers fall by their query time, the window end: 50 < 70 -> train (users 0, 1); 100 -> test.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from contracts import ContractError
from contracts import dmgnn as contract
from models.base import OptionError, ShardModel
from models.systems.dmgnn.stream import (
    EventOrderError,
    EventStreamError,
    UnknownTypeError,
    stream_from_arrow,
)
from models.systems.dmgnn.task import DmgnnTask, link_metrics, tier_metrics
from tests.models.systems.dmgnn.streams import attributes, edges, tiers, write_lake

EDGES = [(0, 0, 1, 10, "share"), (1, 1, 2, 20, "like"), (2, 0, 2, 30, "comment"),
         (3, 2, 0, 30, "repost"), (4, 0, 1, 40, "share"), (5, 3, 0, 50, "like"),
         (6, 1, 3, 60, "share"), (7, 0, 3, 70, "comment"), (8, 2, 1, 80, "share"),
         (9, 0, 2, 90, "like")]
ATTRIBUTES = [(0, 0, 5, "browse", 0.0), (1, 0, 15, "payment", 30.0), (2, 1, 25, "cart", 20.0),
              (3, 0, 35, "payment", 100.0), (4, 2, 75, "payment", 600.0)]
TIERS = [(0, 0, 50, 3), (1, 0, 50, 1), (2, 50, 100, 4)]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    path = tmp_path_factory.mktemp("dmgnn") / "lake"
    return write_lake(path, edges(EDGES[::-1]), attributes(ATTRIBUTES), tiers(TIERS))


def test_tiers_follow_the_contract_bounds():
    # bounds 1, 100, 500, 2000: 0 -> 1, 1 -> 2, 130 -> 3, 600 -> 4, 2000 -> 5
    assert [contract.tier(s) for s in (0.0, 0.99, 1.0, 50.0, 100.0, 150.0)] == [1, 1, 2, 3, 4, 5]
    assert contract.tables("tmall")["edges"] == "dmgnn/tmall/edges"
    assert contract.tables()["manifest"] == "dmgnn/manifest"


def test_the_hand_made_stream_loads_and_splits_by_time(lake):
    task = DmgnnTask(lake, tier_at="end", hist_negatives=2)
    assert task.cuts() == (70, 80)
    meta = task.meta()
    assert meta["num_nodes"] == 4 and meta["heads"] == ["link", "tier"]
    assert meta["train_src"].tolist() == [0, 1, 0, 2, 0, 3, 1]  # read in event_id order
    train, val, test = (task.load_split(s) for s in ("train", "val", "test"))
    assert (train.store.n_link, val.store.n_link, test.store.n_link) == (7, 1, 2)
    assert train.store.event_id.tolist() == list(range(7))
    # tiers by window end: users 0 and 1 (end 50) train, user 2 (end 100) test; 0-based classes
    assert train.store.tier_user.tolist() == [0, 1] and train.store.tier.tolist() == [2, 0]
    assert len(val) == 1 and test.store.tier_user.tolist() == [2]
    assert test.store.tier_time.tolist() == [100]
    assert len(train) == 9 and train.store.hist.shape == (7, 0)
    assert test.store.hist.shape == (2, 2)


def test_tier_at_start_queries_the_window_start(lake):
    train = DmgnnTask(lake, tier_at="start").load_split("train")
    # window starts 0, 0, 50 are all before the val cut (70)
    assert train.store.tier_user.tolist() == [0, 1, 2]
    assert train.store.tier_time.tolist() == [0, 0, 50]


def test_a_batch_holds_links_then_tiers(lake):
    task = DmgnnTask(lake, tier_at="end", num_neighbors=3, layers=2)
    train = task.load_split("train")
    batch = task.collate([train[5], train[7]])  # event 5 (3 -> 0 @50) and user 0's tier
    assert (batch["n_link"], batch["n_hist"], batch["n_tier"]) == (1, 0, 1)
    neg = int(train.store.neg[5])
    assert batch["node_0"].tolist() == [3, 0, neg, 0]
    # node 0 before 50: events 2 (->2 c), 3 (<-2 r), 4 (->1 s); codes 1 + 2 type + direction
    assert batch["node_1"][1].tolist() == [2, 2, 1]
    assert batch["code_1"][1].tolist() == [7, 4, 1]
    # ages in days: (50 - 30) ms and (50 - 40) ms
    assert batch["dt_1"][1].tolist() == pytest.approx([20 / 86_400_000] * 2 + [10 / 86_400_000])
    assert batch["node_2"].shape == (4, 9) and batch["x_2"].shape == (4, 9, 13)
    # node 2 at 30 (level 1, slot 0): before 30 only event 1 (<-1 like: 1 + 2 * 2 + 1 = 6)
    assert batch["node_2"][1, :3].tolist() == [0, 0, 1]
    assert batch["code_2"][1, :3].tolist() == [0, 0, 6]
    assert batch["tier"].tolist() == [2]


@pytest.mark.parametrize("table, rows, error, where", [
    ("edges", [(1, 0, 1, 20, "share"), (2, 1, 0, 15, "like")], EventOrderError, (2, "ts")),
    ("edges", [(1, 0, 1, 20, "share"), (2, 1, 0, 25, "poke")], UnknownTypeError,
     (2, "edge_type")),
    ("edges", [(1, 0, -1, 20, "share")], EventStreamError, (1, "dst")),
    ("edges", [(4, 0, 1, 20, "share"), (4, 1, 0, 25, "like")], EventStreamError,
     (4, "event_id")),
    ("attributes", [(7, 0, 30, "payment", 1.0), (8, 0, 29, "cart", 1.0)], EventOrderError,
     (8, "ts")),
    ("attributes", [(7, 0, 30, "refund", 1.0)], UnknownTypeError, (7, "event_type")),
    ("attributes", [(7, 0, 30, "payment", -1.0)], EventStreamError, (7, "amount")),
    ("tiers", [(0, 0, 50, 6)], EventStreamError, (0, "tier")),
    ("tiers", [(0, 50, 50, 1)], EventStreamError, (0, "window_end")),
])
def test_bad_rows_raise_a_named_error(table, rows, error, where):
    tables = {"edges": edges(EDGES[:1]), "attributes": attributes([]), "tiers": tiers([])}
    tables[table] = {"edges": edges, "attributes": attributes, "tiers": tiers}[table](rows)
    names = {name: f"shards/{name}" for name in contract.TABLES}
    with pytest.raises(error) as caught:
        stream_from_arrow(tables["edges"], tables["attributes"], tables["tiers"], names)
    assert (caught.value.table, caught.value.row, caught.value.column) == (
        f"shards/{table}", *where)
    assert f"shards/{table}: row {where[0]}, column '{where[1]}'" in str(caught.value)


def test_the_lake_is_checked_row_by_row(tmp_path):
    bad = EDGES[:3] + [(3, 2, 0, 25, "repost")]  # 25 < 30
    lake = write_lake(tmp_path, edges(bad), attributes([]), tiers([]))
    with pytest.raises(EventOrderError, match=r"dmgnn/edges: row 3, column 'ts': 25 is before"):
        DmgnnTask(lake).load_split("train")


def test_schema_and_manifest_are_checked(tmp_path):
    from deltalake import write_deltalake

    lake = write_lake(tmp_path, edges(EDGES), attributes(ATTRIBUTES).drop_columns(["amount"]),
                      tiers(TIERS))
    with pytest.raises(ContractError, match="'amount' is missing"):
        DmgnnTask(lake).load_split("train")
    lake = write_lake(tmp_path / "b", edges(EDGES), attributes(ATTRIBUTES), tiers(TIERS))
    write_deltalake(str(tmp_path / "b" / "shards" / "dmgnn" / "manifest"),
                    pa.table({"schema_version": [contract.SCHEMA_VERSION + 1],
                              "run_id": ["x"], "json": ["{}"]}))
    with pytest.raises(ContractError, match="schema_version"):
        DmgnnTask(lake).load_split("train")


@pytest.mark.parametrize("options", [{"objective": "rank"}, {"tier_at": "middle"},
                                     {"num_neighbors": 0}, {"hist_negatives": -1},
                                     {"val_fraction": 0.5, "test_fraction": 0.5}])
def test_bad_options(options):
    with pytest.raises(OptionError):
        DmgnnTask("unused", **options)


def test_link_and_tier_metrics_by_hand():
    # AUC: positives .9 .4 vs negatives .5 .1: pairs won (.9>.5, .9>.1, .4>.1) = 3 of 4.
    # AP: ranked .9(+) .5(-) .4(+) .1(-): precision 1 at the first hit, 2/3 at the second.
    # MRR: row 1 [.95, .1]: one above -> 1/2; row 2 [.4, .2]: a tie counts half -> 1/1.5.
    m = link_metrics(np.array([0.9, 0.4]), np.array([0.5, 0.1]),
                     np.array([[0.95, 0.1], [0.4, 0.2]]))
    assert m["auc"] == pytest.approx(0.75)
    assert m["ap"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 1.5) / 2)
    # tiers 0 0 1 2 predicted 0 1 1 2: F1 class 0 = 2/3, class 1 = 2/3, class 2 = 1
    t = tier_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]))
    assert t["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert t["accuracy"] == 0.75
    assert math.isnan(link_metrics(np.zeros(0), np.zeros(0), np.zeros((0, 3)))["auc"])


class ByNode(ShardModel):
    """Link probability = the candidate's id / 10; tier = always class 2."""

    def __init__(self):
        super().__init__(None, {})

    def predict(self, batch):
        n, k, t = batch["n_link"], batch["n_hist"], batch["n_tier"]
        p = batch["node_0"].float() / 10
        tier = torch.zeros(t, 5)
        tier[:, 2] = 1
        return {"pos": p[n:2 * n], "neg": p[2 * n:3 * n],
                "hist": p[3 * n:3 * n + n * k].reshape(n, k), "tier": tier}


def test_evaluate_and_example_scores(lake):
    task = DmgnnTask(lake, tier_at="end", hist_negatives=2)
    test = task.load_split("test")
    metrics = task.evaluate(ByNode(), test, torch.device("cpu"))
    assert metrics["n_link"] == 2 and metrics["n_tier"] == 1
    # user 2's tier 4 (class 3) predicted as class 2: F1 0
    assert metrics["macro_f1"] == 0.0 and metrics["accuracy"] == 0.0
    pos, neg = test.store.dst / 10, test.store.neg / 10
    assert metrics["auc"] == pytest.approx(link_metrics(pos, neg, np.zeros((0, 0)))["auc"])
    scored = task.example_scores(ByNode(), test, torch.device("cpu"))
    assert scored["example_id"].tolist() == [16, 18, 17, 19]  # 2 * event_id (+ 1: negative)
    assert scored["label"].tolist() == [1, 1, 0, 0]
    assert scored["score"].tolist() == pytest.approx([*pos, *neg])
    tier_only = DmgnnTask(lake, tier_at="end", objective="tier")
    assert tier_only.example_scores(ByNode(), test, "cpu") is None
    assert tier_only.primary_metric == "macro_f1"
