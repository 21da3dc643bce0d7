"""DIPN's three views as discretised events: one row per event, ``(user_id, view, ts, key, x)``.

``ts`` is epoch milliseconds, ``key`` breaks ties of equal times stably, ``x`` is the event's
feature ids in the order ``contracts.dipn.<VIEW>_FEATURES`` declares (0 = not applicable).
The discretisation follows the paper (``contracts.dipn``'s docstring); ``bucket_col`` is the
column twin of ``contracts.dipn.bucket``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from contracts import dipn as contract
from pipeline import schemas

VIEWS = ("swipe", "tap", "browse")


def bucket_col(x: Column, steps: tuple[float, float]) -> Column:
    """The paper's step function as ids 1..20 (0 where ``x`` is null)."""
    f_s, f_b = steps
    raw = (
        F.when(x < f_b, F.floor(x / f_s))
        .when(x < 10 * f_b, F.floor(x / f_b + 9))
        .otherwise(contract.STEP_BUCKETS - 1)
    )
    return F.when(x.isNull(), 0).otherwise(F.greatest(F.lit(0), raw) + 1)


def grid_col(v: Column, extent: float, cells: int) -> Column:
    """A coordinate on ``cells`` uniform segments of ``[0, extent]``: ids 1..cells, 0 if null."""
    cell = F.least(F.floor(v / extent * cells), F.lit(cells - 1)) + 1
    return F.when(v.isNull(), 0).otherwise(F.greatest(F.lit(1), cell))


def length_col(delta: Column, extent: float, cells: int) -> Column:
    """A signed swipe length in ``[-extent, extent]`` on ``2 * cells`` segments: ids 1..2 cells."""
    return grid_col(delta + extent, 2 * extent, 2 * cells)


def vocab_col(value: Column, names: tuple[str, ...], size: int) -> Column:
    """A name's 1-based index in ``names``; names beyond the vocabulary, or unknown, share the
    last id ``size - 1``; null is 0."""
    index = F.array_position(F.array(*[F.lit(n) for n in names]), value)
    return (
        F.when(value.isNull(), 0)
        .when((index == 0) | (index >= size), size - 1)
        .otherwise(index)
    )


def _millis(ts: Column) -> Column:
    return F.unix_millis(ts)


def _ids(*cols: Column) -> Column:
    return F.array(*[c.cast("short") for c in cols])


def _gap(df: DataFrame) -> DataFrame:
    """``gap``: milliseconds since the user's previous event in the same view (null: first)."""
    w = Window.partitionBy("user_id").orderBy("ts", "key")
    return df.withColumn("gap", F.col("ts") - F.lag("ts").over(w))


def swipe_events(touches: DataFrame) -> DataFrame:
    """Every touch as a swipe-view event (the paper's swipe-interactive track holds open page,
    leave page, swipe and tap actions)."""
    v = "swipe"
    sw = F.col("event") == "swipe"
    tap = F.col("event") == "tap"
    dx, dy = F.col("x_end") - F.col("x"), F.col("y_end") - F.col("y")
    w, h, gx, gy = contract.SCREEN_W, contract.SCREEN_H, contract.GRID_X, contract.GRID_Y
    events = _gap(
        touches.select(
            "user_id", "event", "page", "x", "y", "x_end", "y_end", "duration_ms",
            _millis(F.col("ts")).alias("ts"),
            F.xxhash64("session_id", "event", "x", "y", "duration_ms").alias("key"),
        )
    )
    x = _ids(
        vocab_col(F.col("page"), schemas.TOUCH_PAGES, contract.VOCAB[f"{v}.page"]),
        vocab_col(F.col("event"), contract.SWIPE_ACTIONS, contract.VOCAB[f"{v}.action"]),
        bucket_col(F.col("gap"), contract.GAP_STEPS),
        F.when(tap, grid_col(F.col("x"), w, gx)).otherwise(0),
        F.when(tap, grid_col(F.col("y"), h, gy)).otherwise(0),
        F.when(sw, grid_col(F.col("x"), w, gx)).otherwise(0),
        F.when(sw, grid_col(F.col("y"), h, gy)).otherwise(0),
        F.when(sw, grid_col(F.col("x_end"), w, gx)).otherwise(0),
        F.when(sw, grid_col(F.col("y_end"), h, gy)).otherwise(0),
        F.when(sw & dx.isNotNull(), length_col(dx, w, gx)).otherwise(0),
        F.when(sw & dy.isNotNull(), length_col(dy, h, gy)).otherwise(0),
        F.when(sw & dx.isNotNull(), F.when(dx >= 0, 2).otherwise(1)).otherwise(0),
        F.when(sw & dy.isNotNull(), F.when(dy >= 0, 2).otherwise(1)).otherwise(0),
        bucket_col(F.col("duration_ms"), contract.DURATION_STEPS),
    )
    return events.select("user_id", F.lit(v).alias("view"), "ts", "key", x.alias("x"))


def tap_events(touches: DataFrame) -> DataFrame:
    """The taps: on the page (event id 1) or on a named button (event id 2)."""
    v = "tap"
    taps = touches.where(F.col("event") == "tap")
    x = _ids(
        F.when(F.col("button").isNull(), 1).otherwise(2),
        vocab_col(F.col("page"), schemas.TOUCH_PAGES, contract.VOCAB[f"{v}.page"]),
        vocab_col(F.col("button"), schemas.TOUCH_BUTTONS, contract.VOCAB[f"{v}.button"]),
    )
    return taps.select(
        "user_id", F.lit(v).alias("view"), _millis(F.col("ts")).alias("ts"),
        F.xxhash64("session_id", "x", "y", "duration_ms").alias("key"), x.alias("x"),
    )


def browse_events(browses: DataFrame, purchases: DataFrame, items: DataFrame) -> DataFrame:
    """Browses (view, click, favourite, cart, search) and purchases, with the item's categories,
    the page, the stay time and the hour of day."""
    v = "browse"
    acts = browses.select("user_id", "item_id", "ts", "action", "page", "stay_s").unionByName(
        purchases.select(
            "user_id", "item_id", "ts", F.lit("purchase").alias("action"),
            F.lit(None).cast("string").alias("page"), F.lit(None).cast("double").alias("stay_s"),
        )
    )
    acts = acts.join(
        F.broadcast(items.select("item_id", "leaf_category", "top_category")), "item_id", "left"
    )
    leaf, top = contract.VOCAB[f"{v}.leaf_category"], contract.VOCAB[f"{v}.top_category"]
    x = _ids(
        vocab_col(F.col("action"), contract.BROWSE_TYPES, contract.VOCAB[f"{v}.type"]),
        F.when(F.col("leaf_category").isNull(), 0).otherwise(
            F.least(F.col("leaf_category") + 1, F.lit(leaf - 1))),
        F.when(F.col("top_category").isNull(), 0).otherwise(
            F.least(F.col("top_category") + 1, F.lit(top - 1))),
        vocab_col(F.col("page"), schemas.BROWSE_PAGES, contract.VOCAB[f"{v}.page"]),
        bucket_col(F.col("stay_s") * 1000.0, contract.STAY_STEPS),
        F.hour(F.col("ts")) + 1,
    )
    return acts.select(
        "user_id", F.lit(v).alias("view"), _millis(F.col("ts")).alias("ts"),
        F.xxhash64("item_id", "action", "stay_s").alias("key"), x.alias("x"),
        F.col("action"),
    )


def profile_ids(users: DataFrame) -> DataFrame:
    """(user_id, profile): the profile's ids (value + 1, capped to the vocabulary; 0 if null)."""
    cols = []
    for name in contract.PROFILE_FEATURES:
        size = contract.VOCAB[f"profile.{name}"]
        c = F.col(name)
        cols.append(F.when(c.isNull(), 0).otherwise(F.least(F.greatest(c + 1, F.lit(1)),
                                                            F.lit(size - 1))))
    return users.select("user_id", _ids(*cols).alias("profile"))
