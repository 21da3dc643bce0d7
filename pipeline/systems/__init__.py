"""The Spark side of each system: one package per system (``pipeline/systems/<system>/``).

Each system's ``shards`` module registers ``build(spark, lake, args)`` with :func:`register`;
``jobs.build_shards --task NAME`` looks the builder up here. A builder reads raw tables from the
lake and writes ``shards/<task>`` (one row per example, with ``split``) and a manifest, in the
shapes its ``contracts/<system>.py`` module declares.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable

from pyspark.sql import SparkSession

from pipeline.lake import Lake

Builder = Callable[[SparkSession, Lake, argparse.Namespace], dict]
BUILDERS: dict[str, Builder] = {}
# Each builder may add its own command-line options.
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def register(
    task: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        BUILDERS[task] = fn
        if arguments is not None:
            ARGUMENTS[task] = arguments
        return fn

    return deco


def load_all() -> None:
    """Import every module of every system package (builders register on import)."""
    for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(info.name)
