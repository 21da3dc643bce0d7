"""What the trainer writes to the ``results`` layer and the report reads back.

* ``results/<task>``: one row per (run, model, split, metric), the run's summary metrics.
* ``results/<task>_scores``: one row per scored example of a binary task's test split (its id,
  label and the model's score), from which the report draws precision-recall curves. Tasks whose
  metrics are not a binary ranking (NDM's Monte Carlo F1) write none.
"""

from __future__ import annotations

import pyarrow as pa

SCORES_SUFFIX = "_scores"
#: The split whose per-example scores the trainer keeps.
SCORED_SPLIT = "test"

METRICS = pa.schema(
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

SCORES = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("seed", pa.int64()),
        ("split", pa.string()),
        ("example_id", pa.int64()),
        ("label", pa.int32()),
        ("score", pa.float64()),
    ]
)


def metrics_table(task: str) -> str:
    return task


def scores_table(task: str) -> str:
    return f"{task}{SCORES_SUFFIX}"


def is_metrics_table(name: str) -> bool:
    """Whether ``results/<name>`` is a task's metrics table (not its scores)."""
    return "/" not in name and not name.endswith(SCORES_SUFFIX)
