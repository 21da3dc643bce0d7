"""NDM: one row per cascade (an ordered list of infected users with their infection times).

Written by ``pipeline.systems.ndm.cascades`` (the authors' cascade files) and
``pipeline.systems.ndm.shards`` (a generated world's item cascades); read by
``models.systems.ndm.task``. A dataset ``<name>`` is three tables under ``shards/``:
``ndm/<name>`` (cascades), ``ndm/<name>_users`` (dense id -> original user name) and
``ndm/<name>_manifest`` (one row). A generated world's dataset has a fourth,
``ndm/<name>_social`` (``SOCIAL``): the share graph of its training period among the dense user
ids, the social network of NDM+SN (paper Sec. 5.4); the authors' cascade files have none.
"""

from __future__ import annotations

import pyarrow as pa

from contracts import SPLITS

SCHEMA_VERSION = 1

__all__ = [
    "CASCADES",
    "MANIFEST",
    "SCHEMA_VERSION",
    "SOCIAL",
    "SPLITS",
    "USERS",
    "cascades_table",
    "manifest_table",
    "social_table",
    "users_table",
]


def cascades_table(name: str) -> str:
    return f"ndm/{name}"


def users_table(name: str) -> str:
    return f"ndm/{name}_users"


def manifest_table(name: str) -> str:
    return f"ndm/{name}_manifest"


def social_table(name: str) -> str:
    return f"ndm/{name}_social"


CASCADES = pa.schema(
    [
        pa.field("cascade_id", pa.int64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("users", pa.list_(pa.int64()), nullable=False),
        pa.field("times", pa.list_(pa.float64()), nullable=False),
    ]
)

USERS = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("user_name", pa.string(), nullable=False),
    ]
)

#: One row: the dataset's name, the run that built it, and ``json`` with counts per split,
#: n_users and the per-file reconciliation.
MANIFEST = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("json", pa.string(), nullable=False),
    ]
)

#: One row per directed (sender, receiver) pair of dense user ids that shared in the training
#: period (before the first val cascade starts); ``weight`` = the number of share records.
SOCIAL = pa.schema(
    [
        pa.field("src", pa.int64(), nullable=False),
        pa.field("dst", pa.int64(), nullable=False),
        pa.field("weight", pa.int64(), nullable=False),
    ]
)
