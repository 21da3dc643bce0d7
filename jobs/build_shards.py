"""Build the training shards of one task into ``shards/<task>``.

    python -m jobs.build_shards --lake LAKE --task infnet [--run-id ID] [task options]
    spark-submit --properties-file spark-defaults.conf jobs/build_shards.py --lake LAKE --task ndm
"""

from __future__ import annotations

import argparse
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
    from pipeline import logs, systems

    systems.load_all()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", choices=sorted(systems.BUILDERS))
    known, _ = pre.parse_known_args(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--task", required=True, choices=sorted(systems.BUILDERS))
    parser.add_argument("--run-id", default=None, help="idempotency key (default: derived)")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-defaults)")
    logs.add_argument(parser)
    if known.task in systems.ARGUMENTS:
        systems.ARGUMENTS[known.task](parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline import batches, logs, systems
    from pipeline.faults import failpoint
    from pipeline.lake import InvalidNameError, Lake, check_name
    from pipeline.session import get_spark

    logs.configure(args.log_level)
    try:
        if getattr(args, "name", None) is not None:  # a task's dataset name becomes folders
            check_name(args.name, "--name")
    except InvalidNameError as err:
        print(f"build_shards: error: {err}", file=sys.stderr)
        return 2
    spark = get_spark(f"sharecast-build-shards-{args.task}", master=args.master)
    lake = Lake(args.lake)
    # Shards read raw tables: say (in the log and the summary) if a batch there is not whole.
    unwhole = [b.to_dict() for b in batches.checked(spark, lake) if b.state != "whole"]
    summary = systems.BUILDERS[args.task](spark, lake, args)
    failpoint("build_shards.committed", spark)
    if unwhole:
        summary = {**summary, "batches_not_whole": unwhole}
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    from jobs import run as run_job

    sys.exit(run_job("build_shards", main))
