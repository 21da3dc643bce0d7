"""Significance tests over the statistics tables, computed from small aggregates.

Heavy lifting stays in Spark: a test either reads a handful of sums (paired t, Pearson,
stratified trend) or a histogram whose size is bounded by distinct values (rank-sum tests), so
nothing item- or record-sized reaches the driver.

Confounding and the choice of strata: a popular item has more records, more adopters among a
receiver's neighbours, more hubs in its graph and larger weekly scale differences, whatever
the social mechanism. Comparing across items would then "detect" an effect that is only item
popularity. So record-level trends are tested *within items* (stratum = item: a fixed-effects
slope with a permutation z-test, a Cochran-Armitage / Mantel test per stratum) and item-level
comparisons within bins of the item's share records (van Elteren's stratified rank-sum test).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import stats as sps

TESTS = pa.schema(
    [
        pa.field("statistic", pa.string()),
        pa.field("effect", pa.string()),
        pa.field("test", pa.string()),
        pa.field("estimate", pa.float64()),
        pa.field("estimate_name", pa.string()),
        pa.field("statistic_value", pa.float64()),
        pa.field("p_value", pa.float64()),
        pa.field("n", pa.int64()),
        pa.field("detail", pa.string()),
    ]
)


@dataclass
class TestResult:
    """One row of ``stats/tests``: a test of one statistic, tied to the effect it checks."""

    statistic: str
    effect: str
    test: str
    estimate: float | None
    estimate_name: str
    statistic_value: float | None
    p_value: float | None
    n: int
    detail: str = ""


def number(value: float | None, digits: int = 6) -> str:
    """A figure for a test's detail text: ``digits`` significant digits (so that last-bit
    differences between two runs over other partitions do not show), "n/a" for None."""
    return "n/a" if value is None else f"{value:.{digits}g}"


def results_table(results: list[TestResult]) -> pa.Table:
    rows = [asdict(r) for r in results]
    for row in rows:
        for key in ("estimate", "statistic_value", "p_value"):
            value = row[key]
            if value is not None and not math.isfinite(value):
                row[key] = None
    return pa.Table.from_pylist(rows, schema=TESTS)


def _two_sided(z: float) -> float:
    return float(2 * sps.norm.sf(abs(z)))


def paired_t(df: DataFrame, a: str, b: str) -> dict:
    """Paired t-test of ``a - b`` over rows, from Spark aggregates.

    Returns n, mean_a, mean_b, mean_diff, t, p and rel_diff = mean_a / mean_b - 1.
    """
    row = (
        df.where(F.col(a).isNotNull() & F.col(b).isNotNull())
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.avg(a).alias("ma"),
            F.avg(b).alias("mb"),
            F.avg(F.col(a) - F.col(b)).alias("md"),
            F.stddev_samp(F.col(a) - F.col(b)).alias("sd"),
        )
        .first()
    )
    n = int(row["n"])
    out = {"n": n, "mean_a": row["ma"], "mean_b": row["mb"], "mean_diff": row["md"]}
    if n < 2 or not row["sd"]:
        return {**out, "t": None, "p": None, "rel_diff": None}
    t = row["md"] / (row["sd"] / math.sqrt(n))
    rel = row["ma"] / row["mb"] - 1 if row["mb"] else None
    return {**out, "t": t, "p": float(2 * sps.t.sf(abs(t), n - 1)), "rel_diff": rel}


def ols_and_spearman(x: np.ndarray, y: np.ndarray) -> dict:
    """OLS slope of y on x with its two-sided p-value, and Spearman's rho with its p-value."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return {"n": n, "slope": None, "slope_p": None, "rho": None, "rho_p": None}
    fit = sps.linregress(x, y)
    rho = sps.spearmanr(x, y)
    return {
        "n": n,
        "slope": float(fit.slope),
        "slope_p": float(fit.pvalue),
        "rho": float(rho.statistic),
        "rho_p": float(rho.pvalue),
    }


def pearson(df: DataFrame, x: str, y: str) -> dict:
    """Pearson r over rows (Spark ``corr``) with the t-test p-value."""
    row = df.agg(F.count(F.lit(1)).alias("n"), F.corr(x, y).alias("r")).first()
    n, r = int(row["n"]), row["r"]
    if r is None or n < 3:
        return {"n": n, "r": None, "p": None}
    if abs(r) >= 1:
        return {"n": n, "r": float(r), "p": 0.0}
    t = r * math.sqrt((n - 2) / (1 - r * r))
    return {"n": n, "r": float(r), "p": float(2 * sps.t.sf(abs(t), n - 2))}


def stratified_trend(df: DataFrame, stratum: str, score: str, success: str) -> dict:
    """Within-stratum trend of a 0/1 outcome on a score, with a permutation z-test.

    Per stratum s (N records, S successes, scores x): T = sum of x over successes,
    E[T] = S * sum(x) / N, Var[T] = S (N - S) / (N (N - 1)) * (sum x^2 - (sum x)^2 / N)
    (successes drawn without replacement: Cochran-Armitage, conditioned on the stratum).
    z = sum(T - E) / sqrt(sum Var). The estimate is the fixed-effects slope
    sum(T - E) / sum(sum x^2 - (sum x)^2 / N): the change in conversion per unit of score
    within a stratum (a linear probability model with stratum intercepts).
    """
    per = (
        df.select(F.col(stratum).alias("_s"), F.col(score).cast("double").alias("_x"),
                  F.col(success).cast("double").alias("_y"))
        .groupBy("_s")
        .agg(
            F.count(F.lit(1)).cast("double").alias("N"),
            F.sum("_y").alias("S"),
            F.sum("_x").alias("SX"),
            F.sum(F.col("_x") * F.col("_x")).alias("SXX"),
            F.sum(F.col("_x") * F.col("_y")).alias("T"),
        )
    )
    return _trend_from_sums(per)


def stratified_trend_counts(
    df: DataFrame, strata: list[str], score: str, trials: str, successes: str
) -> dict:
    """``stratified_trend`` from grouped rows: each row is ``trials`` records of one stratum
    (the columns ``strata``) sharing the score ``score``, ``successes`` of them successes. The
    same sums and the same result as the records themselves would give, for statistics whose
    records are counted, never listed (``recency``: a sender's shares at each age of a
    contact)."""
    x = F.col(score).cast("double")
    n, y = F.col(trials).cast("double"), F.col(successes).cast("double")
    per = df.groupBy(*strata).agg(
        F.sum(n).alias("N"),
        F.sum(y).alias("S"),
        F.sum(n * x).alias("SX"),
        F.sum(n * x * x).alias("SXX"),
        F.sum(y * x).alias("T"),
    )
    return _trend_from_sums(per)


def _trend_from_sums(per: DataFrame) -> dict:
    """The trend test of ``stratified_trend`` from per-stratum sums N, S, SX, SXX, T; also
    ``information``, the summed variance: 1 / its square root is the standard error of the
    one-step log-odds slope ``z / sqrt(information)``."""
    per = (
        per.where(F.col("N") > 1)
        .withColumn("SSX", F.col("SXX") - F.col("SX") * F.col("SX") / F.col("N"))
        .withColumn("D", F.col("T") - F.col("S") * F.col("SX") / F.col("N"))
        .withColumn(
            "V",
            F.col("S") * (F.col("N") - F.col("S")) / (F.col("N") * (F.col("N") - 1))
            * F.col("SSX"),
        )
    )
    row = per.agg(
        F.sum("N").alias("n"), F.sum("D").alias("d"), F.sum("V").alias("v"),
        F.sum("SSX").alias("ssx"), F.count(F.lit(1)).alias("strata"),
    ).first()
    n = int(row["n"] or 0)
    if not row["v"] or row["v"] <= 0:
        return {"n": n, "slope": None, "z": None, "p": None, "strata": int(row["strata"]),
                "information": 0.0, "d": row["d"] or 0.0}
    z = row["d"] / math.sqrt(row["v"])
    return {
        "n": n,
        "slope": row["d"] / row["ssx"],
        "z": z,
        "p": _two_sided(z),
        "strata": int(row["strata"]),
        "information": row["v"],
        "d": row["d"],
    }


def rank_sum_histogram(
    df: DataFrame, value: str, group: str, stratum: str | None = None, digits: int = 6
) -> DataFrame:
    """(stratum, group, value, count): what ``stratified_rank_sum`` needs, small by design."""
    stratum_col = F.col(stratum) if stratum else F.lit(0)
    return (
        df.where(F.col(value).isNotNull())
        .select(
            stratum_col.cast("string").alias("stratum"),
            F.col(group).cast("boolean").alias("group"),
            F.round(F.col(value).cast("double"), digits).alias("value"),
        )
        .groupBy("stratum", "group", "value")
        .agg(F.count(F.lit(1)).alias("count"))
    )


def stratified_rank_sum(hist: pa.Table | list[dict]) -> dict:
    """Van Elteren's stratified Wilcoxon rank-sum test (Mann-Whitney when one stratum).

    Input rows: stratum, group (True = the group of interest), value, count. Midranks handle
    ties, with the tie-corrected variance. Strata weight 1 / (N_s + 1). The estimate is the
    stratum-weighted (by group-size product) difference of means, True minus False.
    """
    rows = hist.to_pylist() if isinstance(hist, pa.Table) else list(hist)
    strata: dict = {}
    for r in rows:
        strata.setdefault(r["stratum"], []).append(r)
    num = var = 0.0
    diff_num = diff_den = 0.0
    n_total = n_used = 0
    n_true = n_false = 0
    for group_rows in strata.values():
        values = sorted({r["value"] for r in group_rows})
        count_true = {v: 0 for v in values}
        count_false = {v: 0 for v in values}
        for r in group_rows:
            (count_true if r["group"] else count_false)[r["value"]] += r["count"]
        n1 = sum(count_true.values())
        n0 = sum(count_false.values())
        n = n1 + n0
        n_total += n
        n_true += n1
        n_false += n0
        if n1 == 0 or n0 == 0:
            continue
        n_used += n
        rank_sum = ties = 0.0
        below = 0
        for v in values:
            t = count_true[v] + count_false[v]
            midrank = below + (t + 1) / 2
            rank_sum += count_true[v] * midrank
            ties += t**3 - t
            below += t
        weight = 1.0 / (n + 1)
        expected = n1 * (n + 1) / 2
        variance = n1 * n0 / 12 * ((n + 1) - ties / (n * (n - 1)))
        num += weight * (rank_sum - expected)
        var += weight**2 * variance
        mean1 = sum(v * c for v, c in count_true.items()) / n1
        mean0 = sum(v * c for v, c in count_false.items()) / n0
        w = n1 * n0 / n
        diff_num += w * (mean1 - mean0)
        diff_den += w
    out = {"n": n_total, "n_true": n_true, "n_false": n_false, "n_compared": n_used}
    if var <= 0:
        return {**out, "z": None, "p": None, "mean_diff": None}
    z = num / math.sqrt(var)
    return {**out, "z": z, "p": _two_sided(z), "mean_diff": diff_num / diff_den}
