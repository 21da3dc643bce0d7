"""Validated ingest: CSV / JSON Lines / Parquet files -> ``raw/<table>`` + ``quarantine/<table>``.

Every input record ends up in exactly one of the two tables, so ``read == accepted +
quarantined``. A record is quarantined (with its raw text, source file, row number, reason and
batch id) when

* it is not text: a line that is not UTF-8 (``line is not UTF-8 text``; its raw text is kept
  with the bad bytes replaced by U+FFFD, so that every reader can read the quarantine);
* it cannot be parsed: a CSV line with the wrong number of fields or an odd number of quotes
  (a record broken over two lines), a JSON line that is not one object, names a key twice or has
  text after its closing brace;
* a value does not have its column's type: ``column ts: 'abc' is not a timestamp``;
* a key column is null: ``null key column receiver_id``;
* a rule of its table fails: ``sender_id == receiver_id``, ``amount < 0``, a negative id
  (``sender_id < 0``; ids start at 0), a time outside the bounds (default 2000-01-01 .. now + 1
  day), ``action 'foo' not in (view, click, ...)``.

All reasons of a record are joined with ``; ``. Input that is not the named format at all (binary
in a CSV, JSON given as Parquet, text that is not UTF-8 in its first 64 KB, a CSV without a
header naming the required columns or with a header naming one twice, compressed data cut
short), or a path that does not exist, raises ``IngestInputError`` naming the file, never quoting
it, before anything is committed.

Format notes:

* Paths: Spark reads every path as a glob pattern; the listed files are given to it escaped,
  and the files it lists back must be exactly those (``a[1].csv`` is never read as ``a1.csv``).
* Compression: CSV and JSON Lines files named ``.gz``, ``.bz2`` or ``.zst`` are decompressed
  (zstd by aircompressor's pure-Java codec from Spark's jars, registered for the read: Hadoop's
  own needs a native library). Row numbers count lines of the decompressed text.
* CSV: comma-separated, each file starts with a header line naming the columns (any order;
  extra columns are ignored). Records are single lines (no line breaks inside quoted fields).
  ``row_number`` is the physical line number in the file (the header is line 1).
* JSON: JSON Lines, one object per line; extra fields are ignored. ``row_number`` is the line.
* Parquet: read with the file's own schema; a column whose type differs from the table's is
  cast value by value with the same checks. ``row_number`` is the 1-based row in the file.
* Timestamps are ISO-8601 text (``2024-01-01 10:00:00``, ``2024-01-01T10:00:00Z``, with or
  without an offset); without an offset they are read in the session time zone.
* Blank lines are not records: they are skipped and counted in the summary.
* A required column (a key or a non-nullable one) missing from a file is a
  ``SchemaMismatchError``; a missing nullable column reads as null.

Idempotency: both commits carry the app id ``ingest:<table>:<run_id>``; the default run id
hashes the input files' names, sizes and modification times, so ingesting the same input twice
commits nothing the second time.

Modules: ``files`` (the driver's checks of the input files), ``parse`` (reading them with Spark),
``rules`` (each table's rules and the validation of every record); this one runs an ingest.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline import batches
from pipeline.faults import failpoint
from pipeline.ingest.files import (
    COMPRESSION,
    FORMATS,
    SNIFF_BYTES,
    UNSUPPORTED_COMPRESSION,
    IngestInputError,
    check_input,
    check_json,
    check_lake_location,
    compression_of,
    csv_header,
    default_run_id,
    list_input_files,
    parquet_schema,
    plan_input,
)
from pipeline.ingest.parse import (
    GLOB_CHARACTERS,
    JSON_NOT_OBJECT,
    JSON_TRAILING,
    NOT_UTF8,
    NOT_UTF8_ROW,
    ZSTD_CODEC,
    check_files_read,
    parse_csv,
    parse_json,
    read_lines,
    read_parquet,
    read_validated,
    spark_path,
)
from pipeline.ingest.rules import (
    BLANK,
    DEFAULT_MIN_TS,
    DISTINCT,
    ENUMS,
    NON_NEGATIVE,
    PARSE_ERROR,
    RAW_TEXT,
    REASON,
    ROW,
    SOURCE,
    VALUE_SHOWN,
    Rules,
    _utc,
    validate,
)
from pipeline.lake import Lake
from pipeline.schemas import BATCH_ID, QUARANTINE, RAW_PARTITIONS, stored_schema

__all__ = [
    "BLANK",
    "COMPRESSION",
    "DEFAULT_MIN_TS",
    "DISTINCT",
    "ENUMS",
    "FORMATS",
    "GLOB_CHARACTERS",
    "JSON_NOT_OBJECT",
    "JSON_TRAILING",
    "NON_NEGATIVE",
    "NOT_UTF8",
    "NOT_UTF8_ROW",
    "PARSE_ERROR",
    "RAW_TEXT",
    "REASON",
    "ROW",
    "SNIFF_BYTES",
    "SOURCE",
    "UNSUPPORTED_COMPRESSION",
    "VALUE_SHOWN",
    "ZSTD_CODEC",
    "IngestInputError",
    "IngestSummary",
    "Rules",
    "accepted_rows",
    "check_files_read",
    "check_input",
    "check_json",
    "check_lake_location",
    "compression_of",
    "count_records",
    "csv_header",
    "default_run_id",
    "ingest",
    "list_input_files",
    "parquet_schema",
    "parse_csv",
    "parse_json",
    "plan_input",
    "quarantine_rows",
    "read_lines",
    "read_parquet",
    "read_validated",
    "spark_path",
    "validate",
]

# How Spark names the file it failed to read (a truncated or corrupt compressed file).
_FAILED_READ = re.compile(r"FAILED_READ_FILE\S*\] Encountered error while reading file (\S+?)\.?\s")


@dataclass
class IngestSummary:
    """What one ingest did; ``read == accepted + quarantined``."""

    table: str
    format: str
    input: str
    files: int
    run_id: str
    read: int
    accepted: int
    quarantined: int
    blank_lines_skipped: int
    raw_commit: str
    quarantine_commit: str
    committed: bool  # False when this run id had already been ingested
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def accepted_rows(validated: DataFrame, table: str, batch_id: str) -> DataFrame:
    """The accepted records in the stored schema of ``raw/<table>`` (batch id and partition
    columns included)."""
    schema = stored_schema(table)
    rows = validated.where(F.col(REASON).isNull() & ~F.col(BLANK))
    rows = rows.withColumn(BATCH_ID, F.lit(batch_id))
    if "week_start" in RAW_PARTITIONS.get(table, []):
        rows = rows.withColumn("week_start", F.to_date(F.date_trunc("week", F.col("ts"))))
    return rows.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])


def quarantine_rows(validated: DataFrame, batch_id: str, ingested_at: dt.datetime) -> DataFrame:
    """The rejected records in the QUARANTINE schema."""
    return validated.where(F.col(REASON).isNotNull()).select(
        F.lit(batch_id).alias("batch_id"),
        F.col(SOURCE).alias("source_file"),
        F.col(ROW).cast("long").alias("row_number"),
        F.col(RAW_TEXT).alias("raw"),
        F.col(REASON).alias("reason"),
        F.lit(_utc(ingested_at)).cast("timestamp").alias("ingested_at"),
    )


def count_records(
    validated: DataFrame, files: list[Path]
) -> tuple[int, int, int, dict[str, int]]:
    """(blank lines, records read, accepted, quarantined per kind of reason) of a validated
    input; IngestInputError if Spark read a file that is not one of ``files``."""
    # The only rows that reach the driver: counts per file and kind of reason, with the quoted
    # values masked so that their number stays small whatever the data holds.
    kind = F.regexp_replace(F.col(REASON), r"'[^']*'", "'...'")
    counts = _collect_input_errors_named(
        validated.groupBy(
            F.col(SOURCE).alias("source"), F.col(BLANK).alias("blank"), kind.alias("kind")
        ).agg(F.count(F.lit(1)).alias("n"))
    )
    listed = {os.path.abspath(f) for f in files}
    unlisted = sorted({r["source"] for r in counts} - listed)
    if unlisted:
        raise IngestInputError(f"input {unlisted[0]}: read by Spark but not listed")
    blank = sum(r["n"] for r in counts if r["blank"])
    read = sum(r["n"] for r in counts if not r["blank"])
    accepted = sum(r["n"] for r in counts if not r["blank"] and r["kind"] is None)
    reasons: dict[str, int] = {}
    for r in counts:  # one row per (file, kind): summed over the files
        if r["kind"] is not None:
            reasons[r["kind"]] = reasons.get(r["kind"], 0) + r["n"]
    return blank, read, accepted, reasons


def _collect_input_errors_named(frame: DataFrame) -> list:
    """``frame.collect()``, with a file Spark could not read to its end (a truncated or corrupt
    compressed file) raised as IngestInputError naming the file."""
    try:
        return frame.collect()
    except Exception as error:  # noqa: BLE001 - Spark's read failures mapped, others re-raised
        text = str(error)
        match = _FAILED_READ.search(text)
        if match is None:
            raise
        path = unquote(urlparse(match.group(1)).path)
        cause = _root_cause(error)
        raise IngestInputError(f"input {path} could not be read ({cause})") from None


def _root_cause(error: BaseException) -> str:
    """The JVM root cause of a PySpark error as ``Class: message`` (first line only)."""
    java = getattr(error, "java_exception", None) or getattr(error, "_java_exception", None)
    try:
        while java is not None and java.getCause() is not None:
            java = java.getCause()
        if java is None:
            return type(error).__name__
        message = (java.getMessage() or "").splitlines()
        name = java.getClass().getSimpleName()
        return f"{name}: {message[0][:120]}" if message else name
    except Exception:  # noqa: BLE001 - a dead gateway must not hide the original error
        return type(error).__name__


def _version_of(lake: Lake, layer: str, table: str, app_id: str, result) -> int | None:
    """The version ``app_id`` committed to the table (also when this run skipped it)."""
    if result.version is not None:
        return result.version
    commit = lake.commit_result(layer, table, app_id)
    return None if commit is None else commit.version


def _reconcile(what: str, got: int, expected: int) -> None:
    # Not a bare assert: this must hold under python -O too.
    if got != expected:
        raise AssertionError(f"ingest lost rows: {what} = {got}, expected {expected}")


def ingest(
    spark: SparkSession,
    lake: Lake,
    table: str,
    input_path: str | os.PathLike,
    fmt: str,
    run_id: str | None = None,
    min_ts: dt.datetime | None = None,
    max_ts: dt.datetime | None = None,
) -> IngestSummary:
    """Validate ``input_path`` and commit it to ``raw/<table>`` and ``quarantine/<table>``.

    Args:
        table: one of ``pipeline.schemas.RAW``.
        input_path: a file or a folder of files.
        fmt: ``csv``, ``json`` or ``parquet``.
        run_id: idempotency key (default: a hash of the input files' names, sizes, mtimes).
        min_ts, max_ts: accepted time range (default 2000-01-01 .. now + 1 day).
    """
    rules = Rules.for_table(table, min_ts, max_ts)
    files = list_input_files(input_path)
    run_id = run_id or default_run_id(files)
    app_id = f"ingest:{table}:{run_id}"
    ingested_at = dt.datetime.now(dt.UTC)

    validated = read_validated(spark, files, fmt, rules).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        blank, read, accepted, reasons = count_records(validated, files)
        quarantined = sum(reasons.values())
        _reconcile("records", read, accepted + quarantined)

        # The batch's three commits, in this order: a kill between them leaves a batch
        # without its ledger row, which pipeline.batches reports as incomplete.
        raw_result = lake.write(
            accepted_rows(validated, table, run_id),
            "raw",
            table,
            partition_by=RAW_PARTITIONS.get(table, []),
            app_id=app_id,
            expected_schema=stored_schema(table),
        )
        failpoint("ingest.raw-committed", spark)
        quarantine_result = lake.write(
            quarantine_rows(validated, run_id, ingested_at),
            "quarantine",
            table,
            app_id=app_id,
            expected_schema=QUARANTINE,
        )
        failpoint("ingest.quarantine-committed", spark)
    finally:
        validated.unpersist()

    # What was committed must be what was counted (the file footers count the rows written).
    if not raw_result.skipped:
        _reconcile("raw rows committed", raw_result.rows, accepted)
    if not quarantine_result.skipped:
        _reconcile("quarantine rows committed", quarantine_result.rows, quarantined)
    batch = batches.entry(
        table, run_id, "ingest",
        input=str(input_path), fingerprint=default_run_id(files), files=len(files), read=read,
        accepted=accepted, quarantined=quarantined,
        raw_version=_version_of(lake, "raw", table, app_id, raw_result),
        quarantine_version=_version_of(lake, "quarantine", table, app_id, quarantine_result),
    )
    ledger_result = batches.record(spark, lake, app_id, [batch])
    return IngestSummary(
        table=table,
        format=fmt,
        input=str(input_path),
        files=len(files),
        run_id=run_id,
        read=read,
        accepted=accepted,
        quarantined=quarantined,
        blank_lines_skipped=blank,
        raw_commit=str(raw_result),
        quarantine_commit=str(quarantine_result),
        committed=not (raw_result.skipped and quarantine_result.skipped and ledger_result.skipped),
        reasons=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
