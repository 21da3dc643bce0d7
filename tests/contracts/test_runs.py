"""Run ids: same payload, same id; any change in what decides the output, a new id."""

from __future__ import annotations

import os

from contracts.runs import files_fingerprint, run_digest


def test_the_same_payload_in_any_key_order_gives_the_same_id():
    assert run_digest({"a": 1, "b": [1, 2]}) == run_digest({"b": [1, 2], "a": 1})
    assert len(run_digest({"a": 1})) == 12 and len(run_digest({"a": 1}, length=16)) == 16


def test_sets_are_ordered_and_a_changed_value_changes_the_id():
    assert run_digest({"e": frozenset({"E2", "E1"})}) == run_digest({"e": ["E1", "E2"]})
    assert run_digest({"seed": 1}) != run_digest({"seed": 2})


def test_a_touched_file_gives_a_new_fingerprint(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("x\n")
    before = run_digest(files_fingerprint([f]))
    os.utime(f, ns=(1, 1))
    assert run_digest(files_fingerprint([f])) != before
    assert files_fingerprint([f])[0][1] == 2  # size in bytes
