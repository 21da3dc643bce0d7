"""Where a Spark application's time went, from its event log (what the Spark UI shows).

    .venv/bin/python benchmarks/spark_stage_times.py EVENT_LOG_FILE_OR_FOLDER [--top 15]

Record an event log by running a job with ``spark.eventLog.enabled true`` and
``spark.eventLog.dir file:///DIR`` (e.g. a copy of spark-defaults.conf passed through
``SHARECAST_SPARK_CONF``). Prints, per job description (the observe run names its jobs
``observe:<step>``), the wall time from the first job's start to the last job's end, the
summed task time, shuffle write and spill; then the heaviest stages by task time.
"""

from __future__ import annotations

import argparse
import io
import json
from collections import defaultdict
from pathlib import Path


def lines(path: str):
    """Event lines of a log file or of a Spark 4 event-log folder (``events_N_*[.zstd]``)."""
    import pyarrow as pa

    root = Path(path)
    files = sorted(root.glob("events_*"), key=lambda f: int(f.name.split("_")[1])) \
        if root.is_dir() else [root]
    for f in files:
        raw = pa.OSFile(str(f))
        stream = pa.CompressedInputStream(raw, "zstd") if f.suffix == ".zstd" else raw
        yield from io.TextIOWrapper(stream, encoding="utf-8")


def load(path: str) -> tuple[dict, dict, dict]:
    jobs, stages, stage_job = {}, {}, {}
    for line in lines(path):
        ev = json.loads(line)
        kind = ev["Event"]
        if kind == "SparkListenerJobStart":
            props = ev.get("Properties") or {}
            jid = ev["Job ID"]
            jobs[jid] = {"start": ev["Submission Time"], "end": None,
                         "desc": props.get("spark.job.description") or "(none)"}
            for sid in ev["Stage IDs"]:
                stage_job[sid] = jid
        elif kind == "SparkListenerJobEnd":
            jobs[ev["Job ID"]]["end"] = ev["Completion Time"]
        elif kind == "SparkListenerStageCompleted":
            info = ev["Stage Info"]
            acc = {a["Name"]: a.get("Value") for a in info.get("Accumulables", [])}
            stages[info["Stage ID"]] = {
                "name": info["Stage Name"],
                "tasks": info["Number of Tasks"],
                "wall": (info.get("Completion Time", 0) - info.get("Submission Time", 0))
                / 1000,
                "task_s": float(acc.get("internal.metrics.executorRunTime", 0)) / 1000,
                "shuffle_w": float(
                    acc.get("internal.metrics.shuffle.write.bytesWritten", 0)
                ),
                "spill": float(acc.get("internal.metrics.diskBytesSpilled", 0)),
            }
    return jobs, stages, stage_job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event_log")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    jobs, stages, stage_job = load(args.event_log)
    per = defaultdict(lambda: {"start": None, "end": None, "task_s": 0.0, "shuffle_w": 0.0,
                               "spill": 0.0, "jobs": 0})
    for job in jobs.values():
        p = per[job["desc"]]
        p["jobs"] += 1
        p["start"] = job["start"] if p["start"] is None else min(p["start"], job["start"])
        if job["end"]:
            p["end"] = job["end"] if p["end"] is None else max(p["end"], job["end"])
    for sid, st in stages.items():
        p = per[jobs[stage_job[sid]]["desc"]] if sid in stage_job else per["(none)"]
        p["task_s"] += st["task_s"]
        p["shuffle_w"] += st["shuffle_w"]
        p["spill"] += st["spill"]
    print(f"{'step':40s} {'jobs':>4s} {'wall s':>7s} {'task s':>7s} {'shuffle MB':>10s} "
          f"{'spill MB':>8s}")
    for desc, p in sorted(per.items(), key=lambda kv: kv[1]["start"] or 0):
        wall = ((p["end"] or p["start"] or 0) - (p["start"] or 0)) / 1000
        print(f"{desc[:40]:40s} {p['jobs']:4d} {wall:7.1f} {p['task_s']:7.1f} "
              f"{p['shuffle_w'] / 1e6:10.1f} {p['spill'] / 1e6:8.1f}")
    print(f"\nheaviest {args.top} stages by task time:")
    ranked = sorted(stages.items(), key=lambda kv: -kv[1]["task_s"])[: args.top]
    for sid, st in ranked:
        desc = jobs[stage_job[sid]]["desc"] if sid in stage_job else "(none)"
        print(f"  stage {sid:4d} {desc[:32]:32s} {st['name'][:40]:40s} tasks {st['tasks']:4d} "
              f"wall {st['wall']:6.1f} s task {st['task_s']:6.1f} s "
              f"shuffle {st['shuffle_w'] / 1e6:7.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
