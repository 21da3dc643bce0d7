"""The one Spark session builder every job and test uses.

It reads ``spark-defaults.conf`` from the repository root (or ``$SHARECAST_SPARK_CONF``), so
``python -m jobs.x`` behaves like ``spark-submit --properties-file spark-defaults.conf jobs/x.py``.
Settings already given to the JVM (``spark-submit --conf`` / ``--master``) win over the file.

The console stays readable: Spark's own log4j lines are warnings and errors only
(``pipeline/log4j2.properties``, named in ``spark.driver.extraJavaOptions``), and when this
process starts the JVM, Spark's progress bar is drawn only if stderr is a terminal (Spark itself
draws it whenever ``spark.ui.showConsoleProgress`` is true, into a log file too). Under
``spark-submit`` the JVM is already running and the properties file decides.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "spark-defaults.conf"
PROGRESS = "spark.ui.showConsoleProgress"
DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
_LOG4J_FILE = re.compile(r"(-Dlog4j2?\.configurationFile=)(\S+)")
#: Characters Spark's file readers expand as a glob pattern.
GLOB_CHARACTERS = re.compile(r"[\\*?\[\]{}]")


def spark_path(file: str | os.PathLike) -> str:
    """The file's absolute path as Spark must be given it: Spark expands every path it reads
    as a glob pattern, so a name like ``a[1].csv`` would read ``a1.csv`` instead."""
    return GLOB_CHARACTERS.sub(lambda m: "\\" + m.group(0), os.path.abspath(file))


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
    if DRIVER_JAVA_OPTIONS in conf:
        conf[DRIVER_JAVA_OPTIONS] = absolute_log_config(conf[DRIVER_JAVA_OPTIONS], path.parent)
    return conf


def absolute_log_config(java_options: str, base: Path) -> str:
    """Make a relative ``-Dlog4j.configurationFile=PATH`` absolute against ``base`` (the folder
    of the defaults file), so a job started from another folder still finds it."""

    def fix(m: re.Match) -> str:
        value = m.group(2)
        if ":" in value or Path(value).is_absolute():  # a URI, or already absolute
            return m.group(0)
        return m.group(1) + str((base / value).resolve())

    return _LOG4J_FILE.sub(fix, java_options)


def progress_bar_on_terminal(settings: dict[str, str], terminal: bool) -> dict[str, str]:
    """``settings`` with Spark's console progress bar turned off unless stderr is a terminal:
    the bar redraws itself with carriage returns, which in a log file or pipe are noise."""
    if settings.get(PROGRESS, "false").lower() == "true" and not terminal:
        return {**settings, PROGRESS: "false"}
    return settings


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
    else:
        settings = progress_bar_on_terminal(settings, os.isatty(2))
        # Python workers (grouped maps) run this interpreter, which has this package and its
        # pins, not whatever ``python3`` is first on the PATH (pyspark reads the variable).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings.update(conf or {})
    if master:
        settings["spark.master"] = master
    builder = SparkSession.builder.appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SHARECAST_SPARK_LOG_LEVEL", "WARN"))
    return spark
