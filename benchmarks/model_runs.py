"""What the ``*_compare.py`` scripts share: one ``python -m models.train`` run per (row, seed),
kept in ``OUT/<row>-s<seed>/results.json`` and not repeated, several side by side."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: row -> (model, options)
Rows = dict[str, tuple[str, list[str]]]


def add_arguments(parser: argparse.ArgumentParser, task: str, *, rows: str, epochs: int,
                  batch_size: int, lr: float, patience: int) -> None:
    parser.add_argument("--lake", required=True)
    parser.add_argument("--rows", default=rows)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--patience", type=int, default=patience)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--opt", action="append", default=[],
                        help="KEY=VALUE for every run")
    parser.add_argument("--out", default=None, help=f"run folders (default: LAKE/_runs/{task})")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the finished runs, start none")


def run(task: str, known: Rows, row: str, seed: int, out: Path,
        args: argparse.Namespace) -> dict | None:
    """The results of one (row, seed), training it first unless it has run already."""
    model, opts = known[row]
    target = out / f"{row}-s{seed}"
    result = target / "results.json"
    if not result.exists() and args.table_only:
        return None
    if not result.exists():
        cmd = [
            sys.executable, "-m", "models.train", "--lake", args.lake, "--task", task,
            "--model", model, "--seed", str(seed), "--out", str(target),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
            "--lr", str(args.lr), "--patience", str(args.patience), "--threads", "1",
            "--label", row,
        ]
        for opt in [*args.opt, *opts]:
            cmd += ["--opt", opt]
        began = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{row} seed {seed} failed")
        print(f"  {row} seed {seed}: {time.perf_counter() - began:.0f} s", flush=True)
    return json.loads(result.read_text())


def run_all(task: str, known: Rows, one_shot: set[str],
            args: argparse.Namespace) -> tuple[list[str], dict[str, list[dict]]]:
    """Every (row, seed) of ``--rows`` x ``--seeds`` (one seed for the ``one_shot`` models):
    the rows in order and each row's results."""
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in known]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {sorted(known)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out or Path(args.lake) / "_runs" / task)
    jobs = [(r, s) for r in rows for s in (seeds[:1] if known[r][0] in one_shot else seeds)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda rs: (rs[0], run(task, known, *rs, out, args)), jobs))
    return rows, {r: [res for x, res in done if x == r and res is not None] for r in rows}


def cell(values: list[float]) -> str:
    """Mean +- sd over seeds (the value alone for one seed, "-" for none)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"
