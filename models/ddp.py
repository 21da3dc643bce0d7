"""DDP plumbing of the trainer: ranks, the process group, samplers and collectives.

``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` (set by torchrun) switch DDP on, with gloo on CPU and
NCCL on GPU. Every function here is also right in one process, where the collectives reduce to
the local value, so the training loop has no second code path.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from models.base import ShardModel, Task


@dataclasses.dataclass
class DistEnv:
    """Where this process stands: its rank, local rank, the world size and its device."""

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


def env_rank() -> int:
    """This process's rank from torchrun's environment (0 outside torchrun)."""
    return int(os.environ.get("RANK", 0))


def setup_distributed(device: str = "auto") -> DistEnv:
    """Read torchrun's environment; start the process group when there is more than one rank."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    rank = env_rank()
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
        _init_process_group("nccl" if use_cuda else "gloo", rank, world)
    return DistEnv(rank, local_rank, world, dev)


def _init_process_group(backend: str, rank: int, world: int) -> None:
    """``init_process_group`` from torchrun's environment, each restart in a store of its own.

    torchrun's agent keeps one store server for all of a run's restarts: without a prefix per
    attempt, a restarted worker can read a key its predecessor wrote (gloo reads the other
    ranks' old addresses and fails with "Connection refused"). ``TORCHELASTIC_RESTART_COUNT``
    is the same on every worker of one torchrun, so each attempt reads only its own keys.
    """
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != str(True):
        dist.init_process_group(backend=backend)
        return
    store, _, _ = next(dist.rendezvous("env://", rank, world))
    store = dist.PrefixStore(f"/worker/attempt_{attempt}", store)
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)


def teardown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        # With gloo on CPU this torch build aborts in destroy_process_group without a barrier.
        dist.barrier()
        dist.destroy_process_group()


class LossModule(nn.Module):
    """``forward(batch) = model.loss(batch)``, so DDP's forward hooks see the training step."""

    def __init__(self, model: ShardModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.model.loss(batch)


def wrap(model: ShardModel, env: DistEnv, find_unused: bool = False) -> nn.Module:
    """The module a training step calls: ``LossModule(model)``, inside DDP when distributed."""
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


def broadcast_from_main(obj: Any, env: DistEnv) -> Any:
    """Rank 0's ``obj`` on every rank (a collective: all ranks call it)."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``obj``, in rank order (a collective: all ranks call it)."""
    if not env.distributed:
        return [obj]
    gathered: list[Any] = [None] * env.world
    dist.all_gather_object(gathered, obj)
    return gathered


def shard_examples(examples: Sequence[Any], env: DistEnv) -> Any:
    """Rank r's examples r, r + world, ... of a split."""
    part = [examples[i] for i in range(env.rank, len(examples), env.world)]
    # Keep any attributes the task hung on its split object (e.g. which split it is).
    if hasattr(examples, "__dict__") and isinstance(examples, list):
        clone = copy.copy(examples)
        clone[:] = part
        return clone
    return part


def evaluate_split(
    task: Task, model: ShardModel, examples: Sequence[Any], env: DistEnv
) -> dict[str, float]:
    """Metrics of ``model`` over the whole split, the same dict on every rank.

    A task that defines ``metric_sums(model, examples, device) -> dict`` and
    ``metrics_from_sums(dict) -> dict`` is scored on disjoint shards whose sums are gathered;
    any other task is scored by rank 0 and the metrics broadcast.
    """
    model.eval()
    with torch.no_grad():
        if not env.distributed:
            metrics = task.evaluate(model, examples, env.device)
        elif hasattr(task, "metric_sums") and hasattr(task, "metrics_from_sums"):
            sums = task.metric_sums(model, shard_examples(examples, env), env.device)
            total: dict[str, float] = {}
            for part in gather_objects(sums, env):
                for key, value in part.items():
                    total[key] = total.get(key, 0.0) + float(value)
            metrics = task.metrics_from_sums(total)
        else:
            mine = task.evaluate(model, examples, env.device) if env.main else None
            metrics = broadcast_from_main(mine, env)
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


def train_sampler(
    task: Task, examples: Sequence[Any], env: DistEnv, batch_size: int, bucket: int, seed: int
) -> DistributedSampler:
    """The training split's sampler: length-bucketed when ``bucket`` > 0 and the task gives
    every example a length, otherwise a plain shuffling ``DistributedSampler``."""
    lengths = [task.example_length(e) for e in examples] if bucket > 0 else []
    if lengths and all(n is not None for n in lengths):
        return LengthBucketSampler(
            examples, lengths, batch_size, bucket, num_replicas=env.world, rank=env.rank, seed=seed,
        )
    return DistributedSampler(
        examples, num_replicas=env.world, rank=env.rank, shuffle=True, seed=seed
    )
