"""The generic trainer on the toy task of ``tests.models.toy`` (logistic regression on fixed
random data). DDP runs spawn 2 gloo processes on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from models import lakeio
from models.train import TrainConfig, build, load_checkpoint, setup_distributed, train, wrap
from tests.models import toy  # noqa: F401  (registers the toy task and models)


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
    # that a configuration without the option has: options at their defaults are not hashed.
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


def test_smoothed_score_is_the_moving_average_of_val():
    from models.loop import smoothed

    assert smoothed([], 0.20, 0.6) == 0.20  # the first epoch starts the average
    # 0.6 * 0.10 + 0.4 * 0.20 = 0.14
    assert smoothed([{"val_smoothed": 0.10}], 0.20, 0.6) == pytest.approx(0.14)
    assert smoothed([{"val_smoothed": 0.10}], 0.20, 0.0) == 0.20  # off: the value itself
    assert smoothed([{"val_smoothed": float("nan")}], 0.20, 0.6) == 0.20  # NaN restarts it


def test_smoothing_selects_and_stops_on_the_moving_average(tmp_path):
    res = train(_config(tmp_path, "sm", epochs=6, smoothing=0.5))
    values = [h["val"]["neg_logloss"] for h in res["history"]]
    expect = [values[0]]
    for v in values[1:]:
        expect.append(0.5 * expect[-1] + 0.5 * v)
    assert [h["val_smoothed"] for h in res["history"]] == pytest.approx(expect)
    assert res["best_epoch"] == max(range(6), key=expect.__getitem__)
    assert res["best_val_neg_logloss"] == pytest.approx(max(expect))
    # lr = 0: the average never rises after epoch 0, so patience 2 stops after epoch 2.
    flat = train(_config(tmp_path, "sm0", lr=0.0, epochs=10, patience=2, smoothing=0.5))
    assert [h["epoch"] for h in flat["history"]] == [0, 1, 2]
    with pytest.raises(ValueError, match="smoothing"):
        train(_config(tmp_path, "bad", smoothing=1.0))


def test_plateau_lowers_the_rate_after_epochs_without_gain(tmp_path, monkeypatch):
    import itertools

    import models.loop

    # Scripted val scores: best at epoch 0, four flat epochs, a new best at epoch 5.
    scores = itertools.chain([-0.5, -0.6, -0.6, -0.6, -0.6, -0.4, -0.45], itertools.repeat(-0.5))
    monkeypatch.setattr(models.loop, "evaluate_split",
                        lambda *a, **k: {"neg_logloss": next(scores), "accuracy": 0.5})
    res = train(_config(tmp_path, "pl", epochs=7, plateau=2, plateau_factor=0.5))
    # Rates of each epoch's steps: 2 bad epochs (1, 2) halve it for epoch 3, 2 more (3, 4)
    # halve it again for epoch 5; epoch 5 improves, epoch 6 is one bad epoch: no change.
    assert [h["lr"] for h in res["history"]] == pytest.approx(
        [0.05, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])
    with pytest.raises(ValueError, match="plateau"):
        train(_config(tmp_path, "bad", plateau=-1))


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
    # Each test example's score lands in results/toy_scores (the toy test split: 96 - 80 = 16),
    # equal to what the model predicts for it.
    scores = lakeio.read_table(Path(cfg.lake) / "results" / "toy_scores").to_pylist()
    assert len(scores) == 16 and [r["example_id"] for r in scores] == list(range(16))
    assert {(r["run_id"], r["model"], r["seed"], r["split"]) for r in scores} == {
        ("rows", "logreg", 7, "test")}
    best = load_checkpoint(Path(cfg.out) / "best.pt")
    task, model = build(cfg.resolved(), best["model_config"])
    model.load_state_dict(best["model"])
    test = task.collate(task.load_split("test"))
    assert [r["label"] for r in scores] == test["y"].int().tolist()
    assert [r["score"] for r in scores] == pytest.approx(model.predict(test).tolist(), abs=1e-6)
    # A re-run of the same run id (it resumes a finished checkpoint) commits nothing new.
    train(cfg)
    assert lakeio.read_table(table).num_rows == 4
    assert lakeio.read_table(Path(cfg.lake) / "results" / "toy_scores").num_rows == 16
    # A non-trainable model is fitted once: no epochs, its rows land beside.
    prior = train(_config(tmp_path, "prior", model="prior"))
    assert prior["history"][0]["epoch"] == 0 and "train_loss" not in prior["history"][0]
    assert lakeio.read_table(table).num_rows == 8
    # A labelled run (an ablation, say) goes under its label, in both tables; the hash holds.
    labelled = train(_config(tmp_path, "labelled", model="prior", label="prior -x"))
    assert labelled["config_hash"] == prior["config_hash"] and labelled["label"] == "prior -x"
    named = {r["model"] for r in lakeio.read_table(table).to_pylist()
             if r["run_id"] == "labelled"}
    assert named == {"prior -x"}


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


def test_restart_options_are_torchruns_not_the_trainers(tmp_path, capsys):
    from models.train import parse_args

    base = ["--lake", str(tmp_path / "lake"), "--task", "toy", "--model", "logreg"]
    old = tmp_path / "old.yaml"
    old.write_text("epochs: 2\nmax_restarts: 3\n")
    with pytest.raises(SystemExit, match=r"old\.yaml: unknown option 'max_restarts'; known: \["):
        parse_args([*base, "--config", str(old)])
    with pytest.raises(SystemExit):
        parse_args([*base, "--max-restarts", "3"])
    assert "unrecognized arguments: --max-restarts 3" in capsys.readouterr().err
    assert "max_restarts" not in {f.name for f in dataclasses.fields(TrainConfig)}


def test_a_tasks_recipe_fills_what_the_run_leaves_unset(tmp_path, monkeypatch, capsys):
    from models.train import parse_args

    monkeypatch.setattr(toy.ToyTask, "recipe", {"lr": 0.5, "epochs": 40, "smoothing": 0.6})
    base = ["--lake", str(tmp_path / "lake"), "--task", "toy", "--model", "logreg"]
    cfg = parse_args(base)
    assert (cfg.lr, cfg.epochs, cfg.smoothing, cfg.patience) == (0.5, 40, 0.6, 5)
    from_file = tmp_path / "run.yaml"
    from_file.write_text("epochs: 3\n")
    cfg = parse_args([*base, "--config", str(from_file), "--lr", "0.01"])
    assert (cfg.lr, cfg.epochs, cfg.smoothing) == (0.01, 3, 0.6)  # what the run sets wins
    with pytest.raises(SystemExit):
        parse_args(["--lake", "l", "--task", "nosuch", "--model", "m"])
    assert "unknown task 'nosuch'" in capsys.readouterr().err


def test_epochs_are_logged_by_logging_and_nothing_is_printed(tmp_path, caplog, capsys,
                                                              monkeypatch):
    # Only pytest's capturing handler: a job's log set-up elsewhere in the session must not
    # make this process's log lines look like prints.
    monkeypatch.setattr(logging.root, "handlers", [h for h in logging.root.handlers
                                                   if type(h).__module__.startswith("_pytest")])
    with caplog.at_level(logging.INFO, logger="models"):
        train(_config(tmp_path, "logged", epochs=2, stop_after_epoch=0))
        train(_config(tmp_path, "logged", epochs=2))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("models.")]
    history = load_checkpoint(tmp_path / "logged" / "checkpoint.pt")["history"]
    assert [m.split(" (")[0] for m in lines if m.startswith("epoch ")] == [
        f"epoch {h['epoch']} train_loss {h['train_loss']:.5f}" for h in history
    ]
    assert any(m.startswith("stopping after epoch 0") for m in lines)
    assert any(m.startswith("resuming logged from epoch 1") for m in lines)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("tty", "rank", "drawn"), [(True, 0, True), (False, 0, False),
                                                    (True, 1, False)])
def test_progress_bar_only_on_rank_0_and_a_terminal(monkeypatch, tty, rank, drawn):
    from models.ddp import DistEnv
    from models.loop import progress

    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    bar = progress(range(5), DistEnv(rank=rank, world=2), "epoch 0")
    assert list(bar) == [0, 1, 2, 3, 4]
    bar.set_postfix(loss="0.1")
    bar.close()
    assert ("epoch 0" in stream.getvalue()) is drawn
