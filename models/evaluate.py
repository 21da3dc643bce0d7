"""Score a checkpoint written by ``models.train`` on one split; prints the metrics as JSON.

    python -m models.evaluate --lake LAKE --task ndm --checkpoint runs/X/best.pt --split test
    python -m models.evaluate --lake LAKE --task ndm --dataset memetracker \
        --checkpoint runs/X/best.pt --split test --opt sims=1000

The task, dataset, model, model Config and task options come from the checkpoint; ``--dataset``
and ``--opt key=value`` (task options) override them. ``best.pt`` holds the weights chosen on
val; ``checkpoint.pt`` the last epoch's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from models.base import ShardModel, Task, get_model, get_task
from models.checkpoint import load_checkpoint
from models.config import parse_opts, split_opts


def load_for_eval(
    lake: str,
    checkpoint: str,
    task: str | None = None,
    dataset: str | None = None,
    opts: dict[str, str] | None = None,
    device: str = "cpu",
) -> tuple[dict[str, Any], Task, ShardModel]:
    """(checkpoint dict, task, model in eval mode on ``device``) of a ``models.train``
    checkpoint; the task's options are those it trained with, ``opts`` overriding them."""
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    if task is not None and task != ckpt["task"]:
        raise ValueError(f"{checkpoint} is a {ckpt['task']!r} checkpoint, not {task!r}")
    model_cls = get_model(ckpt["task"], ckpt["model_name"])
    _, task_opts = split_opts(model_cls, cfg.get("opts") or {})
    task_opts.update(opts or {})
    task_obj = get_task(ckpt["task"])(lake, dataset or cfg.get("dataset"), **task_opts)
    model = model_cls(model_cls.Config(**ckpt["model_config"]), task_obj.meta())
    model.load_state_dict(ckpt["model"])
    model.to(torch.device(device)).eval()
    return ckpt, task_obj, model


def evaluate_checkpoint(
    lake: str,
    checkpoint: str,
    split: str = "test",
    task: str | None = None,
    dataset: str | None = None,
    opts: dict[str, str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    ckpt, task_obj, model = load_for_eval(lake, checkpoint, task, dataset, opts, device)
    cfg = ckpt["config"]
    dev = torch.device(device)
    examples = task_obj.load_split(split)
    started = time.time()
    with torch.no_grad():
        metrics = task_obj.evaluate(model, examples, dev)
    return {
        "task": ckpt["task"],
        "dataset": dataset or cfg.get("dataset"),
        "model": ckpt["model_name"],
        "checkpoint": str(checkpoint),
        "epoch": ckpt.get("epoch"),
        "split": split,
        "examples": len(examples),
        "seed": cfg.get("seed"),
        "opts": dict(opts or {}),
        "training": {k: cfg.get(k) for k in ("opts", "lr", "warmup", "epochs", "batch_size")},
        "eval_s": round(time.time() - started, 3),
        "metrics": {k: float(v) for k, v in metrics.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--task", default=None, help="checked against the checkpoint's task")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    result = evaluate_checkpoint(
        args.lake,
        args.checkpoint,
        args.split,
        task=args.task,
        dataset=args.dataset,
        opts=parse_opts(args.opt),
        device=args.device,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
