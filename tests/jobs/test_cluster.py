"""Jobs under spark-submit on a real standalone cluster (master + worker on loopback).

Run with ``pytest -m cluster``; starts and stops its own cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.jobs.standalone import ROOT, spark_bin, standalone_cluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(tmp_path_factory.mktemp("cluster"), workers=1, cores=2,
                            memory="2g") as (url, _):
        yield url


def test_generate_world_under_spark_submit_on_a_cluster(cluster, tmp_path):
    lake = tmp_path / "lake"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    cmd = [
        spark_bin("spark-submit"),
        "--master",
        cluster,
        "--properties-file",
        str(ROOT / "spark-defaults.conf"),
        "--conf",
        "spark.executor.memory=1g",
        str(ROOT / "jobs" / "generate_world.py"),
        "--lake",
        str(lake),
        "--share-records",
        "3000",
        "--seed",
        "2",
        "--weeks",
        "4",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert summary["rows"]["shares"] > 2000

    from pipeline.lake import Lake

    # the same seed in local mode gives the same shares: determinism across engines
    local = tmp_path / "local"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.generate_world",
            "--lake",
            str(local),
            "--share-records",
            "3000",
            "--seed",
            "2",
            "--weeks",
            "4",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    a = (
        Lake(lake)
        .to_arrow("raw", "shares")
        .sort_by([("sender_id", "ascending"), ("receiver_id", "ascending"), ("ts", "ascending")])
    )
    b = (
        Lake(local)
        .to_arrow("raw", "shares")
        .sort_by([("sender_id", "ascending"), ("receiver_id", "ascending"), ("ts", "ascending")])
    )
    assert a.equals(b)
