"""``python -m jobs.ingest``: summary on success, one-line error and exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import ingest as job
from pipeline.lake import Lake

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.ingest", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_main_prints_a_reconciled_summary(spark, lake, tmp_path, monkeypatch, capsys):
    # The job's own session builder would apply spark-defaults.conf to the shared test session.
    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    source = tmp_path / "shares.csv"
    source.write_text(
        "sender_id,receiver_id,item_id,ts\n"
        "1,2,10,2024-01-01 10:00:00\n"  # good
        "5,5,10,2024-01-01 10:00:00\n"  # sender == receiver
    )
    argv = ["--lake", str(lake.root), "--table", "shares", "--input", str(source)]
    code = job.main([*argv, "--format", "csv", "--run-id", "cli-1"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (summary["read"], summary["accepted"], summary["quarantined"]) == (2, 1, 1)
    assert summary["run_id"] == "cli-1" and summary["committed"]
    assert summary["reasons"] == {"sender_id == receiver_id": 1}
    assert Lake(lake.root).tables() == ["ledger/ingest", "quarantine/shares", "raw/shares"]


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        (None, "csv", "does not exist"),
        (b"\x00\x9f\x92\x96 binary", "csv", "is not a text file"),
        (b'{"sender_id": 1}\n', "parquet", "is not a Parquet file"),
    ],
    ids=["missing", "binary-as-csv", "json-as-parquet"],
)
def test_bad_input_exits_2_with_one_line_naming_the_file(tmp_path, content, fmt, message):
    source = tmp_path / "input.data"
    if content is not None:
        source.write_bytes(content)
    lake_root = tmp_path / "lake"
    result = run_cli(
        "--lake", str(lake_root), "--table", "shares", "--input", str(source), "--format", fmt
    )
    assert result.returncode == 2
    assert result.stdout == ""
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith("ingest: error: ")
    assert message in error_lines[0] and str(source) in error_lines[0]
    assert not lake_root.exists()


@pytest.mark.slow
def test_a_file_named_like_a_pattern_reads_without_a_stack_trace(tmp_path):
    # One file named a[1].csv (a pattern, to Spark): read as a name, and Spark's lookup of a
    # streaming sink's metadata under the escaped path logs no Java stack trace.
    source = tmp_path / "a[1].csv"
    source.write_text("sender_id,receiver_id,item_id,ts\n1,2,10,2024-01-01 10:00:00\n")
    proc = run_cli("--lake", str(tmp_path / "lake"), "--table", "shares", "--input", str(source),
                   "--format", "csv", "--master", "local[1]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["accepted"] == 1
    assert "\tat org.apache" not in proc.stderr and "Exception" not in proc.stderr
