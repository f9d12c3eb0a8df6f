"""The layer contract (pyproject.toml, [tool.importlinter]) holds for the real tree, and a wrong
arrow breaks it. The wrong arrows are written into a scratch copy of the code in a temporary
directory, never into the real tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-logo", "--no-cache", str(cwd / "pyproject.toml")],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def scratch_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python sources of `apps` and `kraken_portal` and the contract, copied."""
    copy = tmp_path_factory.mktemp("layers")
    keep_python = shutil.ignore_patterns("__pycache__", "static", "*.html", "*.js", "*.css")
    for package in ("apps", "kraken_portal"):
        shutil.copytree(ROOT / package, copy / package, ignore=keep_python)
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_real_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Layers: every arrow points down KEPT" in result.stdout
    assert "0 broken" in result.stdout


def test_the_unchanged_copy_keeps_every_contract(scratch_copy: Path) -> None:
    # The control for the cases below: only the scratch module differs.
    result = lint_imports(scratch_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "wrong_import", "broken"),
    [
        # accounts sits below audit: it must record through apps.core.trail instead.
        ("apps/accounts/scratch_arrow.py", "import apps.audit.services", "Layers"),
        ("apps/orgs/scratch_arrow.py", "import apps.vault.models", "Layers"),
        ("apps/core/scratch_arrow.py", "import apps.orgs.models", "The kernel (apps.core)"),
        ("apps/kraken/scratch_arrow.py", "import apps.core.groups", "The Kraken client"),
        ("apps/sandbox/scratch_arrow.py", "import apps.kraken.naming", "sandbox imports nothing"),
        ("apps/market/scratch_arrow.py", "import apps.sandbox.state", "imports the Kraken sandbox"),
        ("apps/orgs/scratch_arrow.py", "import kraken_portal.views", "Layers"),
    ],
)
def test_a_wrong_arrow_breaks_the_contract(
    scratch_copy: Path, module: str, wrong_import: str, broken: str
) -> None:
    scratch = scratch_copy / module
    scratch.write_text(f'"""A deliberately wrong arrow."""\n\n{wrong_import}\n')
    try:
        result = lint_imports(scratch_copy)
    finally:
        scratch.unlink()
    assert result.returncode != 0
    broken_lines = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert any(broken in line for line in broken_lines), result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout


def test_only_exchange_calls_krakens_private_methods() -> None:
    """ARCHITECTURE: apps/exchange is the only caller of Kraken's private methods, reads and the
    key permission check included; the vault only stores keys and what a check found."""
    callers = sorted(
        str(path.relative_to(ROOT))
        for package in ("apps", "kraken_portal")
        for path in (ROOT / package).rglob("*.py")
        if "kraken_private" in path.read_text()
        and not path.is_relative_to(ROOT / "apps" / "exchange")
        and not path.is_relative_to(ROOT / "apps" / "kraken")
    )
    assert callers == []
