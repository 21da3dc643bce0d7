"""The risenet task on a hand-made shard table in a tmp lake (no Spark).

H = 6 stored weeks per row (world weeks window_start - 2 .. window_start + 3; weeks before world
week 1 are empty). Item 10 / window 1 (train, label 1, category 2) is written out by hand:
    week -1, 0: empty (before world week 1)
    week 1: users [1, 2], edge 0 -> 1;  price 9, sales 3, records 1, scale 2
    week 2: users [1, 2, 3], edges 0 -> 1, 0 -> 2, 2 -> 1;  price 9, sales 7, records 3, scale 3
    week 3: no users (no share records); price 8, sales 1, records 0, scale 0
    week 4: users [2, 3], edge 1 -> 0;  price 8, sales 2, records 1, scale 2
With weeks = 4 the task keeps world weeks 1..4.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from contracts import ContractError
from contracts import risenet as contract
from models.base import OptionError, ShardModel
from models.systems.risenet.task import (
    RiseNetTask,
    best_threshold,
    cap_users,
    collate_examples,
    metrics_at,
)

H = 6


def user_row(user: int) -> list[float]:
    return [float(user), 0.5, 1.0, 0.0, 0.0, 0.0, float(user == 3)]


def week(w, price=0.0, sales=0, records=0, scale=0, users=(), edges=()):
    return {
        "week": w, "price": price, "sales": sales, "records": records, "scale": scale,
        "users": list(users), "user_x": [v for u in users for v in user_row(u)],
        "edge_src": [e[0] for e in edges], "edge_dst": [e[1] for e in edges],
        "edge_x": [v for e in edges for v in (0.25 * (e[0] + 1), float(e[1] == 0))],
    }


def row(item, window, split, label, category=0, weeks=None):
    if weeks is None:  # a generic row: n_t users in a chain, some weeks without users
        weeks = []
        for j in range(H):
            w = window - 2 + j
            n = 0 if w < 1 else (item + j) % 4
            users = [item * 10 + (j + k) % 5 for k in range(n)]
            weeks.append(week(w, 10.0 + item if w >= 1 else 0.0, max(w, 0) * 2, 2 * n, n, users,
                              [(k, k + 1) for k in range(n - 1)]))
    return {"item_id": item, "window_start": window, "split": split, "label": label,
            "top_category": category, "records_before": 0, "graph_capped": 0, "weeks": weeks}


HAND = row(10, 1, "train", 1, 2, [
    week(-1), week(0),
    week(1, 9.0, 3, 1, 2, [1, 2], [(0, 1)]),
    week(2, 9.0, 7, 3, 3, [1, 2, 3], [(0, 1), (0, 2), (2, 1)]),
    week(3, 8.0, 1, 0, 0),
    week(4, 8.0, 2, 1, 2, [2, 3], [(1, 0)]),
])
ROWS = [
    HAND, row(11, 1, "train", 0, 1), row(12, 0, "train", 0, 0), row(13, 2, "train", 0, 7),
    row(20, 1, "val", 1), row(21, 1, "val", 0), row(22, 1, "val", 1), row(23, 2, "val", 0),
    row(30, 1, "test", 1), row(31, 1, "test", 0), row(32, 3, "test", 0),
]
MANIFEST = {"schema_version": 1, "history_weeks": H,
            "user_features": list(contract.USER_FEATURES),
            "edge_features": list(contract.EDGE_FEATURES), "top_categories": 3}


def write_lake(path, rows=ROWS, manifest=MANIFEST, version=contract.SCHEMA_VERSION):
    from deltalake import write_deltalake

    write_deltalake(str(path / "shards" / contract.SHARD_TABLE),
                    pa.Table.from_pylist(rows, contract.SHARD), mode="overwrite")
    write_deltalake(str(path / "shards" / contract.MANIFEST_TABLE),
                    pa.table({"schema_version": [version], "run_id": ["test"],
                              "json": [json.dumps(manifest)]}), mode="overwrite")
    return str(path)


@pytest.fixture(autouse=True)
def single_thread():
    """One torch thread: on a busy 2-core box, tiny graph ops under OpenMP wait on each other
    far longer than they compute."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return write_lake(tmp_path_factory.mktemp("risenet") / "lake")


def test_meta_and_split_order(lake):
    task = RiseNetTask(lake)
    # no counts in the manifest: pos_rate from a scan of train's labels, 1 of 4
    assert task.meta() == {"user_dim": 7, "edge_dim": 2, "item_dim": 4, "weeks": 4,
                           "categories": 3, "pos_rate": 0.25}
    train = task.load_split("train")
    assert train.split == "train"
    assert [(ex.window_start, ex.item_id) for ex in train] == [(0, 12), (1, 10), (1, 11), (2, 13)]
    assert [ex.example_id for ex in train] == [1200, 1001, 1101, 1302]


def test_pos_rate_from_manifest_counts(tmp_path):
    counts = {"train": {"0": 97, "1": 3}, "val": {"0": 2, "1": 2}}
    lake = write_lake(tmp_path / "lake", manifest={**MANIFEST, "counts": counts})
    assert RiseNetTask(lake).meta()["pos_rate"] == pytest.approx(0.03)


def test_collate_shapes_and_values(lake):
    task = RiseNetTask(lake)
    examples = task.load_split("train")
    batch = task.collate(list(examples))
    assert batch["x_item"].shape == (4, 4, 4) and batch["x_item"].dtype == torch.float32
    hand = 1  # item 10 sorts second
    # world weeks 1..4 of item 10: log1p(price, sales, records, scale)
    raw = [[9, 3, 1, 2], [9, 7, 3, 3], [8, 1, 0, 0], [8, 2, 1, 2]]
    assert np.allclose(batch["x_item"][hand].numpy(), np.log1p(raw))
    # the next week's raw scale for t = 0..2: weeks 2, 3, 4
    assert batch["scale_next"].shape == (4, 3)
    assert batch["scale_next"][hand].tolist() == [3.0, 0.0, 2.0]
    assert batch["category"].tolist() == [0, 2, 1, 7]
    assert batch["y"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert batch["item_id"].tolist() == [12, 10, 11, 13]
    assert batch["window_start"].tolist() == [0, 1, 1, 2]
    graphs = batch["graphs"]
    assert len(graphs) == 4 and all(g.num_graphs == 4 for g in graphs)
    # item 12 (window 0) in its first kept week, world week 0: before week 1, so empty
    first = graphs[0]
    assert (first.batch == 0).sum().item() == 0
    # item 10's week-2 graph: 3 users, edges shifted by the nodes of item 12 before it
    g = graphs[1]
    mine = (g.batch == hand).nonzero().squeeze(-1)
    assert g.user_id[mine].tolist() == [1, 2, 3]
    assert g.x[mine].shape == (3, 7) and g.x[mine][:, 0].tolist() == [1.0, 2.0, 3.0]
    start = mine[0].item()
    edges = g.edge_index[:, (g.edge_index[0] >= start) & (g.edge_index[0] <= mine[-1])] - start
    assert edges.t().tolist() == [[0, 1], [0, 2], [2, 1]]
    # item 10's week 3 has no users; week 4 has one edge 1 -> 0 with features (0.5, 1)
    assert (graphs[2].batch == hand).sum().item() == 0
    last = graphs[3]
    mine = (last.batch == hand).nonzero().squeeze(-1)
    sel = (last.edge_index[0] >= mine[0]) & (last.edge_index[0] <= mine[-1])
    assert (last.edge_index[:, sel] - mine[0]).t().tolist() == [[1, 0]]
    assert last.edge_attr[sel].tolist() == [[0.5, 1.0]]


def test_weeks_option_slices_the_last_weeks(lake):
    six = RiseNetTask(lake, weeks=6).load_split("train")[1]
    assert [len(u) for u in six.users] == [0, 0, 2, 3, 0, 2]
    two = RiseNetTask(lake, weeks="2")
    batch = two.collate(list(two.load_split("train")))
    assert batch["x_item"].shape == (4, 2, 4) and len(batch["graphs"]) == 2
    assert batch["scale_next"][1].tolist() == [2.0]
    one = RiseNetTask(lake, weeks=1)
    assert one.collate(list(one.load_split("train")))["scale_next"].shape == (4, 0)
    with pytest.raises(OptionError, match="between 1 and 6"):
        RiseNetTask(lake, weeks=7).meta()
    with pytest.raises(OptionError, match="weeks must be >= 1"):
        RiseNetTask(lake, weeks=0)
    with pytest.raises(OptionError, match="no option 'week'"):
        RiseNetTask(lake, week=3)


def test_max_users_keeps_the_busiest_users():
    # 4 users; edges 2 -> 0, 2 -> 1, 3 -> 2: degrees 1, 1, 3, 1 -> keep users 2 and (first) 0
    users = np.array([5, 6, 7, 8])
    x = np.arange(28, dtype=np.float32).reshape(4, 7)
    ei = np.array([[2, 2, 3], [0, 1, 2]])
    ex = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]], dtype=np.float32)
    u, ux, e, exx = cap_users(users, x, ei, ex, 2)
    assert u.tolist() == [5, 7] and ux[:, 0].tolist() == [0.0, 14.0]
    assert e.tolist() == [[1], [0]] and exx.tolist() == [[1.0, 0.0]]
    assert cap_users(users, x, ei, ex, 0)[0] is users


def test_schema_version_mismatch_names_table_and_versions(tmp_path):
    lake = write_lake(tmp_path / "lake", version=2)
    with pytest.raises(ContractError, match=r"risenet_manifest: schema_version 2, this reader "
                                            r"knows 1"):
        RiseNetTask(lake).load_split("train")


def test_split_without_positives_is_refused(tmp_path):
    rows = [r for r in ROWS if not (r["split"] == "test" and r["label"] == 1)]
    lake = write_lake(tmp_path / "lake", rows=rows)
    with pytest.raises(ValueError,
                       match=r"split 'test' has no rising star .* \(windows \[1, 3\]\)"):
        RiseNetTask(lake).load_split("test")


def test_bad_row_names_item_and_window(tmp_path):
    bad = row(40, 2, "train", 1)
    # the last stored week has one user (index 0); an edge 0 -> 9 points past it
    bad["weeks"][5].update(edge_src=[0], edge_dst=[9], edge_x=[0.0, 0.0])
    lake = write_lake(tmp_path / "lake", rows=[*ROWS, bad])
    with pytest.raises(ContractError, match="item 40 window 2: stored week 5: an edge endpoint"):
        RiseNetTask(lake).load_split("train")


def test_threshold_by_hand():
    y = np.array([1, 0, 1, 0])
    score = np.array([0.9, 0.7, 0.6, 0.2])
    # cuts 0.9: F1 2*1/(1+2); 0.7: 2*1/(2+2); 0.6: 2*2/(3+2) = 0.8; 0.2: 2*2/(4+2)
    assert best_threshold(y, score) == pytest.approx((0.6, 0.8))
    assert metrics_at(y, score, 0.7) == pytest.approx({"f1": 0.5, "precision": 0.5,
                                                        "recall": 0.5})
    assert best_threshold(np.array([0, 0]), np.array([0.1, 0.2]))[1] == 0.0


class FixedScores(ShardModel):
    """Scores by example id, to check the task's thresholds by hand."""

    def __init__(self, scores):
        super().__init__(None, {})
        self.scores = scores

    def predict(self, batch):
        ids = (batch["item_id"] * 100 + batch["window_start"]).tolist()
        return torch.tensor([self.scores[i] for i in ids])


def test_threshold_from_val_is_used_on_test(lake):
    task = RiseNetTask(lake)
    # val (by window, item): 20 (+) 0.9, 21 (-) 0.7, 22 (+) 0.6, 23 (-) 0.2 -> cut 0.6, F1 0.8
    # test: 30 (+) 0.5, 31 (-) 0.65, 32 (-) 0.1; own best cut 0.5 (F1 2/3)
    model = FixedScores({2001: 0.9, 2101: 0.7, 2201: 0.6, 2302: 0.2,
                         3001: 0.5, 3101: 0.65, 3203: 0.1})
    cpu = torch.device("cpu")
    val, test = task.load_split("val"), task.load_split("test")
    before = task.evaluate(model, test, cpu)  # nothing remembered: the split's own best
    assert before["threshold"] == pytest.approx(0.5) and before["f1"] == pytest.approx(2 / 3)
    got = task.evaluate(model, val, cpu)
    assert got["threshold"] == pytest.approx(0.6) and got["f1"] == pytest.approx(0.8)
    assert (got["n"], got["positive_rate"]) == (4.0, 0.5)
    assert got["auc_roc"] == pytest.approx(0.75)  # 3 of 4 (pos, neg) pairs ordered right
    metrics = task.evaluate(model, test, cpu)
    # at 0.6 only item 31 (a negative) is called: F1 0
    assert metrics["threshold"] == pytest.approx(0.6)
    assert (metrics["f1"], metrics["precision"], metrics["recall"]) == (0.0, 0.0, 0.0)
    assert metrics["f1_best"] == pytest.approx(2 / 3)
    assert set(metrics) == {"f1", "precision", "recall", "auc_pr", "auc_roc", "threshold",
                            "f1_best", "n", "positive_rate"}
    scored = task.example_scores(model, test, cpu)
    assert scored["example_id"].tolist() == [3001, 3101, 3203]
    assert scored["label"].tolist() == [1, 0, 0]
    assert scored["score"] == pytest.approx([0.5, 0.65, 0.1])


def test_collate_of_a_week_without_any_user():
    task_rows = [row(50, -1, "train", 1)]  # window -1: world weeks -3..2, the first 4 are empty
    from models.systems.risenet.task import examples_from_arrow

    exs = examples_from_arrow(pa.Table.from_pylist(task_rows, contract.SHARD), H, 4)
    batch = collate_examples(exs)
    assert batch["graphs"][0].num_nodes == 0 and batch["graphs"][0].num_graphs == 1
    assert batch["x_item"][0, 0].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_train_cli_runs_one_epoch(lake, tmp_path):
    from models.train import parse_args, train

    cfg = parse_args(["--lake", lake, "--task", "risenet", "--model", "risenet", "--epochs", "1",
                      "--batch-size", "2", "--out", str(tmp_path / "run"), "--device", "cpu",
                      "--opt", "hidden=8", "--opt", "weeks=3"])
    result = train(cfg)
    assert set(result["metrics"]) == {"val", "test"}
    test = result["metrics"]["test"]
    assert test["n"] == 3 and test["positive_rate"] == pytest.approx(1 / 3)
    # test is cut at the threshold val chose
    assert test["threshold"] == result["metrics"]["val"]["threshold"]
    assert math.isfinite(result["history"][0]["train_loss"])


def test_keep_negatives_keeps_every_positive_and_a_fixed_fraction():
    import pyarrow as pa

    from models.systems.risenet.task import keep_negatives

    n = 20_000
    table = pa.table({"item_id": pa.array(range(n), pa.int64()),
                      "window_start": pa.array([1 + i % 5 for i in range(n)], pa.int32()),
                      "label": pa.array([int(i % 100 == 0) for i in range(n)], pa.int32())})
    mask = keep_negatives(table, 0.1).to_numpy(zero_copy_only=False)
    labels = table.column("label").to_numpy()
    assert mask[labels == 1].all()
    assert abs(mask[labels == 0].mean() - 0.1) < 0.01  # binomial sd ~ 0.002
    assert (keep_negatives(table, 0.1).to_numpy(zero_copy_only=False) == mask).all()
