"""The ``dipn`` task: will a user buy within an hour (real-time) and within a day (long-term)
of a moment tau, given her swipe, tap and browse sequences up to tau?

Shards come from ``pipeline.systems.dipn.shards`` (``shards/dipn``, one row per user-day, as
``contracts.dipn`` declares); rows are read with pyarrow alone (``models.lakeio``), the READ
projection checked by ``contracts.check_schema``. A row holds each view's events once and
several cuts; the task expands it into one example per cut. Cut k's view-v sequence is the rows
``[max(0, end - max_len) : end]`` of ``v_x`` reshaped ``(n, len(V_FEATURES))``, ``end =
cut_<v>_end[k]``. Loading checks every row against the contract (lengths, offsets, time
order, ids within their vocabularies, 0/1 labels) and, as the leak guard, that no event of any
cut's sequences is later than its tau (``ShardLeakError``).

A split is kept as the rows' flat numpy arrays (``SplitStore``); an example is an index into
them, and ``collate`` builds a batch's padded tensors from the rows, so no split is ever
materialised as (examples, max_len, features).

Batch (a dict, what every ``dipn`` model consumes), B examples, L = the batch's longest
sequence over the three views (at least 1; at most ``max_len``):
    swipe (B, L, 14), tap (B, L, 3), browse (B, L, 6): int64 feature ids, right-aligned (the
        event nearest tau last), left-padded with 0.
    swipe_mask, tap_mask, browse_mask (B, L) bool: True on events.
    swipe_age, tap_age, browse_age (B, L) int64: tau - event time in ms (0 on padding).
    history (B, 9), profile (B, 3): int64 ids.
    y_1h, y_1d (B,) float32 labels; user_id, cut_ts (B,) int64.

Scoring (``evaluate``, dict in, dict out): ROC AUC of each trained head (``auc_1h``,
``auc_1d``) with its positive rate; the primary metric is ``auc_1h``, or ``auc_1d`` when only
that head is trained (``task_head=1d``). Models' ``predict`` returns (B, H) probabilities, one
column per trained head in ``meta()["heads"]`` order.

Options (``--opt key=value``): the fields of ``DipnTask.Options``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import torch

from contracts import ContractError, check_schema
from contracts import dipn as contract
from models import lakeio
from models.base import OptionError, ShardModel, Task, predict_in_batches, register_task

#: The shard columns this reader uses (all of ``contracts.dipn.SHARD``).
READ = contract.SHARD
VIEWS = ("swipe", "tap", "browse")
FEATURES = {
    "swipe": contract.SWIPE_FEATURES,
    "tap": contract.TAP_FEATURES,
    "browse": contract.BROWSE_FEATURES,
    "history": contract.HISTORY_FEATURES,
    "profile": contract.PROFILE_FEATURES,
}
#: The two labels, in the order of the models' logits.
HEADS = ("1h", "1d")
TASK_HEADS = {"both": HEADS, "1h": ("1h",), "1d": ("1d",)}


class ShardLeakError(ContractError):
    """A cut's sequence holds an event later than the cut's time tau: the model would see the
    future it is asked to predict."""


def vocab(group: str) -> np.ndarray:
    """Vocabulary size of each feature of ``group`` (``swipe``, ..., ``profile``), in order."""
    return np.array([contract.VOCAB[f"{group}.{name}"] for name in FEATURES[group]])


@dataclass
class ViewEvents:
    """One view's events of every row of a split, back to back."""

    ts: np.ndarray  # (events,) int64, epoch ms
    x: np.ndarray  # (events, F) int16 ids
    row_start: np.ndarray  # (rows,) index of each row's first event


@dataclass
class SplitStore:
    """A split's rows as flat arrays; cut i is example i. ``start`` / ``end`` are global event
    indices of each cut's sequence (``end - start <= max_len``)."""

    name: str
    views: dict[str, ViewEvents]
    user_id: np.ndarray  # (rows,)
    day: np.ndarray  # (rows,)
    profile: np.ndarray  # (rows, 3)
    cut_row: np.ndarray  # (cuts,)
    cut_k: np.ndarray  # (cuts,) the cut's index within its row
    cut_ts: np.ndarray  # (cuts,)
    start: dict[str, np.ndarray]  # view -> (cuts,)
    end: dict[str, np.ndarray]  # view -> (cuts,)
    labels: np.ndarray  # (cuts, 2) int8, HEADS order
    history: np.ndarray  # (cuts, 9)

    def __len__(self) -> int:
        return len(self.cut_ts)


class DipnExample:
    """Cut ``index`` of ``store`` (a reference: the arrays stay in the store)."""

    __slots__ = ("index", "store")

    def __init__(self, store: SplitStore, index: int):
        self.store = store
        self.index = index

    @property
    def example_id(self) -> int:
        """user_id * 2^28 + day * 2^16 + k: one id per cut (days < 4096, cuts per day
        < 65536) for the scores table."""
        s, i = self.store, self.index
        return (int(s.user_id[s.cut_row[i]]) << 28) + (int(s.day[s.cut_row[i]]) << 16) + int(
            s.cut_k[i])


class DipnSplit(Sequence):
    """The examples of one split, made on access from its ``SplitStore``."""

    def __init__(self, store: SplitStore, split: str = ""):
        self.store = store
        self.split = split

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [DipnExample(self.store, j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return DipnExample(self.store, i)

    def labels(self) -> np.ndarray:
        """(n, 2) labels in HEADS order."""
        return self.store.labels


def _lists(table: pa.Table, name: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(per-row lengths, flat values) of a list column."""
    col = table.column(column)
    if col.null_count:
        raise ContractError(f"{name}: column {column!r} holds nulls")
    return (pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64),
            pc.list_flatten(col).to_numpy(zero_copy_only=False))


def store_from_arrow(table: pa.Table, max_len: int, name: str = "shards") -> SplitStore:
    """Shard rows -> a checked ``SplitStore`` whose cuts keep at most ``max_len`` events.

    Raises:
        ShardLeakError: a cut whose sequence holds an event after its tau.
        ContractError: any other row that breaks ``contracts.dipn``; the message names the
            table, the user and day, and the cut or column.
    """
    user_id = table.column("user_id").to_numpy(zero_copy_only=False).astype(np.int64)
    day = table.column("day").to_numpy(zero_copy_only=False).astype(np.int64)
    rows = table.num_rows

    def fail(row: int, what: str, error: type[ContractError] = ContractError) -> ContractError:
        return error(f"{name}: user {int(user_id[row])} day {int(day[row])}: {what}")

    def per_row(column: str, counts: np.ndarray, width: int = 1) -> np.ndarray:
        """The column's flat values, checked to hold ``width * counts[row]`` per row."""
        lengths, values = _lists(table, name, column)
        if (bad := np.flatnonzero(lengths != width * counts)).size:
            r = int(bad[0])
            raise fail(r, f"{column} holds {lengths[r]} values, expected {width * counts[r]}")
        return values.reshape(-1, width) if width > 1 else values

    n_cuts, cut_ts = _lists(table, name, "cut_ts")
    cut_row = np.repeat(np.arange(rows), n_cuts)
    cut_k = np.arange(len(cut_ts)) - (np.cumsum(n_cuts) - n_cuts)[cut_row]
    profile = per_row("profile", np.ones(rows, np.int64), len(FEATURES["profile"]))
    history = per_row("history", n_cuts, len(FEATURES["history"]))
    labels = np.stack([per_row(f"label_{h}", n_cuts) for h in HEADS], 1).astype(np.int8)
    if bad := _bad_id(profile, "profile"):
        raise fail(bad[0], f"profile {bad[1]}")
    if bad := _bad_id(history, "history"):
        raise fail(cut_row[bad[0]], f"cut {cut_k[bad[0]]}: history {bad[1]}")
    if (bad := np.flatnonzero((labels != 0) & (labels != 1))).size:
        i = int(bad[0]) // 2
        raise fail(cut_row[i], f"cut {cut_k[i]}: a label is neither 0 nor 1")

    def cut_fail(i: int, what: str, error: type[ContractError] = ContractError):
        return fail(cut_row[i], f"cut {cut_k[i]} (tau {cut_ts[i]}): {what}", error)

    views, start, end = {}, {}, {}
    for view in VIEWS:
        n_events, ts = _lists(table, name, f"{view}_ts")
        x = per_row(f"{view}_x", n_events, len(FEATURES[view])).astype(np.int16)
        row_start = np.cumsum(n_events) - n_events
        _check_events(view, x, ts, n_events, row_start, fail)
        local = per_row(f"cut_{view}_end", n_cuts).astype(np.int64)
        _check_cut_ends(view, local, n_events[cut_row], row_start[cut_row], ts, cut_ts, cut_fail)
        views[view] = ViewEvents(ts=ts.astype(np.int64), x=x, row_start=row_start)
        end[view] = row_start[cut_row] + local
        start[view] = np.maximum(row_start[cut_row], end[view] - max_len)
    return SplitStore(
        name=name, views=views, user_id=user_id, day=day, profile=profile.astype(np.int16),
        cut_row=cut_row, cut_k=cut_k, cut_ts=cut_ts.astype(np.int64), start=start, end=end,
        labels=labels, history=history.astype(np.int16),
    )


def _check_events(view, x, ts, n_events, row_start, fail) -> None:
    """Every event's ids within their vocabularies, each row's events in time order."""
    event_row = np.repeat(np.arange(len(n_events)), n_events)
    if bad := _bad_id(x, view):
        r = int(event_row[bad[0]])
        raise fail(r, f"{view} event {bad[0] - row_start[r]}: {bad[1]}")
    back = np.flatnonzero(np.diff(ts) < 0)
    back = back[event_row[back] == event_row[back + 1]]  # within one row
    if back.size:
        r = int(event_row[back[0]])
        raise fail(r, f"{view}_ts is not in time order at event {back[0] + 1 - row_start[r]}")


def _bad_id(ids: np.ndarray, group: str) -> tuple[int, str] | None:
    """(row, what) of the first id of ``ids`` (n, F) outside its feature's vocabulary."""
    size = vocab(group)
    bad = (ids < 0) | (ids >= size)
    if not bad.any():
        return None
    i, f = (int(v) for v in np.argwhere(bad)[0])
    return i, f"feature {FEATURES[group][f]!r} has id {int(ids[i, f])}, outside 0..{size[f] - 1}"


def _check_cut_ends(view, local, n_events, row_start, ts, cut_ts, fail) -> None:
    """Each cut's end offset is within its row and takes exactly the view's events <= tau."""
    if (bad := np.flatnonzero((local < 0) | (local > n_events))).size:
        i = int(bad[0])
        raise fail(i, f"cut_{view}_end {local[i]} is outside 0..{n_events[i]}")
    glob = row_start + local
    padded = np.concatenate([ts, [0]])  # so that an empty view can be indexed
    last = np.where(local > 0, padded[glob - 1], np.iinfo(np.int64).min)
    if (bad := np.flatnonzero(last > cut_ts)).size:
        i = int(bad[0])
        raise fail(i, f"its {view} sequence holds an event at {last[i]}, after tau",
                   ShardLeakError)
    following = np.where(local < n_events, padded[glob], np.iinfo(np.int64).max)
    if (bad := np.flatnonzero(following <= cut_ts)).size:
        i = int(bad[0])
        raise fail(i, f"cut_{view}_end {local[i]} leaves out the {view} event at "
                      f"{following[i]}, not after tau")


def collate_examples(examples: Sequence[DipnExample]) -> dict[str, Any]:
    """Examples (of one split) -> the batch dict of the module docstring."""
    store = examples[0].store
    if any(ex.store is not store for ex in examples):
        raise ValueError("a dipn batch mixes examples of different splits")
    idx = np.fromiter((ex.index for ex in examples), dtype=np.int64, count=len(examples))
    lengths = {v: store.end[v][idx] - store.start[v][idx] for v in VIEWS}
    width = max(1, max(int(n.max(initial=0)) for n in lengths.values()))
    pos = np.arange(width)
    tau = store.cut_ts[idx]
    batch: dict[str, Any] = {}
    for view in VIEWS:
        events = store.views[view]
        pad = width - lengths[view]  # (B,)
        mask = pos[None, :] >= pad[:, None]  # (B, L)
        where = np.where(mask, store.start[view][idx, None] + pos[None, :] - pad[:, None], 0)
        if events.ts.size:
            x = np.where(mask[..., None], events.x[where], 0)  # (B, L, F)
            age = np.where(mask, tau[:, None] - events.ts[where], 0)
        else:
            x = np.zeros((len(idx), width, len(FEATURES[view])), np.int64)
            age = np.zeros((len(idx), width), np.int64)
        batch[view] = torch.from_numpy(x.astype(np.int64))
        batch[f"{view}_mask"] = torch.from_numpy(mask)
        batch[f"{view}_age"] = torch.from_numpy(age.astype(np.int64))
    rows = store.cut_row[idx]
    batch["history"] = torch.from_numpy(store.history[idx].astype(np.int64))
    batch["profile"] = torch.from_numpy(store.profile[rows].astype(np.int64))
    for j, head in enumerate(HEADS):
        batch[f"y_{head}"] = torch.from_numpy(store.labels[idx, j].astype(np.float32))
    batch["user_id"] = torch.from_numpy(store.user_id[rows])
    batch["cut_ts"] = torch.from_numpy(tau)
    return batch


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC; NaN when ``y`` holds a single class."""
    from sklearn.metrics import roc_auc_score

    if y.size == 0 or y.min() == y.max():
        return math.nan
    return float(roc_auc_score(y, score))


@register_task("dipn")
class DipnTask(Task):
    """Cuts of ``shards/dipn`` (or ``shards/dipn/<dataset>``), scored by the AUC of each head.

    Options (``--opt key=value``): the fields of ``DipnTask.Options``.
    """

    primary_metric = "auc_1h"

    @dataclass
    class Options:
        #: at most this many events per view and sample (the last ones before tau)
        max_len: int = contract.MAX_LEN
        #: the heads trained and scored: both (multi-task), 1h or 1d (single task)
        task_head: str = "both"
        #: examples per scoring batch
        eval_batch_size: int = 256

        def __post_init__(self) -> None:
            if not 1 <= self.max_len <= contract.MAX_LEN:
                raise OptionError(f"task 'dipn' option max_len must be in 1..{contract.MAX_LEN}"
                                  f", got {self.max_len}")
            if self.task_head not in TASK_HEADS:
                raise OptionError(f"task 'dipn' option task_head must be one of "
                                  f"{sorted(TASK_HEADS)}, got {self.task_head!r}")
            if self.eval_batch_size < 1:
                raise OptionError("task 'dipn' option eval_batch_size must be >= 1, "
                                  f"got {self.eval_batch_size}")

    def __init__(self, lake: str, dataset: str | None = None, **options: Any):
        super().__init__(lake, dataset, **options)
        shard = contract.SHARD_TABLE if dataset is None else f"{contract.SHARD_TABLE}/{dataset}"
        self.table = Path(lake) / "shards" / shard
        self.manifest_table = Path(lake) / "shards" / contract.MANIFEST_TABLE
        self.heads = TASK_HEADS[self.options.task_head]
        self.primary_metric = f"auc_{self.heads[0]}"

    def check_manifest(self) -> None:
        """The manifest's schema version, when the lake has a manifest."""
        try:
            rows = lakeio.read_table(self.manifest_table)
        except FileNotFoundError:
            return
        for version in rows.column("schema_version").to_pylist() if rows.num_rows else []:
            if version != contract.SCHEMA_VERSION:
                raise ContractError(f"{self.manifest_table}: schema_version {version}, this "
                                    f"reader knows {contract.SCHEMA_VERSION}")

    def meta(self) -> dict[str, Any]:
        return {"max_len": self.options.max_len, "heads": list(self.heads)}

    def load_split(self, split: str) -> DipnSplit:
        """The split's cuts ordered by (user_id, day, k).

        Raises:
            ContractError: the shards do not match ``contracts.dipn``
                (``ShardLeakError`` when a sequence reaches past its tau).
        """
        self.check_manifest()
        check_schema(str(self.table), lakeio.dataset(self.table).schema, READ)
        table = lakeio.read_table(self.table, columns=list(READ.names),
                                  filter=ds.field("split") == split)
        table = table.sort_by([("user_id", "ascending"), ("day", "ascending")])
        return DipnSplit(store_from_arrow(table, self.options.max_len, str(self.table)), split)

    def collate(self, examples: list[DipnExample]) -> dict[str, Any]:
        return collate_examples(examples)

    def example_length(self, example: DipnExample) -> int:
        s, i = example.store, example.index
        return int(sum(s.end[v][i] - s.start[v][i] for v in VIEWS))

    def scores(self, model: ShardModel, examples: Sequence[DipnExample], device: torch.device
               ) -> np.ndarray:
        """(n, H) probabilities, one column per trained head."""
        if not len(examples):
            return np.zeros((0, len(self.heads)), dtype=np.float32)
        out = predict_in_batches(self, model, examples, device, self.options.eval_batch_size)
        return out.reshape(len(examples), -1)

    def _labels(self, examples: Sequence[DipnExample]) -> np.ndarray:
        if isinstance(examples, DipnSplit):
            return examples.labels()
        return np.array([ex.store.labels[ex.index] for ex in examples],
                        dtype=np.int8).reshape(-1, len(HEADS))

    def evaluate(self, model: ShardModel, examples: Sequence[DipnExample], device: torch.device
                 ) -> dict[str, float]:
        score = self.scores(model, examples, device).astype(np.float64)
        labels = self._labels(examples)
        out = {"n": float(len(examples))}
        for j, head in enumerate(self.heads):
            y = labels[:, HEADS.index(head)].astype(np.int64)
            out[f"auc_{head}"] = roc_auc(y, score[:, j])
            out[f"positive_rate_{head}"] = float(y.mean()) if y.size else math.nan
        return out

    def example_scores(self, model: ShardModel, examples: Sequence[DipnExample],
                       device: torch.device) -> dict[str, np.ndarray]:
        """The primary head's label and score of each example."""
        score = self.scores(model, examples, device)[:, 0]
        return {
            "example_id": np.array([ex.example_id for ex in examples], dtype=np.int64),
            "label": self._labels(examples)[:, HEADS.index(self.heads[0])].astype(np.int32),
            "score": score.astype(np.float64),
        }

