"""``python -m jobs.generate_world``: every WorldConfig field from YAML and ``--set``, the
order in which they win, and exit code 2 naming the field on a bad one (no Spark needed)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.generate_world import parse_args
from pipeline.world import DEFAULT_EFFECTS, EFFECTS, WorldConfig
from pipeline.world.config import field_types

REPO = Path(__file__).resolve().parents[2]


def world_of(*argv: str) -> WorldConfig:
    return parse_args(["--lake", "unused", *argv]).world


def exit_message(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        world_of(*argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_defaults_are_worldconfigs():
    assert world_of() == WorldConfig()


def test_yaml_then_flags_then_set(tmp_path):
    config = tmp_path / "world.yaml"
    config.write_text(
        "seed: 3\n"
        "weeks: 6\n"
        "start: 2026-01-12\n"
        "effects: [E1, E3, E9]\n"
        "e9_tie: 1.5\n"
        "hops: 4\n"
        "fanout: 3\n"
    )
    cfg = world_of(
        "--config", str(config),
        "--seed", "9",  # a flag wins over the YAML
        "--weeks", "8",
        "--set", "weeks=10",  # --set wins over the flag and the YAML
        "--set", "hops=2",
        "--set", "e3_close=0.25",
        "--share-records", "5000",
    )
    assert cfg == WorldConfig(
        share_records=5000,
        seed=9,
        weeks=10,
        start=dt.date(2026, 1, 12),
        effects=frozenset({"E1", "E3", "E9"}),
        e9_tie=1.5,
        hops=2,
        fanout=3.0,
        e3_close=0.25,
    )


def test_effects_flag_and_set_parse_like_today():
    assert world_of("--effects=-E2").effects == frozenset(DEFAULT_EFFECTS) - {"E2"}
    assert world_of("--effects=+E10").effects == frozenset(EFFECTS)
    assert world_of("--effects", "none", "--set", "effects=E1,e4").effects == {"E1", "E4"}


def test_unknown_key_names_it_and_lists_the_valid_ones(capsys, tmp_path):
    err = exit_message(capsys, "--set", "e10_lift=1")
    assert "unknown WorldConfig field 'e10_lift'" in err
    assert all(name in err for name in field_types())
    config = tmp_path / "world.yaml"
    config.write_text("seed: 3\nfan_out: 2\n")
    err = exit_message(capsys, "--config", str(config))
    assert f"--config {config}: unknown WorldConfig field 'fan_out'" in err


def test_bad_value_names_the_field_and_the_type(capsys, tmp_path):
    assert "hops: expected an integer, got '2.5'" in exit_message(capsys, "--set", "hops=2.5")
    assert "fanout: expected a number, got 'many'" in exit_message(capsys, "--set", "fanout=many")
    config = tmp_path / "world.yaml"
    config.write_text("start: yesterday\n")
    assert "start: expected a date YYYY-MM-DD, got 'yesterday'" in exit_message(
        capsys, "--config", str(config)
    )
    assert "unknown effects ['E11']" in exit_message(capsys, "--set", "effects=E11")


def test_a_world_that_cannot_be_is_an_error(capsys, tmp_path):
    assert "start must be a Monday" in exit_message(capsys, "--set", "start=2026-01-06")
    assert "expected KEY=VALUE" in exit_message(capsys, "--set", "seed")
    assert "world.yaml" in exit_message(capsys, "--config", str(tmp_path / "world.yaml"))


def test_the_module_exits_2_before_starting_spark():
    done = subprocess.run(
        [sys.executable, "-m", "jobs.generate_world", "--lake", "unused", "--set", "sed=3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "unknown WorldConfig field 'sed'" in done.stderr
    assert "Spark" not in done.stderr
