"""Readable log lines for the Spark side: every job calls :func:`configure` once in ``main()``.

Modules log through ``logging.getLogger(__name__)``. The lines go to stderr as

    2026-01-12 10:31:07 INFO    pipeline.stats.observe: conversion_index: 80 rows in 2.1 s

so that a job's stdout holds only its JSON summary. sharecast's own loggers (``jobs``,
``pipeline``, ``contracts`` and the job module run as ``__main__``) log at the chosen level;
every other library (py4j, matplotlib, ...) keeps the root logger's level (WARNING unless set).
"""

from __future__ import annotations

import argparse
import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The loggers whose level ``--log-level`` sets.
OWN = ("jobs", "pipeline", "contracts", "__main__")


class _Stderr(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a line is written, so that code
    swapping it (``contextlib.redirect_stderr``, test capture) gets the lines, and a stream
    closed since is never written to."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _MainName(logging.Filter):
    """Shows a job run as a script or with ``-m`` (``__name__ == "__main__"``) by its module
    name, e.g. ``jobs.observe``, so every line names where it came from."""

    def __init__(self) -> None:
        super().__init__()
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        path = getattr(main, "__file__", None) or ""
        stem = path.rsplit("/", 1)[-1].removesuffix(".py")
        self.name_of_main = spec.name if spec is not None else f"jobs.{stem or 'main'}"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "__main__":
            record.name = self.name_of_main
        return True


def configure(level: str | int = "INFO") -> None:
    """Send log lines to stderr in :data:`FORMAT`; sharecast's loggers at ``level``.

    Calling it again replaces the handler it installed before (a job's ``main()`` may run
    several times in one process, as in the tests), so lines are never written twice.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_sharecast", False)]:
        root.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    handler.addFilter(_MainName())
    handler._sharecast = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for name in OWN:
        logging.getLogger(name).setLevel(level)


def add_argument(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` for a job's argument parser (default INFO)."""
    parser.add_argument("--log-level", default="INFO", choices=LEVELS,
                        help="level of sharecast's log lines on stderr (default INFO)")
