"""The torch side's lake reader and results writer (delta-rs, no JVM)."""

from __future__ import annotations

import multiprocessing as mp

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import write_deltalake

from models import lakeio


def _table(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"k": [1, 2, 3], "split": ["train", "train", "test"]}))
    write_deltalake(path, pa.table({"k": [4], "split": ["test"]}), mode="append")
    return path


def test_snapshot_projection_filter_and_time_travel(tmp_path):
    path = _table(tmp_path)
    test = lakeio.read_table(path, columns=["k"], filter=ds.field("split") == "test")
    assert test.column_names == ["k"] and sorted(test.column("k").to_pylist()) == [3, 4]
    assert lakeio.read_table(path, version=0).num_rows == 3
    assert lakeio.read_table(path).schema.field("split").type == pa.string()  # plain types
    assert len(lakeio.snapshot_files(path)) == 2
    with pytest.raises(FileNotFoundError, match="no Delta table"):
        lakeio.read_table(tmp_path / "missing")


def test_append_rows_commits_each_app_id_once(tmp_path):
    table = tmp_path / "results"
    rows = pa.table({"metric": ["auc"], "value": [0.5]})
    assert lakeio.append_rows(table, rows, "run-1") == 0
    assert lakeio.append_rows(table, rows, "run-1") is None
    assert lakeio.append_rows(table, rows, "run-2") == 1
    assert lakeio.transaction_version(table, "run-2") == 1
    with pytest.raises(ValueError, match="schema"):
        lakeio.append_rows(table, pa.table({"metric": [1]}), "run-3")


def _writer(path, gate, queue):
    gate.wait()
    rows = pa.table({"metric": ["auc"], "value": [0.5]})
    try:
        queue.put(lakeio.append_rows(path, rows, "same-run"))
    except Exception as error:  # noqa: BLE001 - reported to the test
        queue.put(repr(error))


def test_two_processes_with_one_app_id_commit_once(tmp_path):
    # delta-rs's runtime does not survive fork: writers are spawned, as torchrun does.
    context = mp.get_context("spawn")
    for attempt in range(6):
        path = str(tmp_path / f"r{attempt}")
        lakeio.append_rows(path, pa.table({"metric": ["x"], "value": [0.0]}), "seed")
        gate, queue = context.Barrier(2), context.Queue()
        procs = [context.Process(target=_writer, args=(path, gate, queue)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        outcomes = sorted([queue.get(timeout=5), queue.get(timeout=5)], key=str)
        assert all(o is None or isinstance(o, int) for o in outcomes), outcomes
        assert lakeio.read_table(path).num_rows == 2  # the seed row and one commit of ours
