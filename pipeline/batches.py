"""Batches: which rows each ingest (or generated world) wrote, which are whole, undoing one.

Every stored raw row and every quarantine row carries the ``batch_id`` of the batch that wrote
it: an ingest's run id, or a generated world's. A batch commits its accepted rows to
``raw/<table>``, then its rejects to ``quarantine/<table>``, and last one row to
``ledger/ingest`` (schema ``pipeline.schemas.LEDGER``). So a batch with rows in either table but
no ledger row is **incomplete**: its job was killed between the commits. Re-running the same
ingest (same run id) completes it; ``undo`` removes it. A batch whose row counts differ from
its ledger row is **changed** (an undo cut short: re-run the undo).

The ledger row keeps the batch's input fingerprint (names, sizes and modification times of its
files), so the same files ingested again under another run id show up as a **duplicate** of the
first batch, and ``undo`` takes the copy out.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.faults import failpoint
from pipeline.lake import CommitResult, Lake
from pipeline.schemas import BATCH_ID, LEDGER, RAW

log = logging.getLogger(__name__)

LEDGER_TABLE = ("ledger", "ingest")
KINDS = ("ingest", "world", "undo")
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


class UnknownBatchError(ValueError):
    """The batch named is in neither the table nor the ledger."""


@dataclass(frozen=True)
class BatchStatus:
    """One batch of one raw table, as the lake holds it."""

    table: str
    batch_id: str
    raw_rows: int
    quarantine_rows: int
    state: str  # whole | incomplete | changed | undo-incomplete
    kind: str | None  # the ledger's kind (None: no ledger row)
    duplicate_of: str | None = None  # an earlier whole batch of the same input files

    def to_dict(self) -> dict:
        return asdict(self)


def entry(table: str, batch_id: str, kind: str, **counts) -> dict:
    """One ledger row: the batch, its kind, and any other ``LEDGER`` columns (input,
    fingerprint, files, read, accepted, quarantined, raw_version, quarantine_version)."""
    if kind not in KINDS:
        raise ValueError(f"ledger kind must be one of {KINDS}, got {kind!r}")
    unknown = set(counts) - set(LEDGER.names)
    if unknown:
        raise ValueError(f"unknown ledger columns {sorted(unknown)}")
    row = {name: None for name in LEDGER.names}
    row.update(counts, table=table, batch_id=batch_id, kind=kind)
    row["committed_at"] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return row


def record(spark: SparkSession, lake: Lake, app_id: str, entries: list[dict]) -> CommitResult:
    """Commit ledger rows (``entry``) as one commit, the last of an ingest, a world or an undo;
    they commit once per ``app_id``."""
    frame = spark.createDataFrame([tuple(e[n] for n in LEDGER.names) for e in entries], LEDGER)
    return lake.write(
        frame.coalesce(1), *LEDGER_TABLE, app_id=f"ledger:{app_id}", expected_schema=LEDGER
    )


def _rows_per_batch(spark: SparkSession, lake: Lake, layer: str, table: str) -> dict[str, int]:
    if not lake.exists(layer, table):
        return {}
    frame = lake.read(spark, layer, table)
    if BATCH_ID not in frame.columns:
        return {}
    # One column of the table is scanned; the result has one row per batch.
    rows = frame.groupBy(BATCH_ID).count().collect()
    return {r[BATCH_ID]: int(r["count"]) for r in rows}


def _ledger(spark: SparkSession, lake: Lake) -> list[dict]:
    if not lake.exists(*LEDGER_TABLE):
        return []
    rows = lake.read(spark, *LEDGER_TABLE).orderBy("committed_at").collect()
    return [r.asDict() for r in rows]


def status(spark: SparkSession, lake: Lake, tables: list[str] | None = None) -> list[BatchStatus]:
    """Every batch that has rows in ``raw/<table>`` or ``quarantine/<table>``, per raw table."""
    ledger = _ledger(spark, lake)
    out = []
    for table in tables or sorted(RAW):
        raw = _rows_per_batch(spark, lake, "raw", table)
        quarantined = _rows_per_batch(spark, lake, "quarantine", table)
        entries = [e for e in ledger if e["table"] == table]
        latest = {e["batch_id"]: e for e in entries}  # ordered by time: the last one wins
        first_of: dict[str, str] = {}  # fingerprint -> the earliest whole batch holding it
        for e in entries:
            if latest[e["batch_id"]]["kind"] != "undo" and e["fingerprint"]:
                first_of.setdefault(e["fingerprint"], e["batch_id"])
        for batch in sorted(set(raw) | set(quarantined)):
            entry = latest.get(batch)
            if entry is None:
                state, kind, duplicate = "incomplete", None, None
            elif entry["kind"] == "undo":
                state, kind, duplicate = "undo-incomplete", "undo", None
            elif (raw.get(batch, 0), quarantined.get(batch, 0)) != (
                entry["accepted"], entry["quarantined"]
            ):
                # rows removed or added since the batch committed (an undo cut short)
                state, kind, duplicate = "changed", entry["kind"], None
            else:
                state, kind = "whole", entry["kind"]
                first = first_of.get(entry["fingerprint"]) if entry["fingerprint"] else None
                duplicate = first if first not in (None, batch) else None
            out.append(BatchStatus(table, batch, raw.get(batch, 0), quarantined.get(batch, 0),
                                   state, kind, duplicate))
    return out


def checked(spark: SparkSession, lake: Lake, tables: list[str] | None = None) -> list[BatchStatus]:
    """``status``, with a warning logged for each batch that is not whole (and how to mend it)."""
    listed = status(spark, lake, tables)
    for b in listed:
        if b.state != "whole":
            log.warning(
                "raw/%s holds %s batch %s (%d raw, %d quarantined rows): re-run its ingest "
                "with --run-id %s to complete it, or `python -m jobs.ingest --lake %s --table %s "
                "--undo-batch %s` to remove it",
                b.table, b.state, b.batch_id, b.raw_rows, b.quarantine_rows, b.batch_id,
                lake.root, b.table, b.batch_id,
            )
    return listed


def status_frame(spark: SparkSession, listed: list[BatchStatus]) -> DataFrame:
    """Batch states as a DataFrame (``stats/batches``: what an observe run read)."""
    schema = T.StructType([
        T.StructField("table", T.StringType(), False),
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("raw_rows", T.LongType(), False),
        T.StructField("quarantine_rows", T.LongType(), False),
        T.StructField("state", T.StringType(), False),
        T.StructField("kind", T.StringType(), True),
        T.StructField("duplicate_of", T.StringType(), True),
    ])
    return spark.createDataFrame([tuple(b.to_dict()[n] for n in schema.names) for b in listed],
                                 schema)


def undo(spark: SparkSession, lake: Lake, table: str, batch_id: str) -> dict:
    """Remove batch ``batch_id``'s rows from ``raw/<table>`` and ``quarantine/<table>``, then
    record the undo in the ledger. A re-run after a kill finishes the job; a batch that is in
    neither table nor the ledger is an UnknownBatchError."""
    if table not in RAW:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(RAW)}")
    in_data = {
        layer: _rows_per_batch(spark, lake, layer, table).get(batch_id, 0)
        for layer in ("raw", "quarantine")
    }
    known = any(e["table"] == table and e["batch_id"] == batch_id for e in _ledger(spark, lake))
    if not known and not any(in_data.values()):
        raise UnknownBatchError(f"raw/{table}: no batch {batch_id!r} (see --batches)")
    versions = {}
    for layer in ("raw", "quarantine"):
        if in_data[layer]:
            versions[layer] = _delete_batch(spark, lake, layer, table, batch_id)
            failpoint(f"undo.{layer}-deleted", spark)
    app_id = f"undo:{table}:{batch_id}:{versions.get('raw')}:{versions.get('quarantine')}"
    undone = entry(
        table, batch_id, "undo", accepted=in_data["raw"], quarantined=in_data["quarantine"],
        raw_version=versions.get("raw"), quarantine_version=versions.get("quarantine"),
    )
    record(spark, lake, app_id, [undone])
    return {"table": table, "batch_id": batch_id, "raw_rows_removed": in_data["raw"],
            "quarantine_rows_removed": in_data["quarantine"]}


def _delete_batch(spark: SparkSession, lake: Lake, layer: str, table: str, batch_id: str) -> int:
    """Delete one batch's rows as one commit (its history names the undo); the new version."""
    conf = spark.conf
    previous = conf.get(_USER_METADATA, None)
    conf.set(_USER_METADATA, f"undo:{table}:{batch_id}")
    try:
        lake.delta_table(layer, table, spark).delete(F.col(BATCH_ID) == F.lit(batch_id))
    finally:
        if previous is None:
            conf.unset(_USER_METADATA)
        else:
            conf.set(_USER_METADATA, previous)
    return lake.version(layer, table)
