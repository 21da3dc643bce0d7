"""E8: does a touch session, or a browse, tell that a purchase follows? One test per view.

DIPN (its Sec. 1) saw buyers dwell on an item's comments before they order. From the raw
tables alone:

* **touch view** (``touch_sessions``): a session's *intent score* is the share of its button
  taps that hit a purchase button (``PURCHASE_BUTTONS``) plus the share of its page time spent
  on the detail and comments pages (``DWELL_PAGES``; a page's time runs from ``open_page`` to
  ``leave_page``, pages opened and left a different number of times are left out). The
  session *converts within 1 hour* (1 day) when its user buys its item (the item of its last
  event) within 1 hour (1 day) after its last event.
* **browse view** (``browse_conversions``): a browse's stay, and whether its user buys its item
  within 1 hour (1 day) after it.

``intent_tests``: Mann-Whitney rank-sum of the score (the stay), converting against the
others, with the AUC of the score as the estimate (0.5: the view tells nothing). Only E8 makes
a session or a browse look different before a purchase: the other planted mechanisms act on
share records, so with E8 off, or with a view left out of the world's ``e8_views``, that view's
test holds its level. Only per-value histograms reach the driver: ``intent_histogram`` is
what ``jobs.observe`` commits as ``stats/intent_histogram`` (the report draws the distributions
from it) and ``histogram_tests`` the rows it adds to ``stats/tests``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipeline.stats import significance as sig

#: Buttons that put the item on its way to an order.
PURCHASE_BUTTONS = ("buy_now", "add_to_cart", "sku", "sku_color", "sku_size", "checkout")
#: Pages where a buyer reads about the item.
DWELL_PAGES = ("Page_Detail", "Page_Comments")
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


def _ms(ts: str) -> Column:
    return F.unix_millis(F.col(ts))


def _next_purchase(events: DataFrame, purchases: DataFrame, keys: list[str]) -> DataFrame:
    """``events`` (``keys`` with ``user_id``, ``item_id``, ``end_ms``) plus ``delay_ms``: the
    time from ``end_ms`` to the user's first purchase of the item within a day after (null:
    none), and ``converted_1h`` / ``converted_1d``."""
    bought = purchases.select("user_id", "item_id", _ms("ts").alias("_bought_ms"))
    delays = (
        events.select(*keys, "user_id", "item_id", "end_ms")
        .join(bought, ["user_id", "item_id"])
        .where(
            (F.col("_bought_ms") > F.col("end_ms"))
            & (F.col("_bought_ms") <= F.col("end_ms") + DAY_MS)
        )
        .groupBy(*keys)
        .agg(F.min(F.col("_bought_ms") - F.col("end_ms")).alias("delay_ms"))
    )
    delay = F.col("delay_ms")
    return (
        events.join(delays, keys, "left")
        .withColumn("converted_1h", F.coalesce(delay <= HOUR_MS, F.lit(False)))
        .withColumn("converted_1d", delay.isNotNull())
    )


def touch_sessions(touches: DataFrame, purchases: DataFrame) -> DataFrame:
    """One row per touch session: ``session_id``, ``user_id``, ``item_id`` (of its last event),
    ``start_ms``, ``end_ms``, ``events``, ``button_taps``, ``purchase_taps``, ``dwell_ms``,
    ``dwell_pages_ms``, ``score`` (see the module docstring), ``delay_ms``, ``converted_1h``,
    ``converted_1d``."""
    t = _ms("ts")
    per_page = (
        touches.where(F.col("event").isin("open_page", "leave_page"))
        .groupBy("session_id", "page")
        .agg(
            F.sum(F.when(F.col("event") == "open_page", 1).otherwise(0)).alias("opens"),
            F.sum(F.when(F.col("event") == "leave_page", 1).otherwise(0)).alias("leaves"),
            F.sum(F.when(F.col("event") == "open_page", t).otherwise(0)).alias("opened_ms"),
            F.sum(F.when(F.col("event") == "leave_page", t).otherwise(0)).alias("left_ms"),
        )
        # every opening matched by a leaving: the page's time is sum(left) - sum(opened)
        .where(F.col("opens") == F.col("leaves"))
        .withColumn("page_ms", F.col("left_ms") - F.col("opened_ms"))
        .groupBy("session_id")
        .agg(
            F.sum("page_ms").alias("dwell_ms"),
            F.sum(F.when(F.col("page").isin(*DWELL_PAGES), F.col("page_ms")).otherwise(0)).alias(
                "dwell_pages_ms"
            ),
        )
    )
    sessions = (
        touches.groupBy("session_id")
        .agg(
            F.max_by("user_id", "ts").alias("user_id"),
            F.max_by("item_id", "ts").alias("item_id"),
            F.min(t).alias("start_ms"),
            F.max(t).alias("end_ms"),
            F.count(F.lit(1)).alias("events"),
            F.count("button").alias("button_taps"),
            F.sum(F.col("button").isin(*PURCHASE_BUTTONS).cast("int")).alias("purchase_taps"),
        )
        .join(per_page, "session_id", "left")
        .withColumn(
            "score",
            F.coalesce(F.col("purchase_taps") / F.col("button_taps"), F.lit(0.0))
            + F.coalesce(F.col("dwell_pages_ms") / F.col("dwell_ms"), F.lit(0.0)),
        )
    )
    return _next_purchase(sessions, purchases, ["session_id"])


def browse_conversions(browses: DataFrame, purchases: DataFrame) -> DataFrame:
    """The browses with ``end_ms`` (their time), ``delay_ms``, ``converted_1h`` and
    ``converted_1d`` (their user buys their item within 1 hour / 1 day after)."""
    keys = ["user_id", "item_id", "ts", "action", "page", "stay_s"]
    events = browses.select(*keys).distinct().withColumn("end_ms", _ms("ts"))
    return _next_purchase(events, purchases, [k for k in keys if k not in ("user_id", "item_id")])


def auc(hist: list[dict]) -> float | None:
    """P(a converting row's value > a non-converting row's) + half the ties, from rows
    ``group`` (True: converting), ``value``, ``count``; None without both groups."""
    counts: dict[float, list[int]] = {}
    for r in hist:
        counts.setdefault(r["value"], [0, 0])[0 if r["group"] else 1] += r["count"]
    pos = sum(c[0] for c in counts.values())
    neg = sum(c[1] for c in counts.values())
    if not pos or not neg:
        return None
    wins, below = 0.0, 0
    for value in sorted(counts):
        p, n = counts[value]
        wins += p * (below + n / 2)
        below += n
    return wins / (pos * neg)


#: Per view: the column ranked and the decimals its histogram keeps (score: 4, stay: 0.1 s).
VIEWS = {"touch": ("score", 4), "browse": ("stay_s", 1)}
#: The purchase windows, as ``converted_<window>`` columns name them, with their words.
WINDOWS = {"1h": "1 hour", "1d": "1 day"}
HISTOGRAM_COLUMNS = ("view", "window", "converted", "value", "rows")


def intent_histogram(sessions: DataFrame | None, browses: DataFrame) -> DataFrame:
    """``HISTOGRAM_COLUMNS``: per view and window, how many rows (sessions, browses) that did
    (not) convert hold each value (the score, the stay) rounded as ``VIEWS`` says. Everything
    the tests and the report's distributions need; ``sessions`` None leaves the touch view
    out (a lake without ``raw/touches``)."""
    parts = []
    for view, frame in (("touch", sessions), ("browse", browses)):
        if frame is None:
            continue
        column, digits = VIEWS[view]
        per_window = F.explode(F.array(*[
            F.struct(F.lit(w).alias("window"), F.col(f"converted_{w}").alias("converted"))
            for w in WINDOWS
        ])).alias("_w")
        parts.append(
            frame.where(F.col(column).isNotNull())
            .select(F.round(F.col(column).cast("double"), digits).alias("value"), per_window)
            .groupBy(F.col("_w.window").alias("window"), F.col("_w.converted").alias("converted"),
                     "value")
            .agg(F.count(F.lit(1)).alias("rows"))
            .select(F.lit(view).alias("view"), "window", "converted", "value", "rows")
        )
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def histogram_tests(hist: list[dict]) -> list[sig.TestResult]:
    """The four E8 tests (touch, browse x 1 hour, 1 day) from ``intent_histogram``'s rows; a
    view or window without rows gives a row with n 0 and no statistic."""
    out = []
    for view, (column, _) in VIEWS.items():
        for window, label in WINDOWS.items():
            rows = [{"stratum": "0", "group": bool(r["converted"]), "value": r["value"],
                     "count": int(r["rows"])}
                    for r in hist if r["view"] == view and r["window"] == window]
            r = sig.stratified_rank_sum(rows)
            if view == "touch":
                text = ("Mann-Whitney of the session intent score (purchase-button tap share + "
                        "detail/comments time share), sessions whose item is bought within "
                        f"{label} after vs not")
            else:
                text = (f"Mann-Whitney of a browse's stay, browses whose item is bought within "
                        f"{label} after vs not")
            out.append(sig.TestResult(
                f"{view}_intent", "E8", text, auc(rows), "AUC", r["z"], r["p"], r["n"],
                f"{r['n_true']} converting, {r['n_false']} not; mean {column} difference "
                f"{sig.number(r['mean_diff'])}",
            ))
    return out


def intent_tests(sessions: DataFrame | None, browses: DataFrame) -> list[sig.TestResult]:
    """The E8 tests (see the module docstring): ``sessions`` from ``touch_sessions`` (None:
    no touch view), ``browses`` from ``browse_conversions``."""
    rows = intent_histogram(sessions, browses).toPandas().to_dict("records")
    return histogram_tests(rows)
