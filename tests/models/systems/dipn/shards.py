"""Hand-made and synthetic ``shards/dipn`` rows for the dipn tests (no Spark).

``row`` builds one user-day row from events given as ``(ts, {feature: id})``; cut end offsets
are the events at or before each tau unless given. ``synthetic_rows`` makes a shard whose
labels are functions of the sequences: ``label_1h`` = a tap on button ``BUY_BUTTON`` among the
cut's last ``window`` taps, ``label_1d`` = a cart action (browse type ``CART``) among its last
``window`` browse events.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from contracts import dipn as contract
from models.systems.dipn.task import FEATURES, VIEWS

BUY_BUTTON = 7
CART = contract.BROWSE_TYPES.index("cart") + 1


def ids(view: str, **values: int) -> list[int]:
    """One event's ids in the view's feature order; features not named are 0."""
    unknown = set(values) - set(FEATURES[view])
    assert not unknown, unknown
    return [int(values.get(name, 0)) for name in FEATURES[view]]


def row(user_id: int, day: int, split: str, cuts: list[int], swipe=(), tap=(), browse=(),
        labels_1h=None, labels_1d=None, ends: dict[str, list[int]] | None = None,
        history=None, profile=(1, 2, 3)) -> dict:
    """A shard row. ``swipe`` / ``tap`` / ``browse``: (ts, {feature: id}) in time order."""
    events = {"swipe": list(swipe), "tap": list(tap), "browse": list(browse)}
    out = {"user_id": user_id, "day": day, "split": split, "profile": list(profile),
           "cut_ts": list(cuts)}
    for view in VIEWS:
        ts = [t for t, _ in events[view]]
        out[f"{view}_ts"] = ts
        out[f"{view}_x"] = [v for _, f in events[view] for v in ids(view, **f)]
        out[f"cut_{view}_end"] = ((ends or {}).get(view)
                                  or [int(np.searchsorted(ts, tau, "right")) for tau in cuts])
    n = len(cuts)
    out["label_1h"] = list(labels_1h if labels_1h is not None else [0] * n)
    out["label_1d"] = list(labels_1d if labels_1d is not None else [0] * n)
    width = len(contract.HISTORY_FEATURES)
    out["history"] = list(history if history is not None
                          else [1 + (k + j) % 5 for k in range(n) for j in range(width)])
    return out


def write_lake(path, rows: list[dict]) -> str:
    from deltalake import write_deltalake

    write_deltalake(str(path / "shards" / contract.SHARD_TABLE),
                    pa.Table.from_pylist(rows, contract.SHARD), mode="overwrite")
    return str(path)


def synthetic_rows(users: int, split: str, seed: int, cuts: int = 8, window: int = 8,
                   first_user: int = 0) -> list[dict]:
    """One day per user: ~24 taps (buttons 1..12), ~30 swipes and ~10 browse events over
    10 hours, cuts at the times of random taps."""
    rng = np.random.default_rng(seed)
    hour = 3_600_000
    out = []
    for u in range(first_user, first_user + users):
        day = 1 + u % 3
        start = day * 24 * hour

        def times(n, start=start):
            return np.sort(start + rng.integers(0, 10 * hour, n)).tolist()

        swipe = [(t, {"page": int(rng.integers(1, 64)), "action": 3,
                      "gap": int(rng.integers(1, 21)), "duration": int(rng.integers(1, 21))})
                 for t in times(int(rng.integers(20, 40)))]
        buttons = rng.integers(1, 13, 40)
        tap = [(t, {"event": 1 + int(b > 0), "page": int(rng.integers(1, 64)), "button": int(b)})
               for t, b in zip(times(int(rng.integers(16, 32))), buttons, strict=False)]
        browse = [(t, {"type": int(rng.integers(1, 6)), "leaf_category": int(rng.integers(1, 1024)),
                       "top_category": int(rng.integers(1, 128)), "page": int(rng.integers(1, 16)),
                       "stay": int(rng.integers(1, 21)), "hour": 1 + (t // hour) % 24})
                  for t in times(int(rng.integers(5, 15)))]
        tap_ts = [t for t, _ in tap]
        taus = sorted(set(rng.choice(tap_ts[window // 2:], size=cuts, replace=False).tolist()))
        labels_1h, labels_1d = [], []
        for tau in taus:
            seen = [f["button"] for t, f in tap if t <= tau][-window:]
            labels_1h.append(int(BUY_BUTTON in seen))
            kinds = [f["type"] for t, f in browse if t <= tau][-window:]
            labels_1d.append(int(CART in kinds))
        out.append(row(u, day, split, taus, swipe, tap, browse, labels_1h, labels_1d,
                       profile=(1 + u % 4, 1 + u % 3, 1 + u % 5)))
    return out
