"""The torch side's view of the lake, with pyarrow alone (no Spark, no delta-rs).

``snapshot_files`` replays a table's ``_delta_log`` (JSON commits and Parquet checkpoints) to the
file list of one version, so a trainer reads exactly what a job committed. ``append_rows`` commits
a small Arrow table (results) as a new Delta version with an application transaction, creating
the table on first use; the log entry is created with ``O_EXCL`` so two writers never both win
the same version.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq


def _log_dir(table: str | os.PathLike) -> Path:
    log = Path(table) / "_delta_log"
    if not log.is_dir():
        raise FileNotFoundError(f"no Delta table at {table} (no _delta_log)")
    return log


def _replay(table: str | os.PathLike, version: int | None = None):
    """(add actions by path, app transactions, metadata, last version) at ``version``."""
    log = _log_dir(table)
    commits = sorted(int(p.stem) for p in log.glob("*.json") if p.stem.isdigit())
    if not commits:
        raise FileNotFoundError(f"empty Delta log at {log}")
    target = commits[-1] if version is None else version
    if target not in commits and version is not None:
        # Time travel to a version folded into a checkpoint is still fine if it is one.
        pass
    adds: dict[str, dict] = {}
    txns: dict[str, int] = {}
    meta: dict = {}
    start = 0
    checkpoints = sorted(
        int(p.name.split(".")[0]) for p in log.glob("*.checkpoint.parquet")
    )
    usable = [c for c in checkpoints if c <= target]
    if usable:
        cp = usable[-1]
        table_cp = pq.read_table(log / f"{cp:020d}.checkpoint.parquet").to_pylist()
        for row in table_cp:
            if row.get("add"):
                adds[unquote(row["add"]["path"])] = row["add"]
            if row.get("txn"):
                txns[row["txn"]["appId"]] = row["txn"]["version"]
            if row.get("metaData"):
                meta = row["metaData"]
        start = cp + 1
    for v in range(start, target + 1):
        entry = log / f"{v:020d}.json"
        if not entry.exists():
            raise FileNotFoundError(f"Delta log entry {entry} is missing")
        for line in entry.read_text().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                adds[unquote(action["add"]["path"])] = action["add"]
            elif "remove" in action:
                adds.pop(unquote(action["remove"]["path"]), None)
            elif "txn" in action:
                txns[action["txn"]["appId"]] = action["txn"]["version"]
            elif "metaData" in action:
                meta = action["metaData"]
    return adds, txns, meta, target


def snapshot_files(table: str | os.PathLike, version: int | None = None) -> list[str]:
    """Absolute paths of the data files in the table's snapshot (latest or ``version``)."""
    adds, _, _, _ = _replay(table, version)
    return [str(Path(table) / p) for p in sorted(adds)]


def transaction_version(table: str | os.PathLike, app_id: str) -> int | None:
    if not (Path(table) / "_delta_log").is_dir():
        return None
    return _replay(table)[1].get(app_id)


def read_table(
    table: str | os.PathLike, version: int | None = None, columns: list[str] | None = None
) -> pa.Table:
    """The snapshot as one Arrow table, partition columns filled from the log."""
    adds, _, meta, _ = _replay(table, version)
    parts = list(meta.get("partitionColumns") or [])
    pieces = []
    types = {}
    if parts:
        fields = json.loads(meta["schemaString"])["fields"]
        types = {f["name"]: _ARROW_TYPES.get(f["type"], pa.string()) for f in fields}
    for rel, add in sorted(adds.items()):
        want = None if columns is None else [c for c in columns if c not in parts]
        # ParquetFile, not pq.read_table: the latter would also guess partitions from the path.
        piece = pq.ParquetFile(Path(table) / rel).read(columns=want)
        for col in parts:
            if columns is not None and col not in columns:
                continue
            value = (add.get("partitionValues") or {}).get(col)
            column = pa.array([value] * piece.num_rows, pa.string()).cast(types[col])
            piece = piece.append_column(col, column)
        pieces.append(piece)
    if not pieces:
        return pa.table({})
    return pa.concat_tables(pieces, promote_options="default")


_DELTA_TYPES = {
    pa.int64(): "long",
    pa.int32(): "integer",
    pa.int16(): "short",
    pa.int8(): "byte",
    pa.float64(): "double",
    pa.float32(): "float",
    pa.string(): "string",
    pa.large_string(): "string",
    pa.bool_(): "boolean",
    pa.date32(): "date",
}


_ARROW_TYPES = {
    "long": pa.int64(),
    "integer": pa.int32(),
    "short": pa.int16(),
    "byte": pa.int8(),
    "double": pa.float64(),
    "float": pa.float32(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}


def _delta_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz else "timestamp_ntz"
    if t in _DELTA_TYPES:
        return _DELTA_TYPES[t]
    raise TypeError(f"append_rows supports flat tables of simple types, not {t}")


def append_rows(table: str | os.PathLike, data: pa.Table, app_id: str) -> int | None:
    """Commit ``data`` as one new file of ``table``; returns the new version, or None when the
    log already holds ``app_id`` (a re-run commits nothing twice)."""
    table = Path(table)
    log = table / "_delta_log"
    if transaction_version(table, app_id) is not None:
        return None
    table.mkdir(parents=True, exist_ok=True)
    name = f"part-00000-{uuid.uuid4().hex}.zstd.parquet"
    pq.write_table(data, table / name, compression="zstd")
    size = (table / name).stat().st_size
    now = int(time.time() * 1000)
    actions: list[dict] = []
    exists = log.is_dir() and any(log.glob("*.json"))
    if exists:
        _, _, meta, last = _replay(table)
        schema = json.loads(meta["schemaString"])
        have = {f["name"]: f["type"] for f in schema["fields"]}
        new = {f.name: _delta_type(f.type) for f in data.schema}
        if have != new:
            (table / name).unlink()
            raise ValueError(f"{table}: schema {new} differs from the table's {have}")
        version = last + 1
    else:
        log.mkdir(parents=True, exist_ok=True)
        version = 0
        schema = {
            "type": "struct",
            "fields": [
                {"name": f.name, "type": _delta_type(f.type), "nullable": True, "metadata": {}}
                for f in data.schema
            ],
        }
        actions.append({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}})
        actions.append(
            {
                "metaData": {
                    "id": str(uuid.uuid4()),
                    "format": {"provider": "parquet", "options": {}},
                    "schemaString": json.dumps(schema),
                    "partitionColumns": [],
                    "configuration": {},
                    "createdTime": now,
                }
            }
        )
    actions.append(
        {
            "add": {
                "path": name,
                "partitionValues": {},
                "size": size,
                "modificationTime": now,
                "dataChange": True,
                "stats": json.dumps({"numRecords": data.num_rows}),
            }
        }
    )
    actions.append({"txn": {"appId": app_id, "version": 1, "lastUpdated": now}})
    actions.append({"commitInfo": {"timestamp": now, "operation": "WRITE", "engine": "sharecast"}})
    payload = "\n".join(json.dumps(a) for a in actions) + "\n"
    fd = os.open(log / f"{version:020d}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(payload)
    return version
