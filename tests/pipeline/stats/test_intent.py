"""E8's statistics: the session intent score and conversion on a hand-made log, the tests'
numbers worked out by hand; on generated worlds, as ``jobs.observe`` computes them from the
lake's raw tables: found on the shared small world, and (slow) where a view carries intent and
nowhere else."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from pipeline.lake import Lake
from pipeline.schemas import RAW
from pipeline.stats import intent
from pipeline.stats.observe import ObserveConfig, Observer
from pipeline.world import WorldConfig, generate_to_lake
from pipeline.world.config import parse_effects


def at(hour: int, minute: int = 0, second: int = 0, day: int = 1) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, minute, second, tzinfo=dt.UTC)


def touch(user, item, ts, session, event, page, button=None):
    return (user, item, ts, session, event, page, None, None, None, None, None, button)


# Session 1 (user 1, item 10): Home 4 s, Detail 4 s -> time share 0.5; taps on buy_now and back
#   -> purchase-button share 1/2; score 1.0. Ends 10:00:08; bought 11:00:08, exactly 1 h later.
# Session 2 (user 2, item 11): Home 6 s, Comments 2 s -> 0.25; taps back, share and one on the
#   page -> 0/2; score 0.25. Ends 11:00:08; bought 16:00:08 (5 h: within a day only).
# Session 3 (user 3, item 12): Search 3 s, no taps; score 0. Bought before it, and another item
#   after it: no conversion.
# Session 4 (user 4, item 12): Home 3 s, Detail 1 s, Cart opened and never left (its time is
#   unknown: left out) -> 1/4; a tap on back -> 0; score 0.25. Bought 2 days later: none.
TOUCHES = [
    touch(1, 10, at(10), 1, "open_page", "Page_Home"),
    touch(1, 10, at(10, 0, 4), 1, "leave_page", "Page_Home"),
    touch(1, 10, at(10, 0, 4), 1, "open_page", "Page_Detail"),
    touch(1, 10, at(10, 0, 5), 1, "tap", "Page_Detail", "buy_now"),
    touch(1, 10, at(10, 0, 6), 1, "tap", "Page_Detail", "back"),
    touch(1, 10, at(10, 0, 8), 1, "leave_page", "Page_Detail"),
    touch(2, 11, at(11), 2, "open_page", "Page_Home"),
    touch(2, 11, at(11, 0, 1), 2, "tap", "Page_Home", "back"),
    touch(2, 11, at(11, 0, 2), 2, "tap", "Page_Home", "share"),
    touch(2, 11, at(11, 0, 3), 2, "tap", "Page_Home"),
    touch(2, 11, at(11, 0, 6), 2, "leave_page", "Page_Home"),
    touch(2, 11, at(11, 0, 6), 2, "open_page", "Page_Comments"),
    touch(2, 11, at(11, 0, 8), 2, "leave_page", "Page_Comments"),
    touch(3, 12, at(12), 3, "open_page", "Page_Search"),
    touch(3, 12, at(12, 0, 3), 3, "leave_page", "Page_Search"),
    touch(4, 12, at(13), 4, "open_page", "Page_Home"),
    touch(4, 12, at(13, 0, 3), 4, "leave_page", "Page_Home"),
    touch(4, 12, at(13, 0, 3), 4, "open_page", "Page_Detail"),
    touch(4, 12, at(13, 0, 4), 4, "leave_page", "Page_Detail"),
    touch(4, 12, at(13, 0, 4), 4, "open_page", "Page_Cart"),
    touch(4, 12, at(13, 0, 5), 4, "tap", "Page_Cart", "back"),
]
PURCHASES = [
    (1, 10, at(11, 0, 8), 5.0),
    (2, 11, at(16, 0, 8), 5.0),
    (3, 12, at(11), 5.0),
    (3, 13, at(12, 10), 5.0),
    (4, 12, at(13, 0, 5, day=3), 5.0),
]
# Browse 1 (stay 120 s) is followed by its purchase after 59 min 58 s, browse 2 (30 s) after
# 5 h 8 s, browse 3 (10 s) by none (the purchase of item 12 came before).
BROWSES = [
    (1, 10, at(10, 0, 10), "view", "item", 120.0),
    (2, 11, at(11), "view", "item", 30.0),
    (3, 12, at(12), "view", "item", 10.0),
]
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def tables(spark):
    def frame(name, rows):
        return spark.createDataFrame(rows, RAW[name])

    purchases = frame("purchases", PURCHASES)
    sessions = intent.touch_sessions(frame("touches", TOUCHES), purchases).cache()
    browses = intent.browse_conversions(frame("browses", BROWSES), purchases).cache()
    return sessions, browses


def test_session_score_and_conversion(spark, tables):
    sessions, _ = tables
    expected = spark.createDataFrame(
        [
            (1, 1, 10, 1.0, HOUR_MS, True, True),
            (2, 2, 11, 0.25, 5 * HOUR_MS, False, True),
            (3, 3, 12, 0.0, None, False, False),
            (4, 4, 12, 0.25, None, False, False),
        ],
        "session_id long, user_id long, item_id long, score double, delay_ms long, "
        "converted_1h boolean, converted_1d boolean",
    )
    assertDataFrameEqual(sessions.select(*expected.columns), expected)


def test_browse_conversion(spark, tables):
    _, browses = tables
    expected = spark.createDataFrame(
        [(120.0, 3598_000, True, True), (30.0, 5 * HOUR_MS + 8000, False, True),
         (10.0, None, False, False)],
        "stay_s double, delay_ms long, converted_1h boolean, converted_1d boolean",
    )
    assertDataFrameEqual(browses.select(*expected.columns), expected)


def _by_window(results) -> dict:
    return {(r.statistic, "1h" if "1 hour" in r.test else "1d"): r for r in results}


def test_rank_tests_by_hand(tables):
    results = _by_window(intent.intent_tests(*tables))
    # 1 h: converting {1.0} vs {0.25, 0, 0.25}. AUC 1. Midranks 0 -> 1, 0.25 -> 2.5, 1.0 -> 4;
    # W = 4, E = 1 * 5 / 2 = 2.5, Var = 1 * 3 / 12 * (5 - (2^3 - 2) / (4 * 3)) = 1.125,
    # z = 1.5 / 1.0607 = 1.4142, p = 0.1573.
    hour = results[("touch_intent", "1h")]
    assert (hour.estimate, hour.n) == (1.0, 4)
    assert hour.statistic_value == pytest.approx(1.4142, abs=1e-4)
    assert hour.p_value == pytest.approx(0.1573, abs=1e-4)
    # 1 day: {1.0, 0.25} vs {0, 0.25}. AUC (1 + 1 + 1 + 0.5) / 4 = 0.875; W = 4 + 2.5 = 6.5,
    # E = 2 * 5 / 2 = 5, Var = 2 * 2 / 12 * 4.5 = 1.5, z = 1.5 / 1.2247 = 1.2247, p = 0.2207.
    day = results[("touch_intent", "1d")]
    assert day.estimate == pytest.approx(0.875)
    assert day.statistic_value == pytest.approx(1.2247, abs=1e-4)
    assert day.p_value == pytest.approx(0.2207, abs=1e-4)
    # browses: 1 h {120} vs {30, 10} and 1 day {120, 30} vs {10}: AUC 1 both.
    assert results[("browse_intent", "1h")].estimate == 1.0
    assert results[("browse_intent", "1d")].estimate == 1.0
    assert {r.effect for r in results.values()} == {"E8"}


def test_auc_needs_both_groups():
    assert intent.auc([{"group": True, "value": 1.0, "count": 3}]) is None
    rows = [{"group": True, "value": 2.0, "count": 1}, {"group": False, "value": 2.0, "count": 1}]
    assert intent.auc(rows) == 0.5


# -- generated worlds ---------------------------------------------------------------------------


def _observed(spark, lake) -> dict:
    """E8's ``stats/tests`` rows as ``Observer.run`` computes them: the lake's raw tables ->
    ``stats/intent_histogram`` -> the tests, by (statistic, window)."""
    observer = Observer(spark, lake, ObserveConfig(), "e8")
    hist = observer.write_intent(lake.read(spark, "raw", "browses"),
                                 lake.read(spark, "raw", "purchases"))
    return _by_window(intent.histogram_tests(hist.toPandas().to_dict("records")))


def test_observe_finds_e8_on_the_shared_world(spark, world_lake):
    """Every session and browse of the world is counted once per window, and the browse view
    finds the intent within a day. At the default ``touch_session_rate`` (0.12) this world
    holds too few converting sessions for the touch test: the slow test below gives every
    browse a session."""
    lake, _, _ = world_lake
    got = _observed(spark, lake)
    touches = lake.read(spark, "raw", "touches").select("session_id").distinct().count()
    browses = lake.read(spark, "raw", "browses").select(
        "user_id", "item_id", "ts", "action", "page", "stay_s").distinct().count()
    assert {key: r.n for key, r in got.items()} == {
        ("touch_intent", "1h"): touches, ("touch_intent", "1d"): touches,
        ("browse_intent", "1h"): browses, ("browse_intent", "1d"): browses}
    assert touches > 50 and browses > 500
    day = got[("browse_intent", "1d")]
    assert day.p_value < 0.01 and day.estimate > 0.5, day
    stored = lake.to_arrow("stats", "intent_histogram").to_pylist()
    assert {r["view"] for r in stored} == {"touch", "browse"}


# Every browse gets a session and there are 5 browses per share record, so a small world holds
# ~12,000 sessions, ~250 of them followed by a purchase of their item within a day.
WORLD = {"share_records": 2400, "weeks": 5, "seed": 5, "touch_session_rate": 1.0,
         "browses_per_record": 5.0}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("effects", "views", "touch_found", "browse_found"),
    [
        ("all", "touch,browse", True, True),
        ("-E8", "touch,browse", False, False),  # only E8 off
        ("none", "touch,browse", False, False),
        ("E8", "browse", False, True),
        ("E8", "touch", True, False),
    ],
)
def test_found_where_a_view_carries_intent(spark, tmp_path, effects, views, touch_found,
                                           browse_found):
    cfg = WorldConfig(**WORLD, effects=parse_effects(effects), e8_views=views)
    lake = Lake(tmp_path / "lake")
    generate_to_lake(spark, lake, cfg, progress=lambda m: None)
    got = _observed(spark, lake)
    for statistic, found in (("touch_intent", touch_found), ("browse_intent", browse_found)):
        hour, day = got[(statistic, "1h")], got[(statistic, "1d")]
        if found:
            assert day.p_value < 1e-3 and day.estimate > 0.5, (statistic, day)
        else:
            assert day.p_value > 0.01 and hour.p_value > 0.01, (statistic, hour, day)
