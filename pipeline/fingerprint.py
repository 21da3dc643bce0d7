"""A content hash of every Delta table of a local lake, to check that two builds agree.

Rows are read with ``deltalake`` (no JVM); the named run-dependent columns are dropped (and the
same keys inside JSON columns such as a manifest's ``json``); floating-point values are written
to ``digits`` significant digits, since a sum over a different partitioning of the same rows
may differ in its last bits; every value is turned into text and the rows sorted. So the hash
depends on a table's content only, not on file layout, partitioning or commit history.

A value within a last-bit change of a rounding boundary can still hash differently; for a
verdict, :func:`lake_differences` compares two lakes row by row with a relative tolerance.
"""

from __future__ import annotations

import hashlib
import json
import math
import os

import pyarrow as pa
import pyarrow.types as pat
from deltalake import DeltaTable

#: Columns (and JSON keys) that record the run rather than the data: ids, clocks, timings.
RUN_COLUMNS = frozenset({
    "run_id", "created_at", "built_at", "batch_id", "written_at", "ingested_at",
    "committed_at", "seconds", "build_seconds", "app_id",
})
JSON_COLUMNS = frozenset({"json"})


def _strip(value: object, drop: frozenset[str], digits: int | None) -> object:
    """A JSON value without the ``drop`` keys and ``*seconds`` keys, floats to ``digits``
    significant digits (None: as they are)."""
    if isinstance(value, dict):
        return {k: _strip(v, drop, digits) for k, v in value.items()
                if k not in drop and not k.endswith("seconds")}
    if isinstance(value, list):
        return [_strip(v, drop, digits) for v in value]
    if isinstance(value, float) and digits is not None:
        return float(f"{value:.{digits}g}")
    return value


def _text(column: pa.ChunkedArray, name: str, drop: frozenset[str], digits: int) -> list[str]:
    values = column.to_pylist()
    if pat.is_floating(column.type):
        return ["None" if v is None else f"{v:.{digits}g}" for v in values]
    if name in JSON_COLUMNS and pat.is_string(column.type):
        return ["None" if v is None
                else json.dumps(_strip(json.loads(v), drop, digits), sort_keys=True)
                for v in values]
    return [str(v) for v in values]


def table_digest(table: pa.Table, drop: frozenset[str] = RUN_COLUMNS, digits: int = 9) -> str:
    """``"<rows> rows <hash>"`` of the table's content, order-free."""
    names = [c for c in table.column_names if c not in drop]
    columns = [_text(table.column(c), c, drop, digits) for c in names]
    rows = sorted("\x1f".join(row) for row in zip(*columns, strict=True)) if columns else []
    digest = hashlib.sha256("\x1e".join(["\x1f".join(names), *rows]).encode()).hexdigest()
    return f"{table.num_rows} rows {digest[:16]}"


def fingerprint(root: str, drop: frozenset[str] = RUN_COLUMNS, digits: int = 9) -> dict[str, str]:
    """``layer/table`` -> :func:`table_digest` for every Delta table under ``root``."""
    return {name: table_digest(DeltaTable(path).to_pyarrow_table(), drop, digits)
            for name, path in _tables(root).items()}


def _tables(root: str) -> dict[str, str]:
    """``layer/table`` -> path of every Delta table under ``root``."""
    out = {}
    for layer in sorted(os.listdir(root)):
        layer_path = os.path.join(root, layer)
        if not os.path.isdir(layer_path) or layer.startswith("_"):
            continue
        for path, dirs, _ in sorted(os.walk(layer_path)):
            if "_delta_log" in dirs:
                dirs[:] = []
                out[os.path.relpath(path, root)] = path
    return out


def _close(a: object, b: object, rtol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rtol, abs_tol=rtol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rtol) for x, y in zip(a, b, strict=True))
    return a == b


def _rows(table: pa.Table, drop: frozenset[str]) -> tuple[list[str], list[tuple]]:
    names = [c for c in table.column_names if c not in drop]
    columns = []
    for name in names:
        values = table.column(name).to_pylist()
        if name in JSON_COLUMNS and pat.is_string(table.column(name).type):
            values = [None if v is None else _strip(json.loads(v), drop, None) for v in values]
        columns.append(values)
    rows = list(zip(*columns, strict=True)) if columns else []
    # Sorted by the rows' text with floats to 6 digits: rows equal up to last bits sort alike.
    return names, sorted(rows, key=lambda row: json.dumps(_strip(list(row), frozenset(), 6),
                                                          default=str, sort_keys=True))


def table_differences(a: pa.Table, b: pa.Table, drop: frozenset[str] = RUN_COLUMNS,
                      rtol: float = 1e-9) -> str | None:
    """None when the tables hold the same rows (floats within ``rtol``), else what differs."""
    names_a, rows_a = _rows(a, drop)
    names_b, rows_b = _rows(b, drop)
    if names_a != names_b:
        return f"columns {names_a} against {names_b}"
    if len(rows_a) != len(rows_b):
        return f"{len(rows_a)} rows against {len(rows_b)}"
    for number, (x, y) in enumerate(zip(rows_a, rows_b, strict=True)):
        for name, u, v in zip(names_a, x, y, strict=True):
            if not _close(u, v, rtol):
                return f"sorted row {number}, column {name}: {u!r} against {v!r}"
    return None


def lake_differences(root_a: str, root_b: str, drop: frozenset[str] = RUN_COLUMNS,
                     rtol: float = 1e-9) -> dict[str, str]:
    """``layer/table`` -> what differs, for every table of either lake that is not equal."""
    tables_a, tables_b = _tables(root_a), _tables(root_b)
    out = {name: "only in the first lake" for name in tables_a.keys() - tables_b.keys()}
    out.update({name: "only in the second lake" for name in tables_b.keys() - tables_a.keys()})
    for name in sorted(tables_a.keys() & tables_b.keys()):
        found = table_differences(DeltaTable(tables_a[name]).to_pyarrow_table(),
                                  DeltaTable(tables_b[name]).to_pyarrow_table(), drop, rtol)
        if found is not None:
            out[name] = found
    return out
