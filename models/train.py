"""Train any registered (task, model) pair, in one process or many under torchrun.

    python -m models.train --lake LAKE --task ndm --dataset irvine --model ndm \
        --epochs 50 --batch-size 32 --lr 1e-3 --out runs/ndm-irvine
    torchrun --nproc_per_node=2 --max-restarts=3 -m models.train --lake LAKE --task ndm \
        --dataset irvine --model ndm --epochs 50 --batch-size 32 --out runs/ndm-irvine

The parts: ``models.loop`` (the run: fit or epochs, val scoring, early stopping, results),
``models.ddp`` (ranks, process group, samplers, collectives), ``models.checkpoint``
(checkpoint and resume), ``models.config`` (``TrainConfig``, ``--opt`` pairs),
``models.results`` (the results table and ``results.json``) and ``models.tensorboard_log``.
This module is the command line.

Distributed: ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` (set by torchrun) switch DDP on, with
gloo on CPU and NCCL on GPU. ``--batch-size`` is the *global* batch: each rank takes
``batch_size / world`` examples of it, drawn by a ``DistributedSampler`` that is reshuffled every
epoch, so N processes see exactly the batches one process would. Rank r seeds with
``seed + r``; DDP broadcasts rank 0's initial weights. Metrics cover the whole split: a task that
defines ``metric_sums(model, examples, device) -> dict`` and ``metrics_from_sums(dict) -> dict``
is scored on disjoint shards whose sums are gathered; any other task is scored by rank 0 and the
metrics broadcast. Only rank 0 logs (standard ``logging``) and writes; the progress bar is drawn
only when stderr is a terminal. Each epoch's log line and history entry carry the training
throughput (``train_examples_per_s``: training examples over the epoch's training-loop wall
time, all ranks together; validation excluded).

Every epoch rank 0 writes ``OUT/checkpoint.pt`` (unwrapped model state, optimizer, epoch, the
config as a dict, task/model names, every rank's RNG states, best metric, early-stopping
counter) and ``OUT/best.pt`` when the task's ``primary_metric`` on val improves. A restarted run
(same ``--out``) resumes from ``checkpoint.pt`` at the next epoch and ends with the metrics an
uninterrupted run has. Restarts are torchrun's: with ``--max-restarts=K`` torchrun restarts
every worker after a failure, up to K times, and each resumes from the last checkpoint; a
single process is restarted by running the same command again. Training stops early after
``--patience`` epochs without improvement.

At the end the best weights are scored on val and test; one row per (split, metric) is appended
to ``LAKE/results/<task>`` (application id ``run_id:model``, so a re-run adds nothing) and all
of it goes to ``OUT/results.json``. ``--tensorboard DIR`` also writes the train loss, learning
rate and throughput, every val metric per epoch and the test metrics at the end as TensorBoard
event files (``tensorboard --logdir DIR``).

Defaults: a task may carry a recipe (``Task.recipe``) that replaces the trainer's defaults
for the fields a run leaves unset; NDM's is one schedule for any cascade data (see
``models.systems.ndm.task``). What a run used is in its ``results.json`` config.

Options: ``--opt key=value`` sets a field of the model's Config when the model has that field,
otherwise a task option; ``--opt task.key=value`` / ``--opt model.key=value`` say which
explicitly. ``--config file.yaml`` holds any of the long options (``opt`` as a mapping); the
command line wins over the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import record

from models.base import get_task
from models.checkpoint import load_checkpoint
from models.config import TrainConfig, parse_opts, split_opts
from models.ddp import DistEnv, LengthBucketSampler, env_rank, setup_distributed, wrap
from models.loop import build, train

__all__ = [
    "DistEnv", "LengthBucketSampler", "TrainConfig", "build", "load_checkpoint", "main",
    "parse_args", "parse_opts", "setup_distributed", "split_opts", "train", "wrap",
]


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--stop-after-epoch", type=int)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--grad-clip", type=float)
    parser.add_argument("--find-unused", action="store_true", default=None)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--bucket", type=int, help="length-bucketing run, in batches (0: off)")
    parser.add_argument("--warmup", type=int,
                        help="inverse-square-root schedule peaking at --lr after N steps (0: off)")
    parser.add_argument("--smoothing", type=float,
                        help="select the best epoch and count --patience on an exponential "
                        "moving average of the val metric with this weight (0: the metric itself)")
    parser.add_argument("--plateau", type=int, help="multiply the rate by --plateau-factor "
                        "after each N epochs without val gain (0: off)")
    parser.add_argument("--plateau-factor", type=float)
    parser.add_argument("--tensorboard", metavar="DIR",
                        help="write TensorBoard event files of the run's metrics into DIR")
    parser.add_argument("--label", help="the name the run's results go under (default: the "
                        "model's name), e.g. an ablation's")
    return parser


def _from_yaml(path: str) -> dict[str, Any]:
    """The TrainConfig fields a ``--config`` file sets (``opt`` / ``opts`` as ``opts``).

    Raises:
        SystemExit: a key that is not a TrainConfig field; the message lists the valid ones.
    """
    import yaml

    with open(path) as fh:
        loaded = yaml.safe_load(fh) or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {}
    opts: dict[str, str] = {}
    for key, value in loaded.items():
        key = key.replace("-", "_")
        if key in {"opt", "opts"}:
            opts.update({str(k): str(v) for k, v in (value or {}).items()})
        elif key in known:
            values[key] = value
        else:
            raise SystemExit(f"{path}: unknown option {key!r}; known: {sorted(known)}")
    values["opts"] = opts
    return values


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The run's config: ``--config`` file first, then the command line over it."""
    parser = _parser()
    args = parser.parse_args(argv)
    values = _from_yaml(args.config) if args.config else {}
    for key, value in vars(args).items():
        if key in {"config", "opt"} or value is None:
            continue
        values[key] = value
    values["opts"] = {**(values.get("opts") or {}), **parse_opts(args.opt)}
    for required in ("lake", "task", "model"):
        if not values.get(required):
            parser.error(f"--{required} is required (on the command line or in --config)")
    try:
        recipe = get_task(values["task"]).recipe
    except KeyError as err:
        parser.error(str(err.args[0]))
    for key, value in recipe.items():
        values.setdefault(key, value)
    return TrainConfig(**values)


def setup_logging(rank: int) -> None:
    """Rank 0 logs from INFO up; other ranks only warnings and errors."""
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@record
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging(env_rank())
    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
