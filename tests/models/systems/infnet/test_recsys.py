"""The recommender baselines (BPR, SR-GNN, MGNN-SPred, GCE-GNN, EATNN, GraphRec) and the pieces
they share, on hand-made queries.

The toy: four queries of users 1-4, items 10-13, one week; each receiver's partners send it
Taocodes in that week (user 1 from 5 and 6, user 2 from 5, user 3 from 6, user 4 from 7).

    query  user item label  history (item, kind; 0 received, 1 sent, 2 bought), oldest first
    q1     1    10   1      (10, 0) (11, 2)
    q2     2    11   0      (12, 0)
    q3     3    12   1      (12, 0) (13, 2) (12, 1)
    q4     4    13   0      (10, 1)

Every query has its own user and item, so a model with free embeddings can fit the labels.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
import torch

from models.base import get_model
from models.systems.infnet.interactions import TrainInteractions, top_neighbours
from models.systems.infnet.recsys import IdIndex, session_graph, target_neighbours
from models.systems.infnet.task import collate_examples, examples_from_arrow
from tests.models.systems.infnet.test_infnet import SCHEMA, role_x, week

QUERY_TS = dt.datetime(2024, 1, 29, 10, tzinfo=dt.UTC)
META = {"node_dim": 7, "edge_dim": 2, "item_dim": 3, "num_weeks": 1, "num_roles": 3,
        "user_feature_dim": 4, "pi_bins": 2, "max_user_id": 7, "max_item_id": 13,
        "history_len": 50, "train_positive_rate": 0.5}


def query(qid, user, item, label, history, partners):
    """A one-week shard row: the target, then its partners, each sending it a Taocode."""
    stamps = [QUERY_TS - dt.timedelta(days=len(history) - i) for i in range(len(history))]
    return {
        "query_id": qid, "user_id": user, "item_id": item, "split": "train", "label": label,
        "cold": False, "item_x": [float(item % 2), float(item % 2 == 0), 1.0],
        "node_ids": [user, *partners], "node_role": [0] + [1] * len(partners),
        "node_x": [role_x(0)] + [role_x(1)] * len(partners),
        "weeks": [week(0, list(range(len(partners) + 1)),
                       [(i + 1, 0, [1.0, 0.0]) for i in range(len(partners))])],
        "query_ts": QUERY_TS, "history_items": [h[0] for h in history],
        "history_kinds": [h[1] for h in history], "history_ts": stamps,
    }


ROWS = [
    query(1, 1, 10, 1, [(10, 0), (11, 2)], [5, 6]),
    query(2, 2, 11, 0, [(12, 0)], [5]),
    query(3, 3, 12, 1, [(12, 0), (13, 2), (12, 1)], [6]),
    query(4, 4, 13, 0, [(10, 1)], [7]),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors of a few rows: more threads only add overhead, a lot on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy(rows=ROWS):
    examples = examples_from_arrow(pa.Table.from_pylist(rows, SCHEMA), 7, 2)
    meta = {**META, "train_interactions": TrainInteractions.from_examples(examples)}
    return collate_examples(examples, 1), meta


def test_id_index_maps_the_vocabulary_to_rows_from_one():
    index = IdIndex(np.array([9, 3, 5, 3]))
    # sorted vocabulary 3, 5, 9 -> rows 1, 2, 3; an unknown id and the padding -1 -> row 0
    assert index(torch.tensor([[3, 5], [9, 7], [-1, 9]])).tolist() == [[1, 2], [3, 0], [0, 3]]
    assert index.size == 4


def test_session_graph_types_its_edges_from_each_node_side():
    # query 0 visits 1 2 1 3: transitions 1->2, 2->1, 1->3; query 1 visits 4 4 (a self move)
    key = torch.tensor([[1, 2, 1, 3], [4, 4, 0, 0]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    g = session_graph(key, mask)
    assert g.node_key.tolist() == [1, 2, 3, 4] and g.node_query.tolist() == [0, 0, 0, 1]
    assert g.alias[mask].tolist() == [0, 1, 0, 2, 3, 3]
    edges = {(s, d): t for s, d, t in zip(*g.edge_index.tolist(), g.edge_type.tolist(),
                                          strict=True)}
    # 1 and 2 follow each other both ways (type 2); 1 came before 3: for 3 an in-edge (0),
    # for 1 an out-edge (1); 4 -> 4 is no edge
    assert edges == {(0, 1): 2, (1, 0): 2, (0, 2): 0, (2, 0): 1}


def test_target_neighbours_are_the_share_partners():
    batch, _ = toy()
    query_idx, partner = target_neighbours(batch["graph"])
    got = sorted(zip(query_idx.tolist(), partner.tolist(), strict=True))
    assert got == [(0, 5), (0, 6), (1, 5), (2, 6), (3, 7)]


def test_train_interactions_and_top_neighbours():
    _, meta = toy()
    inter = meta["train_interactions"]
    # purchases: histories (1, 11), (3, 13) and the labels (1, 10), (3, 12)
    assert [v.tolist() for v in inter.purchases()] == [[1, 1, 3, 3], [10, 11, 12, 13]]
    assert [v.tolist() for v in inter.purchases(labels=False)] == [[1, 3], [11, 13]]
    # shares in order: q1 10; q2 12; q3 12, (13 bought), 12; q4 10 -> 12 -> 12 inside q3
    assert [v.tolist() for v in inter.transitions([0, 1])] == [[12], [12]]
    # window 1: q1 10-11, q3 12-13 and 13-12: both orders counted
    a, b, n = inter.cooccurrences(1)
    assert sorted(zip(a.tolist(), b.tolist(), n.tolist(), strict=True)) == [
        (10, 11, 1), (11, 10, 1), (12, 13, 2), (13, 12, 2)]
    # node 3's in-neighbours 1 (weight 1), 2 (weight 5), 4 (weight 5): heaviest first, ties to
    # the lower source; k = 2 keeps 2 and 4
    index, weight = top_neighbours(np.array([1, 2, 4]), np.array([3, 3, 3]),
                                   np.array([1, 5, 5]), 5, 2)
    assert index[3].tolist() == [2, 4] and weight[3].tolist() == [5.0, 5.0]
    assert index[:3].sum() == 0 and index[4].sum() == 0


def test_train_interactions_from_a_sliced_table_keep_records_before_the_cutoff():
    # history times are one day apart ending the day before the query (01-29 10:00): q3's are
    # 01-26, 01-27 and 01-28 10:00, q2's and q4's 01-28 10:00; the cutoff 01-28 00:00 leaves
    # q3's first two. Rows q2-q4 only, as a slice (its lists keep the parent's offsets).
    table = pa.Table.from_pylist(ROWS, SCHEMA).slice(1, 3)
    inter = TrainInteractions.from_arrow(table, cutoff="2024-01-28")
    assert inter.user_id.tolist() == [2, 3, 4] and inter.node_ids.tolist() == [2, 5, 3, 6, 4, 7]
    assert inter.record_item.tolist() == [12, 13] and inter.record_kind.tolist() == [0, 2]
    assert inter.record_query.tolist() == [1, 1]


def test_bpr_ranks_each_users_purchase_first_on_a_4x4_toy():
    """4 users x 4 items, user k bought item k only (the diagonal).

    Every triple is (u, u, j != u) and BPR-Opt's gradient on it moves p_u towards q_u - q_j
    and q_u towards p_u, q_j away from it: the loss falls as long as some x_uj >= x_uu, so
    once trained the diagonal is every row's maximum and argmax of row k is k. Before
    training the factors are random, so this ranking is not given.
    """
    from models.systems.infnet.bpr import score_matrix

    rows = [query(k, k, 20 + k, 0, [(10 + k, 2)], []) for k in range(1, 5)]
    batch, meta = toy(rows)
    cls = get_model("infnet", "bpr")
    torch.manual_seed(0)
    model = cls(cls.make_config({"dim": 8}), meta)
    users, items = np.arange(1, 5), np.arange(11, 15)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        optimiser.zero_grad()
        model.loss(batch).backward()
        optimiser.step()
    scores = score_matrix(model, users, items)
    assert scores.argmax(1).tolist() == [0, 1, 2, 3]
    assert ((scores >= 0) & (scores <= 1)).all()
    # an id the train split never saw maps to the zero row: score sigma(0)
    assert score_matrix(model, np.array([99]), items[:1])[0, 0] == pytest.approx(0.5)


BASELINES = ["bpr", "srgnn", "mgnn_spred", "gce_gnn", "eatnn", "graphrec"]


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_shapes_gradients_and_fit(name):
    batch, meta = toy()
    cls = get_model("infnet", name)
    torch.manual_seed(0)
    model = cls(cls.make_config({}), meta)
    probs = model.predict(batch)
    assert probs.shape == (4,) and bool(((probs >= 0) & (probs <= 1)).all())
    loss = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    # every weight takes part in the loss: DDP (without find_unused) needs that
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        optimiser.zero_grad()
        step = model.loss(batch)
        step.backward()
        optimiser.step()
        losses.append(step.item())
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < np.mean(losses[:3])
    # fitted: the two positives outscore the two negatives (BPR and EATNN through the labels'
    # purchases (1, 10) and (3, 12), the others through binary cross-entropy)
    probs = model.predict(batch).tolist()
    assert min(probs[0], probs[2]) > max(probs[1], probs[3])
    # the tables built from the train split travel in the state dict
    again = cls(cls.make_config({}), meta)
    again.load_state_dict(model.state_dict())
    assert torch.allclose(again.predict(batch), model.predict(batch))


def test_baselines_take_a_batch_without_histories():
    rows = [query(1, 1, 10, 1, [], [5]), query(2, 2, 11, 0, [], [])]
    batch, meta = toy(rows)
    for name in BASELINES:
        cls = get_model("infnet", name)
        model = cls(cls.make_config({}), meta)
        assert torch.isfinite(model.loss(batch)), name
        assert model.predict(batch).shape == (2,), name


def test_eatnn_whole_data_loss_by_hand():
    """d = 1, h = 1, users p = (1, 2), items q = (1, 0.5, 0): y_hat = [[1, .5, 0], [2, 1, 0]].
    Positives (0, 0) and (1, 1) (both y_hat = 1), c0 = 0.1. The weighted squared loss over all
    pairs is (1 - 1)^2 + (1 - 1)^2 + 0.1 (0.5^2 + 0 + 2^2 + 0) = 0.425; the function leaves out
    its constant, the number of positives (2): 0.425 - 2 = -1.575."""
    from models.systems.infnet.eatnn import whole_data_loss

    p = torch.tensor([[1.0], [2.0]])
    q = torch.tensor([[1.0], [0.5], [0.0]])
    h = torch.tensor([1.0])
    got = whole_data_loss(p, q, h, p[[0, 1]], q[[0, 1]], 0.1)
    assert got.item() == pytest.approx(-1.575)
