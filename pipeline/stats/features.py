"""``stats/share_features``: every record-level annotation of InfNet Sec. 3 in few shuffles.

The statistics' own functions (``common.with_conversion``, ``structure.with_degrees``,
``common.with_prior_degrees``, ``structure.with_close_neighbours``, ``temporal.with_two_hop``)
each build their lookup table from the raw records and join it to the records: chained, that
is about ten shuffles of the record stream and as many passes over the raw tables. This
module computes the same columns from three shared lookup tables, built once:

* ``key_times`` per (user, item): receipt and purchase times. Joined on (receiver, item) it
  gives the conversion flag and, beside it, the close-neighbour adoption times; joined on
  (sender, item) it gives the 2-hop columns.
* ``first_edges``: the distinct directed edges with their first week. Degrees, neighbour
  pairs and the per-user histogram of new edges per week (prior degrees) come from it.
* per user: merged-graph degree and that histogram, joined on sender and on receiver.

So the record stream is shuffled four times: by (receiver, item), (sender, item), sender and
receiver; a fifth shuffle by (sender, receiver, week) adds the tie's price history
(``common.tie_history``, E9), which needs the items' price index. The column expressions are
the ones the single-statistic functions use, so both paths compute the same values
(``tests/pipeline/stats/test_features.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.stats import structure, temporal
from pipeline.stats.common import (
    adopters_from_times,
    converted_flag,
    first_edges,
    key_times,
    neighbour_pairs,
    prior_degree,
    prior_degree_weeks,
    tie_history,
    user_degrees_from_edges,
    with_tie_score,
)

SHARE_FEATURE_COLUMNS = [
    "sender_id", "receiver_id", "item_id", "ts", "week", "top_category", "converted",
    "sender_degree", "receiver_degree", "sender_prior_degree", "receiver_prior_degree",
    "close_neighbours", "delta_weeks", "sender_bought", "tie_score",
]


@dataclass
class Lookups:
    """The shared lookup tables of one observe run (see the module docstring)."""

    times: DataFrame  # (user_id, item_id, received, bought)
    edges: DataFrame  # (sender_id, receiver_id, first_week)
    neighbours: DataFrame  # (user_id, neighbour_id)
    adopted: DataFrame  # (user_id, item_id, received_ts, adopt_ts)

    @classmethod
    def build(cls, shares: DataFrame, purchases: DataFrame) -> Lookups:
        """``shares`` and ``purchases`` carry ``week`` (``common.with_week``)."""
        times = key_times(shares, purchases)
        edges = first_edges(shares)
        return cls(times, edges, neighbour_pairs(edges), adopters_from_times(times))

    def degrees(self) -> DataFrame:
        """``common.user_degrees`` of the records."""
        return user_degrees_from_edges(self.edges)

    def join_rows(self) -> int:
        """``structure.close_neighbour_join_rows`` of the records."""
        return structure.adoption_join_rows(self.adopted, self.neighbours)


def share_features(
    shares: DataFrame,
    items: DataFrame,
    degrees: DataFrame,
    lookups: Lookups,
    window_days: float = 7.0,
    attribution: str = "last_touch",
    max_delta: int = 4,
) -> DataFrame:
    """Share records (with ``week``) annotated with ``SHARE_FEATURE_COLUMNS``.

    Args:
        shares: raw share records with ``week``.
        items: raw items (``top_category`` and ``price_index``; broadcast, one row per item).
        degrees: ``user_degrees`` of the records (the committed ``stats/user_degree``).
        lookups: ``Lookups.build(shares, purchases)``.
        window_days / attribution: see ``common.with_conversion``.
        max_delta: see ``temporal.with_two_hop``.
    """
    times = lookups.times
    received_pairs = times.where(F.col("received").isNotNull()).select(
        F.col("user_id").alias("receiver_id"), "item_id"
    )
    adoption = structure.adoption_times_of(lookups.adopted, lookups.neighbours, received_pairs)
    as_receiver = times.select(
        F.col("user_id").alias("receiver_id"), "item_id",
        F.col("received").alias("_own"), F.col("bought").alias("_bought"),
    )
    as_sender = times.select(
        F.col("user_id").alias("sender_id"), "item_id",
        F.col("received").alias("_received"), F.col("bought").alias("_sender_bought"),
    )
    users = degrees.select("user_id", "degree").join(
        prior_degree_weeks(lookups.edges), "user_id", "full"
    )
    priced = shares.join(
        F.broadcast(items.select("item_id", "top_category", "price_index")), "item_id", "left"
    )
    out = (
        priced
        # (receiver, item): conversion and close neighbours
        .join(as_receiver, ["receiver_id", "item_id"], "left")
        .join(adoption, ["receiver_id", "item_id"], "left")
        .withColumn("converted", converted_flag(
            F.col("_bought"), F.col("_own"), window_days, attribution
        ))
        .withColumn("close_neighbours", structure.close_neighbour_count(F.col("adopt_times")))
        .drop("_own", "_bought", "adopt_times")
        # (sender, item): 2-hop
        .join(as_sender, ["sender_id", "item_id"], "left")
        .transform(temporal.two_hop_columns(
            F.col("_received"), F.col("_sender_bought"), max_delta
        ))
        .drop("_received", "_sender_bought")
    )
    for role in ("sender", "receiver"):
        # Joined on its own ``user_id`` and renamed after: both roles then shuffle the same
        # plan, and Spark builds the user table once (a ReusedExchange), not once per role.
        u = users.alias(f"_{role}")
        out = (
            out.join(u, F.col(f"{role}_id") == F.col(f"_{role}.user_id"), "left")
            .withColumn(f"{role}_prior_degree", prior_degree(F.col(f"_{role}._new_edges")))
            .withColumn(f"{role}_degree", F.col(f"_{role}.degree"))
            .drop(F.col(f"_{role}.user_id"), F.col(f"_{role}.degree"),
                  F.col(f"_{role}._new_edges"))
        )
    out = with_tie_score(out, tie_history(priced))
    return out.select(*SHARE_FEATURE_COLUMNS)
