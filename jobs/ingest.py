"""Validate raw CSV / JSON Lines / Parquet files into ``raw/<table>`` and ``quarantine/<table>``.

    python -m jobs.ingest --lake LAKE --table shares --input PATH --format csv [--run-id ID]
    spark-submit --properties-file spark-defaults.conf jobs/ingest.py \\
        --lake LAKE --table shares --input PATH --format csv [--run-id ID]

    python -m jobs.ingest --lake LAKE --batches [--table shares]
    python -m jobs.ingest --lake LAKE --table shares --undo-batch ID

Prints a JSON summary (read == accepted + quarantined). Re-running with the same run id (by
default a hash of the input files' names, sizes and mtimes) commits nothing. Exits 2 with a
one-line error naming the file (never quoting it) when the input is missing, is not the named
format or cannot be read to its end, or when the lake is not a folder; nothing is committed
then. CSV and JSON Lines files may be gzip (.gz), bzip2 (.bz2) or zstd (.zst) compressed.

Each run is a batch: its rows in ``raw/<table>`` and ``quarantine/<table>`` carry its run id as
``batch_id``, and a row in ``ledger/ingest`` committed last marks it whole. ``--batches`` lists
every batch with its state (whole, incomplete: killed between its commits, re-run it with the same
``--run-id``; or a duplicate of an earlier batch of the same files); ``--undo-batch ID`` removes
one batch's rows from both tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

if not __package__:
    # Run as a file (spark-submit jobs/<name>.py): the repository root takes this folder's
    # place on the path, so its packages import and jobs/pipeline.py cannot hide `pipeline`.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pipeline import logs
    from pipeline.ingest import FORMATS
    from pipeline.schemas import RAW

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--table", choices=sorted(RAW), help="the raw table")
    parser.add_argument("--input", help="a file or a folder of files")
    parser.add_argument("--format", choices=FORMATS)
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--batches", action="store_true", help="list the lake's batches and their state, as JSON"
    )
    action.add_argument("--undo-batch", metavar="ID", help="remove batch ID from --table")
    parser.add_argument("--run-id", default=None, help="idempotency key (default: input hash)")
    parser.add_argument(
        "--min-ts",
        type=dt.datetime.fromisoformat,
        default=None,
        help="earliest accepted time, ISO-8601 (default 2000-01-01, UTC)",
    )
    parser.add_argument(
        "--max-ts",
        type=dt.datetime.fromisoformat,
        default=None,
        help="latest accepted time, ISO-8601 (default now + 1 day, UTC)",
    )
    parser.add_argument("--master", default=None, help="Spark master (default: spark-defaults)")
    logs.add_argument(parser)
    args = parser.parse_args(argv)
    if args.batches:
        return args
    needed = ["table"] if args.undo_batch else ["table", "input", "format"]
    missing = [f"--{name}" for name in needed if getattr(args, name) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline import logs
    from pipeline.ingest import IngestInputError, check_input, check_lake_location, ingest
    from pipeline.lake import Lake
    from pipeline.schemas import SchemaMismatchError

    logs.configure(args.log_level)
    try:
        # A missing or wrong-format input, or a lake that cannot be a folder, fails here,
        # before a Spark session is started.
        check_lake_location(args.lake)
        if args.batches or args.undo_batch:
            return _batches(args)
        check_input(args.input, args.format, args.table)
        from pipeline.session import get_spark

        spark = get_spark(f"sharecast-ingest-{args.table}", master=args.master)
        summary = ingest(
            spark,
            Lake(args.lake),
            args.table,
            args.input,
            args.format,
            run_id=args.run_id,
            min_ts=args.min_ts,
            max_ts=args.max_ts,
        )
    except (IngestInputError, SchemaMismatchError) as err:
        # The command's own error message (like argparse's), not a log line: one line to match.
        print(f"ingest: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


def _batches(args: argparse.Namespace) -> int:
    from pipeline import batches
    from pipeline.lake import Lake
    from pipeline.session import get_spark

    spark = get_spark("sharecast-ingest-batches", master=args.master)
    lake = Lake(args.lake)
    if args.batches:
        listed = batches.status(spark, lake, [args.table] if args.table else None)
        print(json.dumps([b.to_dict() for b in listed], indent=2))
        return 0
    try:
        done = batches.undo(spark, lake, args.table, args.undo_batch)
    except batches.UnknownBatchError as err:
        print(f"ingest: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(done, indent=2))
    return 0


if __name__ == "__main__":
    from jobs import run as run_job

    sys.exit(run_job("ingest", main))
