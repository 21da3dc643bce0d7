"""Generate a synthetic Taocode world into the lake (``raw/*`` and ``truth/world``).

    python -m jobs.generate_world --lake LAKE --share-records 1000000 --seed 7 [--weeks 12]
        [--effects all|none|E1,E3|-E2] [--run-id ID] [--master spark://127.0.0.1:7077]
    spark-submit --properties-file spark-defaults.conf jobs/generate_world.py --lake LAKE ...

The planted mechanisms and their strengths are documented in ``pipeline/world.py`` and
recorded in ``truth/world``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--share-records", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 5))
    parser.add_argument("--effects", default="all", help="all, none, E1,E3 or -E2 (all but)")
    parser.add_argument("--run-id", default=None, help="idempotency key (default: config hash)")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-defaults)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline.lake import Lake
    from pipeline.session import get_spark
    from pipeline.world import WorldConfig, generate_to_lake, parse_effects

    try:
        cfg = WorldConfig(
            share_records=args.share_records,
            seed=args.seed,
            weeks=args.weeks,
            start=args.start,
            effects=parse_effects(args.effects),
        )
    except ValueError as err:
        print(f"generate_world: {err}", file=sys.stderr)
        return 2
    spark = get_spark("sharecast-generate-world", master=args.master)
    began = time.perf_counter()
    summary = generate_to_lake(spark, Lake(args.lake), cfg, args.run_id)
    summary["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
