"""Time ``Lake.write`` of a share-record table (Spark writes, the lake commits), median of runs.

    python benchmarks/lake_write.py --records 10000000 --runs 3

The rows are drawn by Spark itself (ids from ``range``, hashed columns), partitioned by week like
``raw/shares``, so the figure is the write and commit path alone, not a generator.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def shares(spark, records: int):
    from pyspark.sql import functions as F

    start = F.lit("2026-01-05 00:00:00").cast("timestamp")
    return (
        spark.range(records)
        .select(
            (F.abs(F.xxhash64("id", F.lit(1))) % 1_000_000).alias("sender_id"),
            (F.abs(F.xxhash64("id", F.lit(2))) % 1_000_000).alias("receiver_id"),
            (F.abs(F.xxhash64("id", F.lit(3))) % 100_000).alias("item_id"),
            (start + F.make_interval(secs=(F.col("id") * 7) % (12 * 7 * 86400))).alias("ts"),
        )
        .withColumn("week_start", F.to_date(F.date_trunc("week", "ts")))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    from pipeline.lake import Lake
    from pipeline.session import get_spark

    spark = get_spark("lake-write-benchmark")
    times = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as root:
            lake = Lake(root)
            began = time.perf_counter()
            result = lake.write(
                shares(spark, args.records), "raw", "shares",
                partition_by=["week_start"], app_id=f"bench-{run}",
            )
            times.append(time.perf_counter() - began)
            print(f"run {run}: {times[-1]:.1f} s ({result})", flush=True)
    print(f"{args.records} records: median {statistics.median(times):.1f} s "
          f"over {args.runs} runs ({', '.join(f'{t:.1f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
