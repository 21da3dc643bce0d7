"""The lake: Delta tables under ``LAKE/<layer>/<table>``, written by Spark, committed by delta-rs.

Why this shape: the delta-spark jars come only from Maven, which the build machines cannot
reach. So Spark writes plain Parquet into a private staging folder of the table; the lake moves
exactly those files (the job's own output, nothing else) into the table's Hive-style layout and
commits them to the Delta log in one delta-rs transaction, with per-file statistics so readers
can skip files. Every commit carries an application transaction ``(app_id, 1)``: a re-run of
the same job run finds it in the log and commits nothing.

Readers take a snapshot's file list from the log (``read``), so they never see half a job, and
can travel back to an older version. Files a crashed job left behind are in no snapshot; they
are invisible and ``vacuum`` deletes them.

Any Delta reader sees the same rows: DuckDB ``delta_scan``, Polars ``read_delta``, pandas via
deltalake, Spark with delta-spark, and ``models.lakeread`` on the torch side.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    Transaction,
    create_table_with_add_actions,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from pipeline.schemas import SchemaMismatchError

STAGING = "_staging"
LAYERS = ("raw", "quarantine", "truth", "stats", "shards", "results")


@dataclass
class CommitResult:
    """What one ``Lake.write`` did."""

    table: str
    version: int | None
    files: list[str] = field(default_factory=list)
    rows: int = 0
    skipped: bool = False  # the app transaction was already in the log: nothing committed

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.table}: already committed by this run, nothing new"
        return f"{self.table}: version {self.version}, {self.rows} rows in {len(self.files)} files"


def spark_to_arrow_type(dtype: T.DataType) -> pa.DataType:
    """Arrow type of a Spark column, as Spark's Parquet writer stores it."""
    simple = {
        T.LongType: pa.int64(),
        T.IntegerType: pa.int32(),
        T.ShortType: pa.int16(),
        T.ByteType: pa.int8(),
        T.DoubleType: pa.float64(),
        T.FloatType: pa.float32(),
        T.StringType: pa.string(),
        T.BooleanType: pa.bool_(),
        T.DateType: pa.date32(),
        T.TimestampType: pa.timestamp("us", tz="UTC"),
        T.TimestampNTZType: pa.timestamp("us"),
        T.BinaryType: pa.binary(),
    }
    for spark_type, arrow_type in simple.items():
        if isinstance(dtype, spark_type):
            return arrow_type
    if isinstance(dtype, T.ArrayType):
        return pa.list_(pa.field("element", spark_to_arrow_type(dtype.elementType)))
    if isinstance(dtype, T.StructType):
        return pa.struct([spark_to_arrow_field(f) for f in dtype.fields])
    if isinstance(dtype, T.MapType):
        return pa.map_(spark_to_arrow_type(dtype.keyType), spark_to_arrow_type(dtype.valueType))
    if isinstance(dtype, T.DecimalType):
        return pa.decimal128(dtype.precision, dtype.scale)
    raise TypeError(f"no Delta mapping for Spark type {dtype.simpleString()}")


def spark_to_arrow_field(f: T.StructField) -> pa.Field:
    # Spark's file writers mark every column nullable, so the Delta schema does too.
    return pa.field(f.name, spark_to_arrow_type(f.dataType), nullable=True)


def spark_to_arrow_schema(schema: T.StructType) -> pa.Schema:
    return pa.schema([spark_to_arrow_field(f) for f in schema.fields])


def _stat_value(value, arrow_type: pa.DataType, is_max: bool):
    """A Parquet min/max as the Delta log stores it, or None where it must be left out."""
    if value is None:
        return None
    if pa.types.is_timestamp(arrow_type):
        if not isinstance(value, dt.datetime):
            return None
        # Delta keeps millisecond precision: round the bounds outward so skipping stays safe.
        micros = value.microsecond
        value = value.replace(microsecond=(micros // 1000) * 1000)
        if is_max and micros % 1000:
            value += dt.timedelta(milliseconds=1)
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if pa.types.is_date(arrow_type):
        return value.isoformat()
    if pa.types.is_floating(arrow_type):
        return None if math.isnan(value) else float(value)
    if pa.types.is_integer(arrow_type):
        return int(value)
    if pa.types.is_string(arrow_type):
        if len(value) > 32:
            return None if is_max else value[:32]
        return value
    return None


def file_stats(path: str, schema: pa.Schema) -> dict:
    """numRecords and per-column minValues / maxValues / nullCount from the Parquet footer."""
    meta = pq.ParquetFile(path).metadata
    stats: dict = {"numRecords": meta.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    for col_idx, name in enumerate(names):
        if name not in schema.names:
            continue
        arrow_type = schema.field(name).type
        lows, highs, nulls, complete = [], [], 0, True
        for rg in range(meta.num_row_groups):
            col = meta.row_group(rg).column(col_idx)
            st = col.statistics
            if st is None:
                complete = False
                break
            nulls += st.null_count if st.has_null_count else 0
            if st.has_min_max:
                lows.append(st.min)
                highs.append(st.max)
            elif st.null_count != meta.row_group(rg).num_rows:
                complete = False
        if not complete:
            continue
        stats["nullCount"][name] = nulls
        if lows:
            low = _stat_value(min(lows), arrow_type, is_max=False)
            high = _stat_value(max(highs), arrow_type, is_max=True)
            if low is not None:
                stats["minValues"][name] = low
            if high is not None:
                stats["maxValues"][name] = high
    return stats


def _partition_values(rel_path: str, partition_by: list[str]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for part in Path(rel_path).parts[:-1]:
        if "=" in part:
            key, value = part.split("=", 1)
            if key in partition_by:
                values[key] = None if value == "__HIVE_DEFAULT_PARTITION__" else value
    missing = [p for p in partition_by if p not in values]
    if missing:
        raise ValueError(f"file {rel_path} has no partition folder for {missing}")
    return values


class Lake:
    """A lake rooted at a local (or mounted shared) folder.

    Args:
        root: the lake folder; tables live at ``root/<layer>/<table>``.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r})"

    def path(self, layer: str, table: str) -> Path:
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")
        return self.root / layer / table

    def exists(self, layer: str, table: str) -> bool:
        return DeltaTable.is_deltatable(str(self.path(layer, table)))

    def table(self, layer: str, table: str, version: int | None = None) -> DeltaTable:
        path = self.path(layer, table)
        if not DeltaTable.is_deltatable(str(path)):
            raise FileNotFoundError(f"no Delta table at {path}")
        return DeltaTable(str(path), version=version)

    def tables(self) -> list[str]:
        """All tables as ``layer/table`` names (nested names like ``shards/ndm/irvine`` too)."""
        found = []
        for log in sorted(self.root.glob("**/_delta_log")):
            found.append(str(log.parent.relative_to(self.root)))
        return found

    def committed(self, layer: str, table: str, app_id: str) -> bool:
        """Whether the application transaction ``app_id`` is already in the table's log."""
        if not self.exists(layer, table):
            return False
        return self.table(layer, table).transaction_version(app_id) is not None

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
    ) -> CommitResult:
        """Write ``df`` with Spark and commit exactly the files it wrote.

        Args:
            df: the rows to write.
            mode: ``append`` or ``overwrite`` (the new files replace the snapshot's).
            partition_by: partition columns (Hive-style folders).
            app_id: application transaction id; when the log already holds it, nothing is
                written or committed. None makes a fresh one (no deduplication).
            expected_schema: if given, ``df`` must match it (SchemaMismatchError otherwise).
            max_records_per_file: bound on rows per Parquet file.
            overwrite_schema: with ``mode="overwrite"``, let the new snapshot have another
                schema (columns added, dropped or retyped); older versions keep theirs, so time
                travel still reads them. Without it any schema change raises
                ``SchemaMismatchError`` naming the column.
        """
        if mode not in ("append", "overwrite"):
            raise ValueError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if overwrite_schema and mode != "overwrite":
            raise ValueError("overwrite_schema needs mode='overwrite'")
        partition_by = list(partition_by or [])
        name = f"{layer}/{table}"
        app_id = app_id or f"adhoc-{uuid.uuid4().hex}"
        if self.committed(layer, table, app_id):
            return CommitResult(name, None, skipped=True)
        if expected_schema is not None:
            from pipeline.schemas import check_schema

            check_schema(df.schema, expected_schema, name)
        arrow_schema = spark_to_arrow_schema(df.schema)
        self._check_table_schema(layer, table, arrow_schema, partition_by, overwrite_schema)

        table_path = self.path(layer, table)
        staging = table_path / STAGING / uuid.uuid4().hex
        writer = df.write.mode("error").format("parquet")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if max_records_per_file:
            writer = writer.option("maxRecordsPerFile", max_records_per_file)
        writer.save(str(staging))
        # The staging folder is this write's alone, so its files are exactly the job's output.
        staged = sorted(
            p for p in staging.rglob("*.parquet") if not p.name.startswith((".", "_"))
        )
        return self.commit_files(
            staged, staging, layer, table, arrow_schema, mode, partition_by, app_id
        )

    def commit_files(
        self,
        staged: list[Path],
        staging: Path,
        layer: str,
        table: str,
        arrow_schema: pa.Schema,
        mode: str,
        partition_by: list[str],
        app_id: str,
    ) -> CommitResult:
        """Move staged Parquet files into the table and commit them in one transaction."""
        name = f"{layer}/{table}"
        table_path = self.path(layer, table)
        data_schema = pa.schema([f for f in arrow_schema if f.name not in partition_by])
        adds, moved, rows = [], [], 0
        for src in staged:
            rel_in_staging = src.relative_to(staging)
            rel = rel_in_staging.parent / f"{staging.name[:8]}-{src.name}"
            dst = table_path / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved.append(dst)
            stats = file_stats(str(dst), data_schema)
            rows += stats["numRecords"]
            adds.append(
                AddAction(
                    path=rel.as_posix(),
                    size=dst.stat().st_size,
                    partition_values=_partition_values(rel.as_posix(), partition_by),
                    modification_time=int(dst.stat().st_mtime * 1000),
                    data_change=True,
                    stats=json.dumps(stats),
                )
            )
        shutil.rmtree(staging, ignore_errors=True)
        # A concurrent re-run may have committed meanwhile: check again right before committing.
        if self.committed(layer, table, app_id):
            for path in moved:
                path.unlink(missing_ok=True)
            return CommitResult(name, None, skipped=True)
        props = CommitProperties(
            app_transactions=[Transaction(app_id=app_id, version=1)],
            custom_metadata={"sharecast.app_id": app_id},
        )
        delta_schema = Schema.from_arrow(arrow_schema)
        if not self.exists(layer, table):
            create_table_with_add_actions(
                str(table_path),
                delta_schema,
                adds,
                mode="error",
                partition_by=partition_by or None,
                commit_properties=props,
            )
        else:
            self.table(layer, table).create_write_transaction(
                adds,
                mode=mode,
                schema=delta_schema,
                partition_by=partition_by or None,
                commit_properties=props,
            )
        version = self.table(layer, table).version()
        return CommitResult(name, version, [a.path for a in adds], rows)

    def write_arrow(
        self,
        data: pa.Table,
        layer: str,
        table: str,
        *,
        mode: str = "append",
        app_id: str | None = None,
        overwrite_schema: bool = False,
    ) -> CommitResult:
        """Commit a small driver-side Arrow table (summaries, manifests, results); the options
        mean what they mean in ``write``."""
        if overwrite_schema and mode != "overwrite":
            raise ValueError("overwrite_schema needs mode='overwrite'")
        name = f"{layer}/{table}"
        app_id = app_id or f"adhoc-{uuid.uuid4().hex}"
        if self.committed(layer, table, app_id):
            return CommitResult(name, None, skipped=True)
        schema = pa.schema([f.with_nullable(True) for f in data.schema])
        data = data.cast(schema)
        self._check_table_schema(layer, table, schema, [], overwrite_schema)
        staging = self.path(layer, table) / STAGING / uuid.uuid4().hex
        staging.mkdir(parents=True)
        file = staging / f"part-00000-{uuid.uuid4().hex}.parquet"
        pq.write_table(data, file, compression="zstd")
        return self.commit_files([file], staging, layer, table, schema, mode, [], app_id)

    def _check_table_schema(
        self,
        layer: str,
        table: str,
        schema: pa.Schema,
        partition_by: list[str],
        columns_may_change: bool = False,
    ) -> None:
        if not self.exists(layer, table):
            return
        dt_ = self.table(layer, table)
        current = pa.schema(dt_.schema().to_arrow())  # arro3 -> pyarrow
        where = f"{layer}/{table}"
        current_parts = list(dt_.metadata().partition_columns)
        if partition_by != current_parts:
            raise SchemaMismatchError(
                f"{where}: partitioned by {partition_by}, the table by {current_parts}"
            )
        if columns_may_change:
            return
        have = {f.name: f.type for f in current}
        new = {f.name: f.type for f in schema}
        for col, typ in have.items():
            if col not in new:
                raise SchemaMismatchError(f"{where}: column {col!r} ({typ}) is missing")
            if not _same_type(new[col], typ):
                raise SchemaMismatchError(
                    f"{where}: column {col!r} has type {new[col]}, the table has {typ}"
                )
        for col in new:
            if col not in have:
                raise SchemaMismatchError(f"{where}: column {col!r} is not in the table")

    # -- reading -----------------------------------------------------------------------------

    def files(self, layer: str, table: str, version: int | None = None) -> list[str]:
        """Absolute paths of the snapshot's data files."""
        return [_uri_to_path(u) for u in self.table(layer, table, version).file_uris()]

    def read(
        self, spark: SparkSession, layer: str, table: str, version: int | None = None
    ) -> DataFrame:
        """The snapshot (latest, or ``version``) as a Spark DataFrame: exactly its files."""
        dt_ = self.table(layer, table, version)
        schema = _arrow_to_spark(pa.schema(dt_.schema().to_arrow()))
        files = [_uri_to_path(u) for u in dt_.file_uris()]
        if not files:
            return spark.createDataFrame([], schema)
        base = str(self.path(layer, table))
        return (
            spark.read.schema(schema)
            .option("basePath", base)
            .option("mergeSchema", "false")
            .parquet(*files)
            .select(*schema.names)
        )

    def to_arrow(self, layer: str, table: str, version: int | None = None) -> pa.Table:
        """The snapshot as an Arrow table (small tables: stats, manifests, results)."""
        return self.table(layer, table, version).to_pyarrow_table()

    # -- housekeeping ------------------------------------------------------------------------

    def vacuum(self, layer: str, table: str, min_age_s: float = 3600.0) -> list[str]:
        """Delete files no version of the log references (left by crashed jobs).

        Files younger than ``min_age_s`` are kept: a running job may be about to commit them.
        Files removed by an overwrite stay while any version references them (time travel).
        """
        table_path = self.path(layer, table)
        referenced: set[str] = set()
        log = table_path / "_delta_log"
        for entry in sorted(log.glob("*.json")):
            for line in entry.read_text().splitlines():
                action = json.loads(line)
                for kind in ("add", "remove"):
                    if kind in action:
                        referenced.add(_unquote(action[kind]["path"]))
        for checkpoint in sorted(log.glob("*.checkpoint*.parquet")):
            cp = pq.read_table(checkpoint, columns=["add"]).column("add").to_pylist()
            referenced.update(_unquote(a["path"]) for a in cp if a)
        now = time.time()
        removed = []
        for file in table_path.rglob("*"):
            if not file.is_file() or "_delta_log" in file.parts:
                continue
            rel = file.relative_to(table_path).as_posix()
            if rel in referenced or now - file.stat().st_mtime < min_age_s:
                continue
            file.unlink()
            removed.append(rel)
        for folder in sorted(table_path.rglob("*"), key=lambda p: -len(p.parts)):
            if folder.is_dir() and "_delta_log" not in folder.parts and not any(folder.iterdir()):
                folder.rmdir()
        return sorted(removed)


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return (a.tz is None) == (b.tz is None)
    if pa.types.is_string(a) or pa.types.is_large_string(a):
        return pa.types.is_string(b) or pa.types.is_large_string(b)
    return a == b


def _unquote(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def _uri_to_path(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    return uri


def _arrow_to_spark(schema: pa.Schema) -> T.StructType:
    def conv(t: pa.DataType) -> T.DataType:
        if pa.types.is_int64(t):
            return T.LongType()
        if pa.types.is_int32(t):
            return T.IntegerType()
        if pa.types.is_int16(t):
            return T.ShortType()
        if pa.types.is_int8(t):
            return T.ByteType()
        if pa.types.is_float64(t):
            return T.DoubleType()
        if pa.types.is_float32(t):
            return T.FloatType()
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return T.StringType()
        if pa.types.is_boolean(t):
            return T.BooleanType()
        if pa.types.is_date(t):
            return T.DateType()
        if pa.types.is_timestamp(t):
            return T.TimestampType() if t.tz else T.TimestampNTZType()
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return T.BinaryType()
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return T.ArrayType(conv(t.value_type))
        if pa.types.is_struct(t):
            return T.StructType([T.StructField(f.name, conv(f.type)) for f in t])
        if pa.types.is_map(t):
            return T.MapType(conv(t.key_type), conv(t.item_type))
        if pa.types.is_decimal(t):
            return T.DecimalType(t.precision, t.scale)
        raise TypeError(f"no Spark mapping for Arrow type {t}")

    return T.StructType([T.StructField(f.name, conv(f.type), True) for f in schema])
