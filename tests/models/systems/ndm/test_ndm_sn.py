"""NDM+SN on a tiny hand-made lake: the task's social graph, the half-fixed embedding, training."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from models.base import get_model
from models.systems.ndm.ndm_sn import NDMSN
from models.systems.ndm.task import NdmTask
from tests.models.systems.ndm.test_ndm import _tiny_lake, check_incremental_matches_full_forward

# Users 0 - 1 - 2 and 3 - 4 share in the training period; user 5 has no edge.
EDGES = [(1, 2, 1), (0, 1, 3), (4, 3, 2)]
SMALL_WALKS = {"walk_length": 6, "walks_per_node": 4, "window": 2, "negatives": 2,
               "walk_batch_size": 64}


def _social_lake(tmp_path, edges=EDGES) -> str:
    from deltalake import write_deltalake

    lake = _tiny_lake(tmp_path)
    table = pa.table({name: pa.array([e[i] for e in edges], pa.int64())
                      for i, name in enumerate(("src", "dst", "weight"))})
    write_deltalake(f"{lake}/shards/ndm/tiny_social", table)
    return lake


def _model(task: NdmTask, **opts) -> NDMSN:
    torch.manual_seed(0)
    return NDMSN(NDMSN.make_config({"dim": 8, "heads": 2, **SMALL_WALKS, **opts}), task.meta())


def test_task_hands_over_the_graph_only_when_the_table_exists(tmp_path):
    plain = NdmTask(_tiny_lake(tmp_path / "a"), "tiny")
    assert "social" not in plain.meta() and plain.social_edges() is None
    assert plain.meta()["social_table"].endswith("shards/ndm/tiny_social")
    task = NdmTask(_social_lake(tmp_path / "b"), "tiny")
    src, dst, weight = task.meta()["social"]()
    assert (src.tolist(), dst.tolist(), weight.tolist()) == ([0, 1, 4], [1, 2, 3], [3, 1, 2])
    bad = NdmTask(_social_lake(tmp_path / "c", [(0, 6, 1)]), "tiny")  # 6 is Terminate's id
    with pytest.raises(ValueError, match=r"tiny_social: edge \(0, 6\) is outside .* 0..5"):
        bad.social_edges()


def test_missing_social_table_is_an_error_naming_it(tmp_path):
    task = NdmTask(_tiny_lake(tmp_path), "tiny")
    with pytest.raises(FileNotFoundError, match=r"shards/ndm/tiny_social does not exist"):
        _model(task)
    with pytest.raises(ValueError, match="even dim"):
        _model(NdmTask(_social_lake(tmp_path / "b"), "tiny"), dim=7)


def test_fixed_half_is_deepwalk_rescaled_and_zero_off_the_graph(tmp_path):
    task = NdmTask(_social_lake(tmp_path), "tiny")
    model = _model(task, social_std=0.2)
    fixed = model.emb.fixed  # (6 users + Terminate + padding, 4)
    assert fixed.shape == (8, 4) and model.emb.learned.shape == (8, 4)
    assert fixed[:5].abs().sum(-1).gt(0).all()  # users 0..4 are in the graph
    assert fixed[5:].abs().sum() == 0  # user 5 (no edge), Terminate, padding
    assert fixed[:5].pow(2).mean().sqrt().item() == pytest.approx(0.2, rel=1e-5)
    assert model.emb.learned[model.pad].abs().sum() == 0
    assert torch.equal(fixed, _model(task, social_std=0.2).emb.fixed)  # deterministic
    names = {name for name, _ in model.named_parameters()}
    assert "emb.learned" in names and not any("fixed" in n for n in names)
    assert "emb.fixed" in model.state_dict()  # travels in the checkpoint
    assert get_model("ndm", "ndm_sn") is NDMSN
    raw = _model(task, social_std=0).emb.fixed  # the paper's raw DeepWalk values
    assert torch.allclose(raw[:5] * (0.2 / raw[:5].pow(2).mean().sqrt()), fixed[:5])


def test_optimizer_step_moves_only_the_learned_half(tmp_path):
    task = NdmTask(_social_lake(tmp_path), "tiny")
    model = _model(task).train()
    fixed, learned = model.emb.fixed.clone(), model.emb.learned.detach().clone()
    batch = task.collate(list(task.load_split("train"))[:8])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.loss(batch).backward()
    optimizer.step()
    assert torch.equal(model.emb.fixed, fixed)
    moved = (model.emb.learned.detach() - learned).abs().sum(-1)  # (8,)
    # Users 0, 1, 3, 4 are inputs with a next user to predict; padding never learns.
    assert moved[[0, 1, 3, 4]].gt(0).all() and moved[model.pad] == 0


@pytest.mark.parametrize("dense_limit", [4096, 0])
def test_incremental_simulation_matches_full_forward(tmp_path, dense_limit):
    model = _model(NdmTask(_social_lake(tmp_path), "tiny")).eval()
    model.dense_limit = dense_limit
    check_incremental_matches_full_forward(model)


def test_train_ndm_sn_end_to_end_tiny_lake(tmp_path):
    from models.evaluate import evaluate_checkpoint
    from models.train import TrainConfig, train

    lake = _social_lake(tmp_path)
    opts = {"sims": "50", "val_sims": "20", "size_sims": "0", "dim": "16", "heads": "2",
            **{k: str(v) for k, v in SMALL_WALKS.items()}}
    cfg = TrainConfig(lake=lake, task="ndm", dataset="tiny", model="ndm_sn", epochs=4,
                      batch_size=8, lr=0.01, seed=0, out=str(tmp_path / "run"), patience=0,
                      opts=opts)
    res = train(cfg)
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    assert {"macro_f1", "micro_f1", "macro_f1_early", "micro_f1_early"} <= set(
        res["metrics"]["test"])
    again = evaluate_checkpoint(lake, str(tmp_path / "run" / "best.pt"), "test", task="ndm")
    assert again["metrics"] == pytest.approx(res["metrics"]["test"])
