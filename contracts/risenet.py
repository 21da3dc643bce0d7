"""RiseNet: one row per (item, window) with the item's weekly diffusion graphs and its label.

Written by ``pipeline.systems.risenet.shards``, read by ``models.systems.risenet.task``.

A window starting at world week ``w0`` observes weeks ``w0 .. w0+T-1`` (``weeks``, in order) and
labels the item by its sales over the next two weeks (``pipeline.stats.rising.rising_stars``,
the one definition of a rising star). Every feature column is computed from the observed weeks
only; the label period is read for ``label`` alone. The next-week scale targets of the
multi-task loss are the observed weeks' own scales (``weeks[t+1].scale`` for t < T-1), so they
need no column of their own.

Inside a week, node ``i`` is the user ``users[i]``; ``user_x`` holds ``len(users)`` rows of
``USER_FEATURES`` (row-major, flattened) and ``edge_x`` one row of ``EDGE_FEATURES`` per edge
``edge_src[j] -> edge_dst[j]`` (a share record, sender to receiver).
"""

from __future__ import annotations

import pyarrow as pa

from contracts import SPLITS, manifest_schema

SCHEMA_VERSION = 1
#: ``shards/<SHARD_TABLE>`` and ``shards/<MANIFEST_TABLE>``
SHARD_TABLE = "risenet"
MANIFEST_TABLE = "risenet_manifest"

#: Per user and window, over the window's observed weeks: the profile's consumption tier
#: (1-5), the share of the user's purchases in the item's top category, purchases, share
#: records sent, received and forwarded (sent after receiving the same item) per week, and
#: whether the user is a hub (top 1 % of senders in the observed weeks). Counts are log1p'ed.
USER_FEATURES = (
    "consumption_tier",
    "category_share",
    "purchases_per_week",
    "sent_per_week",
    "received_per_week",
    "forwarded_per_week",
    "hub",
)
#: Per share edge: log1p of the sender's records to that receiver (any item) in the observed
#: weeks (tie strength), and whether the record forwards an item the sender had received.
EDGE_FEATURES = ("tie_strength", "forward")
#: Per item and week, ``WEEK``'s scalar columns in this order form X_t.
ITEM_FEATURES = ("price", "sales", "records", "scale")

__all__ = [
    "EDGE_FEATURES",
    "ITEM_FEATURES",
    "MANIFEST",
    "MANIFEST_TABLE",
    "SCHEMA_VERSION",
    "SHARD",
    "SHARD_TABLE",
    "SPLITS",
    "USER_FEATURES",
    "WEEK",
]

#: One observed week of one item: its weekly features and its diffusion graph G_t.
WEEK = pa.struct(
    [
        pa.field("week", pa.int32(), nullable=False),
        pa.field("price", pa.float32(), nullable=False),
        pa.field("sales", pa.int64(), nullable=False),
        pa.field("records", pa.int64(), nullable=False),
        pa.field("scale", pa.int64(), nullable=False),
        pa.field("users", pa.list_(pa.int64()), nullable=False),
        pa.field("user_x", pa.list_(pa.float32()), nullable=False),
        pa.field("edge_src", pa.list_(pa.int32()), nullable=False),
        pa.field("edge_dst", pa.list_(pa.int32()), nullable=False),
        pa.field("edge_x", pa.list_(pa.float32()), nullable=False),
    ]
)

SHARD = pa.schema(
    [
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("window_start", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("top_category", pa.int32(), nullable=False),
        pa.field("records_before", pa.int64(), nullable=False),
        pa.field("graph_capped", pa.int32(), nullable=False),
        pa.field("weeks", pa.list_(WEEK), nullable=False),
    ]
)

MANIFEST = manifest_schema()
