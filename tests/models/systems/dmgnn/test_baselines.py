"""DM-GNN's baselines on the hand-made stream of ``test_task`` (TGAT, TGN-style memory, static
GCN / GAT / GraphSAGE) and LightGBM's tiers on a synthetic spend stream."""

from __future__ import annotations

import math

import pytest
import torch

from models.base import get_model
from models.systems.dmgnn.baselines import TGAT, StaticGNN, TGNMemory, TierLightGBM
from models.systems.dmgnn.task import DmgnnTask
from tests.models.systems.dmgnn.streams import (
    attributes,
    edges,
    spend_stream,
    tiers,
    write_lake,
)
from tests.models.systems.dmgnn.test_task import ATTRIBUTES, EDGES, TIERS

SMALL = {"tgat": {"dim": 8, "edge_dim": 4}, "tgn": {"dim": 8, "edge_dim": 4},
         "gcn": {"dim": 8}, "gat": {"dim": 8}, "sage": {"dim": 8}}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    lake = write_lake(tmp_path_factory.mktemp("dmgnn"), edges(EDGES), attributes(ATTRIBUTES),
                      tiers(TIERS))
    return DmgnnTask(lake, tier_at="end", num_neighbors=3, hist_negatives=2)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_neural_baseline_trains_and_scores(task, name):
    cls = get_model("dmgnn", name)
    torch.manual_seed(0)
    model = cls(cls.make_config(SMALL[name]), task.meta())
    batch = task.collate(task.load_split("train")[:])
    loss = model.loss(batch)
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None for n, p in model.named_parameters()
               if p.requires_grad and "tier_head" in n)
    model.eval()
    scores = model.predict(task.collate(task.load_split("test")[:]))
    assert scores["pos"].shape == (2,) and scores["hist"].shape == (2, 2)
    assert scores["tier"].shape == (1, 5)


def test_tgat_is_dm_gnn_without_decay(task):
    model = TGAT(TGAT.make_config(SMALL["tgat"]), task.meta())
    assert model.decay_rate() == 0.0 and not model.config.decay


def test_static_models_see_the_training_snapshot_only(task):
    torch.manual_seed(0)
    model = get_model("dmgnn", "gcn")(get_model("dmgnn", "gcn").make_config({"dim": 8}),
                                      task.meta())
    assert isinstance(model, StaticGNN)
    # train events 0-6, both directions: 14 directed edges; the state dict holds no graph
    assert model.edge_index.shape == (2, 14) and "edge_index" not in model.state_dict()
    assert {(int(a), int(b)) for a, b in model.edge_index.t()} >= {(0, 1), (1, 0), (3, 0)}
    assert (0, 3) in {(int(a), int(b)) for a, b in model.edge_index.t()}  # event 5 reversed
    assert model.edge_index.max() < 4


def test_tgn_memory_skips_padding(task):
    torch.manual_seed(0)
    model = TGNMemory(TGNMemory.make_config(SMALL["tgn"]), task.meta()).eval()
    batch = task.collate(task.load_split("train")[:1])  # event 0 @10: nobody has a past
    inputs = model.inputs(batch, 1)
    assert not batch["mask_1"].any()
    assert model.memory(batch, 0, inputs).abs().sum().item() == 0.0
    later = task.collate(task.load_split("train")[4:5])  # event 4 @40: node 0 has three
    assert later["mask_1"][0].all()
    assert model.memory(later, 0, model.inputs(later, 1))[0].abs().sum().item() > 0


def test_lightgbm_finds_the_spend_bands(tmp_path):
    lake = write_lake(tmp_path, *spend_stream(users=24, weeks=8, seed=0))
    tier_task = DmgnnTask(lake, objective="tier", num_neighbors=2, layers=1, tier_at="end")
    config = TierLightGBM.make_config({"n_estimators": 30, "min_child_samples": 2})
    model = TierLightGBM(config, tier_task.meta())
    model.fit(tier_task.load_split("train"), tier_task)
    test = tier_task.load_split("test")
    metrics = tier_task.evaluate(model, test, torch.device("cpu"))
    # queried at the window's end, the tier is the band of the window's payments, one of the
    # features
    assert metrics["n_tier"] == 48 and metrics["macro_f1"] > 0.9, metrics
    restored = TierLightGBM(config, tier_task.meta())
    restored.load_state_dict(model.state_dict())
    batch = tier_task.collate(test[:10])
    assert torch.equal(restored.predict(batch)["tier"], model.predict(batch)["tier"])
    for heads in (["link"], ["link", "tier"]):  # links would go unscored
        with pytest.raises(ValueError, match="tiers only"):
            TierLightGBM(config, {"heads": heads}).fit(tier_task.load_split("train"), tier_task)


def test_a_baseline_through_the_trainer(tmp_path):
    from models.train import parse_args, train

    lake = write_lake(tmp_path / "lake", edges(EDGES), attributes(ATTRIBUTES), tiers(TIERS))
    result = train(parse_args([
        "--lake", lake, "--task", "dmgnn", "--model", "tgn", "--epochs", "1", "--batch-size",
        "4", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "run"),
        "--opt", "dim=8", "--opt", "edge_dim=4", "--opt", "num_neighbors=3",
        "--opt", "hist_negatives=2", "--opt", "tier_at=end"]))
    test = result["metrics"]["test"]
    assert test["n_link"] == 2 and test["n_tier"] == 1
    assert 0.0 <= test["auc"] <= 1.0 and 0.0 < test["mrr"] <= 1.0
