"""The training loop: one run, or its resumption, of any registered (task, model) pair.

The loop knows nothing about tasks or models beyond ``models.base``: it looks both up by name,
reads the train and val splits with ``Task.load_split``, batches them with ``Task.collate``,
minimises ``ShardModel.loss`` with Adam and scores with ``Task.evaluate``. Models with
``trainable = False`` are fitted once (``fit`` on rank 0) and skip the epoch loop.

``--batch-size`` is the *global* batch: each rank takes ``batch_size / world`` examples of it,
so N processes see exactly the batches one process would (``models.ddp``). Rank r seeds with
``seed + r``; DDP broadcasts rank 0's initial weights. Each epoch's log line and history entry
carry the training throughput (``train_examples_per_s``: training examples over the epoch's
training-loop wall time, all ranks together; validation excluded). Only rank 0 logs and writes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from models.base import ShardModel, Task, get_model, get_task, to_device
from models.checkpoint import (
    BEST,
    CHECKPOINT,
    RunState,
    checkpoint_blob,
    gather_rng,
    open_checkpoint,
    resume,
    save_atomic,
    seed_everything,
)
from models.config import TrainConfig, split_opts
from models.ddp import (
    DistEnv,
    all_mean,
    broadcast_from_main,
    evaluate_split,
    setup_distributed,
    teardown_distributed,
    train_sampler,
    wrap,
)
from models.results import write_results, write_scores
from models.tensorboard_log import TrainingBoard

log = logging.getLogger(__name__)


def build(cfg: TrainConfig, model_config: dict[str, Any] | None = None):
    """(task, model) for ``cfg``; ``model_config`` (from a checkpoint) wins over ``cfg.opts``."""
    task_cls = get_task(cfg.task)
    model_cls = get_model(cfg.task, cfg.model)
    model_opts, task_opts = split_opts(model_cls, cfg.opts)
    task = task_cls(cfg.lake, cfg.dataset, **task_opts)
    if model_config is not None:
        mcfg = model_cls.Config(**model_config)
    else:
        mcfg = model_cls.make_config(model_opts)
    model = model_cls(mcfg, task.meta())
    return task, model


def warmup_rate(step: int, warmup: int) -> float:
    """Multiplier of the peak rate at 1-based ``step``: linear to 1 at ``warmup``, then
    ``sqrt(warmup / step)``."""
    return min(step / warmup, math.sqrt(warmup / step))


def progress(iterable, env: DistEnv, desc: str):
    """A tqdm bar over ``iterable``, shown on rank 0 only and only when stderr is a terminal:
    the logs of non-interactive runs hold no bar lines."""
    from tqdm.auto import tqdm

    show = env.main and sys.stderr.isatty()
    return tqdm(
        iterable, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True, disable=not show
    )


@dataclasses.dataclass
class Run:
    """The pieces of one run that its steps share."""

    cfg: TrainConfig
    env: DistEnv
    task: Task
    model: ShardModel
    train_set: Sequence[Any]
    val_set: Sequence[Any]
    out: Path
    board: TrainingBoard | None = None

    def info(self, msg: str, *args: Any) -> None:
        if self.env.main:
            log.info(msg, *args)

    def open_board(self, purge_step: int | None) -> None:
        if self.env.main and self.cfg.tensorboard:
            self.board = TrainingBoard(self.cfg.tensorboard, purge_step=purge_step)


def train(cfg: TrainConfig) -> dict[str, Any] | None:
    """One run (or its resumption); returns what ``results.json`` holds (None on ranks > 0
    and when stopped by ``stop_after_epoch``)."""
    cfg = cfg.resolved()
    env = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, env)
    finally:
        teardown_distributed()


def _run(cfg: TrainConfig, env: DistEnv) -> dict[str, Any] | None:
    if cfg.warmup < 0:
        raise ValueError(f"warmup must be >= 0 steps, got {cfg.warmup}")
    if not 0.0 <= cfg.smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {cfg.smoothing}")
    if cfg.plateau < 0 or not 0.0 < cfg.plateau_factor <= 1.0:
        raise ValueError(f"plateau must be >= 0 epochs and plateau_factor in (0, 1], got "
                         f"{cfg.plateau} and {cfg.plateau_factor}")
    started = time.time()
    out = Path(cfg.out)
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + env.rank)
    ckpt = open_checkpoint(out, cfg)
    task, model = build(cfg, ckpt["model_config"] if ckpt else None)
    model.to(env.device)
    run = Run(cfg, env, task, model, task.load_split("train"), task.load_split("val"), out)
    try:
        state = train_epochs(run, ckpt) if model.trainable else fit_once(run, ckpt)
        if state is None:
            return None
        return finish(run, state, started)
    finally:
        if run.board is not None:
            run.board.close()


def fit_once(run: Run, ckpt: dict[str, Any] | None) -> RunState:
    """Fit a ``trainable = False`` model on rank 0 (or take it from a finished checkpoint),
    broadcast it, score it on val and checkpoint it as epoch 0."""
    cfg, env, model = run.cfg, run.env, run.model
    if ckpt is not None and ckpt.get("finished"):
        model.load_state_dict(ckpt["model"])
    else:
        fitted = None
        if env.main:
            log.info("fitting %s on %d training examples", cfg.model, len(run.train_set))
            model.fit(run.train_set, run.task)
            fitted = {k: v.cpu() for k, v in model.state_dict().items()}
        model.load_state_dict(broadcast_from_main(fitted, env))
    val_metrics = evaluate_split(run.task, model, run.val_set, env)
    state = RunState(
        best_metric=val_metrics.get(run.task.primary_metric, float("nan")),
        best_epoch=0,
        history=[{"epoch": 0, "val": val_metrics}],
        best_state=copy.deepcopy(model.state_dict()),
        finished=True,
    )
    rng_states = gather_rng(env)
    if env.main:
        run.open_board(0 if ckpt is not None else None)
        if run.board is not None:
            run.board.epoch(state.history[0])
        blob = checkpoint_blob(cfg, model, None, 0, state, rng_states)
        save_atomic(blob, run.out / CHECKPOINT)
        save_atomic(blob, run.out / BEST)
    return state


def train_epochs(run: Run, ckpt: dict[str, Any] | None) -> RunState | None:
    """Train from the checkpoint's next epoch (or epoch 0) to the last or an early stop; the
    model ends with the best val epoch's weights. None when stopped by ``stop_after_epoch``."""
    cfg, env, model = run.cfg, run.env, run.model
    optimizer = make_optimizer(model, cfg)
    state = RunState()
    if ckpt is not None:
        state = resume(ckpt, cfg, model, optimizer, env, run.out)
        run.info("resuming %s from epoch %d (%s)", cfg.run_id, state.start_epoch,
                 run.out / CHECKPOINT)
    run.open_board(state.start_epoch if ckpt is not None else None)
    loader, sampler = make_loader(run)
    step_module = wrap(model, env, cfg.find_unused)
    model.train()
    for epoch in range(state.start_epoch, cfg.epochs):
        if state.finished:
            break
        sampler.set_epoch(epoch)
        train_loss, per_s = run_epoch(run, step_module, optimizer, loader, epoch,
                                      state.lr_factor)
        end_epoch(run, state, optimizer, epoch, train_loss, per_s)
        if cfg.stop_after_epoch is not None and epoch >= cfg.stop_after_epoch:
            if not state.finished:
                run.info("stopping after epoch %d as asked; rerun to resume", epoch)
                return None
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    return state


def make_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    """Adam at ``--lr``; a model with ``param_groups()`` may give a group its own rate as
    ``lr_scale`` times it (DM-GNN's decay rate)."""
    groups = model.param_groups() if hasattr(model, "param_groups") else [
        {"params": list(model.parameters())}]
    for group in groups:
        group["lr"] = cfg.lr * group.get("lr_scale", 1.0)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_loader(run: Run) -> tuple[DataLoader, DistributedSampler]:
    """This rank's loader over the training split, with its sampler (``set_epoch`` each epoch)."""
    cfg, env = run.cfg, run.env
    per_rank = max(1, cfg.batch_size // env.world)
    if env.main and cfg.batch_size % env.world:
        log.warning("batch size %d not divisible by %d ranks", cfg.batch_size, env.world)
    sampler = train_sampler(run.task, run.train_set, env, cfg.batch_size, cfg.bucket, cfg.seed)
    loader = DataLoader(
        run.train_set, batch_size=per_rank, sampler=sampler, collate_fn=run.task.collate
    )
    return loader, sampler


def run_epoch(
    run: Run, step_module: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader,
    epoch: int, lr_factor: float = 1.0,
) -> tuple[float, float]:
    """One pass over the training split: (mean loss over all ranks, examples per second)."""
    cfg, env = run.cfg, run.env
    steps_per_epoch = len(loader)
    loss_sum, n_batches = 0.0, 0
    began = time.perf_counter()
    bar = progress(loader, env, f"epoch {epoch}")
    for i, batch in enumerate(bar):
        if cfg.warmup > 0:
            rate = warmup_rate(epoch * steps_per_epoch + i + 1, cfg.warmup)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * group.get("lr_scale", 1.0) * rate * lr_factor
        batch = to_device(batch, env.device)
        optimizer.zero_grad(set_to_none=True)
        loss = step_module(batch)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        optimizer.step()
        value = loss.item()
        loss_sum += value
        n_batches += 1
        if not bar.disable:
            bar.set_postfix(loss=f"{value:.4f}")
    train_loss = all_mean(loss_sum, n_batches, env)
    # every example once per epoch over all ranks; ranks run in step (all-reduce)
    per_s = len(run.train_set) / max(time.perf_counter() - began, 1e-9)
    return train_loss, per_s


def end_epoch(
    run: Run, state: RunState, optimizer: torch.optim.Optimizer, epoch: int, train_loss: float,
    per_s: float,
) -> None:
    """Score val, update ``state`` (best, early-stopping counter, history) and, on rank 0, log
    the epoch, write its TensorBoard points and checkpoint it."""
    cfg, env, model = run.cfg, run.env, run.model
    primary = run.task.primary_metric
    val_metrics = evaluate_split(run.task, model, run.val_set, env)
    value = val_metrics.get(primary, float("nan"))
    score = smoothed(state.history, value, cfg.smoothing)
    improved = score > state.best_metric or state.best_epoch < 0
    if improved:
        state.best_metric, state.best_epoch, state.bad_epochs = score, epoch, 0
        state.best_state = copy.deepcopy(model.state_dict())
    else:
        state.bad_epochs += 1
    entry = {"epoch": epoch, "train_loss": train_loss, "train_examples_per_s": per_s,
             "lr": optimizer.param_groups[0]["lr"], "val": val_metrics}
    if cfg.plateau and state.bad_epochs and state.bad_epochs % cfg.plateau == 0:
        state.lr_factor *= cfg.plateau_factor  # the next epoch trains at the lower rate
        for group in optimizer.param_groups:
            group["lr"] *= cfg.plateau_factor
        run.info("plateau: %d epochs without val %s gain; rate x %g", state.bad_epochs,
                 primary, state.lr_factor)
    if cfg.smoothing:
        entry["val_smoothed"] = score
    state.history.append(entry)
    state.finished = state.stop_due(cfg, epoch)
    rng_states = gather_rng(env)
    if not env.main:
        return
    log.info(
        "epoch %d train_loss %.5f (%.0f examples/s) val %s %.5f%s%s",
        epoch, train_loss, per_s, primary, value,
        f" smoothed {score:.5f}" if cfg.smoothing else "", " (best)" if improved else "",
    )
    if run.board is not None:  # before the checkpoint: a resumed run purges this epoch's points
        run.board.epoch(entry)
    blob = checkpoint_blob(cfg, model, optimizer, epoch, state, rng_states)
    if improved:
        save_atomic({**blob, "model": state.best_state}, run.out / BEST)
    save_atomic(blob, run.out / CHECKPOINT)
    if state.finished and state.early_stopped(cfg):
        log.info("early stop: no val %s gain for %d epochs", primary, state.bad_epochs)


def smoothed(history: list[dict[str, Any]], value: float, smoothing: float) -> float:
    """The score an epoch is selected and stopped on: ``value`` itself when ``smoothing`` is 0,
    else its exponential moving average over the epochs before (``val_smoothed`` of the last
    history entry; the first epoch, or one after a NaN, starts it at ``value``)."""
    last = history[-1].get("val_smoothed") if history and smoothing else None
    if last is None or math.isnan(last):
        return value
    return smoothing * last + (1.0 - smoothing) * value


def finish(run: Run, state: RunState, started: float) -> dict[str, Any] | None:
    """Score the chosen weights on val and test; rank 0 writes the results (lake rows,
    ``results.json``, TensorBoard) and returns what ``results.json`` holds."""
    env, task, model = run.env, run.task, run.model
    metrics = {"val": evaluate_split(task, model, run.val_set, env)}
    test_set = task.load_split("test")
    metrics["test"] = evaluate_split(task, model, test_set, env)
    if not env.main:
        return None
    with torch.no_grad():
        scored = task.example_scores(model, test_set, env.device)
    if scored is not None:
        write_scores(run.cfg, "test", scored)
    extra = {
        "best_epoch": state.best_epoch,
        "best_val_" + task.primary_metric: state.best_metric,
        "history": state.history,
        "world_size": env.world,
        "wall_s": time.time() - started,
    }
    path = write_results(run.cfg, metrics, extra)
    if run.board is not None:
        run.board.final("test", metrics["test"], state.history[-1]["epoch"] if state.history else 0)
    log.info("results: %s", json.dumps(metrics))
    log.info("wrote %s and %s/results/%s", path, run.cfg.lake, run.cfg.task)
    return json.loads(path.read_text())
