"""RiseNet shards: per (item, window), the item's weekly diffusion graphs and its label.

    python -m jobs.build_shards --lake LAKE --task risenet [--min-records 5] [--max-edges 200]

A window starting at world week ``w0`` observes weeks ``w0 .. w0+3`` and is labelled by the
next two (``pipeline.stats.rising.rising_stars``: the same function, defaults and cut-offs as
``jobs.observe``'s ``rising_stars`` table). The splits follow the paper: windows starting in
weeks 1-3 train, week 5 validates, week 7 tests (``--train-windows``, ``--val-window``,
``--test-window``). An item qualifies for a window by its share records in the observed weeks
alone (``--min-records``).

Each row holds ``--history-weeks`` H weeks (default 6) ending at the last observed week, so a
trainer can read T = 1..H of them; weeks before the world's first are empty. Per week: the
item's price (the lowest amount paid that week, which is the week's unit price unless every
purchase was of two; the list price when nothing sold), sales, share records and scale
(distinct receivers), and the diffusion graph of the week's share records (sender ->
receiver), the earliest ``--max-edges`` of them (``graph_capped`` counts the weeks cut).

User features (``contracts.risenet.USER_FEATURES``) and edge features are computed per window
over the same H weeks, so nothing after the last observed week enters a feature: the leak test
in ``tests/pipeline/systems/risenet`` rebuilds a window from records cut at its end and gets the
same row.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass, fields

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contracts import risenet as contract
from contracts.risenet import MANIFEST_TABLE, SCHEMA_VERSION, SHARD_TABLE
from pipeline.lake import Lake
from pipeline.schemas import spark_schema
from pipeline.stats import rising
from pipeline.stats.common import with_week, world_origin
from pipeline.systems import register
from pipeline.systems.steps import Steps, commit_shards

log = logging.getLogger(__name__)

RISENET_SHARD = spark_schema(contract.SHARD)

BEFORE_WEEKS, AFTER_WEEKS = 4, 2


@dataclass
class RiseNetShardConfig:
    """Options of the RiseNet shard builder (see the module docstring)."""

    train_windows: tuple[int, ...] = (1, 2, 3)
    val_window: int = 5
    test_window: int = 7
    history_weeks: int = 6
    min_records: int = 5
    max_edges: int = 200
    hub_percent: float = 1.0
    before_permille: float = 3.0
    after_permille: float = 1.0
    weeks: int | None = None  # None: the last week holding a record
    rows_per_file: int = 2000

    @property
    def windows(self) -> dict[int, str]:
        out = {w: "train" for w in self.train_windows}
        out[self.val_window] = "val"
        out[self.test_window] = "test"
        return out

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RiseNetShardConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in vars(args).items() if k in known and v is not None}
        if isinstance(values.get("train_windows"), str):
            values["train_windows"] = _weeks(values["train_windows"])
        return cls(**values)


def _weeks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"--train-windows: expected comma-separated weeks, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = RiseNetShardConfig()
    parser.add_argument("--train-windows", default=",".join(map(str, d.train_windows)),
                        help="first weeks of the training windows (comma-separated)")
    parser.add_argument("--val-window", type=int, default=d.val_window)
    parser.add_argument("--test-window", type=int, default=d.test_window)
    parser.add_argument("--history-weeks", type=int, default=d.history_weeks,
                        help="weeks stored per row, ending at the last observed week")
    parser.add_argument("--min-records", type=int, default=d.min_records,
                        help="share records in the observed weeks for an item to qualify")
    parser.add_argument("--max-edges", type=int, default=d.max_edges,
                        help="share records kept per item and week (the earliest)")
    parser.add_argument("--hub-percent", type=float, default=d.hub_percent)
    parser.add_argument("--weeks", type=int, default=None, help="weeks in the world")
    parser.add_argument("--rows-per-file", type=int, default=d.rows_per_file)


def check_config(cfg: RiseNetShardConfig, weeks: int) -> None:
    """Windows must fit the world and not overlap across splits' label periods wrongly."""
    if cfg.history_weeks < 1 or cfg.min_records < 1 or cfg.max_edges < 1:
        raise ValueError(
            f"--history-weeks, --min-records and --max-edges must be >= 1: {asdict(cfg)}"
        )
    for w0, split in cfg.windows.items():
        if w0 < 1 or w0 + BEFORE_WEEKS + AFTER_WEEKS - 1 > weeks:
            raise ValueError(
                f"the {split} window starting in week {w0} needs weeks {w0}.."
                f"{w0 + BEFORE_WEEKS + AFTER_WEEKS - 1}; the world has weeks 1..{weeks}"
            )
    if len(cfg.windows) != len(cfg.train_windows) + 2:
        raise ValueError(f"a window is in two splits: {asdict(cfg)}")


# -- the pieces ---------------------------------------------------------------------------------


def spans(spark: SparkSession, cfg: RiseNetShardConfig) -> DataFrame:
    """(window_start, split, week, pos): the H stored weeks of each window, pos 0..H-1, the last
    one the window's last observed week (weeks may be < 1: before the world)."""
    h = cfg.history_weeks
    rows = [
        (w0, split, w0 + BEFORE_WEEKS - h + p, p)
        for w0, split in sorted(cfg.windows.items())
        for p in range(h)
    ]
    return spark.createDataFrame(rows, "window_start int, split string, week int, pos int")


def forward_flags(shares: DataFrame) -> DataFrame:
    """Share records with ``forward``: the sender had received the same item before."""
    first_in = shares.groupBy(
        F.col("receiver_id").alias("sender_id"), "item_id"
    ).agg(F.min("ts").alias("_first_in"))
    return shares.join(first_in, ["sender_id", "item_id"], "left").withColumn(
        "forward", F.coalesce(F.col("_first_in") < F.col("ts"), F.lit(False))
    ).drop("_first_in")


def capped_edges(shares: DataFrame, max_edges: int) -> DataFrame:
    """The earliest ``max_edges`` share records per (item, week), ``rank`` 1.. by time."""
    order = Window.partitionBy("item_id", "week").orderBy("ts", "sender_id", "receiver_id")
    return shares.withColumn("rank", F.row_number().over(order)).where(
        F.col("rank") <= max_edges
    )


def user_features(
    shares: DataFrame, purchases: DataFrame, users: DataFrame, items: DataFrame,
    window_weeks: DataFrame, cfg: RiseNetShardConfig,
) -> tuple[DataFrame, DataFrame]:
    """Per window, over its stored weeks: ``(window_start, user_id, tier, rates)`` for every
    active user (``rates``: the log1p'ed per-week counts and the hub flag, the features after
    ``category_share`` in ``contracts.risenet.USER_FEATURES``), and ``(window_start, user_id,
    top_category, category_share)`` for users who bought."""
    per = F.lit(float(cfg.history_weeks))
    in_span = shares.join(F.broadcast(window_weeks), "week")
    sent = in_span.groupBy("window_start", F.col("sender_id").alias("user_id")).agg(
        F.count(F.lit(1)).alias("sent"), F.sum(F.col("forward").cast("long")).alias("forwarded")
    )
    received = in_span.groupBy("window_start", F.col("receiver_id").alias("user_id")).agg(
        F.count(F.lit(1)).alias("received")
    )
    bought = (
        purchases.join(F.broadcast(window_weeks), "week")
        .join(items.select("item_id", "top_category"), "item_id")
        .groupBy("window_start", "user_id", "top_category")
        .agg(F.count(F.lit(1)).alias("n"))
    )
    total = bought.groupBy("window_start", "user_id").agg(F.sum("n").alias("purchases"))
    activity = (
        sent.join(received, ["window_start", "user_id"], "full")
        .join(total, ["window_start", "user_id"], "full")
        .fillna(0, subset=["sent", "forwarded", "received", "purchases"])
    )
    hub_cut = rising.hub_threshold(
        activity.where(F.col("sent") > 0).withColumnRenamed("sent", "records_sent"),
        cfg.hub_percent, "window_start",
    )
    base = (
        activity.join(F.broadcast(hub_cut), "window_start", "left")
        .join(users.select("user_id", "consumption_tier"), "user_id", "left")
        .select(
            "window_start", "user_id",
            F.coalesce(F.col("consumption_tier").cast("float"), F.lit(0.0)).alias("tier"),
            F.array(
                F.log1p(F.col("purchases") / per).cast("float"),
                F.log1p(F.col("sent") / per).cast("float"),
                F.log1p(F.col("received") / per).cast("float"),
                F.log1p(F.col("forwarded") / per).cast("float"),
                ((F.col("sent") > 0) & (F.col("sent") >= F.col("threshold"))).cast("float"),
            ).alias("rates"),
        )
    )
    shares_by_cat = bought.join(total, ["window_start", "user_id"]).select(
        "window_start", "user_id", "top_category",
        (F.col("n") / F.col("purchases")).cast("float").alias("category_share"),
    )
    return base, shares_by_cat


def tie_strengths(shares: DataFrame, window_weeks: DataFrame) -> DataFrame:
    """(window_start, sender_id, receiver_id, tie): log1p of the pair's records in the span."""
    return (
        shares.join(F.broadcast(window_weeks), "week")
        .groupBy("window_start", "sender_id", "receiver_id")
        .agg(F.log1p(F.count(F.lit(1))).cast("float").alias("tie"))
    )


def item_weeks(
    weekly: DataFrame, purchases: DataFrame, items: DataFrame
) -> DataFrame:
    """(item_id, week, price, sales, records, scale) from the zero-filled item-week grid."""
    price = purchases.groupBy("item_id", "week").agg(F.min("amount").alias("_paid"))
    return (
        weekly.join(price, ["item_id", "week"], "left")
        .join(items.select("item_id", F.col("price").alias("_list")), "item_id", "left")
        .select(
            "item_id", "week",
            F.coalesce(F.col("_paid"), F.col("_list"), F.lit(0.0)).cast("float").alias("price"),
            "sales", "records", "scale",
        )
    )


def _flat(col: str) -> Column:
    return F.flatten(F.transform(F.col(col), lambda s: s["x"]))


def assemble(
    samples: DataFrame, span: DataFrame, edges: DataFrame,
    ufeat: tuple[DataFrame, DataFrame], ties: DataFrame, per_week: DataFrame, items: DataFrame,
    steps: Steps,
) -> DataFrame:
    """One ``SHARD`` row per sample from its weeks' graphs and features."""
    base, shares_by_cat = ufeat
    sample_weeks = samples.join(F.broadcast(span), "window_start")
    e = (
        edges.join(sample_weeks.select("window_start", "item_id", "week"), ["item_id", "week"])
        .join(ties, ["window_start", "sender_id", "receiver_id"], "left")
    )
    e = steps("sample edges", e)
    nodes = (
        e.select("window_start", "item_id", "week", F.col("sender_id").alias("user_id"))
        .unionByName(e.select("window_start", "item_id", "week",
                              F.col("receiver_id").alias("user_id")))
        .distinct()
        .withColumn("idx", F.row_number().over(
            Window.partitionBy("window_start", "item_id", "week").orderBy("user_id")) - 1)
    )
    cats = items.select("item_id", "top_category")
    zeros = F.array_repeat(F.lit(0.0).cast("float"), len(contract.USER_FEATURES) - 2)
    node_x = (
        nodes.join(cats, "item_id")
        .join(base, ["window_start", "user_id"], "left")
        .join(shares_by_cat, ["window_start", "user_id", "top_category"], "left")
        .withColumn("x", F.concat(
            F.array(F.coalesce(F.col("tier"), F.lit(0.0)).cast("float"),
                    F.coalesce(F.col("category_share"), F.lit(0.0)).cast("float")),
            F.coalesce(F.col("rates"), zeros),
        ))
    )
    node_x = steps("nodes", node_x)
    graph_nodes = node_x.groupBy("window_start", "item_id", "week").agg(
        F.sort_array(F.collect_list(F.struct("idx", "user_id", "x"))).alias("_n")
    ).select(
        "window_start", "item_id", "week",
        F.transform("_n", lambda s: s["user_id"]).alias("users"),
        _flat("_n").alias("user_x"),
    )
    idx = nodes.select("window_start", "item_id", "week", "user_id", "idx")
    graph_edges = (
        e.join(idx.withColumnRenamed("user_id", "sender_id").withColumnRenamed("idx", "src"),
               ["window_start", "item_id", "week", "sender_id"])
        .join(idx.withColumnRenamed("user_id", "receiver_id").withColumnRenamed("idx", "dst"),
              ["window_start", "item_id", "week", "receiver_id"])
        .groupBy("window_start", "item_id", "week")
        .agg(
            F.sort_array(F.collect_list(F.struct(
                "rank", F.col("src").cast("int").alias("src"),
                F.col("dst").cast("int").alias("dst"),
                F.array(F.coalesce(F.col("tie"), F.lit(0.0)).cast("float"),
                        F.col("forward").cast("float")).alias("x"),
            ))).alias("_e"),
            F.max("capped").alias("capped"),
        )
        .select(
            "window_start", "item_id", "week",
            F.transform("_e", lambda s: s["src"]).alias("edge_src"),
            F.transform("_e", lambda s: s["dst"]).alias("edge_dst"),
            _flat("_e").alias("edge_x"),
            "capped",
        )
    )
    empty_i64 = F.array().cast("array<bigint>")
    empty_i32 = F.array().cast("array<int>")
    empty_f = F.array().cast("array<float>")
    weeks = (
        sample_weeks.join(per_week, ["item_id", "week"], "left")
        .join(items.select("item_id", F.col("price").alias("_list")), "item_id", "left")
        .join(graph_nodes, ["window_start", "item_id", "week"], "left")
        .join(graph_edges, ["window_start", "item_id", "week"], "left")
        .select(
            "window_start", "item_id", "pos",
            F.coalesce(F.col("capped"), F.lit(False)).alias("capped"),
            F.struct(
                F.col("week").cast("int").alias("week"),
                F.coalesce(F.col("price"), F.col("_list"), F.lit(0.0)).cast("float")
                .alias("price"),
                F.coalesce(F.col("sales"), F.lit(0)).cast("long").alias("sales"),
                F.coalesce(F.col("records"), F.lit(0)).cast("long").alias("records"),
                F.coalesce(F.col("scale"), F.lit(0)).cast("long").alias("scale"),
                F.coalesce(F.col("users"), empty_i64).alias("users"),
                F.coalesce(F.col("user_x"), empty_f).alias("user_x"),
                F.coalesce(F.col("edge_src"), empty_i32).alias("edge_src"),
                F.coalesce(F.col("edge_dst"), empty_i32).alias("edge_dst"),
                F.coalesce(F.col("edge_x"), empty_f).alias("edge_x"),
            ).alias("w"),
        )
    )
    per_sample = weeks.groupBy("window_start", "item_id").agg(
        F.sort_array(F.collect_list(F.struct("pos", "w"))).alias("_w"),
        F.sum(F.col("capped").cast("int")).alias("graph_capped"),
    )
    return samples.join(per_sample, ["window_start", "item_id"]).select(
        *[
            F.transform("_w", lambda s: s["w"]).alias("weeks") if f.name == "weeks"
            else F.col(f.name).cast(f.dataType)
            for f in RISENET_SHARD.fields
        ]
    )


def build_risenet_shards(
    spark: SparkSession,
    shares: DataFrame,
    purchases: DataFrame,
    items: DataFrame,
    users: DataFrame,
    cfg: RiseNetShardConfig,
    steps: Steps | None = None,
) -> tuple[DataFrame, dict]:
    """Raw tables -> (shard rows, facts for the manifest)."""
    steps = steps or Steps(measure=False)
    origin = world_origin(shares, purchases)
    shares = with_week(shares.select("sender_id", "receiver_id", "item_id", "ts", "week_start"),
                       origin)
    purchases = with_week(purchases.select("user_id", "item_id", "ts", "amount", "week_start"),
                          origin)
    weeks = cfg.weeks or int(
        shares.select("week").unionByName(purchases.select("week")).agg(F.max("week")).first()[0]
    )
    check_config(cfg, weeks)
    shares = shares.where(F.col("week").between(1, weeks))
    purchases = purchases.where(F.col("week").between(1, weeks))
    weekly = steps("item weeks", rising.item_weekly(shares, purchases, items, weeks))
    labels = rising.rising_stars(
        weekly, items, sorted(cfg.windows), BEFORE_WEEKS, AFTER_WEEKS,
        cfg.before_permille, cfg.after_permille,
    )
    split = spark.createDataFrame(sorted(cfg.windows.items()), "window_start int, split string")
    samples = steps("samples", labels.where(F.col("records_before") >= cfg.min_records).join(
        F.broadcast(split), "window_start"
    ).select(
        "item_id", "window_start", "split", F.col("rising").cast("int").alias("label"),
        "top_category", "records_before",
    ))
    span = spans(spark, cfg)
    window_weeks = span.select("window_start", "week")
    flagged = steps("share records", forward_flags(shares))
    capped = capped_edges(flagged, cfg.max_edges)
    over = flagged.groupBy("item_id", "week").agg(
        (F.count(F.lit(1)) > cfg.max_edges).alias("capped")
    )
    edges = capped.join(over, ["item_id", "week"]).select(
        "item_id", "week", "sender_id", "receiver_id", "rank", "forward", "capped"
    )
    base, by_cat = user_features(flagged, purchases, users, items, window_weeks, cfg)
    ufeat = (steps("user features", base), steps("category shares", by_cat))
    ties = tie_strengths(flagged, window_weeks)
    per_week = item_weeks(weekly, purchases, items)
    rows = assemble(samples, span.select("window_start", "week", "pos"), edges, ufeat, ties,
                    per_week, items, steps)
    facts = {
        "origin": origin.isoformat(),
        "weeks": weeks,
        "top_categories": int(items.agg(F.max("top_category")).first()[0]) + 1,
    }
    return rows, facts


def manifest(shards: DataFrame, facts: dict, cfg: RiseNetShardConfig) -> dict:
    """Counts per split, window and label; graph sizes; the feature names."""
    counts: dict[str, dict[str, int]] = {}
    windows: dict[str, dict[str, int]] = {}
    for row in shards.groupBy("split", "window_start", "label").count().collect():
        split, label = row["split"], str(row["label"])
        counts.setdefault(split, {}).setdefault(label, 0)
        counts[split][label] += row["count"]
        windows.setdefault(str(row["window_start"]), {})[label] = row["count"]
    sizes = shards.select(F.explode("weeks").alias("w"), "graph_capped").agg(
        F.avg(F.size("w.users")).alias("mean_users"),
        F.max(F.size("w.users")).alias("max_users"),
        F.avg(F.size("w.edge_src")).alias("mean_edges"),
    ).first()
    capped = shards.agg(F.sum((F.col("graph_capped") > 0).cast("int"))).first()[0]
    return {
        "schema_version": SCHEMA_VERSION,
        "task": "risenet",
        "counts": counts,
        "windows": windows,
        "history_weeks": cfg.history_weeks,
        "user_features": list(contract.USER_FEATURES),
        "edge_features": list(contract.EDGE_FEATURES),
        "item_features": list(contract.ITEM_FEATURES),
        "mean_users": float(sizes["mean_users"] or 0.0),
        "max_users": int(sizes["max_users"] or 0),
        "mean_edges": float(sizes["mean_edges"] or 0.0),
        "rows_capped": int(capped or 0),
        "config": asdict(cfg),
        **facts,
    }


@register("risenet", arguments=add_arguments)
def build(spark: SparkSession, lake: Lake, args: argparse.Namespace) -> dict:
    cfg = RiseNetShardConfig.from_args(args)
    return commit_shards(
        spark, lake, "risenet", asdict(cfg), ("shares", "purchases", "items", "users"),
        lambda raw, steps: build_risenet_shards(spark, *raw, cfg, steps),
        lambda written, facts: manifest(written, facts, cfg),
        run_id=args.run_id, tables=(SHARD_TABLE, MANIFEST_TABLE),
        schema_version=SCHEMA_VERSION, shard_schema=RISENET_SHARD,
        rows_per_file=cfg.rows_per_file,
    )
