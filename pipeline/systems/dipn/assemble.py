"""One user's DIPN rows from that user's events: the cut choice, labels, history, and each
view's stored events, in one sorted scan.

``jobs.build_shards --task dipn`` runs ``user_rows`` as a grouped map over users
(``groupBy("user_id").applyInPandas``): a sample needs the user's events on both sides of its
cut (history before, labels after, the sequences' ends at it), which SQL spells as four window
sorts over the whole event stream and four joins; grouped by user it is one shuffle, then
binary searches in the user's sorted times. A user's events over the world fit a worker easily
(thousands, not millions).

Input, one row per event (``features``' columns plus two): ``view``, ``ts`` (epoch ms),
``key`` (a stable tie-break), ``x`` (the event's feature ids), ``action`` (browse view only)
and ``h``, the seeded hash that ranks cut candidates. The rules (``shards``' docstring):

* **Cuts**: the user's swipe-view events (every touch) and browses other than purchases, one
  per time (of several actions at one time, the one of smallest ``(h, key)``), on the split
  days; each day keeps the ``cuts_per_day`` of smallest ``(h, ts, key)``.
* **Labels**: the first purchase strictly after tau, within 1 h (``label_1h``) and 1 d.
* **History**: favourites, carts and purchases with a time in ``[tau - window, tau]``.
* **Ends**: ``end_v`` = the view's events with a time ``<= tau``; a day's row stores the view's
  events ``(max(0, min end - max_len), max end]`` and the cuts' ends relative to that start.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from contracts import dipn as contract
from pipeline.systems.dipn.features import VIEWS

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
#: The output's columns in order (``contracts.dipn.SHARD`` less ``profile``, joined later).
COLUMNS = (
    "user_id", "day", "split",
    *[f"{v}_{k}" for v in VIEWS for k in ("ts", "x")],
    "cut_ts", *[f"cut_{v}_end" for v in VIEWS], "label_1h", "label_1d", "history",
)
_EMPTY_IDS = np.zeros(0, dtype=np.int16)


def choose_cuts(cand: pd.DataFrame, day: np.ndarray, splits: dict[int, str],
                cuts_per_day: int) -> tuple[np.ndarray, np.ndarray]:
    """(ts, day) of the kept cuts in time order, from the candidates' ``ts``, ``h``, ``key``
    (``day`` aligned with them)."""
    on = np.isin(day, np.fromiter(splits, dtype=np.int64))
    ts, h, key, day = (cand["ts"].to_numpy()[on], cand["h"].to_numpy()[on],
                       cand["key"].to_numpy()[on], day[on])
    order = np.lexsort((key, h, ts))  # by time, then the candidate of smallest (h, key)
    ts, h, key, day = ts[order], h[order], key[order], day[order]
    first = np.ones(len(ts), dtype=bool)
    first[1:] = ts[1:] != ts[:-1]
    ts, h, key, day = ts[first], h[first], key[first], day[first]
    order = np.lexsort((key, ts, h, day))  # per day, by (h, ts, key)
    ts, day = ts[order], day[order]
    starts = np.searchsorted(day, day, side="left")
    keep = (np.arange(len(day)) - starts) < cuts_per_day
    ts, day = ts[keep], day[keep]
    order = np.argsort(ts, kind="stable")
    return ts[order], day[order]


def labels(purchase_ts: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label_1h, label_1d) as int8: the next purchase (``purchase_ts`` sorted) strictly after
    tau (one at tau is history) within an hour, a day."""
    later = np.append(purchase_ts, np.iinfo(np.int64).max)  # "never" after the last
    delta = later[np.searchsorted(purchase_ts, tau, side="right")] - tau
    return (delta <= HOUR_MS).astype(np.int8), (delta <= DAY_MS).astype(np.int8)


def history(action_ts: dict[str, np.ndarray], tau: np.ndarray) -> np.ndarray:
    """(cuts, len(HISTORY_FEATURES)) int16: ``min(count, HISTORY_CAP) + 1`` of each action in
    ``[tau - window, tau]``, in ``HISTORY_FEATURES``' order (each action's times sorted)."""
    cols = []
    for action in contract.HISTORY_ACTIONS:
        times = action_ts.get(action, np.zeros(0, dtype=np.int64))
        upto = np.searchsorted(times, tau, side="right")
        for days in contract.HISTORY_WINDOWS_DAYS:
            count = upto - np.searchsorted(times, tau - days * DAY_MS, side="left")
            cols.append(np.minimum(count, contract.HISTORY_CAP) + 1)
    return np.stack(cols, axis=1).astype(np.int16) if cols else np.zeros((len(tau), 0), np.int16)


def _flat(xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs).astype(np.int16, copy=False) if len(xs) else _EMPTY_IDS


def user_rows(events: pd.DataFrame, *, splits: dict[int, str], origin_ms: int,
              cuts_per_day: int, max_len: int) -> pd.DataFrame:
    """One user's events -> that user's rows, one per split day with a cut (``COLUMNS``)."""
    events = events.sort_values(["ts", "key"], kind="stable")
    view, action = events["view"].to_numpy(), events["action"].to_numpy()
    ts_all = events["ts"].to_numpy(dtype=np.int64)
    is_cand = (view == "swipe") | ((view == "browse") & (action != "purchase"))
    cand = events[is_cand]
    cut_ts, cut_day = choose_cuts(
        cand, (cand["ts"].to_numpy(dtype=np.int64) - origin_ms) // DAY_MS, splits, cuts_per_day)
    if not len(cut_ts):
        return pd.DataFrame(columns=list(COLUMNS))
    browse = view == "browse"
    buys = ts_all[browse & (action == "purchase")]
    label_1h, label_1d = labels(buys, cut_ts)
    hist = history({a: ts_all[browse & (action == a)] for a in contract.HISTORY_ACTIONS}, cut_ts)
    x_all, user = events["x"].to_numpy(), int(events["user_id"].iloc[0])
    per_view = {}
    for v in VIEWS:
        mask = view == v
        v_ts = ts_all[mask]
        per_view[v] = (v_ts, x_all[mask], np.searchsorted(v_ts, cut_ts, side="right"))
    days, first = np.unique(cut_day, return_index=True)
    bounds = [*first[1:], len(cut_day)]
    out = []
    for day, a, b in zip(days, first, bounds, strict=True):
        row = {"user_id": user, "day": int(day), "split": splits[int(day)]}
        for v, (v_ts, v_x, end) in per_view.items():
            lo, hi = max(int(end[a]) - max_len, 0), int(end[b - 1])  # ends grow with tau
            row[f"{v}_ts"] = v_ts[lo:hi]
            row[f"{v}_x"] = _flat(v_x[lo:hi])
            row[f"cut_{v}_end"] = (end[a:b] - lo).astype(np.int32)
        row.update(cut_ts=cut_ts[a:b], label_1h=label_1h[a:b], label_1d=label_1d[a:b],
                   history=hist[a:b].reshape(-1))
        out.append(row)
    return pd.DataFrame(out, columns=list(COLUMNS))
