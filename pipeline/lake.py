"""The lake: Delta tables under ``LAKE/<layer>/<table>``, written by Spark with delta-spark.

``LAKE`` is a local folder or any file system URI Spark can write (``file:``, ``hdfs://``,
``s3a://``, ``abfss://``). Every write is one Delta commit made by Spark itself:

* **Idempotent re-runs.** Each write carries Delta's application transaction (the writer
  options ``txnAppId`` = the job's app id, ``txnVersion`` = 1): a re-run of the same job run
  finds it in the table's log and Delta commits nothing. The app id is also the commit's
  ``userMetadata``, so ``DESCRIBE HISTORY`` shows which job run made each version.
* **Schema enforcement.** Delta refuses data whose columns or types differ from the table's;
  the error is raised as ``SchemaMismatchError`` naming the column. A write that leaves out one
  of the table's columns is refused too (Delta alone would fill it with nulls).
* **Concurrent writers.** Delta's optimistic concurrency decides: blind appends both commit; a
  conflicting commit fails as ``ConcurrentWriteError`` and nothing of it is visible; a second
  writer with the same app id finds the first's transaction and commits nothing.
* **One week at a time.** ``replace_where`` overwrites just the rows a predicate selects (one
  week's partition), atomically.

Readers see whole commits only and can travel back (``version``): Spark
(``format("delta")``), and outside Spark ``deltalake`` (the torch side, the report), DuckDB's
``delta_scan`` and Polars' ``read_delta``. Table features that one of those readers cannot
handle stay off (``spark-defaults.conf``).

Files a killed job wrote but never committed are in no snapshot: invisible, and ``vacuum``
deletes them once they are older than the retention period (Delta's safety check kept).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from pipeline.schemas import SchemaMismatchError

LAYERS = ("raw", "quarantine", "ledger", "truth", "stats", "shards", "results")
TXN_VERSION = 1  # each app id commits once: Delta skips a write whose app id holds version >= 1
DEFAULT_RETAIN_HOURS = 168.0  # Delta's own default deletedFileRetentionDuration (7 days)
HISTORY_LOOKBACK = 100  # commits searched for a write's own (concurrent writers included)
APPEND_ATTEMPTS = 3  # a blind append that lost to a table's simultaneous creation is retried
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# One path segment: no separators, no "." or "..", nothing a shell, a URI or a glob reads
# specially. Table names start with a letter or digit (never "_delta_log" or a hidden name).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_MAX = 128  # a dataset name leaves room for the suffixes of its tables (``_manifest``)
SEGMENT_MAX = 255  # what file systems allow in one folder name


class InvalidNameError(ValueError):
    """A table, dataset or folder name that is not one safe path segment under the lake."""


def check_name(
    name: str, what: str = "name", *, hidden: bool = False, max_length: int = NAME_MAX
) -> str:
    """``name`` when it is one path segment of letters, digits, ``_``, ``-`` and ``.``
    (starting with a letter or digit, or also ``_`` when ``hidden``; ``max_length`` characters
    at most); ``InvalidNameError`` naming it otherwise. Every name that becomes a folder of the
    lake passes here, so none can leave it."""
    bare = name.lstrip("_") if hidden and isinstance(name, str) else name
    if not isinstance(bare, str) or not _SAFE_NAME.fullmatch(bare) or len(name) > max_length:
        raise InvalidNameError(
            f"{what} {name!r} is not allowed: use one path segment of at most {max_length} "
            "letters, digits, '_', '-' and '.', starting with a letter or digit"
        )
    return name


#: Characters that delta-rs, which reads a local path as a URL, cannot take in a lake's path.
URL_BREAKERS = re.compile(r"[?#%]")


class ConcurrentWriteError(RuntimeError):
    """Another writer committed to the table first in a way that conflicts with this write;
    nothing of this write is in the table. Re-running the job is safe."""


@dataclass
class CommitResult:
    """What one ``Lake.write`` did."""

    table: str
    version: int | None
    rows: int = 0
    files: int = 0
    skipped: bool = False  # the app transaction was already in the log: nothing committed

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.table}: already committed by this run, nothing new"
        return f"{self.table}: version {self.version}, {self.rows} rows in {self.files} files"


def _session() -> SparkSession | None:
    """The running session, also from a thread other than the one that made it (PySpark's
    active session is per thread)."""
    return SparkSession.getActiveSession() or SparkSession._instantiatedSession


def _active_spark(spark: SparkSession | None = None) -> SparkSession:
    session = spark or _session()
    if session is None:
        raise RuntimeError("this lake operation needs a Spark session (pipeline.session)")
    return session


def _java_class(error: BaseException) -> str:
    """The JVM exception class behind a PySpark error ('' when there is none)."""
    return next(iter(_java_classes(error)), "")


def _java_classes(error: BaseException) -> list[str]:
    """The JVM exception class behind a PySpark error and its superclasses ([] when none)."""
    java = getattr(error, "java_exception", None) or getattr(error, "_java_exception", None)
    names: list[str] = []
    try:
        cls = java.getClass() if java is not None else None
        while cls is not None:
            names.append(cls.getName())
            cls = cls.getSuperclass()
    except Exception:  # noqa: BLE001 - a dead gateway must not hide the original error
        pass
    return names


def _concurrent(error: BaseException) -> bool:
    """Whether Delta refused the commit for a simultaneous writer's: each of its conflicts
    (concurrent append or delete, a protocol or metadata changed by a table's simultaneous
    creation, the same app transaction) is a ``java.util.ConcurrentModificationException``."""
    if "java.util.ConcurrentModificationException" in _java_classes(error):
        return True
    return "DELTA_CONCURRENT" in str(error)


class Lake:
    """A lake rooted at a folder or file system URI.

    Args:
        root: the lake's location; tables live at ``root/<layer>/<table>``. A plain path is
            made absolute; a URI (``hdfs://nn/lake``, ``s3a://bucket/lake``) is kept as given.
    """

    def __init__(self, root: str | Path, log_reader: str = "auto"):
        if log_reader not in ("auto", "spark"):
            raise ValueError(f"log_reader must be 'auto' or 'spark', got {log_reader!r}")
        text = str(root)
        self.is_local = not _URI.match(text) or text.startswith("file:")
        if text.startswith("file:"):
            text = "/" + text[len("file:"):].lstrip("/")
        self.root = str(Path(text).resolve()) if self.is_local else text.rstrip("/")
        # Reading a table's log (its version, history, app transactions, schema) is a few
        # milliseconds with delta-rs and a Spark job with delta-spark; delta-rs reads local
        # lakes, Spark every other file system. delta-rs takes the path as a URL: under a
        # folder whose name holds "?" or "#" it reads an empty history, with "%" nothing at
        # all, so such lakes are read by Spark too.
        self._log_by_rust = (
            self.is_local and log_reader == "auto" and not URL_BREAKERS.search(self.root)
        )

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    def path(self, layer: str, table: str) -> str:
        """The table's location: an absolute local path, or a URI under the lake's."""
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")
        for segment in str(table).split("/"):  # nested names: shards/ndm/<dataset>
            check_name(segment, f"table name {table!r}: segment", max_length=SEGMENT_MAX)
        return f"{self.root}/{layer}/{table}"

    def location(self, *parts: str) -> str:
        """Any location under the lake's root (scratch folders, for example); each part is
        one path segment (``check_name``, a leading ``_`` allowed)."""
        for part in parts:
            check_name(part, "lake folder name", hidden=True)
        return "/".join([self.root, *parts])

    # -- table state -------------------------------------------------------------------------

    def _log(self, layer: str, table: str):
        """delta-rs's view of the table's log (local lakes)."""
        from deltalake import DeltaTable

        return DeltaTable(self.path(layer, table))

    def exists(self, layer: str, table: str) -> bool:
        if self._log_by_rust or _session() is None:
            from deltalake import DeltaTable

            return DeltaTable.is_deltatable(self.path(layer, table))
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(_active_spark(), self.path(layer, table))

    def delta_table(self, layer: str, table: str, spark: SparkSession | None = None):
        """delta-spark's ``DeltaTable`` of the table (history, optimize, vacuum, merge)."""
        from delta.tables import DeltaTable

        spark = _active_spark(spark)
        if not self.exists(layer, table):
            raise FileNotFoundError(f"no Delta table at {self.path(layer, table)}")
        return DeltaTable.forPath(spark, self.path(layer, table))

    def history(self, layer: str, table: str, limit: int | None = None) -> list[dict]:
        """``DESCRIBE HISTORY`` rows, newest first: version, operation, userMetadata (the app
        id of the job run that committed it), operationMetrics."""
        keys = ("version", "operation", "userMetadata", "operationMetrics")
        if self._log_by_rust:
            if not self.exists(layer, table):
                raise FileNotFoundError(f"no Delta table at {self.path(layer, table)}")
            rows = self._log(layer, table).history(limit)
            return sorted(
                ({k: row.get(k) for k in keys} for row in rows), key=lambda r: -r["version"]
            )
        frame = self.delta_table(layer, table).history(limit)
        return [
            row.asDict()
            for row in frame.select(*keys)
            .orderBy("version", ascending=False)
            .collect()
        ]

    def version(self, layer: str, table: str) -> int:
        """The table's latest version."""
        if self._log_by_rust:
            return self._log(layer, table).version()
        return int(self.history(layer, table, limit=1)[0]["version"])

    def partition_columns(self, layer: str, table: str) -> list[str]:
        if self._log_by_rust:
            return list(self._log(layer, table).metadata().partition_columns)
        detail = self.delta_table(layer, table).detail().select("partitionColumns").first()
        return list(detail["partitionColumns"])

    def _commit_of(self, layer: str, table: str, app_id: str) -> dict | None:
        # The newest commits suffice: right after a write its own commit is among them, and an
        # older run found nowhere here is still skipped by Delta's own txnAppId check.
        for row in self.history(layer, table, limit=HISTORY_LOOKBACK):
            if row["userMetadata"] == app_id:
                return row
        return None

    def commit_result(self, layer: str, table: str, app_id: str) -> CommitResult | None:
        """What the job run ``app_id`` committed to the table (searched among the newest
        commits), or None."""
        if not self.exists(layer, table):
            return None
        commit = self._commit_of(layer, table, app_id)
        if commit is None:
            return None
        metrics = commit["operationMetrics"] or {}
        return CommitResult(
            f"{layer}/{table}",
            int(commit["version"]),
            rows=int(metrics.get("numOutputRows", 0)),
            files=int(metrics.get("numFiles", metrics.get("numAddedFiles", 0))),
        )

    def committed(self, layer: str, table: str, app_id: str) -> bool:
        """Whether the job run ``app_id`` has committed to the table."""
        if self._log_by_rust:
            return self.exists(layer, table) and (
                self._log(layer, table).transaction_version(app_id) is not None
            )
        return self.exists(layer, table) and self._commit_of(layer, table, app_id) is not None

    def tables(self) -> list[str]:
        """All tables as ``layer/table`` names (nested names like ``shards/ndm/irvine`` too)."""
        if self._log_by_rust:
            root = Path(self.root)
            return sorted(
                str(log.parent.relative_to(root)) for log in root.glob("**/_delta_log")
            )
        fs, root = _hadoop(self.root)
        found, todo = [], [(root, "")]
        while todo:
            folder, rel = todo.pop()
            if not fs.exists(folder):
                continue
            for status in fs.listStatus(folder):
                if not status.isDirectory():
                    continue
                child = status.getPath()
                if child.getName() == "_delta_log":
                    found.append(rel)
                else:
                    todo.append((child, f"{rel}/{child.getName()}".lstrip("/")))
        return sorted(found)

    # -- writing -----------------------------------------------------------------------------

    def write(
        self,
        df: DataFrame,
        layer: str,
        table: str,
        *,
        mode: str = "append",
        partition_by: list[str] | None = None,
        app_id: str | None = None,
        expected_schema: T.StructType | None = None,
        max_records_per_file: int | None = None,
        overwrite_schema: bool = False,
        replace_where: str | None = None,
    ) -> CommitResult:
        """Write ``df`` to the table as one Delta commit.

        Args:
            df: the rows to write.
            mode: ``append`` or ``overwrite`` (the new rows replace the snapshot's).
            partition_by: partition columns (Hive-style folders).
            app_id: the job run's id; when the table's log already holds it, nothing is written
                or committed. None makes a fresh one (no deduplication).
            expected_schema: if given, ``df`` must match it (SchemaMismatchError otherwise).
            max_records_per_file: bound on rows per Parquet file.
            overwrite_schema: with ``mode="overwrite"``, let the new snapshot have another
                schema (columns added, dropped or retyped); older versions keep theirs, so time
                travel still reads them.
            replace_where: with ``mode="overwrite"``, a SQL predicate (``"week = 5"``): only the
                rows it selects are replaced, and every new row must satisfy it.
        """
        if mode not in ("append", "overwrite"):
            raise ValueError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if overwrite_schema and mode != "overwrite":
            raise ValueError("overwrite_schema needs mode='overwrite'")
        if replace_where and mode != "overwrite":
            raise ValueError("replace_where needs mode='overwrite'")
        partition_by = list(partition_by or [])
        name = f"{layer}/{table}"
        app_id = app_id or f"adhoc-{uuid.uuid4().hex}"
        if self.committed(layer, table, app_id):
            return CommitResult(name, None, skipped=True)
        if expected_schema is not None:
            from pipeline.schemas import check_schema

            check_schema(df.schema, expected_schema, name)
        if not overwrite_schema:
            self._check_columns(df.schema, layer, table, partition_by)

        writer = (
            df.write.format("delta")
            .mode(mode)
            .option("txnAppId", app_id)
            .option("txnVersion", TXN_VERSION)
            .option("userMetadata", app_id)
        )
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if max_records_per_file:
            writer = writer.option("maxRecordsPerFile", max_records_per_file)
        if overwrite_schema:
            writer = writer.option("overwriteSchema", "true")
        if replace_where:
            writer = writer.option("replaceWhere", replace_where)
        # A blind append conflicts with nothing but a change of the table's protocol or
        # metadata, as when two first writers create it at once: nothing of the loser was
        # committed, so it writes again against the table as it now is.
        attempts = APPEND_ATTEMPTS if mode == "append" and not replace_where else 1
        for attempt in range(1, attempts + 1):
            try:
                writer.save(self.path(layer, table))
                break
            except Exception as error:  # noqa: BLE001 - mapped to our errors below, else re-raised
                if attempt == attempts or not _concurrent(error) or self.committed(
                    layer, table, app_id
                ):
                    self._raise_mapped(error, df.schema, layer, table, app_id)
                    break
                if not overwrite_schema:
                    self._check_columns(df.schema, layer, table, partition_by)
        commit = self.commit_result(layer, table, app_id)
        if commit is None:  # Delta found the app id in the log (a concurrent same-run writer)
            return CommitResult(name, None, skipped=True)
        return commit

    def write_arrow(
        self,
        data: pa.Table,
        layer: str,
        table: str,
        *,
        mode: str = "append",
        app_id: str | None = None,
        overwrite_schema: bool = False,
        spark: SparkSession | None = None,
    ) -> CommitResult:
        """Commit a small driver-side Arrow table (summaries, manifests) through Spark; the
        options mean what they mean in ``write``."""
        spark = _active_spark(spark)
        df = spark.createDataFrame(data).coalesce(1)
        return self.write(
            df, layer, table, mode=mode, app_id=app_id, overwrite_schema=overwrite_schema
        )

    def _check_columns(
        self, schema: T.StructType, layer: str, table: str, partition_by: list[str]
    ) -> None:
        """What Delta lets through but a lake of reconciled counts must not: a write missing
        one of the table's columns, or partitioned another way."""
        if not self.exists(layer, table):
            return
        where = f"{layer}/{table}"
        current_parts = self.partition_columns(layer, table)
        if partition_by != current_parts:
            raise SchemaMismatchError(
                f"{where}: partitioned by {partition_by}, the table by {current_parts}"
            )
        new = set(schema.fieldNames())
        missing = [name for name in self._column_names(layer, table) if name not in new]
        if missing:
            raise SchemaMismatchError(f"{where}: column {missing[0]!r} is missing")

    def _column_names(self, layer: str, table: str) -> list[str]:
        if self._log_by_rust:
            return [f.name for f in self._log(layer, table).schema().fields]
        return self._table_schema(layer, table).fieldNames()

    def _table_schema(self, layer: str, table: str) -> T.StructType:
        return self.delta_table(layer, table).toDF().schema

    def _raise_mapped(
        self, error: Exception, schema: T.StructType, layer: str, table: str, app_id: str
    ) -> None:
        """Delta's schema and concurrency errors as ours, naming the column or the cause."""
        where = f"{layer}/{table}"
        text = str(error)
        java = _java_class(error)
        if _concurrent(error):
            if self.committed(layer, table, app_id):
                return  # a writer with the same app id committed first: this run is done
            raise ConcurrentWriteError(
                f"{where}: another writer committed first and conflicts with this write "
                f"({java.rsplit('.', 1)[-1] or 'conflict'}); nothing was committed, re-run it"
            ) from error
        if "schema mismatch" in text.lower() or "DELTA_FAILED_TO_MERGE_FIELDS" in text:
            have = {f.name: f.dataType for f in self._table_schema(layer, table).fields}
            for field in schema.fields:
                if field.name not in have:
                    raise SchemaMismatchError(
                        f"{where}: column {field.name!r} is not in the table"
                    ) from error
                if field.dataType != have[field.name]:
                    raise SchemaMismatchError(
                        f"{where}: column {field.name!r} has type "
                        f"{field.dataType.simpleString()}, the table has "
                        f"{have[field.name].simpleString()}"
                    ) from error
            raise SchemaMismatchError(f"{where}: {text.splitlines()[0]}") from error
        raise error

    # -- reading -----------------------------------------------------------------------------

    def read(
        self, spark: SparkSession, layer: str, table: str, version: int | None = None
    ) -> DataFrame:
        """The snapshot (latest, or ``version``) as a Spark DataFrame."""
        if not self.exists(layer, table):
            raise FileNotFoundError(f"no Delta table at {self.path(layer, table)}")
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(layer, table))

    def to_arrow(self, layer: str, table: str, version: int | None = None) -> pa.Table:
        """The snapshot as an Arrow table (small tables: stats, manifests, results). Read with
        Spark where a session runs, else with delta-rs (no JVM: the report)."""
        spark = _session()
        if spark is not None:
            return self.read(spark, layer, table, version).toArrow()
        from deltalake import DeltaTable

        path = self.path(layer, table)
        if not DeltaTable.is_deltatable(path):
            raise FileNotFoundError(f"no Delta table at {path}")
        return DeltaTable(path, version=version).to_pyarrow_table()

    # -- housekeeping ------------------------------------------------------------------------

    def vacuum(
        self, layer: str, table: str, retain_hours: float = DEFAULT_RETAIN_HOURS,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete files no version within the retention period references: files of commits
        replaced longer ago than ``retain_hours``, and files killed jobs left uncommitted.

        Delta's safety check stays on: a retention shorter than the table's
        ``delta.deletedFileRetentionDuration`` (7 days by default) is refused, because a job
        still running may be about to commit younger files. Returns the removed files'
        paths relative to the table.
        """
        spark = _active_spark()
        location = self.path(layer, table)
        self.delta_table(layer, table)  # refuses a missing table with a clear message
        quoted = location.replace("`", "``")
        planned = spark.sql(
            f"VACUUM delta.`{quoted}` RETAIN {retain_hours} HOURS DRY RUN"
        ).collect()
        files = sorted(
            _relative(row["path"], location)
            for row in planned
            if not (self.is_local and Path(_local(row["path"])).is_dir())
        )
        if files and not dry_run:
            spark.sql(f"VACUUM delta.`{quoted}` RETAIN {retain_hours} HOURS").collect()
        return files

    def optimize(self, layer: str, table: str, zorder_by: list[str] | None = None) -> dict:
        """Compact the table's small files (and cluster by ``zorder_by``): Delta's OPTIMIZE.
        Returns its metrics (files added and removed)."""
        builder = self.delta_table(layer, table).optimize()
        frame = builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()
        metrics = frame.select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
        return {"files_added": int(metrics[0]), "files_removed": int(metrics[1])}

    def remove(self, location: str) -> None:
        """Delete a folder under the lake (a job's scratch space), on any file system."""
        if self.is_local:
            import shutil

            shutil.rmtree(location, ignore_errors=True)
            return
        fs, path = _hadoop(location)
        fs.delete(path, True)


def _hadoop(location: str):
    """(Hadoop FileSystem, Hadoop Path) of a location, through the running session's JVM."""
    spark = _active_spark()
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(location)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def _local(path: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(path).path) if path.startswith("file:") else path


def _relative(path: str, location: str) -> str:
    """A file's path relative to its table, from what VACUUM lists (a URI, maybe %-escaped)."""
    from urllib.parse import unquote

    path, location = unquote(path), location.rstrip("/") + "/"
    for start in (location, "file:" + location, "file://" + location):
        if path.startswith(start):
            return path[len(start):]
    return path
