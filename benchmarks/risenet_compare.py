"""Train RiseNet, its ablations and the baselines on RiseNet shards over seeds; print test metrics.

    OMP_NUM_THREADS=1 python benchmarks/risenet_compare.py --lake LAKE \
        --rows risenet,risenet-r,lightgbm,gcn,lstnet --seeds 0,1,2 [--epochs 20] [--jobs 2] \
        [--opt train_negatives=0.1]

A row is a model with options: ``risenet`` and its ablations (``ROWS``: ``risenet-r`` is
``--opt graph=false``, ``-pickgate`` ``pickgate=false`` ...), the sensitivity points
(``risenet-T3`` reads 3 weeks, ``risenet-L1`` one GNN layer) and every baseline by its name.
Each (row, seed) is one ``python -m models.train`` run (``OUT/<row>-s<seed>/results.json``); a
finished run is not repeated; ``--jobs`` runs go side by side. The table gives the mean and sd
over seeds of the test metrics at the threshold chosen on validation (F1, precision, recall)
and AUC-PR. A script, not a test.
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

METRICS = ("f1", "precision", "recall", "auc_pr")
ONE_SHOT = {"lightgbm"}  # fitted once, deterministic per seed

#: row -> (model, options)
ROWS: dict[str, tuple[str, list[str]]] = {
    "risenet": ("risenet", []),
    "risenet-r": ("risenet", ["graph=false"]),
    "risenet-no-pickgate": ("risenet", ["pickgate=false"]),
    "risenet-no-multitask": ("risenet", ["multitask=false"]),
    "risenet-no-gates": ("risenet", ["gates=false"]),
    "risenet-static": ("risenet", ["dynamic=false"]),
    **{f"risenet-T{t}": ("risenet", [f"weeks={t}"]) for t in range(1, 7)},
    **{f"risenet-L{k}": ("risenet", [f"layers={k}"]) for k in range(1, 5)},
    **{m: (m, []) for m in ("darnn", "lstnet", "mtgnn", "gcn", "gin", "gcrn", "evolvegcn",
                            "lightgbm")},
}


def run(lake: str, row: str, seed: int, out: Path, args: argparse.Namespace) -> dict | None:
    model, opts = ROWS[row]
    target = out / f"{row}-s{seed}"
    result = target / "results.json"
    if not result.exists() and args.table_only:
        return None
    if not result.exists():
        cmd = [
            sys.executable, "-m", "models.train", "--lake", lake, "--task", "risenet",
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


def _positives(test: dict) -> str:
    if "n" in test:
        return f"{round(test['n'] * test['positive_rate'])} of {int(test['n'])}"
    return f"{int(test['positives'])} of {int(test['examples'])}"


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--rows", default="risenet,risenet-r,lightgbm")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--opt", action="append", default=[],
                        help="KEY=VALUE for every run (e.g. train_negatives=0.1)")
    parser.add_argument("--out", default=None, help="run folders (default: LAKE/_runs/risenet)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the finished runs, start none")
    args = parser.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {sorted(ROWS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out or Path(args.lake) / "_runs" / "risenet")
    jobs = [(r, s) for r in rows for s in (seeds[:1] if ROWS[r][0] in ONE_SHOT else seeds)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda rs: (rs, run(args.lake, rs[0], rs[1], out, args)), jobs))
    print("| row | seeds | " + " | ".join(f"test {m}" for m in METRICS) + " | test positives |")
    print("|---|---|" + "---|" * (len(METRICS) + 1))
    for row in rows:
        results = [res for (r, _), res in done if r == row and res is not None]
        if not results:
            continue
        tests = [res["metrics"]["test"] for res in results]
        cells = [cell([t[m] for t in tests]) for m in METRICS]
        print(f"| {row} | {len(tests)} | " + " | ".join(cells)
              + f" | {_positives(tests[0])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
