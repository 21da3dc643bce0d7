"""Bad command lines of the jobs that bring data in: exit 2 and one line on stderr naming the
problem, never a file's contents; checked before a Spark session starts, so nothing is written."""

from __future__ import annotations

import pytest

from jobs import build_shards, import_cascades
from jobs import ingest as ingest_job
from pipeline.lake import InvalidNameError, Lake

SHARES = "sender_id,receiver_id,item_id,ts\n1,2,3,2024-01-01 10:00:00\n"


@pytest.fixture
def no_spark(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a Spark session was started before the command line was checked")

    monkeypatch.setattr("pipeline.session.get_spark", refuse)


def one_error_line(capsys, job: str) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"{job}: error: ")
    return lines[0]


def test_lake_that_is_a_file_is_one_line(tmp_path, capsys, no_spark):
    source = tmp_path / "shares.csv"
    source.write_text(SHARES)
    not_a_folder = tmp_path / "lake.txt"
    not_a_folder.write_text("a file, not a lake\n")
    for lake in (not_a_folder, not_a_folder / "lake"):
        argv = ["--lake", str(lake), "--table", "shares", "--input", str(source)]
        assert ingest_job.main([*argv, "--format", "csv"]) == 2
        line = one_error_line(capsys, "ingest")
        assert str(not_a_folder) in line and "not a folder" in line
    assert not_a_folder.read_text() == "a file, not a lake\n"


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_wrong_input_is_named_not_quoted(tmp_path, capsys, no_spark, fmt):
    system_file = tmp_path / "etc" / "passwd"
    system_file.parent.mkdir()
    system_file.write_text("root:x:0:0:keep-this-private:/root:/bin/bash\n")
    link = tmp_path / f"shares.{fmt}"
    link.symlink_to(system_file)
    lake = tmp_path / "lake"
    argv = ["--lake", str(lake), "--table", "shares", "--input", str(link), "--format", fmt]
    assert ingest_job.main(argv) == 2
    line = one_error_line(capsys, "ingest")
    assert str(link) in line
    assert "keep-this-private" not in line and "root:" not in line
    assert not lake.exists()


BAD_NAMES = ["../../../escaped", "ndm/x", "..", ".hidden", "", "a b", "_delta_log", "x\ny"]


def test_dataset_names_that_leave_the_lake_are_refused(tmp_path, capsys, no_spark):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("a,1 b,2\n")
    test.write_text("b,1 c,2\n")
    lake = tmp_path / "deep" / "lake"
    files = ["--train", str(train), "--test", str(test)]
    for name in BAD_NAMES:
        assert import_cascades.main(["--lake", str(lake), "--name", name, *files]) == 2
        assert repr(name) in one_error_line(capsys, "import_cascades")
    argv = ["--lake", str(lake), "--task", "ndm", "--name", "../../../escaped"]
    assert build_shards.main(argv) == 2
    assert "'../../../escaped'" in one_error_line(capsys, "build_shards")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.txt", "train.txt"]


def test_library_refuses_the_same_names_before_writing(tmp_path):
    from pipeline.systems.ndm.cascades import import_to_lake

    lake = Lake(tmp_path / "lake")
    for name in BAD_NAMES:
        with pytest.raises(InvalidNameError):
            import_to_lake(None, lake, name, "train.txt", "test.txt", run_id="r")
    assert not (tmp_path / "lake").exists()
