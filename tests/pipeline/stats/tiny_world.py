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
    (every stay 1 s)

    touch sessions (E8's intent score: purchase-button tap share + detail/comments time share)
    t1  2  item 10  Jan 3 09:00:00-09:00:08  Home 4 s, Detail 4 s; taps buy_now, back: 1/2 +
        1/2 = 1.0; p1 59 min 52 s after its end: converts within 1 hour (and 1 day)
    t2  4  item 11  Jan 3 12:00:00-12:00:08  Home 6 s, Comments 2 s; taps back, share and one
        on no button: 0/2 + 2/8 = 0.25; p3 20 h 59 min 52 s after: within 1 day only
    t3  1  item 12  Jan 10 10:00:00-10:00:03  Search 3 s, no taps: 0; user 1 never buys
    t4  3  item 10  Jan 2 13:00:00-13:00:05  Home 3 s, Detail 1 s, Cart opened and never left
        (its time unknown: left out); a tap on back: 0 + 1/4 = 0.25; user 3 never buys item 10
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from pipeline import batches
from pipeline.schemas import RAW, stored_schema, with_partitions

ORIGIN = dt.date(2024, 1, 1)


def ts(day: int, hour: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, 0, second, tzinfo=dt.UTC)


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


def touch(session, user, item, at, event, page, button=None):
    return (user, item, at, session, event, page, None, None, None, None, None, button)


TOUCHES = [
    touch(1, 2, 10, ts(3, 9), "open_page", "Page_Home"),
    touch(1, 2, 10, ts(3, 9, 4), "leave_page", "Page_Home"),
    touch(1, 2, 10, ts(3, 9, 4), "open_page", "Page_Detail"),
    touch(1, 2, 10, ts(3, 9, 5), "tap", "Page_Detail", "buy_now"),
    touch(1, 2, 10, ts(3, 9, 6), "tap", "Page_Detail", "back"),
    touch(1, 2, 10, ts(3, 9, 8), "leave_page", "Page_Detail"),
    touch(2, 4, 11, ts(3, 12), "open_page", "Page_Home"),
    touch(2, 4, 11, ts(3, 12, 1), "tap", "Page_Home", "back"),
    touch(2, 4, 11, ts(3, 12, 2), "tap", "Page_Home", "share"),
    touch(2, 4, 11, ts(3, 12, 3), "tap", "Page_Home"),
    touch(2, 4, 11, ts(3, 12, 6), "leave_page", "Page_Home"),
    touch(2, 4, 11, ts(3, 12, 6), "open_page", "Page_Comments"),
    touch(2, 4, 11, ts(3, 12, 8), "leave_page", "Page_Comments"),
    touch(3, 1, 12, ts(10, 10), "open_page", "Page_Search"),
    touch(3, 1, 12, ts(10, 10, 3), "leave_page", "Page_Search"),
    touch(4, 3, 10, ts(2, 13), "open_page", "Page_Home"),
    touch(4, 3, 10, ts(2, 13, 3), "leave_page", "Page_Home"),
    touch(4, 3, 10, ts(2, 13, 3), "open_page", "Page_Detail"),
    touch(4, 3, 10, ts(2, 13, 4), "leave_page", "Page_Detail"),
    touch(4, 3, 10, ts(2, 13, 4), "open_page", "Page_Cart"),
    touch(4, 3, 10, ts(2, 13, 5), "tap", "Page_Cart", "back"),
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
        "touches": timed("touches", TOUCHES, 2),
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
