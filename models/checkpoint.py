"""Checkpoints and resumption: what makes a restarted worker continue where it stopped.

Every epoch rank 0 writes ``OUT/checkpoint.pt``: the unwrapped model state, optimizer, epoch,
the config as a dict, task/model names, every rank's RNG states, best metric, early-stopping
counter and history; ``OUT/best.pt`` holds the same with the weights of the best val epoch.
Files are written to a temporary name and renamed, so a process killed mid-write leaves the
previous checkpoint whole.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import ShardModel
from models.config import TrainConfig
from models.ddp import DistEnv, gather_objects

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


@dataclasses.dataclass
class RunState:
    """Where a run stands after its last finished epoch; a checkpoint restores it.

    Args:
        start_epoch: the next epoch to train.
        best_metric: best val primary metric so far (-inf before the first epoch).
        best_epoch: the epoch it came from (-1 before the first epoch).
        bad_epochs: epochs since the last improvement.
        history: one dict per epoch (train loss, throughput, rate, val metrics).
        best_state: the best epoch's model state (None before the first epoch).
        finished: no epoch is left to train.
        lr_factor: what the plateaus have multiplied the rate by so far (1 before any).
    """

    start_epoch: int = 0
    best_metric: float = -float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    finished: bool = False
    lr_factor: float = 1.0

    def stop_due(self, cfg: TrainConfig, epoch: int) -> bool:
        """True when nothing is left to train after ``epoch`` (the last or an early stop)."""
        return epoch + 1 >= cfg.epochs or self.early_stopped(cfg)

    def early_stopped(self, cfg: TrainConfig) -> bool:
        return 0 < cfg.patience <= self.bad_epochs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng(env: DistEnv) -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (a collective: all ranks call it)."""
    return gather_objects(rng_state(), env)


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    # Our own files: they hold RNG states (NumPy arrays), so not weights-only.
    return torch.load(path, map_location="cpu", weights_only=False)


def open_checkpoint(out: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    """The run's last checkpoint in ``out``, or None for a fresh run.

    Raises:
        ValueError: the checkpoint belongs to another task or model.
    """
    path = out / CHECKPOINT
    if not path.exists():
        return None
    ckpt = load_checkpoint(path)
    if (ckpt["task"], ckpt["model_name"]) != (cfg.task, cfg.model):
        raise ValueError(
            f"{path} belongs to task {ckpt['task']!r} model {ckpt['model_name']!r}, "
            f"not {cfg.task!r} {cfg.model!r}; use another --out"
        )
    return ckpt


def model_state(model: ShardModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def checkpoint_blob(
    cfg: TrainConfig,
    model: ShardModel,
    optimizer: torch.optim.Optimizer | None,
    epoch: int,
    state: RunState,
    rng_states: list[dict[str, Any]],
) -> dict[str, Any]:
    """What ``checkpoint.pt`` holds after ``epoch``."""
    return {
        "model": model_state(model),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": epoch,
        "config": dataclasses.asdict(cfg),
        "model_config": dataclasses.asdict(model.config),
        "task": cfg.task,
        "model_name": cfg.model,
        "rng": rng_states,
        "best_metric": state.best_metric,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "history": state.history,
        "finished": state.finished,
        "lr_factor": state.lr_factor,
    }


def resume(
    ckpt: dict[str, Any],
    cfg: TrainConfig,
    model: ShardModel,
    optimizer: torch.optim.Optimizer,
    env: DistEnv,
    out: Path,
) -> RunState:
    """Load ``ckpt`` into ``model``, ``optimizer`` and this rank's RNGs; the state it saved.

    ``finished`` is derived, not read: a run resumed with a larger ``--epochs`` goes on training.
    RNG states are restored only when the world size is the one that saved them.
    """
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    state = RunState(
        start_epoch=ckpt["epoch"] + 1,
        best_metric=ckpt["best_metric"],
        best_epoch=ckpt["best_epoch"],
        bad_epochs=ckpt["bad_epochs"],
        history=ckpt["history"],
        lr_factor=ckpt.get("lr_factor", 1.0),
    )
    state.finished = state.start_epoch >= cfg.epochs or state.early_stopped(cfg)
    states = ckpt["rng"]
    if len(states) == env.world:
        set_rng_state(states[env.rank])
    if (out / BEST).exists():
        state.best_state = load_checkpoint(out / BEST)["model"]
    return state
