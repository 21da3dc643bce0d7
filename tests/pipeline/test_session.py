"""The session builder's settings: Spark's console log configuration and its progress bar."""

from __future__ import annotations

from pathlib import Path

from pipeline.session import (
    DRIVER_JAVA_OPTIONS,
    PROGRESS,
    absolute_log_config,
    progress_bar_on_terminal,
    read_defaults,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_point_the_driver_at_a_log4j_file_that_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a job started from another folder
    options = read_defaults(ROOT / "spark-defaults.conf")[DRIVER_JAVA_OPTIONS]
    (path,) = [o.split("=", 1)[1] for o in options.split()
               if o.startswith("-Dlog4j.configurationFile=")]
    assert Path(path).is_absolute() and Path(path).is_file()
    assert "rootLogger.level = warn" in Path(path).read_text()


def test_only_a_relative_log4j_path_is_made_absolute(tmp_path):
    base = tmp_path / "conf"
    got = absolute_log_config("-Xss4m -Dlog4j.configurationFile=a/log4j2.properties -Dx=y", base)
    assert got == f"-Xss4m -Dlog4j.configurationFile={base / 'a' / 'log4j2.properties'} -Dx=y"
    for kept in ("-Dlog4j.configurationFile=/etc/spark/log4j2.properties",
                 "-Dlog4j.configurationFile=file:///etc/spark/log4j2.properties",
                 "-Dother=rel/path"):
        assert absolute_log_config(kept, base) == kept


def test_progress_bar_only_on_a_terminal():
    on = {PROGRESS: "true", "spark.master": "local[2]"}
    assert progress_bar_on_terminal(on, terminal=True) == on
    assert progress_bar_on_terminal(on, terminal=False) == {**on, PROGRESS: "false"}
    assert on[PROGRESS] == "true"  # the caller's dict is left as it was
    off = {PROGRESS: "false"}
    assert progress_bar_on_terminal(off, terminal=True) == off
    assert progress_bar_on_terminal({}, terminal=False) == {}
