"""``python -m jobs.maintain``: OPTIMIZE compacts, VACUUM keeps the retention and time travel,
stale generator scratch goes, a table that is not there is one line and exit 2."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from jobs import maintain as job


def _old(path: Path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def test_maintain_compacts_and_vacuums(spark, lake, monkeypatch, capsys):
    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    for i in range(3):  # three commits of one file each
        lake.write(spark.range(i * 10, i * 10 + 10).coalesce(1), "stats", "t", app_id=f"a{i}")
    folder = Path(lake.path("stats", "t"))
    orphan = folder / "part-orphan.parquet"  # what a killed writer leaves
    orphan.write_bytes((next(folder.glob("part-*.parquet"))).read_bytes())
    _old(orphan, 8)
    stale = Path(lake.location("_scratch", "world-killed"))
    stale.mkdir(parents=True)
    _old(stale, 8)
    fresh = Path(lake.location("_scratch", "world-running"))
    fresh.mkdir()

    assert job.main(["--lake", lake.root, "--dry-run"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["stats/t"] == {"would_vacuum": 1}  # stdout: the JSON only
    assert "INFO    jobs.maintain: stats/t: {'would_vacuum': 1}" in printed.err
    assert orphan.exists()

    assert job.main(["--lake", lake.root]) == 0
    report = json.loads(capsys.readouterr().out)
    # 3 files became 1; the orphan went; the 3 replaced files stay for time travel (7 days)
    assert report["stats/t"] == {"optimize": {"files_added": 1, "files_removed": 3}, "vacuum": 1}
    assert report["_scratch"] == {"removed": 1}
    assert not orphan.exists() and not stale.exists() and fresh.exists()
    assert sorted(r.id for r in lake.read(spark, "stats", "t").collect()) == list(range(30))
    assert lake.read(spark, "stats", "t", version=1).count() == 20


def test_unknown_table_is_one_line(spark, lake, monkeypatch, capsys):
    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    assert job.main(["--lake", lake.root, "--tables", "raw/nope"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("maintain: error: ") and "raw/nope" in line
