"""The ``risenet`` task: will an item be a rising star, from its weekly diffusion graphs?

Shards come from ``pipeline.systems.risenet.shards`` (``shards/risenet``, one row per (item,
window), plus the one-row ``shards/risenet_manifest``), both as ``contracts.risenet`` declares.
Each row stores H = ``history_weeks`` observed weeks ending at the window's last observed week;
the task keeps the last T = ``weeks`` of them (oldest first). Rows are read with pyarrow alone
(``models.lakeio``), the READ projection checked by ``contracts.check_schema``.

Batch (a dict, what every ``risenet`` model consumes), B examples, T weeks:
    x_item: (B, T, 4) float32, log1p of the week's price, sales, records and scale (X_t).
    category: (B,) int64, the item's top category.
    graphs: T ``torch_geometric.data.Batch`` (oldest week first), each ``Batch.from_data_list``
        of B ``Data(x=(n, 7), edge_index=(2, e), edge_attr=(e, 2), user_id=(n,), num_nodes=n)``
        (n may be 0: a week without share records); ``graphs[t].batch`` maps nodes to 0..B-1.
        Edges point sender -> receiver; ``user_id`` lets a model match users across weeks.
    scale_next: (B, T-1) float32, the raw scale of week t+1 for t = 0..T-2 (the multi-task
        target; observed weeks only). (B, 0) when T = 1.
    y: (B,) float32 label; item_id: (B,) int64; window_start: (B,) int64.

Scoring (``evaluate``, dict in, dict out): rising stars are rare, so the primary metric is F1
at a threshold chosen on val: scoring the ``val`` split picks the score cut that maximises its
F1 and remembers it on the task; every other split is cut at the remembered val threshold (the
trainer scores val before test). A split scored before any val split (``models.evaluate
--split test`` on a checkpoint) is cut at its own best threshold. ``f1_best`` is always the
split's own best F1 (an upper bound, for reference), with precision, recall, AUC-PR (average
precision) and AUC-ROC beside it.
"""

from __future__ import annotations

import json
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
from torch_geometric.data import Batch, Data

from contracts import ContractError, check_schema
from contracts import risenet as contract
from models import lakeio
from models.base import (
    OptionError,
    ShardModel,
    Task,
    binary_scores,
    predict_in_batches,
    register_task,
)

#: The shard columns this reader uses (a projection of ``contracts.risenet.SHARD``).
READ = pa.schema([contract.SHARD.field(name) for name in (
    "item_id", "window_start", "split", "label", "top_category", "weeks")])
USER_DIM = len(contract.USER_FEATURES)
EDGE_DIM = len(contract.EDGE_FEATURES)
ITEM_DIM = len(contract.ITEM_FEATURES)


class RiseNetSplit(list):
    """The examples of one split, in the split's order; remembers which split it is."""

    split: str = ""


@dataclass
class RiseNetExample:
    """One (item, window) over its last T observed weeks, oldest first.

    ``item_x`` holds the raw weekly price, sales, records and scale; the per-week lists hold the
    week's graph: node i is user ``users[t][i]``, edge j goes ``edge_index[t][0, j]`` (sender)
    -> ``edge_index[t][1, j]`` (receiver).
    """

    item_id: int
    window_start: int
    label: int
    category: int
    item_x: np.ndarray  # (T, 4) raw
    users: list[np.ndarray]  # per week (n_t,)
    user_x: list[np.ndarray]  # per week (n_t, 7)
    edge_index: list[np.ndarray]  # per week (2, e_t)
    edge_x: list[np.ndarray]  # per week (e_t, 2)

    @property
    def example_id(self) -> int:
        """item_id * 100 + window_start: one id per (item, window) for the scores table."""
        return self.item_id * 100 + self.window_start

    def week_data(self, t: int) -> Data:
        n = len(self.users[t])
        return Data(
            x=torch.tensor(self.user_x[t], dtype=torch.float32).view(n, USER_DIM),
            edge_index=torch.tensor(self.edge_index[t], dtype=torch.long).view(2, -1),
            edge_attr=torch.tensor(self.edge_x[t], dtype=torch.float32).view(-1, EDGE_DIM),
            user_id=torch.tensor(self.users[t], dtype=torch.long),
            num_nodes=n,
        )


def cap_users(
    users: np.ndarray, user_x: np.ndarray, edge_index: np.ndarray, edge_x: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``cap`` users of one week with the most share edges (ties: stored order) and
    the edges between them; ``cap`` <= 0 or a week no larger keeps everything."""
    n = len(users)
    if cap <= 0 or n <= cap:
        return users, user_x, edge_index, edge_x
    degree = np.bincount(edge_index.reshape(-1), minlength=n)
    keep = np.sort(np.argsort(-degree, kind="stable")[:cap])
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    mapped = new_index[edge_index]  # (2, e)
    kept_edges = (mapped >= 0).all(axis=0)
    return users[keep], user_x[keep], mapped[:, kept_edges], edge_x[kept_edges]


def _list_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, flat values) of a list array; offsets index into the values."""
    return arr.offsets.to_numpy(zero_copy_only=False), arr.values.to_numpy(zero_copy_only=False)


def examples_from_arrow(
    table: pa.Table, history_weeks: int, weeks: int, max_users: int = 0, name: str = "shards"
) -> list[RiseNetExample]:
    """Shard rows -> examples holding the last ``weeks`` of each row's ``history_weeks``.

    Raises:
        ContractError: a row whose week count, feature lengths or edge endpoints do not fit
            the contract; the message names the table, item and window.
    """
    if table.num_rows == 0:
        return []
    table = table.combine_chunks()
    col = {n: table.column(n).chunk(0) for n in table.column_names}
    item_id = col["item_id"].to_numpy(zero_copy_only=False)
    window = col["window_start"].to_numpy(zero_copy_only=False)
    label = col["label"].to_numpy(zero_copy_only=False)
    category = col["top_category"].to_numpy(zero_copy_only=False)
    week_off = col["weeks"].offsets.to_numpy(zero_copy_only=False)
    wk = col["weeks"].values
    field = dict(zip([wk.type.field(i).name for i in range(wk.type.num_fields)], wk.flatten(),
                     strict=True))

    def row_error(row: int, what: str) -> ContractError:
        return ContractError(f"{name}: item {int(item_id[row])} window {int(window[row])}: {what}")

    counts = np.diff(week_off)
    bad = np.flatnonzero(counts != history_weeks)
    if bad.size:
        raise row_error(bad[0], f"{counts[bad[0]]} weeks, the manifest says {history_weeks}")
    item_x = np.stack([field[f].to_numpy(zero_copy_only=False).astype(np.float32)
                       for f in contract.ITEM_FEATURES], axis=1)  # (rows * H, 4)
    user_off, user_vals = _list_parts(field["users"])
    ux_off, ux_vals = _list_parts(field["user_x"])
    src_off, src_vals = _list_parts(field["edge_src"])
    dst_off, dst_vals = _list_parts(field["edge_dst"])
    ex_off, ex_vals = _list_parts(field["edge_x"])
    _check_weeks(week_off, user_off, ux_off, src_off, dst_off, ex_off, src_vals, dst_vals,
                 row_error)

    out = []
    for row in range(table.num_rows):
        last = week_off[row + 1]
        span = range(last - weeks, last)
        graphs = []
        for j in span:
            users = user_vals[user_off[j]:user_off[j + 1]]
            ux = ux_vals[ux_off[j]:ux_off[j + 1]].reshape(-1, USER_DIM)
            ei = np.stack([src_vals[src_off[j]:src_off[j + 1]],
                           dst_vals[dst_off[j]:dst_off[j + 1]]]).astype(np.int64)
            ex = ex_vals[ex_off[j]:ex_off[j + 1]].reshape(-1, EDGE_DIM)
            graphs.append(cap_users(users, ux, ei, ex, max_users))
        out.append(RiseNetExample(
            item_id=int(item_id[row]),
            window_start=int(window[row]),
            label=int(label[row]),
            category=int(category[row]),
            item_x=item_x[last - weeks:last],
            users=[g[0] for g in graphs],
            user_x=[g[1] for g in graphs],
            edge_index=[g[2] for g in graphs],
            edge_x=[g[3] for g in graphs],
        ))
    return out


def _check_weeks(week_off, user_off, ux_off, src_off, dst_off, ex_off, src, dst, row_error):
    """Feature lengths and edge endpoints of every stored week, without a loop over weeks."""
    n_users = np.diff(user_off)
    n_edges = np.diff(src_off)
    row_of_week = np.repeat(np.arange(len(week_off) - 1), np.diff(week_off))
    checks = (
        (np.diff(ux_off) != USER_DIM * n_users, f"user_x is not {USER_DIM} values per user"),
        (np.diff(dst_off) != n_edges, "edge_src and edge_dst differ in length"),
        (np.diff(ex_off) != EDGE_DIM * n_edges, f"edge_x is not {EDGE_DIM} values per edge"),
    )
    for bad, what in checks:
        if bad.any():
            week = int(np.flatnonzero(bad)[0])
            raise row_error(row_of_week[week], f"stored week {week - week_off[row_of_week[week]]}"
                                               f": {what}")
    week_of_edge = np.repeat(np.arange(len(n_edges)), n_edges)
    limit = n_users[week_of_edge]
    src = src[src_off[0]:src_off[-1]]
    dst = dst[dst_off[0]:dst_off[-1]]
    bad = (src < 0) | (src >= limit) | (dst < 0) | (dst >= limit)
    if bad.any():
        week = int(week_of_edge[np.flatnonzero(bad)[0]])
        raise row_error(row_of_week[week], f"stored week {week - week_off[row_of_week[week]]}: "
                                           "an edge endpoint is not one of the week's users")


def collate_examples(examples: Sequence[RiseNetExample]) -> dict[str, Any]:
    """Examples -> the batch dict of the module docstring."""
    weeks = len(examples[0].users)
    item_x = np.stack([ex.item_x for ex in examples]).astype(np.float32)  # (B, T, 4)
    return {
        "x_item": torch.from_numpy(np.log1p(item_x)),
        "category": torch.tensor([ex.category for ex in examples], dtype=torch.long),
        "graphs": [Batch.from_data_list([ex.week_data(t) for ex in examples])
                   for t in range(weeks)],
        "scale_next": torch.from_numpy(np.ascontiguousarray(item_x[:, 1:, 3])),  # (B, T-1)
        "y": torch.tensor([ex.label for ex in examples], dtype=torch.float32),
        "item_id": torch.tensor([ex.item_id for ex in examples], dtype=torch.long),
        "window_start": torch.tensor([ex.window_start for ex in examples], dtype=torch.long),
    }


def best_threshold(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(threshold, F1): the cut (positive when score >= threshold) with the highest F1 over
    the split; ties go to the highest cut. Without positives: (0.5, 0.0)."""
    positives = int(y.sum())
    if positives == 0 or y.size == 0:
        return 0.5, 0.0
    order = np.argsort(-score, kind="stable")
    s, hits = score[order], y[order]
    tp = np.cumsum(hits)
    called = np.arange(1, y.size + 1)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each distinct score
    f1 = 2 * tp[ends] / (called[ends] + positives)
    best = int(np.argmax(f1))
    return float(s[ends[best]]), float(f1[best])


def metrics_at(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """F1, precision and recall of calling ``score >= threshold`` positive (0 when undefined)."""
    called = score >= threshold
    tp = float((called & (y == 1)).sum())
    precision = tp / called.sum() if called.any() else 0.0
    recall = tp / y.sum() if y.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": float(precision), "recall": float(recall)}


def _ranking(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if y.size == 0 or y.min() == y.max():
        return {"auc_pr": math.nan, "auc_roc": math.nan}
    return {"auc_pr": float(average_precision_score(y, score)),
            "auc_roc": float(roc_auc_score(y, score))}


def keep_negatives(table: pa.Table, fraction: float) -> pa.Array:
    """Mask keeping every positive and a fixed ``fraction`` of the negatives, chosen by a hash
    of (item_id, window_start) so every seed and rank sees the same subset."""
    item = table.column("item_id").to_numpy().astype(np.uint64)
    window = table.column("window_start").to_numpy().astype(np.uint64)
    h = (item * np.uint64(0x9E3779B97F4A7C15) + window * np.uint64(0xBF58476D1CE4E5B9))
    h ^= h >> np.uint64(31)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(29)
    u = (h >> np.uint64(11)).astype(np.float64) / float(2**53)
    return pa.array((table.column("label").to_numpy() == 1) | (u < fraction))


@register_task("risenet")
class RiseNetTask(Task):
    """(item, window) rows of ``shards/risenet``, scored by F1 at the val threshold.

    Options (``--opt key=value``): the fields of ``RiseNetTask.Options``.
    """

    primary_metric = "f1"

    @dataclass
    class Options:
        #: T, how many of the stored weeks the model reads (the last T, 1..history_weeks)
        weeks: int = 4
        #: keep at most this many users per week, those with the most share edges (0: all)
        max_users: int = 0
        #: examples per scoring batch
        eval_batch_size: int = 256
        #: the fraction of the train split's negatives kept (a fixed subset, the same for every
        #: seed); rising stars are rare, so a large world trains as well on a tenth
        train_negatives: float = 1.0

        def __post_init__(self) -> None:
            for key, low in (("weeks", 1), ("max_users", 0), ("eval_batch_size", 1)):
                if getattr(self, key) < low:
                    raise OptionError(f"task 'risenet' option {key} must be >= {low}, "
                                      f"got {getattr(self, key)}")
            if not 0 < self.train_negatives <= 1:
                raise OptionError("task 'risenet' option train_negatives must be in (0, 1], "
                                  f"got {self.train_negatives}")

    def __init__(self, lake: str, dataset: str | None = None, **options: Any):
        super().__init__(lake, dataset, **options)
        shard = contract.SHARD_TABLE if dataset is None else f"{contract.SHARD_TABLE}/{dataset}"
        self.table = Path(lake) / "shards" / shard
        self.manifest_table = Path(lake) / "shards" / contract.MANIFEST_TABLE
        self._manifest: dict[str, Any] | None = None
        #: the F1-maximising threshold of the last val split scored (None before any)
        self.val_threshold: float | None = None

    def manifest(self) -> dict[str, Any]:
        """The manifest's json, checked: schema version, feature names, ``weeks`` <= H."""
        if self._manifest is not None:
            return self._manifest
        rows = lakeio.read_table(self.manifest_table)
        if rows.num_rows != 1:
            raise ContractError(f"{self.manifest_table}: expected one manifest row, "
                                f"found {rows.num_rows}")
        info = json.loads(rows.column("json")[0].as_py())
        version = (rows.column("schema_version")[0].as_py()
                   if "schema_version" in rows.column_names else info.get("schema_version"))
        if version != contract.SCHEMA_VERSION:
            raise ContractError(f"{self.manifest_table}: schema_version {version}, this reader "
                                f"knows {contract.SCHEMA_VERSION}")
        for key, names in (("user_features", contract.USER_FEATURES),
                           ("edge_features", contract.EDGE_FEATURES)):
            if key in info and tuple(info[key]) != names:
                raise ContractError(f"{self.manifest_table}: {key} {info[key]}, this reader "
                                    f"knows {list(names)}")
        if "history_weeks" not in info:
            raise ContractError(f"{self.manifest_table}: no history_weeks in the manifest")
        history = int(info["history_weeks"])
        if self.options.weeks > history:
            raise OptionError(f"task 'risenet' option weeks must be between 1 and {history} "
                              f"(the shards' history_weeks), got {self.options.weeks}")
        self._manifest = info
        return info

    def _train_counts(self) -> tuple[int, int]:
        """(examples, positives) of the train split: the manifest's counts, else a scan of the
        two columns."""
        counts = (self.manifest().get("counts") or {}).get("train")
        if isinstance(counts, dict):
            values = {str(k): int(v) for k, v in counts.items()}
            return sum(values.values()), values.get("1", 0)
        labels = lakeio.read_table(self.table, columns=["label"],
                                   filter=ds.field("split") == "train").column("label")
        return len(labels), int(np.asarray(labels.to_numpy(zero_copy_only=False)).sum())

    def meta(self) -> dict[str, Any]:
        m = self.manifest()
        categories = m.get("top_categories", 0)
        examples, positives = self._train_counts()
        return {
            "user_dim": USER_DIM,
            "edge_dim": EDGE_DIM,
            "item_dim": ITEM_DIM,
            "weeks": self.options.weeks,
            "categories": len(categories) if isinstance(categories, list) else int(categories),
            "pos_rate": positives / kept if (kept := positives + (examples - positives)
                                             * self.options.train_negatives) else 0.0,
        }

    def load_split(self, split: str) -> RiseNetSplit:
        """The split's examples ordered by (window_start, item_id).

        Raises:
            ContractError: the shards or their manifest do not match ``contracts.risenet``.
            ValueError: the split holds no rising star (F1 and the val threshold need one).
        """
        m = self.manifest()
        check_schema(str(self.table), lakeio.dataset(self.table).schema, READ)
        table = lakeio.read_table(self.table, columns=list(READ.names),
                                  filter=ds.field("split") == split)
        table = table.sort_by([("window_start", "ascending"), ("item_id", "ascending")])
        if split == "train" and self.options.train_negatives < 1:
            table = table.filter(keep_negatives(table, self.options.train_negatives))
        if table.num_rows == 0 or not pc.any(pc.equal(table.column("label"), 1)).as_py():
            windows = sorted(set(table.column("window_start").to_pylist()))
            raise ValueError(f"{self.table}: split {split!r} has no rising star (label 1) among "
                             f"its {table.num_rows} examples (windows {windows}); F1 and the "
                             "val threshold need at least one")
        out = RiseNetSplit(examples_from_arrow(
            table, int(m["history_weeks"]), self.options.weeks, self.options.max_users,
            str(self.table)))
        out.split = split
        return out

    def collate(self, examples: list[RiseNetExample]) -> dict[str, Any]:
        return collate_examples(examples)

    def scores(
        self, model: ShardModel, examples: Sequence[RiseNetExample], device: torch.device
    ) -> np.ndarray:
        return predict_in_batches(self, model, examples, device, self.options.eval_batch_size)

    def example_scores(
        self, model: ShardModel, examples: Sequence[RiseNetExample], device: torch.device
    ) -> dict[str, np.ndarray]:
        return binary_scores([ex.example_id for ex in examples], [ex.label for ex in examples],
                             self.scores(model, examples, device))

    def evaluate(
        self, model: ShardModel, examples: Sequence[RiseNetExample], device: torch.device
    ) -> dict[str, float]:
        score = self.scores(model, examples, device).astype(np.float64)
        y = np.array([ex.label for ex in examples], dtype=np.int64)
        own, f1_best = best_threshold(y, score)
        if getattr(examples, "split", "") == "val":
            self.val_threshold = own
        threshold = self.val_threshold if self.val_threshold is not None else own
        return {
            **metrics_at(y, score, threshold),
            **_ranking(y, score),
            "threshold": threshold,
            "f1_best": f1_best,
            "n": float(y.size),
            "positive_rate": float(y.mean()) if y.size else 0.0,
        }
