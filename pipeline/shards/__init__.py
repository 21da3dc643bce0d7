"""Shard builders: one module per task, each registering ``build(spark, lake, args)``.

``jobs.build_shards --task NAME`` looks the builder up here; a builder reads raw tables from the
lake, writes ``shards/<task>`` (one row per example, with ``split``) and a manifest.
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
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
