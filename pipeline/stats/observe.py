"""The observe run: every statistic of InfNet Sec. 3 and RiseNet Sec. 2-3 into ``stats/*``.

Order matters only for cost: expensive record-level annotations (conversion, degrees, close
neighbours, 2-hop) are written once to ``stats/share_features`` and every InfNet statistic and
test is then an aggregation over that table read back from the lake; the RiseNet family works
from ``stats/item_weekly``; E8 (DIPN's intent views) from ``stats/intent_histogram``, built
from the touch sessions and browses; E10 (a tie's recency, what DM-GNN's decay reads) from
``stats/recontact_hazard``, built from the share records alone. Tests run last, over the
committed tables, into ``stats/tests``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts.runs import run_digest
from pipeline import batches
from pipeline.faults import failpoint
from pipeline.lake import Lake
from pipeline.stats import conversion, intent, recency, rising, specific, structure, temporal
from pipeline.stats import features as features_mod
from pipeline.stats import significance as sig
from pipeline.stats.common import with_week

log = logging.getLogger(__name__)

RAW_TABLES = ("shares", "purchases", "browses", "items")
#: Raw tables read when the lake holds them (E8's touch view).
OPTIONAL_RAW_TABLES = ("touches",)

# The figure each table feeds, for the report and for humans reading the lake.
FIGURES = {
    "conversion_index": "InfNet Def. 4 / Sec. 3.2",
    "ci_lift_by_leaf": "InfNet Fig. 2(a)",
    "degree_gap_ci": "InfNet Fig. 2(b)",
    "close_neighbours": "InfNet Fig. 2(c)",
    "two_hop": "InfNet Fig. 2(d)",
    "rising_stars": "RiseNet Sec. 2",
    "mdsw": "RiseNet Fig. 2(a)",
    "mdsw_distribution": "RiseNet Fig. 2(a)",
    "hub_nodes": "RiseNet Fig. 2(b), 2(d)",
    "hub_counts": "RiseNet Fig. 2(b)",
    "hub_count_distribution": "RiseNet Fig. 2(b)",
    "hub_sales": "RiseNet Fig. 2(d)",
    "scale_vs_sales": "RiseNet Fig. 2(c)",
    "scale_sales_weekly": "RiseNet Fig. 2(c)",
    "next_week_sales": "RiseNet Fig. 3",
    "scale_fluctuation": "RiseNet Fig. 3",
    "intent_histogram": "DIPN Sec. 1 (E8)",
    "recontact_hazard": "DM-GNN (E10)",
}


@dataclass
class ObserveConfig:
    """Knobs of the observe run (defaults follow the papers).

    Args:
        window_days: conversion window after a record (7).
        attribution: "last_touch" or "any" (see ``common.with_conversion``).
        max_degree: degree range of Fig. 2(b), 1..max_degree (9).
        close_cap: close-neighbour counts >= close_cap share the last bucket (5).
        max_delta: 2-hop week gaps >= max_delta share the last bucket (4).
        min_item_records: records an item needs in a group for per-item CI mean/sd (5).
        before_weeks / after_weeks: rising-star ranking windows (4 / 2).
        before_permille / after_permille: rising-star cut-offs, per mille (3 / 1), ceil'ed.
        window_step: weeks between sliding rising-star windows (1).
        hub_percent: hubs are the top hub_percent % of senders (1).
        history_weeks: weeks of scale history for the fluctuation (6).
        average_tolerance: "same scale as average" band for Fig. 3, relative (0.5).
        scale_cap: diffusion scales >= scale_cap share the last bucket of Fig. 2(c) (50).
        max_join_rows: refuse the close-neighbour join above this many rows (2e9).
        records_per_partition: share records per shuffle partition (2e6; execution only).
    """

    window_days: float = 7.0
    attribution: str = "last_touch"
    max_degree: int = 9
    close_cap: int = 5
    max_delta: int = 4
    min_item_records: int = 5
    before_weeks: int = 4
    after_weeks: int = 2
    before_permille: float = 3.0
    after_permille: float = 1.0
    window_step: int = 1
    hub_percent: float = 1.0
    history_weeks: int = 6
    average_tolerance: float = 0.5
    scale_cap: int = 50
    max_join_rows: int = 2_000_000_000
    records_per_partition: int = 2_000_000


class JoinTooLargeError(RuntimeError):
    """A graph join would exceed ``ObserveConfig.max_join_rows``."""


@dataclass
class RunLog:
    """Per-table timings and sizes, committed as ``stats/observe_run``."""

    rows: list[dict] = field(default_factory=list)

    def add(self, table: str, rows: int, seconds: float, note: str = "") -> None:
        self.rows.append({"table": table, "rows": rows, "seconds": seconds, "note": note})
        log.info("%s: %s rows in %.1f s%s", table, rows, seconds, f" {note}" if note else "")

    def to_arrow(self, run_id: str) -> pa.Table:
        return pa.Table.from_pylist(
            [{"run_id": run_id, **r} for r in self.rows],
            schema=pa.schema(
                [("run_id", pa.string()), ("table", pa.string()), ("rows", pa.int64()),
                 ("seconds", pa.float64()), ("note", pa.string())]
            ),
        )


class Observer:
    """Computes, writes and reads back the statistics of one run."""

    def __init__(self, spark: SparkSession, lake: Lake, config: ObserveConfig, run_id: str):
        self.spark = spark
        self.lake = lake
        self.config = config
        self.run_id = run_id
        self.run_log = RunLog()

    def raw(self, table: str) -> DataFrame:
        return self.lake.read(self.spark, "raw", table)

    def write(self, name: str, build: Callable[[], DataFrame], note: str = "") -> DataFrame:
        """Write ``stats/<name>`` (overwrite, idempotent per run) and return it read back.

        Stats are derived data: a new version of a statistic may change its columns, so the
        overwrite may change the schema (older versions keep theirs for time travel)."""
        start = time.time()
        self._describe(name)
        df = build()
        result = self.lake.write(
            df, "stats", name, mode="overwrite", app_id=f"observe:{name}:{self.run_id}",
            overwrite_schema=True,
        )
        failpoint(f"observe.{name}-committed", self.spark)
        rows = result.rows if not result.skipped else -1
        self.run_log.add(name, rows, time.time() - start, note + (" (skipped)" * result.skipped))
        return self.lake.read(self.spark, "stats", name)

    def _describe(self, step: str) -> None:
        """Name the step's Spark jobs in the UI and event log (where the time goes)."""
        self.spark.sparkContext.setJobDescription(f"observe:{step}")

    def _size_shuffles(self) -> None:
        """One shuffle partition per ``records_per_partition`` share records, at least the
        session's own setting (spark-defaults: 16, what AQE coalesces best on small worlds).

        Why: the persisted lookup tables keep the partition count they were built with (AQE
        does not coalesce a cached plan's output), so 200 partitions made a 1M-record run
        2-3x slower, while 16 partitions of a 100M-record world are ~600 MB sorts each.
        """
        records = self.raw("shares").count()  # answered from the Delta log's file stats
        have = int(self.spark.conf.get("spark.sql.shuffle.partitions"))
        want = max(have, math.ceil(records / self.config.records_per_partition))
        if want != have:
            self.spark.conf.set("spark.sql.shuffle.partitions", str(want))
        log.info("%s share records: %s shuffle partitions", records, want)

    def write_intent(self, browses: DataFrame, purchases: DataFrame) -> DataFrame:
        """``stats/intent_histogram`` (E8, ``pipeline.stats.intent``) from the browses and, when
        the lake holds ``raw/touches``, the touch sessions; returned read back."""
        touches = self.raw("touches") if self.lake.exists("raw", "touches") else None
        return self.write(
            "intent_histogram",
            lambda: intent.intent_histogram(
                None if touches is None else intent.touch_sessions(touches, purchases),
                intent.browse_conversions(browses, purchases),
            ),
            note="" if touches is not None else "no raw/touches: browse view only",
        )

    def write_recency(self, shares: DataFrame, end_us: int) -> sig.TestResult:
        """``stats/recontact_hazard`` (E10, ``pipeline.stats.recency``), returning its test.
        The pair bins of the world and of its within-sender null feed both the table and
        the test, so they are persisted once."""
        bins = recency.pair_bins(shares, end_us).persist(StorageLevel.DISK_ONLY)
        null_bins = recency.pair_bins(recency.shuffle_receivers(shares), end_us).persist(
            StorageLevel.DISK_ONLY
        )
        hazard = self.write(
            "recontact_hazard", lambda: recency.recontact_hazard(bins, null_bins)
        )
        self._describe("recency test")
        result = recency.recency_test(
            recency.within_pair_trend(bins), recency.within_pair_trend(null_bins),
            [r.asDict() for r in hazard.collect()],
        )
        bins.unpersist()
        null_bins.unpersist()
        return result

    def run(self) -> dict:
        cfg = self.config
        self._size_shuffles()
        # Which input batches these statistics read, and whether each is whole.
        self.write("batches", lambda: batches.status_frame(
            self.spark, batches.checked(self.spark, self.lake)
        ))
        shares, purchases = self.raw("shares"), self.raw("purchases")
        browses, items = self.raw("browses"), self.raw("items")
        origin = _origin(shares, purchases, browses)
        shares = with_week(shares, origin)
        purchases = with_week(purchases, origin)
        weeks = int(
            shares.select("week").unionByName(purchases.select("week")).agg(F.max("week")).first()[0]
        )
        log.info("origin %s, %s weeks", origin, weeks)

        # The lookup tables every record-level statistic shares (``features.Lookups``) are
        # persisted once instead of being rebuilt from the raw records by each statistic.
        lookups = features_mod.Lookups.build(shares, purchases)
        lookups.times.persist(StorageLevel.DISK_ONLY)
        lookups.edges.persist(StorageLevel.DISK_ONLY)
        degrees = self.write("user_degree", lookups.degrees)
        start = time.time()
        self._describe("close-neighbour join size")
        join_rows = lookups.join_rows()
        self.run_log.add("(close-neighbour join size)", join_rows, time.time() - start,
                     "adopters x their neighbours")
        if join_rows > cfg.max_join_rows:
            raise JoinTooLargeError(
                f"close-neighbour join would produce {join_rows} rows "
                f"(> max_join_rows={cfg.max_join_rows})"
            )

        features = self.write(
            "share_features",
            lambda: features_mod.share_features(
                shares, items, degrees, lookups, cfg.window_days, cfg.attribution, cfg.max_delta
            ),
            note=f"close-neighbour join rows {join_rows}",
        )
        lookups.times.unpersist()
        lookups.edges.unpersist()
        ci = self.write(
            "conversion_index",
            lambda: conversion.conversion_index(
                shares, browses, purchases, items, cfg.window_days, cfg.attribution,
                converted_shares=features,
            ),
        )
        lift = self.write("ci_lift_by_leaf", lambda: conversion.ci_lift_by_leaf(ci))
        self.write("degree_gap_ci", lambda: structure.degree_gap_ci(features, cfg.max_degree))
        capped = features.withColumn(
            "close_neighbours", F.least(F.col("close_neighbours"), F.lit(cfg.close_cap))
        )
        self.write("close_neighbours", lambda: structure.close_neighbours_ci(capped))
        self.write("two_hop", lambda: temporal.two_hop_ci(features, cfg.min_item_records))
        self.write("tie_ci", lambda: structure.tie_ci(features))
        recency_result = self.write_recency(shares, recency.world_end_us(origin, weeks))

        weekly = self.write(
            "item_weekly", lambda: rising.item_weekly(shares, purchases, items, weeks)
        )
        starts = rising.window_starts(weeks, cfg.before_weeks, cfg.after_weeks, cfg.window_step)
        if not starts:
            raise ValueError(
                f"{weeks} weeks are too few for rising-star windows of "
                f"{cfg.before_weeks} + {cfg.after_weeks} weeks"
            )
        labels = self.write(
            "rising_stars",
            lambda: rising.rising_stars(
                weekly, items, starts, cfg.before_weeks, cfg.after_weeks,
                cfg.before_permille, cfg.after_permille,
            ),
        )
        mdsw = self.write("mdsw", lambda: rising.mdsw(weekly, labels, cfg.before_weeks))
        self.write("mdsw_distribution", lambda: _distribution(mdsw, "mdsw"))
        hubs = self.write("hub_nodes", lambda: rising.hub_nodes(shares, items, cfg.hub_percent))
        hub_counts = self.write(
            "hub_counts", lambda: rising.hub_counts(shares, hubs, labels, cfg.before_weeks)
        )
        self.write("hub_count_distribution", lambda: _distribution(hub_counts, "hubs"))
        item_sales = self.write(
            "hub_item_sales", lambda: rising.hub_item_sales(shares, purchases, items, hubs)
        )
        self.write("hub_sales", lambda: rising.hub_sales(item_sales))
        self.write("scale_vs_sales", lambda: rising.scale_vs_sales(weekly, cfg.scale_cap))
        self.write("scale_sales_weekly", lambda: rising.scale_sales_weekly(weekly))
        self.write("next_week_sales", lambda: rising.next_week_sales(weekly))
        fluctuation = self.write(
            "scale_fluctuation",
            lambda: rising.scale_fluctuation(
                weekly, labels, cfg.before_weeks, cfg.history_weeks, cfg.average_tolerance
            ),
        )

        intent_hist = self.write_intent(browses, purchases)

        start = time.time()
        self._describe("tests")
        results = run_tests(
            cfg, ci, lift, features, labels, mdsw, hub_counts, item_sales, weekly, fluctuation
        )
        results.extend(intent.histogram_tests(intent_hist.toPandas().to_dict("records")))
        results.append(recency_result)
        table = sig.results_table(results)
        self.lake.write_arrow(
            table, "stats", "tests", mode="overwrite", app_id=f"observe:tests:{self.run_id}",
            overwrite_schema=True,
        )
        self.run_log.add("tests", table.num_rows, time.time() - start)
        self.lake.write_arrow(
            self.run_log.to_arrow(self.run_id), "stats", "observe_run", mode="overwrite",
            app_id=f"observe:observe_run:{self.run_id}", overwrite_schema=True,
        )
        failpoint("observe.observe_run-committed", self.spark)
        return {
            "run_id": self.run_id,
            "origin": str(origin),
            "weeks": weeks,
            "windows": starts,
            "config": asdict(cfg),
            "tables": self.run_log.rows,
            "tests": table.to_pylist(),
        }


def _origin(*frames: DataFrame):
    from pipeline.stats.common import world_origin

    return world_origin(*frames)


def _distribution(per_item: DataFrame, value: str) -> DataFrame:
    """(rising, value, items): the histogram behind a rising-vs-normal distribution figure."""
    return (
        per_item.groupBy("rising", value)
        .agg(F.count(F.lit(1)).alias("items"))
        .select(F.col("rising").cast("boolean"), F.col(value).cast("long"),
                F.col("items").cast("long"))
    )


def min_window(labels: DataFrame) -> int:
    """The first window's start week (the paper's "first four weeks" window)."""
    return int(labels.agg(F.min("window_start")).first()[0])


def _log2_bin(col: str):
    return F.floor(F.log2(F.col(col).cast("double") + 1)).cast("int")


def run_tests(
    cfg: ObserveConfig,
    ci: DataFrame,
    lift: DataFrame,
    features: DataFrame,
    labels: DataFrame,
    mdsw: DataFrame,
    hub_counts: DataFrame,
    item_sales: DataFrame,
    weekly: DataFrame,
    fluctuation: DataFrame,
) -> list[sig.TestResult]:
    """The significance tests behind each figure, one per planted effect where there is one."""
    out: list[sig.TestResult] = []
    t = sig.paired_t(ci, "ci_taocode", "ci_browse")
    out.append(sig.TestResult(
        "conversion_index", "E1", "paired t over items (CI_taocode - CI_browse)",
        t["rel_diff"], "relative difference of mean CIs", t["t"], t["p"], t["n"],
        f"mean CI taocode {sig.number(t['mean_a'])}, mean CI browse {sig.number(t['mean_b'])}",
    ))
    leaves = lift.select("mean_price_index", "ci_lift").toPandas()
    fit = sig.ols_and_spearman(leaves["mean_price_index"], leaves["ci_lift"])
    out.append(sig.TestResult(
        "ci_lift_by_leaf", "E1", "OLS of CI lift on mean PI over leaf categories",
        fit["slope"], "slope", None, fit["slope_p"], fit["n"],
    ))
    out.append(sig.TestResult(
        "ci_lift_by_leaf", "E1", "Spearman of CI lift and mean PI over leaf categories",
        fit["rho"], "rho", fit["rho"], fit["rho_p"], fit["n"],
    ))
    # Item level: 80 leaf means are few and noisy; the items behind them carry more power.
    # log(CI ratio) with +0.5 smoothing, items with >= min_item_records of both kinds.
    # Share records whose tie has a price history (tie_score != 0) are left out: a dear
    # item's senders share dear items (E7), so their ties lift its share CI under E9 with E1
    # off (Spearman rho 0.17, p 1e-13 on the 200k test world).
    smooth = F.lit(0.5)
    untied = (
        features.where(F.col("tie_score") == 0)
        .groupBy("item_id")
        .agg(
            F.count(F.lit(1)).alias("share_records"),
            F.sum(F.col("converted").cast("long")).alias("share_conversions"),
        )
    )
    items_pi = (
        ci.drop("share_records", "share_conversions").join(untied, "item_id")
        .where(
            (F.col("share_records") >= cfg.min_item_records)
            & (F.col("browse_records") >= cfg.min_item_records)
        )
        .select(
            "price_index",
            (
                F.log((F.col("share_conversions") + smooth) / (F.col("share_records") + smooth))
                - F.log(
                    (F.col("browse_conversions") + smooth) / (F.col("browse_records") + smooth)
                )
            ).alias("log_ratio"),
        )
        .toPandas()
    )
    fit = sig.ols_and_spearman(items_pi["price_index"], items_pi["log_ratio"])
    out.append(sig.TestResult(
        "ci_lift_by_leaf", "E1",
        "Spearman of item log(CI_taocode / CI_browse) and PI over items (primary PI test; "
        "share records without tie price history)",
        fit["rho"], "rho", fit["rho"], fit["rho_p"], fit["n"],
        f"OLS slope {sig.number(fit['slope'])}, p {sig.number(fit['slope_p'], 3)}",
    ))
    in_range = features.where(
        F.col("sender_degree").between(1, cfg.max_degree)
        & F.col("receiver_degree").between(1, cfg.max_degree)
    ).withColumn("gap", F.col("sender_degree") - F.col("receiver_degree"))
    r = sig.stratified_trend(in_range, "item_id", "gap", "converted")
    out.append(sig.TestResult(
        "degree_gap_ci", "E2",
        f"within-item trend of conversion on sender - receiver merged-graph degree "
        f"(1..{cfg.max_degree}, the paper's reading; degrees include later edges)",
        r["slope"], "conversion per degree", r["z"], r["p"], r["n"], f"{r['strata']} items",
    ))
    log_gap = features.withColumn(
        "log_gap",
        F.log1p("sender_prior_degree") - F.log1p("receiver_prior_degree"),
    )
    r = sig.stratified_trend(log_gap, "item_id", "log_gap", "converted")
    out.append(sig.TestResult(
        "degree_gap_ci", "E2",
        "within-item trend of conversion on log1p(sender) - log1p(receiver) prior degree "
        "(edges from earlier weeks; primary E2 test)",
        r["slope"], "conversion per log degree", r["z"], r["p"], r["n"],
        f"{r['strata']} items",
    ))
    capped = features.withColumn(
        "close", F.least(F.col("close_neighbours"), F.lit(cfg.close_cap))
    )
    r = sig.stratified_trend(capped, "item_id", "close", "converted")
    out.append(sig.TestResult(
        "close_neighbours", "E3", "within-item trend of conversion on close neighbours",
        r["slope"], "conversion per close neighbour", r["z"], r["p"], r["n"],
        f"{r['strata']} items; counts capped at {cfg.close_cap}",
    ))
    received = features.withColumn("received", (F.col("delta_weeks") > 0).cast("int"))
    r = sig.stratified_trend(received, "item_id", "received", "converted")
    out.append(sig.TestResult(
        "two_hop", "E4", "within-item difference: sender received the item earlier vs not",
        r["slope"], "conversion difference", r["z"], r["p"], r["n"], f"{r['strata']} items",
    ))
    r = sig.stratified_trend(
        features.where(F.col("delta_weeks") > 0), "item_id", "sender_bought", "converted"
    )
    out.append(sig.TestResult(
        "two_hop", "E4", "within-item difference, sender received: bought vs not",
        r["slope"], "conversion difference", r["z"], r["p"], r["n"], f"{r['strata']} items",
    ))
    # The specific versions of these tests (each within strata of the other mechanisms'
    # covariates, see ``pipeline.stats.specific``) come at the end.
    rising_count = labels.agg(
        F.sum(F.col("rising").cast("long")).alias("r"), F.count(F.lit(1)).alias("n")
    ).first()
    out.append(sig.TestResult(
        "rising_stars", "E5", "count of rising stars over all windows",
        float(rising_count["r"] or 0), "rising (item, window) pairs", None, None,
        int(rising_count["n"]),
    ))
    first = min_window(labels)
    for name, frame, value, text in (
        ("mdsw", mdsw, "mdsw", "MDSW"),
        ("hub_counts", hub_counts, "hubs", "hubs in the diffusion graph"),
    ):
        binned = frame.withColumn("_bin", _log2_bin("records_before"))
        out.append(_rank_sum_test(
            name, "E5", f"van Elteren rank-sum of {text}, rising vs normal, first window, "
            "strata = log2 bins of share records before",
            binned.where(F.col("window_start") == first), value, "rising", "_bin",
            ("rising", "normal"),
        ))
        # Each star surges in its own week, so each window holds a few: pool the windows,
        # comparing within each window's bins.
        out.append(_rank_sum_test(
            name, "E5", f"van Elteren rank-sum of {text}, rising vs normal, all windows, "
            "strata = window x log2 bins of share records before",
            binned.withColumn("_bin", F.concat_ws(":", F.col("window_start").cast("string"),
                                                  F.col("_bin").cast("string"))),
            value, "rising", "_bin", ("rising", "normal"),
        ))
        out.append(_rank_sum_test(
            name, "E5", f"Mann-Whitney of {text}, rising vs normal, first window, unstratified",
            frame.where(F.col("window_start") == first), value, "rising",
        ))
    out.append(_rank_sum_test(
        "scale_fluctuation", "E5", "van Elteren rank-sum of scale sd over the history weeks, "
        "rising vs normal, first window, strata = last-week scale",
        fluctuation.where(F.col("window_start") == first), "fluctuation_sd", "rising",
        "scale_last", ("rising", "normal"), digits=3,
    ))
    binned = item_sales.withColumn(
        "_bin", F.concat_ws(":", F.col("top_category").cast("string"),
                            _log2_bin("records").cast("string"))
    )
    out.append(_rank_sum_test(
        "hub_sales", "E6", "van Elteren rank-sum of item sales, shared by a hub vs not, "
        "strata = top category x log2 bins of share records",
        binned, "sales", "shared_by_hub", "_bin", ("hub-shared", "not"),
    ))
    # Rising stars' outside-demand surges are not a hub effect, yet hubs pick rising stars
    # more (E5): the adjusted test leaves out items labelled rising in any window.
    ever_rising = labels.where(F.col("rising")).select("item_id").distinct()
    out.append(_rank_sum_test(
        "hub_sales", "E6", "adjusted van Elteren rank-sum of item sales, shared by a hub vs "
        "not, rising stars left out, strata = top category x log2 bins of share records",
        binned.join(ever_rising, "item_id", "left_anti"), "sales", "shared_by_hub", "_bin",
        ("hub-shared", "not"),
    ))
    out.append(_rank_sum_test(
        "hub_sales", "E6", "rank-sum of item sales, shared by a hub vs not, per top category",
        item_sales, "sales", "shared_by_hub", "top_category",
    ))
    p = sig.pearson(weekly.where(F.col("scale") > 0), "scale", "sales")
    out.append(sig.TestResult(
        "scale_vs_sales", "", "Pearson r of weekly scale and sales (item-weeks, scale >= 1)",
        p["r"], "r", p["r"], p["p"], p["n"],
    ))
    out.extend(specific.specific_tests(
        features, ci, cfg.hub_percent, cfg.close_cap, cfg.min_item_records
    ))
    return out


def _rank_sum_test(
    statistic: str,
    effect: str,
    text: str,
    data: DataFrame,
    value: str,
    group: str,
    strata: str | None = None,
    counts: tuple[str, str] | None = None,
    digits: int = 6,
) -> sig.TestResult:
    """(Stratified) rank-sum of ``value`` between ``group`` True and False, from a histogram
    computed in Spark (only the histogram reaches the driver). ``counts`` names the two groups
    in the result's note (left out when None)."""
    rows = sig.rank_sum_histogram(data, value, group, strata, digits).toPandas()
    r = sig.stratified_rank_sum(rows.to_dict("records"))
    note = "" if counts is None else f"{r['n_true']} {counts[0]}, {r['n_false']} {counts[1]}"
    return sig.TestResult(
        statistic, effect, text, r["mean_diff"], "mean difference", r["z"], r["p"], r["n"], note
    )


def default_run_id(lake: Lake, config: ObserveConfig) -> str:
    """Config digest + raw table versions: a re-run over unchanged input commits nothing new."""
    versions = {t: lake.version("raw", t) for t in RAW_TABLES}
    versions.update({t: lake.version("raw", t) for t in OPTIONAL_RAW_TABLES
                     if lake.exists("raw", t)})
    return run_digest({"config": asdict(config), "raw": versions})

