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
import sys

import model_runs  # beside this script

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


def _positives(test: dict) -> str:
    if "n" in test:
        return f"{round(test['n'] * test['positive_rate'])} of {int(test['n'])}"
    return f"{int(test['positives'])} of {int(test['examples'])}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_runs.add_arguments(parser, "risenet", rows="risenet,risenet-r,lightgbm", epochs=20,
                             batch_size=64, lr=1e-3, patience=5)
    args = parser.parse_args()
    rows, results = model_runs.run_all("risenet", ROWS, ONE_SHOT, args)
    print("| row | seeds | " + " | ".join(f"test {m}" for m in METRICS) + " | test positives |")
    print("|---|---|" + "---|" * (len(METRICS) + 1))
    for row in rows:
        if not results[row]:
            continue
        tests = [res["metrics"]["test"] for res in results[row]]
        cells = [model_runs.cell([t[m] for t in tests]) for m in METRICS]
        print(f"| {row} | {len(tests)} | " + " | ".join(cells)
              + f" | {_positives(tests[0])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
