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
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contracts.runs import files_fingerprint, run_digest
from pipeline import batches
from pipeline.faults import failpoint
from pipeline.lake import Lake
from pipeline.schemas import (
    BATCH_ID,
    BROWSE_ACTIONS,
    BROWSE_PAGES,
    QUARANTINE,
    RAW,
    RAW_KEYS,
    RAW_PARTITIONS,
    TOUCH_EVENTS,
    SchemaMismatchError,
    stored_schema,
)

FORMATS = ("csv", "json", "parquet")
DEFAULT_MIN_TS = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
SNIFF_BYTES = 64 * 1024
VALUE_SHOWN = 40  # characters of a bad value quoted in a reason

# Compressed text input, by file name: the codec the driver's sniff uses (pyarrow) for each.
COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
UNSUPPORTED_COMPRESSION = (".deflate", ".lz4", ".snappy", ".zstd", ".xz", ".zip", ".br")
# Hadoop's own .zst codec needs a native library that Spark's distribution lacks; this one is
# pure Java and ships in Spark's jars (aircompressor). Registered after the built-in codecs,
# it is the one Hadoop picks for .zst files.
ZSTD_CODEC = "io.airlift.compress.zstd.ZstdCodec"
# How Spark names the file it failed to read (a truncated or corrupt compressed file).
_FAILED_READ = re.compile(r"FAILED_READ_FILE\S*\] Encountered error while reading file (\S+?)\.?\s")
# Spark reads every path as a Hadoop glob pattern: these characters are escaped.
GLOB_CHARACTERS = re.compile(r"[\\*?\[\]{}]")

# Table rules beyond types and keys.
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "browses": {"action": BROWSE_ACTIONS, "page": BROWSE_PAGES},
    "touches": {"event": TOUCH_EVENTS, "page": BROWSE_PAGES},
}
NON_NEGATIVE: dict[str, tuple[str, ...]] = {
    "purchases": ("amount",),
    "items": ("price",),
    "browses": ("stay_s",),
}
DISTINCT: dict[str, tuple[tuple[str, str], ...]] = {
    "shares": (("sender_id", "receiver_id"),),
}

NOT_UTF8 = "line is not UTF-8 text"
NOT_UTF8_ROW = "row holds text that is not UTF-8"
JSON_NOT_OBJECT = "malformed JSON line: not a JSON object"
JSON_TRAILING = "malformed JSON line: text after the closing brace"

# Internal columns carried beside the data columns.
RAW_TEXT, SOURCE, ROW, BLANK, PARSE_ERROR, REASON = (
    "_raw",
    "_source_file",
    "_row_number",
    "_blank",
    "_parse_error",
    "_reason",
)


class IngestInputError(ValueError):
    """The input is missing or is not the named format; the message names the file."""


@dataclass(frozen=True)
class Rules:
    """What a valid record of one table looks like."""

    table: str
    schema: T.StructType
    required: tuple[str, ...]
    enums: dict[str, tuple[str, ...]]
    non_negative: tuple[str, ...]
    distinct: tuple[tuple[str, str], ...]
    min_ts: dt.datetime
    max_ts: dt.datetime

    @classmethod
    def for_table(
        cls,
        table: str,
        min_ts: dt.datetime | None = None,
        max_ts: dt.datetime | None = None,
    ) -> Rules:
        """The rules of ``table``; times must lie in ``[min_ts, max_ts]`` (default
        2000-01-01 .. now + 1 day; naive datetimes are UTC)."""
        if table not in RAW:
            raise ValueError(f"unknown table {table!r}; expected one of {sorted(RAW)}")
        schema = RAW[table]
        non_nullable = [f.name for f in schema.fields if not f.nullable]
        required = tuple(dict.fromkeys([*RAW_KEYS[table], *non_nullable]))
        # Ids are never negative (the generator numbers users and items from 0).
        ids = [
            f.name
            for f in schema.fields
            if f.name.endswith("_id") and isinstance(f.dataType, T.IntegralType)
        ]
        now = dt.datetime.now(dt.UTC)
        return cls(
            table=table,
            schema=schema,
            required=required,
            enums=ENUMS.get(table, {}),
            non_negative=tuple(dict.fromkeys([*ids, *NON_NEGATIVE.get(table, ())])),
            distinct=DISTINCT.get(table, ()),
            min_ts=_utc(min_ts or DEFAULT_MIN_TS),
            max_ts=_utc(max_ts or now + dt.timedelta(days=1)),
        )


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


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# -- input files (driver side, cheap: names, sizes, the first bytes) -------------------------


def list_input_files(path: str | os.PathLike) -> list[Path]:
    """The data files of ``path`` (a file, or a folder searched recursively; names starting
    with ``.`` or ``_`` are skipped, as Spark does)."""
    root = Path(path)
    if not root.exists():
        raise IngestInputError(f"input {root} does not exist")
    if root.is_file():
        return [root]
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise IngestInputError(f"input folder {root} holds no data files")
    return files


def check_lake_location(root: str | os.PathLike) -> None:
    """IngestInputError unless a local lake root is, or can become, a folder: Spark would
    otherwise fail only after reading the whole input, with a JVM stack trace."""
    text = str(root)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", text) and not text.startswith("file:"):
        return  # hdfs://, s3a://, ...: the file system answers for itself
    path = Path(re.sub(r"^file:(//)?", "", text)).absolute()
    for folder in [path, *path.parents]:
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == path else f": {folder} is a file"
                raise IngestInputError(f"lake {path} is not a folder{where}")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise IngestInputError(f"lake {path}: no permission to write in {folder}")
            return


def default_run_id(files: list[Path]) -> str:
    """A digest of the files' names, sizes and modification times: same input, same run id."""
    return run_digest({"files": files_fingerprint(files)})


def compression_of(file: Path) -> str | None:
    """The codec a text input is compressed with, from its name (None: not compressed);
    IngestInputError for a compression Spark cannot read here."""
    suffix = Path(file).suffix.lower()
    if suffix in UNSUPPORTED_COMPRESSION:
        raise IngestInputError(
            f"input {file}: {suffix} compression is not supported "
            f"(use {', '.join(sorted(COMPRESSION))}, or none)"
        )
    return COMPRESSION.get(suffix)


def _head(file: Path) -> bytes:
    """The first SNIFF_BYTES of the file's content, decompressed where its name says so."""
    codec = compression_of(file)
    if codec is None:
        with open(file, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    try:
        with pa.input_stream(str(file), compression=codec) as stream:
            return stream.read(SNIFF_BYTES)
    except (OSError, pa.ArrowException):
        raise IngestInputError(f"input {file} is not readable {codec} data") from None


def _first_text(file: Path) -> str:
    """The file's first bytes as text; IngestInputError if they are not UTF-8 text. A line
    further on that is not UTF-8 is quarantined, not refused with the file."""
    head = _head(file)
    if b"\0" in head:
        raise IngestInputError(f"input {file} is not a text file (it holds NUL bytes)")
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as err:
        raise IngestInputError(f"input {file} is not UTF-8 text ({err.reason})") from None
    return text.removeprefix("\ufeff")


def _check_columns(file: Path, present: list[str], rules: Rules, fmt: str) -> None:
    for name in rules.required:
        if name not in present:
            raise SchemaMismatchError(
                f"input {file}: required column {name!r} is missing from the {fmt} "
                f"(expected {rules.schema[name].dataType.simpleString()})"
            )


def csv_header(file: Path, rules: Rules) -> tuple[str, ...] | None:
    """The column names of a CSV file's header line (None for an empty file)."""
    text = _first_text(file)
    if not text.strip():
        return None
    first = text.splitlines()[0]
    names = tuple(name.strip().strip('"').strip() for name in first.split(","))
    # The file's own text is never quoted back: the input may be anything a link points to.
    if not set(names) & set(rules.schema.names) or first.lstrip().startswith(("{", "[")):
        raise IngestInputError(
            f"input {file} is not CSV with a header line: its first line names none of the "
            f"columns {', '.join(rules.schema.names)}"
        )
    # Spark resolves column names ignoring case: 'ts' and 'TS' are one column to it, and a
    # table column named twice is ambiguous (other columns are ignored, so they may repeat).
    table_columns = {name.lower(): name for name in rules.schema.names}
    folded = [name.lower() for name in names]
    for key, column in table_columns.items():
        if folded.count(key) > 1:
            raise IngestInputError(f"input {file}: the header names column {column!r} twice")
    _check_columns(file, list(names), rules, "CSV header")
    return names


def check_json(file: Path) -> bool:
    """Whether a JSON Lines file has any content; IngestInputError if it is not JSON Lines."""
    text = _first_text(file)
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        return False
    if not first.lstrip().startswith("{"):
        raise IngestInputError(
            f"input {file} is not JSON Lines (one object per line): its first line is not "
            "a JSON object"
        )
    return True


def parquet_schema(file: Path, rules: Rules) -> pa.Schema:
    """The Parquet file's schema; IngestInputError if it is not Parquet."""
    try:
        schema = pq.read_schema(file)
    except (pa.ArrowInvalid, OSError) as err:
        raise IngestInputError(f"input {file} is not a Parquet file ({err})") from None
    _check_columns(file, schema.names, rules, "Parquet file")
    for f in schema:
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
            # Spark cannot read TIMESTAMP(NANOS) at all: say so instead of a JVM stack trace.
            raise SchemaMismatchError(
                f"input {file}: column {f.name!r} is a nanosecond timestamp, which Spark "
                "cannot read; write it with microseconds (pyarrow coerce_timestamps='us')"
            )
    return schema


# -- reading (Spark) -------------------------------------------------------------------------


def read_lines(spark: SparkSession, files: list[Path]) -> DataFrame:
    """Text lines with ``_raw``, ``_source_file`` and ``_row_number`` (1-based line number).

    A large file is split across tasks, so the line number is the line's position inside its
    split plus the number of lines in the file's earlier splits (a small per-split count).
    Compressed files (``.gz``, ``.bz2``, ``.zst``) are read decompressed. Spark gets the paths
    escaped and must list back exactly ``files`` (IngestInputError otherwise).
    """
    text = (
        spark.read.option("recursiveFileLookup", "true")
        .option("io.compression.codecs", ZSTD_CODEC)
        .text([spark_path(f) for f in files])
    )
    check_files_read(text, files)
    lines = text.select(
        F.col("value").alias(RAW_TEXT),
        F.col("_metadata.file_path").alias("_file"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_pos"),  # consecutive inside a split
    )
    earlier = (
        Window.partitionBy("_file").orderBy("_block").rowsBetween(Window.unboundedPreceding, -1)
    )
    splits = (
        lines.groupBy("_file", "_block")
        .agg(F.count(F.lit(1)).alias("_lines"), F.min("_pos").alias("_first"))
        .withColumn("_offset", F.coalesce(F.sum("_lines").over(earlier), F.lit(0)))
        .drop("_lines")
    )
    return lines.join(F.broadcast(splits), ["_file", "_block"]).select(
        RAW_TEXT,
        _local_path(F.col("_file")).alias(SOURCE),
        (F.col("_offset") + F.col("_pos") - F.col("_first") + 1).alias(ROW),
    )


def spark_path(file: Path) -> str:
    """The file's absolute path as Spark must be given it: Spark expands every path it reads
    as a glob pattern, so a name like ``a[1].csv`` would read ``a1.csv`` instead."""
    return GLOB_CHARACTERS.sub(lambda m: "\\" + m.group(0), os.path.abspath(file))


def check_files_read(frame: DataFrame, files: list[Path]) -> None:
    """IngestInputError unless the files Spark lists for ``frame`` are exactly ``files``."""
    listed = {os.path.abspath(f) for f in files}
    found = {unquote(urlparse(uri).path) for uri in frame.inputFiles()}
    if found != listed:
        odd = sorted(listed - found) or sorted(found - listed)
        raise IngestInputError(
            f"input {odd[0]}: Spark would not read exactly the listed files "
            f"({len(listed - found)} left out, {len(found - listed)} not listed)"
        )


def _local_path(uri: Column) -> Column:
    """``file:/a%20b/c.csv`` -> ``/a b/c.csv``; other URIs (hdfs://, s3a://) stay as they are."""
    # url_decode is form decoding ('+' -> ' '); a URI's '+' is literal, so protect it first.
    decoded = F.url_decode(F.regexp_replace(uri, r"\+", "%2B"))
    return F.when(
        uri.startswith("file:"), F.regexp_replace(decoded, r"^file:(//)?(?=/)", "")
    ).otherwise(uri)


def _string_schema(columns: list[str] | tuple[str, ...]) -> str:
    fields = ["`{}` STRING".format(c.replace("`", "``")) for c in columns]
    return ", ".join([*fields, f"{PARSE_ERROR} STRING"])


def _utf8_checked(lines: DataFrame, reason: str) -> DataFrame:
    """``_raw`` made valid UTF-8 (bad bytes become U+FFFD, so every reader can read the
    quarantine) and ``_parse_error`` set to ``reason`` where it was not."""
    raw = F.col(RAW_TEXT)
    return lines.withColumns(
        {
            PARSE_ERROR: F.when(~F.is_valid_utf8(raw), F.lit(reason)),
            RAW_TEXT: F.make_valid_utf8(raw),
        }
    )


def parse_csv(lines: DataFrame, header: tuple[str, ...], rules: Rules) -> DataFrame:
    """CSV lines (of files sharing ``header``) -> one string column per table column."""
    raw = F.col(RAW_TEXT)
    parsed = F.from_csv(
        raw,
        _string_schema(header),
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": PARSE_ERROR},
    )
    reason = (
        f"malformed CSV line: expected {len(header)} comma-separated fields "
        f"({', '.join(header)}) with balanced quotes"
    )
    # Spark's parser closes a quote left open at the end of the line, which cuts a record
    # broken over two lines into two plausible ones: an odd number of quotes is malformed.
    open_quote = F.length(F.regexp_replace(raw, '[^"]', "")) % 2 == 1
    malformed = F.col(f"_parsed.{PARSE_ERROR}").isNotNull() | open_quote
    return (
        _utf8_checked(lines.where(F.col(ROW) > 1), NOT_UTF8)  # line 1 is the header
        .withColumn("_parsed", parsed)
        .select(
            RAW_TEXT,
            SOURCE,
            ROW,
            (F.trim(raw) == "").alias(BLANK),
            F.coalesce(PARSE_ERROR, F.when(malformed, F.lit(reason))).alias(PARSE_ERROR),
            *_data_columns("_parsed", header, rules),
        )
    )


def parse_json(lines: DataFrame, rules: Rules) -> DataFrame:
    """JSON Lines -> one string column per table column (nested values as their JSON).

    Spark's JSON parser keeps the last of two equal keys and stops after the first object of a
    line; both are malformed lines here.
    """
    raw = F.col(RAW_TEXT)
    text = F.regexp_replace(raw, "^\ufeff", "")  # a byte order mark starting the file
    names = rules.schema.names
    parsed = F.from_json(
        text,
        _string_schema(names),
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": PARSE_ERROR},
    )
    keys = F.json_object_keys(text)
    twice = F.filter(keys, lambda key: F.size(F.filter(keys, lambda other: other == key)) > 1)
    # `[<line>,"<md5 of the line>"]` has the digest as its second element exactly when the
    # line is one JSON value and nothing more: text after the object either breaks the array
    # or becomes its second element (which cannot be the digest of a text holding it). Parsed
    # by from_json, with the same leniency (NaN, single quotes) as the record itself.
    digest = F.md5(text)
    wrapped = F.concat(F.lit("["), text, F.lit(',"'), digest, F.lit('"]'))
    closed = F.coalesce(F.get(F.from_json(wrapped, "array<string>"), 1) == digest, F.lit(False))
    reason = (
        F.when(F.col(f"_parsed.{PARSE_ERROR}").isNotNull(), F.lit(JSON_NOT_OBJECT))
        .when(
            F.size(twice) > 0,
            F.concat(
                F.lit("malformed JSON line: key '"),
                _shown(F.get(twice, 0)),
                F.lit("' appears twice"),
            ),
        )
        .when(~closed, F.lit(JSON_TRAILING))
    )
    return (
        _utf8_checked(lines, NOT_UTF8)
        .withColumn("_parsed", parsed)
        .select(
            RAW_TEXT,
            SOURCE,
            ROW,
            (F.trim(raw) == "").alias(BLANK),
            F.coalesce(PARSE_ERROR, reason).alias(PARSE_ERROR),
            *_data_columns("_parsed", names, rules),
        )
    )


def _data_columns(struct: str, present, rules: Rules) -> list[Column]:
    return [
        (F.col(f"{struct}.`{name}`") if name in present else F.lit(None).cast("string")).alias(name)
        for name in rules.schema.names
    ]


def read_parquet(spark: SparkSession, files: list[Path], rules: Rules) -> DataFrame:
    """Parquet rows -> the table's columns, as stored where the type matches, else as strings
    (validated like text). ``_raw`` is the row as JSON."""
    frame = spark.read.parquet(*[spark_path(f) for f in files])
    check_files_read(frame, files)
    have = {f.name: f.dataType for f in frame.schema.fields}
    columns = []
    for target in rules.schema.fields:
        if target.name not in have:
            columns.append(F.lit(None).cast(target.dataType).alias(target.name))
        elif have[target.name] == target.dataType:
            columns.append(F.col(f"`{target.name}`"))
        else:
            columns.append(F.col(f"`{target.name}`").cast("string").alias(target.name))
    as_json = F.to_json(F.struct(*[F.col(f"`{c}`") for c in frame.columns]))
    return frame.select(
        F.make_valid_utf8(as_json).alias(RAW_TEXT),
        _local_path(F.col("_metadata.file_path")).alias(SOURCE),
        (F.col("_metadata.row_index") + 1).alias(ROW),
        F.lit(False).alias(BLANK),
        F.when(~F.is_valid_utf8(as_json), F.lit(NOT_UTF8_ROW)).alias(PARSE_ERROR),
        *columns,
    )


# -- validation ------------------------------------------------------------------------------


def _shown(value: Column) -> Column:
    return F.substring(value, 1, VALUE_SHOWN)


def _type_name(dtype: T.DataType) -> str:
    name = dtype.simpleString()
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def validate(parsed: DataFrame, rules: Rules) -> DataFrame:
    """Typed table columns plus ``_reason`` (null = accepted) for every record.

    ``parsed`` holds each table column either already typed or as a string, and the columns
    ``_raw``, ``_source_file``, ``_row_number``, ``_blank`` and ``_parse_error``.
    """
    given = {f.name: f.dataType for f in parsed.schema.fields}
    typed: dict[str, Column] = {}
    checks: list[Column] = []
    for target in rules.schema.fields:
        name, dtype = target.name, target.dataType
        raw = F.col(f"`{name}`")
        if given[name] == dtype:
            value = raw
        else:
            value = raw.try_cast(dtype)
            text = raw.cast("string")
            checks.append(
                F.when(
                    text.isNotNull() & value.isNull(),
                    F.concat(
                        F.lit(f"column {name}: '"),
                        _shown(text),
                        F.lit(f"' is not {_type_name(dtype)}"),
                    ),
                )
            )
        if isinstance(dtype, T.DoubleType):
            checks.append(
                F.when(
                    F.isnan(value) | value.isin(float("inf"), float("-inf")),
                    F.concat(
                        F.lit(f"column {name}: "),
                        value.cast("string"),
                        F.lit(" is not a finite number"),
                    ),
                )
            )
        if name in rules.required:
            checks.append(F.when(raw.isNull(), F.lit(f"null key column {name}")))
        if isinstance(dtype, T.TimestampType):
            low, high = rules.min_ts, rules.max_ts
            checks.append(
                F.when(
                    (value < F.lit(low)) | (value > F.lit(high)),
                    F.concat(
                        F.lit(f"column {name}: '"),
                        F.date_format(value, "yyyy-MM-dd HH:mm:ss"),
                        F.lit(f"' outside [{low:%Y-%m-%d %H:%M:%S}, {high:%Y-%m-%d %H:%M:%S}]"),
                    ),
                )
            )
        if name in rules.non_negative:
            checks.append(F.when(value < 0, F.lit(f"{name} < 0")))
        if name in rules.enums:
            allowed = rules.enums[name]
            checks.append(
                F.when(
                    ~value.isin(*allowed),
                    F.concat(
                        F.lit(f"{name} '"), _shown(value), F.lit(f"' not in ({', '.join(allowed)})")
                    ),
                )
            )
        typed[name] = value
    for left, right in rules.distinct:
        checks.append(F.when(typed[left] == typed[right], F.lit(f"{left} == {right}")))

    field_reasons = F.concat_ws("; ", *checks)
    reason = (
        F.when(F.col(BLANK), F.lit(None))
        .when(F.col(PARSE_ERROR).isNotNull(), F.col(PARSE_ERROR))
        .otherwise(F.nullif(field_reasons, F.lit("")))
    )
    return parsed.select(
        *[typed[name].alias(name) for name in rules.schema.names],
        RAW_TEXT,
        SOURCE,
        ROW,
        BLANK,
        reason.alias(REASON),
    )


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


def plan_input(files: list[Path], fmt: str, rules: Rules) -> dict[object, list[Path]]:
    """Check every input file on the driver (first bytes, headers, Parquet footers) and group
    the files that Spark can read together. Raises before any Spark work is done."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    groups: dict[object, list[Path]] = {}
    if fmt == "csv":
        for file in files:
            header = csv_header(file, rules)
            if header is not None:
                groups.setdefault(header, []).append(file)
    elif fmt == "json":
        nonempty = [f for f in files if check_json(f)]
        if nonempty:
            groups[None] = nonempty
    else:
        for file in files:
            schema = parquet_schema(file, rules)
            # Files read together must agree on their schema (Spark reads one footer).
            groups.setdefault(str(schema.remove_metadata()), []).append(file)
    return groups


def check_input(input_path: str | os.PathLike, fmt: str, table: str) -> list[Path]:
    """The input's files, checked to be ``fmt`` with the table's required columns."""
    files = list_input_files(input_path)
    plan_input(files, fmt, Rules.for_table(table))
    return files


def read_validated(spark: SparkSession, files: list[Path], fmt: str, rules: Rules) -> DataFrame:
    """Check the input files, read them and validate every record (lazy)."""
    groups = plan_input(files, fmt, rules)
    parts = []
    for key, group in groups.items():
        if fmt == "csv":
            parts.append(parse_csv(read_lines(spark, group), key, rules))
        elif fmt == "json":
            parts.append(parse_json(read_lines(spark, group), rules))
        else:
            parts.append(read_parquet(spark, group, rules))
    if not parts:
        # Only empty files: nothing to read, but still a valid (empty) batch.
        empty = T.StructType(
            [T.StructField(name, T.StringType()) for name in rules.schema.names]
            + [
                T.StructField(RAW_TEXT, T.StringType()),
                T.StructField(SOURCE, T.StringType()),
                T.StructField(ROW, T.LongType()),
                T.StructField(BLANK, T.BooleanType()),
                T.StructField(PARSE_ERROR, T.StringType()),
            ]
        )
        parts.append(spark.createDataFrame([], empty))
    # Typed-as-stored columns of one Parquet group may be strings in another: unify to string.
    if len(parts) > 1:
        parts = [_strings_where_mixed(p, parts) for p in parts]
    parsed = parts[0]
    for part in parts[1:]:
        parsed = parsed.unionByName(part)
    return validate(parsed, rules)


def _strings_where_mixed(part: DataFrame, parts: list[DataFrame]) -> DataFrame:
    types: dict[str, set] = {}
    for p in parts:
        for f in p.schema.fields:
            types.setdefault(f.name, set()).add(f.dataType)
    return part.select(
        *[
            F.col(f"`{f.name}`").cast("string").alias(f.name)
            if len(types[f.name]) > 1
            else F.col(f"`{f.name}`")
            for f in part.schema.fields
        ]
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
