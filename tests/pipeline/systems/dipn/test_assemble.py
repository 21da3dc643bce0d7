"""The per-user assembler on hand-made events (no Spark): the cut choice, labels, history and
the stored slices, each worked out in a comment."""

from __future__ import annotations

import numpy as np
import pandas as pd

from contracts import dipn as contract
from pipeline.systems.dipn.assemble import COLUMNS, choose_cuts, history, labels, user_rows

H, D = 3_600_000, 86_400_000


def test_one_cut_per_time_the_smallest_hash_and_the_day_cap():
    # times 10, 10, 20, 30 on day 0 and 40 on day 1 (not a split day)
    cand = pd.DataFrame({"ts": [10, 10, 20, 30, 40], "h": [5, 3, 9, 1, 0],
                         "key": [0, 1, 0, 0, 0]})
    day = np.array([0, 0, 0, 0, 1])
    # time 10 keeps its h = 3 candidate; day 0 ranks (h 1, t 30), (h 3, t 10), (h 9, t 20):
    # two a day keeps 30 and 10, returned in time order; day 1 is not in the splits
    ts, days = choose_cuts(cand, day, {0: "train"}, cuts_per_day=2)
    assert ts.tolist() == [10, 30] and days.tolist() == [0, 0]
    ts, _ = choose_cuts(cand, day, {0: "train", 1: "test"}, cuts_per_day=1)
    assert ts.tolist() == [30, 40]


def test_labels_read_the_next_purchase_after_tau_within_an_hour_and_a_day():
    buys = np.array([100, 100 + H + 50])
    # tau 100: the purchase at 100 is history; the next is H + 50 later: 1 d only.
    # tau 50: 50 ms to the first; tau 150: exactly an hour (inclusive); tau at the last: none
    tau = np.array([100, 50, 150, 100 + H + 50])
    h1, d1 = labels(buys, tau)
    assert h1.tolist() == [0, 1, 1, 0] and d1.tolist() == [1, 1, 1, 0]
    h1, d1 = labels(np.zeros(0, dtype=np.int64), np.array([7]))
    assert h1.tolist() == [0] and d1.tolist() == [0]


def test_history_counts_each_action_in_closed_windows_up_to_tau():
    tau = np.array([30 * D])
    # carts 8 d before tau (in 14 d and 28 d), 7 d before (inside, the windows are closed)
    # and 1 ms after tau (not yet); 25 favourites a day ago: capped at 19, stored as 20
    carts = np.array([22 * D, 23 * D, 30 * D + 1])
    favs = np.full(25, 29 * D)
    got = dict(zip(contract.HISTORY_FEATURES,
                   history({"cart": carts, "favorite": favs}, tau)[0].tolist(), strict=True))
    assert (got["cart_7d"], got["cart_14d"], got["cart_28d"]) == (2, 3, 3)
    assert got["favorite_7d"] == contract.HISTORY_CAP + 1
    assert got["purchase_28d"] == 1  # none: count 0 -> id 1


def _events(rows):
    df = pd.DataFrame(rows, columns=["view", "ts", "key", "x", "action", "h"])
    df["x"] = [np.array(x, dtype=np.int16) for x in df["x"]]
    return df.assign(user_id=7)


def test_user_rows_slice_each_view_from_max_len_before_the_first_cut():
    # day 1 (origin 0): swipes at D+1..D+4, a tap at D+2, a browse at D+3 and its purchase at
    # D+5. Hashes make the cuts the swipes at D+2 and D+4 (h 0 and 1; the others h 9).
    ev = _events([
        ("swipe", D + 1, 1, [1, 1], None, 9), ("swipe", D + 2, 2, [2, 2], None, 0),
        ("swipe", D + 3, 3, [3, 3], None, 9), ("swipe", D + 4, 4, [4, 4], None, 1),
        ("tap", D + 2, 5, [5], None, 9), ("browse", D + 3, 6, [6], "cart", 9),
        ("browse", D + 5, 7, [7], "purchase", 9),
    ])
    out = user_rows(ev, splits={1: "train"}, origin_ms=0, cuts_per_day=2, max_len=1)
    assert list(out.columns) == list(COLUMNS) and len(out) == 1
    row = out.iloc[0]
    assert row["cut_ts"].tolist() == [D + 2, D + 4]
    # swipe ends 2 and 4; max_len 1 stores swipes 2..4 (from end 2 - 1 = 1), ends 1 and 3
    assert row["swipe_ts"].tolist() == [D + 2, D + 3, D + 4]
    assert row["swipe_x"].tolist() == [2, 2, 3, 3, 4, 4]
    assert row["cut_swipe_end"].tolist() == [1, 3]
    # the tap (end 1 at both cuts) is stored once; the browse only at the second cut
    assert row["tap_x"].tolist() == [5] and row["cut_tap_end"].tolist() == [1, 1]
    assert row["browse_ts"].tolist() == [D + 3] and row["cut_browse_end"].tolist() == [0, 1]
    assert row["label_1h"].tolist() == [1, 1]
    width = len(contract.HISTORY_FEATURES)
    cart_7d = contract.HISTORY_FEATURES.index("cart_7d")
    assert [row["history"][k * width + cart_7d] for k in (0, 1)] == [1, 2]


def test_a_user_without_cuts_gives_no_row():
    ev = _events([("tap", D + 1, 1, [1], None, 0)])  # a tap alone is no cut candidate
    assert user_rows(ev, splits={1: "train"}, origin_ms=0, cuts_per_day=5, max_len=4).empty
