"""The whole pipeline end to end on the embedded default: a small generated world in a local lake,
the observational statistics and their report, InfNet shards, and brief CPU training of InfNet
and LR with their test metrics.

    python -m jobs.demo --lake lake --out out [--share-records 200000] [--seed 7] [--epochs 3]

Each step is the same command a user would run by hand (printed as it starts); the Spark steps
share one local session, the training steps run as their own processes (the torch side never
shares a process with Spark).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", default="lake", help="lake root folder")
    parser.add_argument("--out", default="out", help="report, checkpoints and results")
    parser.add_argument("--share-records", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", default="infnet,lr", help="InfNet-task models to train")
    parser.add_argument("--master", default=None, help="Spark master (default: local)")
    return parser.parse_args(argv)


def _step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}\n$ {shlex.join(argv)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from jobs import build_shards, generate_world, observe, report

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    master = ["--master", args.master] if args.master else []
    spark_steps = [
        (
            "generate a synthetic Taocode world",
            generate_world,
            ["--lake", args.lake, "--share-records", str(args.share_records)]
            + ["--seed", str(args.seed)],
        ),
        ("observational statistics", observe, ["--lake", args.lake]),
        ("report", report, ["--lake", args.lake, "--out", str(out / "report")]),
        ("InfNet training shards", build_shards, ["--lake", args.lake, "--task", "infnet"]),
    ]
    for title, job, job_args in spark_steps:
        _step(title, ["python", "-m", job.__name__, *job_args, *master])
        code = job.main(job_args + master)
        if code:
            print(f"demo: step '{title}' failed with exit code {code}", file=sys.stderr)
            return code

    metrics = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        cmd = [
            sys.executable,
            "-m",
            "models.train",
            "--lake",
            args.lake,
            "--task",
            "infnet",
            "--model",
            model,
            "--epochs",
            str(args.epochs),
            "--seed",
            str(args.seed),
            "--out",
            str(out / "runs" / model),
        ]
        _step(f"train {model}", ["python", *cmd[1:]])
        proc = subprocess.run(cmd, check=False)
        if proc.returncode:
            print(f"demo: training {model} failed ({proc.returncode})", file=sys.stderr)
            return proc.returncode
        results = json.loads((out / "runs" / model / "results.json").read_text())
        metrics[model] = _test_metrics(results)

    print("\n== test metrics (InfNet task)")
    names = sorted({k for m in metrics.values() for k in m})
    print(f"{'model':<12}" + "".join(f"{n:>14}" for n in names))
    for model, values in metrics.items():
        print(f"{model:<12}" + "".join(f"{values.get(n, float('nan')):>14.4f}" for n in names))
    print(f"\nreport: {(out / 'report' / 'index.html').resolve()}")
    print(f"lake:   {Path(args.lake).resolve()}  (Delta tables: raw/, stats/, shards/, results/)")
    print(f"done in {time.perf_counter() - began:.0f} s")
    return 0


def _test_metrics(results: dict) -> dict[str, float]:
    """The test-split metrics of a trainer ``results.json`` (``metrics[split][name]``)."""
    test = results.get("metrics", {}).get("test", {})
    return {k: float(v) for k, v in test.items() if isinstance(v, int | float)}


if __name__ == "__main__":
    sys.exit(main())
