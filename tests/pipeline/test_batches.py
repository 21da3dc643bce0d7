"""Batches: every stored row names its batch, the ledger marks whole ones, a batch cut short
is reported and completed by its re-run, a duplicate batch is named and undone."""

from __future__ import annotations

import json
import os

import pytest

from jobs import ingest as job
from pipeline import batches
from pipeline.ingest import ingest

# Three records: two good, one rejected (sender == receiver).
CSV = (
    "sender_id,receiver_id,item_id,ts\n"
    "1,2,10,2024-01-01 10:00:00\n"
    "2,3,10,2024-01-02 10:00:00\n"
    "4,4,10,2024-01-03 10:00:00\n"
)


class Killed(Exception):
    """Stands in for a SIGKILL at a failpoint (the subprocess drills send the real one)."""


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "shares.csv"
    path.write_text(CSV)
    return path


def _kill_at(monkeypatch, point: str) -> None:
    def failpoint(name, spark=None):
        if name == point:
            raise Killed(name)

    monkeypatch.setattr("pipeline.ingest.failpoint", failpoint)


def _by_batch(spark, lake, layer):
    rows = lake.read(spark, layer, "shares").groupBy("batch_id").count().collect()
    return {r["batch_id"]: r["count"] for r in rows}


def test_rows_carry_their_batch_and_the_ledger_marks_it_whole(spark, lake, source):
    summary = ingest(spark, lake, "shares", source, "csv", run_id="b1")
    assert (summary.accepted, summary.quarantined) == (2, 1)
    assert _by_batch(spark, lake, "raw") == {"b1": 2}
    assert _by_batch(spark, lake, "quarantine") == {"b1": 1}
    (ledger,) = lake.read(spark, "ledger", "ingest").collect()
    assert (ledger["table"], ledger["batch_id"], ledger["kind"]) == ("shares", "b1", "ingest")
    assert (ledger["read"], ledger["accepted"], ledger["quarantined"]) == (3, 2, 1)
    assert ledger["raw_version"] == 0 and ledger["quarantine_version"] == 0
    (state,) = batches.status(spark, lake)
    assert state == batches.BatchStatus("shares", "b1", 2, 1, "whole", "ingest")


@pytest.mark.parametrize("point", ["ingest.raw-committed", "ingest.quarantine-committed"])
def test_a_batch_cut_short_is_incomplete_until_its_rerun(spark, lake, source, monkeypatch, point,
                                                          caplog):
    _kill_at(monkeypatch, point)
    with pytest.raises(Killed):
        ingest(spark, lake, "shares", source, "csv", run_id="b1")
    (state,) = batches.status(spark, lake)
    # Killed after raw: 2 raw rows and no rejects; after quarantine: both, but no ledger row.
    rejects = 1 if point == "ingest.quarantine-committed" else 0
    assert (state.state, state.raw_rows, state.quarantine_rows) == ("incomplete", 2, rejects)
    assert batches.checked(spark, lake, ["shares"]) == [state]
    assert "re-run its ingest with --run-id b1" in caplog.text

    monkeypatch.undo()
    again = ingest(spark, lake, "shares", source, "csv", run_id="b1")
    assert again.committed  # the missing commits, not the raw rows a second time
    assert _by_batch(spark, lake, "raw") == {"b1": 2}
    assert _by_batch(spark, lake, "quarantine") == {"b1": 1}
    assert [b.state for b in batches.status(spark, lake)] == ["whole"]
    assert not ingest(spark, lake, "shares", source, "csv", run_id="b1").committed


def test_a_duplicate_batch_is_named_and_undone(spark, lake, source):
    ingest(spark, lake, "shares", source, "csv", run_id="first")
    ingest(spark, lake, "shares", source, "csv", run_id="again")  # same files, new run id
    listed = {b.batch_id: b for b in batches.status(spark, lake)}
    assert listed["first"].duplicate_of is None
    assert listed["again"].duplicate_of == "first"

    done = batches.undo(spark, lake, "shares", "again")
    assert (done["raw_rows_removed"], done["quarantine_rows_removed"]) == (2, 1)
    assert _by_batch(spark, lake, "raw") == {"first": 2}
    assert _by_batch(spark, lake, "quarantine") == {"first": 1}
    assert [(b.batch_id, b.state) for b in batches.status(spark, lake)] == [("first", "whole")]
    history = lake.history("raw", "shares", limit=1)[0]
    assert history["operation"] == "DELETE" and history["userMetadata"] == "undo:shares:again"
    # Undoing again removes nothing and commits nothing new to the data.
    version = lake.version("raw", "shares")
    assert batches.undo(spark, lake, "shares", "again")["raw_rows_removed"] == 0
    assert lake.version("raw", "shares") == version
    with pytest.raises(batches.UnknownBatchError, match="no batch 'nope'"):
        batches.undo(spark, lake, "shares", "nope")


def test_an_undo_cut_short_is_reported_and_finished_by_its_rerun(spark, lake, source,
                                                                  monkeypatch):
    ingest(spark, lake, "shares", source, "csv", run_id="b1")

    def failpoint(name, spark=None):
        if name == "undo.raw-deleted":
            raise Killed(name)

    monkeypatch.setattr("pipeline.batches.failpoint", failpoint)
    with pytest.raises(Killed):
        batches.undo(spark, lake, "shares", "b1")
    # The raw rows are gone, the rejects are not: the counts no longer match the ledger's.
    (state,) = batches.status(spark, lake)
    assert (state.raw_rows, state.quarantine_rows, state.state) == (0, 1, "changed")
    monkeypatch.undo()
    assert batches.undo(spark, lake, "shares", "b1")["quarantine_rows_removed"] == 1
    assert batches.status(spark, lake) == []


def test_cli_lists_batches_and_undoes_one(spark, lake, source, monkeypatch, capsys):
    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    base = ["--lake", str(lake.root)]
    assert job.main([*base, "--table", "shares", "--input", str(source), "--format", "csv",
                     "--run-id", "b1"]) == 0
    capsys.readouterr()
    assert job.main([*base, "--batches"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(b["table"], b["batch_id"], b["state"]) for b in listed] == [("shares", "b1", "whole")]
    assert job.main([*base, "--table", "shares", "--undo-batch", "b1"]) == 0
    assert json.loads(capsys.readouterr().out)["raw_rows_removed"] == 2
    assert job.main([*base, "--table", "shares", "--undo-batch", "zz"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ingest: error: raw/shares: no batch 'zz' (see --batches)"
    with pytest.raises(SystemExit):
        job.parse_args([*base, "--undo-batch", "b1"])  # which table?
    assert "--table" in capsys.readouterr().err
    assert os.path.isdir(lake.path("ledger", "ingest"))
