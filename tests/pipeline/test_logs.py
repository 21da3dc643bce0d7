"""Log lines of the Spark side: one readable format on stderr, at the level a job asks for."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import re
import sys
import types

import pytest

from pipeline import logs

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|DEBUG|WARNING|ERROR) +(\S+): (.*)$")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, levels = list(root.handlers), {n: logging.getLogger(n).level for n in logs.OWN}
    yield
    root.handlers[:] = handlers
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_lines_name_time_level_and_logger_on_stderr(capsys, restore_logging):
    logs.configure("INFO")
    logs.configure("INFO")  # a second job in the same process: still one line per message
    logging.getLogger("pipeline.stats.observe").info("%s: %s rows", "conversion_index", 80)
    logging.getLogger("pipeline.lake").debug("not at INFO")
    logging.getLogger("py4j.clientserver").info("another library's INFO line")
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert LINE.match(line).groups() == (
        "INFO", "pipeline.stats.observe", "conversion_index: 80 rows"
    )


def test_level_and_main_module_name(capsys, restore_logging, monkeypatch):
    script = types.ModuleType("__main__")  # spark-submit jobs/maintain.py
    script.__spec__, script.__file__ = None, "/repo/jobs/maintain.py"
    monkeypatch.setitem(sys.modules, "__main__", script)
    logs.configure("DEBUG")
    logging.getLogger("__main__").debug("from the job")
    logging.getLogger("pipeline.lake").debug("debug line")
    lines = [LINE.match(line).groups() for line in capsys.readouterr().err.splitlines()]
    assert lines == [("DEBUG", "jobs.maintain", "from the job"),
                     ("DEBUG", "pipeline.lake", "debug line")]

    module = types.ModuleType("__main__")  # python -m jobs.observe
    module.__spec__ = importlib.util.find_spec("jobs.observe")
    monkeypatch.setitem(sys.modules, "__main__", module)
    logs.configure("INFO")
    logging.getLogger("__main__").info("from the job")
    (line,) = capsys.readouterr().err.splitlines()
    assert LINE.match(line).groups() == ("INFO", "jobs.observe", "from the job")

    logs.configure("WARNING")
    logging.getLogger("jobs.observe").info("hidden")
    logging.getLogger("jobs.observe").warning("shown")
    (line,) = capsys.readouterr().err.splitlines()
    assert LINE.match(line).groups() == ("WARNING", "jobs.observe", "shown")


def test_log_level_argument():
    parser = argparse.ArgumentParser()
    logs.add_argument(parser)
    assert parser.parse_args([]).log_level == "INFO"
    assert parser.parse_args(["--log-level", "DEBUG"]).log_level == "DEBUG"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "LOUD"])
