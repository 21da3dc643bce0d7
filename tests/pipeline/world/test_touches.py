"""Touch sessions: their shape (visits, order, screen, density), determinism, and E8's intent
in each view, switched by ``e8_views``."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pyspark.sql import functions as F

from contracts.dipn import SCREEN_H, SCREEN_W
from pipeline import schemas
from pipeline.world import WorldConfig, touches
from pipeline.world.entities import browse_outcome
from pipeline.world.touches import PRODUCT_PAGES, PURCHASE_BUTTONS

CFG = WorldConfig(share_records=1000, weeks=2, touch_session_rate=1.0)
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # CFG.start
N = 240  # browses; the odd ones carry intent 2


def _browses(spark, intent_of_odd: int = 2):
    """Browse i at t = 1 h + i minutes, user i % 7, item i % 5; intent on odd ids."""
    bid = F.col("browse_id")
    return spark.range(N).withColumnRenamed("id", "browse_id").select(
        "browse_id",
        (bid % 7).alias("user_id"),
        (bid % 5).alias("item_id"),
        (bid * 60 + 3600).alias("t"),
        F.when(bid % 2 == 1, intent_of_odd).otherwise(0).alias("touch_intent"),
    )


@pytest.fixture(scope="module")
def frame(spark):
    return touches(_browses(spark), CFG)


@pytest.fixture(scope="module")
def sessions(frame):
    rows = frame.toPandas()
    rows["ts"] = pd.to_datetime(rows["ts"], utc=True)
    return rows.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True)


def test_schema_and_every_browse_has_a_session(frame, sessions):
    assert frame.columns == schemas.TOUCHES.names
    schemas.check_schema(frame.schema, schemas.TOUCHES, "touches")
    assert sorted(sessions["session_id"].unique()) == list(range(N))  # rate 1.0


def test_a_session_is_visits_of_open_events_leave_around_the_detail_page(sessions):
    for sid, rows in sessions.groupby("session_id"):
        events, pages = list(rows["event"]), list(rows["page"])
        assert rows["ts"].is_monotonic_increasing, sid
        # open, events on the open page, leave on that page, next open ...
        current = None
        for event, page in zip(events, pages, strict=True):
            if event == "open_page":
                assert current is None, sid
                current = page
            else:
                assert page == current, sid
                if event == "leave_page":
                    current = None
        assert current is None and events[0] == "open_page", sid
        # the item's page is left at the browse time (t = 1 h + sid minutes)
        t = START + dt.timedelta(hours=1, minutes=int(sid))
        leaves = rows[rows["event"] == "leave_page"]
        assert list(leaves.loc[leaves["ts"] == t, "page"]) == ["Page_Detail"], sid
        start, end = rows["ts"].iloc[0], rows["ts"].iloc[-1]
        assert start < t <= end, sid
        assert dt.timedelta(seconds=2) < end - start < dt.timedelta(minutes=10)


def test_the_detail_visit_falls_anywhere_in_the_session(sessions):
    # k_detail is uniform over the visits: some sessions go on after the browse, some end on it
    after = [
        (rows["ts"] > START + dt.timedelta(hours=1, minutes=int(sid))).any()
        for sid, rows in sessions.groupby("session_id")
    ]
    assert 0.3 < sum(after) / len(after) < 0.95


def test_fields_per_event_on_the_screen_and_known_names(sessions):
    swipe = sessions[sessions["event"] == "swipe"]
    tap = sessions[sessions["event"] == "tap"]
    visit = sessions[sessions["event"].isin(["open_page", "leave_page"])]
    assert set(sessions["page"]) <= set(schemas.TOUCH_PAGES)
    assert set(tap["button"].dropna()) <= set(schemas.TOUCH_BUTTONS)
    assert swipe[["x", "y", "x_end", "y_end", "duration_ms"]].notna().all().all()
    assert tap[["x", "y", "duration_ms"]].notna().all().all()
    assert tap[["x_end", "y_end"]].isna().all().all() and swipe["button"].isna().all()
    assert visit[["x", "y", "x_end", "y_end", "duration_ms", "button"]].isna().all().all()
    for col, high in (("x", SCREEN_W), ("x_end", SCREEN_W), ("y", SCREEN_H), ("y_end", SCREEN_H)):
        values = sessions[col].dropna()
        assert values.between(0, high).all(), col
    assert (sessions["duration_ms"].dropna() > 0).all()
    # about 60 % of taps hit a button; milliseconds are kept
    assert 0.5 < tap["button"].notna().mean() < 0.7
    assert (sessions["ts"].dt.microsecond % 1000 == 0).all()
    assert (sessions["ts"].dt.microsecond > 0).mean() > 0.9


def test_density_follows_the_config(sessions):
    plain = sessions[sessions["session_id"] % 2 == 0]  # no intent
    per = plain.groupby("session_id")["event"].value_counts().unstack(fill_value=0)
    # log-normal counts around the means 37.7 and 9.3 (sd 0.5 in log): 120 sessions' mean is
    # within a few percent; 20 % is over three standard errors
    assert per["swipe"].mean() == pytest.approx(CFG.swipes_per_session, rel=0.2)
    assert per["tap"].mean() == pytest.approx(CFG.taps_per_session, rel=0.2)
    gaps = plain.groupby("session_id")["ts"].diff().dropna().dt.total_seconds()
    assert 0.3 < gaps.median() < 2.0  # hundreds of ms to seconds


def test_same_seed_same_sessions(spark, sessions):
    # drawn again in another job, over other partitions: the same rows
    again = touches(_browses(spark).where(F.col("browse_id") < 3), CFG).toPandas()
    again["ts"] = pd.to_datetime(again["ts"], utc=True)
    again = again.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(again, sessions[sessions["session_id"] < 3])


def _per_session(rows: pd.DataFrame) -> pd.DataFrame:
    taps = rows[rows["event"] == "tap"]
    swipes = rows[rows["event"] == "swipe"]
    return pd.DataFrame({
        "events": rows.groupby("session_id").size(),
        "purchase_taps": taps.groupby("session_id")["button"].agg(
            lambda b: b.isin(PURCHASE_BUTTONS).mean()
        ),
        "product_rows": rows.groupby("session_id")["page"].agg(
            lambda p: p.isin(PRODUCT_PAGES).mean()
        ),
        "swipe_ms": swipes.groupby("session_id")["duration_ms"].median(),
        "swipe_length": swipes.assign(
            length=((swipes["x_end"] - swipes["x"]) ** 2 + (swipes["y_end"] - swipes["y"]) ** 2)
            ** 0.5
        ).groupby("session_id")["length"].median(),
    })


def test_intent_sessions_are_longer_read_more_and_tap_purchase_buttons(sessions):
    per = _per_session(sessions)
    intent = per[per.index % 2 == 1].mean()
    plain = per[per.index % 2 == 0].mean()
    # e8_touch 0.6 x intent 2 = 1.2 session sd on each style: counts x exp(0.4 * 1.2) = 1.6,
    # swipe duration x exp(0.25 * 1.2) = 1.35, swipe length / 1.35, more product pages and
    # purchase buttons (probabilities up about 0.2 at style 0)
    assert intent["events"] > 1.3 * plain["events"]
    assert intent["swipe_ms"] > 1.15 * plain["swipe_ms"]
    assert intent["swipe_length"] < 0.9 * plain["swipe_length"]
    assert intent["product_rows"] > plain["product_rows"] + 0.05
    assert intent["purchase_taps"] > plain["purchase_taps"] + 0.03


def test_browse_outcome_carries_intent_only_in_the_views_switched_on(spark):
    # 400 browses at t = 0 with appeal 50: p_buy = sigmoid(-4 + 50) ~ 1, after an Exp(8 h)
    # delay: P(<= 1 h) = 0.12, P(1 h - 1 day] = 0.83, else 0.05, so all three classes occur.
    base = spark.range(400).select(
        F.col("id").alias("browse_id"), F.lit(0).cast("long").alias("t"),
        F.lit(50.0).alias("appeal"),
    )
    configs = {
        "both": WorldConfig(),
        "browse": WorldConfig(e8_views="browse"),
        "touch": WorldConfig(e8_views="touch"),
        "off": WorldConfig(effects=frozenset()),
    }
    frames = [browse_outcome(base, cfg).withColumn("cfg", F.lit(k)) for k, cfg in configs.items()]
    rows = frames[0].unionByName(frames[1]).unionByName(frames[2]).unionByName(frames[3])
    rows = rows.toPandas().sort_values(["cfg", "browse_id"])
    kinds = {k: g.reset_index(drop=True) for k, g in rows.groupby("cfg")}
    for part in kinds.values():
        delay = part["buy_t"] - part["t"]
        want = (delay <= 3600) * 2 + ((delay > 3600) & (delay <= 86400)) * 1
        assert (part["intent"] == want).all()
    both = kinds["both"]
    assert set(both["intent"]) == {0, 1, 2}
    assert (both["browse_intent"] == both["intent"]).all()
    assert (both["touch_intent"] == both["intent"]).all()
    assert (kinds["browse"]["touch_intent"] == 0).all()
    assert (kinds["browse"]["browse_intent"] == both["intent"]).all()
    assert (kinds["touch"]["browse_intent"] == 0).all()
    off = kinds["off"]
    assert (off["touch_intent"] == 0).all() and (off["browse_intent"] == 0).all()
    # no view carries it: stays are the same draws whatever follows
    assert (kinds["touch"]["stay_s"] == off["stay_s"]).all()
    assert (both["stay_s"] >= off["stay_s"]).all()


def test_views_setting_is_checked():
    assert WorldConfig(e8_views=" Browse, touch ").e8_views == "touch,browse"
    assert WorldConfig(e8_views="").intent_in("touch") is False
    with pytest.raises(ValueError, match="unknown e8_views"):
        WorldConfig(e8_views="swipe")
