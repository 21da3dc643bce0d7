"""DIPN: one row per (user, day) holding the user's three behaviour views around that day and
the day's cut times, each with its labels and history.

Written by ``pipeline.systems.dipn.shards``, read by ``models.systems.dipn.task``.

A sample is a user at a cut time ``tau`` (epoch milliseconds), always the time of one of the
user's own actions (a touch or a browse) on that day. Storing every sample's three 256-event
sequences would repeat each event up to 256 times, so a row stores each view once, in time
order (ties broken by a stable key): the events the day's cuts need, from ``MAX_LEN`` events
before the end of the day's first cut to the end of its last. Cut ``k``'s sequence in view ``v`` is
``v_x[max(0, end - MAX_LEN) : end]`` with ``end = cut_<v>_end[k]``: exactly the view's events
with a time ``<= tau``. Labels read purchases only: ``label_1h`` = a purchase in
``(tau, tau + 1 h]`` (real-time), ``label_1d`` = a purchase in ``(tau, tau + 1 d]`` (long-term).

Every ``*_x`` column is a row-major flattening of ``n events x len(<VIEW>_FEATURES)`` small
integer ids; id 0 is padding / not applicable (a tap's swipe fields, say), so each feature's
vocabulary has ``VOCAB[feature]`` ids counting the 0. ``history`` flattens
``n cuts x len(HISTORY_FEATURES)`` bucketed counts (as of tau), ``profile`` holds
``len(PROFILE_FEATURES)`` ids.

Discretisation (the paper's Sec. 3): screen positions on a 17 x 25 grid of the
``SCREEN_W x SCREEN_H`` point screen (1-based ids); a swipe's signed length on each axis on
twice the grid (34 and 50 ids); time gap (to the user's previous event in the same view; 0 for
the first) and touch duration by the step function ``bucket(x, f_s, f_b)`` below (20 ids, +1);
browse page stay time by the same function with ``f_s = 1 s, f_b = 10 s``; a browse's
timestamp as its hour of day.
"""

from __future__ import annotations

import pyarrow as pa

from contracts import SPLITS, manifest_schema

SCHEMA_VERSION = 1
#: ``shards/<SHARD_TABLE>`` and ``shards/<MANIFEST_TABLE>``
SHARD_TABLE = "dipn"
MANIFEST_TABLE = "dipn_manifest"

#: The paper's sequence length: at most this many events per view and sample.
MAX_LEN = 256
#: The touch screen, in points (x to the right, y down); positions outside are bad input.
SCREEN_W = 414.0
SCREEN_H = 736.0
GRID_X = 17
GRID_Y = 25
#: (f_s, f_b) of the step function, in milliseconds.
GAP_STEPS = (100.0, 1000.0)
DURATION_STEPS = (25.0, 250.0)
STAY_STEPS = (1000.0, 10000.0)
STEP_BUCKETS = 20

#: Touch actions of the swipe view (the tap view holds the taps alone).
SWIPE_ACTIONS = ("open_page", "leave_page", "swipe", "tap")
#: Browse-view action types: the raw browse actions, then purchases (which are not labels
#: when they happen at or before tau).
BROWSE_TYPES = ("view", "click", "favorite", "cart", "search", "purchase")

SWIPE_FEATURES = (
    "page",
    "action",
    "gap",
    "tap_x",
    "tap_y",
    "start_x",
    "start_y",
    "end_x",
    "end_y",
    "length_x",
    "length_y",
    "right",
    "down",
    "duration",
)
TAP_FEATURES = ("event", "page", "button")
BROWSE_FEATURES = ("type", "leaf_category", "top_category", "page", "stay", "hour")
#: Counts of favourites, add-to-carts and purchases over each window, as of tau.
HISTORY_WINDOWS_DAYS = (7, 14, 28)
HISTORY_ACTIONS = ("favorite", "cart", "purchase")
HISTORY_FEATURES = tuple(
    f"{action}_{days}d" for action in HISTORY_ACTIONS for days in HISTORY_WINDOWS_DAYS
)
PROFILE_FEATURES = ("age_band", "city_level", "consumption_tier")
#: A history count ``c`` is stored as ``min(c, HISTORY_CAP) + 1``.
HISTORY_CAP = 19

#: Vocabulary size of each feature id (0 included). Pages, buttons and leaf categories beyond
#: their vocabulary share the last id.
VOCAB = {
    # swipe view
    "swipe.page": 64,
    "swipe.action": len(SWIPE_ACTIONS) + 1,
    "swipe.gap": STEP_BUCKETS + 1,
    "swipe.tap_x": GRID_X + 1,
    "swipe.tap_y": GRID_Y + 1,
    "swipe.start_x": GRID_X + 1,
    "swipe.start_y": GRID_Y + 1,
    "swipe.end_x": GRID_X + 1,
    "swipe.end_y": GRID_Y + 1,
    "swipe.length_x": 2 * GRID_X + 1,
    "swipe.length_y": 2 * GRID_Y + 1,
    "swipe.right": 3,
    "swipe.down": 3,
    "swipe.duration": STEP_BUCKETS + 1,
    # tap view
    "tap.event": 3,
    "tap.page": 64,
    "tap.button": 128,
    # browse view
    "browse.type": len(BROWSE_TYPES) + 1,
    "browse.leaf_category": 1024,
    "browse.top_category": 128,
    "browse.page": 16,
    "browse.stay": STEP_BUCKETS + 1,
    "browse.hour": 25,
    **{f"history.{name}": HISTORY_CAP + 2 for name in HISTORY_FEATURES},
    "profile.age_band": 16,
    "profile.city_level": 16,
    "profile.consumption_tier": 16,
}

#: The paper's embedding sizes (its Table 3), ours where the paper has no such feature.
EMBEDDING = {
    "swipe.page": 32, "swipe.action": 4, "swipe.gap": 8, "swipe.tap_x": 8, "swipe.tap_y": 8,
    "swipe.start_x": 8, "swipe.start_y": 8, "swipe.end_x": 8, "swipe.end_y": 8,
    "swipe.length_x": 8, "swipe.length_y": 16, "swipe.right": 2, "swipe.down": 2,
    "swipe.duration": 8,
    "tap.event": 2, "tap.page": 16, "tap.button": 32,
    "browse.type": 4, "browse.leaf_category": 32, "browse.top_category": 16, "browse.page": 16,
    "browse.stay": 16, "browse.hour": 4,
    **{f"history.{name}": 8 for name in HISTORY_FEATURES},
    "profile.age_band": 4, "profile.city_level": 4, "profile.consumption_tier": 4,
}

__all__ = [
    "BROWSE_FEATURES",
    "HISTORY_FEATURES",
    "MANIFEST",
    "MANIFEST_TABLE",
    "MAX_LEN",
    "PROFILE_FEATURES",
    "SCHEMA_VERSION",
    "SHARD",
    "SHARD_TABLE",
    "SPLITS",
    "SWIPE_FEATURES",
    "TAP_FEATURES",
    "VOCAB",
    "bucket",
]


def bucket(x: float, f_s: float, f_b: float) -> int:
    """The paper's step function, 0..19: ``x // f_s`` below ``f_b``, ``x // f_b + 9`` below
    ``10 f_b``, 19 above (stored ``+ 1``, 0 being padding). The Spark builder computes the same
    thing as a column expression; this is the reference its tests compare with."""
    if x < f_b:
        return int(x // f_s)
    if x < 10 * f_b:
        return int(x // f_b + 9)
    return STEP_BUCKETS - 1


def _ids() -> pa.DataType:
    return pa.list_(pa.int16())


SHARD = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("day", pa.int32(), nullable=False),  # world day index (0 = the world's start)
        pa.field("split", pa.string(), nullable=False),
        pa.field("profile", _ids(), nullable=False),
        pa.field("swipe_ts", pa.list_(pa.int64()), nullable=False),
        pa.field("swipe_x", _ids(), nullable=False),
        pa.field("tap_ts", pa.list_(pa.int64()), nullable=False),
        pa.field("tap_x", _ids(), nullable=False),
        pa.field("browse_ts", pa.list_(pa.int64()), nullable=False),
        pa.field("browse_x", _ids(), nullable=False),
        pa.field("cut_ts", pa.list_(pa.int64()), nullable=False),
        pa.field("cut_swipe_end", pa.list_(pa.int32()), nullable=False),
        pa.field("cut_tap_end", pa.list_(pa.int32()), nullable=False),
        pa.field("cut_browse_end", pa.list_(pa.int32()), nullable=False),
        pa.field("label_1h", pa.list_(pa.int8()), nullable=False),
        pa.field("label_1d", pa.list_(pa.int8()), nullable=False),
        pa.field("history", _ids(), nullable=False),
    ]
)

MANIFEST = manifest_schema()
