"""The world's clock as columns: seconds since ``start`` to timestamps, weeks and
``week_start`` (the meaning of "week" is documented in ``pipeline.world.config``)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column
from pyspark.sql import functions as F

from pipeline.world.config import WEEK_S, WorldConfig


def timestamp(cfg: WorldConfig, seconds: Column) -> Column:
    """The timestamp ``seconds`` after ``cfg.start`` 00:00 UTC."""
    start = int(dt.datetime.combine(cfg.start, dt.time(), tzinfo=dt.UTC).timestamp())
    return F.timestamp_seconds(F.lit(start) + seconds)


def week_index(t: Column) -> Column:
    """The week of ``t`` (seconds since start), numbered from 0."""
    return F.floor(t / WEEK_S).cast("int")


def week_start(ts: Column) -> Column:
    """The Monday that starts the week of timestamp ``ts`` (the raw tables' partition)."""
    return F.to_date(F.date_trunc("week", ts))

