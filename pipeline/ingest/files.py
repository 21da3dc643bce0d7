"""The input files, checked on the driver before any Spark work, cheaply (names, sizes, the first
bytes): listing, compression, text and UTF-8 sniffing, CSV headers, JSON Lines, Parquet footers;
also the lake location and the default run id (a digest of the files).
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from contracts.runs import files_fingerprint, run_digest
from pipeline.ingest.rules import Rules
from pipeline.schemas import SchemaMismatchError

FORMATS = ("csv", "json", "parquet")
SNIFF_BYTES = 64 * 1024

# Compressed text input, by file name: the codec the driver's sniff uses (pyarrow) for each.
COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
UNSUPPORTED_COMPRESSION = (".deflate", ".lz4", ".snappy", ".zstd", ".xz", ".zip", ".br")


class IngestInputError(ValueError):
    """The input is missing or is not the named format; the message names the file."""


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
