"""The temporal graph DM-GNN reads: most-recent neighbours and attribute summaries of a node
*strictly before* a time, and the seeded negatives of the link-prediction protocol.

Everything is numpy over arrays sorted once, so any (node, time) query is answered without
replaying the stream: a batch's queries need no order and a later event can never reach an
earlier query (each lookup stops at the first event at or after the query's time).

* ``TemporalGraph.neighbors(nodes, times, k)``: each node's last ``k`` interactions before its
  time (either direction), right-aligned, as the other node, the event time and an edge code
  ``1 + 2 * type + direction`` (direction 0: the node sent, 1: it received; 0 = padding).
* ``TemporalGraph.features(nodes, times)``: per attribute type, log1p of the count and of the
  amount over the last ``window`` ms and over all time, then log1p of the node's interactions,
  all strictly before the time (``FEATURE_NAMES``).
* ``fixed_negatives`` / ``historical_negatives``: hash-seeded (splitmix64 of seed, event id
  and slot), so an event's negatives depend on the seed and the event alone, not on the split
  or the batch it lands in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts import dmgnn as contract

#: Columns of ``TemporalGraph.features``.
FEATURE_NAMES = tuple(
    f"{kind}_{what}_{span}" for span in ("window", "all") for kind in contract.ATTRIBUTE_TYPES
    for what in ("count", "amount")) + ("interactions",)
NUM_FEATURES = len(FEATURE_NAMES)
#: Edge codes: 0 padding, then (type, direction) pairs.
NUM_EDGE_CODES = 1 + 2 * len(contract.EDGE_TYPES)


def mix(*parts: np.ndarray | int) -> np.ndarray:
    """splitmix64 of the parts, folded left: uniform uint64 hashes, one per broadcast element."""
    state = np.zeros(np.broadcast_shapes(*(np.shape(p) for p in parts)), dtype=np.uint64)
    for part in parts:
        state = state ^ np.asarray(part).astype(np.uint64)
        state = state + np.uint64(0x9E3779B97F4A7C15)
        state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        state = state ^ (state >> np.uint64(31))
    return state


class _Index:
    """Rows grouped by node, each group in time order, searchable by (node, time)."""

    def __init__(self, node: np.ndarray, ts: np.ndarray, num_nodes: int):
        self.order = np.lexsort((ts, node))  # stable: ties keep the stream's order
        self.times = np.unique(ts)
        self.stride = len(self.times) + 1
        node, rank = node[self.order], np.searchsorted(self.times, ts[self.order])
        self.keys = node * self.stride + rank
        self.start = np.searchsorted(node, np.arange(num_nodes + 1))

    def before(self, nodes: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Position (in sorted rows) just past each node's last row with a time < its time."""
        rank = np.searchsorted(self.times, times, "left")  # unique times strictly below
        return np.searchsorted(self.keys, nodes * self.stride + rank, "left")


@dataclass
class Neighbors:
    """Each query's last k interactions before its time, oldest first. Shapes: (Q, k)."""

    node: np.ndarray  # int64, 0 on padding
    ts: np.ndarray  # int64, the event's time (the query's time on padding)
    code: np.ndarray  # int64 edge code, 0 on padding
    mask: np.ndarray  # bool


class TemporalGraph:
    """Neighbour and attribute lookups over the whole event stream.

    Args:
        src, dst, ts, edge_type: the edge events (any order; ties in time keep array order).
        attr_user, attr_ts, attr_type, attr_amount: the attribute events.
        num_nodes: ids are ``0 .. num_nodes - 1``.
        window: the span (ms) of the windowed attribute summaries.
    """

    def __init__(self, src, dst, ts, edge_type, attr_user, attr_ts, attr_type, attr_amount,
                 num_nodes: int, window: int):
        self.num_nodes = num_nodes
        self.window = int(window)
        node = np.concatenate([src, dst])
        self.edges = _Index(node, np.concatenate([ts, ts]), num_nodes)
        other = np.concatenate([dst, src])[self.edges.order]
        code = (1 + 2 * np.concatenate([edge_type, edge_type])
                + np.repeat([0, 1], len(src)))[self.edges.order]
        self.other, self.code = other.astype(np.int64), code.astype(np.int64)
        self.edge_ts = np.concatenate([ts, ts])[self.edges.order].astype(np.int64)
        self.attrs = _Index(attr_user, attr_ts, num_nodes)
        kinds = len(contract.ATTRIBUTE_TYPES)
        one_hot = np.zeros((len(attr_user), 2 * kinds))
        rows = np.arange(len(attr_user))
        one_hot[rows, 2 * attr_type] = 1.0
        one_hot[rows, 2 * attr_type + 1] = attr_amount
        # running (count, amount) per type; row i sums the sorted rows before i
        self.cum = np.vstack([np.zeros((1, 2 * kinds)),
                              np.cumsum(one_hot[self.attrs.order], 0)])

    def neighbors(self, nodes: np.ndarray, times: np.ndarray, k: int) -> Neighbors:
        """The last ``k`` interactions of each node strictly before its time."""
        nodes, times = np.asarray(nodes, np.int64), np.asarray(times, np.int64)
        end = self.edges.before(nodes, times)
        idx = end[:, None] - k + np.arange(k)[None, :]  # (Q, k)
        mask = idx >= self.edges.start[nodes][:, None]
        idx = np.where(mask, idx, 0)
        if not len(self.other):
            mask = np.zeros_like(mask)
            zeros = np.zeros(mask.shape, np.int64)
            return Neighbors(zeros, np.broadcast_to(times[:, None], mask.shape).copy(), zeros,
                             mask)
        return Neighbors(
            node=np.where(mask, self.other[idx], 0),
            ts=np.where(mask, self.edge_ts[idx], times[:, None]),
            code=np.where(mask, self.code[idx], 0),
            mask=mask,
        )

    def features(self, nodes: np.ndarray, times: np.ndarray) -> np.ndarray:
        """(Q, NUM_FEATURES) float32 summaries of each node's events strictly before its time."""
        nodes, times = np.asarray(nodes, np.int64), np.asarray(times, np.int64)
        first = self.attrs.start[nodes]
        now = self.attrs.before(nodes, times)
        recent = np.maximum(self.attrs.before(nodes, times - self.window), first)
        window = self.cum[now] - self.cum[recent]
        total = self.cum[now] - self.cum[first]
        degree = self.edges.before(nodes, times) - self.edges.start[nodes]
        out = np.concatenate([window, total, degree[:, None]], 1)
        return np.log1p(np.maximum(out, 0.0)).astype(np.float32)


def fixed_negatives(event_id: np.ndarray, dst: np.ndarray, pool: np.ndarray, seed: int
                    ) -> np.ndarray:
    """One destination per event drawn from ``pool`` by hash(seed, event_id); never the true
    destination (the next pool entry replaces it) when the pool holds another node."""
    pick = (mix(seed, event_id, 0) % np.uint64(len(pool))).astype(np.int64)
    neg = pool[pick]
    clash = (neg == dst) & (len(pool) > 1)
    neg[clash] = pool[(pick[clash] + 1) % len(pool)]
    return neg


class PastDestinations:
    """Each source's distinct destinations in order of their first interaction."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, ts: np.ndarray, num_nodes: int):
        order = np.lexsort((ts, dst, src))  # per pair, the first event first
        pair = src[order] * num_nodes + dst[order]
        first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        s, d, t = src[order][first], dst[order][first], ts[order][first]
        by_time = np.lexsort((d, t, s))
        self.dst, self.first_ts = d[by_time], t[by_time]
        self.start = np.searchsorted(s[by_time], np.arange(num_nodes + 1))

    def before(self, source: int, time: int) -> np.ndarray:
        """Distinct destinations ``source`` linked to strictly before ``time``."""
        lo, hi = self.start[source], self.start[source + 1]
        return self.dst[lo:lo + np.searchsorted(self.first_ts[lo:hi], time, "left")]


def historical_negatives(event_id, src, dst, ts, past: PastDestinations, pool: np.ndarray,
                         k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(negatives (n, k), is_historical (n, k)): for each event up to ``k`` destinations its
    source linked to before ``ts`` and not at ``ts`` (a hash-seeded sample without
    replacement), the rest filled with hash-seeded pool nodes other than the destination."""
    n = len(event_id)
    out = np.zeros((n, k), np.int64)
    historical = np.zeros((n, k), bool)
    if k == 0 or n == 0:
        return out, historical
    now: dict[tuple[int, int], set[int]] = {}
    for s, d, t in zip(src.tolist(), dst.tolist(), ts.tolist(), strict=True):
        now.setdefault((s, t), set()).add(d)
    for i in range(n):
        s, t = int(src[i]), int(ts[i])
        seen = past.before(s, t)
        if len(seen):
            seen = seen[~np.isin(seen, list(now[(s, t)]))]
        if len(seen) > k:
            seen = seen[np.argsort(mix(seed, event_id[i], seen), kind="stable")[:k]]
        out[i, :len(seen)] = seen
        historical[i, :len(seen)] = True
        fill = k - len(seen)
        if fill:
            slots = np.arange(1, fill + 1) + k
            pick = pool[(mix(seed, event_id[i], slots) % np.uint64(len(pool))).astype(np.int64)]
            pick[pick == dst[i]] = pool[0] if pool[0] != dst[i] else pool[-1]
            out[i, len(seen):] = pick
    return out, historical
