"""The import layering (import-linter contracts in pyproject.toml) and a light command line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    # The checkout under test first, whatever is installed (editable installs may point elsewhere).
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _lint_imports() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.is_file() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports not found: install the dev extra (pip install -e '.[dev]')")
    return found


def test_import_contracts_hold():
    result = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_contracts_name_every_harness_module():
    """The forbidden list must grow with bench, or a new module would escape the contracts."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["id"] == "models-see-only-the-protocol")
    harness = {f"bench.{path.stem}" for path in (ROOT / "bench").glob("*.py")} - {"bench.__init__", "bench.api"}
    harness |= {f"bench.{path.parent.name}" for path in (ROOT / "bench").glob("*/__init__.py")} - {"bench.blocks"}
    assert harness == set(contract["forbidden_modules"])


LIGHT = """
import contextlib, io, sys
import bench.cli
with contextlib.redirect_stdout(io.StringIO()):
    for argv in (["ls"], ["--help"]):
        try:
            bench.cli.main(argv)
        except SystemExit:
            pass
heavy = sorted(m for m in ("torch", "torchvision", "lpips", "bench.harness.scorer", "bench.harness.evaluate") if m in sys.modules)
print(",".join(heavy))
"""


def test_help_and_ls_import_no_torch():
    result = subprocess.run([sys.executable, "-c", LIGHT], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"`bench ls` / `bench --help` imported {result.stdout.strip()}"
