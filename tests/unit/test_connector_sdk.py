"""The connector SDK guide's example (docs/examples/acme-connector) is real: it certifies, its own
tests pass, and Hookyard discovers it through the `hookyard.connectors` entry point."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from connectors.base import Connector, Signer
from connectors.certify import CHECKS, Subject

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "acme-connector"
PROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
SECRET = "acme_test_secret_0123456789abcdef"


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example's `acme_hooks` package, imported from the docs tree and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield importlib.import_module("acme_hooks")
    for name in [m for m in sys.modules if m == "acme_hooks" or m.startswith("acme_hooks.")]:
        del sys.modules[name]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_example_connector_passes_each_check(acme: ModuleType, check) -> None:
    """The guide's connector passes this certification check."""
    check(Subject(acme.connector, SECRET, examples=25))


def test_example_connector_declares_what_the_kit_reads(acme: ModuleType) -> None:
    """The example is a Connector and a Signer (so the redelivery check runs) and says it signs a
    timestamp (so the window checks run rather than the no-window one)."""
    assert isinstance(acme.connector, Connector)
    assert isinstance(acme.connector, Signer)
    assert acme.connector.timestamped is True
    assert acme.connector.name == "acme" == next(iter(PROJECT["entry-points"]["hookyard.connectors"]))


def _env(pythonpath: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKYARD_", "PYTEST_"))}
    return {**env, "PYTHONPATH": str(pythonpath), "PYTHONDONTWRITEBYTECODE": "1"}


def test_example_package_own_tests_pass(tmp_path: Path) -> None:
    """The example's tests/test_acme.py passes: `certify(connector, secret=…)` as the guide runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(EXAMPLE)],
        cwd=tmp_path,
        env=_env(EXAMPLE),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory laid out like site-packages after `pip install acme-connector`: the package and a
    dist-info whose entry point is read from the example's pyproject.toml, nothing installed."""
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE / "acme_hooks", site / "acme_hooks", ignore=shutil.ignore_patterns("__pycache__"))
    dist = site / f"{PROJECT['name'].replace('-', '_')}-{PROJECT['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {PROJECT['name']}\nVersion: {PROJECT['version']}\n"
    )
    entry_points = PROJECT["entry-points"]["hookyard.connectors"]
    (dist / "entry_points.txt").write_text(
        "[hookyard.connectors]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    )
    return site


def test_installed_example_is_listed_next_to_the_built_ins(site: Path, tmp_path: Path) -> None:
    """`hookyard connectors list --json` shows acme from acme-connector beside hookyard's own."""
    result = subprocess.run(
        [sys.executable, "-m", "ops.cli", "connectors", "list", "--json"],
        cwd=tmp_path,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = orjson.loads(result.stdout)
    assert {"name": "acme", "package": "acme-connector"} in rows
    assert {"name": "stripe", "package": "hookyard"} in rows
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)


def test_installed_example_loads_through_the_registry(site: Path, tmp_path: Path) -> None:
    """The entry point loads the connector object a source's `connector = "acme"` would get."""
    script = "from connectors import registry; c = registry.get('acme'); print(c.name, c.verify.__module__)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["acme", "acme_hooks.verify"]


GUIDE = ROOT / "docs" / "writing-a-connector.md"


def test_guide_quotes_the_example_verbatim_and_links_resolve() -> None:
    """Every line of the guide's Python excerpts (except `…` elisions) is in the example's code, and
    every relative link points at a file that exists: the guide cannot drift from what is tested."""
    guide = GUIDE.read_text()
    sources = "\n".join(p.read_text() for p in EXAMPLE.rglob("*.py"))
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    assert blocks
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    missing = [line for line in lines if line and "…" not in line and line not in sources]
    assert missing == []
    links = re.findall(r"\]\(([^)#]+)\)", guide)
    assert links
    assert [link for link in links if not (GUIDE.parent / link).exists()] == []
