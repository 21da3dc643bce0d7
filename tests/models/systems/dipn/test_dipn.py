"""DIPN's layers on inputs small enough to work out by hand, its ablation and source switches
on a synthetic batch, and its learning through the trainer on a synthetic lake."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
import torch

from contracts import dipn as contract
from models.base import OptionError
from models.systems.dipn import dipn as dipn_module
from models.systems.dipn.dipn import (
    DIPN,
    SOURCES,
    BiGRU,
    IntraViewAttention,
    inter_view_attention,
    merge_by_time,
)
from models.systems.dipn.task import DipnSplit, collate_examples, store_from_arrow, vocab
from tests.models.systems.dipn.shards import synthetic_rows, write_lake

MAX_LEN = 6


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add sync cost on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch():
    rows = synthetic_rows(3, "train", seed=5, cuts=3)
    split = DipnSplit(store_from_arrow(pa.Table.from_pylist(rows, contract.SHARD), MAX_LEN))
    return collate_examples(split[:])


def build(heads=("1h", "1d"), **over):
    torch.manual_seed(0)
    cfg = DIPN.make_config({"hidden": 4, "fc": 8, "head_hidden": 8, **over})
    return DIPN(cfg, {"max_len": MAX_LEN, "heads": list(heads)}).eval()


def perturbed(batch, source, seed=1):
    """``batch`` with new random ids for ``source`` (its masks and ages kept)."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.as_tensor(vocab(source))
    out = dict(batch)
    out[source] = (torch.rand(batch[source].shape, generator=g) * sizes).long()
    return out


def test_intra_view_attention_by_hand():
    # d = 2, W_a = [I; 0]: the score is h_t's forward half . h_n, the backward half (9s) unused
    att = IntraViewAttention(2)
    with torch.no_grad():
        att.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
    h = torch.tensor([[1.0, 0, 9, 9], [0, 1, 9, 9], [1, 1, 9, 9]]).expand(2, 3, 4)
    forward_last = torch.tensor([[1.0, 2.0]] * 2)
    mask = torch.tensor([[True, True, True], [False, True, True]])
    v, a = att(h, forward_last, mask)
    # scores 1, 2, 3: softmax = e^s / (e + e^2 + e^3); sample 1 without step 0: e^s / (e^2 + e^3)
    z = math.e + math.e ** 2 + math.e ** 3
    assert a[0].tolist() == pytest.approx([math.e / z, math.e ** 2 / z, math.e ** 3 / z])
    z = math.e ** 2 + math.e ** 3
    assert a[1].tolist() == pytest.approx([0.0, math.e ** 2 / z, math.e ** 3 / z])
    assert torch.allclose(v, h * a[..., None])
    assert v[1, 0].abs().sum().item() == 0.0


def test_inter_view_attention_by_hand():
    # 2d = 4, so logits are dot products / 2
    v_p = torch.tensor([[[2.0, 0, 0, 0], [0, 2, 0, 0]]])
    v_q = torch.tensor([[[2.0, 0, 0, 0], [2, 2, 0, 0]]])
    both = torch.tensor([[True, True]])
    # q0.p0 / 2 = 2, q0.p1 = 0, q1.p0 / 2 = 2, q1.p1 / 2 = 2
    s = math.e ** 2 / (math.e ** 2 + 1)  # softmax([2, 0])[0]
    # A_p row 0 = s p0 + (1 - s) p1 = [2s, 2(1 - s)]; row 1 = (p0 + p1) / 2 = [1, 1]
    # A_q row 0 (p0: logits 2, 2) = (q0 + q1) / 2 = [2, 1]; row 1 (p1: 0, 2) = [2, 2s]
    r = inter_view_attention(v_p, both, v_q, both)
    assert r[0].tolist() == [pytest.approx([4 * s, 2 * (1 - s), 0, 0]),
                             pytest.approx([2, 2 * s, 0, 0])]
    # p0 padding: A_p rows attend to p1 alone = [0, 2]; step 0 is dropped from r
    r = inter_view_attention(v_p, torch.tensor([[False, True]]), v_q, both)
    assert r[0].tolist() == [pytest.approx([0, 0, 0, 0]), pytest.approx([0, 4 * s, 0, 0])]


def test_bigru_runs_on_the_events_alone():
    torch.manual_seed(0)
    rnn = BiGRU(3, 2).eval()
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[False, False, True, True], [False, False, False, False]])
    h, last = rnn(x, mask)
    events = x[:1, 2:]  # the two events alone, unpadded
    ahead, ahead_last = rnn.forward_gru(events)
    behind, behind_last = rnn.backward_gru(events.flip(1))
    assert torch.allclose(h[0, 2:], torch.cat([ahead[0], behind[0].flip(0)], -1), atol=1e-6)
    assert torch.allclose(last[0], torch.cat([ahead_last[0, 0], behind_last[0, 0]]), atol=1e-6)
    assert h[0, :2].abs().sum() == 0 and h[1].abs().sum() == 0 and last[1].abs().sum() == 0
    noisy = x.clone()
    noisy[:, :2] = 100.0  # padding: no effect
    assert torch.allclose(rnn(noisy, mask)[0], h)


def test_merge_by_time_orders_events_by_age():
    xs = [torch.tensor([[[0.0], [1.0], [2.0]]]), torch.tensor([[[10.0], [11.0], [12.0]]])]
    masks = [torch.tensor([[False, True, True]]), torch.tensor([[False, False, True]])]
    ages = [torch.tensor([[0, 50, 10]]), torch.tensor([[0, 0, 10]])]
    x, mask = merge_by_time(xs, masks, ages, max_len=4)
    # events: 1 (age 50), 2 (age 10), 12 (age 10, second view: after on the tie); padding first
    assert mask[0].tolist() == [False, True, True, True]
    assert x[0, 1:, 0].tolist() == [1.0, 2.0, 12.0]
    x, mask = merge_by_time(xs, masks, ages, max_len=2)
    assert x[0, :, 0].tolist() == [2.0, 12.0]


def test_forward_shapes_and_single_head(batch):
    model = build()
    assert model.logits(batch).shape == (9, 2)
    assert model.predict(batch).shape == (9, 2)
    one = build(heads=("1d",))
    probs = one.predict(batch)
    assert probs.shape == (9, 1)
    assert torch.allclose(probs[:, 0], torch.sigmoid(one.logits(batch)[:, 1]))
    one.train()
    one.loss(batch).backward()
    # the 1h head gets no gradient from a 1d-only loss; the 1d head does
    assert all(p.grad.abs().sum() == 0 for p in one.heads[0].parameters())
    assert any(p.grad.abs().sum() > 0 for p in one.heads[1].parameters())


@pytest.mark.parametrize("source", SOURCES)
def test_without_a_source_its_inputs_do_not_matter(batch, source):
    others = [s for s in SOURCES if s != source]
    full, without = build(), build(sources=",".join(others))
    changed = perturbed(batch, source)
    assert not torch.allclose(full.logits(batch), full.logits(changed))
    assert torch.allclose(without.logits(batch), without.logits(changed))


@pytest.mark.parametrize("source", SOURCES)
def test_a_source_alone_ignores_the_others(batch, source):
    alone = build(sources=source)
    out = alone.logits(batch)
    for other in SOURCES:
        if other != source:
            assert torch.allclose(out, alone.logits(perturbed(batch, other)))
    assert not torch.allclose(out, alone.logits(perturbed(batch, source)))


def forbid_inter_view(monkeypatch):
    def boom(*args):
        raise AssertionError("inter-view attention used")

    monkeypatch.setattr(dipn_module, "inter_view_attention", boom)


def test_full_model_uses_both_attentions(batch, monkeypatch):
    model = build()
    assert set(model.intra) == {"swipe", "tap", "browse"} and len(model.pairs) == 3
    forbid_inter_view(monkeypatch)
    with pytest.raises(AssertionError, match="inter-view"):
        model.logits(batch)


@pytest.mark.parametrize("switch", ["no_attention", "no_inter_view", "early_fusion"])
def test_ablations_without_inter_view_attention(batch, monkeypatch, switch):
    model = build(**{switch: "true"})
    forbid_inter_view(monkeypatch)
    out = model.logits(batch)
    assert out.shape == (9, 2) and torch.isfinite(out).all()
    # intra-view attention: kept unless no_attention; W_a then changes the output
    assert bool(model.intra) == (switch != "no_attention")
    for att in model.intra.values():
        with torch.no_grad():
            att.weight.mul_(-3.0)
        assert not torch.allclose(out, model.logits(batch))


def test_no_intra_view_keeps_inter_view_on_the_gru_outputs(batch, monkeypatch):
    model = build(no_intra_view="true")
    assert not model.intra and len(model.pairs) == 3
    assert torch.isfinite(model.logits(batch)).all()
    forbid_inter_view(monkeypatch)
    with pytest.raises(AssertionError, match="inter-view"):
        model.logits(batch)


def test_early_fusion_is_one_gru_over_the_merged_views(batch):
    model = build(early_fusion="true")
    assert list(model.rnn) == ["merged"] and list(model.intra) == ["merged"]
    out = model.logits(batch)
    # merging follows the events' ages: reversing one view's ages reorders the sequence
    changed = dict(batch)
    changed["tap_age"] = batch["tap_age"].flip(1) * batch["tap_mask"]
    assert not torch.allclose(out, model.logits(changed))


def test_readout_sum_and_flatten_sizes(batch):
    flat, summed = build(), build(readout="sum")
    # 3 pairs x (max_len x 2d) + 3 last states x 2d + history, profile x fc
    assert flat.heads[0][0].in_features == 3 * MAX_LEN * 8 + 3 * 8 + 2 * 8
    assert summed.heads[0][0].in_features == 3 * 8 + 3 * 8 + 2 * 8
    assert summed.logits(batch).shape == (9, 2)


@pytest.mark.parametrize("over", [{"sources": "swipe,click"}, {"sources": ""},
                                  {"readout": "mean"},
                                  {"early_fusion": "true", "sources": "history"}])
def test_bad_config(over):
    with pytest.raises(OptionError):
        DIPN.make_config(over)


def test_learns_a_tap_button_through_the_trainer(tmp_path):
    """label_1h = a tap on button 7 among the cut's last 8 taps: DIPN finds it in a few epochs
    (test AUC 1.0 for seeds 0-4 at these settings)."""
    from models.evaluate import evaluate_checkpoint
    from models.train import parse_args, train

    rows = (synthetic_rows(30, "train", seed=0) + synthetic_rows(10, "val", 1, first_user=100)
            + synthetic_rows(10, "test", 2, first_user=200))
    lake = write_lake(tmp_path / "lake", rows)
    out = tmp_path / "run"
    result = train(parse_args([
        "--lake", lake, "--task", "dipn", "--model", "dipn", "--epochs", "5", "--batch-size",
        "32", "--lr", "1e-2", "--device", "cpu", "--threads", "1", "--patience", "0", "--out",
        str(out), "--opt", "hidden=8", "--opt", "fc=16", "--opt", "head_hidden=16", "--opt",
        "max_len=8"]))
    test = result["metrics"]["test"]
    assert test["n"] == 80
    assert test["auc_1h"] > 0.8, result["history"]
    again = evaluate_checkpoint(lake, str(out / "best.pt"), "test")
    assert again["metrics"]["auc_1h"] == pytest.approx(test["auc_1h"])
