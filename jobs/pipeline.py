"""The whole Spark side in one command: generate a world, the statistics, every system's shards.

    python -m jobs.pipeline --lake LAKE --share-records 100000000 [--seed 7] [--effects ...]
        [--steps generate,observe,infnet,ndm,risenet,dipn,dmgnn] [--step-args "infnet=--queries
        180000"] [--summary FILE] [--master spark://HOST:7077]
    spark-submit --properties-file spark-defaults.conf jobs/pipeline.py --lake LAKE ...

Each step is the command a user would run by hand (printed as it starts), called in this one
Spark application: ``jobs.generate_world`` (with the world flags given here), ``jobs.observe``
and ``jobs.build_shards --task T`` for each system. ``--steps`` picks and orders them
(``--steps observe,infnet`` on a lake that already has its raw tables); ``--step-args
STEP=ARGS`` adds a step's own options. At the end a table gives each step's seconds, the
tables and rows it committed and the driver's peak memory; ``--summary`` also writes them,
with each job's JSON summary, as JSON, rewritten after every step. A failed step stops the
run with its exit code; the steps before it stay in the lake, and the same command run again
skips what is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

if not __package__:
    # Run as a file (spark-submit jobs/<name>.py): the repository root takes this folder's
    # place on the path, so its packages import and jobs/pipeline.py cannot hide `pipeline`.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))

SHARD_TASKS = ("infnet", "ndm", "risenet", "dipn", "dmgnn")
STEPS = ("generate", "observe", *SHARD_TASKS)
#: World flags passed on to ``jobs.generate_world`` as given.
WORLD_FLAGS = ("share_records", "seed", "weeks", "start", "effects", "config")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pipeline import logs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder or URI")
    parser.add_argument("--share-records", default=None, help="generate: default 200000")
    parser.add_argument("--seed", default=None, help="generate: default 7")
    parser.add_argument("--weeks", default=None, help="generate: default 12")
    parser.add_argument("--start", default=None, help="generate: a Monday")
    parser.add_argument("--effects", default=None, help="generate: as jobs.generate_world")
    parser.add_argument("--config", default=None, help="generate: a world YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="generate: a WorldConfig field (repeatable)")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"steps to run, in order (default {','.join(STEPS)})")
    parser.add_argument("--step-args", action="append", default=[], metavar="STEP=ARGS",
                        help="more options for one step, e.g. 'infnet=--queries 180000'")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-defaults)")
    parser.add_argument("--summary", default=None, help="also write the run's summary here")
    logs.add_argument(parser)
    args = parser.parse_args(argv)
    args.step_list = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in args.step_list if s not in STEPS]
    if unknown or not args.step_list:
        parser.error(f"--steps: unknown step(s) {unknown or args.steps!r}; "
                     f"choose from {', '.join(STEPS)}")
    if len(set(args.step_list)) != len(args.step_list):
        parser.error(f"--steps: a step is named twice in {args.steps!r}")
    args.extra = {}
    for item in args.step_args:
        step, sep, text = item.partition("=")
        if not sep or step not in STEPS:
            parser.error(f"--step-args {item!r}: expected STEP=ARGS with STEP one of "
                         f"{', '.join(STEPS)}")
        if step not in args.step_list:
            parser.error(f"--step-args {item!r}: step {step!r} is not in --steps")
        args.extra[step] = args.extra.get(step, []) + shlex.split(text)
    return args


def world_argv(args: argparse.Namespace) -> list[str]:
    argv = []
    for name in WORLD_FLAGS:
        value = getattr(args, name)
        if value is not None:
            argv += ["--" + name.replace("_", "-"), str(value)]
    for item in args.overrides:
        argv += ["--set", item]
    return argv


def plan(args: argparse.Namespace) -> list:
    """The steps to run, each with its job's ``main`` and its command line."""
    from jobs import build_shards, generate_world, observe
    from pipeline.end_to_end import Step

    lake = ["--lake", args.lake]
    steps = []
    for name in args.step_list:
        extra = args.extra.get(name, [])
        if name == "generate":
            job, argv = generate_world, lake + world_argv(args) + extra
        elif name == "observe":
            job, argv = observe, lake + extra
        else:
            job, argv = build_shards, lake + ["--task", name] + extra
        command = shlex.join(["python", "-m", job.__name__, *argv])
        steps.append(Step(name, job.main, argv + ["--log-level", args.log_level], command))
    return steps


def _jvm_pid(spark) -> int | None:
    """The driver JVM's process id: the one ``python -m`` started, or under spark-submit the
    parent of this process."""
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    if proc is not None:
        return proc.pid
    try:
        with open(f"/proc/{os.getppid()}/comm") as fh:
            return os.getppid() if fh.read().strip() == "java" else None
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline import logs
    from pipeline.end_to_end import run_steps, summary_table
    from pipeline.lake import Lake
    from pipeline.session import get_spark

    logs.configure(args.log_level)
    spark = get_spark("sharecast-pipeline", master=args.master)
    steps = plan(args)

    def announce(step) -> None:
        number = steps.index(step) + 1
        print(f"\n== [{number}/{len(steps)}] {step.name}\n$ {step.command}", flush=True)

    def save(results) -> None:  # after every step: a stopped run keeps what it measured
        if args.summary:
            Path(args.summary).write_text(
                json.dumps([r.to_dict() for r in results], indent=2, default=str))

    results = run_steps(Lake(args.lake), steps, jvm_pid=_jvm_pid(spark), on_start=announce,
                        on_end=save)
    print()
    print(summary_table(results))
    failed = next((r for r in results if r.exit_code), None)
    if failed is not None:
        reason = f" ({failed.error})" if failed.error else ""
        print(f"pipeline: step '{failed.name}' failed with exit code {failed.exit_code}"
              f"{reason}; the steps before it are committed", file=sys.stderr)
        return failed.exit_code
    return 0


if __name__ == "__main__":
    from jobs import run as run_job

    sys.exit(run_job("pipeline", main))
