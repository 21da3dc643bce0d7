"""Restarts are torchrun's: a worker that dies mid-run is restarted by ``--max-restarts`` and
resumes from the last checkpoint, ending with the metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.train import TrainConfig, train
from tests.models import toy  # noqa: F401  (registers the toy task and models)

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_restart_resumes_at_the_next_epoch_with_the_same_metrics(tmp_path):
    lake = str(tmp_path / "lake")
    full = train(TrainConfig(
        lake=lake, task="toy", model="logreg", epochs=4, batch_size=8, lr=0.05, seed=7,
        out=str(tmp_path / "full"), run_id="full", patience=0, device="cpu",
    ))
    # 64 examples, global batch 8 over 2 ranks: 8 steps an epoch per rank, so rank 0 dies in
    # epoch 1's 4th step, after epoch 0's checkpoint and before epoch 1's.
    marker = tmp_path / "crashed"
    env = {**os.environ, "TOY_CRASH_AT_STEP": "12", "TOY_CRASH_MARKER": str(marker)}
    out = tmp_path / "restarted"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "--max-restarts=1", "-m", "tests.models.toy",
        "--lake", lake, "--task", "toy", "--model", "logreg", "--epochs", "4",
        "--batch-size", "8", "--lr", "0.05", "--seed", "7", "--patience", "0",
        "--device", "cpu", "--out", str(out), "--run-id", "restarted",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert marker.read_text() == "crashed in step 12\n"

    logs = proc.stderr
    assert logs.count("resuming restarted from epoch 1") == 1
    # One line per epoch although two ranks trained (only rank 0 logs), epoch 1 included: the
    # killed attempt died before logging it.
    for epoch in range(4):
        assert logs.count(f"epoch {epoch} train_loss") == 1, logs
    assert "it/s" not in logs  # stderr is a pipe, not a terminal: no progress bars

    res = json.loads((out / "results.json").read_text())
    assert res["world_size"] == 2
    assert [h["epoch"] for h in res["history"]] == [0, 1, 2, 3]
    for h_full, h_res in zip(full["history"], res["history"], strict=True):
        assert h_res["train_loss"] == pytest.approx(h_full["train_loss"], rel=1e-5)
    for split in ("val", "test"):
        for metric, value in full["metrics"][split].items():
            assert res["metrics"][split][metric] == pytest.approx(value, rel=1e-5, abs=1e-7)

