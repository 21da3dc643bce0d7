"""InfNet task and models on hand-made queries (no Spark): reading, shapes, attention, causality.

Two queries, 2 weeks, 2 PI bins, node_dim 7 (2 spend bins, recent, bought-before, 3 roles):
    q1 (label 1): nodes [1 target, 2 seed, 3]; week 0: 2 -> 1; week 1: 3 -> 2, 3 -> 1, 1 -> 3
    q2 (label 0): nodes [4 target, 5 seed];    week 0: no edges; week 1: 5 -> 4
Receiver histories: q1 at 01-29 10:00 received 12 on 01-20 12:00, bought 10 on 01-25 12:00 and
sent 13 on 01-29 08:00 (8.9167, 3.9167 and 0.0833 days before); q2 has none.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from models.base import get_model
from models.systems.infnet.task import (
    InfNetTask,
    binary_metrics,
    collate_examples,
    examples_from_arrow,
)

META = {"node_dim": 7, "edge_dim": 2, "item_dim": 3, "num_weeks": 2, "num_roles": 3,
        "user_feature_dim": 4, "pi_bins": 2, "max_user_id": 5, "max_item_id": 11,
        "history_len": 50}


def utc(day, hour):
    return dt.datetime(2024, 1, day, hour, tzinfo=dt.UTC)


def role_x(role, spend=0.0):
    return [spend, 0.0, 0.0, 0.0] + [float(role == r) for r in range(3)]


def week(w, nodes, edges):
    return {"week": w, "nodes": nodes, "edge_src": [e[0] for e in edges],
            "edge_dst": [e[1] for e in edges], "edge_attr": [e[2] for e in edges]}


ROWS = [
    {"query_id": 7, "user_id": 1, "item_id": 10, "split": "train", "label": 1, "cold": False,
     "item_x": [1.0, 0.0, 1.0], "node_ids": [1, 2, 3], "node_role": [0, 1, 2],
     "node_x": [role_x(0, 1.0), role_x(1), role_x(2)],
     "weeks": [week(0, [0, 1], [(1, 0, [1.0, 0.0])]),
               week(1, [0, 1, 2], [(2, 1, [0.0, 2.0]), (2, 0, [1.0, 1.0]), (0, 2, [1.0, 0.0])])],
     "query_ts": utc(29, 10), "history_items": [12, 10, 13], "history_kinds": [0, 2, 1],
     "history_ts": [utc(20, 12), utc(25, 12), utc(29, 8)]},
    {"query_id": 3, "user_id": 4, "item_id": 11, "split": "train", "label": 0, "cold": True,
     "item_x": [0.0, 1.0, 0.0], "node_ids": [4, 5], "node_role": [0, 1],
     "node_x": [role_x(0), role_x(1, 2.0)],
     "weeks": [week(0, [0, 1], []), week(1, [0, 1], [(1, 0, [0.0, 1.0])])],
     "query_ts": utc(30, 12), "history_items": [], "history_kinds": [], "history_ts": []},
]

SCHEMA = pa.schema([
    ("query_id", pa.int64()), ("user_id", pa.int64()), ("item_id", pa.int64()),
    ("split", pa.string()), ("label", pa.int32()), ("cold", pa.bool_()),
    ("item_x", pa.list_(pa.float32())), ("node_ids", pa.list_(pa.int64())),
    ("node_role", pa.list_(pa.int32())), ("node_x", pa.list_(pa.list_(pa.float32()))),
    ("weeks", pa.list_(pa.struct([
        ("week", pa.int32()), ("nodes", pa.list_(pa.int32())),
        ("edge_src", pa.list_(pa.int32())), ("edge_dst", pa.list_(pa.int32())),
        ("edge_attr", pa.list_(pa.list_(pa.float32())))]))),
    ("query_ts", pa.timestamp("us", tz="UTC")), ("history_items", pa.list_(pa.int64())),
    ("history_kinds", pa.list_(pa.int32())),
    ("history_ts", pa.list_(pa.timestamp("us", tz="UTC"))),
])


@pytest.fixture
def examples():
    return examples_from_arrow(pa.Table.from_pylist(ROWS, SCHEMA), 7, 2)


@pytest.fixture
def batch(examples):
    return collate_examples(examples, 2)


def make(name, **over):
    cls = get_model("infnet", name)
    torch.manual_seed(0)
    return cls(cls.make_config({"hidden": 8, **over}), META)


def test_reader_keeps_weeks_edges_and_targets(examples, batch):
    ex = examples[0]
    assert ex.edge_week.tolist() == [0, 1, 1, 1]
    assert ex.edge_src.tolist() == [1, 2, 2, 0] and ex.edge_dst.tolist() == [0, 1, 0, 2]
    assert ex.edge_attr[1].tolist() == [0.0, 2.0]
    g = batch["graph"]
    assert g.num_graphs == 2 and g.num_nodes == 5
    assert g.ptr[:-1].tolist() == [0, 3]  # targets
    assert g.node_id[g.ptr[:-1]].tolist() == [1, 4]
    # q2's edge 5 -> 4 is shifted by q1's 3 nodes
    assert g.edge_index[:, -1].tolist() == [4, 3]
    assert g.present.tolist() == [[True, True], [True, True], [False, True],
                                  [True, True], [True, True]]
    assert batch["y"].tolist() == [1.0, 0.0] and batch["cold"].tolist() == [False, True]
    # histories: left-aligned, item -1 and kind 0 in the padding, ages in days
    assert batch["user_id"].tolist() == [1, 4] and batch["hist_len"].tolist() == [3, 0]
    assert batch["hist_item"].tolist() == [[12, 10, 13], [-1, -1, -1]]
    assert batch["hist_kind"].tolist() == [[0, 2, 1], [0, 0, 0]]
    assert batch["hist_age"][0].tolist() == pytest.approx([8 + 22 / 24, 3 + 22 / 24, 2 / 24])


VARIANTS = ["infnet", "infnet_s", "infnet_no_attention", "infnet_no_structural",
            "infnet_no_edge", "infnet_no_user", "infnet_no_item", "infnet_gru", "infnet_mean",
            "infnet_none", "diffnet"]


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_and_gradients(name, batch):
    model = make(name)
    probs = model.predict(batch)
    assert probs.shape == (2,) and bool(((probs > 0) & (probs < 1)).all())
    loss = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    # every weight takes part in the loss: DDP (without find_unused) needs that
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_edge_attention_sums_to_one_per_node_week(batch):
    from models.systems.infnet.infnet import DiffusionLayer

    torch.manual_seed(0)
    g = batch["graph"]
    layer = DiffusionLayer(8)
    h = torch.randn(g.num_nodes, 2, 8)
    e = torch.randn(g.num_edges, 8)
    _, a_in, a_out = layer(h, e, g.edge_index, g.edge_week, return_attention=True)
    for weights, end in ((a_in, g.edge_index[1]), (a_out, g.edge_index[0])):
        group = end * 2 + g.edge_week
        for key in group.unique():
            assert weights[group == key].sum().item() == pytest.approx(1.0, abs=1e-6)
    # week 1 of q1: node 1 (index 0) receives from 3 (index 2) only -> weight 1;
    # node 3 (index 2) sends two edges (to 2 and 1) -> two weights that are not both 1/2
    # unless attention is uniform.
    assert a_in[2].item() == pytest.approx(1.0)
    uniform = DiffusionLayer(8, attention=False)
    _, _, a_out_u = uniform(h, e, g.edge_index, g.edge_week, return_attention=True)
    assert a_out_u[1:3].tolist() == pytest.approx([0.5, 0.5])


def test_masked_self_attention_never_looks_ahead():
    from models.systems.infnet.infnet import CausalMean, CausalSelfAttention, GRUEncoder

    torch.manual_seed(0)
    h = torch.randn(5, 4, 8)
    later = h.clone()
    later[:, 3] += 10.0 * torch.randn(5, 8)  # change week 3 only
    for enc in (CausalSelfAttention(8, 4), CausalMean(), GRUEncoder(8)):
        a, b = enc(h), enc(later)
        assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6), type(enc).__name__
        assert not torch.allclose(a[:, 3], b[:, 3])
    _, attn = CausalSelfAttention(8, 4)(h, return_weights=True)
    assert torch.all(attn.triu(1) == 0)
    assert torch.allclose(attn.sum(-1), torch.ones(5, 4))


def test_no_edge_ablation_ignores_edge_features(batch):
    model = make("infnet_no_edge")
    other = dict(batch)
    other["graph"] = batch["graph"].clone()
    other["graph"].edge_attr = other["graph"].edge_attr * 7 + 3
    assert torch.allclose(model.predict(batch), model.predict(other))
    full = make("infnet")
    assert not torch.allclose(full.predict(batch), full.predict(other))


def test_binary_metrics_by_hand():
    y = np.array([1, 0, 1, 0])
    score = np.array([0.9, 0.8, 0.3, 0.1])
    cold = np.array([True, True, False, False])
    m = binary_metrics(y, score, cold)
    # ranks 1:+, 2:-, 3:+ -> AP = (1/1 + 2/3) / 2; ROC: 3 of 4 pairs ordered right
    assert m["auc_pr"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["auc_roc"] == pytest.approx(0.75)
    assert m["auc_pr_cold"] == pytest.approx(1.0) and m["auc_pr_warm"] == pytest.approx(1.0)
    assert math.isnan(binary_metrics(np.array([0, 0]), np.array([0.1, 0.2]),
                                     np.array([True, False]))["auc_pr"])


def test_task_reads_the_lake_and_evaluates(tmp_path):
    from deltalake import write_deltalake

    lake = tmp_path / "lake"
    write_deltalake(str(lake / "shards" / "infnet"), pa.Table.from_pylist(ROWS, SCHEMA))
    manifest = {"schema_version": 2, "node_dim": 7, "edge_dim": 2, "item_dim": 3,
                "num_weeks": 2, "max_user_id": 5, "max_item_id": 11, "history_len": 50,
                "pred_start": "2024-01-29",
                "counts": {"train": {"0": 3, "1": 1}, "test": {"0": 2}}}
    write_deltalake(str(lake / "shards" / "infnet_manifest"),
                    pa.table({"json": [json.dumps(manifest)]}))
    task = InfNetTask(str(lake))
    meta = task.meta()
    interactions = meta.pop("train_interactions")()
    assert meta == {**META, "train_positive_rate": 0.25}
    # the train split's records before the first prediction day (01-29): q1's 01-20 and
    # 01-25 records, not its 01-29 one
    assert interactions.record_item.tolist() == [12, 10]
    # q1's purchase of 10 (history) and its label 1 on 10: one pair
    assert [v.tolist() for v in interactions.purchases()] == [[1], [10]]
    train = task.load_split("train")
    assert [ex.query_id for ex in train] == [3, 7]  # sorted by query id
    assert task.load_split("test") == []
    model = get_model("infnet", "infnet")(get_model("infnet", "infnet").make_config(
        {"hidden": 8}), task.meta())
    # the output starts at the base rate: logit(0.25)
    assert model.output.bias.item() == pytest.approx(math.log(0.25 / 0.75))
    metrics = task.evaluate(model, train, torch.device("cpu"))
    assert set(metrics) >= {"auc_pr", "auc_roc", "auc_pr_cold", "auc_pr_warm"}
    assert metrics["n"] == 2
    # what the trainer keeps for precision-recall curves: id, label and score per query
    scored = task.example_scores(model, train, torch.device("cpu"))
    assert scored["example_id"].tolist() == [3, 7]
    assert scored["label"].tolist() == [ex.label for ex in train]
    assert scored["score"] == pytest.approx(task.scores(model, train, torch.device("cpu")))


@pytest.mark.parametrize("name", ["lr", "lightgbm"])
def test_feature_baselines_fit_predict_and_reload(name, examples):
    from models.systems.infnet.features import feature_names, query_features

    class Task:
        def collate(self, exs):
            return collate_examples(exs, 2)

    batch = collate_examples(examples, 2)
    feats = query_features(batch, META)
    assert feats.shape == (2, len(feature_names(META)))
    names = feature_names(META)
    # q1's target (node 1) receives 2 -> 1 in week 0 and 3 -> 1 in week 1, sends 1 -> 3 in week 1
    row = dict(zip(names, feats[0].tolist(), strict=True))
    assert (row["in_deg_w0"], row["in_deg_w1"], row["out_deg_w1"]) == pytest.approx(
        (math.log(2), math.log(2), math.log(2)))
    assert row["received_pi0"] == pytest.approx(math.log(3.0))  # 1.0 + 1.0 in bin 0
    cls = get_model("infnet", name)
    over = {"min_child_samples": 1, "n_estimators": 5} if name == "lightgbm" else {}
    model = cls(cls.make_config(over), META)
    assert cls.trainable is False
    model.fit(examples * 4, Task())
    probs = model.predict(batch)
    assert probs.shape == (2,)
    again = cls(cls.make_config(over), META)
    again.load_state_dict(model.state_dict())
    assert torch.allclose(again.predict(batch), probs)
