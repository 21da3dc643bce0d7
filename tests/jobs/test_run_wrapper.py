"""A job whose write loses to a concurrent writer ends in one line and exit status 2."""

from __future__ import annotations

import pytest

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


def test_main_blocks_bind_no_name_the_module_defines():
    """``python -m jobs.X`` runs the module's ``__main__`` block at module scope: a name it
    imports there (``from jobs import run``) replaces the module's own function of that name
    for every call made after it, ``main``'s included."""
    import ast
    from pathlib import Path

    import jobs

    for path in sorted(Path(jobs.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        for node in tree.body:
            if not (isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)):
                continue
            bound = {
                (alias.asname or alias.name).split(".")[0]
                for stmt in ast.walk(node) if isinstance(stmt, ast.Import | ast.ImportFrom)
                for alias in stmt.names
            } | {
                target.id
                for stmt in ast.walk(node) if isinstance(stmt, ast.Assign)
                for target in stmt.targets if isinstance(target, ast.Name)
            }
            assert not bound & defined, f"{path.name}: __main__ rebinds {sorted(bound & defined)}"


def _job_files():
    from pathlib import Path

    import jobs

    return sorted(p for p in Path(jobs.__file__).parent.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", _job_files(), ids=lambda p: p.name)
def test_every_job_runs_as_a_file(path, tmp_path):
    """``spark-submit jobs/X.py`` runs the file with ``jobs/`` first on the path (and the
    repository too, when installed or on ``PYTHONPATH``): ``jobs/pipeline.py`` must not hide
    the ``pipeline`` package from any job."""
    import os
    import subprocess
    import sys

    root = path.parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, str(path), "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout
