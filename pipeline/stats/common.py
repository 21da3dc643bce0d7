"""Building blocks shared by the statistic families: weeks, conversion flags, adopters.

Every function is a pure ``DataFrame -> DataFrame`` transformation. Two habits keep the joins
bounded on hub users and popular items:

* Per-(user, item) timestamps are first collapsed into one sorted array per key, so a record
  meets its key's purchases (or receipts) in a 1:1 join and a higher-order array function
  answers "is there one in [t, t + window)?" -- no record x purchase explosion.
* Neighbour joins start from the (item, adopter) pairs, the rare side, never from all edges.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

SECONDS_PER_DAY = 86_400


def world_origin(*frames: DataFrame):
    """The world's first Monday: the smallest ``week_start`` over the given raw tables.

    Returns a ``datetime.date`` (a single scalar aggregate per table goes to the driver).
    """
    starts = []
    for df in frames:
        row = df.agg(F.min("week_start").alias("m")).first()
        if row is not None and row["m"] is not None:
            starts.append(row["m"])
    if not starts:
        raise ValueError("no week_start in any raw table: the world is empty")
    return min(starts)


# What a week is (Monday to Monday UTC from the world's start): ``pipeline/world/config.py``.
def with_week(df: DataFrame, origin, ts_col: str = "ts", name: str = "week") -> DataFrame:
    """Add ``week = floor(datediff(ts, origin) / 7) + 1`` (week 1 starts on the first Monday)."""
    days = F.datediff(F.to_date(F.col(ts_col)), F.lit(origin))
    return df.withColumn(name, (F.floor(days / 7) + 1).cast("int"))


def timestamps_by_key(df: DataFrame, user_col: str, ts_col: str = "ts") -> DataFrame:
    """(user_id, item_id, times): every key's timestamps as one sorted array."""
    return (
        df.groupBy(F.col(user_col).alias("user_id"), "item_id")
        .agg(F.array_sort(F.collect_list(F.col(ts_col))).alias("times"))
    )


def with_conversion(
    records: DataFrame,
    purchases: DataFrame,
    user_col: str,
    window_days: float,
    attribution: str = "last_touch",
) -> DataFrame:
    """Add ``converted``: the record's user bought its item within ``window_days`` after it.

    Args:
        records: rows with ``user_col``, ``item_id`` and ``ts`` (browses or share records).
        purchases: raw purchases (``user_id``, ``item_id``, ``ts``).
        user_col: whose purchase counts (``user_id`` for browses, ``receiver_id`` for shares).
        window_days: the conversion window; a purchase at the record's own instant counts.
        attribution: ``"last_touch"`` (default) closes a record's window early at the next
            record of the same (user, item), so one purchase converts one record, the last
            before it; ``"any"`` counts every record with a purchase in its window. Why: a
            user who receives the same item five times and buys once would otherwise convert
            up to five records, which inflates the CI of users who receive an item often
            (popular receivers, dense neighbourhoods) and fakes structural effects.
    """
    _check_attribution(attribution)
    bought = timestamps_by_key(purchases, "user_id").withColumnRenamed("times", "_bought")
    joined = records.join(
        bought.withColumnRenamed("user_id", user_col), on=[user_col, "item_id"], how="left"
    )
    if attribution == "last_touch":
        own = timestamps_by_key(records.select(user_col, "item_id", "ts"), user_col)
        joined = joined.join(
            own.withColumnRenamed("user_id", user_col).withColumnRenamed("times", "_own"),
            on=[user_col, "item_id"],
            how="left",
        )
    converted = converted_flag(F.col("_bought"), F.col("_own"), window_days, attribution)
    return joined.withColumn("converted", converted).drop("_bought", "_own")


def _check_attribution(attribution: str) -> None:
    if attribution not in ("last_touch", "any"):
        raise ValueError(f"attribution must be 'last_touch' or 'any', got {attribution!r}")


def converted_flag(bought: Column, own: Column, window_days: float, attribution: str) -> Column:
    """The ``converted`` flag of a record at ``ts`` (see ``with_conversion``).

    Args:
        bought: the sorted purchase times of the record's (user, item), or null.
        own: the sorted times of the (user, item)'s own records (read for last-touch only).
    """
    _check_attribution(attribution)
    start = F.col("ts")
    end = start + F.make_dt_interval(secs=F.lit(float(window_days * SECONDS_PER_DAY)))
    if attribution == "last_touch":
        following = F.array_min(F.filter(own, lambda t: t > start))
        end = F.when(following.isNotNull() & (following < end), following).otherwise(end)
    return F.coalesce(F.exists(bought, lambda p: (p >= start) & (p < end)), F.lit(False))


def conversion_counts(df: DataFrame, *keys: str) -> DataFrame:
    """(keys..., records, conversions, ci) from rows carrying ``converted``."""
    return (
        df.groupBy(*keys)
        .agg(
            F.count(F.lit(1)).alias("records"),
            F.sum(F.col("converted").cast("long")).alias("conversions"),
        )
        .withColumn("ci", F.col("conversions") / F.col("records"))
    )


def adopters(shares: DataFrame, purchases: DataFrame) -> DataFrame:
    """(user_id, item_id, received_ts, adopt_ts): users who received an item and then bought it.

    ``received_ts`` is the user's first receipt of the item, ``adopt_ts`` the first purchase at
    or after it. Users who bought without ever receiving are not adopters.
    """
    first_receipt = shares.groupBy(F.col("receiver_id").alias("user_id"), "item_id").agg(
        F.min("ts").alias("received_ts")
    )
    return (
        first_receipt.join(purchases.select("user_id", "item_id", "ts"), ["user_id", "item_id"])
        .where(F.col("ts") >= F.col("received_ts"))
        .groupBy("user_id", "item_id", "received_ts")
        .agg(F.min("ts").alias("adopt_ts"))
    )


def key_times(shares: DataFrame, purchases: DataFrame) -> DataFrame:
    """(user_id, item_id, received, bought): per (user, item), the sorted times the user received
    the item and the sorted times the user bought it (null when none).

    One table answers every per-(user, item) question of the share-record statistics: the
    receiver's conversion and last-touch window, the sender's earlier receipts and purchases
    (2-hop), and who adopted (``adopters_from_times``). Computed once and joined 1:1.
    """
    received = timestamps_by_key(shares, "receiver_id").withColumnRenamed("times", "received")
    bought = timestamps_by_key(purchases, "user_id").withColumnRenamed("times", "bought")
    return received.join(bought, ["user_id", "item_id"], "full")


def adopters_from_times(times: DataFrame) -> DataFrame:
    """``adopters`` from a ``key_times`` table, without another pass over the raw records."""
    first = F.element_at(F.col("received"), 1)  # the arrays are sorted: the first receipt
    return (
        times.where(F.col("received").isNotNull() & F.col("bought").isNotNull())
        .select(
            "user_id",
            "item_id",
            first.alias("received_ts"),
            F.array_min(F.filter(F.col("bought"), lambda b: b >= first)).alias("adopt_ts"),
        )
        .where(F.col("adopt_ts").isNotNull())
    )


def neighbour_pairs(shares: DataFrame) -> DataFrame:
    """(user_id, neighbour_id): both directions of every share edge, merged over all time.

    ``shares`` may be raw share records or their ``first_edges`` (fewer rows, same result).
    """
    edges = shares.select(
        F.col("sender_id").alias("user_id"), F.col("receiver_id").alias("neighbour_id")
    )
    reverse = edges.select(
        F.col("neighbour_id").alias("user_id"), F.col("user_id").alias("neighbour_id")
    )
    return edges.unionByName(reverse).where(F.col("user_id") != F.col("neighbour_id")).distinct()


def first_edges(shares: DataFrame) -> DataFrame:
    """(sender_id, receiver_id, first_week): the distinct directed edges (self-shares left out)
    with the week each was first used (``shares`` carries ``week``).

    Degrees, neighbour pairs and prior degrees all derive from it (``user_degrees_from_edges``,
    ``neighbour_pairs(edges)``, ``with_prior_degrees(..., edges)``).
    """
    return (
        shares.where(F.col("sender_id") != F.col("receiver_id"))
        .groupBy("sender_id", "receiver_id")
        .agg(F.min("week").alias("first_week"))
    )


def user_degrees_from_edges(edges: DataFrame) -> DataFrame:
    """``user_degrees`` from a ``first_edges`` table (already distinct, no self-edges)."""
    return _degrees(edges)


def user_degrees(shares: DataFrame) -> DataFrame:
    """(user_id, in_degree, out_degree, degree): distinct in- and out-neighbours, and their sum."""
    edges = shares.select("sender_id", "receiver_id").where(
        F.col("sender_id") != F.col("receiver_id")
    ).distinct()
    return _degrees(edges)


def _degrees(edges: DataFrame) -> DataFrame:
    out_deg = edges.groupBy(F.col("sender_id").alias("user_id")).agg(
        F.count(F.lit(1)).alias("out_degree")
    )
    in_deg = edges.groupBy(F.col("receiver_id").alias("user_id")).agg(
        F.count(F.lit(1)).alias("in_degree")
    )
    return (
        in_deg.join(out_deg, "user_id", "full")
        .select(
            "user_id",
            F.coalesce("in_degree", F.lit(0)).cast("long").alias("in_degree"),
            F.coalesce("out_degree", F.lit(0)).cast("long").alias("out_degree"),
        )
        .withColumn("degree", F.col("in_degree") + F.col("out_degree"))
    )


def with_prior_degrees(shares: DataFrame, edges: DataFrame | None = None) -> DataFrame:
    """Add ``sender_prior_degree`` / ``receiver_prior_degree``: degrees from edges first seen in
    weeks before the record's week (``shares`` carries ``week``; ``edges`` is its
    ``first_edges`` table, computed here when not given).

    Why: degrees over the merged graph include edges a user formed *because* of this record
    (a receiver who buys re-shares, gaining out-neighbours), so a merged-graph degree is
    partly an outcome of the conversion it is meant to explain. Prior degrees are not.
    Each user's new edges per week are one short array (``prior_degree_weeks``), so the
    lookup is a 1:1 join and costs at most one element per week, even for hubs.
    """
    return join_prior_degrees(
        shares, prior_degree_weeks(first_edges(shares) if edges is None else edges)
    )


def join_prior_degrees(shares: DataFrame, weeks: DataFrame) -> DataFrame:
    """``with_prior_degrees`` from a ``prior_degree_weeks`` table already built."""
    out = shares
    for role in ("sender", "receiver"):
        out = (
            out.join(weeks.withColumnRenamed("user_id", f"{role}_id"), f"{role}_id", "left")
            .withColumn(f"{role}_prior_degree", prior_degree(F.col("_new_edges")))
            .drop("_new_edges")
        )
    return out


def prior_degree_weeks(edges: DataFrame) -> DataFrame:
    """(user_id, _new_edges): per user, [(week, edges first seen that week)] from ``first_edges``.

    A histogram over weeks, not one element per edge: a hub with 10^5 neighbours and 10^5
    records would otherwise filter a 10^5-element array for each of its records.
    """
    ends = edges.select(F.col("sender_id").alias("user_id"), "first_week").unionByName(
        edges.select(F.col("receiver_id").alias("user_id"), "first_week")
    )
    return (
        ends.groupBy("user_id", "first_week")
        .agg(F.count(F.lit(1)).alias("n"))
        .groupBy("user_id")
        .agg(
            F.collect_list(F.struct(F.col("first_week").alias("week"), "n")).alias("_new_edges")
        )
    )


def prior_degree(new_edges: Column) -> Column:
    """Edges first seen before the record's ``week``, from a ``prior_degree_weeks`` array."""
    earlier = F.filter(new_edges, lambda e: e["week"] < F.col("week"))
    total = F.aggregate(earlier, F.lit(0).cast("long"), lambda acc, e: acc + e["n"])
    return F.coalesce(total, F.lit(0).cast("long"))


# A tie's price history (E9): what a sender shared with a receiver in the weeks before.
DEAR_PI = 0.5  # an item with price index >= DEAR_PI is "dear", below it "cheap"
TIE_WEEKS = 4  # the weeks before a record's week that its tie history covers
TIE_CAP = 3  # |dear - cheap| is clipped here; tie_score = clipped / TIE_CAP in [-1, 1]


def tie_history(shares: DataFrame, weeks: int = TIE_WEEKS) -> DataFrame:
    """(sender_id, receiver_id, week, tie_dear, tie_cheap): per directed pair and week w, how
    many of the pair's share records in weeks w - ``weeks`` .. w - 1 carried a dear and a cheap
    item (``shares`` has sender_id, receiver_id, week and price_index).

    Only (pair, week) rows with some history exist: join it ``left`` on (sender_id,
    receiver_id, week) and read a missing row as no history (``tie_score``). Each (pair,
    week) of records is spread to the ``weeks`` weeks it informs, so the join is 1:1 and
    costs ``weeks`` rows per active (pair, week), however often the pair shares.
    """
    dear = (F.col("price_index") >= DEAR_PI).cast("long")
    per_week = (
        shares.where(F.col("sender_id") != F.col("receiver_id"))
        .groupBy("sender_id", "receiver_id", "week")
        .agg(F.sum(dear).alias("d"), F.sum(1 - dear).alias("c"))
    )
    return (
        per_week.withColumn("week", F.explode(F.sequence(
            F.col("week") + 1, F.col("week") + F.lit(weeks))))
        .groupBy("sender_id", "receiver_id", "week")
        .agg(F.sum("d").alias("tie_dear"), F.sum("c").alias("tie_cheap"))
    )


def tie_score(dear: Column, cheap: Column) -> Column:
    """clip(dear - cheap, -TIE_CAP, TIE_CAP) / TIE_CAP; 0 without history (null counts)."""
    diff = F.coalesce(dear, F.lit(0)) - F.coalesce(cheap, F.lit(0))
    clipped = F.greatest(F.lit(-TIE_CAP), F.least(F.lit(TIE_CAP), diff))
    return (clipped / F.lit(float(TIE_CAP))).cast("double")


def with_tie_score(shares: DataFrame, ties: DataFrame, name: str = "tie_score") -> DataFrame:
    """Add ``name``: the ``tie_score`` of each record's (sender, receiver) pair in the weeks
    before its ``week``, from a ``tie_history`` table."""
    return (
        shares.join(ties, ["sender_id", "receiver_id", "week"], "left")
        .withColumn(name, tie_score(F.col("tie_dear"), F.col("tie_cheap")))
        .drop("tie_dear", "tie_cheap")
    )
