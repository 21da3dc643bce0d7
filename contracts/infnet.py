"""InfNet: one row per purchase query (u, p, day) with its weekly 2-hop diffusion sub-graphs.

Written by ``pipeline.systems.infnet.shards``, read by ``models.systems.infnet.task``.
Node indices inside ``weeks`` point into ``node_ids`` / ``node_x`` / ``node_role``; index 0 is
always the target user, then the seed senders, then the other sampled nodes.

``history_items`` / ``history_kinds`` / ``history_ts`` are the target user's own Taocode and
purchase records (``HISTORY_KINDS``) in the observation weeks before the query day and on the
query day strictly before ``query_ts``: oldest first, newest last, at most the builder's
``history_len`` (default ``HISTORY_LEN``) newest ones. The session and recommender baselines
read them.
"""

from __future__ import annotations

import pyarrow as pa

from contracts import SPLITS, manifest_schema

SCHEMA_VERSION = 2
#: ``shards/<SHARD_TABLE>`` and ``shards/<MANIFEST_TABLE>``
SHARD_TABLE = "infnet"
MANIFEST_TABLE = "infnet_manifest"

#: Node roles, in the order of the role one-hot that closes every node feature vector.
ROLES = ("target", "seed", "other")
ROLE_TARGET, ROLE_SEED, ROLE_OTHER = 0, 1, 2

#: Kinds of a history record: a Taocode the user received, one the user sent, a purchase.
HISTORY_KINDS = ("received", "sent", "purchase")
KIND_RECEIVED, KIND_SENT, KIND_PURCHASE = 0, 1, 2
#: Default cap on a query's history records (the newest are kept).
HISTORY_LEN = 50

__all__ = [
    "HISTORY_KINDS",
    "HISTORY_LEN",
    "KIND_PURCHASE",
    "KIND_RECEIVED",
    "KIND_SENT",
    "MANIFEST",
    "MANIFEST_TABLE",
    "ROLES",
    "ROLE_OTHER",
    "ROLE_SEED",
    "ROLE_TARGET",
    "SCHEMA_VERSION",
    "SHARD",
    "SHARD_TABLE",
    "SPLITS",
    "WEEK",
]

#: One observation window of a query's sub-graph: ``week`` k in 0..W-1 covers the days
#: ``[D - 7(W-k), D - 7(W-k-1))`` before the query day D, seven-day windows that end where the
#: query's day starts (not the world's Monday-to-Monday weeks, ``pipeline/world/config.py``).
WEEK = pa.struct(
    [
        pa.field("week", pa.int32(), nullable=False),
        pa.field("nodes", pa.list_(pa.int32()), nullable=False),
        pa.field("edge_src", pa.list_(pa.int32()), nullable=False),
        pa.field("edge_dst", pa.list_(pa.int32()), nullable=False),
        pa.field("edge_attr", pa.list_(pa.list_(pa.float32())), nullable=False),
    ]
)

SHARD = pa.schema(
    [
        pa.field("query_id", pa.int64(), nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("query_day", pa.date32(), nullable=False),
        pa.field("query_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("cold", pa.bool_(), nullable=False),
        pa.field("fanout_capped", pa.int32(), nullable=False),
        pa.field("item_x", pa.list_(pa.float32()), nullable=False),
        pa.field("node_ids", pa.list_(pa.int64()), nullable=False),
        pa.field("node_role", pa.list_(pa.int32()), nullable=False),
        pa.field("node_x", pa.list_(pa.list_(pa.float32())), nullable=False),
        pa.field("weeks", pa.list_(WEEK), nullable=False),
        pa.field("history_items", pa.list_(pa.int64()), nullable=False),
        pa.field("history_kinds", pa.list_(pa.int32()), nullable=False),
        pa.field("history_ts", pa.list_(pa.timestamp("us", tz="UTC")), nullable=False),
    ]
)

MANIFEST = manifest_schema()
