"""Train InfNet, its ablations and the baselines on InfNet shards over seeds; print test metrics.

    OMP_NUM_THREADS=1 python benchmarks/infnet_compare.py --lake LAKE \
        --models infnet,infnet_no_edge,diffnet,lr --seeds 0,1,2 [--epochs 30] [--batch-size 64]

The default rows are the paper's Table 2 models: InfNet, its -Taocode ablation, DiffNet, LR,
LightGBM and the recommender baselines BPR, SR-GNN, MGNN-SPred, GCE-GNN, EATNN and GraphRec
(``--models`` picks others).

Each (model, seed) is one ``python -m models.train`` run (results in ``LAKE/results/infnet`` and
``OUT/<model>-s<seed>/results.json``); a finished run is not repeated. The table gives the mean
and standard deviation over seeds of the test metrics of the best-on-val epoch, and the 95 %
interval that the test split's size alone puts on the mean AUC-PR (the logit interval of
``pipeline.report.results.auc_pr_interval``; the seeds' sd does not include it), and the mean
wall time of a run (training and scoring, ``results.json``'s ``wall_s``). A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

METRICS = ("auc_pr", "auc_roc", "auc_pr_cold", "auc_pr_warm")
ONE_SHOT = {"lr", "lightgbm"}  # deterministic: one seed is enough
RECOMMENDERS = ("bpr", "srgnn", "mgnn_spred", "gce_gnn", "eatnn", "graphrec")
DEFAULT_MODELS = ",".join(("infnet", "infnet_no_edge", "diffnet", "lr", "lightgbm",
                           *RECOMMENDERS))


def run(lake: str, model: str, seed: int, out: Path, args: argparse.Namespace) -> dict:
    target = out / f"{model}-s{seed}"
    result = target / "results.json"
    if not result.exists():
        cmd = [
            sys.executable, "-m", "models.train", "--lake", lake, "--task", "infnet",
            "--model", model, "--seed", str(seed), "--out", str(target),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
            "--lr", str(args.lr), "--patience", str(args.patience),
        ]
        began = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{model} seed {seed} failed")
        print(f"  {model} seed {seed}: {time.perf_counter() - began:.0f} s", flush=True)
    return json.loads(result.read_text())


def _split_interval(auc_pr: float, test: dict) -> str:
    from pipeline.report.results import auc_pr_interval

    low, high = auc_pr_interval(auc_pr, test["n"] * test["positive_rate"])
    return f"{low:.3f} - {high:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--out", default=None, help="runs folder (default: LAKE/../runs-<name>)")
    args = parser.parse_args()
    lake = Path(args.lake)
    out = Path(args.out or lake.parent / f"runs-{lake.name}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for model in args.models.split(","):
        per_seed = [run(str(lake), model, s, out, args)
                    for s in (seeds[:1] if model in ONE_SHOT else seeds)]
        cells = []
        for metric in METRICS:
            values = [r["metrics"]["test"][metric] for r in per_seed]
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{mean:.3f} ± {std:.3f}")
        mean_pr = statistics.fmean(r["metrics"]["test"]["auc_pr"] for r in per_seed)
        cells.append(_split_interval(mean_pr, per_seed[0]["metrics"]["test"]))
        cells.append(f"{statistics.fmean(r.get('wall_s', float('nan')) for r in per_seed):.0f}")
        rows.append((model, len(per_seed), cells))
    test = per_seed[0]["metrics"]["test"]
    print(f"\n{lake}: test n={test['n']:.0f}, positive rate {test['positive_rate']:.3f}, "
          f"cold {test['n_cold']:.0f}")
    print("| model | seeds | " + " | ".join(METRICS) + " | auc_pr 95 % (split size) | run s |")
    print("|---|---|" + "---|" * (len(METRICS) + 2))
    for model, n, cells in rows:
        print(f"| {model} | {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
