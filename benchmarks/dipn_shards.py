"""Benchmark: build DIPN shards on a generated world; print wall time, samples (cuts) per second
and peak memory (resident set of the driver: the Python process plus its Spark JVM, which in
local mode also runs the executors).

    python benchmarks/dipn_shards.py --lake /tmp/dipn-bench --share-records 100000 \
        --cuts-per-day 60 --repeat 2

The world is generated once (the DIPN world of the README: a touch session around every browse)
unless ``LAKE`` already holds one; each repeat is a fresh ``python -m jobs.build_shards --task
dipn`` process, which rebuilds the shards from the raw tables. The figure quoted is the median
over ``--repeat`` runs. Not a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from generate_world import run_sampled  # beside this script

#: The DIPN world of the README, less its size.
WORLD = ("--weeks", "3", "--set", "touch_session_rate=1.0", "--set", "buy_delay_hours=1.0",
         "--set", "browses_per_record=2.0", "--set", "base_logit=-2.0")


def _json_tail(out: str) -> dict:
    return json.loads(out[out.index("{"):])


def generate(lake: Path, records: int, seed: int) -> dict:
    cmd = [sys.executable, "-m", "jobs.generate_world", "--lake", str(lake),
           "--share-records", str(records), "--seed", str(seed), *WORLD]
    code, out, _, wall, peak = run_sampled(cmd)
    if code:
        raise SystemExit(f"generate_world failed ({code}):\n{out[-2000:]}")
    rows = _json_tail(out)["rows"]
    return {"step": "generate", "wall_s": round(wall, 1), "peak_rss_gib": round(peak / 2**30, 2),
            "touches": rows.get("touches"), "browses": rows.get("browses")}


def build(lake: Path, cuts_per_day: int, train_days: int) -> dict:
    # A run id of its own: the default (a digest of the options and the raw versions) would
    # make a repeat over the same lake a no-op commit, which skips the write being measured.
    run_id = f"bench-{time.time_ns()}"
    cmd = [sys.executable, "-m", "jobs.build_shards", "--lake", str(lake), "--task", "dipn",
           "--cuts-per-day", str(cuts_per_day), "--train-days", str(train_days),
           "--run-id", run_id]
    code, out, err, wall, peak = run_sampled(cmd)
    if code:
        raise SystemExit(f"build_shards failed ({code}):\n{(out + err)[-3000:]}")
    manifest = _json_tail(out)
    counts = manifest.get("counts", {})
    samples = sum(c.get("cuts", 0) for c in counts.values())
    return {"step": "build_shards", "wall_s": round(wall, 1),
            "peak_rss_gib": round(peak / 2**30, 2), "samples": samples,
            "rows": sum(c.get("rows", 0) for c in counts.values()),
            "samples_per_s": round(samples / wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, default=Path("/tmp/sharecast-dipn-bench"))
    parser.add_argument("--share-records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cuts-per-day", type=int, default=60)
    parser.add_argument("--train-days", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if not (args.lake / "raw" / "touches").exists():
        print(json.dumps(generate(args.lake, args.share_records, args.seed)), flush=True)
    runs = []
    for _ in range(args.repeat):
        runs.append(build(args.lake, args.cuts_per_day, args.train_days))
        print(json.dumps(runs[-1]), flush=True)
    print(f"{runs[-1]['samples']:,} samples: median wall "
          f"{statistics.median(r['wall_s'] for r in runs):.1f} s, "
          f"{statistics.median(r['samples_per_s'] for r in runs):,.0f} samples/s, "
          f"peak RSS {max(r['peak_rss_gib'] for r in runs):.2f} GiB over {len(runs)} run(s)",
          flush=True)


if __name__ == "__main__":
    main()
