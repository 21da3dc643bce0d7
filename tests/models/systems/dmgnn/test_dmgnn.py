"""DM-GNN's time encoding and decayed attention by hand, its heads and objectives on a batch of
the hand-made stream, and its learning on synthetic streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.base import OptionError
from models.systems.dmgnn.dmgnn import DMGNN, TimeEncoder, decayed_attention
from models.systems.dmgnn.task import DmgnnTask
from tests.models.systems.dmgnn.streams import (
    attributes,
    edges,
    mood_stream,
    spend_stream,
    tiers,
    write_lake,
)
from tests.models.systems.dmgnn.test_task import ATTRIBUTES, EDGES, TIERS


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add sync cost on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_time_encoding_by_hand():
    enc = TimeEncoder(2)
    with torch.no_grad():
        enc.omega.copy_(torch.tensor([1.0, 0.5]))
        enc.phase.copy_(torch.tensor([0.0, math.pi / 2]))
    # dt = pi / 2: cos(pi / 2) = 0, cos(pi / 4 + pi / 2) = -sqrt(2) / 2; dt = 0: 1, 0
    out = enc(torch.tensor([math.pi / 2, 0.0]))
    assert out.flatten().tolist() == pytest.approx([0.0, -math.sqrt(2) / 2, 1.0, 0.0], abs=1e-6)
    assert TimeEncoder(4)(torch.zeros(3, 5)).shape == (3, 5, 4)


def test_decay_halves_a_neighbour_aged_ln2_over_lambda():
    # equal logits, lambda = 0.5: ages 0 and ln 2 / 0.5 -> weights 1 : 1/2 -> 2/3, 1/3
    logits = torch.zeros(1, 2, 1)
    dt = torch.tensor([[0.0, math.log(2) / 0.5]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert decayed_attention(logits, dt, 0.5, mask)[0, :, 0].tolist() == pytest.approx(
        [2 / 3, 1 / 3])
    # lambda 0: the plain softmax; logits 0 and ln 3 -> 1/4, 3/4 whatever the ages
    logits = torch.tensor([[[0.0], [math.log(3)]]])
    assert decayed_attention(logits, dt, 0.0, mask)[0, :, 0].tolist() == pytest.approx(
        [0.25, 0.75])
    # a masked neighbour gets no weight; a node without neighbours gets zeros, not NaN
    mask = torch.tensor([[True, False], [False, False]])
    out = decayed_attention(torch.zeros(2, 2, 1), torch.zeros(2, 2), 0.5, mask)[..., 0]
    assert out.tolist() == [[1.0, 0.0], [0.0, 0.0]]


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    lake = write_lake(tmp_path_factory.mktemp("dmgnn"), edges(EDGES), attributes(ATTRIBUTES),
                      tiers(TIERS))
    return lake


def build(task, **over):
    torch.manual_seed(0)
    cfg = DMGNN.make_config({"dim": 8, "edge_dim": 4, "heads": 2, **over})
    return DMGNN(cfg, task.meta())


def test_heads_and_loss_on_a_batch(hand):
    task = DmgnnTask(hand, tier_at="end", num_neighbors=3, hist_negatives=2)
    model = build(task).eval()
    batch = task.collate(task.load_split("test")[:])  # events 8, 9 and user 2's tier
    out = model.predict(batch)
    assert out["pos"].shape == (2,) and out["hist"].shape == (2, 2)
    assert out["tier"].shape == (1, 5) and out["tier"].sum().item() == pytest.approx(1.0)
    model.train()
    loss = model.loss(task.collate(task.load_split("train")[:]))
    loss.backward()
    assert math.isfinite(loss.item())
    assert model.encoder.rho.grad is not None and model.tier_head[0].weight.grad.abs().sum() > 0
    assert "decay=True" in repr(model)


def test_decay_off_has_no_rate_and_objectives_pick_the_heads(hand):
    task = DmgnnTask(hand, tier_at="end", num_neighbors=3, objective="link")
    off = build(task, decay=False)
    assert off.decay_rate() == 0.0 and not off.encoder.rho.requires_grad
    assert build(task, decay_init=0.25).decay_rate() == pytest.approx(0.25)
    batch = task.collate(task.load_split("train")[:])
    assert batch["n_tier"] == 0 and set(off.predict(batch)) == {"pos", "neg", "hist"}
    tier_task = DmgnnTask(hand, tier_at="end", num_neighbors=3, objective="tier")
    tier_batch = tier_task.collate(tier_task.load_split("train")[:])
    assert tier_batch["n_link"] == 0
    model = build(tier_task).eval()
    assert set(model.predict(tier_batch)) == {"tier"}
    # lambda_t scales the tier loss alone (the only loss here)
    double = build(tier_task, lambda_t=2.0).eval()
    assert double.loss(tier_batch).item() == pytest.approx(2 * model.loss(tier_batch).item())


def test_the_decay_rate_learns_at_its_own_scale_of_the_trainers_rate(hand):
    from types import SimpleNamespace

    from models.loop import make_optimizer

    task = DmgnnTask(hand, tier_at="end", num_neighbors=3)
    model = build(task, decay_lr_scale=50.0)
    groups = make_optimizer(model, SimpleNamespace(lr=1e-3, weight_decay=0.0)).param_groups
    assert [g["lr"] for g in groups] == [pytest.approx(1e-3), pytest.approx(5e-2)]
    assert groups[1]["params"] == [model.encoder.rho]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # a model without groups gets one, at the trainer's rate
    plain = torch.nn.Linear(2, 1)
    assert [g["lr"] for g in make_optimizer(plain, SimpleNamespace(
        lr=1e-3, weight_decay=0.0)).param_groups] == [1e-3]


def test_link_product_widens_the_head(hand):
    task = DmgnnTask(hand, tier_at="end", num_neighbors=3)
    assert build(task, link_product=True).link_head[0].in_features == 3 * 8
    assert build(task).link_head[0].in_features == 2 * 8


@pytest.mark.parametrize("over", [{"dim": 9, "heads": 2}, {"decay_init": -1.0},
                                  {"lambda_t": -0.5}, {"layers": 3}, {"decay_lr_scale": 0}])
def test_bad_config(over):
    with pytest.raises(OptionError):
        DMGNN.make_config(over)


def test_learns_tiers_from_recent_spend_through_the_trainer(tmp_path):
    """Each week's tier is the week's spend band; queried at the window's end the window
    features carry it, so 15 epochs give a test macro-F1 far above chance (1/5 for five
    balanced tiers; 1.0 at seed 0): the tier head and the trainer's plumbing work."""
    from models.evaluate import evaluate_checkpoint
    from models.train import parse_args, train

    lake = write_lake(tmp_path / "lake", *spend_stream(users=24, weeks=8, seed=0))
    result = train(parse_args([
        "--lake", lake, "--task", "dmgnn", "--model", "dmgnn", "--epochs", "15",
        "--batch-size", "16", "--lr", "1e-2", "--device", "cpu", "--threads", "1",
        "--patience", "0", "--out", str(tmp_path / "run"), "--opt", "objective=tier",
        "--opt", "tier_at=end", "--opt", "dim=16", "--opt", "edge_dim=4",
        "--opt", "num_neighbors=2",
        "--opt", "layers=1", "--opt", "node_embedding=false"]))
    test = result["metrics"]["test"]
    assert test["n_tier"] == 48 and test["macro_f1"] > 0.8, result["history"]
    assert "decay_lambda" in test
    again = evaluate_checkpoint(lake, str(tmp_path / "run" / "best.pt"), "test")
    assert again["metrics"]["macro_f1"] == pytest.approx(test["macro_f1"])


def train_links(lake: str, decay: bool, epochs: int, seed: int = 0) -> tuple[float, float]:
    """(test AUC, lambda) of a small DM-GNN trained on links alone."""
    task = DmgnnTask(lake, objective="link", num_neighbors=20, layers=1, hist_negatives=2,
                     attr_window_days=1000.0)
    model = build(task, dim=16, edge_dim=4, dropout=0.0, decay=decay, node_embedding=False)
    train, test = task.load_split("train"), task.load_split("test")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = order.permutation(len(train))
        for start in range(0, len(perm), 64):
            batch = task.collate([train[int(i)] for i in perm[start:start + 64]])
            optimizer.zero_grad()
            model.loss(batch).backward()
            optimizer.step()
    return task.evaluate(model, test, torch.device("cpu"))["auc"], model.decay_rate()


def test_lambda_grows_where_recent_ties_tell_more(tmp_path):
    """A source's destination group follows its mood, redrawn with a two-day half-life: its
    recent destinations tell the mood and lambda rises from its 0.1 start; with moods that never
    change every earlier destination tells as much and lambda rises less. (Seed 0, four epochs:
    lambda 0.132 against 0.105, AUC 0.80 against 0.82.)"""
    recent = write_lake(tmp_path / "recent", *mood_stream(half_life=2.0), tiers([]))
    flat = write_lake(tmp_path / "flat", *mood_stream(half_life=None), tiers([]))
    auc, rate = train_links(recent, decay=True, epochs=4)
    flat_auc, flat_rate = train_links(flat, decay=True, epochs=4)
    assert rate > 0.12 and rate > flat_rate + 0.01, (rate, flat_rate)
    assert auc > 0.7 and flat_auc > 0.7, (auc, flat_auc)
