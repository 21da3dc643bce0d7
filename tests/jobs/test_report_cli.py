"""``python -m jobs.report`` on a lake that holds only a trainer's results: every statistics
figure says it has no data, and the results section shows the run."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from deltalake import write_deltalake

from jobs import report


def test_report_cli_on_a_results_only_lake(tmp_path, capsys):
    lake = tmp_path / "lake"
    when = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)
    rows = [{"run_id": "ndm-irvine-ndm-s3-abcd", "task": "ndm", "dataset": "irvine",
             "model": "ndm", "split": "test", "metric": metric, "value": value, "seed": 3,
             "config_hash": "abcd", "created_at": when}
            for metric, value in (("macro_f1", 0.25), ("micro_f1", 0.5))]
    write_deltalake(str(lake / "results" / "ndm"), pa.Table.from_pylist(rows))

    assert report.main(["--lake", str(lake), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "index.html")
    assert page.count("no data for this figure in the lake") == 12  # every statistics figure
    assert "<h3>ndm / irvine</h3>" in page and "src='results_ndm_irvine.png'" in page
    assert "<td>ndm</td><td>3</td><td>2026-01-05 10:00</td><td>0.250</td><td>0.500</td>" in page
