"""The generic trainer on a toy task: logistic regression on fixed random data.

The toy task and its models are registered here, so the trainer is tested through exactly the
registries and contract real tasks use. DDP runs spawn 2 gloo processes on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from models import lakeio
from models.base import ShardModel, Task, register_model, register_task
from models.train import TrainConfig, build, load_checkpoint, setup_distributed, train, wrap


@register_task("toy")
class ToyTask(Task):
    """n examples x in R^dim, y = 1[x . w* + noise > 0]; splits are fixed slices."""

    primary_metric = "neg_logloss"

    def __init__(self, lake, dataset=None, **options):
        super().__init__(lake, dataset, **options)
        self.n = int(options.get("n", 64))
        self.dim = int(options.get("dim", 5))
        gen = torch.Generator().manual_seed(int(options.get("data_seed", 123)))
        total = self.n + 32
        self.x = torch.randn(total, self.dim, generator=gen)
        w = torch.randn(self.dim, generator=gen)
        self.y = ((self.x @ w + 0.5 * torch.randn(total, generator=gen)) > 0).float()

    def meta(self):
        return {"dim": self.dim}

    def load_split(self, split):
        bounds = {"train": (0, self.n), "val": (self.n, self.n + 16), "test": (self.n + 16, None)}
        lo, hi = bounds[split]
        return [(self.x[i], self.y[i]) for i in range(lo, hi or len(self.y))]

    def collate(self, examples):
        return {
            "x": torch.stack([e[0] for e in examples]),
            "y": torch.stack([e[1] for e in examples]),
        }

    def metric_sums(self, model, examples, device):
        if not examples:
            return {"n": 0.0, "nll": 0.0, "correct": 0.0}
        batch = self.collate(list(examples))
        p = model.predict(batch).clamp(1e-7, 1 - 1e-7)
        y = batch["y"]
        nll = -(y * p.log() + (1 - y) * (1 - p).log())
        return {
            "n": float(len(y)),
            "nll": nll.sum().item(),
            "correct": ((p > 0.5).float() == y).sum().item(),
        }

    def metrics_from_sums(self, sums):
        return {"neg_logloss": -sums["nll"] / sums["n"], "accuracy": sums["correct"] / sums["n"]}

    def evaluate(self, model, examples, device):
        return self.metrics_from_sums(self.metric_sums(model, examples, device))


@register_model("toy", "logreg")
class ToyLogReg(ShardModel):
    @dataclasses.dataclass
    class Config:
        dropout: float = 0.0

    def __init__(self, config, meta):
        super().__init__(config, meta)
        self.linear = nn.Linear(meta["dim"], 1)
        self.drop = nn.Dropout(config.dropout)

    def logits(self, batch):
        return self.linear(self.drop(batch["x"])).squeeze(-1)

    def loss(self, batch):
        return nn.functional.binary_cross_entropy_with_logits(self.logits(batch), batch["y"])

    def predict(self, batch):
        return torch.sigmoid(self.logits(batch))


@register_model("toy", "prior")
class ToyPrior(ShardModel):
    """Predicts the training base rate for everyone (fitted once)."""

    trainable = False

    def __init__(self, config, meta):
        super().__init__(config, meta)
        self.register_buffer("rate", torch.tensor(0.5))

    def fit(self, examples, task):
        self.rate.fill_(torch.stack([e[1] for e in examples]).mean().item())

    def predict(self, batch):
        return self.rate.expand(len(batch["y"]))


def _config(tmp_path, name, **kw):
    base = dict(
        lake=str(tmp_path / "lake"), task="toy", model="logreg", epochs=3, batch_size=8,
        lr=0.05, seed=7, out=str(tmp_path / name), run_id=name, patience=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig, grad_file: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    env = setup_distributed("cpu")
    # One step on a fixed global batch of 8: rank r takes examples r*4 .. r*4+3.
    torch.manual_seed(0)
    task, model = build(cfg)
    step = wrap(model, env)
    batch = task.collate(task.load_split("train")[rank * 4:(rank + 1) * 4])
    loss = step(batch)
    loss.backward()
    losses = [None] * world
    torch.distributed.all_gather_object(losses, loss.item())
    if rank == 0:
        grads = {k: p.grad.clone() for k, p in model.named_parameters()}
        torch.save({"grads": grads, "loss": sum(losses) / world}, grad_file)
    train(cfg)  # reuses the process group and tears it down


def test_ddp_two_processes_match_one(tmp_path):
    one = train(_config(tmp_path, "one"))

    # Gradient of one step on the same global batch, in one process.
    torch.manual_seed(0)
    cfg2 = _config(tmp_path, "two")
    task, model = build(cfg2)
    loss = model.loss(task.collate(task.load_split("train")[:8]))
    loss.backward()

    grad_file = str(tmp_path / "grads.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg2, grad_file), nprocs=2, join=True)
    got = torch.load(grad_file)
    assert got["loss"] == pytest.approx(loss.item(), rel=1e-6)
    for name, param in model.named_parameters():
        torch.testing.assert_close(got["grads"][name], param.grad, rtol=1e-5, atol=1e-7)

    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["world_size"] == 2
    for h1, h2 in zip(one["history"], two["history"], strict=True):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-5)
    for split in ("val", "test"):
        for metric, value in one["metrics"][split].items():
            assert two["metrics"][split][metric] == pytest.approx(value, rel=1e-5, abs=1e-7)
    w1 = load_checkpoint(tmp_path / "one" / "checkpoint.pt")["model"]
    w2 = load_checkpoint(tmp_path / "two" / "checkpoint.pt")["model"]
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key], rtol=1e-5, atol=1e-6)


def test_resume_matches_uninterrupted(tmp_path):
    full = train(_config(tmp_path, "full", opts={"dropout": "0.3"}, epochs=4))
    stopped = train(_config(tmp_path, "cut", opts={"dropout": "0.3"}, epochs=4, stop_after_epoch=1))
    assert stopped is None
    ckpt = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and not ckpt["finished"]
    assert not (tmp_path / "cut" / "results.json").exists()
    resumed = train(_config(tmp_path, "cut", opts={"dropout": "0.3"}, epochs=4))
    w_full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    w_cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    for key in w_full:
        torch.testing.assert_close(w_full[key], w_cut[key], rtol=0, atol=0)
    assert resumed["metrics"] == full["metrics"]
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2, 3]
    # A finished run resumed with more epochs trains on from where it stopped.
    more = train(_config(tmp_path, "cut", opts={"dropout": "0.3"}, epochs=5, run_id="more"))
    assert [h["epoch"] for h in more["history"]] == [0, 1, 2, 3, 4]


def test_warmup_schedule_and_resume(tmp_path):
    # 64 examples / batch 16 = 4 steps an epoch; warmup 6: the rate after epoch e's last step
    # (t = 4, 8, 12) is lr * 4/6, then lr * sqrt(6/8) and lr * sqrt(6/12).
    res = train(_config(tmp_path, "wu", batch_size=16, lr=0.06, warmup=6))
    assert [h["lr"] for h in res["history"]] == pytest.approx(
        [0.06 * 4 / 6, 0.06 * (6 / 8) ** 0.5, 0.06 * (6 / 12) ** 0.5])
    # The step count comes from (epoch, batch), so a resumed run lands on the same weights.
    train(_config(tmp_path, "wu-cut", batch_size=16, lr=0.06, warmup=6, stop_after_epoch=0))
    again = train(_config(tmp_path, "wu-cut", batch_size=16, lr=0.06, warmup=6))
    assert again["metrics"] == res["metrics"]
    assert [h["lr"] for h in again["history"]] == [h["lr"] for h in res["history"]]
    # Without warmup the rate stays put, and the run keeps the hash (and so the default run id)
    # it had before the option existed: bcec6044bc7d, printed by the trainer of commit 52c351e.
    flat = _config(tmp_path, "flat", batch_size=16, lr=0.06)
    assert [h["lr"] for h in train(flat)["history"]] == [0.06] * 3
    assert flat.config_hash() == "bcec6044bc7d"
    assert _config(tmp_path, "flat", batch_size=16, lr=0.06, warmup=6).config_hash() != (
        "bcec6044bc7d")
    with pytest.raises(ValueError, match="warmup"):
        train(_config(tmp_path, "bad", warmup=-1))


def test_early_stopping(tmp_path):
    # lr = 0: val never improves after epoch 0, so patience 2 stops after epoch 2 of 10.
    res = train(_config(tmp_path, "es", lr=0.0, epochs=10, patience=2))
    assert [h["epoch"] for h in res["history"]] == [0, 1, 2]
    assert all(h["train_examples_per_s"] > 0 for h in res["history"])  # throughput logged
    assert res["best_epoch"] == 0
    assert load_checkpoint(tmp_path / "es" / "checkpoint.pt")["finished"]


def test_results_rows_and_rerun_adds_nothing(tmp_path):
    cfg = _config(tmp_path, "rows", epochs=1)
    res = train(cfg)
    table = Path(cfg.lake) / "results" / "toy"
    rows = lakeio.read_table(table).to_pylist()
    # 2 splits (val, test) x 2 metrics (accuracy, neg_logloss).
    assert len(rows) == 4
    assert {(r["split"], r["metric"]) for r in rows} == {
        (s, m) for s in ("val", "test") for m in ("accuracy", "neg_logloss")
    }
    assert all(r["run_id"] == "rows" and r["seed"] == 7 and r["model"] == "logreg" for r in rows)
    assert rows[0]["config_hash"] == res["config_hash"]
    # A re-run of the same run id (it resumes a finished checkpoint) commits nothing new.
    train(cfg)
    assert lakeio.read_table(table).num_rows == 4
    # A non-trainable model is fitted once: no epochs, its rows land beside.
    prior = train(_config(tmp_path, "prior", model="prior"))
    assert prior["history"][0]["epoch"] == 0 and "train_loss" not in prior["history"][0]
    assert lakeio.read_table(table).num_rows == 8


def test_cli_and_evaluate(tmp_path, capsys):
    from models import evaluate as evaluate_cli
    from models import train as train_cli

    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("epochs: 1\nbatch_size: 16\nopt:\n  n: 32\n")
    out = tmp_path / "cli"
    argv = ["--lake", str(tmp_path / "lake"), "--task", "toy", "--model", "logreg",
            "--config", str(cfg_file), "--epochs", "2", "--out", str(out)]
    assert train_cli.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["epochs"] == 2 and res["config"]["batch_size"] == 16
    assert res["config"]["opts"] == {"n": "32"}
    capsys.readouterr()
    assert evaluate_cli.main(["--lake", str(tmp_path / "lake"), "--task", "toy",
                              "--checkpoint", str(out / "best.pt"), "--split", "test"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"] == pytest.approx(res["metrics"]["test"])


def test_length_bucket_sampler_covers_every_example_and_keeps_global_batches():
    from models.train import LengthBucketSampler

    gen = torch.Generator().manual_seed(5)
    lengths = (torch.rand(103, generator=gen) ** 4 * 300).long().add(1).tolist()  # skewed
    data = list(range(103))
    one = LengthBucketSampler(data, lengths, 8, 4, num_replicas=1, rank=0, seed=3)
    order = list(one)
    assert sorted(order) == data  # every example once per epoch on one rank
    # Two ranks: rank r's j-th local batch of 4 is its half of the j-th global batch of 8.
    ranks = [list(LengthBucketSampler(data, lengths, 8, 4, num_replicas=2, rank=r, seed=3))
             for r in (0, 1)]
    for j in range(0, 96, 8):
        local = ranks[0][j // 2: j // 2 + 4] + ranks[1][j // 2: j // 2 + 4]
        assert sorted(local) == sorted(order[j: j + 8])

    def padded(seq):  # tokens after padding every global batch to its longest example
        return sum(8 * max(lengths[i] for i in seq[j: j + 8]) for j in range(0, 96, 8))

    plain = torch.randperm(103, generator=gen).tolist()
    assert padded(order) < 0.6 * padded(plain)
    one.set_epoch(1)
    assert list(one) != order  # reshuffled every epoch
