"""Reading the input with Spark: CSV, JSON Lines and Parquet files to one frame of the table's
columns (as strings, or as stored where a Parquet column already has the table's type) beside
the internal columns ``_raw``, ``_source_file``, ``_row_number``, ``_blank`` and
``_parse_error``; ``read_validated`` then checks it with ``rules.validate``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.ingest.files import IngestInputError, plan_input
from pipeline.ingest.rules import (
    BLANK,
    PARSE_ERROR,
    RAW_TEXT,
    ROW,
    SOURCE,
    Rules,
    _shown,
    validate,
)
from pipeline.session import GLOB_CHARACTERS, spark_path  # noqa: F401 - re-exported

# Hadoop's own .zst codec needs a native library that Spark's distribution lacks; this one is
# pure Java and ships in Spark's jars (aircompressor). Registered after the built-in codecs,
# it is the one Hadoop picks for .zst files.
ZSTD_CODEC = "io.airlift.compress.zstd.ZstdCodec"
# Spark reads every path as a Hadoop glob pattern: these characters are escaped.

# Reasons the parsers give (the CSV one names the header's fields, so it is built per header).
NOT_UTF8 = "line is not UTF-8 text"
NOT_UTF8_ROW = "row holds text that is not UTF-8"
JSON_NOT_OBJECT = "malformed JSON line: not a JSON object"
JSON_TRAILING = "malformed JSON line: text after the closing brace"


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
