"""A Spark standalone cluster on loopback for the jobs' tests: a master and N workers, started
from pyspark's own scripts on free ports, stopped when the test module ends."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spark_bin(name: str) -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"gave up waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def standalone_cluster(folder: Path, workers: int = 2, cores: int = 1, memory: str = "1g"):
    """Yield ``(master URL, [each worker's work folder])``. Workers run with this
    interpreter as ``PYSPARK_PYTHON`` and the repository on ``PYTHONPATH``, as a real cluster
    has the package installed on each node."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT)}
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    procs = [subprocess.Popen(
        [spark_bin("spark-class"), "org.apache.spark.deploy.master.Master", "--host",
         "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())],
        stdout=open(folder / "master.log", "w"), stderr=subprocess.STDOUT, env=env)]
    work = [folder / f"worker{i}" for i in range(workers)]
    try:
        _wait(lambda: _listening(port), f"the master on port {port}")
        for i, path in enumerate(work):
            procs.append(subprocess.Popen(
                [spark_bin("spark-class"), "org.apache.spark.deploy.worker.Worker", "--cores",
                 str(cores), "--memory", memory, "--webui-port", str(free_port()),
                 "--work-dir", str(path), url],
                stdout=open(folder / f"worker{i}.log", "w"), stderr=subprocess.STDOUT, env=env))
        master_log = folder / "master.log"
        _wait(lambda: master_log.read_text().count("Registering worker") >= workers,
              f"{workers} workers to register (see {master_log})")
        yield url, work
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
