"""The tests behind the statistics, against scipy and numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from pipeline.stats import significance as sig


def hist_rows(values, group, stratum=0):
    rows = {}
    for v in values:
        rows[(stratum, group, float(v))] = rows.get((stratum, group, float(v)), 0) + 1
    return [{"stratum": s, "group": g, "value": v, "count": c} for (s, g, v), c in rows.items()]


def test_rank_sum_matches_mann_whitney_with_ties():
    a = [3, 5, 5, 7, 9, 9, 9, 12]
    b = [1, 2, 3, 3, 5, 6, 7, 7, 8, 10]
    got = sig.stratified_rank_sum(hist_rows(a, True) + hist_rows(b, False))
    ref = sps.mannwhitneyu(a, b, alternative="two-sided", use_continuity=False,
                           method="asymptotic")
    assert got["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert got["z"] > 0
    assert got["mean_diff"] == pytest.approx(np.mean(a) - np.mean(b))


def test_rank_sum_strata_remove_a_confounder():
    # Within each stratum the groups are identically distributed; across strata group True
    # sits mostly in the high stratum. Pooled it looks significant; stratified it is not.
    rows = []
    rows += hist_rows([10, 11, 12, 13] * 5, True, "high") + hist_rows([10, 11, 12, 13], False,
                                                                      "high")
    rows += hist_rows([0, 1, 2, 3], True, "low") + hist_rows([0, 1, 2, 3] * 5, False, "low")
    strat = sig.stratified_rank_sum(rows)
    pooled = sig.stratified_rank_sum([{**r, "stratum": 0} for r in rows])
    assert strat["z"] == pytest.approx(0.0, abs=1e-12)
    assert pooled["p"] < 1e-4


def test_ols_and_spearman():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    got = sig.ols_and_spearman(x, 2 * x + 1)
    assert got["slope"] == pytest.approx(2.0)
    assert got["rho"] == pytest.approx(1.0)
    assert sig.ols_and_spearman([1, 1, 1], [1, 2, 3])["slope"] is None


def test_stratified_trend_by_hand(spark):
    # Stratum A: x = 0, 0, 1, 1 with y = 0, 0, 1, 1 -> N 4, S 2, sum x 2, sum x^2 2, T 2:
    # D = T - S sum(x) / N = 1, Var = 2 * 2 / (4 * 3) * (2 - 4 / 4) = 1/3, SSX = 1.
    # Stratum B: x = 0, 1 with y = 1, 1 -> T 1, D = 1 - 2 * 1 / 2 = 0, Var 0, SSX = 1/2.
    # z = (1 + 0) / sqrt(1/3); slope = (1 + 0) / (1 + 1/2) = 2/3.
    df = spark.createDataFrame(
        [("A", 0, 0), ("A", 0, 0), ("A", 1, 1), ("A", 1, 1), ("B", 0, 1), ("B", 1, 1)],
        "s string, x int, y int",
    )
    got = sig.stratified_trend(df, "s", "x", "y")
    assert got["z"] == pytest.approx(1 / np.sqrt(1 / 3))
    assert got["slope"] == pytest.approx(1 / 1.5)
    assert got["n"] == 6


def test_paired_t_and_pearson(spark):
    df = spark.createDataFrame(
        [(1.0, 0.5), (2.0, 1.0), (3.0, 2.5), (4.0, 3.0)], "a double, b double"
    )
    got = sig.paired_t(df, "a", "b")
    ref = sps.ttest_rel([1, 2, 3, 4], [0.5, 1, 2.5, 3])
    assert got["t"] == pytest.approx(ref.statistic)
    assert got["p"] == pytest.approx(ref.pvalue)
    assert got["rel_diff"] == pytest.approx(2.5 / 1.75 - 1)
    r = sig.pearson(df, "a", "b")
    ref = sps.pearsonr([1, 2, 3, 4], [0.5, 1, 2.5, 3])
    assert r["r"] == pytest.approx(ref.statistic)
    assert r["p"] == pytest.approx(ref.pvalue)
