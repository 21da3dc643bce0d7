"""Compute every observational statistic into ``stats/*`` (InfNet Sec. 3, RiseNet Sec. 2-3).

    python -m jobs.observe --lake LAKE [--run-id ID] [--window-days 7] [...]
    spark-submit --properties-file spark-defaults.conf jobs/observe.py --lake LAKE
"""

from __future__ import annotations

import argparse
import dataclasses
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
    from pipeline.stats.observe import ObserveConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--run-id", default=None, help="idempotency key (default: derived)")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-defaults)")
    parser.add_argument("--summary", default=None, help="also write the JSON summary here")
    logs.add_argument(parser)
    for f in dataclasses.fields(ObserveConfig):
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
            help=f"(default {f.default})",
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline import logs
    from pipeline.lake import Lake
    from pipeline.session import get_spark
    from pipeline.stats.observe import RAW_TABLES, ObserveConfig, Observer, default_run_id

    logs.configure(args.log_level)
    config = ObserveConfig(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(ObserveConfig)}
    )
    lake = Lake(args.lake)
    spark = get_spark("sharecast-observe", master=args.master)
    missing = [f"raw/{t}" for t in RAW_TABLES if not lake.exists("raw", t)]
    if missing:
        print(f"observe: error: {lake.root} has no {', '.join(missing)}: generate a world "
              "(jobs.generate_world) or ingest records (jobs.ingest) first", file=sys.stderr)
        return 2
    run_id = args.run_id or default_run_id(lake, config)
    summary = Observer(spark, lake, config, run_id).run()
    text = json.dumps(summary, indent=2, default=str)
    if args.summary:
        with open(args.summary, "w") as fh:
            fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    from jobs import run as run_job

    sys.exit(run_job("observe", main))
