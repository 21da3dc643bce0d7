"""The two engines stay apart (README, "Layout"): the Spark side never imports torch, the torch
side never imports pyspark (it reads the lake with delta-rs, no JVM), and the contracts both
sides share import neither engine."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "jobs": {"torch", "torch_geometric", "models"},
    "pipeline": {"torch", "torch_geometric", "models", "jobs"},
    "models": {"pyspark", "delta", "pipeline", "jobs"},
}
#: Besides the standard library, the only packages ``contracts`` may import.
CONTRACTS_MAY_IMPORT = {"pyarrow", "contracts", "__future__"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_on_their_side(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_contracts_import_neither_engine():
    paths = sorted((ROOT / "contracts").rglob("*.py"))
    assert paths, "contracts/ is empty"
    offenders = []
    for path in paths:
        bad = {m for m in _imports(path)
               if m not in sys.stdlib_module_names and m not in CONTRACTS_MAY_IMPORT}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_every_system_has_both_sides_and_a_contract():
    """A system is one folder per engine plus one contract module (and mirrored tests)."""
    spark = {p.name for p in (ROOT / "pipeline" / "systems").iterdir() if p.is_dir()
             and (p / "__init__.py").exists()}
    torch_side = {p.name for p in (ROOT / "models" / "systems").iterdir() if p.is_dir()
                  and (p / "__init__.py").exists()}
    contracts = {p.stem for p in (ROOT / "contracts").glob("*.py")
                 if "SCHEMA_VERSION = " in p.read_text()}  # runs.py etc. are not systems
    assert spark == torch_side == contracts, (spark, torch_side, contracts)
    for system in contracts:
        for side in ("pipeline", "models"):
            assert (ROOT / "tests" / side / "systems" / system).is_dir(), (side, system)
