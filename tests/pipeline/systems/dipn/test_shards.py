"""DIPN shards on a hand-made world (day 0 = Monday 2024-01-01; six days, so day 5 is left out
for want of a full label day, day 4 tests, day 3 validates and, with one train day, day 2 trains).

User 1, day 2 (Jan 3), one app session then a browse, then a purchase:
    10:00:00.000 open_page   page P0                          (first event: gap id 0)
    10:00:00.250 swipe       (0, 0) -> (207, 368), 120 ms     gap 250 ms -> bucket 2, id 3
    10:00:01.500 tap         (414, 736) on button B0, 30 ms   gap 1250 ms -> 1 + 9 = 10, id 11
    10:00:03.000 leave_page
    10:00:05     browse "cart" of item 7 (leaf 3, top 1) on page "item", stay 12 s
    10:30:00     purchase of item 7
User 1, day 3: a tap on the page at 09:00 (100, 100); day 4: a purchase at 08:00 (23 h after it).
User 2: a tap on day 1 (before the train day) and a browse on day 5 (the left-out day): no row.

Cuts (every action, up to 20 a day; purchases are not cuts): day 2 has five, each followed by
the 10:30 purchase within the hour; day 3 has one, bought 23 h later (long-term only).
"""

from __future__ import annotations

import datetime as dt

import pytest

from contracts import dipn as contract
from pipeline import schemas
from pipeline.schemas import RAW, with_partitions
from pipeline.systems.dipn import shards as dipn_shards
from pipeline.systems.dipn.shards import DipnShardConfig, build_dipn_shards, day_splits

P0, B0 = schemas.TOUCH_PAGES[0], schemas.TOUCH_BUTTONS[0]
CFG = DipnShardConfig(train_days=1, days=6)


def ts(day, h, m=0, s=0, ms=0):
    return dt.datetime(2024, 1, 1 + day, h, m, s, ms * 1000, tzinfo=dt.UTC)


def monday(t):
    d = t.date()
    return d - dt.timedelta(days=d.weekday())


# user_id, item_id, ts, session_id, event, page, x, y, x_end, y_end, duration_ms, button
TOUCHES = [
    (1, 7, ts(2, 10), 10, "open_page", P0, None, None, None, None, None, None),
    (1, 7, ts(2, 10, 0, 0, 250), 10, "swipe", P0, 0.0, 0.0, 207.0, 368.0, 120.0, None),
    (1, 7, ts(2, 10, 0, 1, 500), 10, "tap", P0, 414.0, 736.0, None, None, 30.0, B0),
    (1, 7, ts(2, 10, 0, 3), 10, "leave_page", P0, None, None, None, None, None, None),
    (1, 7, ts(3, 9), 11, "tap", P0, 100.0, 100.0, None, None, 10.0, None),
    (2, 7, ts(1, 9), 12, "tap", P0, 10.0, 10.0, None, None, 10.0, None),
]
BROWSES = [(1, 7, ts(2, 10, 0, 5), "cart", "item", 12.0), (2, 7, ts(5, 9), "view", "home", 1.0)]
PURCHASES = [(1, 7, ts(2, 10, 30), 9.0), (1, 7, ts(4, 8), 9.0)]
ITEMS = [(7, 1, 3, 9.0, 0.5)]
USERS = [(1, 3, 2, 4, ts(0, 0)), (2, 1, 1, 1, ts(0, 0))]


def frames(spark):
    def df(name, rows, at):
        return spark.createDataFrame(
            [(*r, monday(r[at])) if at is not None else r for r in rows],
            with_partitions(name, RAW[name]),
        )

    return (df("touches", TOUCHES, 2), df("browses", BROWSES, 2),
            df("purchases", PURCHASES, 2), df("items", ITEMS, None), df("users", USERS, None))


def build(spark, cfg=CFG):
    rows, facts = build_dipn_shards(spark, *frames(spark), cfg)
    return {(r["user_id"], r["day"]): r.asDict(recursive=True) for r in rows.collect()}, facts


@pytest.fixture(scope="module")
def built(spark):
    return build(spark)


def events(row, view):
    width = len(getattr(contract, f"{view.upper()}_FEATURES"))
    x = row[f"{view}_x"]
    return [x[i:i + width] for i in range(0, len(x), width)]


def test_day_splits():
    assert day_splits(6, CFG) == {2: "train", 3: "val", 4: "test"}
    # days 0..19: 19 is left out, 18 tests, 17 validates, the 12 days 5..16 train
    assert day_splits(20, DipnShardConfig(train_days=12)) == {
        **{d: "train" for d in range(5, 17)}, 17: "val", 18: "test"}
    with pytest.raises(ValueError, match="--train-days 5 needs 8 days; the world has 6"):
        day_splits(6, DipnShardConfig(train_days=5))


def test_rows_cuts_and_labels(built):
    rows, facts = built
    assert sorted(rows) == [(1, 2), (1, 3)]
    day2, day3 = rows[(1, 2)], rows[(1, 3)]
    assert (day2["split"], day3["split"]) == ("train", "val")
    t0 = int(ts(2, 10).timestamp() * 1000)
    assert day2["cut_ts"] == [t0, t0 + 250, t0 + 1500, t0 + 3000, t0 + 5000]
    assert day2["label_1h"] == [1] * 5 and day2["label_1d"] == [1] * 5
    assert day3["label_1h"] == [0] and day3["label_1d"] == [1]
    # ends: how many of the view's stored events have a time <= tau
    assert day2["cut_swipe_end"] == [1, 2, 3, 4, 4]
    assert day2["cut_tap_end"] == [0, 0, 1, 1, 1]
    assert day2["cut_browse_end"] == [0, 0, 0, 0, 1]
    assert day3["cut_swipe_end"] == [5] and day3["cut_tap_end"] == [2]
    assert day3["cut_browse_end"] == [2]  # the day-2 browse and purchase
    assert facts["days"] == 6 and facts["splits"]["test"] == [4]


def test_discretisation(built):
    rows, _ = built
    swipe = events(rows[(1, 2)], "swipe")
    #        page act gap tapx tapy sx sy ex ey  lx  ly  r  d  dur
    assert swipe[0] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    # (207, 368) is cell (8, 12) -> ids 9, 13; dx 207 on 34 cells of [-414, 414]: 25 -> 26;
    # dy 368 on 50 cells of [-736, 736]: 37 -> 38; 120 ms // 25 = 4 -> 5
    assert swipe[1] == [1, 3, 3, 0, 0, 1, 1, 9, 13, 26, 38, 2, 2, 5]
    # the screen's far corner is the last cell (17, 25); 30 ms // 25 = 1 -> 2
    assert swipe[2] == [1, 4, 11, 17, 25, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert events(rows[(1, 2)], "tap") == [[2, 1, 1]]
    # cart = type 4, leaf 3 -> 4, top 1 -> 2, page "item" = 3, 12 s: 12000 // 10000 + 9 = 10
    # -> 11, hour 10 -> 11
    assert events(rows[(1, 2)], "browse") == [[4, 4, 2, 3, 11, 11]]
    assert events(rows[(1, 3)], "browse")[1] == [6, 4, 2, 0, 0, 11]  # the purchase
    assert events(rows[(1, 3)], "tap") == [[2, 1, 1], [1, 1, 0]]
    assert rows[(1, 2)]["profile"] == [4, 3, 5]


def test_history_as_of_tau(built):
    rows, _ = built
    width = len(contract.HISTORY_FEATURES)
    names = contract.HISTORY_FEATURES
    day2 = rows[(1, 2)]["history"]
    at_touch = dict(zip(names, day2[:width], strict=True))
    at_browse = dict(zip(names, day2[4 * width:], strict=True))
    assert set(at_touch.values()) == {1}  # nothing yet (count 0 -> id 1)
    assert at_browse["cart_7d"] == 2 and at_browse["purchase_7d"] == 1  # the cart at tau
    day3 = dict(zip(names, rows[(1, 3)]["history"], strict=True))
    assert day3["cart_28d"] == 2 and day3["purchase_7d"] == 2 and day3["favorite_7d"] == 1


def test_no_event_after_tau(built):
    rows, _ = built
    for row in rows.values():
        for k, tau in enumerate(row["cut_ts"]):
            for v in ("swipe", "tap", "browse"):
                end = row[f"cut_{v}_end"][k]
                assert all(t <= tau for t in row[f"{v}_ts"][:end])
                assert all(t > tau for t in row[f"{v}_ts"][end:])


def test_short_max_len_keeps_only_what_the_cuts_need(spark, monkeypatch):
    monkeypatch.setattr(dipn_shards, "MAX_LEN", 2)
    rows, _ = build(spark)
    day3 = rows[(1, 3)]
    # the day-3 cut ends at swipe event 5: events 4 and 5 are stored, the cut's end is 2
    t0 = int(ts(2, 10).timestamp() * 1000)
    assert day3["swipe_ts"] == [t0 + 3000, int(ts(3, 9).timestamp() * 1000)]
    assert day3["cut_swipe_end"] == [2]
    # day 2's first cut ends at 1 and its last at 4: events 1..4 (from max(0, 1 - 2) = 0)
    assert len(rows[(1, 2)]["swipe_ts"]) == 4


def test_rows_have_the_contract_schema(spark):
    from pipeline.schemas import check_schema
    from pipeline.systems.dipn.shards import DIPN_SHARD

    rows, _ = build_dipn_shards(spark, *frames(spark), CFG)
    check_schema(rows.schema, DIPN_SHARD, "shards/dipn")


def test_build_shards_job_commits_rows_and_manifest_once(spark, lake, monkeypatch, capsys):
    """``jobs.build_shards --task dipn`` over the hand-made raw tables: the rows as built above,
    a manifest whose counts are theirs, and a re-run with the run id commits nothing new."""
    import json

    from deltalake import DeltaTable

    from jobs import build_shards

    monkeypatch.setattr("pipeline.session.get_spark", lambda *a, **k: spark)
    names = ("touches", "browses", "purchases", "items", "users")
    for name, df in zip(names, frames(spark), strict=True):
        lake.write(df, "raw", name, partition_by=schemas.RAW_PARTITIONS.get(name), app_id="hand")
    argv = ["--lake", lake.root, "--task", "dipn", "--run-id", "r1", "--train-days", "1",
            "--days", "6"]
    assert build_shards.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"]["train"]["cuts"] == 5 and summary["counts"]["val"]["label_1d"] == 1
    assert summary["counts"]["train"]["label_1h"] == 5 and "test" not in summary["counts"]
    assert summary["raw_versions"] == dict.fromkeys(names, 0)
    shards = DeltaTable(lake.path("shards", "dipn")).to_pyarrow_table()
    keys = zip(shards["user_id"].to_pylist(), shards["day"].to_pylist(), strict=True)
    assert sorted(keys) == [(1, 2), (1, 3)]
    version = lake.version("shards", "dipn")
    assert build_shards.main(argv) == 0
    assert lake.version("shards", "dipn") == version
