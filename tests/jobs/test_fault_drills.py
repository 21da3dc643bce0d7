"""Fault drills: a job killed at a failpoint (``pipeline.faults``), its Python driver or its Spark
JVM, leaves every table of the lake at a whole commit; ``jobs.maintain`` then removes what the
kill left (uncommitted files, the generator's scratch, Spark's local folders); a re-run with the
same run id exits 0 and gives tables equal, row for row, to those of an uninterrupted run.

Every job runs as its own process (``python -m jobs.<job>``) on one tiny generated world, with a
small Spark configuration (``spark.conf`` below). Each drill starts two or three Spark
applications, the clean runs are shared per module: slow.

A JVM killed after the job's last Spark call leaves a driver that finishes and exits 0: those
points are drilled with the driver killed only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.faults import ENV as FAILPOINT_ENV

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 1200
# 1,379 share records over 4 weeks (seed 5); observe fits one rising-star window of 2 + 1 weeks.
WORLD = ["--share-records", "1500", "--seed", "5", "--weeks", "4", "--run-id", "w1"]
OBSERVE = ["--run-id", "o1", "--before-weeks", "2", "--after-weeks", "1", "--history-weeks", "2"]
SHARDS = ["--task", "infnet", "--obs-weeks", "2", "--fanout", "5", "--run-id", "b1"]
JOBS = {"generate_world": WORLD, "observe": OBSERVE, "build_shards": SHARDS}
SPARK_SETTINGS = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
# Columns that say when or how long, not what: left out of the comparison with the clean run.
# ``observe_run`` logs each statistic's rows, or -1 and "(skipped)" when a re-run found it
# committed: only which statistics it holds is compared.
VOLATILE = {
    "ledger/ingest": {"committed_at"},
    "stats/observe_run": {"rows", "seconds", "note"},
}
MANIFEST_TIMINGS = ("build_seconds", "steps")
KEEP_WITHOUT_TIMINGS = ("shards/infnet_manifest",)
WRITES = ("WRITE", "CREATE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT")
RETENTION_S = 7 * 86400  # jobs.maintain's default retention (Delta's 168 hours)


# -- running jobs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_conf(tmp_path_factory) -> Path:
    """The repository's spark-defaults with a small local master (the drills' JVMs)."""
    from pipeline.session import read_defaults

    settings = {**read_defaults(), **SPARK_SETTINGS}
    path = tmp_path_factory.mktemp("conf") / "spark-defaults.conf"
    path.write_text("".join(f"{key} {value}\n" for key, value in settings.items()))
    return path


def run_job(job: str, lake: Path, conf: Path, local: Path, point: str | None = None,
            extra: list[str] | None = None) -> subprocess.CompletedProcess:
    """``python -m jobs.<job> --lake LAKE <its drill arguments>``, the failpoint armed or not,
    with Spark's local folders under ``local``."""
    env = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
    env.update(SHARECAST_SPARK_CONF=str(conf), SPARK_LOCAL_DIRS=str(local),
               PYSPARK_PYTHON=sys.executable)
    if point:
        env[FAILPOINT_ENV] = point
    local.mkdir(parents=True, exist_ok=True)
    args = JOBS.get(job, []) if extra is None else extra
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", f"jobs.{job}", "--lake", str(lake), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S,
    )
    log.info("%s (failpoint %s): exit %s in %.0f s", job, point, done.returncode,
             time.perf_counter() - began)
    return done


def succeeded(proc: subprocess.CompletedProcess) -> bool:
    assert proc.returncode == 0, proc.stderr[-4000:]
    return True


# -- reading the lake --------------------------------------------------------------------------


def tables(lake: Path) -> dict[str, Path]:
    """Every Delta table of the lake by ``layer/table`` name."""
    return {
        str(log.parent.relative_to(lake)): log.parent
        for log in sorted(lake.glob("**/_delta_log"))
    }


def _plain(value):
    """A value as JSON text can hold it; floats to 10 significant digits (the order of a
    distributed sum may change its last bits)."""
    if isinstance(value, float):
        return value if not math.isfinite(value) else float(f"{value:.10g}")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, int | str | bool | None) else str(value)


def _without_timings(text: str) -> str:
    info = json.loads(text)
    return json.dumps({k: v for k, v in info.items() if k not in MANIFEST_TIMINGS},
                      sort_keys=True)


def row_hashes(lake: Path) -> dict[str, list[str]]:
    """Each table's latest snapshot (read by delta-rs) as the sorted hashes of its rows: equal
    whatever order the rows are stored in."""
    from deltalake import DeltaTable

    out = {}
    for name, path in tables(lake).items():
        rows = DeltaTable(str(path)).to_pyarrow_table().to_pylist()
        hashes = []
        for row in rows:
            row = {k: v for k, v in row.items() if k not in VOLATILE.get(name, ())}
            if name in KEEP_WITHOUT_TIMINGS and "json" in row:
                row["json"] = _without_timings(row["json"])
            text = json.dumps(_plain(row), sort_keys=True)
            hashes.append(hashlib.sha256(text.encode()).hexdigest())
        out[name] = sorted(hashes)
    return out


def assert_whole_commits(spark, lake: Path) -> None:
    """Every version of every table reads (Spark and delta-rs) with the rows its commits say:
    an overwrite's ``numOutputRows``, an append's on top of the version before."""
    from deltalake import DeltaTable

    for name, path in tables(lake).items():
        rows = 0
        for commit in sorted(DeltaTable(str(path)).history(), key=lambda c: c["version"]):
            version, operation = commit["version"], commit["operation"]
            metrics = commit.get("operationMetrics") or {}
            if operation in WRITES:
                mode = (commit.get("operationParameters") or {}).get("mode", "Append")
                added = int(metrics["numOutputRows"])
                rows = added if mode == "Overwrite" else rows + added
            elif operation not in ("OPTIMIZE", "VACUUM START", "VACUUM END"):
                raise AssertionError(f"{name} v{version}: unexpected operation {operation}")
            by_spark = (
                spark.read.format("delta").option("versionAsOf", version).load(str(path))
                .toArrow().num_rows
            )
            by_rust = DeltaTable(str(path), version=version).to_pyarrow_table().num_rows
            assert by_spark == by_rust == rows, (name, version, by_spark, by_rust, rows)


def orphans(lake: Path) -> dict[str, list[str]]:
    """Data files in a table's folder that no version of the table references."""
    from urllib.parse import unquote, urlparse

    from deltalake import DeltaTable

    found = {}
    for name, path in tables(lake).items():
        table = DeltaTable(str(path))
        referenced = set()
        for version in range(table.version() + 1):
            uris = DeltaTable(str(path), version=version).file_uris()
            referenced |= {Path(unquote(urlparse(u).path)) for u in uris}
        on_disk = {
            f for f in path.rglob("*.parquet")
            if "_delta_log" not in f.relative_to(path).parts
        }
        if on_disk - referenced:
            found[name] = sorted(str(f.relative_to(path)) for f in on_disk - referenced)
    return found


def spark_leftovers(local: Path) -> list[Path]:
    from jobs.maintain import SPARK_LEFTOVER

    return [f for f in local.glob("*") if SPARK_LEFTOVER.fullmatch(f.name)]


def backdate(*folders: Path) -> None:
    """Make everything in the folders older than the retention, the Delta logs excepted (their
    times are the commits' times)."""
    then = time.time() - RETENTION_S - 86400
    for folder in folders:
        for item in [*folder.rglob("*"), folder]:
            if "_delta_log" not in item.parts:
                os.utime(item, (then, then), follow_symlinks=False)


# -- the clean runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_world(tmp_path_factory, spark_conf) -> Path:
    """A lake holding the tiny world, generated without a fault."""
    root = tmp_path_factory.mktemp("clean-world")
    lake = root / "lake"
    assert succeeded(run_job("generate_world", lake, spark_conf, root / "spark-local"))
    return lake


def _clean_after(job: str, clean_world: Path, tmp_path_factory, spark_conf) -> Path:
    root = tmp_path_factory.mktemp(f"clean-{job}")
    lake = root / "lake"
    shutil.copytree(clean_world, lake)
    assert succeeded(run_job(job, lake, spark_conf, root / "spark-local"))
    return lake


@pytest.fixture(scope="module")
def clean_observed(clean_world, tmp_path_factory, spark_conf) -> Path:
    return _clean_after("observe", clean_world, tmp_path_factory, spark_conf)


@pytest.fixture(scope="module")
def clean_shards(clean_world, tmp_path_factory, spark_conf) -> Path:
    return _clean_after("build_shards", clean_world, tmp_path_factory, spark_conf)


# -- the drills --------------------------------------------------------------------------------


def drill(spark, job: str, point: str, start: Path | None, clean: Path, tmp_path: Path,
          spark_conf: Path) -> None:
    """Kill ``job`` at ``point``; check the lake; maintain; re-run; compare with ``clean``."""
    lake, local = tmp_path / "lake", tmp_path / "spark-local"
    if start is not None:
        shutil.copytree(start, lake)
    killed = run_job(job, lake, spark_conf, local, point)
    name, _, target = point.partition(":")
    assert f"failpoint {name}: killing the {target or 'driver'}" in killed.stderr, (
        killed.stderr[-4000:]
    )
    if target == "jvm":
        assert killed.returncode > 0, killed.returncode  # the driver failed at its next call
    else:
        assert killed.returncode == -9, killed.stderr[-4000:]
    assert_whole_commits(spark, lake)
    scratch = lake / "_scratch"
    if target == "jvm":  # a JVM killed cannot remove its block manager's folder
        assert spark_leftovers(local), sorted(local.iterdir())
    elif job == "generate_world":  # nor a killed driver the generator's scratch
        assert any(scratch.iterdir()), "no scratch left"

    backdate(lake, local)
    maintained = run_job("maintain", lake, spark_conf, local, extra=["--no-optimize"])
    assert succeeded(maintained)
    assert orphans(lake) == {}
    assert not scratch.exists() or not any(scratch.iterdir())
    assert spark_leftovers(local) == []
    assert_whole_commits(spark, lake)

    assert succeeded(run_job(job, lake, spark_conf, local))
    assert row_hashes(lake) == row_hashes(clean)


GENERATE_POINTS = [
    f"generate_world.{place}{target}"
    for place in ("scratch-written", "raw-shares-committed", "raw-touches-committed",
                  "truth-committed")
    for target in ("", ":jvm")
]


@pytest.mark.parametrize("point", GENERATE_POINTS)
def test_generate_world_killed(spark, point, clean_world, tmp_path, spark_conf):
    """Before the first raw commit, between two, before ``truth/world``, before the ledger."""
    drill(spark, "generate_world", point, None, clean_world, tmp_path, spark_conf)


OBSERVE_POINTS = [
    "observe.share_features-committed",  # between two statistics' commits
    "observe.share_features-committed:jvm",
    "observe.observe_run-committed",  # after the last commit
]


@pytest.mark.parametrize("point", OBSERVE_POINTS)
def test_observe_killed(spark, point, clean_world, clean_observed, tmp_path, spark_conf):
    drill(spark, "observe", point, clean_world, clean_observed, tmp_path, spark_conf)


SHARD_POINTS = [
    "build_shards.step-queries",  # the build half done, nothing committed
    "build_shards.step-queries:jvm",
    "build_shards.shards-committed",  # shards committed over the old ones, manifest still old
    "build_shards.committed",  # shards and manifest committed
]


@pytest.mark.parametrize("point", SHARD_POINTS)
def test_build_shards_killed(spark, point, clean_world, clean_shards, tmp_path, spark_conf):
    drill(spark, "build_shards", point, clean_world, clean_shards, tmp_path, spark_conf)


# -- odd paths ---------------------------------------------------------------------------------

ODD = "a b [1] {x,y} *? é 日本"  # a space, glob characters and non-ASCII, in one folder name


def test_generate_world_with_odd_paths(tmp_path, spark_conf, clean_world):
    """The lake and the world's YAML under a folder whose name Spark would read as a pattern:
    exit 0 and the clean run's tables (the generator reads its scratch intermediates back)."""
    root = tmp_path / ODD
    root.mkdir()
    config = root / f"world {ODD}.yaml"
    config.write_text("share_records: 1500\nseed: 5\nweeks: 4\n")  # as WORLD's flags
    lake = root / "lake"
    generated = run_job("generate_world", lake, spark_conf, tmp_path / "spark-local",
                        extra=["--config", str(config), "--run-id", "w1"])
    assert succeeded(generated)
    assert row_hashes(lake) == row_hashes(clean_world)


def test_observe_and_build_shards_with_odd_paths(
    tmp_path, spark_conf, clean_world, clean_observed, clean_shards
):
    """``observe`` (its summary file too) and ``build_shards`` on a lake under such a folder:
    exit 0 and the clean runs' tables."""
    root = tmp_path / ODD
    local = tmp_path / "spark-local"
    observed, sharded = root / "observed", root / "sharded"
    shutil.copytree(clean_world, observed)
    shutil.copytree(clean_world, sharded)
    summary = root / f"summary {ODD}.json"
    assert succeeded(run_job("observe", observed, spark_conf, local,
                             extra=[*OBSERVE, "--summary", str(summary)]))
    assert json.loads(summary.read_text())["run_id"] == "o1"
    assert row_hashes(observed) == row_hashes(clean_observed)
    assert succeeded(run_job("build_shards", sharded, spark_conf, local))
    assert row_hashes(sharded) == row_hashes(clean_shards)
