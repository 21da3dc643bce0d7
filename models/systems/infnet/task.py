"""The ``infnet`` task: item-level purchase prediction from weekly Taocode diffusion sub-graphs.

Shards come from ``pipeline/systems/infnet/shards.py`` (``shards/infnet``, one row per query,
plus ``shards/infnet_manifest``, both as ``contracts.infnet`` declares). This module reads them
with pyarrow alone (``models.lakeio``), turns each query into a ``torch_geometric.data.Data``
whose nodes are the union of the query's weekly node sets (index 0 = the target user) and whose
edges carry their week, collates with ``Batch.from_data_list`` and scores a split by AUC-PR
(primary), AUC-ROC and the cold / warm AUC-PR of Table 4 (users without / with purchases before
the query).

Batch (a dict):
    graph: ``Batch`` with ``x`` (N, node_dim), ``role`` (N,), ``present`` (N, weeks) bool,
        ``edge_index`` (2, E), ``edge_attr`` (E, edge_dim), ``edge_week`` (E,), ``batch`` (N,),
        ``ptr`` (Q + 1,): the target of query q is node ``ptr[q]``; ``node_id`` (N,) user ids.
    item_x: (Q, item_dim); item_id: (Q,); user_id: (Q,); y: (Q,) float; cold: (Q,) bool.
    hist_item (Q, L) item ids, -1 past each query's length; hist_kind (Q, L) record kinds
        (``contracts.infnet.HISTORY_KINDS``), 0 past the length; hist_age (Q, L) float days
        between the record and the query; hist_len (Q,): the receiver's own records before the
        query, oldest first (L = the batch's longest history, at least 1).

``meta()["train_interactions"]`` is a callable that returns the train split's
``TrainInteractions`` (read once, on first call): the recommender baselines build their id
maps and item graphs from it in their constructor, before training starts.
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
import torch
from torch_geometric.data import Batch, Data

from contracts import check_schema
from contracts import infnet as contract
from models import lakeio
from models.base import (
    OptionError,
    ShardModel,
    Task,
    binary_scores,
    predict_in_batches,
    register_task,
)
from models.systems.infnet.interactions import TrainInteractions

#: The shard columns this reader uses (a projection of ``contracts.infnet.SHARD``).
READ = pa.schema([contract.SHARD.field(name) for name in (
    "query_id", "user_id", "item_id", "split", "label", "cold", "item_x", "node_ids",
    "node_role", "node_x", "weeks", "query_ts", "history_items", "history_kinds",
    "history_ts")])
_MICROS_PER_DAY = 86_400 * 10**6


@dataclass
class InfNetExample:
    """One query, as numpy views into its split's column buffers."""

    query_id: int
    user_id: int
    item_id: int
    label: int
    cold: bool
    item_x: np.ndarray  # (item_dim,)
    node_ids: np.ndarray  # (n,)
    node_role: np.ndarray  # (n,)
    node_x: np.ndarray  # (n, node_dim)
    week_nodes: list[np.ndarray]  # per week: indices into the node arrays
    edge_src: np.ndarray  # (E,) over all weeks
    edge_dst: np.ndarray  # (E,)
    edge_week: np.ndarray  # (E,)
    edge_attr: np.ndarray  # (E, edge_dim)
    history_items: np.ndarray  # (h,) the receiver's records, oldest first
    history_kinds: np.ndarray  # (h,)
    history_age: np.ndarray  # (h,) float32 days before the query

    def to_data(self, num_weeks: int) -> Data:
        n = len(self.node_ids)
        present = torch.zeros(n, num_weeks, dtype=torch.bool)
        for week, idx in enumerate(self.week_nodes):
            present[torch.from_numpy(idx.astype(np.int64)), week] = True
        return Data(
            x=torch.tensor(self.node_x),
            role=torch.from_numpy(self.node_role.astype(np.int64)),
            node_id=torch.tensor(self.node_ids),
            present=present,
            edge_index=torch.from_numpy(np.stack([self.edge_src, self.edge_dst]).astype(np.int64)),
            edge_attr=torch.tensor(self.edge_attr),
            edge_week=torch.from_numpy(self.edge_week.astype(np.int64)),
            num_nodes=n,
        )


def _flat(arr: pa.Array, depth: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Offsets of each list level and the flat leaf values of a ``depth``-nested list array."""
    offsets = []
    for _ in range(depth):
        offsets.append(arr.offsets.to_numpy(zero_copy_only=False))
        arr = arr.values
    return offsets, arr.to_numpy(zero_copy_only=False)


def _micros(arr: pa.Array) -> np.ndarray:
    """Timestamps (any unit) as int64 microseconds since the epoch."""
    return arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)


def examples_from_arrow(table: pa.Table, node_dim: int, edge_dim: int) -> list[InfNetExample]:
    """Shard rows -> examples without a Python loop over nested values (offsets + slices)."""
    if table.num_rows == 0:
        return []
    table = table.combine_chunks()
    col = {name: table.column(name).chunk(0) for name in table.column_names}
    (node_off,), node_ids = _flat(col["node_ids"], 1)
    _, node_role = _flat(col["node_role"], 1)
    _, node_x = _flat(col["node_x"], 2)
    node_x = node_x.astype(np.float32).reshape(-1, node_dim)
    (item_off,), item_x = _flat(col["item_x"], 1)
    item_x = item_x.astype(np.float32)
    weeks = col["weeks"]
    week_off = weeks.offsets.to_numpy()
    wk = weeks.values  # struct array, one entry per (query, week)
    week_no = wk.field("week").to_numpy(zero_copy_only=False)
    (wn_off,), wn = _flat(wk.field("nodes"), 1)
    (es_off,), es = _flat(wk.field("edge_src"), 1)
    _, ed = _flat(wk.field("edge_dst"), 1)
    _, ea = _flat(wk.field("edge_attr"), 2)
    ea = ea.astype(np.float32).reshape(-1, edge_dim)
    edge_week = np.repeat(week_no, np.diff(es_off)).astype(np.int64)
    scalars = {
        k: col[k].to_numpy(zero_copy_only=False)
        for k in ("query_id", "user_id", "item_id", "label", "cold")
    }
    (hist_off,), hist_items = _flat(col["history_items"], 1)
    _, hist_kinds = _flat(col["history_kinds"], 1)
    hist_ts = _micros(col["history_ts"].values)
    query_ts = np.repeat(_micros(col["query_ts"]), np.diff(hist_off))
    hist_age = ((query_ts - hist_ts) / _MICROS_PER_DAY).astype(np.float32)
    out = []
    for i in range(table.num_rows):
        n0, n1 = node_off[i], node_off[i + 1]
        w0, w1 = week_off[i], week_off[i + 1]
        e0, e1 = es_off[w0], es_off[w1]
        out.append(
            InfNetExample(
                query_id=int(scalars["query_id"][i]),
                user_id=int(scalars["user_id"][i]),
                item_id=int(scalars["item_id"][i]),
                label=int(scalars["label"][i]),
                cold=bool(scalars["cold"][i]),
                item_x=item_x[item_off[i]:item_off[i + 1]],
                node_ids=node_ids[n0:n1],
                node_role=node_role[n0:n1],
                node_x=node_x[n0:n1],
                week_nodes=[wn[wn_off[w]:wn_off[w + 1]] for w in range(w0, w1)],
                edge_src=es[e0:e1],
                edge_dst=ed[e0:e1],
                edge_week=edge_week[e0:e1],
                edge_attr=ea[e0:e1],
                history_items=hist_items[hist_off[i]:hist_off[i + 1]],
                history_kinds=hist_kinds[hist_off[i]:hist_off[i + 1]],
                history_age=hist_age[hist_off[i]:hist_off[i + 1]],
            )
        )
    return out


def collate_examples(examples: list[InfNetExample], num_weeks: int) -> dict[str, Any]:
    graph = Batch.from_data_list([ex.to_data(num_weeks) for ex in examples])
    return {
        "graph": graph,
        "item_x": torch.tensor(np.stack([ex.item_x for ex in examples])),
        "item_id": torch.tensor([ex.item_id for ex in examples], dtype=torch.long),
        "user_id": torch.tensor([ex.user_id for ex in examples], dtype=torch.long),
        "y": torch.tensor([ex.label for ex in examples], dtype=torch.float32),
        "cold": torch.tensor([ex.cold for ex in examples], dtype=torch.bool),
        **collate_histories(examples),
    }


def collate_histories(examples: Sequence[InfNetExample]) -> dict[str, torch.Tensor]:
    """The receivers' histories as left-aligned padded tensors plus their lengths."""
    lengths = np.array([len(ex.history_items) for ex in examples], dtype=np.int64)
    width = max(1, int(lengths.max(initial=0)))
    items = np.full((len(examples), width), -1, dtype=np.int64)
    kinds = np.zeros((len(examples), width), dtype=np.int64)
    age = np.zeros((len(examples), width), dtype=np.float32)
    for row, ex in enumerate(examples):
        n = lengths[row]
        items[row, :n] = ex.history_items
        kinds[row, :n] = ex.history_kinds
        age[row, :n] = ex.history_age
    return {
        "hist_item": torch.from_numpy(items),
        "hist_kind": torch.from_numpy(kinds),
        "hist_age": torch.from_numpy(age),
        "hist_len": torch.from_numpy(lengths),
    }


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """AUC-PR as average precision; NaN when the split holds a single class."""
    from sklearn.metrics import average_precision_score

    if y.size == 0 or y.min() == y.max():
        return math.nan
    return float(average_precision_score(y, score))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if y.size == 0 or y.min() == y.max():
        return math.nan
    return float(roc_auc_score(y, score))


def binary_metrics(y: np.ndarray, score: np.ndarray, cold: np.ndarray) -> dict[str, float]:
    """auc_pr, auc_roc, and AUC-PR of cold / warm users (Table 4), plus sizes and base rate."""
    return {
        "auc_pr": average_precision(y, score),
        "auc_roc": roc_auc(y, score),
        "auc_pr_cold": average_precision(y[cold], score[cold]),
        "auc_pr_warm": average_precision(y[~cold], score[~cold]),
        "positive_rate": float(y.mean()) if y.size else math.nan,
        "n": float(y.size),
        "n_cold": float(cold.sum()),
    }


@register_task("infnet")
class InfNetTask(Task):
    """Queries of ``shards/infnet`` (or ``shards/infnet/<dataset>``), scored by AUC-PR.

    Options (``--opt key=value``): the fields of ``InfNetTask.Options``.
    """

    primary_metric = "auc_pr"

    @dataclass
    class Options:
        #: queries per scoring batch
        eval_batch_size: int = 1024

        def __post_init__(self) -> None:
            if self.eval_batch_size < 1:
                raise OptionError(f"task 'infnet' option eval_batch_size must be >= 1, "
                                  f"got {self.eval_batch_size}")

    def __init__(self, lake: str, dataset: str | None = None, **options: Any):
        super().__init__(lake, dataset, **options)
        shard = contract.SHARD_TABLE if dataset is None else f"{contract.SHARD_TABLE}/{dataset}"
        self.table = Path(lake) / "shards" / shard
        self.manifest_table = Path(lake) / "shards" / contract.MANIFEST_TABLE
        self._manifest: dict[str, Any] | None = None
        self._interactions: TrainInteractions | None = None

    def manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            rows = lakeio.read_table(self.manifest_table, columns=["json"])
            if rows.num_rows != 1:
                raise ValueError(f"{self.manifest_table}: expected one manifest row, "
                                 f"found {rows.num_rows}")
            info = json.loads(rows.column("json")[0].as_py())
            if info.get("schema_version") != contract.SCHEMA_VERSION:
                raise ValueError(f"{self.manifest_table}: schema_version "
                                 f"{info.get('schema_version')}, this reader knows "
                                 f"{contract.SCHEMA_VERSION}")
            self._manifest = info
        return self._manifest

    def meta(self) -> dict[str, Any]:
        m = self.manifest()
        train = {k: int(v) for k, v in (m.get("counts", {}).get("train") or {}).items()}
        total = sum(train.values())
        return {
            # models start their output bias at the base rate: logit(positives / queries)
            "train_positive_rate": train.get("1", 0) / total if total else 0.5,
            "node_dim": m["node_dim"],
            "edge_dim": m["edge_dim"],
            "item_dim": m["item_dim"],
            "num_weeks": m["num_weeks"],
            "num_roles": len(contract.ROLES),
            # the last num_roles node columns are the role one-hot, the rest purchase history
            "user_feature_dim": m["node_dim"] - len(contract.ROLES),
            "pi_bins": m["edge_dim"],
            "max_user_id": m["max_user_id"],
            "max_item_id": m["max_item_id"],
            "history_len": m["history_len"],
            "train_interactions": self.train_interactions,
        }

    def train_interactions(self) -> TrainInteractions:
        """The train split's users, items and histories (``TrainInteractions``), read once.

        Records from the prediction days (``pred_start`` on) stay out of the graphs built from
        it: a train query's history may hold a validation query's purchase.
        """
        if self._interactions is None:
            check_schema(str(self.table), lakeio.dataset(self.table).schema, READ)
            table = lakeio.read_table(self.table, columns=list(TrainInteractions.COLUMNS),
                                      filter=pc.field("split") == "train")
            start = self.manifest().get("pred_start")
            self._interactions = TrainInteractions.from_arrow(
                table.sort_by("query_id"), cutoff=None if start is None else str(start))
        return self._interactions

    def load_split(self, split: str) -> Sequence[InfNetExample]:
        check_schema(str(self.table), lakeio.dataset(self.table).schema, READ)
        table = lakeio.read_table(self.table, columns=list(READ.names))
        table = table.filter(pc.equal(table.column("split"), split))
        table = table.sort_by("query_id")
        m = self.manifest()
        return examples_from_arrow(table, m["node_dim"], m["edge_dim"])

    def collate(self, examples: list[InfNetExample]) -> dict[str, Any]:
        return collate_examples(examples, self.manifest()["num_weeks"])

    def scores(
        self, model: ShardModel, examples: Sequence[InfNetExample], device: torch.device
    ) -> np.ndarray:
        return predict_in_batches(self, model, examples, device, self.options.eval_batch_size)

    def example_scores(
        self, model: ShardModel, examples: Sequence[InfNetExample], device: torch.device
    ) -> dict[str, np.ndarray]:
        return binary_scores([ex.query_id for ex in examples], [ex.label for ex in examples],
                             self.scores(model, examples, device))

    def evaluate(
        self, model: ShardModel, examples: Sequence[InfNetExample], device: torch.device
    ) -> dict[str, float]:
        score = self.scores(model, examples, device)
        y = np.array([ex.label for ex in examples], dtype=np.int64)
        cold = np.array([ex.cold for ex in examples], dtype=bool)
        return binary_metrics(y, score, cold)
