"""A finished run's metrics: rows of ``LAKE/results/<task>`` and ``OUT/results.json``; for
binary tasks also each test example's score in ``LAKE/results/<task>_scores``
(``contracts.results``).

One row per (split, metric), appended with the application id ``run_id:model`` (the scores with
``run_id:model:scores``) so that a re-run of the same run commits nothing new.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from contracts import results as contract
from models.config import TrainConfig

RESULTS_SCHEMA = contract.METRICS


def result_rows(
    cfg: TrainConfig, metrics: dict[str, dict[str, float]], when: dt.datetime
) -> pa.Table:
    rows = []
    for split, values in metrics.items():
        for metric, value in sorted(values.items()):
            rows.append(
                {
                    "run_id": cfg.run_id,
                    "task": cfg.task,
                    "dataset": cfg.dataset or "",
                    "model": cfg.result_name,
                    "split": split,
                    "metric": metric,
                    "value": float(value),
                    "seed": int(cfg.seed),
                    "config_hash": cfg.config_hash(),
                    "created_at": when,
                }
            )
    return pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA)


def write_results(
    cfg: TrainConfig, metrics: dict[str, dict[str, float]], extra: dict[str, Any]
) -> Path:
    """Append the rows to the lake and write ``OUT/results.json``; returns the JSON's path."""
    from models.lakeio import append_rows

    when = dt.datetime.now(dt.UTC)
    table = Path(cfg.lake) / "results" / contract.metrics_table(cfg.task)
    rows = result_rows(cfg, metrics, when)
    version = append_rows(table, rows, app_id=f"{cfg.run_id}:{cfg.result_name}")
    out = Path(cfg.out) / "results.json"
    payload = {
        "run_id": cfg.run_id,
        "task": cfg.task,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "label": cfg.result_name,
        "seed": cfg.seed,
        "config_hash": cfg.config_hash(),
        "config": dataclasses.asdict(cfg),
        "metrics": metrics,
        "results_table": str(table),
        "results_version": version,
        "created_at": when.isoformat(),
        **extra,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    return out


def score_rows(cfg: TrainConfig, split: str, scored: dict[str, np.ndarray]) -> pa.Table:
    """``scored`` (``example_id``, ``label``, ``score`` arrays of one split) as scores rows."""
    n = len(scored["example_id"])
    columns = {
        "run_id": [cfg.run_id] * n,
        "task": [cfg.task] * n,
        "dataset": [cfg.dataset or ""] * n,
        "model": [cfg.result_name] * n,
        "seed": [int(cfg.seed)] * n,
        "split": [split] * n,
        "example_id": np.asarray(scored["example_id"], dtype=np.int64),
        "label": np.asarray(scored["label"], dtype=np.int32),
        "score": np.asarray(scored["score"], dtype=np.float64),
    }
    return pa.Table.from_pydict(columns, schema=contract.SCORES)


def write_scores(cfg: TrainConfig, split: str, scored: dict[str, np.ndarray]) -> int:
    """Append one split's per-example scores to ``results/<task>_scores``; the table version."""
    from models.lakeio import append_rows

    table = Path(cfg.lake) / "results" / contract.scores_table(cfg.task)
    return append_rows(table, score_rows(cfg, split, scored),
                       app_id=f"{cfg.run_id}:{cfg.result_name}:scores")
