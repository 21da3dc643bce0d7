"""Fault drill: ``jobs.ingest`` killed (driver or JVM, SIGKILL) between its commits leaves whole
commits only, names the cut batch as incomplete, and its re-run gives the clean run's tables."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipeline import batches
from pipeline.faults import ENV
from pipeline.lake import Lake

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# Five records: three good, two rejected (sender == receiver; a bad timestamp).
CSV = (
    "sender_id,receiver_id,item_id,ts\n"
    "1,2,10,2024-01-01 10:00:00\n"
    "2,3,10,2024-01-02 10:00:00\n"
    "4,4,10,2024-01-03 10:00:00\n"
    "3,1,11,2024-01-09 12:00:00\n"
    "5,6,12,not a time\n"
)


def run_ingest(lake: Path, source: Path, failpoint: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if failpoint:
        env[ENV] = failpoint
    cmd = [sys.executable, "-m", "jobs.ingest", "--lake", str(lake), "--table", "shares",
           "--input", str(source), "--format", "csv", "--run-id", "b1",
           "--master", "local[1]"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


# Columns that differ between two runs by design: when they ran, and where their input was.
VARYING = ("ingested_at", "committed_at", "source_file", "input", "fingerprint")


def table_hash(path: str) -> str:
    """Order-independent digest of a Delta table's rows (the VARYING columns left out)."""
    rows = DeltaTable(path).to_pyarrow_table().to_pylist()
    lines = sorted(repr(sorted((k, v) for k, v in r.items() if k not in VARYING)) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def whole_commits(path: str) -> None:
    """Every committed version of the table reads, with the rows its commit says it added."""
    table = DeltaTable(path)
    total = 0
    for commit in sorted(table.history(), key=lambda c: c["version"]):
        total += int((commit.get("operationMetrics") or {}).get("numOutputRows", 0))
        assert DeltaTable(path, version=commit["version"]).to_pyarrow_table().num_rows == total


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    source = root / "shares.csv"
    source.write_text(CSV)
    proc = run_ingest(root / "lake", source)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lake = Lake(root / "lake")
    return {t: table_hash(lake.path(*t.split("/"))) for t in lake.tables()}


@pytest.mark.parametrize("target", ["driver", "jvm"])
@pytest.mark.parametrize("point", ["ingest.raw-committed", "ingest.quarantine-committed"])
def test_a_killed_ingest_converges_to_the_clean_run(spark, tmp_path, clean, point, target):
    source = tmp_path / "shares.csv"
    source.write_text(CSV)
    lake_root = tmp_path / "lake"
    failpoint = point if target == "driver" else f"{point}:jvm"
    proc = run_ingest(lake_root, source, failpoint)
    if target == "driver":
        assert proc.returncode == -signal.SIGKILL
    else:  # the driver outlives its JVM and fails at its next Spark call
        assert proc.returncode not in (0, -signal.SIGKILL), proc.stderr[-3000:]

    lake = Lake(lake_root)
    for name in lake.tables():
        whole_commits(lake.path(*name.split("/")))
    assert "ledger/ingest" not in lake.tables()  # the batch never got its ledger row
    (cut,) = batches.status(spark, lake)
    assert (cut.batch_id, cut.state, cut.raw_rows) == ("b1", "incomplete", 3)
    assert cut.quarantine_rows == (2 if point == "ingest.quarantine-committed" else 0)

    again = run_ingest(lake_root, source)
    assert again.returncode == 0, again.stderr[-3000:]
    got = {t: table_hash(lake.path(*t.split("/"))) for t in lake.tables()}
    assert got == clean
    assert [b.state for b in batches.status(spark, lake)] == ["whole"]
