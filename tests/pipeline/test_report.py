"""The report: index.html with one PNG per figure, tables, tests and the planted truth."""

from __future__ import annotations

import pyarrow as pa

from pipeline.report import build_report
from pipeline.schemas import TRUTH
from pipeline.stats.observe import ObserveConfig, Observer
from tests.conftest import duckdb_with_delta
from tests.pipeline.stats import tiny_world


def test_report_has_every_figure(spark, lake, tmp_path):
    tiny_world.write_lake(spark, lake)
    config = ObserveConfig(before_weeks=2, after_weeks=1, history_weeks=2)
    Observer(spark, lake, config, "r1").run()
    truth = pa.Table.from_pylist(
        [{"effect": "E1", "enabled": True, "parameter": "e1_lift", "value": 0.35,
          "description": "logit lift of a share record over a browse"}],
        schema=pa.schema([(f.name, t) for f, t in zip(
            TRUTH.fields, [pa.string(), pa.bool_(), pa.string(), pa.float64(), pa.string()],
            strict=True)]),
    )
    lake.write_arrow(truth, "truth", "world", app_id="truth")

    out = tmp_path / "report"
    page = build_report(lake, out).read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted([
        "infnet_fig2a_ci_lift.png", "infnet_fig2b_degree_gap.png",
        "infnet_fig2c_close_neighbours.png", "infnet_fig2d_two_hop.png",
        "tie_price_history.png", "risenet_fig2a_mdsw.png", "risenet_fig2b_hub_counts.png",
        "risenet_fig2c_scale_sales.png", "risenet_fig2d_hub_sales.png",
        "risenet_fig3_dynamics.png",
    ])
    for png in pngs:
        assert f"src='{png}'" in page
        assert (out / png).stat().st_size > 5000
    assert "Planted truth" in page and "e1_lift" in page
    assert "planted effects switched on: <b>E1</b>" in page
    assert page.count("<section") == 10 + 2  # figures + all tests + run log

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
