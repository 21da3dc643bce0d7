"""InfNet shards: one row per purchase query q = (u, p, day) with its 4 weekly diffusion sub-graphs.

    python -m jobs.build_shards --lake LAKE --task infnet [--queries N] [--fanout K] \
        [--obs-weeks 4] [--pred-start YYYY-MM-DD] [--label-hours 24] [--history-len 50] \
        [--seed S]

Paper: "How Powerful are Interest Diffusion on Purchasing Prediction: A Case Study of Taocode",
Sec. 2 (problem), 4.1 (sub-graph construction), 5.1 (prediction datasets). What is built:

* **Queries** (Sec. 5.1): every Taocode record (sender, receiver u, item p, ts) received on one of
  the prediction days that follow the observation weeks is a query (u, p, day); repeated records
  of the same (u, p, day) are one query at the first record's time ``query_ts``. ``--queries N``
  samples at most N queries per day (seeded). Label: u buys p in ``(query_ts, query_ts + H]``
  (H = ``--label-hours``, default 24: "within the time span" of one day). The first
  ``--train-days`` (2) days split at random (seeded hash) 7:3 into train / val; the remaining
  ``--test-days`` (1) day is test.
* **Weekly sub-graphs** (Sec. 4.1): for a query on day D, week k in 0..W-1 covers the days
  ``[D - 7(W-k), D - 7(W-k-1))``, so the last week ends where the query day starts and no edge
  comes from the query day or later. Seeds are u and the senders S_u(p) who shared p with u in
  ``[D - 7W, query_ts]`` (the query's own sender included). In each week's diffusion network
  (share edges of that week, both directions walked) a BFS to depth 2 samples nodes; a hop keeps
  at most ``--fanout`` neighbours per frontier node (the most recently active edges), and the
  manifest counts how often that cap bit. The week's sub-graph is the share edges of that week
  among its sampled nodes. Seeds are in every week's sub-graph, connected or not.
* **Features**, all from strictly before ``query_ts``:
  node (per query, the same in every week): log1p spend per price-index (PI) bin over the last
  ``--history-days`` (365, "the past year"), log1p spend of the last 30 days, whether the node
  bought p before, then the role one-hot (target / seed sender / other);
  edge (per week): the sum of the PI one-hot vectors of the items the pair shared that week
  (sender -> receiver);
  item: PI one-hot and top-category one-hot.
  ``cold`` marks queries whose user bought nothing in the history window (Table 4).
* **Receiver history** (for the session and recommender baselines): u's own records from the
  start of the first observation week up to (not including) ``query_ts``: Taocodes u received
  (kind 0) and sent (kind 1), and u's purchases (kind 2), as ``history_items`` /
  ``history_kinds`` / ``history_ts``, oldest first; only the ``--history-len`` (50) newest.

Everything is DataFrame joins and window functions; the driver only collects a handful of
numbers (PI bin edges, day range, step sizes, manifest counts). How it stays cheap at 100M
records (``benchmarks/infnet_shards.py`` measures it):

* only the weekly partition folders of the days used are read (``within``);
* the fanout cap depends on (day, week, node), not on the query, so neighbours are ranked once
  per frontier node (``cap_neighbours``) and each BFS hop is a plain join;
* adjacency is built only for each hop's frontier: the share records are first filtered on the
  frontier's node ids (a broadcast when small), then copied into the up to three weekly windows
  of their day (``frontier_adjacency``); the edge features likewise only for sampled nodes;
* the levels of the BFS come from one aggregation (first hop to reach a node), and the rows
  map node ids to indices inside each row instead of joining every node and edge with its index;
* reused intermediate results are kept as local checkpoints (``Steps``), which logs their size
  and time.

Shards are Parquet files of at most ``--rows-per-file`` rows committed as ``shards/infnet``; the
manifest is a one-row table ``shards/infnet_manifest`` whose ``json`` column holds counts per
split and label, feature sizes, schema version, fanout and cap counts, the build's wall time
(``build_seconds``) and its steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, fields

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contracts import infnet as contract
from contracts.infnet import (
    HISTORY_KINDS,
    HISTORY_LEN,
    KIND_PURCHASE,
    KIND_RECEIVED,
    KIND_SENT,
    MANIFEST_TABLE,
    ROLE_OTHER,
    ROLE_SEED,
    ROLE_TARGET,
    ROLES,
    SCHEMA_VERSION,
    SHARD_TABLE,
)
from contracts.runs import run_digest
from pipeline.faults import failpoint
from pipeline.lake import Lake
from pipeline.schemas import spark_schema
from pipeline.systems import register
from pipeline.systems.steps import KEEP, Steps

log = logging.getLogger(__name__)

#: One row per query, in the layout ``contracts.infnet.SHARD`` declares.
INFNET_SHARD = spark_schema(contract.SHARD)


@dataclass
class InfNetShardConfig:
    """Options of the InfNet shard builder (see the module docstring)."""

    obs_weeks: int = 4
    train_days: int = 2
    test_days: int = 1
    val_fraction: float = 0.3
    pred_start: str | None = None  # ISO date; None: the last full prediction days of the data
    label_hours: float = 24.0
    history_days: int = 365
    recent_days: int = 30
    history_len: int = HISTORY_LEN  # newest receiver records kept per query
    queries: int | None = None  # per prediction day; None: all
    fanout: int = 20
    pi_bins: int = 10
    seed: int = 0
    rows_per_file: int = 5000
    # Frontiers of at most this many distinct nodes are broadcast to filter the share records;
    # larger ones are joined by shuffling. At 3M the 540k-query build on the 100M world ran out
    # of a 4 GiB driver heap at the edges step; with none broadcast it took 18.4 min.
    broadcast_nodes: int = 1_000_000
    shuffle_partitions: int | None = None  # None: the session's spark.sql.shuffle.partitions

    @property
    def pred_days(self) -> int:
        return self.train_days + self.test_days

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InfNetShardConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in known and v is not None})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = InfNetShardConfig()
    parser.add_argument("--obs-weeks", type=int, default=d.obs_weeks, help="weekly sub-graphs")
    parser.add_argument("--train-days", type=int, default=d.train_days)
    parser.add_argument("--test-days", type=int, default=d.test_days)
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction)
    parser.add_argument("--pred-start", default=None, help="first prediction day (YYYY-MM-DD)")
    parser.add_argument("--label-hours", type=float, default=d.label_hours)
    parser.add_argument("--history-days", type=int, default=d.history_days)
    parser.add_argument("--recent-days", type=int, default=d.recent_days)
    parser.add_argument("--history-len", type=int, default=d.history_len,
                        help="newest receiver records kept per query")
    parser.add_argument("--queries", type=int, default=None, help="max queries per day")
    parser.add_argument("--fanout", type=int, default=d.fanout, help="max neighbours per hop")
    parser.add_argument("--pi-bins", type=int, default=d.pi_bins)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--rows-per-file", type=int, default=d.rows_per_file)
    parser.add_argument("--broadcast-nodes", type=int, default=d.broadcast_nodes,
                        help="largest frontier broadcast to filter the share records")
    parser.add_argument("--shuffle-partitions", type=int, default=None,
                        help="shuffle partitions for this build (AQE coalesces small ones)")


# -- small driver-side facts ---------------------------------------------------------------------


def pi_bin_edges(items: DataFrame, n_bins: int) -> list[float]:
    """Quantile edges of the items' price index (n_bins - 1 numbers)."""
    probs = [i / n_bins for i in range(1, n_bins)]
    edges = items.approxQuantile("price_index", probs, 0.001)
    return sorted(set(float(e) for e in edges))


def prediction_start(shares: DataFrame, cfg: InfNetShardConfig) -> dt.date:
    """The first prediction day: given, or the latest one whose label window the data covers."""
    if cfg.pred_start:
        return dt.date.fromisoformat(cfg.pred_start)
    if "week_start" in shares.columns:  # the last week's files hold the last day
        last_week = shares.agg(F.max("week_start")).first()[0]
        shares = shares.filter(F.col("week_start") == F.lit(last_week))
    last = shares.agg(F.max(F.to_date("ts")).alias("d")).first()["d"]
    if last is None:
        raise ValueError("raw/shares is empty: no queries to build")
    horizon_days = int(-(-cfg.label_hours // 24))
    return last - dt.timedelta(days=cfg.pred_days + horizon_days - 1)


# -- transformations ------------------------------------------------------------------------------


def with_item_bins(items: DataFrame, edges: list[float]) -> DataFrame:
    """items -> (item_id, pi_bin, category): pi_bin counts the edges below the price index."""
    pi_bin = F.lit(0)
    for edge in edges:
        pi_bin = pi_bin + F.when(F.col("price_index") > F.lit(edge), 1).otherwise(0)
    return items.select(
        "item_id",
        pi_bin.cast("int").alias("pi_bin"),
        F.col("top_category").cast("int").alias("category"),
    )


def one_hot(index_col: str, size: int) -> F.Column:
    return F.array(*[(F.col(index_col) == i).cast("float") for i in range(size)])


def select_queries(shares: DataFrame, start: dt.date, cfg: InfNetShardConfig) -> DataFrame:
    """Shares received on the prediction days -> one query per (user, item, day), sampled."""
    day_idx = F.datediff(F.to_date("ts"), F.lit(start))
    queries = (
        shares.withColumn("day_idx", day_idx)
        .filter((F.col("day_idx") >= 0) & (F.col("day_idx") < cfg.pred_days))
        .groupBy(
            F.col("receiver_id").alias("user_id"),
            "item_id",
            F.to_date("ts").alias("query_day"),
            "day_idx",
        )
        .agg(F.min("ts").alias("query_ts"))
        .withColumn("query_id", F.xxhash64("user_id", "item_id", "query_day"))
    )
    if cfg.queries is not None:
        order = Window.partitionBy("day_idx").orderBy(
            F.xxhash64("query_id", F.lit(cfg.seed)), "query_id"
        )
        queries = (
            queries.withColumn("_rank", F.row_number().over(order))
            .filter(F.col("_rank") <= cfg.queries)
            .drop("_rank")
        )
    # A seeded hash, not rand(): the split must not depend on how rows fall into partitions.
    unit = F.pmod(F.xxhash64("query_id", F.lit(cfg.seed + 1)), F.lit(1_000_000)) / 1e6
    split = (
        F.when(F.col("day_idx") >= cfg.train_days, "test")
        .when(unit < 1.0 - cfg.val_fraction, "train")
        .otherwise("val")
    )
    return queries.withColumn("split", split)


def with_labels(queries: DataFrame, purchases: DataFrame, cfg: InfNetShardConfig) -> DataFrame:
    """label = 1 when the user buys the item in (query_ts, query_ts + label_hours]."""
    horizon = F.expr(f"INTERVAL {int(cfg.label_hours * 3600)} SECONDS")
    # The queries are at most the prediction days' records (540k at the paper's scale):
    # broadcast, so the purchases are probed where they lie instead of shuffled.
    q = F.broadcast(queries.select("query_id", "user_id", "item_id", "query_ts")).alias("q")
    p = purchases.alias("p")
    bought = (
        p.join(
            q,
            (F.col("p.user_id") == F.col("q.user_id"))
            & (F.col("p.item_id") == F.col("q.item_id"))
            & (F.col("p.ts") > F.col("q.query_ts"))
            & (F.col("p.ts") <= F.col("q.query_ts") + horizon),
        )
        .select("q.query_id")
        .distinct()
        .withColumn("label", F.lit(1))
    )
    return queries.join(bought, "query_id", "left").fillna(0, subset=["label"])


def observation_days(query_days: list[dt.date], obs_weeks: int) -> list[tuple]:
    """(day, query_day, week) for every day inside one of the query days' observation weeks.

    Week k of query day D covers ``[D - 7(W-k), D - 7(W-k-1))``; a day belongs to up to
    ``len(query_days)`` windows. A few dozen rows: the builder broadcasts them.
    """
    rows = []
    for query_day in query_days:
        for offset in range(1, 7 * obs_weeks + 1):  # 1 = the day before the query day
            week = obs_weeks - 1 - (offset - 1) // 7
            rows.append((query_day - dt.timedelta(days=offset), query_day, week))
    return rows


def share_records(shares: DataFrame, item_bins: DataFrame) -> DataFrame:
    """shares -> (day, src, dst, ts, pi_bin); shares of unknown items are not edges."""
    return shares.join(F.broadcast(item_bins.select("item_id", "pi_bin")), "item_id").select(
        F.to_date("ts").alias("day"),
        F.col("sender_id").alias("src"),
        F.col("receiver_id").alias("dst"),
        "ts",
        "pi_bin",
    )


def weekly_edges(
    records: DataFrame,
    windows: DataFrame,
    keys: DataFrame,
    cfg: InfNetShardConfig,
    broadcast_limit: int = 0,
) -> DataFrame:
    """(query_day, week, src, dst, attr): the week's share edges among the sampled nodes.

    ``keys`` = (query_day, week, node) of the sampled nodes; ``attr`` sums the PI one-hot
    vectors of the items src shared with dst that week. Filtering on the node ids first keeps
    the records that can matter before each is copied into the (up to 3) windows of its day.
    """
    node_ids = node_filter(keys, broadcast_limit)
    counts = [
        F.sum((F.col("pi_bin") == b).cast("float")).alias(f"_b{b}") for b in range(cfg.pi_bins)
    ]
    src_keys = keys.withColumnRenamed("node", "src")
    dst_keys = keys.withColumnRenamed("node", "dst")
    return (
        records.join(node_ids.withColumnRenamed("node", "src"), "src", "left_semi")
        .join(node_ids.withColumnRenamed("node", "dst"), "dst", "left_semi")
        .join(F.broadcast(windows), "day")
        .join(src_keys, ["query_day", "week", "src"], "left_semi")
        .join(dst_keys, ["query_day", "week", "dst"], "left_semi")
        .groupBy("query_day", "week", "src", "dst")
        .agg(*counts)
        .select(
            "query_day",
            "week",
            "src",
            "dst",
            F.array(*[F.col(f"_b{b}") for b in range(cfg.pi_bins)]).alias("attr"),
        )
    )


def node_filter(keys: DataFrame, broadcast_limit: int) -> DataFrame:
    """The distinct node ids of ``keys``, to pre-filter share records on; broadcast when there
    are at most ``broadcast_limit``, so the records are probed in place, not shuffled."""
    ids = keys.select("node").distinct()
    if not broadcast_limit:
        return ids
    ids = ids.localCheckpoint(eager=True, storageLevel=KEEP)
    return F.broadcast(ids) if ids.count() <= broadcast_limit else ids


def frontier_adjacency(
    records: DataFrame, windows: DataFrame, keys: DataFrame, broadcast_limit: int = 0
) -> DataFrame:
    """(query_day, week, node, nbr, last_ts) for the frontier ``keys`` (query_day, week, node).

    Both directions of the week's share edges are walked; ``last_ts`` is the pair's latest share
    that week. Only the frontier's rows are built: the full weekly adjacency of a 100M-record
    world is ~200M rows, the frontier's a small part of it.
    """
    node_ids = node_filter(keys, broadcast_limit)
    fwd = records.select("day", F.col("src").alias("node"), F.col("dst").alias("nbr"), "ts")
    bwd = records.select("day", F.col("dst").alias("node"), F.col("src").alias("nbr"), "ts")
    return (
        fwd.unionByName(bwd)
        .join(node_ids, "node", "left_semi")
        .join(F.broadcast(windows), "day")
        .join(keys, ["query_day", "week", "node"], "left_semi")
        .groupBy("query_day", "week", "node", "nbr")
        .agg(F.max("ts").alias("last_ts"))
    )


def cap_neighbours(adjacency: DataFrame, fanout: int) -> DataFrame:
    """Each (query_day, week, node) keeps its ``fanout`` most recent neighbours (ties: lower id).

    Returns (query_day, week, node, nbr, n_nbrs); ``n_nbrs`` is the neighbour count before the
    cap, so ``n_nbrs > fanout`` marks a node where the cap bit. The cap depends on the node and
    its week only, not on the query, so it is ranked once per node rather than once per query.
    """
    key = ["query_day", "week", "node"]
    by_recency = Window.partitionBy(*key).orderBy(F.desc("last_ts"), "nbr")
    return (
        adjacency.withColumn("_rank", F.row_number().over(by_recency))
        .withColumn("n_nbrs", F.count(F.lit(1)).over(Window.partitionBy(*key)))
        .filter(F.col("_rank") <= fanout)
        .select(*key, "nbr", "n_nbrs")
    )


def seed_nodes(queries: DataFrame, shares: DataFrame, cfg: InfNetShardConfig) -> DataFrame:
    """(query_id, query_day, node, role): the target user and the senders of p to u."""
    window_start = F.date_sub(F.col("q.query_day"), 7 * cfg.obs_weeks)
    q, s = F.broadcast(queries).alias("q"), shares.alias("s")
    senders = q.join(
        s,
        (F.col("s.receiver_id") == F.col("q.user_id"))
        & (F.col("s.item_id") == F.col("q.item_id"))
        & (F.col("s.ts") <= F.col("q.query_ts"))
        & (F.to_date("s.ts") >= window_start)
        & (F.col("s.sender_id") != F.col("q.user_id")),
    ).select(
        "q.query_id", "q.query_day", F.col("s.sender_id").alias("node"),
        F.lit(ROLE_SEED).alias("role"),
    )
    target = queries.select(
        "query_id", "query_day", F.col("user_id").alias("node"), F.lit(ROLE_TARGET).alias("role")
    )
    return target.unionByName(senders).groupBy("query_id", "query_day", "node").agg(
        F.min("role").alias("role")
    )


def expand_hop(frontier: DataFrame, capped: DataFrame) -> DataFrame:
    """One BFS hop: (query_id, query_day, week, node) -> + (nbr, n_nbrs) from ``cap_neighbours``."""
    return frontier.join(capped, ["query_day", "week", "node"]).select(
        "query_id", "query_day", "week", "node", "nbr", "n_nbrs"
    )


def sample_subgraphs(
    seeds: DataFrame,
    records: DataFrame,
    windows: DataFrame,
    weeks: DataFrame,
    fanout: int,
    steps: Steps | None = None,
    broadcast_limit: int = 0,
) -> tuple[DataFrame, DataFrame]:
    """BFS to depth 2 from the seeds in every week.

    Returns (nodes, capped): nodes = (query_id, query_day, week, node, role), seeds in every
    week; capped = (query_id, week, hop, node, n_nbrs) for frontier nodes whose neighbours were cut.
    """
    key = ["query_id", "query_day", "week", "node"]
    frontier_key = ["query_day", "week", "node"]
    steps = steps or Steps(measure=False)

    def reached(hop: DataFrame, level: int) -> DataFrame:
        return hop.select(
            "query_id", "query_day", "week", F.col("nbr").alias("node"),
            F.lit(ROLE_OTHER).alias("role"), F.lit(level).alias("level"),
        )

    def first_reached(df: DataFrame) -> DataFrame:
        # One aggregation instead of distinct + anti-joins: a node's level is the hop that
        # reached it first, its role the seed role if it has one.
        return df.groupBy(*key).agg(F.min("role").alias("role"), F.min("level").alias("level"))

    def cut(frontier: DataFrame, capped_adjacency: DataFrame, hop: int) -> DataFrame:
        # Frontier nodes whose neighbours the fanout cut, without widening to the hop's rows.
        bitten = (
            capped_adjacency.filter(F.col("n_nbrs") > fanout)
            .select(*frontier_key, "n_nbrs")
            .distinct()
        )
        return frontier.select(*key).join(bitten, frontier_key).select(
            "query_id", "week", F.lit(hop).alias("hop"), "node", "n_nbrs"
        )

    level0 = steps(
        "seeds x weeks",
        seeds.crossJoin(F.broadcast(weeks)).withColumn("level", F.lit(0)),
    )
    keys0 = steps("frontier 1", level0.select(*frontier_key).distinct())
    capped0 = steps(
        "adjacency 1",
        cap_neighbours(frontier_adjacency(records, windows, keys0, broadcast_limit), fanout),
    )
    hop1 = expand_hop(level0.select(*key), capped0)
    upto1 = steps(
        "level 1",
        first_reached(level0.select(*key, "role", "level").unionByName(reached(hop1, 1))),
    )
    level1 = upto1.filter(F.col("level") == 1).select(*key)
    keys1 = steps("frontier 2", level1.select(*frontier_key).distinct())
    capped1 = steps(
        "adjacency 2",
        cap_neighbours(frontier_adjacency(records, windows, keys1, broadcast_limit), fanout),
    )
    hop2 = expand_hop(level1, capped1)
    nodes = first_reached(upto1.unionByName(reached(hop2, 2))).select(*key, "role")
    capped = cut(level0, capped0, 1).unionByName(cut(level1, capped1, 2)).distinct()
    return nodes, capped


def node_features(
    query_nodes: DataFrame,
    purchases: DataFrame,
    item_bins: DataFrame,
    cfg: InfNetShardConfig,
) -> DataFrame:
    """(query_id, node, ...) -> + x: purchase history strictly before query_ts, then role one-hot.

    x = [log1p spend per PI bin over history_days, log1p spend over recent_days,
         bought the query item before, one-hot role]; also ``any_purchase`` for ``cold``.
    """
    qn = query_nodes.alias("qn")
    p = purchases.join(F.broadcast(item_bins.select("item_id", "pi_bin")), "item_id").alias("p")
    history = F.expr(f"INTERVAL {cfg.history_days} DAYS")
    recent_start = F.col("qn.query_ts") - F.expr(f"INTERVAL {cfg.recent_days} DAYS")
    # A left join and one aggregation: nodes without purchases keep a row with zero spend.
    joined = qn.join(
        p,
        (F.col("p.user_id") == F.col("qn.node"))
        & (F.col("p.ts") < F.col("qn.query_ts"))
        & (F.col("p.ts") >= F.col("qn.query_ts") - history),
        "left",
    )
    spend = [
        F.sum(F.when(F.col("p.pi_bin") == b, F.col("p.amount")).otherwise(0.0)).alias(f"_s{b}")
        for b in range(cfg.pi_bins)
    ]
    filled = joined.groupBy("qn.query_id", "qn.node", "qn.role").agg(
        *spend,
        F.sum(F.when(F.col("p.ts") >= recent_start, F.col("p.amount")).otherwise(0.0)).alias(
            "_recent"
        ),
        F.coalesce(
            F.max((F.col("p.item_id") == F.col("qn.item_id")).cast("float")), F.lit(0.0)
        ).alias("_bought_p"),
        (F.count("p.user_id") > 0).alias("any_purchase"),
    )
    parts = [F.log1p(F.col(f"_s{b}")).cast("float") for b in range(cfg.pi_bins)]
    parts += [F.log1p(F.col("_recent")).cast("float"), F.col("_bought_p").cast("float")]
    parts += [(F.col("role") == r).cast("float") for r in range(len(ROLES))]
    return filled.withColumn("x", F.array(*parts)).drop(
        *[f"_s{b}" for b in range(cfg.pi_bins)], "_recent", "_bought_p"
    )


def receiver_history(
    queries: DataFrame, shares: DataFrame, purchases: DataFrame, cfg: InfNetShardConfig
) -> DataFrame:
    """(query_id, history_items, history_kinds, history_ts): the target user's own records.

    The records of u = ``user_id`` from the first observation week's start (``query_day - 7W``)
    to strictly before ``query_ts``: shares u received (``KIND_RECEIVED``) or sent
    (``KIND_SENT``) and u's purchases (``KIND_PURCHASE``). The ``history_len`` newest are kept
    (ties broken by kind, then item id), oldest first. Queries without records get no row;
    ``assemble`` gives them empty lists.
    """
    def records(df: DataFrame, user: str, kind: int) -> DataFrame:
        return df.select(F.col(user).alias("user"), "item_id", "ts", F.lit(kind).alias("kind"))

    events = (
        records(shares, "receiver_id", KIND_RECEIVED)
        .unionByName(records(shares, "sender_id", KIND_SENT))
        .unionByName(records(purchases, "user_id", KIND_PURCHASE))
        .alias("e")
    )
    # as ``with_labels``: the queries are few, so the records are probed where they lie
    q = F.broadcast(queries.select("query_id", "user_id", "query_day", "query_ts")).alias("q")
    window_start = F.date_sub(F.col("q.query_day"), 7 * cfg.obs_weeks)
    newest = Window.partitionBy("query_id").orderBy(
        F.desc("ts"), F.desc("kind"), F.desc("item_id")
    )
    kept = (
        events.join(
            q,
            (F.col("e.user") == F.col("q.user_id"))
            & (F.col("e.ts") < F.col("q.query_ts"))
            & (F.to_date("e.ts") >= window_start),
        )
        .select("q.query_id", "e.item_id", "e.ts", "e.kind")
        .withColumn("_rank", F.row_number().over(newest))
        .filter(F.col("_rank") <= cfg.history_len)
    )
    return (
        kept.groupBy("query_id")
        .agg(F.sort_array(F.collect_list(F.struct("ts", "kind", "item_id"))).alias("_h"))
        .select(
            "query_id",
            F.col("_h.item_id").alias("history_items"),
            F.col("_h.kind").cast("array<int>").alias("history_kinds"),
            F.col("_h.ts").alias("history_ts"),
        )
    )


def node_dim(cfg: InfNetShardConfig) -> int:
    return cfg.pi_bins + 2 + len(ROLES)


def assemble(
    queries: DataFrame,
    nodes: DataFrame,
    edges: DataFrame,
    purchases: DataFrame,
    item_bins: DataFrame,
    capped: DataFrame,
    history: DataFrame,
    n_categories: int,
    cfg: InfNetShardConfig,
) -> DataFrame:
    """Nodes, edges, features and receiver histories -> one row per query in the
    ``INFNET_SHARD`` layout.

    Node indices are positions in the query's node list sorted by (role, node): index 0 is the
    target (role 0, unique). Weeks and edges are collected with node ids and mapped to indices
    inside each row, which spares joining every node and edge row with its index.
    """
    query_nodes = (
        nodes.groupBy("query_id", "node")
        .agg(F.min("role").alias("role"))
        .join(F.broadcast(queries.select("query_id", "query_ts", "item_id")), "query_id")
    )
    featured = node_features(query_nodes, purchases, item_bins, cfg)
    node_rows = featured.groupBy("query_id").agg(
        F.sort_array(F.collect_list(F.struct("role", "node", "x"))).alias("_n"),
        F.max(F.when(F.col("role") == ROLE_TARGET, F.col("any_purchase"))).alias("_warm"),
    ).select(
        "query_id",
        F.col("_n.node").alias("node_ids"),
        F.col("_n.role").cast("array<int>").alias("node_role"),
        F.col("_n.x").alias("node_x"),
        (~F.coalesce(F.col("_warm"), F.lit(False))).alias("cold"),
    )

    week_nodes = nodes.groupBy("query_id", "week").agg(F.collect_list("node").alias("ids"))
    src = nodes.select("query_id", "query_day", "week", F.col("node").alias("src"))
    dst = nodes.select("query_id", "week", F.col("node").alias("dst"))
    week_edges = (
        src.join(edges, ["query_day", "week", "src"])
        .join(dst, ["query_id", "week", "dst"])
        .groupBy("query_id", "week")
        .agg(F.collect_list(F.struct("src", "dst", "attr")).alias("pairs"))
    )
    no_pairs = F.array().cast("array<struct<src:bigint,dst:bigint,attr:array<float>>>")
    raw_weeks = (
        week_nodes.join(week_edges, ["query_id", "week"], "left")
        .groupBy("query_id")
        .agg(
            F.collect_list(
                F.struct("week", "ids", F.coalesce("pairs", no_pairs).alias("pairs"))
            ).alias("_w")
        )
    )

    def index(node: F.Column) -> F.Column:
        return (F.array_position(F.col("node_ids"), node) - 1).cast("int")

    def week_struct(w: F.Column) -> F.Column:
        pairs = F.sort_array(
            F.transform(
                w["pairs"],
                lambda e: F.struct(
                    index(e["src"]).alias("s"), index(e["dst"]).alias("d"), e["attr"].alias("a")
                ),
            )
        )
        return F.struct(
            w["week"].cast("int").alias("week"),
            F.sort_array(F.transform(w["ids"], index)).alias("nodes"),
            pairs["s"].alias("edge_src"),
            pairs["d"].alias("edge_dst"),
            pairs["a"].alias("edge_attr"),
        )

    capped_per_query = capped.groupBy("query_id").agg(F.count(F.lit(1)).alias("fanout_capped"))
    item_x = F.concat(one_hot("pi_bin", cfg.pi_bins), one_hot("category", n_categories))
    return (
        queries.join(F.broadcast(item_bins), "item_id")
        .withColumn("item_x", item_x)
        .join(node_rows, "query_id")
        .join(raw_weeks, "query_id")
        .withColumn("weeks", F.sort_array(F.transform("_w", week_struct)))
        .join(capped_per_query, "query_id", "left")
        .fillna(0, subset=["fanout_capped"])
        .join(history, "query_id", "left")
        .withColumn("history_items",
                    F.coalesce("history_items", F.array().cast("array<bigint>")))
        .withColumn("history_kinds", F.coalesce("history_kinds", F.array().cast("array<int>")))
        .withColumn("history_ts", F.coalesce("history_ts", F.array().cast("array<timestamp>")))
        .select(
            *[
                F.col(f.name).cast(f.dataType).alias(f.name)
                for f in INFNET_SHARD.fields
            ]
        )
    )


def within(df: DataFrame, start: dt.datetime, end: dt.datetime) -> DataFrame:
    """Rows with ``start <= ts < end``. Raw tables are partitioned by ``week_start`` (the Monday
    of ``ts``'s week, as ingest and the world builder write it): filtering on it as well lets
    Spark skip the other weeks' files instead of reading the whole table."""
    rows = df.filter((F.col("ts") >= F.lit(start)) & (F.col("ts") < F.lit(end)))
    if "week_start" in df.columns:
        first_monday = start.date() - dt.timedelta(days=start.weekday())
        rows = rows.filter(
            (F.col("week_start") >= F.lit(first_monday))
            & (F.col("week_start") <= F.lit(end.date()))
        )
    return rows


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def build_infnet_shards(
    spark: SparkSession,
    shares: DataFrame,
    purchases: DataFrame,
    items: DataFrame,
    cfg: InfNetShardConfig,
    steps: Steps | None = None,
) -> tuple[DataFrame, DataFrame, dict]:
    """Raw tables -> (shard rows, capped frontier nodes, facts for the manifest)."""
    steps = steps or Steps(measure=False)
    if cfg.shuffle_partitions:
        spark.conf.set("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
    if cfg.obs_weeks < 1 or cfg.fanout < 1 or cfg.pi_bins < 2 or cfg.history_len < 0:
        raise ValueError(
            f"obs_weeks and fanout must be >= 1, pi_bins >= 2, history_len >= 0: {cfg}"
        )
    edges_pi = pi_bin_edges(items, cfg.pi_bins)
    n_categories = int(items.agg(F.max("top_category")).first()[0]) + 1
    item_bins = with_item_bins(items, edges_pi).cache()
    start = prediction_start(shares, cfg)
    query_days = [start + dt.timedelta(days=i) for i in range(cfg.pred_days)]
    windows = spark.createDataFrame(
        observation_days(query_days, cfg.obs_weeks),
        "day date, query_day date, week int",
    )
    weeks = spark.range(cfg.obs_weeks).select(F.col("id").cast("int").alias("week"))
    window_start = start - dt.timedelta(days=7 * cfg.obs_weeks)
    pred_end = start + dt.timedelta(days=cfg.pred_days)
    # Each read touches only its days' weekly files (see ``within``); the share records that the
    # BFS and the edges scan three times are kept, the rest is read where it is used.
    columns = ["sender_id", "receiver_id", "item_id", "ts"]
    recent_shares = within(shares, _midnight(window_start), _midnight(pred_end)).select(*columns)
    pred_shares = within(shares, _midnight(start), _midnight(pred_end)).select(*columns)
    history_start = window_start - dt.timedelta(days=cfg.history_days)
    label_end = _midnight(pred_end) + dt.timedelta(hours=cfg.label_hours)
    purchases = within(
        purchases, _midnight(history_start), label_end + dt.timedelta(microseconds=1)
    ).select("user_id", "item_id", "ts", "amount")
    # Edges come from the days before the last query day; each record once, with its PI bin.
    edge_shares = within(shares, _midnight(window_start), _midnight(query_days[-1]))
    records = steps("share records", share_records(edge_shares.select(*columns), item_bins))

    queries = steps("queries", with_labels(select_queries(pred_shares, start, cfg), purchases, cfg))
    seeds = seed_nodes(queries, recent_shares, cfg)
    nodes, capped = sample_subgraphs(
        seeds, records, windows, weeks, cfg.fanout, steps, cfg.broadcast_nodes
    )
    nodes = steps("nodes", nodes)
    capped = steps("capped", capped)
    node_keys = steps("sampled nodes", nodes.select("query_day", "week", "node").distinct())
    edges = steps(
        "edges", weekly_edges(records, windows, node_keys, cfg, cfg.broadcast_nodes)
    )
    history = receiver_history(queries, recent_shares, purchases, cfg)
    rows = assemble(
        queries, nodes, edges, purchases, item_bins, capped, history, n_categories, cfg
    )
    facts = {
        "pi_bin_edges": edges_pi,
        "n_categories": n_categories,
        "pred_start": start.isoformat(),
        "obs_start": window_start.isoformat(),
    }
    return rows, capped, facts


def manifest(shards: DataFrame, capped: DataFrame, facts: dict, cfg: InfNetShardConfig) -> dict:
    """Counts per split and label, feature sizes, fanout and how often it bit."""
    counts: dict[str, dict[str, int]] = {}
    for row in shards.groupBy("split", "label").count().collect():  # at most 6 rows
        counts.setdefault(row["split"], {})[str(row["label"])] = row["count"]
    sizes = shards.agg(
        F.count(F.lit(1)).alias("queries"),
        F.avg(F.size("node_ids")).alias("mean_nodes"),
        F.max(F.size("node_ids")).alias("max_nodes"),
        F.avg(F.aggregate("weeks", F.lit(0), lambda acc, w: acc + F.size(w["edge_src"]))).alias(
            "mean_edges"
        ),
        F.sum((F.col("fanout_capped") > 0).cast("int")).alias("queries_capped"),
        F.max(F.array_max("node_ids")).alias("max_user_id"),
        F.max("item_id").alias("max_item_id"),
    ).first()
    cap = capped.groupBy("hop").agg(F.count(F.lit(1)).alias("n"), F.max("n_nbrs").alias("max"))
    cap_by_hop = {str(r["hop"]): {"capped_nodes": r["n"], "max_neighbours": r["max"]}
                  for r in cap.collect()}
    n_queries = int(sizes["queries"] or 0)
    return {
        "schema_version": SCHEMA_VERSION,
        "task": "infnet",
        "counts": counts,
        "queries": n_queries,
        "node_dim": node_dim(cfg),
        "edge_dim": cfg.pi_bins,
        "item_dim": cfg.pi_bins + facts["n_categories"],
        "num_weeks": cfg.obs_weeks,
        "node_feature_names": [f"log1p_spend_pi{b}" for b in range(cfg.pi_bins)]
        + ["log1p_spend_recent", "bought_item_before"]
        + [f"role_{r}" for r in ROLES],
        "max_user_id": int(sizes["max_user_id"] or 0),
        "max_item_id": int(sizes["max_item_id"] or 0),
        "history_len": cfg.history_len,
        "history_kinds": list(HISTORY_KINDS),
        "mean_nodes": float(sizes["mean_nodes"] or 0.0),
        "max_nodes": int(sizes["max_nodes"] or 0),
        "mean_edges": float(sizes["mean_edges"] or 0.0),
        "fanout": cfg.fanout,
        "fanout_bites": {
            "queries_capped": int(sizes["queries_capped"] or 0),
            "fraction_of_queries": (int(sizes["queries_capped"] or 0) / n_queries)
            if n_queries else 0.0,
            "by_hop": cap_by_hop,
        },
        "config": asdict(cfg),
        **facts,
    }


@register("infnet", arguments=add_arguments)
def build(spark: SparkSession, lake: Lake, args: argparse.Namespace) -> dict:
    cfg = InfNetShardConfig.from_args(args)
    # the raw tables' versions too: shards of a regenerated world are new shards
    versions = {t: lake.version("raw", t) for t in ("shares", "purchases", "items")}
    run_id = args.run_id or run_digest({"config": asdict(cfg), "raw": versions})
    app_id = f"build_shards-infnet-{run_id}"
    started = time.perf_counter()
    steps = Steps()
    rows, capped, facts = build_infnet_shards(
        spark,
        lake.read(spark, "raw", "shares"),
        lake.read(spark, "raw", "purchases"),
        lake.read(spark, "raw", "items"),
        cfg,
        steps,
    )
    result = lake.write(
        rows,
        "shards",
        SHARD_TABLE,
        mode="overwrite",
        app_id=app_id,
        expected_schema=INFNET_SHARD,
        max_records_per_file=cfg.rows_per_file,
    )
    build_seconds = time.perf_counter() - started
    failpoint("build_shards.shards-committed", spark)  # shards committed, manifest not yet
    written = lake.read(spark, "shards", SHARD_TABLE)
    info = manifest(written, capped, facts, cfg)
    info["run_id"] = run_id
    # Wall time of the build and the shard write (not the manifest), for the benchmarks.
    info["build_seconds"] = round(build_seconds, 1)
    info["steps"] = steps.record
    lake.write_arrow(
        pa.table({"schema_version": [SCHEMA_VERSION], "run_id": [run_id],
                  "json": [json.dumps(info, default=str)]}),
        "shards",
        MANIFEST_TABLE,
        mode="overwrite",
        app_id=app_id,
    )
    return {"shards": str(result), **info}
