"""The one interface every task and model implements, so one trainer serves all of them.

A **task** (``infnet``, ``ndm``, later ``risenet``, ``dmgnn``, ``dipn``) knows its shards: how to
read a split from the lake, how to collate examples into a batch of tensors, and how to score
predictions over a whole split. A **model** knows only batches: ``loss(batch)`` for training and
``predict(batch)`` for scores. Both are registered by name in dicts; the trainer looks them up,
never branches on names.

Models that are fitted in one shot rather than by gradient descent (LR, LightGBM, co-occurrence)
set ``trainable = False`` and implement ``fit(examples)``; the trainer calls it on rank 0 and
skips the epoch loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

TASKS: dict[str, type[Task]] = {}
MODELS: dict[str, dict[str, type[ShardModel]]] = {}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    def deco(cls: type[Task]) -> type[Task]:
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


def register_model(task: str, name: str) -> Callable[[type[ShardModel]], type[ShardModel]]:
    def deco(cls: type[ShardModel]) -> type[ShardModel]:
        cls.name = name
        MODELS.setdefault(task, {})[name] = cls
        return cls

    return deco


def get_task(name: str) -> type[Task]:
    _import_all()
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def get_model(task: str, name: str) -> type[ShardModel]:
    _import_all()
    known = MODELS.get(task, {})
    if name not in known:
        raise KeyError(f"unknown model {name!r} for task {task!r}; known: {sorted(known)}")
    return known[name]


def _import_all() -> None:
    """Import every module under ``models.systems`` (tasks and models register on import)."""
    import importlib
    import pkgutil

    import models.systems

    for info in pkgutil.walk_packages(models.systems.__path__, prefix="models.systems."):
        importlib.import_module(info.name)


class Task:
    """How one task's shards become batches and how predictions are scored.

    Args:
        lake: the lake root folder.
        dataset: which shard table of the task (e.g. ``irvine`` for ``shards/ndm/irvine``);
            None for tasks with one table.
        options: task options from the command line (``--opt key=value``).
    """

    name: ClassVar[str] = ""
    #: metric used for early stopping and model selection; higher is better
    primary_metric: ClassVar[str] = ""

    def __init__(self, lake: str, dataset: str | None = None, **options: Any):
        self.lake = lake
        self.dataset = dataset
        self.options = options

    def meta(self) -> dict[str, Any]:
        """Sizes models need to build themselves (feature dims, number of users, ...)."""
        raise NotImplementedError

    def load_split(self, split: str) -> Sequence[Any]:
        """All examples of ``split`` (``train``, ``val``, ``test``), in a fixed order."""
        raise NotImplementedError

    def collate(self, examples: list[Any]) -> dict[str, Any]:
        """A list of examples -> one batch (a dict of tensors / PyG batches)."""
        raise NotImplementedError

    def evaluate(
        self, model: ShardModel, examples: Sequence[Any], device: torch.device
    ) -> dict[str, float]:
        """Metrics of ``model`` over a whole split; dict in, dict out."""
        raise NotImplementedError

    def example_length(self, example: Any) -> int | None:
        """Padded size of one example (e.g. a sequence length), or None when padding does not
        depend on the example. Tasks that return lengths get length-bucketed batches."""
        return None


class ShardModel(nn.Module):
    """Base of every model. Subclasses define a ``Config`` dataclass.

    Args:
        config: the model's Config instance (saved inside each checkpoint).
        meta: ``Task.meta()``.
    """

    name: ClassVar[str] = ""
    trainable: ClassVar[bool] = True

    @dataclasses.dataclass
    class Config:
        pass

    def __init__(self, config: Any, meta: dict[str, Any]):
        super().__init__()
        self.config = config
        self.meta = meta

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Scalar training loss of one batch."""
        raise NotImplementedError

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        """Scores for the batch's examples (probabilities for binary tasks)."""
        raise NotImplementedError

    def fit(self, examples: Sequence[Any], task: Task) -> None:
        """One-shot fitting for ``trainable = False`` models."""
        raise NotImplementedError

    @classmethod
    def make_config(cls, overrides: dict[str, Any] | None = None) -> Any:
        """The Config with ``overrides`` applied, values cast to the fields' types."""
        cfg = cls.Config()
        for key, value in (overrides or {}).items():
            fields = {f.name: f for f in dataclasses.fields(cfg)}
            if key not in fields:
                raise KeyError(f"{cls.__name__} has no option {key!r}; known: {sorted(fields)}")
            current = getattr(cfg, key)
            if isinstance(value, str) and not isinstance(current, str) and current is not None:
                if isinstance(current, bool):
                    value = value.lower() in {"1", "true", "yes", "on"}
                else:
                    value = type(current)(value)
            setattr(cfg, key, value)
        return cfg
