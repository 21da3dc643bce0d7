"""Train DIPN, its ablations, the source rows and the baselines on DIPN shards over seeds.

    OMP_NUM_THREADS=1 python benchmarks/dipn_compare.py --lake LAKE \
        --rows dipn,gbdt,rnn_dnn,dipn-early-fusion --seeds 0,1,2 [--epochs 5] [--jobs 2] \
        [--opt max_len=64]

A row is a model with options: ``dipn`` and its ablations (the paper's Tables 4-5:
``dipn-early-fusion``, ``-no-attention``, ``-no-inter-view``, ``-no-intra-view``; single-task
``dipn-1h`` / ``dipn-1d``, which report their one head), the paper's Table 6 rows
(``dipn-wo-<source>`` without one source, ``dipn-only-<source>`` with it alone; the same
for GBDT, ``gbdt-wo-<source>`` and ``gbdt-only-<source>``, cheap to run) and the
baselines ``gbdt`` and ``rnn_dnn``, and ``timing``, the control that sees when and how much a
user acted but not what she did (its AUC is what no intent is needed for). Each (row, seed) is
one ``python -m models.train`` run (``OUT/<row>-s<seed>/results.json``); a finished run is not
repeated; ``--jobs`` runs go side by side. The table gives the mean and sd over seeds of the
test AUC of both heads. A script, not a test.
"""

from __future__ import annotations

import argparse
import sys

import model_runs  # beside this script

METRICS = ("auc_1h", "auc_1d")
ONE_SHOT = {"gbdt", "timing"}  # models fitted once, deterministic per seed
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
    **{f"gbdt-wo-{s}": ("gbdt", ["sources=" + ",".join(x for x in SOURCES if x != s)])
       for s in SOURCES},
    **{f"gbdt-only-{s}": ("gbdt", [f"sources={s}"]) for s in SOURCES},
    "rnn_dnn": ("rnn_dnn", []),
    "timing": ("timing", []),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_runs.add_arguments(parser, "dipn", rows="dipn,gbdt,rnn_dnn", epochs=5,
                             batch_size=128, lr=3e-3, patience=2)
    args = parser.parse_args()
    rows, results = model_runs.run_all("dipn", ROWS, ONE_SHOT, args)
    print("| row | seeds | " + " | ".join(f"test {m}" for m in METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for row in rows:
        if not results[row]:
            continue
        tests = [res["metrics"]["test"] for res in results[row]]
        cells = [model_runs.cell([t[m] for t in tests if m in t]) for m in METRICS]
        print(f"| {row} | {len(tests)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
