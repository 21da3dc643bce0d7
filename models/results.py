"""A finished run's metrics: rows of ``LAKE/results/<task>`` and ``OUT/results.json``.

One row per (split, metric), appended with the application id ``run_id:model`` so that a
re-run of the same run commits nothing new.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from models.config import TrainConfig

RESULTS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("split", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("seed", pa.int64()),
        ("config_hash", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


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
                    "model": cfg.model,
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
    table = Path(cfg.lake) / "results" / cfg.task
    rows = result_rows(cfg, metrics, when)
    version = append_rows(table, rows, app_id=f"{cfg.run_id}:{cfg.model}")
    out = Path(cfg.out) / "results.json"
    payload = {
        "run_id": cfg.run_id,
        "task": cfg.task,
        "dataset": cfg.dataset,
        "model": cfg.model,
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
