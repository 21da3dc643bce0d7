"""RiseNet baselines on hand-made examples collated by the task (no lake, no Spark).

Examples are random small weekly diffusion graphs (0-5 users, a few share edges per week) built
as ``RiseNetExample``s and collated by ``models.systems.risenet.task.collate_examples``, so the
models see exactly the batch format the trainer gives them. Sample 0 of every batch has no user
in any week.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.base import MODELS
from models.systems.risenet import graphs, lightgbm, sales  # noqa: F401 (registers the models)
from models.systems.risenet.lightgbm import batch_features, example_features
from models.systems.risenet.sales import binary_loss, positive_weight
from models.systems.risenet.task import RiseNetExample, collate_examples

NEURAL = ["darnn", "lstnet", "mtgnn", "gcn", "gin", "gcrn", "evolvegcn"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: intra-op threads only add sync cost, which on a busy 2-core
    machine turned a 20-us scatter into 5 ms."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def meta(weeks: int) -> dict:
    return {"user_dim": 7, "edge_dim": 2, "item_dim": 4, "weeks": weeks, "categories": 3,
            "pos_rate": 0.25}


def week_graph(rng: np.random.Generator, users: int, edges: int):
    """(users (n,), user_x (n, 7), edge_index (2, e), edge_x (e, 2)) of one random week."""
    user_x = rng.random((users, 7)).astype(np.float32)
    user_x[:, 6] = rng.random(users) < 0.3  # hub flag
    if users == 0:
        edges = 0
    edge_index = rng.integers(0, max(users, 1), size=(2, edges)).astype(np.int64)
    edge_x = np.stack([np.log1p(rng.integers(1, 5, edges)),
                       rng.random(edges) < 0.5], 1).astype(np.float32)
    return np.arange(users, dtype=np.int64) + 100, user_x, edge_index, edge_x


def make_examples(n: int, weeks: int, seed: int = 0, labels=None) -> list[RiseNetExample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sizes = [0] * weeks if i == 0 else rng.integers(0, 6, weeks).tolist()
        parts = [week_graph(rng, s, int(rng.integers(0, 2 * s + 1))) for s in sizes]
        out.append(RiseNetExample(
            item_id=i, window_start=1, label=int(labels[i] if labels is not None else i % 2),
            category=int(rng.integers(0, 3)),
            item_x=rng.integers(0, 50, (weeks, 4)).astype(np.float32),
            users=[p[0] for p in parts], user_x=[p[1] for p in parts],
            edge_index=[p[2] for p in parts], edge_x=[p[3] for p in parts],
        ))
    return out


def build(name: str, weeks: int, **over):
    cls = MODELS["risenet"][name]
    torch.manual_seed(0)
    return cls(cls.make_config({"hidden": 8, **over}), meta(weeks))


@pytest.mark.parametrize("name", NEURAL)
def test_predict_loss_and_gradients(name):
    batch = collate_examples(make_examples(5, weeks=3))
    model = build(name, 3)
    model.train()
    loss = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name}: no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    score = model.predict(batch)
    assert score.shape == (5,)
    assert ((score > 0) & (score < 1)).all()


@pytest.mark.parametrize("name", NEURAL)
def test_one_week_and_empty_graphs(name):
    # T = 1; sample 0 is empty, and so is every sample of the second batch
    examples = make_examples(3, weeks=1, seed=1)
    model = build(name, 1)
    empty = [ex for ex in examples if not any(len(u) for u in ex.users)]
    for batch in (collate_examples(examples), collate_examples(empty)):
        loss = model.loss(batch)
        assert torch.isfinite(loss)
        loss.backward()
        model.eval()
        score = model.predict(batch)
        model.train()
        assert score.shape == (len(batch["y"]),) and torch.isfinite(score).all()


@pytest.mark.parametrize("name", ["gcn", "lstnet"])
def test_overfits_a_tiny_batch(name):
    batch = collate_examples(make_examples(8, weeks=3, seed=2))
    model = build(name, 3, hidden=16, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    first = model.loss(batch).item()
    for _ in range(40):
        opt.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_positive_weight():
    assert positive_weight(0.0, {"pos_rate": 0.01}) == pytest.approx(99.0)
    assert positive_weight(0.0, {}) == 1.0
    assert positive_weight(5.0, {"pos_rate": 0.01}) == 5.0
    # a positive at logit 0 costs w * log 2, a negative log 2: mean (3 + 1) / 2 * log 2
    loss = binary_loss(torch.zeros(2), torch.tensor([1.0, 0.0]), 3.0)
    assert loss.item() == pytest.approx(2 * math.log(2))


def test_lightgbm_features_agree_between_examples_and_batches():
    examples = make_examples(6, weeks=2, seed=3)
    from_examples = example_features(examples)
    from_batch = batch_features(collate_examples(examples))
    assert from_examples.shape == (6, 2 * 9 + 1)
    np.testing.assert_allclose(from_batch, from_examples, rtol=1e-6, atol=1e-6)
    ex = examples[1]  # week 1's users, hubs and mean tie strength, by hand
    row = from_examples[1, 9:18]
    assert row[4] == pytest.approx(math.log1p(len(ex.users[1])))
    assert row[6] == pytest.approx(math.log1p(ex.user_x[1][:, 6].sum()))
    ties = ex.edge_x[1][:, 0]
    assert row[8] == pytest.approx(ties.mean() if len(ties) else 0.0, rel=1e-6)


def test_lightgbm_ranks_a_planted_feature():
    labels = np.r_[np.ones(10), np.zeros(30)]
    examples = make_examples(40, weeks=2, seed=4, labels=labels)
    for ex in examples:  # positives: many more users in the last week's graph
        size = 40 if ex.label else 2
        parts = week_graph(np.random.default_rng(ex.item_id), size, 3)
        ex.users[-1], ex.user_x[-1], ex.edge_index[-1], ex.edge_x[-1] = parts
    cls = MODELS["risenet"]["lightgbm"]
    model = cls(cls.make_config({"n_estimators": 20, "min_child_samples": 2}), meta(2))
    assert cls.trainable is False
    model.fit(examples, task=None)
    test = make_examples(12, weeks=2, seed=5, labels=np.r_[np.ones(4), np.zeros(8)])
    for ex in test:
        size = 40 if ex.label else 2
        parts = week_graph(np.random.default_rng(100 + ex.item_id), size, 3)
        ex.users[-1], ex.user_x[-1], ex.edge_index[-1], ex.edge_x[-1] = parts
    score = model.predict(collate_examples(test)).numpy()
    assert score.shape == (12,)
    assert score[:4].min() > score[4:].max()
    restored = cls(model.config, meta(2))  # the fitted trees travel in the state dict
    restored.load_state_dict(model.state_dict())
    np.testing.assert_allclose(restored.predict(collate_examples(test)).numpy(), score)
