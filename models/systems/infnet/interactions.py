"""What the train split says about users and items, for the recommender baselines' id maps and
item graphs (``bpr``, ``srgnn``, ``mgnn_spred``, ``gce_gnn``, ``eatnn``, ``graphrec``).

Those models need every training query before the first step (a vocabulary, a purchase list,
an item-item graph); the trainer builds a model from ``Task.meta()`` alone, so the task hands
them ``meta["train_interactions"]``, a callable returning this object, and each model builds
its tables in ``__init__`` as buffers (they travel in the checkpoint).

Records at or after ``cutoff`` (the first prediction day) are dropped from what the graphs see:
a train query's history can hold the purchase that is a validation query's label.
All arrays are numpy; nothing here imports the lake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from contracts.infnet import KIND_PURCHASE


@dataclass
class TrainInteractions:
    """The train split's queries and the receivers' history records, flat.

    Args:
        user_id, item_id, label: (Q,) per train query.
        node_ids: (N,) every user id in the train queries' sub-graphs.
        record_query: (H,) the query each history record belongs to (index into the above).
        record_item, record_kind: (H,) item id and kind of each record, each query's oldest
            first; only records before ``cutoff``.
    """

    COLUMNS = ("query_id", "user_id", "item_id", "label", "node_ids", "history_items",
               "history_kinds", "history_ts")

    user_id: np.ndarray
    item_id: np.ndarray
    label: np.ndarray
    node_ids: np.ndarray
    record_query: np.ndarray
    record_item: np.ndarray
    record_kind: np.ndarray

    @classmethod
    def from_arrow(cls, table: pa.Table, cutoff: str | None = None) -> TrainInteractions:
        """From shard rows (``COLUMNS``); ``cutoff`` an ISO date (UTC midnight) or None."""
        col = {name: _one(table.column(name)) for name in cls.COLUMNS}

        def flat(name: str) -> tuple[np.ndarray, pa.Array]:
            offsets = col[name].offsets.to_numpy()  # of a sliced array: shifted, and
            return offsets - offsets[0], col[name].flatten()  # flatten() honours the slice

        offsets, items = flat("history_items")
        _, kinds = flat("history_kinds")
        _, stamps = flat("history_ts")
        keep = np.ones(len(items), dtype=bool)
        if cutoff is not None:
            micros = stamps.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(
                zero_copy_only=False)
            day = dt.datetime.fromisoformat(cutoff).replace(tzinfo=dt.UTC)
            keep = micros < int(day.timestamp()) * 10**6
        query = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        _, nodes = flat("node_ids")

        def numbers(arr: Any) -> np.ndarray:
            return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)

        return cls(
            user_id=numbers(col["user_id"]),
            item_id=numbers(col["item_id"]),
            label=numbers(col["label"]),
            node_ids=numbers(nodes),
            record_query=query[keep],
            record_item=numbers(items)[keep],
            record_kind=numbers(kinds)[keep],
        )

    @classmethod
    def from_examples(cls, examples: Sequence[Any]) -> TrainInteractions:
        """From ``InfNetExample``s (every record kept): small hand-made inputs."""
        lengths = [len(ex.history_items) for ex in examples]
        cat = (lambda xs: np.concatenate(xs).astype(np.int64) if xs else
               np.zeros(0, np.int64))
        return cls(
            user_id=np.array([ex.user_id for ex in examples], dtype=np.int64),
            item_id=np.array([ex.item_id for ex in examples], dtype=np.int64),
            label=np.array([ex.label for ex in examples], dtype=np.int64),
            node_ids=cat([ex.node_ids for ex in examples]),
            record_query=np.repeat(np.arange(len(examples)), lengths).astype(np.int64),
            record_item=cat([ex.history_items for ex in examples]),
            record_kind=cat([ex.history_kinds for ex in examples]),
        )

    # -- vocabularies ------------------------------------------------------------------------

    def query_users(self) -> np.ndarray:
        """Sorted distinct ids of the train queries' receivers."""
        return np.unique(self.user_id)

    def users(self) -> np.ndarray:
        """Sorted distinct ids of every user in the train queries and their sub-graphs."""
        return np.unique(np.concatenate([self.user_id, self.node_ids]))

    def items(self) -> np.ndarray:
        """Sorted distinct ids of the train queries' items and history items."""
        return np.unique(np.concatenate([self.item_id, self.record_item]))

    # -- interactions ------------------------------------------------------------------------

    def purchases(self, labels: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (user id, item id) purchases: history purchases and, with ``labels``, the
        items of the train queries labelled 1."""
        bought = self.record_kind == KIND_PURCHASE
        users = [self.user_id[self.record_query[bought]]]
        items = [self.record_item[bought]]
        if labels:
            users.append(self.user_id[self.label == 1])
            items.append(self.item_id[self.label == 1])
        pairs = np.unique(np.stack([np.concatenate(users), np.concatenate(items)]), axis=1)
        return pairs[0], pairs[1]

    def records(self, kinds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, item id, kind) of the history records of ``kinds``, each query's
        oldest first."""
        mask = np.isin(self.record_kind, np.asarray(kinds))
        return self.record_query[mask], self.record_item[mask], self.record_kind[mask]

    def transitions(self, kinds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(from item, to item) of consecutive records of ``kinds`` inside each history."""
        query, item, _ = self.records(kinds)
        same = query[1:] == query[:-1]
        return item[:-1][same], item[1:][same]

    def cooccurrences(self, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (item a, item b, count): a and b at most ``window`` records apart inside one
        history, a != b, both orders counted."""
        src, dst = [], []
        for gap in range(1, window + 1):
            same = self.record_query[gap:] == self.record_query[:-gap]
            a, b = self.record_item[:-gap][same], self.record_item[gap:][same]
            keep = a != b
            src += [a[keep], b[keep]]
            dst += [b[keep], a[keep]]
        if not src:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        pairs, counts = np.unique(np.stack([np.concatenate(src), np.concatenate(dst)]), axis=1,
                                  return_counts=True)
        return pairs[0], pairs[1], counts.astype(np.int64)

    def item_users(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (item id, user id, kind) of the history records with the number of times
        each was seen: who shared, received or bought each item."""
        users = self.user_id[self.record_query]
        triples, counts = np.unique(np.stack([self.record_item, users, self.record_kind]),
                                    axis=1, return_counts=True)
        return triples[0], triples[1], triples[2], counts.astype(np.int64)


def _one(column: pa.ChunkedArray) -> pa.Array:
    if column.num_chunks == 0:
        return pa.array([], type=column.type)
    return pa.concat_arrays(column.chunks)


def top_neighbours(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, num_nodes: int,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each node's ``k`` heaviest in-neighbours as padded tables (ties: lower source first).

    Args:
        src, dst: (E,) node indices in ``[1, num_nodes)``; weight: (E,).
    Returns:
        index (num_nodes, k) int64, 0 where a node has fewer than k; weight (num_nodes, k)
        float32, 0 there.
    """
    index = np.zeros((num_nodes, k), dtype=np.int64)
    weights = np.zeros((num_nodes, k), dtype=np.float32)
    if len(src) == 0 or k == 0:
        return index, weights
    order = np.lexsort((src, -weight, dst))  # by dst, heaviest first, then lower src
    src, dst, weight = src[order], dst[order], weight[order]
    first = np.r_[0, np.flatnonzero(dst[1:] != dst[:-1]) + 1]
    rank = np.arange(len(dst)) - np.repeat(first, np.diff(np.r_[first, len(dst)]))
    keep = rank < k
    index[dst[keep], rank[keep]] = src[keep]
    weights[dst[keep], rank[keep]] = weight[keep]
    return index, weights
