"""What killed jobs leave outside the Delta tables, and ``jobs.maintain`` clearing it: a
generator's scratch folder under the lake, Spark's block-manager and work folders in its local
directories. Only what has been untouched for longer than the retention goes."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from jobs import maintain as job


def _touch_tree(path: Path, days: float) -> None:
    then = time.time() - days * 86400
    for item in [*path.rglob("*"), path]:
        os.utime(item, (then, then))


def _folder_with_a_file(path: Path) -> Path:
    (path / "0c").mkdir(parents=True)
    (path / "0c" / "shuffle_0_0_0.data").write_bytes(b"blocks")
    return path


def test_maintain_clears_what_killed_jobs_left(spark, lake, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    local = tmp_path / "spark-local"
    monkeypatch.setenv("SPARK_LOCAL_DIRS", str(local))
    stale = [
        _folder_with_a_file(local / f"blockmgr-{uuid.uuid4()}"),  # a killed JVM's blocks
        _folder_with_a_file(local / f"spark-{uuid.uuid4()}"),  # and its work folder
    ]
    for folder in stale:
        _touch_tree(folder, 8)
    fresh = _folder_with_a_file(local / f"blockmgr-{uuid.uuid4()}")  # a running JVM's
    not_spark = _folder_with_a_file(local / "blockmgr-notes")  # not a name Spark makes
    _touch_tree(not_spark, 8)

    scratch = Path(lake.location("_scratch"))
    killed = _folder_with_a_file(scratch / "world-killed")
    _touch_tree(killed, 8)
    # A long run: its folder is old, but it wrote a file a minute ago.
    running = _folder_with_a_file(scratch / "world-running")
    _touch_tree(running, 8)
    (running / "0c" / "shuffle_0_0_0.data").write_bytes(b"still writing")

    assert job.main(["--lake", lake.root, "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["_scratch"] == {"would_remove": 1}
    assert report["_spark_local"] == {"would_remove": 2}
    assert all(folder.exists() for folder in [*stale, killed])

    assert job.main(["--lake", lake.root]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["_scratch"] == {"removed": 1}
    assert report["_spark_local"] == {"removed": 2}
    assert not any(folder.exists() for folder in [*stale, killed])
    assert fresh.exists() and not_spark.exists() and running.exists()
