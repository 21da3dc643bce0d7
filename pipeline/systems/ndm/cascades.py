"""Cascade text files -> validated NDM shards (``shards/ndm/<name>``) and a user id map.

Input format (the NDM / Embedded-IC datasets): one cascade per line, ``user,timestamp`` pairs
separated by white space, users in order of infection. Users are names (numbers or strings).

Validation, first failing check wins (``REASONS``): an empty line; a token that is not exactly
``user,timestamp``; a timestamp that is not a number; a user twice in one cascade; timestamps
that decrease along the line. A failing line goes to ``quarantine/cascades_<name>`` with its
file, line number, raw text and reason; nothing is dropped silently, and the counts reconcile
(lines read = cascades kept + lines quarantined, per file).

User names become dense ids 0..U-1 in order of first appearance (train file before test file,
then line, then position), so the same files always give the same ids. The training file's
cascades split into ``train`` / ``val`` by a seeded hash of the cascade id (``val_fraction`` of
them, approximately); the test file's cascades are ``test``.

Also here: ``dense_user_ids`` and ``cascade_rows``, shared with the generated-world builder
(``pipeline.systems.ndm.shards``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contracts import ndm as contract
from pipeline.ingest import RAW_TEXT, ROW, SOURCE, read_lines
from pipeline.lake import check_name
from pipeline.schemas import spark_schema

#: One row per cascade, as ``contracts.ndm.CASCADES`` declares.
CASCADES = spark_schema(contract.CASCADES)
#: Dense user id -> the user's name in the source files (``contracts.ndm.USERS``).
USER_MAP = spark_schema(contract.USERS)

EMPTY, BAD_PAIR, BAD_TIME, DUPLICATE, DECREASING = (
    "empty line",
    "bad pair (expected user,timestamp)",
    "non-numeric timestamp",
    "duplicate user within cascade",
    "timestamps decreasing",
)
REASONS = (EMPTY, BAD_PAIR, BAD_TIME, DUPLICATE, DECREASING)

NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
# Cascade ids: file index * FILE_STRIDE + line number (train file 0, test file 1).
FILE_STRIDE = 1_000_000_000


def parse_lines(lines: DataFrame) -> DataFrame:
    """Lines (``_raw``, ``_source_file``, ``_row_number``, ``file_index``) -> the same plus
    ``tokens``, ``user_names``, ``times`` and ``reason`` (null when the line is valid)."""
    tokens = F.filter(F.split(F.trim(F.col(RAW_TEXT)), r"\s+"), lambda t: t != "")
    return (
        lines.withColumn("tokens", tokens)
        .withColumn(
            "user_names", F.transform("tokens", lambda t: F.get(F.split(t, ",", -1), 0))
        )
        .withColumn(
            "time_text", F.transform("tokens", lambda t: F.get(F.split(t, ",", -1), 1))
        )
        .withColumn("reason", _reason())
        .withColumn(
            "times",
            F.when(
                F.col("reason").isNull(),
                F.transform("time_text", lambda t: t.try_cast("double")),
            ),
        )
        .drop("time_text")
    )


def _reason() -> Column:
    good_pair = F.forall("tokens", lambda t: t.rlike(r"^[^,\s]+,[^,\s]+$"))
    numeric = F.forall("time_text", lambda t: t.rlike(NUMBER))
    duplicate = F.size(F.array_distinct("user_names")) < F.size("user_names")
    # try_cast: under ANSI mode a plain cast of a bad number raises even in an unused branch.
    times = F.transform("time_text", lambda t: t.try_cast("double"))
    decreasing = (F.size("tokens") > 1) & F.exists(
        F.sequence(F.lit(1), F.greatest(F.size("tokens") - 1, F.lit(1))),
        lambda i: F.element_at(times, i) > F.element_at(times, i + 1),
    )
    return (
        F.when(F.size("tokens") == 0, F.lit(EMPTY))
        .when(~good_pair, F.lit(BAD_PAIR))
        .when(~numeric, F.lit(BAD_TIME))
        .when(duplicate, F.lit(DUPLICATE))
        .when(decreasing, F.lit(DECREASING))
    )


def quarantine_rows(parsed: DataFrame, batch_id: str, ingested_at: dt.datetime) -> DataFrame:
    """Invalid lines in ``pipeline.schemas.QUARANTINE`` layout."""
    return parsed.where(F.col("reason").isNotNull()).select(
        F.lit(batch_id).alias("batch_id"),
        F.col(SOURCE).alias("source_file"),
        F.col(ROW).cast("long").alias("row_number"),
        F.col(RAW_TEXT).alias("raw"),
        F.col("reason"),
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
    )


def dense_user_ids(events: DataFrame) -> DataFrame:
    """(user_name, order...) events -> ``USER_MAP``: ids 0..U-1 by first appearance.

    ``events`` has ``user_name`` (string) and ``order`` (a struct that sorts events in the order
    they were seen); ties cannot happen when ``order`` is unique per event.
    """
    first = events.groupBy("user_name").agg(F.min("order").alias("first"))
    # The user table is small next to the events (one row per user), so one ordered window is
    # fine here.
    ranked = Window.orderBy("first", "user_name")
    return first.select(
        (F.row_number().over(ranked) - 1).cast("long").alias("user_id"),
        F.col("user_name").cast("string"),
    )


def cascade_rows(events: DataFrame, user_map: DataFrame) -> DataFrame:
    """Events (cascade_id, split, pos, user_name, time) + the id map -> ``CASCADES`` rows."""
    users_type, times_type = CASCADES["users"].dataType, CASCADES["times"].dataType
    return (
        events.join(F.broadcast(user_map), "user_name")
        .groupBy("cascade_id", "split")
        .agg(F.array_sort(F.collect_list(F.struct("pos", "user_id", "time"))).alias("ev"))
        .select(
            F.col("cascade_id").cast("long"),
            F.col("split"),
            F.transform("ev", lambda e: e["user_id"]).cast(users_type).alias("users"),
            F.transform("ev", lambda e: e["time"]).cast(times_type).alias("times"),
        )
    )


def assign_split(file_index: Column, cascade_id: Column, val_fraction: float, seed: int) -> Column:
    """``test`` for the test file; ``val`` for a seeded-hash fraction of the training file."""
    bucket = F.pmod(F.xxhash64(cascade_id, F.lit(seed)), F.lit(1_000_000)) / 1_000_000.0
    return (
        F.when(file_index == 1, F.lit("test"))
        .when(bucket < val_fraction, F.lit("val"))
        .otherwise(F.lit("train"))
    )


def read_cascade_files(spark: SparkSession, train: str | Path, test: str | Path) -> DataFrame:
    """Both files' lines with ``file_index`` (0 train, 1 test)."""
    parts = []
    for index, path in enumerate((train, test)):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cascade file {path} does not exist")
        parts.append(read_lines(spark, [path]).withColumn("file_index", F.lit(index)))
    return parts[0].unionByName(parts[1])


def import_cascades(
    spark: SparkSession,
    train: str | Path,
    test: str | Path,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    batch_id: str = "",
    ingested_at: dt.datetime | None = None,
) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """(cascades, user map, quarantine rows, per-file line counts) of the two files."""
    ingested_at = ingested_at or dt.datetime.now(dt.UTC)
    parsed = parse_lines(read_cascade_files(spark, train, test)).withColumn(
        "cascade_id", F.col("file_index").cast("long") * FILE_STRIDE + F.col(ROW)
    )
    parsed = parsed.persist()
    good = parsed.where(F.col("reason").isNull()).withColumn(
        "split", assign_split(F.col("file_index"), F.col("cascade_id"), val_fraction, seed)
    )
    events = good.select(
        "cascade_id",
        "split",
        F.posexplode(F.arrays_zip("user_names", "times")).alias("pos", "ev"),
    ).select(
        "cascade_id",
        "split",
        "pos",
        F.col("ev.user_names").alias("user_name"),
        F.col("ev.times").alias("time"),
        F.struct(F.col("cascade_id").alias("c"), F.col("pos").alias("p")).alias("order"),
    )
    user_map = dense_user_ids(events.select("user_name", "order"))
    cascades = cascade_rows(events.drop("order"), user_map)
    quarantine = quarantine_rows(parsed, batch_id, ingested_at)
    counts = parsed.groupBy(F.col(SOURCE).alias("source_file"), "file_index").agg(
        F.count(F.lit(1)).alias("lines"),
        F.sum(F.when(F.col("reason").isNull(), 1).otherwise(0)).alias("kept"),
        F.sum(F.when(F.col("reason").isNotNull(), 1).otherwise(0)).alias("quarantined"),
    )
    return cascades, user_map, quarantine, counts


def write_cascade_shards(
    spark: SparkSession, lake, name: str, cascades: DataFrame, users: DataFrame, app_id: str
) -> tuple[list, dict]:
    """Commit ``shards/ndm/<name>`` and its user map (overwrite); return the commits and a
    summary read back from the committed snapshot: cascades and events per split, n_users."""
    check_name(name, "dataset name")
    table = contract.cascades_table(name)
    commits = [
        lake.write(cascades, "shards", table, mode="overwrite", app_id=app_id,
                   expected_schema=CASCADES),
        lake.write(users, "shards", contract.users_table(name), mode="overwrite", app_id=app_id,
                   expected_schema=USER_MAP),
    ]
    per_split = {
        r["split"]: {"cascades": r["cascades"], "events": r["events"]}
        for r in lake.read(spark, "shards", table)
        .groupBy("split")
        .agg(F.count(F.lit(1)).alias("cascades"), F.sum(F.size("users")).alias("events"))
        .collect()  # one row per split
    }
    n_users = lake.read(spark, "shards", contract.users_table(name)).count()
    return commits, {"splits": per_split, "n_users": n_users}


def write_manifest(lake, name: str, run_id: str, info: dict, app_id: str):
    """Commit the one-row ``shards/ndm/<name>_manifest`` (``json`` holds ``info``)."""
    import json

    import pyarrow as pa

    return lake.write_arrow(
        pa.table({"name": [name], "run_id": [run_id], "json": [json.dumps(info)]}),
        "shards",
        contract.manifest_table(name),
        mode="overwrite",
        app_id=app_id,
    )


def import_to_lake(
    spark: SparkSession,
    lake,
    name: str,
    train: str | Path,
    test: str | Path,
    *,
    run_id: str,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict:
    """Import both files into ``shards/ndm/<name>`` (+ users, manifest) and
    ``quarantine/cascades_<name>``; return the manifest's contents plus the commits.

    Reconciles before the manifest is written: the cascades committed must equal the lines
    kept (every line is kept or quarantined with its reason; a mismatch raises and no manifest
    is written, so no manifest ever claims cascades the shards do not hold).
    """
    from pipeline.schemas import QUARANTINE

    check_name(name, "dataset name")  # before any Spark work: the name becomes folders
    app_id = f"import_cascades-{name}-{run_id}"
    cascades, users, quarantine, counts = import_cascades(
        spark, train, test, val_fraction=val_fraction, seed=seed, batch_id=run_id,
        ingested_at=dt.datetime.now(dt.UTC),
    )
    files = [r.asDict() for r in counts.orderBy("file_index").collect()]  # two rows
    results, summary = write_cascade_shards(spark, lake, name, cascades, users, app_id)
    results.append(
        lake.write(quarantine, "quarantine", f"cascades_{name}", app_id=app_id,
                   expected_schema=QUARANTINE)
    )
    reasons = {
        r["reason"]: r["n"]
        for r in quarantine.groupBy("reason").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    kept = sum(s["cascades"] for s in summary["splits"].values())
    if kept != sum(f["kept"] for f in files):
        raise RuntimeError(f"reconciliation failed: {kept} cascades written, files say {files}")
    info = {
        "name": name,
        "run_id": run_id,
        "n_users": summary["n_users"],
        "splits": summary["splits"],
        "files": files,
        "quarantine_reasons": reasons,
        "val_fraction": val_fraction,
        "seed": seed,
    }
    results.append(write_manifest(lake, name, run_id, info, app_id))
    return {**info, "commits": [str(r) for r in results]}
