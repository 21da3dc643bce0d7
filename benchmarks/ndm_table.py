"""The NDM reproduction table: mean and sd over seeds, beside the paper's Tables 2 and 3.

    python benchmarks/ndm_table.py RUN_DIR_OR_JSON ... [--split test]

Each argument is a run folder written by ``models.train`` (its ``results.json``) or a JSON file
printed by ``models.evaluate`` (for instance the same checkpoint scored with
``--opt temperature=0.5`` or ``--opt terminate_bias=-20``). Rows are grouped by (dataset, model,
evaluation options, and the training recipe: ``terminate_target``, ``--lr``, ``--epochs``, and
``--warmup``, ``--smoothing``, ``--plateau`` where set); a script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

METRICS = ("macro_f1", "micro_f1", "macro_f1_early", "micro_f1_early", "msle", "hits@10",
           "map@10")
SAMPLING = ("temperature", "terminate_bias")  # evaluation options that make a named variant
TRAINING = ("terminate_target",)  # training options that make one (with --warmup)
# Table 2 (Macro-F1, Micro-F1) and Table 3 (first five users) of the NDM paper.
PAPER = {
    ("irvine", "ndm"): (0.076, 0.108, 0.064, 0.065),
    ("irvine", "lstm"): (0.041, 0.080, 0.018, 0.020),
    ("memetracker", "ndm"): (0.139, 0.171, 0.122, 0.126),
    ("memetracker", "lstm"): (0.102, 0.137, 0.091, 0.094),
}


def _training(cfg: dict, trained: bool = True) -> dict:
    """The training recipe a row stands for: ``terminate_target``, the learning rate, the
    epoch budget and the schedule's settings where a run has them (warmup, smoothing,
    plateau; no rate or epochs for a model that was fitted once, ``trained`` False)."""
    out = {k: v for k, v in (cfg.get("opts") or {}).items() if k in TRAINING}
    if trained:
        out.update({k: cfg[k] for k in ("lr", "epochs") if cfg.get(k) is not None})
    for key in ("warmup", "smoothing", "plateau"):  # schedules, when a run had one
        if cfg.get(key):
            out[key] = cfg[key]
    return out


def load(path: Path, split: str) -> tuple[tuple, dict] | None:
    if path.is_dir():
        path = path / "results.json"
    if path.suffix != ".json" or not path.exists():
        return None
    try:
        blob = json.loads(path.read_text())
    except json.JSONDecodeError:
        print(f"skipping {path}: not a finished JSON file", file=sys.stderr)
        return None
    if "config" in blob:  # models.train results.json
        cfg = blob["config"]
        opts = _training(cfg, any("train_loss" in h for h in blob.get("history") or []))
        opts.update({k: v for k, v in (cfg.get("opts") or {}).items() if k in SAMPLING})
        key = (cfg.get("dataset"), cfg["model"], json.dumps(opts, sort_keys=True))
        return key, blob["metrics"][split]
    if blob.get("split") != split:
        return None
    opts = _training(blob.get("training") or {})
    opts.update({k: v for k, v in (blob.get("opts") or {}).items() if k in SAMPLING})
    return (blob.get("dataset"), blob["model"], json.dumps(opts, sort_keys=True)), blob["metrics"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for p in args.paths:
        got = load(Path(p), args.split)
        if got is not None:
            groups[got[0]].append(got[1])
    print("| dataset | model | options | n | " + " | ".join(METRICS) + " |")
    print("|" + "---|" * (4 + len(METRICS)))
    ordered = sorted(groups.items())
    for i, ((dataset, model, opts), rows) in enumerate(ordered):
        cells = []
        for m in METRICS:
            values = [r[m] for r in rows if m in r]
            if not values:
                cells.append("")
                continue
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {sd:.3f}")
        print(f"| {dataset} | {model} | {opts if opts != '{}' else ''} | {len(rows)} | "
              + " | ".join(cells) + " |")
        paper = PAPER.get((dataset, model))
        last = i + 1 == len(ordered) or ordered[i + 1][0][:2] != (dataset, model)
        if paper and last:  # once per (dataset, model), after its variants
            print(f"| {dataset} | {model} (paper) | | | " + " | ".join(f"{v:.3f}" for v in paper)
                  + " | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
