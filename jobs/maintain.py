"""Lake maintenance: compact small files (Delta OPTIMIZE, Z-ordered where a read pattern wants
it), then delete files no version within the retention period needs (Delta VACUUM).

    python -m jobs.maintain --lake LAKE [--tables raw/shares,stats/ci] [--retain-hours 168]
    spark-submit --properties-file spark-defaults.conf jobs/maintain.py --lake LAKE --dry-run

VACUUM keeps Delta's retention safety: a retention below the table's
``delta.deletedFileRetentionDuration`` (7 days unless set) is refused, since a running job may
be about to commit files younger than that, and time travel within the retention keeps working.

Also removes what killed jobs leave outside the tables, once nothing in it has changed for
longer than the retention: generator scratch folders (``LAKE/_scratch/<run>``, local lakes) and
Spark's ``blockmgr-<uuid>`` / ``spark-<uuid>`` folders in this machine's Spark local
directories (``SPARK_LOCAL_DIRS``, else ``spark.local.dir``, else the JVM's temp folder).
``--dry-run`` counts them and removes nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

if not __package__:
    # Run as a file (spark-submit jobs/<name>.py): the repository root takes this folder's
    # place on the path, so its packages import and jobs/pipeline.py cannot hide `pipeline`.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))

log = logging.getLogger(__name__)

# Z-order columns per table: the columns the statistics and shard builders filter and join on.
ZORDER = {
    "raw/shares": ["receiver_id", "item_id"],
    "raw/purchases": ["user_id", "item_id"],
}


# The folders a Spark JVM makes in its local directories and deletes only when it exits cleanly.
SPARK_LEFTOVER = re.compile(
    r"(blockmgr|spark)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pipeline import logs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root (folder or file system URI)")
    parser.add_argument("--tables", default=None,
                        help="comma-separated layer/table names (default: every table)")
    parser.add_argument("--retain-hours", type=float, default=168.0,
                        help="VACUUM retention in hours (default 168, Delta's own)")
    parser.add_argument("--no-optimize", action="store_true", help="only VACUUM")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what VACUUM would delete; change nothing")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-defaults)")
    logs.add_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline import logs
    from pipeline.lake import Lake
    from pipeline.session import get_spark

    logs.configure(args.log_level)
    spark = get_spark("sharecast-maintain", master=args.master)  # the lake's operations use it
    lake = Lake(args.lake)
    names = args.tables.split(",") if args.tables else lake.tables()
    report = {}
    for name in names:
        layer, _, table = name.partition("/")
        try:
            exists = lake.exists(layer, table)
        except ValueError as err:  # an unknown layer, a name that would leave the lake
            print(f"maintain: error: {err}", file=sys.stderr)
            return 2
        if not exists:
            print(f"maintain: error: no Delta table {name!r} in {lake.root}", file=sys.stderr)
            return 2
        entry: dict = {}
        if not (args.no_optimize or args.dry_run):
            entry["optimize"] = lake.optimize(layer, table, ZORDER.get(name))
        removed = lake.vacuum(layer, table, args.retain_hours, dry_run=args.dry_run)
        entry["vacuum" if not args.dry_run else "would_vacuum"] = len(removed)
        report[name] = entry
        log.info("%s: %s", name, entry)
    cutoff = time.time() - args.retain_hours * 3600
    report.update(clear_leftovers(spark, lake, cutoff, args.dry_run))
    print(json.dumps(report, indent=2))
    return 0


def clear_leftovers(spark, lake, cutoff: float, dry_run: bool) -> dict:
    """Remove (or with ``dry_run`` count) what killed jobs left, unchanged since ``cutoff``."""
    import shutil

    spark_folders = [
        folder
        for local in spark_local_dirs(spark)
        for folder in local.glob("*")
        if SPARK_LEFTOVER.fullmatch(folder.name)
    ]
    leftovers = {"_spark_local": (spark_folders, lambda f: shutil.rmtree(f, ignore_errors=True))}
    if lake.is_local:
        scratch = list(Path(lake.location("_scratch")).glob("*"))
        leftovers["_scratch"] = (scratch, lambda f: lake.remove(str(f)))
    report = {}
    for name, (folders, remove) in leftovers.items():
        stale = [f for f in folders if f.is_dir() and unchanged_since(f, cutoff)]
        if not dry_run:
            for folder in stale:
                remove(folder)
        report[name] = {"would_remove" if dry_run else "removed": len(stale)}
        log.info("%s: %s", name, report[name])
    return report


def spark_local_dirs(spark) -> list[Path]:
    """This machine's Spark local directories, chosen as Spark chooses them."""
    value = (
        os.environ.get("SPARK_LOCAL_DIRS")
        or spark.sparkContext.getConf().get("spark.local.dir", None)
        or spark.sparkContext._jvm.System.getProperty("java.io.tmpdir")
    )
    return [Path(part) for part in value.split(",") if part]


def unchanged_since(folder: Path, cutoff: float) -> bool:
    """Whether nothing in the folder (itself included) was modified after ``cutoff``: a
    long-running job keeps writing inside a folder whose own time stays that of its creation."""
    if folder.lstat().st_mtime >= cutoff:
        return False
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                if os.lstat(os.path.join(parent, name)).st_mtime >= cutoff:
                    return False
            except FileNotFoundError:  # removed while we looked: a job at work
                return False
    return True


if __name__ == "__main__":
    from jobs import run as run_job

    sys.exit(run_job("maintain", main))
