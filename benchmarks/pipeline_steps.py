"""Benchmark: the Spark side's steps one after another on a fresh lake, each a fresh job
process; print each step's wall time and peak memory (the job's Python process and its JVM).

    python benchmarks/pipeline_steps.py --records 1000000 --lake /tmp/steps-lake

Steps: ``jobs.generate_world``, ``jobs.observe``, ``jobs.build_shards --task infnet``. Not a
test: the machine is shared and noisy; compare two code versions by alternating runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_world import run_sampled  # noqa: E402


def timed(cmd: list[str]) -> dict:
    returncode, _, err, wall, peak = run_sampled(cmd)
    if returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({returncode}):\n{err[-2000:]}")
    return {"wall_s": round(wall, 1), "peak_rss_gib": round(peak / 2**30, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--lake", type=Path, default=Path("/tmp/sharecast-steps-lake"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    shutil.rmtree(args.lake, ignore_errors=True)
    lake = ["--lake", str(args.lake)]
    steps = {
        "generate_world": ["jobs.generate_world", *lake, "--share-records", str(args.records),
                           "--seed", str(args.seed)],
        "observe": ["jobs.observe", *lake],
        "build_shards infnet": ["jobs.build_shards", *lake, "--task", "infnet"],
    }
    for name, argv in steps.items():
        figures = timed([sys.executable, "-m", *argv])
        print(json.dumps({"step": name, "records": args.records, **figures}), flush=True)
    shutil.rmtree(args.lake, ignore_errors=True)


if __name__ == "__main__":
    main()
