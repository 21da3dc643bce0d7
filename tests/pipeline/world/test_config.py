"""WorldConfig: effects, checks, and setting every field by name from text or YAML."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.world import DEFAULT_EFFECTS, EFFECTS, WorldConfig, parse_effects
from pipeline.world.config import (
    ConfigError,
    assignments,
    field_types,
    field_value,
    world_config,
    yaml_values,
)


def test_parse_effects():
    assert parse_effects("all") == frozenset(EFFECTS)
    assert parse_effects("none") == frozenset()
    assert parse_effects("e1, E3") == {"E1", "E3"}
    # "-" and "+" change the default set, which leaves E10 out
    assert "E10" in EFFECTS and "E10" not in DEFAULT_EFFECTS
    assert WorldConfig().effects == frozenset(DEFAULT_EFFECTS)
    assert parse_effects("-E2") == frozenset(DEFAULT_EFFECTS) - {"E2"}
    assert parse_effects("+E10") == frozenset(EFFECTS)
    assert parse_effects("-E8, +e10") == frozenset(EFFECTS) - {"E8"}
    assert parse_effects("e10") == {"E10"}
    with pytest.raises(ValueError, match="E11"):
        parse_effects("E1,E11")


def test_config_rejects_bad_start():
    with pytest.raises(ValueError, match="Monday"):
        WorldConfig(start=dt.date(2026, 1, 6))


def test_field_types_cover_every_field():
    types = field_types()
    assert list(types)[:5] == ["share_records", "seed", "weeks", "start", "effects"]
    assert len(types) == 51
    assert types["e9_tie"] is float and types["hops"] is int and types["start"] is dt.date
    assert types["coupon_cold"] is float
    assert types["e10_repeat"] is float and types["e10_tau_days"] is float


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("seed", "11", 11),
        ("seed", 11, 11),
        ("fanout", "2.5", 2.5),
        ("fanout", 3, 3.0),  # a YAML integer for a float field
        ("e9_tie", "1e-1", 0.1),  # PyYAML reads 1e-1 as text
        ("start", "2026-01-12", dt.date(2026, 1, 12)),
        ("start", dt.date(2026, 1, 12), dt.date(2026, 1, 12)),
        ("effects", "-E2,-E9", frozenset(DEFAULT_EFFECTS) - {"E2", "E9"}),
        ("effects", ["e1", "E3"], frozenset({"E1", "E3"})),
        ("effects", [], frozenset()),
    ],
)
def test_field_value_casts_to_the_fields_type(name, value, expected):
    got = field_value(name, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("seed", "abc", "seed: expected an integer, got 'abc'"),
        ("seed", 1.5, "seed: expected an integer, got 1.5"),
        ("seed", True, "seed: expected an integer, got True"),
        ("fanout", "wide", "fanout: expected a number"),
        ("fanout", "inf", "fanout: expected a number"),
        ("start", "2026-13-01", "start: expected a date YYYY-MM-DD"),
        ("start", dt.datetime(2026, 1, 12, 8), "start: expected a date YYYY-MM-DD"),
        ("effects", "E1,E11", "unknown effects ['E11']"),
        ("effects", 3, "effects: expected all, none"),
    ],
)
def test_field_value_names_the_field_and_the_type(name, value, expected):
    with pytest.raises(ConfigError) as err:
        field_value(name, value)
    assert expected in str(err.value)


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        field_value("e10_lift", 1.0)
    message = str(err.value)
    assert "'e10_lift'" in message
    assert all(name in message for name in field_types())


def test_world_config_sets_fields_and_keeps_the_defaults():
    cfg = world_config({"seed": "3", "e9_tie": "1.5", "effects": "none"})
    assert cfg == WorldConfig(seed=3, e9_tie=1.5, effects=frozenset())
    assert world_config({}) == WorldConfig()
    with pytest.raises(ValueError, match="at least 100"):
        world_config({"share_records": "50"})


def test_assignments_last_wins_and_checks_keys():
    assert assignments(["seed=3", "effects=E1,E3", "seed=4"]) == {"seed": "4", "effects": "E1,E3"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        assignments(["seed"])
    with pytest.raises(ConfigError, match="unknown WorldConfig field 'sed'"):
        assignments(["sed=3"])


def test_yaml_values():
    text = "seed: 3\nstart: 2026-01-12\neffects: [E1, E3]\ne9_tie: 1.5\n"
    assert yaml_values(text, "w.yaml") == {
        "seed": 3, "start": dt.date(2026, 1, 12), "effects": ["E1", "E3"], "e9_tie": 1.5
    }
    assert yaml_values("", "w.yaml") == {}
    with pytest.raises(ConfigError, match="w.yaml: expected a mapping"):
        yaml_values("- seed\n", "w.yaml")
    with pytest.raises(ConfigError, match="w.yaml: unknown WorldConfig field 'seeds'"):
        yaml_values("seeds: 3\n", "w.yaml")
    with pytest.raises(ConfigError, match="w.yaml: not valid YAML"):
        yaml_values("seed: [3\n", "w.yaml")


def test_config_rejects_bad_e10_strengths():
    with pytest.raises(ValueError, match="e10_repeat"):
        WorldConfig(e10_repeat=1.5)
    with pytest.raises(ValueError, match="e10_tau_days"):
        WorldConfig(e10_tau_days=0.0)
