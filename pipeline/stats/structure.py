"""InfNet Sec. 3.3: degree-gap CI (Fig. 2b) and close neighbours (Fig. 2c); and the CI by a
tie's price history (``tie_ci``), the trace of E9 that only the Taocode edge features carry.

Input share records carry ``converted`` (see ``common.with_conversion``). Degrees are distinct
in- plus out-neighbours over the share graph merged across all weeks (``common.user_degrees``).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.stats.common import adopters, conversion_counts

DEGREE_GAP_CI = T.StructType(
    [
        T.StructField("sender_degree", T.LongType()),
        T.StructField("receiver_degree", T.LongType()),
        T.StructField("records", T.LongType()),
        T.StructField("conversions", T.LongType()),
        T.StructField("ci", T.DoubleType()),
    ]
)

TIE_CI = T.StructType(
    [
        T.StructField("tie_score", T.DoubleType()),
        T.StructField("records", T.LongType()),
        T.StructField("conversions", T.LongType()),
        T.StructField("ci", T.DoubleType()),
    ]
)

CLOSE_NEIGHBOURS = T.StructType(
    [
        T.StructField("top_category", T.IntegerType()),  # null: all categories
        T.StructField("close_neighbours", T.IntegerType()),  # the last bucket means "k or more"
        T.StructField("records", T.LongType()),
        T.StructField("conversions", T.LongType()),
        T.StructField("ci", T.DoubleType()),
    ]
)


def with_degrees(shares: DataFrame, degrees: DataFrame) -> DataFrame:
    """Add ``sender_degree`` and ``receiver_degree`` to share records."""
    deg = degrees.select("user_id", "degree")
    return (
        shares.join(
            deg.withColumnRenamed("user_id", "sender_id").withColumnRenamed(
                "degree", "sender_degree"
            ),
            "sender_id",
            "left",
        )
        .join(
            deg.withColumnRenamed("user_id", "receiver_id").withColumnRenamed(
                "degree", "receiver_degree"
            ),
            "receiver_id",
            "left",
        )
    )


def degree_gap_ci(shares_with_degrees: DataFrame, max_degree: int = 9) -> DataFrame:
    """Taocode CI by sender degree x receiver degree, both in ``1..max_degree``."""
    in_range = (
        F.col("sender_degree").between(1, max_degree)
        & F.col("receiver_degree").between(1, max_degree)
    )
    return (
        conversion_counts(shares_with_degrees.where(in_range), "sender_degree", "receiver_degree")
        .select(*[F.col(f.name).cast(f.dataType) for f in DEGREE_GAP_CI.fields])
    )


def neighbour_adoption_times(
    shares: DataFrame, purchases: DataFrame, neighbours: DataFrame
) -> DataFrame:
    """(receiver_id, item_id, adopt_times): when each of the receiver's neighbours adopted.

    Adopters are rare (they received *and* bought), so the join starts from them: each
    (adopter, item) meets the adopter's neighbours, and only the (neighbour, item) pairs where
    the neighbour actually received the item survive the semi-join. The intermediate size is
    sum over adopters of their degree (see ``close_neighbour_join_rows``).
    """
    return adoption_times_of(
        adopters(shares, purchases), neighbours, shares.select("receiver_id", "item_id").distinct()
    )


def adoption_times_of(
    adopted: DataFrame, neighbours: DataFrame, received: DataFrame | None
) -> DataFrame:
    """``neighbour_adoption_times`` from its parts: ``adopters`` rows, ``neighbour_pairs`` and
    the distinct (receiver_id, item_id) pairs that received anything (None: keep every pair;
    the generator's E3 does not know yet who will receive)."""
    adopted = adopted.select(F.col("user_id").alias("adopter_id"), "item_id", "adopt_ts")
    pairs = adopted.join(
        neighbours.select(
            F.col("neighbour_id").alias("adopter_id"), F.col("user_id").alias("receiver_id")
        ),
        "adopter_id",
    )
    if received is not None:
        pairs = pairs.join(received, ["receiver_id", "item_id"], "left_semi")
    return pairs.groupBy("receiver_id", "item_id").agg(
        F.collect_list("adopt_ts").alias("adopt_times")
    )


def close_neighbour_join_rows(
    shares: DataFrame, purchases: DataFrame, neighbours: DataFrame
) -> int:
    """Rows the adopter x neighbour join will produce (sum of adopters' degrees), a scalar."""
    return adoption_join_rows(adopters(shares, purchases), neighbours)


def adoption_join_rows(adopted: DataFrame, neighbours: DataFrame) -> int:
    """``close_neighbour_join_rows`` from ``adopters`` rows and ``neighbour_pairs``."""
    degree = neighbours.groupBy(F.col("user_id").alias("adopter_id")).agg(
        F.count(F.lit(1)).alias("deg")
    )
    row = (
        adopted.select(F.col("user_id").alias("adopter_id"))
        .join(degree, "adopter_id")
        .agg(F.sum("deg").alias("rows"))
        .first()
    )
    return int(row["rows"] or 0)


def with_close_neighbours(
    shares: DataFrame, adoption_times: DataFrame, cap: int | None = None
) -> DataFrame:
    """Add ``close_neighbours``: the receiver's neighbours who adopted the item before ``ts``.

    With ``cap`` the count is clipped at ``cap`` (the "k+" bucket).
    """
    return (
        shares.join(adoption_times, ["receiver_id", "item_id"], "left")
        .withColumn("close_neighbours", close_neighbour_count(F.col("adopt_times"), cap))
        .drop("adopt_times")
    )


def close_neighbour_count(adopt_times: Column, cap: int | None = None) -> Column:
    """The ``close_neighbours`` of a record at ``ts`` from its ``adopt_times`` array (or null)."""
    count = F.coalesce(F.size(F.filter(adopt_times, lambda t: t < F.col("ts"))), F.lit(0))
    # size(null) is -1 in Spark: the coalesce above only sees null when the array is missing.
    count = F.when(adopt_times.isNull(), F.lit(0)).otherwise(count)
    if cap is not None:
        count = F.least(count, F.lit(cap))
    return count.cast("int")


def close_neighbours_ci(shares_with_close: DataFrame) -> DataFrame:
    """Taocode CI by number of close neighbours, overall (null category) and per top category."""
    overall = conversion_counts(shares_with_close, "close_neighbours").withColumn(
        "top_category", F.lit(None).cast("int")
    )
    per_category = conversion_counts(shares_with_close, "top_category", "close_neighbours")
    return overall.unionByName(per_category).select(
        *[F.col(f.name).cast(f.dataType) for f in CLOSE_NEIGHBOURS.fields]
    )


def tie_ci(features: DataFrame) -> DataFrame:
    """Taocode CI by the record's ``tie_score`` (``common.tie_score``: dear minus cheap items
    the sender shared with this receiver in the weeks before, clipped and scaled to [-1, 1];
    0 without history). Raw: items of senders who share dear ones are dear themselves (E7) and
    dear items convert differently (E1); the specific test of ``specific`` compares within
    items."""
    return conversion_counts(features, "tie_score").select(
        *[F.col(f.name).cast(f.dataType) for f in TIE_CI.fields]
    )
