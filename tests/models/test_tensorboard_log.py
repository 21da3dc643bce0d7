"""``--tensorboard DIR``: rank 0's event files hold the numbers ``results.json`` holds."""

from __future__ import annotations

import json
import shutil

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from models import train as train_cli
from tests.models import toy  # noqa: F401  (registers the toy task and models)


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _f32(value: float) -> float:  # event files store scalars as float32
    return float(np.float32(value))


def _argv(tmp_path, name, *extra):
    return ["--lake", str(tmp_path / "lake"), "--task", "toy", "--model", "logreg",
            "--epochs", "3", "--batch-size", "8", "--lr", "0.05", "--seed", "7",
            "--patience", "0", "--out", str(tmp_path / name), "--run-id", name, *extra]


def test_event_files_hold_every_epoch_of_a_resumed_run(tmp_path):
    board, run = tmp_path / "tb", tmp_path / "tb-run"
    with_board = ("--tensorboard", str(board))
    assert train_cli.main(_argv(tmp_path, "tb-run", *with_board, "--stop-after-epoch", "0")) == 0
    saved = tmp_path / "epoch0"
    shutil.copytree(run, saved, ignore=shutil.ignore_patterns("*.tmp"))
    assert train_cli.main(_argv(tmp_path, "tb-run", *with_board, "--stop-after-epoch", "1")) == 0
    # A worker that drew epoch 1 and died before checkpointing it: its restart trains epoch 1
    # again, and the curve keeps the new point only.
    for name in ("checkpoint.pt", "best.pt"):
        shutil.copy(saved / name, run / name)
    assert train_cli.main(_argv(tmp_path, "tb-run", *with_board)) == 0
    res = json.loads((run / "results.json").read_text())
    assert len(list(board.glob("events.out.tfevents.*"))) == 3
    scalars = _scalars(board)

    history = res["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    for metric in ("neg_logloss", "accuracy"):  # neg_logloss is the primary metric
        assert scalars[f"val/{metric}"] == [
            (h["epoch"], _f32(h["val"][metric])) for h in history
        ]
        assert scalars[f"test/{metric}"] == [(2, _f32(res["metrics"]["test"][metric]))]
    assert scalars["train/loss"] == [(h["epoch"], _f32(h["train_loss"])) for h in history]
    assert scalars["train/lr"] == [(e, _f32(0.05)) for e in range(3)]
    assert [step for step, _ in scalars["train/examples_per_s"]] == [0, 1, 2]

    # Writing the events changes nothing the run computes.
    assert train_cli.main(_argv(tmp_path, "plain")) == 0
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert plain["metrics"] == res["metrics"]
    assert plain["config_hash"] == res["config_hash"]  # where the events go is not hashed


def test_a_model_fitted_once_has_epoch_zero_and_test_points(tmp_path):
    board = tmp_path / "tb-prior"
    argv = _argv(tmp_path, "prior", "--tensorboard", str(board))
    argv[argv.index("logreg")] = "prior"
    assert train_cli.main(argv) == 0
    res = json.loads((tmp_path / "prior" / "results.json").read_text())
    scalars = _scalars(board)
    assert scalars["val/neg_logloss"] == [(0, _f32(res["history"][0]["val"]["neg_logloss"]))]
    assert scalars["test/accuracy"] == [(0, _f32(res["metrics"]["test"]["accuracy"]))]
    assert "train/loss" not in scalars
