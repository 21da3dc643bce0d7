"""The one interface every task and model implements, so one trainer serves all of them.

A **task** (``infnet``, ``ndm``, later ``risenet``, ``dmgnn``, ``dipn``) knows its shards: how to
read a split from the lake, how to collate examples into a batch of tensors, and how to score
predictions over a whole split. A **model** knows only batches: ``loss(batch)`` for training and
``predict(batch)`` for scores. Both are registered by name in dicts; the trainer looks them up,
never branches on names.

Models that are fitted in one shot rather than by gradient descent (LR, LightGBM, co-occurrence)
set ``trainable = False`` and implement ``fit(examples)``; the trainer calls it on rank 0 and
skips the epoch loop.

Both are configured by dataclasses: a model by its ``Config``, a task by its ``Options`` (typed,
defaulted, each field documented). ``--opt key=value`` strings are cast to the field's type
(``parse_options``); an unknown key or a value of the wrong type is an ``OptionError`` that names
the key and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
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


class OptionError(KeyError, ValueError):
    """An option key that a task's ``Options`` or a model's ``Config`` does not declare, or a
    value that cannot be cast to the field's type.

    Both a ``KeyError`` (the key is unknown) and a ``ValueError`` (the value is bad), so callers
    that catch either keep working; the message prints as written, without ``KeyError``'s quotes.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"", "none", "null"}


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type_name(a) for a in args)
    if origin is list:
        return f"comma-separated list of {_type_name(args[0]) if args else 'str'}"
    if tp is bool:
        return "bool (1/true/yes/on or 0/false/no/off)"
    return getattr(tp, "__name__", str(tp))


def _cast(value: Any, tp: Any) -> Any:
    """``value`` as a ``tp``; strings are parsed, other values are checked. Raises ValueError."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
        ):
            return None
        for arm in (a for a in args if a is not type(None)):
            try:
                return _cast(value, arm)
            except ValueError:
                pass
        raise ValueError(value)
    if origin is list or tp is list:
        item = args[0] if args else str
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("[") and text.endswith("]"):  # a YAML list, stringified
                text = text[1:-1].strip()
            parts = [p.strip() for p in text.split(",")] if text else []
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            raise ValueError(value)
        return [_cast(part, item) for part in parts]
    if tp is bool:
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, (bool, int)) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
        raise ValueError(value)
    if tp is str:
        return value if isinstance(value, str) else str(value)
    return value  # a field typed Any or with a type this parser does not know: as given


def parse_options(
    schema: type, values: Mapping[str, Any] | None, owner: str, valid: str = "options",
    hint: str = "",
) -> Any:
    """An instance of the dataclass ``schema`` with ``values`` cast to its fields' types.

    Strings are parsed: ``int`` / ``float`` as Python does, ``bool`` from 1/true/yes/on or
    0/false/no/off, ``list[T]`` from comma-separated items (``10,50`` or ``[10, 50]``),
    ``T | None`` also from ``none`` or the empty string. Fields not in ``values`` keep their
    defaults.

    Args:
        schema: the dataclass (a task's ``Options`` or a model's ``Config``).
        values: key -> value, typically the strings of ``--opt key=value``.
        owner: who the options belong to, for messages (``task 'ndm'``, ``NDM.Config``).
        valid: what the valid keys are called in messages (``task options``).
        hint: appended to the unknown-key message (where else a key may belong).

    Raises:
        OptionError: a key ``schema`` lacks (the message lists the valid ones) or a value that
            cannot be cast (the message names the key and the expected type).
    """
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    try:
        hints = typing.get_type_hints(schema)
    except NameError:  # an annotation naming something out of the module's scope
        hints = {name: f.type for name, f in fields.items() if not isinstance(f.type, str)}
    kwargs = {}
    for key, value in (values or {}).items():
        if key not in fields:
            listed = ", ".join(sorted(fields)) or "none"
            raise OptionError(f"{owner} has no option {key!r}; valid {valid}: {listed}{hint}")
        tp = hints.get(key, Any)
        try:
            kwargs[key] = _cast(value, tp)
        except (TypeError, ValueError):
            raise OptionError(
                f"{owner} option {key}={value!r}: expected {_type_name(tp)}"
            ) from None
    return schema(**kwargs)


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors, PyG batches, and dicts, lists or tuples of them) on ``device``."""
    if isinstance(batch, torch.Tensor) or hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@torch.no_grad()
def predict_in_batches(
    task: Task, model: ShardModel, examples: Sequence[Any], device: torch.device, size: int
) -> np.ndarray:
    """``model.predict`` over ``examples`` in batches of ``size`` (collated by ``task``), in
    eval mode, the model's mode restored after; float32 scores in the examples' order."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(examples), size):
        batch = to_device(task.collate(list(examples[start:start + size])), device)
        out.append(model.predict(batch).detach().float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def binary_scores(ids: Sequence[int], labels: Sequence[int], scores: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """What ``Task.example_scores`` returns for a binary task, in the trainer's dtypes."""
    return {
        "example_id": np.asarray(ids, dtype=np.int64),
        "label": np.asarray(labels, dtype=np.int32),
        "score": np.asarray(scores, dtype=np.float64),
    }


def _import_all() -> None:
    """Import every module under ``models.systems`` (tasks and models register on import)."""
    import importlib
    import pkgutil

    import models.systems

    for info in pkgutil.walk_packages(models.systems.__path__, prefix="models.systems."):
        importlib.import_module(info.name)


class Task:
    """How one task's shards become batches and how predictions are scored.

    Subclasses declare their options as an ``Options`` dataclass (typed, defaulted, each field
    documented); ``self.options`` is its instance.

    Args:
        lake: the lake root folder.
        dataset: which shard table of the task (e.g. ``irvine`` for ``shards/ndm/irvine``);
            None for tasks with one table.
        options: task options from the command line (``--opt key=value``), strings or typed
            values, cast to the ``Options`` fields' types.

    Raises:
        OptionError: an option ``Options`` lacks, or a value that cannot be cast.
    """

    name: ClassVar[str] = ""
    #: metric used for early stopping and model selection; higher is better
    primary_metric: ClassVar[str] = ""
    #: the trainer's defaults for this task: ``TrainConfig`` fields (``lr``, ``epochs``,
    #: ``patience``, ...) that ``models.train`` uses wherever its command line and ``--config``
    #: file leave them unset
    recipe: ClassVar[dict[str, Any]] = {}

    @dataclasses.dataclass
    class Options:
        """A task without options."""

    def __init__(self, lake: str, dataset: str | None = None, **options: Any):
        self.lake = lake
        self.dataset = dataset
        self.options = self.make_options(options)

    @classmethod
    def make_options(cls, values: Mapping[str, Any] | None = None) -> Any:
        """The ``Options`` with ``values`` applied, values cast to the fields' types."""
        models = MODELS.get(cls.name, {})
        known = ", ".join(f"{name}: {m.__name__}.Config" for name, m in sorted(models.items()))
        hint = "; model options are those of the model's Config" + (f" ({known})" if known else "")
        return parse_options(cls.Options, values, f"task {cls.name!r}", "task options", hint)

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

    def example_scores(
        self, model: ShardModel, examples: Sequence[Any], device: torch.device
    ) -> dict[str, Any] | None:
        """For binary tasks, each example's ``example_id``, ``label`` and ``score`` (arrays in
        the split's order), which the trainer keeps for precision-recall curves; None for tasks
        whose metrics are not a binary ranking."""
        return None

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
    def make_config(cls, overrides: Mapping[str, Any] | None = None) -> Any:
        """The Config with ``overrides`` applied, values cast to the fields' types.

        Raises:
            OptionError: a key the Config lacks, or a value that cannot be cast.
        """
        return parse_options(cls.Config, overrides, f"{cls.__name__}.Config", "model options")
