"""jobs.observe end to end on the tiny hand-made world: every table, idempotent re-runs."""

from __future__ import annotations

import pytest

from pipeline.stats.observe import FIGURES
from tests.pipeline.stats import tiny_world


@pytest.mark.slow  # a minute or more: the whole run twice (test_report.py runs it once)
def test_observe_job_writes_every_statistic(spark, lake, capsys):
    from jobs import observe

    tiny_world.write_lake(spark, lake)
    # 3 weeks of data: rising-star windows of 2 + 1 weeks so that one window fits.
    args = ["--lake", str(lake.root), "--run-id", "t1", "--before-weeks", "2",
            "--after-weeks", "1", "--history-weeks", "2"]
    assert observe.main(args) == 0
    tables = set(lake.tables())
    for name in [*FIGURES, "share_features", "user_degree", "item_weekly", "tests",
                 "observe_run"]:
        assert f"stats/{name}" in tables, name
    ci = {r["item_id"]: r["ci_taocode"] for r in lake.to_arrow("stats", "conversion_index")
          .to_pylist()}
    assert ci == {10: 1 / 3, 11: 1.0, 12: 0.0}
    features = lake.to_arrow("stats", "share_features").to_pylist()
    s3 = next(r for r in features if r["sender_id"] == 2)
    assert (s3["close_neighbours"], s3["delta_weeks"], s3["sender_bought"]) == (1, 2, True)
    # s3 is in week 2: before it, user 2 had edge 1-2 (week 1) -> prior degree 1; user 4 had
    # edge 3-4 (week 1) -> 1.
    assert (s3["sender_prior_degree"], s3["receiver_prior_degree"]) == (1, 1)
    tests = lake.to_arrow("stats", "tests").to_pylist()
    assert {t["effect"] for t in tests} >= {"E1", "E2", "E3", "E4", "E5", "E6", "E8"}

    versions = {t: lake.version("stats", t) for t in ("tests", "conversion_index")}
    capsys.readouterr()
    assert observe.main(args) == 0  # same run id: nothing committed twice
    assert "(skipped)" in capsys.readouterr().out
    assert {t: lake.version("stats", t) for t in versions} == versions
