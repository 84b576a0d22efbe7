"""The package dependency rule of DESIGN.md, checked on every import statement of our code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"gridwatch", "edge_agent", "gateway", "cloud", "device_profiles", "simulators"}
ALLOWED = {
    "device_profiles": set(),
    "gateway": set(),
    "edge_agent": {"device_profiles", "gateway"},
    "cloud": {"gateway"},
    "simulators": {"device_profiles", "gateway"},
    "gridwatch": OURS,
}


def imported_packages(path: Path) -> set[str]:
    """Return the top-level packages of ours that a module imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_design_allows(package: str) -> None:
    """No module of a package imports a package of ours that DESIGN.md does not allow it to."""
    allowed = ALLOWED[package] | {package}
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - allowed)
        for path in (ROOT / package).rglob("*.py")
        if imported_packages(path) - allowed
    }
    assert offenders == {}
