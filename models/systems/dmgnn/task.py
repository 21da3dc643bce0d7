"""The ``dmgnn`` task: predict the next social interactions and the users' consumption tiers
from a temporal heterogeneous graph (DM-GNN's two tasks).

Shards: the ``edges``, ``attributes`` and ``tiers`` tables of ``contracts.dmgnn`` (and its
manifest when present), read with pyarrow alone (``models.lakeio``) and checked against the
contract, then row by row (``models.systems.dmgnn.stream``: an ``EventStreamError`` names the
table, row and column; ``EventOrderError`` for an event out of time order, ``UnknownTypeError``
for a type outside the vocabularies).

Protocol (TGB / TGAT): the edge stream is cut by time at its 70 % and 85 % events (``train``
before the first cut, ``val`` up to the second, ``test`` after); a tier label belongs to the
split its query time falls in, the query time being the window's start (``tier_at=start``, the
default: a forecast of the tier the coming window earns) or its end (``tier_at=end``: the
embedding sees the window's own payments, which make the tier). Every link
event gets one fixed negative destination, and val / test events also ``hist_negatives``
historical ones (``models.systems.dmgnn.graph``), all hash-seeded by ``seed``.

Leak guard: an example's embedding is built from the events strictly before its query time
(the event's own time; a tier's window end or start), looked up in the whole stream; events at
or after it never enter. The trainer's sampler shuffles examples, so the task follows TGAT
rather than TGN's ordered batches: no lookup depends on which events came before in the batch
order. ``evaluate`` still walks each split in time order.

Batch (a dict, what every ``dmgnn`` model consumes): B_l link events, K historical negatives
each (0 on ``train``), B_t tier labels, Q = (3 + K) B_l + B_t queries in the order
[sources, destinations, negatives, historical negatives (event-major), tier users]:
    n_link, n_hist, n_tier: ints B_l, K, B_t.
    node_0 (Q,) int64 and x_0 (Q, F) float32: the queries and their features at query time.
    for level i = 1..L (L = ``layers``), each query's neighbours unrolled to k^i slots:
        node_i, code_i (Q, k^i) int64; dt_i (Q, k^i) float32, the age in ``time_unit_hours``
        before its parent's time; mask_i (Q, k^i) bool; x_i (Q, k^i, F) float32 features at
        the neighbour's event time (a level-i node's own neighbours are those before it).
    tier (B_t,) int64 labels 0..4; event_id (B_l,) int64.

Scoring (``evaluate``, dict in, dict out): link ``auc`` and ``ap`` of the positives against
their fixed negatives, ``mrr`` of each positive among its historical negatives (ties count
half, as TGB's evaluator); tier ``macro_f1`` and ``accuracy``; ``decay_lambda`` when the model
has one. The primary metric is ``auc`` (``macro_f1`` when only tiers are trained).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts import SPLITS, ContractError, check_schema
from contracts import dmgnn as contract
from models import lakeio
from models.base import OptionError, ShardModel, Task, binary_scores, register_task, to_device
from models.systems.dmgnn.graph import (
    PastDestinations,
    TemporalGraph,
    fixed_negatives,
    historical_negatives,
)
from models.systems.dmgnn.stream import Stream, stream_from_arrow

OBJECTIVES = {"both": ("link", "tier"), "link": ("link",), "tier": ("tier",)}
TIER_AT = ("end", "start")
HOUR_MS = 3_600_000


@dataclass
class SplitStore:
    """One split's link events (in stream order) then its tier labels (by query time)."""

    name: str
    graph: TemporalGraph
    event_id: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    ts: np.ndarray
    neg: np.ndarray  # (n_link,) the fixed negative
    hist: np.ndarray  # (n_link, K) historical negatives (K = 0 on train)
    hist_past: np.ndarray  # (n_link, K) True where a negative is a past destination
    tier_user: np.ndarray
    tier_time: np.ndarray  # the query time
    tier: np.ndarray  # 0-based class

    @property
    def n_link(self) -> int:
        return len(self.event_id)

    def __len__(self) -> int:
        return self.n_link + len(self.tier_user)


class DmgnnExample:
    """Example ``index`` of ``store``: a link event when below ``n_link``, else a tier label."""

    __slots__ = ("index", "store")

    def __init__(self, store: SplitStore, index: int):
        self.store, self.index = store, index


class DmgnnSplit(Sequence):
    """The examples of one split, made on access from its ``SplitStore``."""

    def __init__(self, store: SplitStore):
        self.store = store
        self.split = store.name

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [DmgnnExample(self.store, j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return DmgnnExample(self.store, i)


def neighbourhood(graph: TemporalGraph, nodes: np.ndarray, times: np.ndarray, k: int,
                  layers: int, time_unit: float) -> dict[str, Any]:
    """The ``node_i`` / ``code_i`` / ``dt_i`` / ``mask_i`` / ``x_i`` tensors of the batch for
    queries ``(nodes, times)``, levels 0..``layers``."""
    q = len(nodes)
    out: dict[str, Any] = {"node_0": torch.from_numpy(nodes.astype(np.int64)),
                           "x_0": torch.from_numpy(graph.features(nodes, times))}
    parent_node, parent_time = nodes.astype(np.int64), times.astype(np.int64)
    parent_mask = np.ones(len(nodes), bool)
    for level in range(1, layers + 1):
        found = graph.neighbors(parent_node, parent_time, k)
        mask = found.mask & parent_mask[:, None]  # a padded parent has no neighbours
        dt = (parent_time[:, None] - found.ts) / time_unit
        nodes_i, times_i = found.node.reshape(-1), found.ts.reshape(-1)
        x = graph.features(nodes_i, times_i) * mask.reshape(-1, 1)
        width = k ** level
        out[f"node_{level}"] = torch.from_numpy(np.where(mask, found.node, 0).reshape(q, width))
        out[f"code_{level}"] = torch.from_numpy(np.where(mask, found.code, 0).reshape(q, width))
        out[f"dt_{level}"] = torch.from_numpy(
            np.where(mask, dt, 0.0).astype(np.float32).reshape(q, width))
        out[f"mask_{level}"] = torch.from_numpy(mask.reshape(q, width))
        out[f"x_{level}"] = torch.from_numpy(x.reshape(q, width, -1))
        parent_node, parent_time, parent_mask = nodes_i, times_i, mask.reshape(-1)
    return out


def collate_examples(examples: Sequence[DmgnnExample], k: int, layers: int, time_unit: float
                     ) -> dict[str, Any]:
    """Examples (of one split) -> the batch dict of the module docstring."""
    store = examples[0].store
    if any(ex.store is not store for ex in examples):
        raise ValueError("a dmgnn batch mixes examples of different splits")
    idx = np.fromiter((ex.index for ex in examples), dtype=np.int64, count=len(examples))
    link, tier = idx[idx < store.n_link], idx[idx >= store.n_link] - store.n_link
    hist = store.hist[link]
    nodes = np.concatenate([store.src[link], store.dst[link], store.neg[link], hist.reshape(-1),
                            store.tier_user[tier]])
    t = store.ts[link]
    times = np.concatenate([t, t, t, np.repeat(t, hist.shape[1]), store.tier_time[tier]])
    batch = neighbourhood(store.graph, nodes, times, k, layers, time_unit)
    batch.update(n_link=len(link), n_hist=hist.shape[1], n_tier=len(tier),
                 tier=torch.from_numpy(store.tier[tier].astype(np.int64)),
                 event_id=torch.from_numpy(store.event_id[link]))
    return batch


def link_metrics(pos: np.ndarray, neg: np.ndarray, hist: np.ndarray) -> dict[str, float]:
    """AUC and AP of positives vs their negatives; MRR of each positive among its row of
    ``hist`` (ties half, TGB's optimistic / pessimistic mean). NaN where undefined."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = {"auc": math.nan, "ap": math.nan, "mrr": math.nan}
    if len(pos):
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        s = np.r_[pos, neg]
        out["auc"] = float(roc_auc_score(y, s))
        out["ap"] = float(average_precision_score(y, s))
    if hist.size:
        above = (hist > pos[:, None]).sum(1) + 0.5 * (hist == pos[:, None]).sum(1)
        out["mrr"] = float(np.mean(1.0 / (1.0 + above)))
    return out


def tier_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Macro-F1 over the tiers present in ``y`` or ``predicted``, and accuracy."""
    from sklearn.metrics import f1_score

    if not len(y):
        return {"macro_f1": math.nan, "accuracy": math.nan}
    return {"macro_f1": float(f1_score(y, predicted, average="macro")),
            "accuracy": float(np.mean(y == predicted))}


@register_task("dmgnn")
class DmgnnTask(Task):
    """Link events and tier labels of ``shards/dmgnn`` (or ``shards/dmgnn/<dataset>``).

    Options (``--opt key=value``): the fields of ``DmgnnTask.Options``.
    """

    primary_metric = "auc"

    @dataclass
    class Options:
        #: what is trained and scored: both (multi-task), link or tier (single task)
        objective: str = "both"
        #: most recent neighbours kept per node and hop
        num_neighbors: int = 10
        #: hops of the neighbourhood (the encoder's attention layers)
        layers: int = 2
        #: historical negatives per val / test event (for MRR)
        hist_negatives: int = 10
        #: seed of the fixed and historical negatives
        seed: int = 0
        #: shares of the edge stream in val and test (the newest events)
        val_fraction: float = 0.15
        test_fraction: float = 0.15
        #: a tier's query time: the window's start (a forecast, the default) or its end (the
        #: window's own payments seen: the tier is then nearly read off the features)
        tier_at: str = "start"
        #: span of the windowed attribute summaries, in days
        attr_window_days: float = float(contract.WINDOW_DAYS)
        #: the unit of the ages the model sees (and of its decay rate), in hours
        time_unit_hours: float = 24.0
        #: examples per scoring batch
        eval_batch_size: int = 256

        def __post_init__(self) -> None:
            def bad(what: str) -> OptionError:
                return OptionError(f"task 'dmgnn' option {what}")

            if self.objective not in OBJECTIVES:
                raise bad(f"objective must be one of {sorted(OBJECTIVES)}, got "
                          f"{self.objective!r}")
            if self.tier_at not in TIER_AT:
                raise bad(f"tier_at must be one of {TIER_AT}, got {self.tier_at!r}")
            if self.num_neighbors < 1 or self.layers < 1 or self.eval_batch_size < 1:
                raise bad("num_neighbors, layers and eval_batch_size must be >= 1")
            if self.hist_negatives < 0:
                raise bad(f"hist_negatives must be >= 0, got {self.hist_negatives}")
            if not (0 < self.val_fraction and 0 < self.test_fraction
                    and self.val_fraction + self.test_fraction < 1):
                raise bad("val_fraction and test_fraction must be > 0 and sum below 1")
            if self.attr_window_days <= 0 or self.time_unit_hours <= 0:
                raise bad("attr_window_days and time_unit_hours must be > 0")

    def __init__(self, lake: str, dataset: str | None = None, **options: Any):
        super().__init__(lake, dataset, **options)
        self.paths = {name: Path(lake) / "shards" / path
                      for name, path in contract.tables(dataset).items()}
        self.heads = OBJECTIVES[self.options.objective]
        self.primary_metric = "auc" if "link" in self.heads else "macro_f1"
        self._stream: Stream | None = None
        self._graph: TemporalGraph | None = None
        self._past: PastDestinations | None = None

    def manifest(self) -> dict[str, Any]:
        """The manifest's ``json`` (empty without a manifest); its schema version checked."""
        try:
            rows = lakeio.read_table(self.paths["manifest"])
        except FileNotFoundError:
            return {}
        if rows.num_rows != 1:
            raise ContractError(f"{self.paths['manifest']}: holds {rows.num_rows} rows, not 1")
        version = rows.column("schema_version")[0].as_py()
        if version != contract.SCHEMA_VERSION:
            raise ContractError(f"{self.paths['manifest']}: schema_version {version}, this "
                                f"reader knows {contract.SCHEMA_VERSION}")
        return json.loads(rows.column("json")[0].as_py())

    def stream(self) -> Stream:
        """The checked tables (read once)."""
        if self._stream is None:
            manifest = self.manifest()
            tables = {}
            for name in ("edges", "attributes", "tiers"):
                path, schema = self.paths[name], contract.SCHEMA[name]
                check_schema(str(path), lakeio.dataset(path).schema, schema)
                tables[name] = lakeio.read_table(path, columns=list(schema.names))
            names = {name: str(path) for name, path in self.paths.items()}
            self._stream = stream_from_arrow(tables["edges"], tables["attributes"],
                                             tables["tiers"], names,
                                             int(manifest.get("num_nodes", 0)))
        return self._stream

    def graph(self) -> TemporalGraph:
        if self._graph is None:
            s = self.stream()
            window = int(self.options.attr_window_days * 24 * HOUR_MS)
            self._graph = TemporalGraph(s.src, s.dst, s.ts, s.edge_type, s.attr_user, s.attr_ts,
                                        s.attr_type, s.attr_amount, s.num_nodes, window)
        return self._graph

    def cuts(self) -> tuple[int, int]:
        """(first val time, first test time): the times of the stream's 70 % and 85 % events;
        an event belongs to the last split whose first time it reaches."""
        ts = self.stream().ts
        if not len(ts):
            raise ContractError(f"{self.paths['edges']}: the edge stream is empty")
        o = self.options
        val = int(ts[min(len(ts) - 1, int(len(ts) * (1 - o.val_fraction - o.test_fraction)))])
        test = int(ts[min(len(ts) - 1, int(len(ts) * (1 - o.test_fraction)))])
        return val, test

    def split_of(self, times: np.ndarray) -> np.ndarray:
        """Each time's split index (0 train, 1 val, 2 test)."""
        return np.searchsorted(np.array(self.cuts()), times, "right")

    def meta(self) -> dict[str, Any]:
        s, o = self.stream(), self.options
        train = self.split_of(s.ts) == 0
        return {
            "num_nodes": s.num_nodes, "heads": list(self.heads), "num_neighbors": o.num_neighbors,
            "layers": o.layers, "time_unit_hours": o.time_unit_hours,
            # the training-period snapshot, for the static baselines
            "train_src": s.src[train], "train_dst": s.dst[train],
            "train_type": s.edge_type[train],
        }

    def load_split(self, split: str) -> DmgnnSplit:
        """The split's link events in stream order, then its tier labels by query time.

        Raises:
            ContractError: the shards do not match ``contracts.dmgnn`` (an
                ``EventStreamError`` naming table, row and column for a bad row).
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {SPLITS}")
        s, o, index = self.stream(), self.options, SPLITS.index(split)
        link = np.flatnonzero(self.split_of(s.ts) == index) if "link" in self.heads else []
        link = np.asarray(link, np.int64)
        pool = np.unique(s.dst)
        ids, src, dst, ts = s.event_id[link], s.src[link], s.dst[link], s.ts[link]
        neg = fixed_negatives(ids, dst, pool, o.seed)
        k = o.hist_negatives if split != "train" else 0
        if k and self._past is None:
            self._past = PastDestinations(s.src, s.dst, s.ts, s.num_nodes)
        hist, past = historical_negatives(ids, src, dst, ts, self._past, pool, k, o.seed)
        when = s.tier_end if o.tier_at == "end" else s.tier_start
        tiers = np.flatnonzero(self.split_of(when) == index) if "tier" in self.heads else []
        tiers = np.asarray(tiers, np.int64)
        tiers = tiers[np.lexsort((s.tier_user[tiers], when[tiers]))]
        store = SplitStore(split, self.graph(), ids, src, dst, ts, neg, hist, past,
                           s.tier_user[tiers], when[tiers], s.tier[tiers] - 1)
        return DmgnnSplit(store)

    def collate(self, examples: list[DmgnnExample]) -> dict[str, Any]:
        o = self.options
        return collate_examples(examples, o.num_neighbors, o.layers, o.time_unit_hours * HOUR_MS)

    @torch.no_grad()
    def scores(self, model: ShardModel, examples: Sequence[DmgnnExample], device: torch.device
               ) -> dict[str, np.ndarray]:
        """``pos``, ``neg`` (n_link,), ``hist`` (n_link, K) link probabilities and ``tier``
        (n_tier, 5) class probabilities, the examples taken in order in scoring batches."""
        was_training = model.training
        model.eval()
        parts: dict[str, list[np.ndarray]] = {}
        size = self.options.eval_batch_size
        for begin in range(0, len(examples), size):
            batch = to_device(self.collate(list(examples[begin:begin + size])), device)
            for key, value in model.predict(batch).items():
                parts.setdefault(key, []).append(value.detach().float().cpu().numpy())
        model.train(was_training)
        k = self.options.hist_negatives
        empty = {"pos": np.zeros(0), "neg": np.zeros(0), "hist": np.zeros((0, k)),
                 "tier": np.zeros((0, contract.NUM_TIERS))}
        return {key: np.concatenate(parts[key]) if key in parts else empty[key] for key in empty}

    def evaluate(self, model: ShardModel, examples: Sequence[DmgnnExample], device: torch.device
                 ) -> dict[str, float]:
        scored = self.scores(model, examples, device)
        out: dict[str, float] = {"n_link": float(len(scored["pos"])),
                                 "n_tier": float(len(scored["tier"]))}
        if "link" in self.heads:
            out.update(link_metrics(scored["pos"], scored["neg"], scored["hist"]))
        if "tier" in self.heads:
            labels = np.array([ex.store.tier[ex.index - ex.store.n_link] for ex in examples
                               if ex.index >= ex.store.n_link], dtype=np.int64)
            out.update(tier_metrics(labels, scored["tier"].argmax(1)))
        if hasattr(model, "decay_rate"):
            out["decay_lambda"] = float(model.decay_rate())
        return out

    def example_scores(self, model: ShardModel, examples: Sequence[DmgnnExample],
                       device: torch.device) -> dict[str, np.ndarray] | None:
        """Each link event's positive (id ``2 * event_id``) and fixed negative (``2 * event_id
        + 1``) with their scores; None when links are not scored."""
        if "link" not in self.heads:
            return None
        scored = self.scores(model, examples, device)
        ids = np.array([ex.store.event_id[ex.index] for ex in examples
                        if ex.index < ex.store.n_link], dtype=np.int64)
        return binary_scores(np.r_[2 * ids, 2 * ids + 1],
                             np.r_[np.ones(len(ids)), np.zeros(len(ids))].astype(int),
                             np.r_[scored["pos"], scored["neg"]])
