"""What the shard builders share: timed, kept intermediate results (``Steps``) and the frame
that commits a build's rows and manifest (``commit_shards``)."""

from __future__ import annotations

import json
import logging
import time

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame

from contracts.runs import run_digest
from pipeline.faults import failpoint

log = logging.getLogger(__name__)

#: Serialized (Kryo) in memory, spilling to local disk: a 100M-record world's 30 days of share
#: records do not fit the driver heap as Java objects.
KEEP = StorageLevel(True, True, False, False)


class Steps:
    """Keeps the builder's reused intermediate results, one at a time.

    Each is computed once and kept as a local checkpoint: unlike ``cache()`` this also cuts the
    query plan there, so later plans do not carry (and re-print) every earlier step; with a
    dozen nested cached steps the plan strings alone filled the driver's heap. With ``measure`` the
    rows and wall seconds of each step are logged as it finishes and kept for the manifest,
    so a run's log says where the time goes.
    """

    def __init__(self, measure: bool = True):
        self.measure = measure
        self.record: dict[str, dict] = {}

    def __call__(self, name: str, df: DataFrame) -> DataFrame:
        started = time.perf_counter()
        # Lazy, then counted: one pass computes and stores it (eager + count would be two).
        kept = df.localCheckpoint(eager=not self.measure, storageLevel=KEEP)
        if self.measure:
            rows = kept.count()
            seconds = time.perf_counter() - started
            self.record[name] = {"rows": rows, "seconds": round(seconds, 1)}
            log.info("%s: %s rows, %.1f s", name, f"{rows:,}", seconds)
        failpoint(f"build_shards.step-{name}", df.sparkSession)
        return kept


def shard_run(lake, task: str, config: dict, raw_tables: tuple[str, ...],
              run_id: str | None) -> tuple[str, str, dict]:
    """(run id, app id, raw versions) of a shard build: the run id defaults to a digest of
    ``config`` and the raw tables' versions, and every table the build commits carries the app
    id, so a re-run over the same input commits nothing new."""
    versions = {t: lake.version("raw", t) for t in raw_tables}
    run_id = run_id or run_digest({"config": config, "raw": versions})
    return run_id, f"build_shards-{task}-{run_id}", versions


def commit_shards(
    spark,
    lake,
    task: str,
    config: dict,
    raw_tables: tuple[str, ...],
    build,
    manifest,
    *,
    run_id: str | None,
    tables: tuple[str, str],
    schema_version: int,
    shard_schema,
    rows_per_file: int,
) -> dict:
    """The common frame of a shard builder: read the raw tables, build the rows
    (``build(raw, steps) -> (rows, facts)``, ``raw`` in ``raw_tables``' order), commit them,
    then the one-row manifest (``manifest(written, facts) -> dict``, plus the run id, raw
    versions, wall seconds and steps). The run id defaults to a digest of ``config`` and the
    raw tables' versions, so a re-run over the same input commits nothing new."""
    shard_table, manifest_table = tables
    run_id, app_id, versions = shard_run(lake, task, config, raw_tables, run_id)
    started = time.perf_counter()
    steps = Steps()
    rows, facts = build([lake.read(spark, "raw", t) for t in raw_tables], steps)
    result = lake.write(
        rows, "shards", shard_table, mode="overwrite", app_id=app_id,
        expected_schema=shard_schema, max_records_per_file=rows_per_file,
    )
    build_seconds = time.perf_counter() - started
    info = manifest(lake.read(spark, "shards", shard_table), facts)
    info.update(run_id=run_id, raw_versions=versions, build_seconds=round(build_seconds, 1),
                steps=steps.record)
    lake.write_arrow(
        pa.table({"schema_version": [schema_version], "run_id": [run_id],
                  "json": [json.dumps(info, default=str)]}),
        "shards", manifest_table, mode="overwrite", app_id=app_id,
    )
    return {"shards": str(result), **info}
