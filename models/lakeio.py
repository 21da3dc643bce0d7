"""The torch side's view of the lake: Delta snapshots read with ``deltalake`` (delta-rs, no JVM).

``read_table`` / ``dataset`` give one version of a table (the latest, or ``version``) with column
projection and row filters pushed into the Parquet scan; delta-rs handles checkpoints and the
table features delta-spark writes. ``append_rows`` commits a small Arrow table (results) as a new
version with an application transaction, so a re-run or a second writer with the same app id
commits nothing twice.

delta-rs's conflict check does not look at application transactions: two writers that both
find an app id missing would both commit it. So on a local lake ``append_rows`` holds an
exclusive lock on the table (``fcntl.flock``) from the check to the commit; on an object store
the writers of one results table must be one process (the trainer's rank 0 is).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

TXN_VERSION = 1  # as pipeline.lake: one commit per app id


def _open(table: str | os.PathLike, version: int | None = None) -> DeltaTable:
    try:
        return DeltaTable(str(table), version=version)
    except TableNotFoundError as error:
        raise FileNotFoundError(f"no Delta table at {table}") from error


def exists(table: str | os.PathLike) -> bool:
    """Whether a Delta table is at ``table``."""
    return DeltaTable.is_deltatable(str(table))


def dataset(table: str | os.PathLike, version: int | None = None) -> ds.Dataset:
    """The snapshot as a pyarrow dataset (lazy: scan with columns and filters)."""
    return _open(table, version).to_pyarrow_dataset()


def snapshot_files(table: str | os.PathLike, version: int | None = None) -> list[str]:
    """Paths of the data files in the table's snapshot (latest or ``version``)."""
    from urllib.parse import unquote, urlparse

    uris = _open(table, version).file_uris()
    return sorted(unquote(urlparse(u).path) if u.startswith("file:") else u for u in uris)


def transaction_version(table: str | os.PathLike, app_id: str) -> int | None:
    """The version the application transaction ``app_id`` recorded, or None."""
    if not exists(table):
        return None
    return _open(table).transaction_version(app_id)


def read_table(
    table: str | os.PathLike,
    version: int | None = None,
    columns: list[str] | None = None,
    filter: ds.Expression | None = None,
) -> pa.Table:
    """The snapshot as one Arrow table: only ``columns``, only rows matching ``filter``."""
    scanned = dataset(table, version).to_table(columns=columns, filter=filter)
    # delta-rs hands out view / large types; the trainer's code expects the plain ones.
    return scanned.cast(pa.schema([_plain(f) for f in scanned.schema]))


def _plain(field: pa.Field) -> pa.Field:
    t = field.type
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return field.with_type(pa.string())
    if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        return field.with_type(pa.binary())
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        inner = _plain(pa.field("element", t.value_type))
        return field.with_type(pa.list_(inner))
    if pa.types.is_list(t):
        return field.with_type(pa.list_(_plain(t.value_field)))
    return field


@contextlib.contextmanager
def _table_lock(table: str | os.PathLike):
    """An exclusive lock on a local table, held across processes (a file beside the table)."""
    text = str(table)
    if "://" in text and not text.startswith("file:"):
        yield
        return
    path = Path(text.removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.commit-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_rows(table: str | os.PathLike, data: pa.Table, app_id: str) -> int | None:
    """Commit ``data`` as a new version of ``table`` (created on first use); returns the new
    version, or None when the log already holds ``app_id`` (a re-run commits nothing twice)."""
    with _table_lock(table):
        return _append_rows(table, data, app_id)


def _append_rows(table: str | os.PathLike, data: pa.Table, app_id: str) -> int | None:
    if transaction_version(table, app_id) is not None:
        return None
    if exists(table):
        # the schema alone: no data file is read
        have = {f.name: _plain(f).type for f in dataset(table).schema}
        new = {f.name: f.type for f in data.schema}
        if set(have) != set(new) or any(
            not _compatible(new[name], have[name]) for name in have
        ):
            raise ValueError(f"{table}: schema {new} differs from the table's {have}")
    props = CommitProperties(
        app_transactions=[Transaction(app_id=app_id, version=TXN_VERSION)],
        custom_metadata={"userMetadata": app_id},
    )
    try:
        write_deltalake(str(table), data, mode="append", commit_properties=props)
    except CommitFailedError:
        # A concurrent writer won the version; if it was this same app id, we are done.
        if transaction_version(table, app_id) is not None:
            return None
        raise
    dt_ = _open(table)
    if dt_.transaction_version(app_id) is None:
        return None
    return dt_.version()


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return (a.tz is None) == (b.tz is None)
    return a == b
