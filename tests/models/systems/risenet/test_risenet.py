"""RiseNet's parts on hand-made graphs, its ablation switches and a tiny overfit run."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
import torch
from torch_geometric.data import Batch, Data

from contracts import risenet as contract
from models.base import OptionError, get_model
from models.systems.risenet.risenet import DiffGate, FuseGate, PickGate, RiseNet, static_union
from models.systems.risenet.task import collate_examples, examples_from_arrow
from tests.models.systems.risenet.test_task import ROWS, H, single_thread  # noqa: F401

META = {"user_dim": 7, "edge_dim": 2, "item_dim": 4, "weeks": 4, "categories": 3,
        "pos_rate": 0.25}


@pytest.fixture(scope="module")
def batch():
    """The 11 hand-made rows of the task test (every split), 4 weeks, as one batch."""
    return collate_examples(examples_from_arrow(pa.Table.from_pylist(ROWS, contract.SHARD), H, 4))


def make(seed=0, **over):
    torch.manual_seed(seed)
    model = RiseNet(RiseNet.make_config({"hidden": 8, "dropout": 0.0, **over}), META)
    return model.eval()


def transplant(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy every parameter ``dst`` shares (name and shape) with ``src``, so two variants differ
    by their forward alone."""
    mine = dst.state_dict()
    mine.update({k: v for k, v in src.state_dict().items()
                 if k in mine and mine[k].shape == v.shape})
    dst.load_state_dict(mine)


def test_diffgate_on_a_star():
    # star: centre 0, leaves 1 and 2; messages in both directions
    h = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 4.0]])
    edge_index = torch.tensor([[0, 0, 1, 2], [1, 2, 0, 0]])
    attr = torch.zeros(4, 3)
    item = torch.ones(3, 2)
    layer = DiffGate(2, 3)
    with torch.no_grad():
        layer.update.weight.copy_(torch.eye(2))
        layer.update.bias.zero_()
        layer.item_vec.weight.zero_()
        layer.rel_vec.weight.zero_()
    out, a = layer(h, edge_index, attr, item, return_gate=True)
    # a = sigmoid(0 + 0) = 0.5 on every edge:
    # centre: (1, 2) + 0.5 * ((3, 0) + (0, 4)) = (2.5, 4); leaf 1: (3, 0) + 0.5 * (1, 2) = (3.5, 1);
    # leaf 2: (0, 4) + 0.5 * (1, 2) = (0.5, 5)
    assert a.tolist() == [0.5] * 4
    assert out.tolist() == [[2.5, 4.0], [3.5, 1.0], [0.5, 5.0]]
    # without gates a = 1: centre (1 + 3 + 0, 2 + 0 + 4)
    plain = DiffGate(2, 3, gates=False)
    with torch.no_grad():
        plain.update.weight.copy_(torch.eye(2))
        plain.update.bias.zero_()
    assert plain(h, edge_index, attr, item)[0].tolist() == [4.0, 6.0]
    assert sum(p.numel() for p in plain.parameters()) == 2 * 2 + 2
    # the item state steers the gate once its attention vector is non-zero
    torch.manual_seed(0)
    layer.reset_parameters()
    _, a1 = layer(h, edge_index, attr, item, return_gate=True)
    _, a2 = layer(h, edge_index, attr, -3 * item, return_gate=True)
    assert not torch.allclose(a1, a2)


def test_pickgate_keeps_the_top_nodes():
    # sample 0: 5 nodes, sample 1: 2 nodes, sample 2: none; keep 0.5 -> 3 and 1 nodes kept
    h = torch.tensor([[0.1, 1.0], [0.9, 1.0], [0.5, 1.0], [0.7, 1.0], [0.3, 1.0],
                      [0.2, 2.0], [0.4, 2.0]])
    batch = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    pick = PickGate(2, keep=0.5)
    with torch.no_grad():
        pick.weight.copy_(torch.tensor([2.0, 0.0]))  # p_u = h_u . w / |w| = h_u[0]
    kept = pick.select(pick.score(h), batch, 3)
    assert sorted(kept.tolist()) == [1, 2, 3, 6]
    g = pick(h, batch, 3)
    assert g.shape == (3, 4)
    top0 = sum(math.tanh(p) * torch.tensor([p, 1.0]) for p in (0.9, 0.5, 0.7))
    assert torch.allclose(g[0, :2], top0)
    assert torch.allclose(g[1, :2], math.tanh(0.4) * torch.tensor([0.4, 2.0]))
    # the sum-of-all half is the plain node sum; an empty sample reads out zeros
    assert torch.allclose(g[0, 2:], h[:5].sum(0)) and torch.allclose(g[1, 2:], h[5:].sum(0))
    assert g[2].tolist() == [0.0] * 4
    # at least one node per non-empty sample however small keep is
    assert PickGate(2, keep=0.01).select(h[:, 0], batch, 3).numel() == 2
    mean_sum = PickGate(2, topk=False)(h, batch, 3)
    assert torch.allclose(mean_sum[1], torch.tensor([0.3, 2.0, 0.6, 4.0]))


def test_fusegate_betas_sum_to_one(batch):
    fuse = FuseGate(4, 2)
    c, beta = fuse(torch.randn(5, 4), torch.randn(5, 2))
    assert c.shape == (5, 4) and torch.allclose(beta.sum(-1), torch.ones(5))
    beta = make().parts(batch)["beta"]
    assert beta.shape == (11, 4, 2) and torch.allclose(beta.sum(-1), torch.ones(11, 4))
    assert make(gates=False).parts(batch)["beta"].eq(1).all()


def test_static_union_by_user_id():
    # week a: users 1, 2 with 1 -> 2; week b: users 2, 3 with 2 -> 3 and 3 -> 2
    a = Data(x=torch.tensor([[1.0], [2.0]]), edge_index=torch.tensor([[0], [1]]),
             edge_attr=torch.tensor([[1.0]]), user_id=torch.tensor([1, 2]), num_nodes=2)
    b = Data(x=torch.tensor([[20.0], [30.0]]), edge_index=torch.tensor([[0, 1], [1, 0]]),
             edge_attr=torch.tensor([[2.0], [3.0]]), user_id=torch.tensor([2, 3]), num_nodes=2)
    x, edge_index, attr, sample = static_union([Batch.from_data_list([a]),
                                                Batch.from_data_list([b])])
    assert x.tolist() == [[1.0], [20.0], [30.0]]  # users 1, 2, 3; user 2 keeps week b's row
    assert edge_index.t().tolist() == [[0, 1], [1, 2], [2, 1]]
    assert attr.tolist() == [[1.0], [2.0], [3.0]] and sample.tolist() == [0, 0, 0]


@pytest.mark.parametrize("flag", ["graph", "pickgate", "gates", "dynamic", "layers"])
def test_each_ablation_changes_predict(flag, batch):
    full = make()
    ablated = make(**{flag: 1 if flag == "layers" else False})
    transplant(full, ablated)
    with torch.no_grad():
        assert not torch.allclose(full.predict(batch), ablated.predict(batch), atol=1e-5)


def test_multitask_changes_the_loss_only(batch):
    full, single = make(), make(multitask=False)
    transplant(full, single)
    assert single.scale_head is None
    with torch.no_grad():
        assert torch.allclose(full.predict(batch), single.predict(batch))
        scale = full.scale_loss(full.parts(batch)["scale"], batch["scale_next"])
        assert full.loss(batch).item() == pytest.approx(single.loss(batch).item() + scale.item(),
                                                        rel=1e-5)


def test_scale_loss_by_hand_and_its_gradient(batch):
    s = torch.tensor([[0.0, math.e ** 2 - 1]])
    # targets log(s + 1) = (0, 2): predicting (0, 0) gives sqrt((0 + 4) / 2)
    assert RiseNet.scale_loss(torch.zeros(1, 2), s).item() == pytest.approx(math.sqrt(2))
    perfect = torch.log1p(s).requires_grad_()
    loss = RiseNet.scale_loss(perfect, s)
    loss.backward()
    assert loss.item() < 1e-5 and perfect.grad.abs().max().item() == 0.0
    model = make()
    out = model.parts(batch)
    assert out["scale"].shape == (11, 3)
    RiseNet.scale_loss(out["scale"], batch["scale_next"]).backward()
    reached = {n.split(".")[0] for n, p in model.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == {"node_in", "diffgate", "pickgate", "scale_head"}


@pytest.mark.parametrize("over", [{}, {"graph": False}, {"pickgate": False}, {"gates": False},
                                  {"dynamic": False}, {"multitask": False}, {"layers": 4}])
def test_every_parameter_is_trained(over, batch):
    model = make(**over)
    model.train()
    loss = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []  # DDP needs all
    probs = model.predict(batch)
    assert probs.shape == (11,) and bool(((probs > 0) & (probs < 1)).all())


def test_config_checks_and_class_weight():
    with pytest.raises(OptionError, match="layers must be in 1..4"):
        RiseNet.make_config({"layers": "5"})
    with pytest.raises(OptionError, match="keep must be in"):
        RiseNet.make_config({"keep": 0})
    assert get_model("risenet", "risenet") is RiseNet
    # pos_rate 0.25: positives weigh neg/pos = 3 and the output starts at logit(0.5) = 0
    model = make()
    assert model.pos_weight == pytest.approx(3.0)
    assert model.classifier[-1].bias.item() == pytest.approx(0.0, abs=1e-6)
    assert make(pos_weight=1.0).classifier[-1].bias.item() == pytest.approx(math.log(1 / 3))
    assert RiseNet(RiseNet.make_config({"hidden": 8}), {**META, "pos_rate": 0.0}).pos_weight == 1.0


def test_tiny_overfit(batch):
    small = {k: (v[:8] if torch.is_tensor(v) else v) for k, v in batch.items()}
    small["graphs"] = [Batch.from_data_list(g.to_data_list()[:8]) for g in batch["graphs"]]
    model = make(hidden=16)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = model.loss(small)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    model.eval()
    with torch.no_grad():
        probs = model.predict(small)
    assert ((probs > 0.5).float() == small["y"]).all()
