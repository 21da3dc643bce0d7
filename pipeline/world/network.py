"""What E2, E3 and E9 read of the share network, built by the functions ``observe`` uses.

* **E2**, the degree gap: a sender's and a receiver's *prior degree*, the distinct in- plus
  out-neighbours over the share edges first used in weeks before the record's (``first_edges``,
  ``prior_degree_weeks``); ``s_deg`` / ``r_deg`` are their log1p.
* **E3**, close neighbours: the receiver's neighbours in the merged share graph
  (``neighbour_pairs``) who received the item and bought it (first purchase at or after
  receipt), with the times they did (``structure.adoption_times_of``).
* **E9**, a tie's price history: a share converts better when its sender shared *dear* items
  (price index >= 0.5) with this receiver in the four weeks before the record's week, and worse
  when they shared cheap ones: ``tie_score = clip(dear - cheap, -3, 3) / 3`` in [-1, 1], 0
  without history (``pipeline.stats.common.tie_history``). It does not depend on the item being
  shared, and of all the share graph's traces only the weekly Taocode edge features (PI bins per
  pair and week) carry it: it is the mechanism the InfNet paper credits those features with.

Weeks are numbered from the world's start (``clock.week_index``); the statistics number the same
weeks from 1, which changes no "weeks before" (see ``config``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.stats import common
from pipeline.stats.structure import adoption_times_of
from pipeline.world.clock import week_index


def _first_edges(records: DataFrame) -> DataFrame:
    week = week_index(F.col("t")).alias("week")
    return common.first_edges(records.select("sender_id", "receiver_id", week))


def prior_degrees(records: DataFrame) -> DataFrame:
    """(user_id, _new_edges) of the records' share graph, built by the functions ``observe``
    uses (``first_edges``, ``prior_degree_weeks``): weeks numbered from the world's start."""
    return common.prior_degree_weeks(_first_edges(records))


def network_neighbours(records: DataFrame) -> DataFrame:
    """(user_id, neighbour_id) of the records' merged share graph (``neighbour_pairs``)."""
    return common.neighbour_pairs(_first_edges(records))


def with_prior_degrees(recs: DataFrame, degrees: DataFrame) -> DataFrame:
    """Add ``s_deg`` / ``r_deg``: log1p of the sender's and the receiver's prior degree (in +
    out, edges first used in weeks before the record's) in ``degrees`` (``prior_degrees``)."""
    recs = common.join_prior_degrees(recs.withColumn("week", week_index(F.col("t"))), degrees)
    return (
        recs.withColumn("s_deg", F.log1p(F.col("sender_prior_degree").cast("double")))
        .withColumn("r_deg", F.log1p(F.col("receiver_prior_degree").cast("double")))
        .drop("week", "sender_prior_degree", "receiver_prior_degree")
    )


def tie_history(records: DataFrame) -> DataFrame:
    """``common.tie_history`` of the records (weeks numbered from the world's start), the
    table E9 reads."""
    week = week_index(F.col("t")).alias("week")
    return common.tie_history(records.select("sender_id", "receiver_id", week, "price_index"))


def with_tie_score(recs: DataFrame, ties: DataFrame) -> DataFrame:
    """Add ``tie``: the ``tie_score`` of each record's pair in ``ties`` (``tie_history``)."""
    recs = recs.withColumn("week", week_index(F.col("t")))
    return common.with_tie_score(recs, ties, "tie").drop("week")


def neighbour_adoptions(hops: list[DataFrame], neighbours: DataFrame) -> DataFrame:
    """(receiver_id, item_id, adopt_times): for E3, the times the receiver's neighbours adopted
    the item (received it and bought it), from the records of ``hops``, as ``observe``
    computes close neighbours: an adopter's first purchase through a record, joined to its
    ``neighbours`` (``network_neighbours``) by ``structure.adoption_times_of``."""
    bought = None
    for prev in hops:
        part = prev.where(F.col("bought")).select(
            F.col("receiver_id").alias("user_id"), "item_id", F.col("buy_t").alias("adopt_ts")
        )
        bought = part if bought is None else bought.unionByName(part)
    first = bought.groupBy("user_id", "item_id").agg(F.min("adopt_ts").alias("adopt_ts"))
    return adoption_times_of(first, neighbours, None)
