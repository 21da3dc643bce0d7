"""Comparing two lakes' tables by content: order-free, tolerant of last-bit float sums, blind
to the columns and manifest keys that record the run rather than the data."""

from __future__ import annotations

import json

import pyarrow as pa

from pipeline.fingerprint import table_differences, table_digest

SUM = 0.1 + 0.2 + 0.3  # 0.6000000000000001
SUM_OTHER_ORDER = 0.3 + 0.2 + 0.1  # 0.6: the same rows summed in another partition order


def _stats(values, seconds, order=(0, 1)):
    rows = [{"key": "a", "value": values[0], "n": 3, "run_id": "r1", "seconds": seconds},
            {"key": "b", "value": values[1], "n": 4, "run_id": "r1", "seconds": seconds}]
    return pa.Table.from_pylist([rows[i] for i in order])


def test_last_bit_sums_row_order_and_run_columns_do_not_count():
    assert SUM != SUM_OTHER_ORDER
    a = _stats([SUM, 1.5], 4.2)
    b = _stats([SUM_OTHER_ORDER, 1.5], 9.9, order=(1, 0))
    assert table_differences(a, b) is None
    assert table_digest(a) == table_digest(b)


def test_a_real_difference_is_named_by_column():
    a = _stats([0.6, 1.5], 4.2)
    b = _stats([0.6, 1.5001], 4.2)
    assert "column value" in table_differences(a, b)
    assert table_digest(a) != table_digest(b)
    c = pa.Table.from_pylist([{"key": "a", "value": 0.6, "n": 3, "run_id": "r", "seconds": 1.0}])
    assert table_differences(a, c) == "2 rows against 1"


def test_a_manifest_compares_without_its_timings():
    def manifest(seconds, mean, edges):
        doc = {"edges": edges, "mean_nodes": mean, "build_seconds": seconds, "run_id": "x",
               "steps": {"edges": {"rows": edges, "seconds": seconds}}}
        return pa.Table.from_pylist([{"schema_version": 1, "json": json.dumps(doc)}])

    assert table_differences(manifest(5.0, SUM, 10), manifest(7.5, SUM_OTHER_ORDER, 10)) is None
    assert "column json" in table_differences(manifest(5.0, SUM, 10), manifest(5.0, SUM, 11))
