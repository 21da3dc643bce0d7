"""DM-GNN: a temporal heterogeneous graph of social interactions, the users' consumption events
as dynamic node attributes, and each user's consumption tier per window.

Written by a Spark shard builder, read by ``models.systems.dmgnn.task``. A dataset is four
tables under ``shards/`` (``tables(dataset)`` names them; without a dataset they sit in
``dmgnn/``, with one in ``dmgnn/<dataset>/``):

* ``edges``: one row per social interaction ``src -> dst`` of a type in ``EDGE_TYPES`` at
  ``ts``. ``event_id`` is the row's place in the stream: ordered by ``event_id``, ``ts`` never
  decreases (ties keep the ``event_id`` order).
* ``attributes``: one row per consumption event of a user (a type in ``ATTRIBUTE_TYPES``) at
  ``ts``, with the money involved (``amount``: the payment, or the carted or browsed item's
  price; 0 when unknown). Ordered by ``event_id``, ``ts`` never decreases.
* ``tiers``: one row per (user, window ``[window_start, window_end)``): the consumption tier
  the user earned by her payments in the window, ``tier(spend)`` below (1..``NUM_TIERS``).
  Windows are ``WINDOW_DAYS`` long; a user gets a row for every window from the first in
  which she has any edge or attribute event to the last window of the stream.
* ``manifest``: one row (``contracts.manifest_schema``); its ``json`` holds ``num_nodes``,
  ``edges``, ``attributes``, ``tiers``, ``first_ts`` and ``last_ts``.

Times are epoch milliseconds. Node ids are dense (``0 .. num_nodes - 1``): the trainer sizes
its tables by the largest id. The split is the reader's: a chronological 70/15/15 cut of the
edge stream; the tables hold no ``split`` column.
"""

from __future__ import annotations

import bisect

import pyarrow as pa

from contracts import SPLITS, manifest_schema

SCHEMA_VERSION = 1
#: The folder of the dataset's tables under ``shards/``.
SHARD_FOLDER = "dmgnn"
TABLES = ("edges", "attributes", "tiers", "manifest")

#: Social interactions (the paper's likes, comments and reposts, and the Taocode shares).
EDGE_TYPES = ("share", "repost", "like", "comment")
#: Consumption events, the dynamic node attributes.
ATTRIBUTE_TYPES = ("browse", "cart", "payment")

WINDOW_DAYS = 7
NUM_TIERS = 5
#: Spend (sum of ``payment`` amounts in the window) at which tiers 2, 3, 4 and 5 start: tier 1
#: paid nothing, and a generated world's paying user-weeks split about evenly over 2-5
#: (weekly spend quartiles about 31, 76 and 133 on a 30,000-record world).
TIER_BOUNDS = (1.0, 30.0, 75.0, 150.0)

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_TYPES",
    "EDGES",
    "EDGE_TYPES",
    "MANIFEST",
    "NUM_TIERS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SPLITS",
    "TIERS",
    "TIER_BOUNDS",
    "WINDOW_DAYS",
    "tables",
    "tier",
]


def tables(dataset: str | None = None) -> dict[str, str]:
    """Table name (``edges``, ...) -> its path under ``shards/``."""
    folder = SHARD_FOLDER if dataset is None else f"{SHARD_FOLDER}/{dataset}"
    return {name: f"{folder}/{name}" for name in TABLES}


def tier(spend: float) -> int:
    """The tier a window's spend earns: 1 below ``TIER_BOUNDS[0]``, then one more per bound
    reached. The Spark builder computes the same as a column expression; this is the reference
    its tests compare with."""
    return 1 + bisect.bisect_right(TIER_BOUNDS, spend)


EDGES = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("src", pa.int64(), nullable=False),
        pa.field("dst", pa.int64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("edge_type", pa.string(), nullable=False),  # one of EDGE_TYPES
    ]
)

ATTRIBUTES = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),  # one of ATTRIBUTE_TYPES
        pa.field("amount", pa.float64(), nullable=False),  # >= 0
    ]
)

TIERS = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("window_start", pa.int64(), nullable=False),
        pa.field("window_end", pa.int64(), nullable=False),
        pa.field("tier", pa.int8(), nullable=False),  # 1..NUM_TIERS
    ]
)

MANIFEST = manifest_schema()

#: Each table's schema, by the names of ``TABLES``.
SCHEMA = {"edges": EDGES, "attributes": ATTRIBUTES, "tiers": TIERS, "manifest": MANIFEST}
