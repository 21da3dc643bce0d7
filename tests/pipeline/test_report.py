"""The report: index.html with one PNG per figure, tables whose numbers are the stats tables',
tests, the planted truth, and each system's model results."""

from __future__ import annotations

import datetime as dt
import math
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from pyspark.sql import functions as F

from contracts import results as results_contract
from pipeline.report import build_report
from pipeline.report.results import auc_pr_interval, pr_curve, read_results
from pipeline.schemas import TRUTH
from pipeline.stats.observe import ObserveConfig, Observer
from tests.conftest import duckdb_with_delta
from tests.pipeline.stats import tiny_world


class _Tables(HTMLParser):
    """Every ``<h4>caption</h4><table>`` of a page as caption -> list of tables (header + rows,
    each cell's text)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[list[str]]]] = {}
        self._caption, self._in_h4, self._rows, self._cell = "", False, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "h4":
            self._in_h4, self._caption = True, ""
        elif tag == "table":
            self._rows = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "h4":
            self._in_h4 = False
        elif tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(self._cell)
            self._cell = None
        elif tag == "table":
            self.tables.setdefault(self._caption, []).append(self._rows)
            self._rows = None

    def handle_data(self, data):
        if self._in_h4:
            self._caption += data
        elif self._cell is not None:
            self._cell += data


def html_tables(page: str) -> dict[str, list[dict[str, str]]]:
    """The first table under each caption, as one dict per row keyed by the header."""
    parser = _Tables()
    parser.feed(page)
    return {caption: [dict(zip(t[0][0], row, strict=True)) for row in t[0][1:]]
            for caption, t in parser.tables.items()}


def close(text: str, value: float) -> bool:
    """A report cell (4 significant digits) against the value it should show."""
    return math.isclose(float(text), value, rel_tol=5e-4, abs_tol=1e-9)


@pytest.fixture(scope="module")
def observed(spark, tmp_path_factory):
    """The tiny world observed once for every test here (the run takes a minute or two); the
    tests only read its lake."""
    from pipeline.lake import Lake

    lake = Lake(tmp_path_factory.mktemp("observed") / "lake")
    tiny_world.write_lake(spark, lake)
    config = ObserveConfig(before_weeks=2, after_weeks=1, history_weeks=2)
    Observer(spark, lake, config, "r1").run()
    truth = pa.Table.from_pylist(
        [{"effect": "E1", "enabled": True, "parameter": "e1_lift", "value": 0.35,
          "description": "logit lift of a share record over a browse"},
         {"effect": "E8", "enabled": True, "parameter": "e8_touch", "value": 0.6,
          "description": "touch-session style shift per intent level"}],
        schema=pa.schema([(f.name, t) for f, t in zip(
            TRUTH.fields, [pa.string(), pa.bool_(), pa.string(), pa.float64(), pa.string()],
            strict=True)]),
    )
    lake.write_arrow(truth, "truth", "world", app_id="truth")
    return lake


def test_report_has_every_figure(spark, observed, tmp_path):
    lake = observed
    out = tmp_path / "report"
    page = build_report(lake, out).read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted([
        "infnet_fig2a_ci_lift.png", "infnet_fig2b_degree_gap.png",
        "infnet_fig2c_close_neighbours.png", "infnet_fig2d_two_hop.png",
        "tie_price_history.png", "risenet_fig2a_mdsw.png", "risenet_fig2b_hub_counts.png",
        "risenet_fig2c_scale_sales.png", "risenet_fig2d_hub_sales.png",
        "risenet_fig3_dynamics.png", "e8_intent.png", "e10_recency.png",
    ])
    for png in pngs:
        assert f"src='{png}'" in page
        assert (out / png).stat().st_size > 5000
    assert "Planted truth" in page and "e1_lift" in page and "e8_touch" in page
    assert "planted effects switched on: <b>E1, E8</b>" in page
    # figures + all tests + run log + input batches + results
    assert page.count("<section") == 12 + 2 + 1 + 1
    # the tiny world is one batch in each of its five raw tables
    assert "All 5 input batches were whole" in page
    assert "no results in this lake yet" in page

    # Every table the pipeline wrote reads the same in Spark, delta-rs, DuckDB and Polars.
    import polars as pl
    from deltalake import DeltaTable

    con = duckdb_with_delta()
    tables = lake.tables()
    assert len(tables) >= 20
    for name in tables:
        location = f"{lake.root}/{name}"
        n = spark.read.format("delta").load(location).count()
        assert DeltaTable(location).to_pyarrow_table().num_rows == n, name
        assert con.execute(f"select count(*) from delta_scan('{location}')").fetchone() == (n,)
        assert pl.read_delta(location).height == n, name


def test_report_numbers_are_the_stats_tables(spark, observed, tmp_path):
    lake = observed
    page = build_report(lake, tmp_path / "report").read_text()
    tables = html_tables(page)

    def stats(name):
        return spark.read.format("delta").load(lake.path("stats", name))

    # Fig. 2(b): the heatmap's cells and the per-gap CI, summed here from the same cells.
    cells = {(r.receiver_degree, r.sender_degree): r.ci for r in stats("degree_gap_ci").collect()}
    shown = tables["Taocode CI (rows: receiver degree)"]
    drawn = {(int(row["receiver_degree"]), int(col.removeprefix("sender "))): text
             for row in shown for col, text in row.items()
             if col.startswith("sender ") and text}
    assert drawn.keys() == cells.keys()
    assert all(close(drawn[key], value) for key, value in cells.items())
    gaps = (stats("degree_gap_ci")
            .groupBy((F.col("sender_degree") - F.col("receiver_degree")).alias("gap"))
            .agg(F.sum("records").alias("records"), F.sum("conversions").alias("conversions"))
            .collect())
    by_gap = {int(row["gap"]): row for row in tables["CI by degree gap (sender - receiver)"]}
    assert by_gap.keys() == {g.gap for g in gaps}
    for g in gaps:
        row = by_gap[g.gap]
        assert int(row["records"]) == g.records and int(row["conversions"]) == g.conversions
        assert close(row["ci"], g.conversions / g.records)

    # Fig. 2(a): one point per leaf category, the per-leaf table beside it.
    leaves = stats("ci_lift_by_leaf").orderBy("mean_price_index").collect()
    shown = tables["Per leaf category"]
    assert len(shown) == len(leaves) >= 2
    for row, leaf in zip(shown, leaves, strict=True):
        assert close(row["mean_price_index"], leaf.mean_price_index)
        assert close(row["ci_lift"], leaf.ci_lift)
        assert int(row["items"]) == leaf["items"]

    # E8: per view and window, the tiny world's sessions (scores t1 1.0, t2 0.25, t3 0, t4
    # 0.25; t1 converts within 1 hour, t2 within 1 day) and browses (all stays 1 s; b4 converts
    # within 1 hour). Medians are the lower ones; AUC = P(converting > other) + ties / 2.
    # touch 1 h: {1.0} vs {0.25, 0, 0.25}: means 1 and 0.5 / 3, AUC 1.
    # touch 1 d: {1.0, 0.25} vs {0, 0.25}: means 0.625 and 0.125, medians 0.25 and 0,
    #   AUC (1 + 1 + 1 + 0.5) / 4 = 0.875.
    # browse 1 h and 1 d: {1} vs {1, 1, 1, 1}: AUC 0.5.
    shown = {(r["view"], r["window"]): r for r in tables["Intent by view and purchase window"]}
    expected = {
        ("touch", "1h"): (1, 3, 1.0, 0.5 / 3, 1.0, 0.25, 1.0),
        ("touch", "1d"): (2, 2, 0.625, 0.125, 0.25, 0.0, 0.875),
        ("browse", "1h"): (1, 4, 1.0, 1.0, 1.0, 1.0, 0.5),
        ("browse", "1d"): (1, 4, 1.0, 1.0, 1.0, 1.0, 0.5),
    }
    assert shown.keys() == expected.keys()
    for key, (n1, n0, mean1, mean0, median1, median0, auc) in expected.items():
        row = shown[key]
        assert (int(row["converting"]), int(row["other"])) == (n1, n0), key
        for column, value in (("mean converting", mean1), ("mean other", mean0),
                              ("median converting", median1), ("median other", median0),
                              ("AUC", auc)):
            assert close(row[column], value), (key, column)
    hist = stats("intent_histogram").groupBy("view").agg(F.sum("rows").alias("rows")).collect()
    # every row counted once per window: 4 sessions x 2, 5 browses x 2
    assert {r["view"]: r["rows"] for r in hist} == {"touch": 8, "browse": 10}
    section = page.split("<section id='e8-intent'>")[1].split("</section>")[0]
    measured = html_tables(section)["Measured: significance tests"]
    assert sorted(r["statistic"] for r in measured) == ["browse_intent"] * 2 + ["touch_intent"] * 2
    assert "src='e8_intent.png'" in section and "e8_touch" in section

    # RiseNet Fig. 2(a): the histogram's summary, its mean worked out from the histogram here.
    means = (stats("mdsw_distribution")
             .groupBy("rising")
             .agg((F.sum(F.col("mdsw") * F.col("items")) / F.sum("items")).alias("mean"),
                  F.sum("items").alias("items"))
             .collect())
    summary = {row["group"]: row for row in tables["MDSW distribution summary"]}
    assert summary.keys() == {"rising" if m.rising else "normal" for m in means}
    for m in means:
        row = summary["rising" if m.rising else "normal"]
        assert int(row["items"]) == m["items"] and close(row["mean"], m["mean"])


def test_observe_writes_the_e8_tests(observed):
    """The four E8 rows of ``stats/tests`` on the tiny world, worked out by hand."""
    tests = {(t["statistic"], "1h" if "1 hour" in t["test"] else "1d"): t
             for t in observed.to_arrow("stats", "tests").to_pylist() if t["effect"] == "E8"}
    assert set(tests) == {(view, window) for view in ("touch_intent", "browse_intent")
                          for window in ("1h", "1d")}
    # touch 1 h: {1.0} vs {0, 0.25, 0.25}: midranks 0 -> 1, 0.25 -> 2.5, 1.0 -> 4; W = 4,
    # E = 1 x 5 / 2 = 2.5, Var = 1 x 3 / 12 x (5 - (2^3 - 2) / (4 x 3)) = 1.125,
    # z = 1.5 / 1.0607 = 1.4142, p = 0.1573.
    hour = tests[("touch_intent", "1h")]
    assert (hour["estimate"], hour["n"]) == (1.0, 4)
    assert hour["statistic_value"] == pytest.approx(1.4142, abs=1e-4)
    assert hour["p_value"] == pytest.approx(0.1573, abs=1e-4)
    assert hour["detail"].startswith("1 converting, 3 not")
    # touch 1 d: {1.0, 0.25} vs {0, 0.25}: W = 4 + 2.5 = 6.5, E = 5, Var = 2 x 2 / 12 x 4.5
    # = 1.5, z = 1.2247, p = 0.2207; AUC 0.875.
    day = tests[("touch_intent", "1d")]
    assert day["estimate"] == pytest.approx(0.875)
    assert day["statistic_value"] == pytest.approx(1.2247, abs=1e-4)
    assert day["p_value"] == pytest.approx(0.2207, abs=1e-4)
    # browses: every stay is 1 s, so all ranks tie: AUC 0.5 and no statistic (variance 0)
    for window in ("1h", "1d"):
        browse = tests[("browse_intent", window)]
        assert (browse["estimate"], browse["n"], browse["p_value"]) == (0.5, 5, None)
        assert browse["detail"].startswith("1 converting, 4 not")


def _result_rows(run_id, model, seed, hour, minute, test, val_auc_pr=0.9):
    when = dt.datetime(2026, 1, 5, hour, minute, tzinfo=dt.UTC)
    facts = {"n": 1000.0, "positive_rate": 0.1, "n_cold": 400.0}
    rows = [("test", k, v) for k, v in {**test, **facts}.items()]
    rows.append(("val", "auc_pr", val_auc_pr))
    return [{"run_id": run_id, "task": "infnet", "dataset": "", "model": model, "split": split,
             "metric": metric, "value": value, "seed": seed, "config_hash": run_id[-4:],
             "created_at": when} for split, metric, value in rows]


RESULTS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("task", pa.string()), ("dataset", pa.string()),
    ("model", pa.string()), ("split", pa.string()), ("metric", pa.string()),
    ("value", pa.float64()), ("seed", pa.int64()), ("config_hash", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])


def test_results_section_latest_run_per_seed(lake, tmp_path):
    # infnet: seed 0 ran twice (the 09:00 run is superseded by 10:00), seed 1 once;
    # lr: one fit. Only test rows are shown; val's 0.9 never is.
    rows = (
        _result_rows("infnet-old-s0-aaaa", "infnet", 0, 9, 0, {"auc_pr": 0.10, "auc_roc": 0.5})
        + _result_rows("infnet-s0-bbbb", "infnet", 0, 10, 30, {"auc_pr": 0.30, "auc_roc": 0.70})
        + _result_rows("infnet-s1-cccc", "infnet", 1, 10, 35, {"auc_pr": 0.34, "auc_roc": 0.72})
        + _result_rows("lr-s0-dddd", "lr", 0, 10, 40, {"auc_pr": 0.31, "auc_roc": 0.71})
    )
    write_deltalake(lake.path("results", "infnet"), pa.Table.from_pylist(rows, RESULTS_SCHEMA))

    out = tmp_path / "report"
    page = build_report(lake, out).read_text()
    assert "src='results_infnet.png'" in page
    assert (out / "results_infnet.png").stat().st_size > 5000
    caption = "infnet: test metrics (n 1000, n_cold 400, positive_rate 0.1)"
    shown = {row["model"]: row for row in html_tables(page)[caption]}
    # infnet: auc_pr mean(0.30, 0.34) = 0.32, sd = 0.04 / sqrt(2) = 0.028;
    #         auc_roc mean(0.70, 0.72) = 0.71, sd = 0.02 / sqrt(2) = 0.014
    assert shown["infnet"]["seeds"] == "0, 1"
    assert shown["infnet"]["auc_pr"] == "0.320 ± 0.028"
    assert shown["infnet"]["auc_roc"] == "0.710 ± 0.014"
    assert shown["infnet"]["latest run (UTC)"] == "2026-01-05 10:35"
    assert shown["lr"]["seeds"] == "0"
    assert shown["lr"]["auc_pr"] == "0.310" and shown["lr"]["auc_roc"] == "0.710"
    # 100 positives (1000 x 0.1): logit(0.32) = -0.7538, half width 1.96 / sqrt(100 x 0.32 x
    # 0.68) = 0.4202, expit(-1.1740) = 0.236, expit(-0.3336) = 0.417
    assert shown["infnet"]["auc_pr 95 % interval (split size)"] == "0.236 - 0.417"
    assert set(shown["infnet"]) == {"model", "seeds", "latest run (UTC)", "auc_pr", "auc_roc",
                                    "auc_pr 95 % interval (split size)"}
    assert "src='pr_infnet.png'" not in page  # no scores kept: no curve


def _score_rows(run_id, model, seed, labels, scores):
    return [{"run_id": run_id, "task": "infnet", "dataset": "", "model": model, "seed": seed,
             "split": "test", "example_id": i, "label": y, "score": x}
            for i, (y, x) in enumerate(zip(labels, scores, strict=True))]


def test_results_section_draws_the_latest_runs_precision_recall_curves(lake, tmp_path):
    rows = (
        _result_rows("infnet-s0-bbbb", "infnet", 0, 10, 30, {"auc_pr": 0.83})
        + _result_rows("infnet-s1-cccc", "infnet", 1, 10, 35, {"auc_pr": 0.83})
        + _result_rows("lr-s0-dddd", "lr", 0, 10, 40, {"auc_pr": 0.5})
    )
    write_deltalake(lake.path("results", "infnet"), pa.Table.from_pylist(rows, RESULTS_SCHEMA))
    labels = [1, 0, 1, 0]
    scores = (
        # seed 0's run is not the latest of infnet: its (perfect) curve is not drawn
        _score_rows("infnet-s0-bbbb", "infnet", 0, labels, [0.9, 0.1, 0.8, 0.2])
        + _score_rows("infnet-s1-cccc", "infnet", 1, labels, [0.9, 0.8, 0.3, 0.1])
        + _score_rows("lr-s0-dddd", "lr", 0, labels, [0.1, 0.9, 0.2, 0.8])
    )
    write_deltalake(lake.path("results", results_contract.scores_table("infnet")),
                    pa.Table.from_pylist(scores, results_contract.SCORES))

    out = tmp_path / "report"
    page = build_report(lake, out).read_text()
    assert "src='pr_infnet.png'" in page and (out / "pr_infnet.png").stat().st_size > 5000
    # the scores table is not taken for a system of its own
    assert "infnet_scores" not in page.replace("results/infnet_scores", "")
    shown = {r["model"]: r for r in html_tables(page)[
        "infnet: precision-recall curves (test, latest run per model)"]}
    # infnet s1: ranks 1:+, 2:-, 3:+ -> AP = (1/1 + 2/3) / 2 = 0.833
    # lr: ranks 1:-, 2:-, 3:+, 4:+ -> AP = (1/3 + 2/4) / 2 = 0.417
    assert shown["infnet"]["run"] == "infnet-s1-cccc"
    assert shown["infnet"]["average precision"] == "0.833"
    assert shown["lr"]["average precision"] == "0.417"
    assert shown["lr"]["examples"] == "4" and shown["lr"]["positives"] == "2"


def test_pr_curve_by_hand_and_against_sklearn_with_ties():
    from sklearn.metrics import average_precision_score, precision_recall_curve

    curve = pr_curve("m", "r", np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1]))
    # thresholds 0.9, 0.8, 0.3, 0.1: tp 1, 1, 2, 2 of seen 1, 2, 3, 4
    assert curve.precision.tolist() == pytest.approx([1.0, 1.0, 0.5, 2 / 3, 0.5])
    assert curve.recall.tolist() == pytest.approx([0.0, 0.5, 0.5, 1.0, 1.0])
    assert curve.average_precision == pytest.approx((1 + 2 / 3) / 2)
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 200)
    score = rng.integers(0, 10, 200) / 10  # many ties
    curve = pr_curve("m", "r", label, score)
    assert curve.average_precision == pytest.approx(average_precision_score(label, score))
    precision, recall, _ = precision_recall_curve(label, score)
    # sklearn lists thresholds low to high and ends at (recall 0, precision 1)
    ours = np.array(sorted(zip(curve.recall[1:], curve.precision[1:], strict=True)))
    theirs = np.array(sorted(zip(recall[:-1], precision[:-1], strict=True)))
    assert ours.shape == theirs.shape and np.allclose(ours, theirs)


def test_results_table_without_the_trainer_columns_is_named(lake):
    write_deltalake(lake.path("results", "infnet"),
                    pa.table({"run_id": ["a"], "model": ["lr"], "value": [0.1]}))
    with pytest.raises(ValueError, match=r"results/infnet: missing column\(s\) \['dataset'"):
        read_results(lake, "infnet")


def test_auc_pr_interval_by_hand():
    # a = 0.5, 100 positives: logit 0, half width 1.96 / sqrt(100 x 0.25) = 0.392,
    # expit(-0.392) = 0.40324, expit(0.392) = 0.59676
    low, high = auc_pr_interval(0.5, 100)
    assert math.isclose(low, 0.40324, abs_tol=1e-5) and math.isclose(high, 0.59676, abs_tol=1e-5)
    # four times the positives halve the half width on the logit scale
    low4, high4 = auc_pr_interval(0.5, 400)
    assert math.isclose(math.log(high4 / (1 - high4)), 0.196, abs_tol=1e-9)
    assert all(math.isnan(v) for v in auc_pr_interval(0.0, 100) + auc_pr_interval(0.3, 0))


def test_sensitivity_points_from_labelled_runs():
    from pipeline.report.results import ModelResult as M
    from pipeline.report.results import SystemResults, sensitivity_points

    def run(name, *f1):
        return M(name, list(range(len(f1))), pd.Timestamp("2026-01-05"), {"f1": list(f1)})

    results = SystemResults("risenet", "", ["f1"], [
        run("risenet", 0.5, 0.7), run("risenet-T1", 0.2), run("risenet-T6", 0.4, 0.6),
        run("risenet-L3", 0.3), run("gcn", 0.1), run("gcn-T2", 0.1)], {})
    points = sensitivity_points(results)
    # risenet's own runs stand at T = 4 and L = 2; gcn has no defaults, so one T point: dropped
    assert {k: [v for v, _ in p] for k, p in points.items()} == {
        ("risenet", "T"): [1, 4, 6], ("risenet", "L"): [2, 3]}
    assert [r.mean("f1") for _, r in points[("risenet", "T")]] == pytest.approx([0.2, 0.6, 0.5])
