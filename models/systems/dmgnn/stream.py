"""The ``dmgnn`` shard tables as checked arrays: every row against ``contracts.dmgnn``.

Checks, each failing with an ``EventStreamError`` that names the table, the row (an edge's or
attribute event's ``event_id``, a tier's row number) and the column: no nulls, unique event
ids, node ids >= 0, ``ts`` never decreasing in ``event_id`` order (``EventOrderError``), types
in ``EDGE_TYPES`` / ``ATTRIBUTE_TYPES`` (``UnknownTypeError``), amounts finite and >= 0, tiers
in 1..``NUM_TIERS``, windows that end after they start. Nothing is dropped: a bad row stops
the read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contracts import ContractError
from contracts import dmgnn as contract


class EventStreamError(ContractError):
    """A shard row breaks the contract; ``table``, ``row`` (an edge's or attribute event's
    ``event_id``, a tier's row number) and ``column`` say where."""

    def __init__(self, table: str, row: int, column: str, what: str):
        super().__init__(f"{table}: row {row}, column {column!r}: {what}")
        self.table, self.row, self.column = table, row, column


class EventOrderError(EventStreamError):
    """An event earlier than the one before it in the stream."""


class UnknownTypeError(EventStreamError):
    """An edge or attribute type outside the contract's vocabulary."""


@dataclass
class Stream:
    """The checked tables as arrays, edges and attributes in stream order."""

    event_id: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    ts: np.ndarray
    edge_type: np.ndarray
    attr_user: np.ndarray
    attr_ts: np.ndarray
    attr_type: np.ndarray
    attr_amount: np.ndarray
    tier_user: np.ndarray
    tier_start: np.ndarray
    tier_end: np.ndarray
    tier: np.ndarray  # 1..NUM_TIERS
    num_nodes: int


def _codes(table: pa.Table, name: str, column: str, vocab: tuple[str, ...]) -> np.ndarray:
    """Column of strings -> vocabulary indices; an unknown value is an ``UnknownTypeError``."""
    values = table.column(column)
    index = pc.index_in(values, value_set=pa.array(vocab)).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(np.isnan(index.astype(float)))
    if bad.size:
        row = int(bad[0])
        raise UnknownTypeError(name, _row_id(table, row), column,
                               f"{values[row].as_py()!r} is not one of {', '.join(vocab)}")
    return index.astype(np.int64)


def _row_id(table: pa.Table, row: int) -> int:
    return int(table.column("event_id")[row].as_py()) if "event_id" in table.column_names else row


def _ints(table: pa.Table, name: str, column: str) -> np.ndarray:
    col = table.column(column)
    if col.null_count:
        raise EventStreamError(name, _row_id(table, int(np.flatnonzero(
            col.is_null().to_numpy(zero_copy_only=False))[0])), column, "is null")
    return col.to_numpy(zero_copy_only=False).astype(np.int64)


def _check(table: pa.Table, name: str, column: str, bad: np.ndarray, what: str,
           error: type[EventStreamError] = EventStreamError) -> None:
    if (rows := np.flatnonzero(bad)).size:
        raise error(name, _row_id(table, int(rows[0])), column, what)


def _events(table: pa.Table, name: str) -> tuple[pa.Table, np.ndarray]:
    """The table in ``event_id`` order and its ``ts``, checked to never go back in time."""
    table = table.sort_by("event_id")
    ids = _ints(table, name, "event_id")
    _check(table, name, "event_id", np.r_[False, ids[1:] == ids[:-1]], "repeats an event_id")
    ts = _ints(table, name, "ts")
    back = np.r_[False, ts[1:] < ts[:-1]]
    if back.any():
        i = int(np.flatnonzero(back)[0])
        raise EventOrderError(name, int(ids[i]), "ts",
                              f"{ts[i]} is before the previous event's {ts[i - 1]}")
    return table, ts


def stream_from_arrow(edges: pa.Table, attributes: pa.Table, tiers: pa.Table,
                      names: dict[str, str] | None = None, num_nodes: int = 0) -> Stream:
    """The three tables -> a checked ``Stream``.

    Raises:
        EventOrderError, UnknownTypeError, EventStreamError: a row that breaks the contract.
    """
    names = names or {t: t for t in contract.TABLES}
    e_name, a_name, t_name = names["edges"], names["attributes"], names["tiers"]
    edges, ts = _events(edges, e_name)
    src, dst = _ints(edges, e_name, "src"), _ints(edges, e_name, "dst")
    _check(edges, e_name, "src", src < 0, "node ids are >= 0")
    _check(edges, e_name, "dst", dst < 0, "node ids are >= 0")
    edge_type = _codes(edges, e_name, "edge_type", contract.EDGE_TYPES)
    attributes, attr_ts = _events(attributes, a_name)
    attr_user = _ints(attributes, a_name, "user_id")
    _check(attributes, a_name, "user_id", attr_user < 0, "node ids are >= 0")
    attr_type = _codes(attributes, a_name, "event_type", contract.ATTRIBUTE_TYPES)
    amount = attributes.column("amount").to_numpy(zero_copy_only=False).astype(np.float64)
    _check(attributes, a_name, "amount", ~(np.isfinite(amount) & (amount >= 0)),
           "amounts are finite and >= 0")
    tier_user = _ints(tiers, t_name, "user_id")
    start, end = _ints(tiers, t_name, "window_start"), _ints(tiers, t_name, "window_end")
    tier = _ints(tiers, t_name, "tier")
    _check(tiers, t_name, "user_id", tier_user < 0, "node ids are >= 0")
    _check(tiers, t_name, "window_end", end <= start, "a window ends after it starts")
    _check(tiers, t_name, "tier", (tier < 1) | (tier > contract.NUM_TIERS),
           f"tiers are 1..{contract.NUM_TIERS}")
    top = max([num_nodes - 1] + [int(a.max()) for a in (src, dst, attr_user, tier_user) if a.size])
    return Stream(_ints(edges, e_name, "event_id"), src, dst, ts, edge_type, attr_user, attr_ts,
                  attr_type, amount, tier_user, start, end, tier, top + 1)
