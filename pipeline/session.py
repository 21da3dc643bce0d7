"""The one Spark session builder every job and test uses.

It reads ``spark-defaults.conf`` from the repository root (or ``$SHARECAST_SPARK_CONF``), so
``python -m jobs.x`` behaves like ``spark-submit --properties-file spark-defaults.conf jobs/x.py``.
Settings already given to the JVM (``spark-submit --conf`` / ``--master``) win over the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "spark-defaults.conf"


def read_defaults(path: str | os.PathLike | None = None) -> dict[str, str]:
    """Parse a ``spark-defaults.conf`` file: ``key value`` per line, ``#`` comments."""
    path = Path(path or os.environ.get("SHARECAST_SPARK_CONF") or DEFAULTS_FILE)
    conf: dict[str, str] = {}
    if not path.exists():
        return conf
    for line_no, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{path}:{line_no}: expected 'key value', got {raw!r}")
        conf[parts[0]] = parts[1].strip()
    return conf


def get_spark(
    app_name: str = "sharecast",
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """Return the active session or build one from spark-defaults.conf.

    Args:
        app_name: shown in the Spark UI.
        master: overrides ``spark.master`` (e.g. ``spark://127.0.0.1:7077``); None keeps the
            file's value or what spark-submit passed.
        conf: extra settings that win over the file.
    """
    active = SparkSession.getActiveSession()
    if active is not None and master is None and not conf:
        # Jobs called inside a running application (tests, notebooks) reuse it as it is.
        return active
    settings = read_defaults()
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # Under spark-submit the JVM already holds --master/--conf: the file only fills gaps.
        SparkContext._ensure_initialized()
        submitted = SparkConf()
        settings = {k: v for k, v in settings.items() if not submitted.contains(k)}
    settings.update(conf or {})
    if master:
        settings["spark.master"] = master
    builder = SparkSession.builder.appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SHARECAST_SPARK_LOG_LEVEL", "WARN"))
    return spark
