"""Benchmark: generate and commit a world of N share records; print wall time, records/s and
peak memory (resident set of the driver: the Python process plus its Spark JVM, which in local
mode also runs the executors).

    python benchmarks/generate_world.py --records 1000000 10000000 --repeat 3 --lake /tmp/bench

Each run is a fresh ``python -m jobs.generate_world`` process on a fresh lake folder; the
figure quoted is the median over ``--repeat`` runs. Not a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and its descendants, from /proc.

    A process whose name matches its parent's is a fork (the JVM forks short-lived helpers for
    local file-system calls) and shares the parent's pages: counting it would double the JVM.
    """
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                head, tail = fh.read().rsplit(")", 1)
            fields = tail.split()
            name, ppid, pages = head.split("(", 1)[1], int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        info[int(entry)] = (name, pages * os.sysconf("SC_PAGE_SIZE"))
    total, stack = 0, [(root, None)]
    while stack:
        pid, parent_name = stack.pop()
        name, rss = info.get(pid, ("", 0))
        if name != parent_name:
            total += rss
        stack.extend((child, name) for child in children.get(pid, []))
    return total


def run_sampled(cmd: list[str]) -> tuple[int, str, str, float, int]:
    """Run ``cmd``, sampling its process tree's resident memory every half second; returns
    (exit code, stdout, stderr, wall seconds, peak bytes)."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_bytes(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    return proc.returncode, out, err, time.perf_counter() - began, peak


def run_once(records: int, lake: Path, seed: int, extra: list[str]) -> dict:
    shutil.rmtree(lake, ignore_errors=True)
    cmd = [sys.executable, "-m", "jobs.generate_world", "--lake", str(lake)]
    cmd += ["--share-records", str(records), "--seed", str(seed), *extra]
    returncode, out, _, wall, peak = run_sampled(cmd)
    if returncode:
        raise SystemExit(f"generate_world failed ({returncode}):\n{out[-2000:]}")
    summary = json.loads(out[out.index("{") :])
    shares = summary["rows"]["shares"]
    return {
        "target": records,
        "shares": shares,
        "wall_s": round(wall, 1),
        "records_per_s": round(shares / wall),
        "peak_rss_gib": round(peak / 2**30, 2),
        "all_rows": sum(summary["rows"].values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--lake", type=Path, default=Path("/tmp/sharecast-bench-lake"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="more generate_world options after --")
    args = parser.parse_args()
    for n in args.records:
        runs = [run_once(n, args.lake, args.seed + i, args.extra) for i in range(args.repeat)]
        for r in runs:
            print(json.dumps(r), flush=True)
        wall = statistics.median(r["wall_s"] for r in runs)
        print(
            f"N={n:,}: median wall {wall:.1f} s, "
            f"{statistics.median(r['records_per_s'] for r in runs):,.0f} records/s, "
            f"peak RSS {max(r['peak_rss_gib'] for r in runs):.2f} GiB "
            f"over {len(runs)} run(s)",
            flush=True,
        )
    shutil.rmtree(args.lake, ignore_errors=True)


if __name__ == "__main__":
    main()
