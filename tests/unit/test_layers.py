"""The layers hold: import-linter accepts the tree and refuses an import that runs back up; the
architecture page names only files that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "connectors", "events", "rules", "workers", "ops")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_copy(tmp_path: Path, upward: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run import-linter on a copy of the packages, optionally with one extra import appended."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    if upward is not None:
        module, imported = upward.split(" imports ")
        path = tmp_path / (module.replace(".", "/") + ".py")
        path.write_text(path.read_text() + f"\nimport {imported}  # deliberately upward\n")
    return subprocess.run(
        [str(LINT_IMPORTS)], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True
    )


def test_the_tree_keeps_its_layers(tmp_path: Path) -> None:
    """The packages as they are: every contract kept."""
    result = lint_copy(tmp_path)
    assert result.returncode == 0, result.stdout


def test_an_upward_import_breaks_the_build(tmp_path: Path) -> None:
    """A connector that imports the operator surfaces is reported, naming the offending line."""
    result = lint_copy(tmp_path, "connectors.payloads imports ops")
    assert result.returncode != 0
    assert "connectors is not allowed to import ops" in result.stdout
    assert "connectors.payloads -> ops" in result.stdout


def test_the_architecture_page_names_real_files() -> None:
    """Every path docs/architecture.md mentions exists, so a reader following it never hits a gap."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    paths = set(re.findall(r"`((?:ops|workers|rules|events|connectors|schemas)/[\w/.]*?)`", page))
    assert paths
    missing = [p for p in sorted(paths) if "<" not in p and not (ROOT / p).exists()]
    assert missing == []
