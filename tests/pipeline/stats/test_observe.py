"""The observe run's table writer: a statistic whose columns changed replaces its table, and
the lake keeps the old version for time travel."""

from __future__ import annotations


def test_write_replaces_a_table_whose_columns_changed(spark, lake):
    from pipeline.stats.observe import ObserveConfig, Observer

    lake.write(spark.createDataFrame([(1, 2.0)], "item_id long, ci double"), "stats", "demo",
               app_id="old")
    observer = Observer(spark, lake, ObserveConfig(), "r1")
    new = spark.createDataFrame([(1, 3.0, 7)], "item_id long, ci_lift double, records long")
    got = observer.write("demo", lambda: new)
    assert got.columns == ["item_id", "ci_lift", "records"]
    assert [tuple(r) for r in got.collect()] == [(1, 3.0, 7)]
    old = lake.read(spark, "stats", "demo", version=0)
    assert old.columns == ["item_id", "ci"] and old.count() == 1
    last = observer.run_log.rows[-1]
    assert (last["table"], last["rows"]) == ("demo", 1)
