"""A hand-made world small enough to work every statistic out by hand.

Week 1 starts Monday 2024-01-01. Users 1..4, items 10, 11 (leaf 100) and 12 (leaf 101), all in
top category 1, price index 1, 2, 3.

    shares (sender -> receiver, item, time)       purchases (user, item, time)
    s1  1 -> 2  item 10  Jan 1 10:00             p1  2  item 10  Jan 3 10:00   (s1 converts)
    s2  1 -> 3  item 10  Jan 2 10:00             p2  4  item 10  Jan 20 10:00  (11 days after s3)
    s3  2 -> 4  item 10  Jan 9 10:00             p3  4  item 11  Jan 4 09:00   (s4 converts)
    s4  3 -> 4  item 11  Jan 3 10:00             p4  3  item 12  Jan 10 12:00
    s5  4 -> 1  item 12  Jan 10 10:00

    browses (user, item, time)
    b1  2  item 10  Jan 1 09:00   p1 two days later: converts
    b2  3  item 10  Jan 1 09:00   never buys
    b3  4  item 11  Jan 5 09:00   p3 was the day before: no
    b4  3  item 12  Jan 10 11:00  p4 an hour later: converts
    b5  1  item 11  Jan 2 09:00   never buys
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from pipeline import batches
from pipeline.schemas import RAW, stored_schema, with_partitions

ORIGIN = dt.date(2024, 1, 1)


def ts(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, tzinfo=dt.UTC)


def monday(t: dt.datetime) -> dt.date:
    d = t.date()
    return d - dt.timedelta(days=d.weekday())


SHARES = [
    (1, 2, 10, ts(1, 10)),
    (1, 3, 10, ts(2, 10)),
    (2, 4, 10, ts(9, 10)),
    (3, 4, 11, ts(3, 10)),
    (4, 1, 12, ts(10, 10)),
]
PURCHASES = [
    (2, 10, ts(3, 10), 1.0),
    (4, 10, ts(20, 10), 1.0),
    (4, 11, ts(4, 9), 2.0),
    (3, 12, ts(10, 12), 3.0),
]
BROWSES = [
    (2, 10, ts(1, 9), "view", "item", 1.0),
    (3, 10, ts(1, 9), "view", "item", 1.0),
    (4, 11, ts(5, 9), "view", "item", 1.0),
    (3, 12, ts(10, 11), "view", "item", 1.0),
    (1, 11, ts(2, 9), "view", "item", 1.0),
]
ITEMS = [
    (10, 1, 100, 10.0, 1.0),
    (11, 1, 100, 20.0, 2.0),
    (12, 1, 101, 30.0, 3.0),
]


def frames(spark) -> dict:
    """The raw tables as Spark DataFrames with their lake schemas (week_start included)."""
    def timed(table, rows, ts_index):
        schema = with_partitions(table, RAW[table])
        return spark.createDataFrame([(*r, monday(r[ts_index])) for r in rows], schema)

    return {
        "shares": timed("shares", SHARES, 3),
        "purchases": timed("purchases", PURCHASES, 2),
        "browses": timed("browses", BROWSES, 2),
        "items": spark.createDataFrame(ITEMS, RAW["items"]),
    }


def write_lake(spark, lake) -> None:
    """Commit the tiny world as ``raw/*`` tables, one whole batch ``tiny`` as a generated
    world's."""
    entries = []
    for name, df in frames(spark).items():
        parts = ["week_start"] if "week_start" in df.columns else None
        stored = df.withColumn("batch_id", F.lit("tiny")).select(*stored_schema(name).names)
        res = lake.write(stored, "raw", name, partition_by=parts, app_id=f"tiny:{name}")
        entries.append(batches.entry(name, "tiny", "world", read=res.rows, accepted=res.rows,
                                     quarantined=0, raw_version=res.version))
    batches.record(spark, lake, "tiny", entries)
