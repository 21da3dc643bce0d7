"""Train any registered (task, model) pair, in one process or many under torchrun.

    python -m models.train --lake LAKE --task ndm --dataset irvine --model ndm \
        --epochs 50 --batch-size 32 --lr 1e-3 --out runs/ndm-irvine
    torchrun --nproc_per_node=2 -m models.train --lake LAKE --task ndm --dataset irvine \
        --model ndm --epochs 50 --batch-size 32 --out runs/ndm-irvine

The trainer knows nothing about tasks or models beyond ``models.base``: it looks both up by
name, reads the train and val splits with ``Task.load_split``, batches them with
``Task.collate``, minimises ``ShardModel.loss`` with Adam and scores with ``Task.evaluate``.
Models with ``trainable = False`` are fitted once (``fit`` on rank 0) and skip the epoch loop.

Distributed: ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` (set by torchrun) switch DDP on, with
gloo on CPU and NCCL on GPU. ``--batch-size`` is the *global* batch: each rank takes
``batch_size / world`` examples of it, drawn by a ``DistributedSampler`` that is reshuffled every
epoch, so N processes see exactly the batches one process would. Rank r seeds with
``seed + r``; DDP broadcasts rank 0's initial weights. Metrics cover the whole split: a task that
defines ``metric_sums(model, examples, device) -> dict`` and ``metrics_from_sums(dict) -> dict``
is scored on disjoint shards whose sums are gathered; any other task is scored by rank 0 and the
metrics broadcast. Only rank 0 logs and writes. Each epoch's log line and history entry carry the
training throughput (``train_examples_per_s``: training examples over the epoch's training-loop
wall time, all ranks together; validation excluded).

Every epoch rank 0 writes ``OUT/checkpoint.pt`` (unwrapped model state, optimizer, epoch, the
config as a dict, task/model names, every rank's RNG states, best metric, early-stopping
counter) and ``OUT/best.pt`` when the task's ``primary_metric`` on val improves. A restarted run
(same ``--out``) resumes from ``checkpoint.pt``. Training stops early after ``--patience`` epochs
without improvement. ``--max-restarts K`` retries a failed single-process run from its last
checkpoint up to K times (under torchrun use torchrun's own ``--max-restarts``; the resume is
the same).

At the end the best weights are scored on val and test; one row per (split, metric) is appended
to ``LAKE/results/<task>`` (application id ``run_id:model``, so a re-run adds nothing) and all
of it goes to ``OUT/results.json``.

Options: ``--opt key=value`` sets a field of the model's Config when the model has that field,
otherwise a task option; ``--opt task.key=value`` / ``--opt model.key=value`` say which
explicitly. ``--config file.yaml`` holds any of the long options (``opt`` as a mapping); the
command line wins over the file.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import record
from torch.utils.data import DataLoader, DistributedSampler

from contracts.runs import run_digest
from models.base import ShardModel, Task, get_model, get_task

log = logging.getLogger("sharecast.train")

RESULTS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("split", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("seed", pa.int64()),
        ("config_hash", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

# Fields that say where and how a run executes, not what it computes: left out of the hash.
_NOT_HASHED = {
    "lake", "out", "run_id", "max_restarts", "stop_after_epoch", "device", "config", "find_unused",
    "threads",
}
# Fields added after runs were keyed by the hash: hashed only when set away from the default.
_HASHED_WHEN_SET = {"warmup": 0}


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
        max_restarts: single-process retries from the last checkpoint after a failure.
        stop_after_epoch: exit after checkpointing this epoch, as if interrupted (tests,
            time-sliced jobs); None trains to the end.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        find_unused: tell DDP that some parameters may get no gradient in a step (slower).
        threads: torch intra-op threads per process (None: torch's default, or the cores split
            over the local ranks under DDP). On a shared box 1 is often far faster.
        warmup: 0 (default) keeps ``lr`` constant. W > 0 uses the inverse-square-root
            schedule of "Attention Is All You Need", the one NDM's released code trains with:
            at global step t (1-based) the rate is lr * min(t / W, sqrt(W / t)), rising
            linearly to ``lr`` at step W and decaying after. Derived from (epoch, batch), so a
            resumed run continues the same schedule. Each epoch's history entry records the
            rate of its last step.
        bucket: for tasks whose examples have lengths (``Task.example_length``), each epoch's
            shuffled order is cut into runs of ``bucket`` global batches, each run sorted by
            length, and the batches shuffled again: batches of similar lengths pad far less
            (memetracker cascades: mean 8 users, longest 312). 0 keeps plain shuffling.
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
    max_restarts: int = 0
    stop_after_epoch: int | None = None
    device: str = "auto"
    grad_clip: float | None = None
    find_unused: bool = False
    threads: int | None = None
    bucket: int = 50
    warmup: int = 0

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


# -- command line ---------------------------------------------------------------------------


def parse_opts(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--opt expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file with any of these options")
    parser.add_argument("--lake")
    parser.add_argument("--task")
    parser.add_argument("--dataset")
    parser.add_argument("--model")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out")
    parser.add_argument("--run-id")
    parser.add_argument("--patience", type=int)
    parser.add_argument("--max-restarts", type=int)
    parser.add_argument("--stop-after-epoch", type=int)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--grad-clip", type=float)
    parser.add_argument("--find-unused", action="store_true", default=None)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--bucket", type=int, help="length-bucketing run, in batches (0: off)")
    parser.add_argument("--warmup", type=int,
                        help="inverse-square-root schedule peaking at --lr after N steps (0: off)")
    args = parser.parse_args(argv)

    values: dict[str, Any] = {}
    if args.config:
        import yaml

        with open(args.config) as fh:
            loaded = yaml.safe_load(fh) or {}
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        opts: dict[str, str] = {}
        for key, value in loaded.items():
            key = key.replace("-", "_")
            if key in {"opt", "opts"}:
                opts.update({str(k): str(v) for k, v in (value or {}).items()})
            elif key in known:
                values[key] = value
            else:
                raise SystemExit(f"{args.config}: unknown option {key!r}; known: {sorted(known)}")
        values["opts"] = opts
    for key, value in vars(args).items():
        if key in {"config", "opt"} or value is None:
            continue
        values[key] = value
    values["opts"] = {**(values.get("opts") or {}), **parse_opts(args.opt)}
    for required in ("lake", "task", "model"):
        if not values.get(required):
            parser.error(f"--{required} is required (on the command line or in --config)")
    return TrainConfig(**values)


def split_opts(model_cls: type[ShardModel], opts: dict[str, Any]):
    """(model Config overrides, task options) from ``--opt`` pairs."""
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


# -- distributed plumbing -------------------------------------------------------------------


@dataclasses.dataclass
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistEnv:
    """Read torchrun's environment; start the process group when there is more than one rank."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        if world > 1:
            # N processes on one box share its cores instead of each claiming all of them.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_world)))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistEnv(rank, local_rank, world, dev)


def teardown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        # With gloo on CPU this torch build aborts in destroy_process_group without a barrier.
        dist.barrier()
        dist.destroy_process_group()


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


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor) or hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class LossModule(nn.Module):
    """``forward(batch) = model.loss(batch)``, so DDP's forward hooks see the training step."""

    def __init__(self, model: ShardModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.model.loss(batch)


def wrap(model: ShardModel, env: DistEnv, find_unused: bool = False) -> nn.Module:
    module = LossModule(model)
    if not env.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [env.local_rank] if env.device.type == "cuda" else None
    return DDP(module, device_ids=ids, find_unused_parameters=find_unused)


def all_mean(value: float, count: float, env: DistEnv) -> float:
    """Global mean of per-rank (sum, count) pairs."""
    if not env.distributed:
        return value / max(count, 1e-12)
    t = torch.tensor([value, count], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return (t[0] / t[1].clamp_min(1e-12)).item()


def evaluate_split(
    task: Task, model: ShardModel, examples: Sequence[Any], env: DistEnv
) -> dict[str, float]:
    """Metrics of ``model`` over the whole split, the same dict on every rank."""
    model.eval()
    with torch.no_grad():
        if not env.distributed:
            metrics = task.evaluate(model, examples, env.device)
        elif hasattr(task, "metric_sums") and hasattr(task, "metrics_from_sums"):
            shard = _shard(examples, env)
            sums = task.metric_sums(model, shard, env.device)
            gathered: list[Any] = [None] * env.world
            dist.all_gather_object(gathered, sums)
            total: dict[str, float] = {}
            for part in gathered:
                for key, value in part.items():
                    total[key] = total.get(key, 0.0) + float(value)
            metrics = task.metrics_from_sums(total)
        else:
            box = [task.evaluate(model, examples, env.device) if env.main else None]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
    model.train()
    return {k: float(v) for k, v in metrics.items()}


class LengthBucketSampler(DistributedSampler):
    """A ``DistributedSampler`` whose epoch order keeps examples of similar length together.

    The epoch's permutation (seeded by seed + epoch, as in ``DistributedSampler``) is cut into
    runs of ``bucket * batch_size`` examples, each run is sorted by length and cut into global
    batches, and the batches are shuffled. Rank r then takes positions r, r + world, ... as
    ``DistributedSampler`` does, so rank r's j-th local batch is part of the j-th global batch and
    N processes still see exactly the batches one process would.

    Args:
        lengths: one length per example of ``dataset``.
        batch_size: the global batch size.
        bucket: global batches per sorted run.
    """

    def __init__(self, dataset, lengths: Sequence[int], batch_size: int, bucket: int, **kwargs):
        super().__init__(dataset, shuffle=True, drop_last=False, **kwargs)
        self.lengths = list(lengths)
        self.batch_size = max(1, batch_size)
        self.bucket = max(1, bucket)

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        run = self.bucket * self.batch_size
        ordered = []
        for start in range(0, len(perm), run):
            ordered += sorted(perm[start: start + run], key=lambda i: self.lengths[i])
        full = len(ordered) // self.batch_size
        batches = [ordered[i * self.batch_size: (i + 1) * self.batch_size] for i in range(full)]
        # the short remainder stays last so every global batch keeps its alignment to the ranks
        order = [i for b in torch.randperm(full, generator=g).tolist() for i in batches[b]]
        order += ordered[full * self.batch_size:]
        order += order[: self.total_size - len(order)]  # pad to a multiple of the ranks
        return iter(order[self.rank: self.total_size: self.num_replicas])


def warmup_rate(step: int, warmup: int) -> float:
    """Multiplier of the peak rate at 1-based ``step``: linear to 1 at ``warmup``, then
    ``sqrt(warmup / step)``."""
    return min(step / warmup, math.sqrt(warmup / step))


def _shard(examples: Sequence[Any], env: DistEnv) -> Any:
    part = [examples[i] for i in range(env.rank, len(examples), env.world)]
    # Keep any attributes the task hung on its split object (e.g. which split it is).
    if hasattr(examples, "__dict__") and isinstance(examples, list):
        clone = copy.copy(examples)
        clone[:] = part
        return clone
    return part


# -- checkpoints and results ----------------------------------------------------------------


def _save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    # Our own files: they hold RNG states (NumPy arrays), so not weights-only.
    return torch.load(path, map_location="cpu", weights_only=False)


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


def result_rows(
    cfg: TrainConfig, metrics: dict[str, dict[str, float]], when: dt.datetime
) -> pa.Table:
    rows = []
    for split, values in metrics.items():
        for metric, value in sorted(values.items()):
            rows.append(
                {
                    "run_id": cfg.run_id,
                    "task": cfg.task,
                    "dataset": cfg.dataset or "",
                    "model": cfg.model,
                    "split": split,
                    "metric": metric,
                    "value": float(value),
                    "seed": int(cfg.seed),
                    "config_hash": cfg.config_hash(),
                    "created_at": when,
                }
            )
    return pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA)


def write_results(
    cfg: TrainConfig, metrics: dict[str, dict[str, float]], extra: dict[str, Any]
) -> Path:
    from models.lakeio import append_rows

    when = dt.datetime.now(dt.UTC)
    table = Path(cfg.lake) / "results" / cfg.task
    rows = result_rows(cfg, metrics, when)
    version = append_rows(table, rows, app_id=f"{cfg.run_id}:{cfg.model}")
    out = Path(cfg.out) / "results.json"
    payload = {
        "run_id": cfg.run_id,
        "task": cfg.task,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "seed": cfg.seed,
        "config_hash": cfg.config_hash(),
        "config": dataclasses.asdict(cfg),
        "metrics": metrics,
        "results_table": str(table),
        "results_version": version,
        "created_at": when.isoformat(),
        **extra,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    return out


# -- the run --------------------------------------------------------------------------------


def train(cfg: TrainConfig) -> dict[str, Any]:
    """One run (or its resumption); returns what ``results.json`` holds (None on ranks > 0
    and when stopped by ``stop_after_epoch``)."""
    cfg = cfg.resolved()
    env = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, env)
    finally:
        teardown_distributed()


def _train(cfg: TrainConfig, env: DistEnv) -> dict[str, Any] | None:
    if cfg.warmup < 0:
        raise ValueError(f"warmup must be >= 0 steps, got {cfg.warmup}")
    started = time.time()
    out = Path(cfg.out)
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + env.rank)
    ckpt_path, best_path = out / "checkpoint.pt", out / "best.pt"
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if ckpt is not None and (ckpt["task"], ckpt["model_name"]) != (cfg.task, cfg.model):
        raise ValueError(
            f"{ckpt_path} belongs to task {ckpt['task']!r} model {ckpt['model_name']!r}, "
            f"not {cfg.task!r} {cfg.model!r}; use another --out"
        )
    task, model = build(cfg, ckpt["model_config"] if ckpt else None)
    model.to(env.device)
    primary = task.primary_metric
    train_set = task.load_split("train")
    val_set = task.load_split("val")
    history: list[dict[str, Any]] = []
    best_metric, best_epoch, bad_epochs, start_epoch = -float("inf"), -1, 0, 0
    best_state = None

    if not model.trainable:
        if ckpt is not None and ckpt.get("finished"):
            model.load_state_dict(ckpt["model"])
        else:
            state = [None]
            if env.main:
                log.info("fitting %s on %d training examples", cfg.model, len(train_set))
                model.fit(train_set, task)
                state = [{k: v.cpu() for k, v in model.state_dict().items()}]
            if env.distributed:
                dist.broadcast_object_list(state, src=0)
            model.load_state_dict(state[0])
        val_metrics = evaluate_split(task, model, val_set, env)
        best_metric, best_epoch = val_metrics.get(primary, float("nan")), 0
        history.append({"epoch": 0, "val": val_metrics})
        best_state = copy.deepcopy(model.state_dict())
        states = gather_rng(env)
        if env.main:
            blob = _checkpoint(cfg, model, None, 0, best_metric, best_epoch, 0, history, states)
            blob["finished"] = True
            _save(blob, ckpt_path)
            _save(blob, best_path)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        finished = False
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            start_epoch = ckpt["epoch"] + 1
            best_metric, best_epoch = ckpt["best_metric"], ckpt["best_epoch"]
            bad_epochs, history = ckpt["bad_epochs"], ckpt["history"]
            # Derived, not read: a run resumed with a larger --epochs goes on training.
            finished = start_epoch >= cfg.epochs or (0 < cfg.patience <= bad_epochs)
            states = ckpt["rng"]
            if len(states) == env.world:
                set_rng_state(states[env.rank])
            if best_path.exists():
                best_state = load_checkpoint(best_path)["model"]
            if env.main:
                log.info("resuming %s from epoch %d (%s)", cfg.run_id, start_epoch, ckpt_path)
        per_rank = max(1, cfg.batch_size // env.world)
        if env.main and cfg.batch_size % env.world:
            log.warning("batch size %d not divisible by %d ranks", cfg.batch_size, env.world)
        lengths = [task.example_length(e) for e in train_set] if cfg.bucket > 0 else []
        if lengths and all(n is not None for n in lengths):
            sampler = LengthBucketSampler(
                train_set, lengths, cfg.batch_size, cfg.bucket,
                num_replicas=env.world, rank=env.rank, seed=cfg.seed,
            )
        else:
            sampler = DistributedSampler(
                train_set, num_replicas=env.world, rank=env.rank, shuffle=True, seed=cfg.seed
            )
        loader = DataLoader(
            train_set, batch_size=per_rank, sampler=sampler, collate_fn=task.collate
        )
        step_module = wrap(model, env, cfg.find_unused)
        model.train()
        steps_per_epoch = len(loader)
        epoch = start_epoch
        while not finished and epoch < cfg.epochs:
            sampler.set_epoch(epoch)
            loss_sum, n_batches = 0.0, 0
            began = time.perf_counter()
            bar = _progress(loader, env, f"epoch {epoch}")
            for i, batch in enumerate(bar):
                if cfg.warmup > 0:
                    rate = warmup_rate(epoch * steps_per_epoch + i + 1, cfg.warmup)
                    for group in optimizer.param_groups:
                        group["lr"] = cfg.lr * rate
                batch = to_device(batch, env.device)
                optimizer.zero_grad(set_to_none=True)
                loss = step_module(batch)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                loss_sum += loss.item()
                n_batches += 1
                if env.main:
                    bar.set_postfix(loss=f"{loss.item():.4f}")
            train_loss = all_mean(loss_sum, n_batches, env)
            # every example once per epoch over all ranks; ranks run in step (all-reduce)
            per_s = len(train_set) / max(time.perf_counter() - began, 1e-9)
            val_metrics = evaluate_split(task, model, val_set, env)
            value = val_metrics.get(primary, float("nan"))
            improved = value > best_metric or best_epoch < 0
            if improved:
                best_metric, best_epoch, bad_epochs = value, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
            history.append({"epoch": epoch, "train_loss": train_loss,
                            "train_examples_per_s": per_s,
                            "lr": optimizer.param_groups[0]["lr"], "val": val_metrics})
            finished = epoch + 1 >= cfg.epochs or (0 < cfg.patience <= bad_epochs)
            states = gather_rng(env)
            if env.main:
                log.info(
                    "epoch %d train_loss %.5f (%.0f examples/s) val %s %.5f%s",
                    epoch, train_loss, per_s, primary, value, " (best)" if improved else "",
                )
                blob = _checkpoint(
                    cfg, model, optimizer, epoch, best_metric, best_epoch, bad_epochs, history,
                    rng_states=states,
                )
                blob["finished"] = finished
                if improved:
                    _save({**blob, "model": best_state}, best_path)
                _save(blob, ckpt_path)
            if finished and 0 < cfg.patience <= bad_epochs and env.main:
                log.info("early stop: no val %s gain for %d epochs", primary, bad_epochs)
            if cfg.stop_after_epoch is not None and epoch >= cfg.stop_after_epoch and not finished:
                if env.main:
                    log.info("stopping after epoch %d as asked; rerun to resume", epoch)
                return None
            epoch += 1
        if best_state is not None:
            model.load_state_dict(best_state)

    metrics = {"val": evaluate_split(task, model, val_set, env)}
    test_set = task.load_split("test")
    metrics["test"] = evaluate_split(task, model, test_set, env)
    if not env.main:
        return None
    extra = {
        "best_epoch": best_epoch,
        "best_val_" + primary: best_metric,
        "history": history,
        "world_size": env.world,
        "wall_s": time.time() - started,
    }
    path = write_results(cfg, metrics, extra)
    log.info("results: %s", json.dumps(metrics))
    log.info("wrote %s and %s/results/%s", path, cfg.lake, cfg.task)
    return json.loads(path.read_text())


def _progress(loader, env: DistEnv, desc: str):
    if not env.main:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _checkpoint(
    cfg: TrainConfig,
    model: ShardModel,
    optimizer: torch.optim.Optimizer | None,
    epoch: int,
    best_metric: float,
    best_epoch: int,
    bad_epochs: int,
    history: list[dict[str, Any]],
    rng_states: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "model": model_state(model),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": epoch,
        "config": dataclasses.asdict(cfg),
        "model_config": dataclasses.asdict(model.config),
        "task": cfg.task,
        "model_name": cfg.model,
        "rng": rng_states,
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "bad_epochs": bad_epochs,
        "history": history,
    }


def model_state(model: ShardModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def gather_rng(env: DistEnv) -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (a collective: all ranks call it)."""
    if not env.distributed:
        return [rng_state()]
    states: list[Any] = [None] * env.world
    dist.all_gather_object(states, rng_state())
    return states


@record
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    attempts = 0
    while True:
        try:
            train(cfg)
            return 0
        except Exception:
            distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1
            if distributed or attempts >= cfg.max_restarts:
                raise
            attempts += 1
            log.exception("run failed; restart %d of %d from the last checkpoint",
                          attempts, cfg.max_restarts)


if __name__ == "__main__":
    sys.exit(main())
