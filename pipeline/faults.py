"""Failpoints: named places in the jobs where a fault drill kills the process.

A job calls ``failpoint("ingest.raw-committed")`` at the places where a crash is most
interesting (between two commits, after files are written but before the commit). Nothing
happens unless the environment names that point:

    SHARECAST_FAILPOINT=ingest.raw-committed python -m jobs.ingest ...        # kill the driver
    SHARECAST_FAILPOINT=ingest.raw-committed:jvm python -m jobs.ingest ...    # kill the JVM

``<name>`` sends SIGKILL to the Python driver (a local-mode JVM exits with it: its gateway
ends when the driver's pipe closes); ``<name>:jvm`` sends SIGKILL to the Spark JVM and lets the
driver go on, so it fails at its next Spark call the way it does when an executor host dies.
The drills in ``tests/jobs/test_fault_drills.py`` use them to check that a kill at any point
leaves whole commits only and that a re-run converges to the clean run.
"""

from __future__ import annotations

import logging
import os
import signal

ENV = "SHARECAST_FAILPOINT"

log = logging.getLogger(__name__)


def armed(name: str) -> str | None:
    """What the environment asks at ``name``: "driver", "jvm", or None (nothing)."""
    wanted = os.environ.get(ENV, "")
    if not wanted:
        return None
    point, _, target = wanted.partition(":")
    if point != name:
        return None
    return target or "driver"


def failpoint(name: str, spark=None) -> None:
    """Kill the driver or the JVM here when ``SHARECAST_FAILPOINT`` names this point.

    Args:
        name: the point's name, ``<job>.<place>``.
        spark: the job's session; needed for ``:jvm`` (its JVM's pid).
    """
    target = armed(name)
    if target is None:
        return
    log.warning("failpoint %s: killing the %s", name, target)
    if target == "jvm":
        if spark is None:
            raise ValueError(f"failpoint {name}: ':jvm' needs the Spark session")
        pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
        os.kill(pid, signal.SIGKILL)
        return
    if target != "driver":
        raise ValueError(f"{ENV}={name}:{target}: expected '{name}' or '{name}:jvm'")
    os.kill(os.getpid(), signal.SIGKILL)
