"""``jobs.pipeline``: its options, its plan of commands, and the same tables from a standalone
cluster of two workers as from local mode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from jobs import pipeline
from tests.jobs.standalone import ROOT, standalone_cluster

#: A world small enough for the suite on which every system's builder has rows (RiseNet's
#: windows need 12 weeks).
WORLD = ["--share-records", "1500", "--seed", "5", "--weeks", "12"]


def test_the_plan_is_the_commands_a_user_would_run():
    args = pipeline.parse_args(["--lake", "L", "--share-records", "5000", "--set",
                                "fanout=2.5", "--steps", "generate,observe,infnet",
                                "--step-args", "infnet=--queries 100 --fanout 8"])
    assert [s.command for s in pipeline.plan(args)] == [
        "python -m jobs.generate_world --lake L --share-records 5000 --set fanout=2.5",
        "python -m jobs.observe --lake L",
        "python -m jobs.build_shards --lake L --task infnet --queries 100 --fanout 8",
    ]
    assert pipeline.parse_args(["--lake", "L"]).step_list == list(pipeline.STEPS)


@pytest.mark.parametrize(("argv", "message"), [
    (["--steps", "generate,shards"], "unknown step(s) ['shards']"),
    (["--steps", "observe,observe"], "named twice"),
    (["--steps", "observe", "--step-args", "infnet=--queries 5"], "'infnet' is not in --steps"),
    (["--step-args", "--queries 5"], "expected STEP=ARGS"),
])
def test_bad_options_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        pipeline.parse_args(["--lake", "L", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_failing_step_stops_the_run_with_its_code(spark, tmp_path, capsys):
    # observe before any world: the raw tables are missing, and nothing after it runs.
    code = pipeline.main(["--lake", str(tmp_path / "lake"), "--steps", "observe,dmgnn",
                          "--summary", str(tmp_path / "s.json")])
    assert code == 2
    assert [r["step"] for r in json.loads((tmp_path / "s.json").read_text())] == ["observe"]
    err = capsys.readouterr().err
    assert "has no raw/shares, raw/purchases, raw/browses, raw/items" in err
    assert "step 'observe' failed with exit code 2" in err


def cluster_against_local(tmp_path, steps: str, world: list[str]) -> None:
    """Run ``jobs.pipeline --steps STEPS`` with ``--master spark://...`` on a cluster of two
    1-core workers (the repository's spark-defaults: 16 shuffle partitions, adaptive
    execution) and in this test session's local mode (2 shuffle partitions, no adaptive
    execution), each into its own lake (``tmp_path/cluster``, ``tmp_path/local``, which may
    hold a world already), and check that every table is the same; floats to 1e-9 relative,
    since sums over other partitions differ in their last bits."""
    from pipeline.fingerprint import lake_differences

    argv = [*world, "--steps", steps]
    with standalone_cluster(tmp_path, workers=2, cores=1, memory="1g") as (url, work):
        remote = subprocess.run(
            [sys.executable, "-m", "jobs.pipeline", "--lake", str(tmp_path / "cluster"), *argv,
             "--master", url, "--summary", str(tmp_path / "cluster.json")],
            cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert remote.returncode == 0, remote.stderr[-4000:]
        # Both workers ran executors of the application.
        assert all(list(path.glob("app-*")) for path in work), remote.stderr[-2000:]
    assert pipeline.main(["--lake", str(tmp_path / "local"), *argv]) == 0
    ran = json.loads((tmp_path / "cluster.json").read_text())
    assert [s["step"] for s in ran] == steps.split(",")
    assert all(s["rows"] > 0 for s in ran)
    assert lake_differences(str(tmp_path / "local"), str(tmp_path / "cluster")) == {}


def test_a_two_worker_cluster_builds_the_same_shards_as_local_mode(world_lake, tmp_path):
    """The shared test world's raw tables copied into two lakes, and two quick builders:
    DIPN's runs Python on the executors, DM-GNN's sorts the event stream. (Executors' first
    tasks cost most of a minute here; every step is checked under ``-m cluster``.)"""
    lake, _, _ = world_lake
    for side in ("cluster", "local"):
        for layer in ("raw", "truth"):
            shutil.copytree(f"{lake.root}/{layer}", tmp_path / side / layer)
    cluster_against_local(tmp_path, "dipn,dmgnn", [])


@pytest.mark.cluster
def test_every_step_on_a_two_worker_cluster_equals_local_mode(spark, tmp_path):
    cluster_against_local(tmp_path, ",".join(pipeline.STEPS), WORLD)
