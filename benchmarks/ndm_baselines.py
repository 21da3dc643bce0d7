"""The NDM paper's diffusion-network baselines (NetRate, InfoPath, Embedded IC) beside its Tables
2 and 3: mean and sd over seeds of Macro/Micro-F1, full and early stage, and the fitting time.

    python benchmarks/ndm_baselines.py RUN_DIR ...                      # print the table
    python benchmarks/ndm_baselines.py --lake lake --out runs [--seeds 0,1,2] \
        [--datasets memetracker,irvine] [--models netrate,infopath,embedded_ic] [--opt k=v]

Each RUN_DIR is a folder written by ``models.train`` (its ``results.json`` and ``best.pt``).
With ``--lake`` the script first trains every (dataset, model, seed) of the grid into
``OUT/<model>-<dataset>-s<seed>`` with the README's protocol (``models.train``, one thread, the
task's default simulations), skipping folders that already hold a ``results.json``, so an
interrupted sweep resumes where it stopped; then it prints the grid's table. Seed S seeds the
fit (``--seed S``) and the simulations (``--opt task.seed=S``): NetRate's fit draws nothing,
so its spread over seeds is the Monte Carlo's. Rows are grouped by (dataset, model, the run's
other ``--opt`` options). A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import torch

METRICS = ("macro_f1", "micro_f1", "macro_f1_early", "micro_f1_early")
MODELS = ("netrate", "infopath", "embedded_ic")
DATASETS = ("memetracker", "irvine")
# Table 2 (Macro-F1, Micro-F1) and Table 3 (first five users) of the NDM paper.
PAPER = {
    ("memetracker", "netrate"): (0.068, 0.050, 0.071, 0.076),
    ("memetracker", "infopath"): (0.110, 0.142, 0.094, 0.106),
    ("memetracker", "embedded_ic"): (0.060, 0.115, 0.042, 0.040),
    ("irvine", "netrate"): (0.032, 0.029, 0.031, 0.028),
    ("irvine", "infopath"): (0.052, 0.073, 0.030, 0.030),
    ("irvine", "embedded_ic"): (0.054, 0.102, 0.027, 0.029),
}


def train_missing(args: argparse.Namespace) -> list[Path]:
    """Train the grid's runs that have no ``results.json`` yet; return every run folder."""
    runs = []
    for dataset in args.datasets.split(","):
        for model in args.models.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                out = Path(args.out) / f"{model}-{dataset}-s{seed}"
                runs.append(out)
                if (out / "results.json").exists():
                    continue
                cmd = [sys.executable, "-m", "models.train", "--lake", args.lake, "--task", "ndm",
                       "--dataset", dataset, "--model", model, "--seed", str(seed),
                       "--opt", f"task.seed={seed}", "--threads", "1", "--out", str(out)]
                for opt in args.opt:
                    cmd += ["--opt", opt]
                print("running", " ".join(cmd), file=sys.stderr)
                subprocess.run(cmd, check=True)
    return runs


def load(run: Path) -> tuple[tuple, dict] | None:
    """((dataset, model, options), test metrics + ``fit_s`` and ``wall_s``) of a run folder."""
    path = run / "results.json"
    if not path.exists():
        return None
    blob = json.loads(path.read_text())
    cfg = blob["config"]
    row = dict(blob["metrics"]["test"])
    row["wall_s"] = blob.get("wall_s", float("nan"))
    best = run / "best.pt"
    if best.exists():
        state = torch.load(best, map_location="cpu", weights_only=False)["model"]
        if "fit_seconds" in state:
            row["fit_s"] = float(state["fit_seconds"])
    # The task's simulation seed varies with the run's seed in a sweep; it makes no new row.
    opts = {k: v for k, v in (cfg.get("opts") or {}).items() if k not in ("seed", "task.seed")}
    return (cfg.get("dataset"), cfg["model"], json.dumps(opts, sort_keys=True)), row


def cell(values: list[float]) -> str:
    if not values:
        return ""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def table(runs: list[Path]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        got = load(run)
        if got is not None:
            groups[got[0]].append(got[1])
    lines = ["| dataset | model | options | n | Macro-F1 | Micro-F1 | early Macro | early Micro "
             "| fit s | run s |", "|" + "---|" * 10]
    rank = {name: i for i, name in enumerate(DATASETS + MODELS)}
    for (dataset, model, opts), rows in sorted(
        groups.items(), key=lambda kv: (rank.get(kv[0][0], 99), rank.get(kv[0][1], 99), kv[0])
    ):
        cells = [cell([r[m] for r in rows if m in r]) for m in METRICS]
        fit = [r["fit_s"] for r in rows if "fit_s" in r]
        cells.append(f"{statistics.mean(fit):.1f}" if fit else "")
        cells.append(f"{statistics.mean(r['wall_s'] for r in rows):.0f}")
        lines.append(f"| {dataset} | {model} | {opts if opts != '{}' else ''} | {len(rows)} | "
                     + " | ".join(cells) + " |")
        paper = PAPER.get((dataset, model))
        if paper:
            lines.append(f"| {dataset} | {model} (paper) | | | "
                         + " | ".join(f"{v:.3f}" for v in paper) + " | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run folders written by models.train")
    parser.add_argument("--lake", help="train the grid's missing runs on this lake first")
    parser.add_argument("--out", default="runs", help="where the grid's run folders go")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--opt", action="append", default=[], help="passed to models.train")
    args = parser.parse_args()
    runs = [Path(r) for r in args.runs]
    if args.lake:
        runs += train_missing(args)
    if not runs:
        parser.error("give run folders, or --lake to train the grid")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
