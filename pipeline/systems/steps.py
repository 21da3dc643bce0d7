"""Timed, kept intermediate results for the shard builders (``Steps``)."""

from __future__ import annotations

import logging
import time

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from pipeline.faults import failpoint

log = logging.getLogger(__name__)

#: Serialized (Kryo) in memory, spilling to local disk: a 100M-record world's 30 days of share
#: records do not fit the driver heap as Java objects.
KEEP = StorageLevel(True, True, False, False)


class Steps:
    """Keeps the builder's reused intermediate results, one at a time.

    Each is computed once and kept as a local checkpoint: unlike ``cache()`` this also cuts the
    query plan there, so later plans do not carry (and re-print) every earlier step; with a
    dozen nested cached steps the plan strings alone filled the driver's heap. With ``measure`` the
    rows and wall seconds of each step are logged as it finishes and kept for the manifest,
    so a run's log says where the time goes.
    """

    def __init__(self, measure: bool = True):
        self.measure = measure
        self.record: dict[str, dict] = {}

    def __call__(self, name: str, df: DataFrame) -> DataFrame:
        started = time.perf_counter()
        # Lazy, then counted: one pass computes and stores it (eager + count would be two).
        kept = df.localCheckpoint(eager=not self.measure, storageLevel=KEEP)
        if self.measure:
            rows = kept.count()
            seconds = time.perf_counter() - started
            self.record[name] = {"rows": rows, "seconds": round(seconds, 1)}
            log.info("%s: %s rows, %.1f s", name, f"{rows:,}", seconds)
        failpoint(f"build_shards.step-{name}", df.sparkSession)
        return kept
