"""Steps run in order, each accounted for by what it committed to the lake; a failure stops."""

from __future__ import annotations

import json

import pyarrow as pa

from pipeline.end_to_end import Step, commit_rows, run_steps, summary_table


def test_commit_rows_reads_writes_and_merges():
    assert commit_rows({"numOutputRows": "12", "numFiles": "1"}) == 12
    assert commit_rows({"numTargetRowsInserted": "3", "numTargetRowsUpdated": "2",
                        "numTargetRowsDeleted": "9"}) == 5
    assert commit_rows(None) == 0


def test_each_step_counts_its_own_commits_and_a_failure_stops_the_run(spark, lake):
    calls = []

    def write(rows):
        def main(argv):
            calls.append(argv)
            lake.write_arrow(pa.table({"x": list(range(rows))}), "raw", "things")
            print(json.dumps({"wrote": rows}))
            return 0
        return main

    def fail(argv):
        calls.append(argv)
        return 3

    steps = [
        Step("first", write(3), ["--a"], "python -m jobs.first"),
        Step("second", write(2), [], "python -m jobs.second"),
        Step("broken", fail, [], "python -m jobs.broken"),
        Step("never", write(5), [], "python -m jobs.never"),
    ]
    seen = []
    results = run_steps(lake, steps, on_end=lambda done: seen.append([r.name for r in done]))
    assert calls == [["--a"], [], []]  # "never" did not run
    assert seen == [["first"], ["first", "second"], ["first", "second", "broken"]]
    assert [r.name for r in results] == ["first", "second", "broken"]
    # Both writes went to raw/things; each step counts only its own commit.
    assert [r.tables for r in results] == [{"raw/things": 3}, {"raw/things": 2}, {}]
    assert [r.exit_code for r in results] == [0, 0, 3]
    assert results[0].summary == {"wrote": 3}
    assert results[0].peak_driver_gib > 0
    table = summary_table(results)
    assert table.splitlines()[2].split()[:5] == ["first", "0", f"{results[0].seconds:.1f}", "1",
                                                 "3"]
    assert table.splitlines()[-1].split()[-2] == "5"  # rows over all steps


def test_an_exception_ends_the_step_as_exit_code_1(lake):
    def boom(argv):
        raise FileNotFoundError("no table raw/shares")

    (result,) = run_steps(lake, [Step("observe", boom, [], "python -m jobs.observe"),
                                 Step("after", boom, [], "python -m jobs.after")])
    assert (result.exit_code, result.error) == (1, "FileNotFoundError: no table raw/shares")
