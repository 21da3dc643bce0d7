"""Train DIPN, its ablations, the source rows and the baselines on DIPN shards over seeds.

    OMP_NUM_THREADS=1 python benchmarks/dipn_compare.py --lake LAKE \
        --rows dipn,gbdt,rnn_dnn,dipn-early-fusion --seeds 0,1,2 [--epochs 5] [--jobs 2] \
        [--opt max_len=64]

A row is a model with options: ``dipn`` and its ablations (the paper's Tables 4-5:
``dipn-early-fusion``, ``-no-attention``, ``-no-inter-view``, ``-no-intra-view``; single-task
``dipn-1h`` / ``dipn-1d``, which report their one head), the paper's Table 6 rows
(``dipn-wo-<source>`` without one source, ``dipn-only-<source>`` with it alone) and the
baselines ``gbdt`` and ``rnn_dnn``. Each (row, seed) is one ``python -m models.train`` run
(``OUT/<row>-s<seed>/results.json``); a finished run is not repeated; ``--jobs`` runs go side by
side. The table gives the mean and sd over seeds of the test AUC of both heads. A script, not
a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

METRICS = ("auc_1h", "auc_1d")
ONE_SHOT = {"gbdt"}  # fitted once, deterministic per seed
SOURCES = ("swipe", "tap", "browse", "history", "profile")

#: row -> (model, options)
ROWS: dict[str, tuple[str, list[str]]] = {
    "dipn": ("dipn", []),
    "dipn-early-fusion": ("dipn", ["early_fusion=true"]),
    "dipn-no-attention": ("dipn", ["no_attention=true"]),
    "dipn-no-inter-view": ("dipn", ["no_inter_view=true"]),
    "dipn-no-intra-view": ("dipn", ["no_intra_view=true"]),
    "dipn-1h": ("dipn", ["task_head=1h"]),
    "dipn-1d": ("dipn", ["task_head=1d"]),
    **{f"dipn-wo-{s}": ("dipn", ["sources=" + ",".join(x for x in SOURCES if x != s)])
       for s in SOURCES},
    **{f"dipn-only-{s}": ("dipn", [f"sources={s}"]) for s in SOURCES},
    "gbdt": ("gbdt", []),
    "rnn_dnn": ("rnn_dnn", []),
}


def run(lake: str, row: str, seed: int, out: Path, args: argparse.Namespace) -> dict | None:
    model, opts = ROWS[row]
    target = out / f"{row}-s{seed}"
    result = target / "results.json"
    if not result.exists() and args.table_only:
        return None
    if not result.exists():
        cmd = [
            sys.executable, "-m", "models.train", "--lake", lake, "--task", "dipn",
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


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--rows", default="dipn,gbdt,rnn_dnn")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--opt", action="append", default=[],
                        help="KEY=VALUE for every run (e.g. max_len=64)")
    parser.add_argument("--out", default=None, help="run folders (default: LAKE/_runs/dipn)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the finished runs, start none")
    args = parser.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {sorted(ROWS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out or Path(args.lake) / "_runs" / "dipn")
    jobs = [(r, s) for r in rows for s in (seeds[:1] if ROWS[r][0] in ONE_SHOT else seeds)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda rs: (rs, run(args.lake, rs[0], rs[1], out, args)), jobs))
    print("| row | seeds | " + " | ".join(f"test {m}" for m in METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for row in rows:
        results = [res for (r, _), res in done if r == row and res is not None]
        if not results:
            continue
        tests = [res["metrics"]["test"] for res in results]
        cells = [cell([t[m] for t in tests if m in t]) for m in METRICS]
        print(f"| {row} | {len(tests)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
