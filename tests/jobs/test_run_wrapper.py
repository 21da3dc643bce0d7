"""A job whose write loses to a concurrent writer ends in one line and exit status 2."""

from __future__ import annotations

from jobs import run
from pipeline.lake import ConcurrentWriteError


def test_concurrent_write_is_one_line_and_exit_2(capsys):
    def main() -> int:
        raise ConcurrentWriteError("raw/shares: another writer committed first; re-run it")

    assert run("ingest", main) == 2
    err = capsys.readouterr().err
    assert err == "ingest: error: raw/shares: another writer committed first; re-run it\n"


def test_other_outcomes_pass_through():
    assert run("observe", lambda: 0) == 0
    assert run("observe", lambda: 3) == 3
