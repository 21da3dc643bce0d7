"""Jobs under spark-submit on a real standalone cluster (master + worker on loopback).

Run with ``pytest -m cluster``; starts and stops its own cluster.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


def _spark_bin(name: str) -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / name)


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    master = subprocess.Popen(
        [
            _spark_bin("spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            "7077",
            "--webui-port",
            "18080",
        ],
        stdout=open(logs / "master.log", "w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    _wait_port(7077)
    worker = subprocess.Popen(
        [
            _spark_bin("spark-class"),
            "org.apache.spark.deploy.worker.Worker",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--webui-port",
            "18081",
            "spark://127.0.0.1:7077",
        ],
        stdout=open(logs / "worker.log", "w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    time.sleep(5)
    yield "spark://127.0.0.1:7077"
    for proc in (worker, master):
        proc.terminate()
        proc.wait(timeout=30)


def test_generate_world_under_spark_submit_on_a_cluster(cluster, tmp_path):
    lake = tmp_path / "lake"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    cmd = [
        _spark_bin("spark-submit"),
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
