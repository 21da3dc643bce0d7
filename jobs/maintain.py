"""Lake maintenance: compact small files (Delta OPTIMIZE, Z-ordered where a read pattern wants
it), then delete files no version within the retention period needs (Delta VACUUM).

    python -m jobs.maintain --lake LAKE [--tables raw/shares,stats/ci] [--retain-hours 168]
    spark-submit --properties-file spark-defaults.conf jobs/maintain.py --lake LAKE --dry-run

VACUUM keeps Delta's retention safety: a retention below the table's
``delta.deletedFileRetentionDuration`` (7 days unless set) is refused, since a running job may
be about to commit files younger than that, and time travel within the retention keeps working.
Also removes generator scratch folders (``LAKE/_scratch/<run>``) older than the retention.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

if not __package__:
    # Run as a file (spark-submit jobs/maintain.py): make the repository's packages importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

log = logging.getLogger(__name__)

# Z-order columns per table: the columns the statistics and shard builders filter and join on.
ZORDER = {
    "raw/shares": ["receiver_id", "item_id"],
    "raw/purchases": ["user_id", "item_id"],
}


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
    get_spark("sharecast-maintain", master=args.master)  # the lake's operations use it
    lake = Lake(args.lake)
    names = args.tables.split(",") if args.tables else lake.tables()
    report = {}
    for name in names:
        layer, _, table = name.partition("/")
        if not lake.exists(layer, table):
            print(f"maintain: error: no Delta table {name!r} in {lake.root}", file=sys.stderr)
            return 2
        entry: dict = {}
        if not (args.no_optimize or args.dry_run):
            entry["optimize"] = lake.optimize(layer, table, ZORDER.get(name))
        removed = lake.vacuum(layer, table, args.retain_hours, dry_run=args.dry_run)
        entry["vacuum" if not args.dry_run else "would_vacuum"] = len(removed)
        report[name] = entry
        log.info("%s: %s", name, entry)
    if lake.is_local and not args.dry_run:
        scratch = Path(lake.location("_scratch"))
        cutoff = time.time() - args.retain_hours * 3600
        stale = [p for p in scratch.glob("*") if p.stat().st_mtime < cutoff]
        for folder in stale:
            lake.remove(str(folder))
        report["_scratch"] = {"removed": len(stale)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
