"""What a training run depends on: ``TrainConfig`` and the ``--opt key=value`` pairs.

The config is saved inside every checkpoint and ``results.json``; its hash (over the fields that
change what a run computes) keys the default run id and the rows of ``LAKE/results/<task>``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contracts.runs import run_digest
from models.base import ShardModel

# Fields that say where and how a run executes, not what it computes: left out of the hash.
_NOT_HASHED = {
    "lake", "out", "run_id", "stop_after_epoch", "device", "config", "find_unused", "threads",
    "tensorboard", "label",
}
# Fields added after runs were keyed by the hash: hashed only when set away from the default.
_HASHED_WHEN_SET = {"warmup": 0, "smoothing": 0.0, "plateau": 0, "plateau_factor": 0.5}


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; saved inside each checkpoint.

    Args:
        lake: lake root folder.
        task: registered task name.
        model: registered model name for the task.
        dataset: the task's shard table (None for single-table tasks).
        epochs: most epochs to train (default 10).
        batch_size: global batch size over all ranks (default 64).
        lr: Adam learning rate (default 1e-3); the peak rate when ``warmup`` is set.
        weight_decay: Adam weight decay (default 0).
        seed: base seed; rank r uses ``seed + r`` (default 0).
        opts: ``key=value`` overrides for the model Config and the task.
        out: output folder for checkpoints and results.json (default ``runs/<task>-<model>``).
        run_id: results key (default derived from the config hash).
        patience: epochs without val improvement before stopping; 0 disables (default 5).
        smoothing: 0 (default) selects the best epoch and counts patience on the val primary
            metric itself. S in (0, 1) uses its exponential moving average instead,
            m_t = S * m_(t-1) + (1 - S) * v_t from m_0 = v_0 (TensorBoard's smoothing), so that
            one lucky or unlucky validation (a few dozen val cascades, 100 simulations each)
            neither stops a run that is still climbing nor picks a noisy peak. Each epoch's
            history entry records ``val_smoothed``.
        plateau: 0 (default) keeps the rate. P > 0 multiplies every group's rate by
            ``plateau_factor`` each time P more epochs pass without improvement (of the score
            ``smoothing`` says), as torch's ``ReduceLROnPlateau`` does: a run starts at a rate
            that is quick on small data and ends at one fine enough for large data.
        plateau_factor: the plateau's multiplier (default 0.5).
        stop_after_epoch: exit after checkpointing this epoch, as if interrupted (tests,
            time-sliced jobs); None trains to the end.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        find_unused: tell DDP that some parameters may get no gradient in a step (slower).
        threads: torch intra-op threads per process (None: torch's default, or the cores split
            over the local ranks under DDP). On a shared box 1 is often far faster.
        bucket: for tasks whose examples have lengths (``Task.example_length``), each epoch's
            shuffled order is cut into runs of ``bucket`` global batches, each run sorted by
            length, and the batches shuffled again: batches of similar lengths pad far less
            (memetracker cascades: mean 8 users, longest 312). 0 keeps plain shuffling.
        warmup: 0 (default) keeps ``lr`` constant. W > 0 uses the inverse-square-root
            schedule of "Attention Is All You Need", the one NDM's released code trains with:
            at global step t (1-based) the rate is lr * min(t / W, sqrt(W / t)), rising
            linearly to ``lr`` at step W and decaying after. Derived from (epoch, batch), so a
            resumed run continues the same schedule. Each epoch's history entry records the
            rate of its last step.
        tensorboard: folder for TensorBoard event files written by rank 0 (None: none).
        label: the name the run's rows go under in ``results/<task>`` and its scores table
            (None: the model's name), so that ablation or sensitivity runs of one model stand
            apart in reports (``--label "risenet -pickgate"``).
    """

    lake: str = ""
    task: str = ""
    model: str = ""
    dataset: str | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    opts: dict[str, str] = dataclasses.field(default_factory=dict)
    out: str | None = None
    run_id: str | None = None
    patience: int = 5
    smoothing: float = 0.0
    plateau: int = 0
    plateau_factor: float = 0.5
    stop_after_epoch: int | None = None
    device: str = "auto"
    grad_clip: float | None = None
    find_unused: bool = False
    threads: int | None = None
    bucket: int = 50
    warmup: int = 0
    tensorboard: str | None = None
    label: str | None = None

    @property
    def result_name(self) -> str:
        """What results and scores rows call this run's model: ``label`` or the model."""
        return self.label or self.model

    def config_hash(self) -> str:
        items = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_HASHED}
        for key, default in _HASHED_WHEN_SET.items():  # options added later: old hashes hold
            if items.get(key) == default:
                del items[key]
        return run_digest(items)

    def resolved(self) -> TrainConfig:
        """A copy with ``out`` and ``run_id`` filled in."""
        cfg = copy.deepcopy(self)
        name = f"{cfg.task}-{cfg.dataset}-{cfg.model}" if cfg.dataset else f"{cfg.task}-{cfg.model}"
        if cfg.run_id is None:
            cfg.run_id = f"{name}-s{cfg.seed}-{cfg.config_hash()}"
        if cfg.out is None:
            cfg.out = str(Path("runs") / cfg.run_id)
        return cfg


def parse_opts(pairs: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> ``{key: value}`` (both stripped).

    Raises:
        SystemExit: a pair without ``=``.
    """
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--opt expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def split_opts(model_cls: type[ShardModel], opts: dict[str, Any]):
    """(model Config overrides, task options) from ``--opt`` pairs.

    ``model.key`` and ``task.key`` say where a key goes; a bare key goes to the model when its
    Config has that field, otherwise to the task.
    """
    model_fields = {f.name for f in dataclasses.fields(model_cls.Config)}
    model_opts, task_opts = {}, {}
    for key, value in opts.items():
        if key.startswith("model."):
            model_opts[key[6:]] = value
        elif key.startswith("task."):
            task_opts[key[5:]] = value
        elif key in model_fields:
            model_opts[key] = value
        else:
            task_opts[key] = value
    return model_opts, task_opts
