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


def _lint_copy(tmp_path: Path, edits: dict[str, str]) -> str:
    """lint-imports on a copy of the packages with lines appended to some modules; returns its output."""
    for package in ("bench", "julnet", "baselines"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for module, line in edits.items():
        with open(tmp_path / module, "a") as handle:
            handle.write(f"\n{line}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode != 0, "the contracts missed a violation"
    return result.stdout


def test_contracts_catch_an_upward_import_and_a_cycle(tmp_path):
    # a metric reaching up into the harness breaks the layers; two metric modules importing each other
    # (same layer, so the layers contract allows it) break the no-cycles contract
    out = _lint_copy(tmp_path, {"bench/metrics/stats.py": "import bench.harness.run  # noqa",
                                "bench/metrics/image.py": "import bench.metrics.quality  # noqa",
                                "bench/metrics/quality.py": "import bench.metrics.image  # noqa"})
    assert "bench's layers point one way BROKEN" in out
    assert "no import cycles between sibling modules or packages, at any depth BROKEN" in out
    assert "julnet and baselines import from bench only bench.api and bench.blocks KEPT" in out


def _bench_children() -> set[str]:
    return ({path.stem for path in (ROOT / "bench").glob("*.py")} - {"__init__"}
            | {path.parent.name for path in (ROOT / "bench").glob("*/__init__.py")})


def test_forbidden_lists_name_every_bench_package():
    """A new bench module or package must be named in the models' forbidden list, or it would escape it
    (the layers contract is exhaustive by itself: lint-imports fails on a child it does not place)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {c["id"]: c for c in config["contracts"]}
    assert {f"bench.{name}" for name in _bench_children() - {"api", "blocks"}} == \
        set(contracts["models-see-only-the-protocol"]["forbidden_modules"])
    assert {f"bench.{name}" for name in _bench_children() - {"api"}} <= \
        set(contracts["protocol-stands-alone"]["forbidden_modules"])


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


def test_every_weights_entry_has_its_converters():
    """The store names converters as lazy strings: each must resolve to a function, for every entry."""
    from bench.weights import convert
    from bench.weights.table import ENTRIES

    for name, entry in ENTRIES.items():
        targets = [convert.USER_NETWORKS[name]] if entry.package is None else \
            [convert.FROM_REGISTRY[name]] + ([convert.FROM_OFFICIAL[name]] if entry.official else [])
        for target in targets:
            assert callable(convert.resolve(target)), target


def test_train_and_data_commands_do_not_reach_the_metric_stack():
    """`bench train` and `bench data` load data and models, never the scorer or a metric network (static:
    every import, function-level ones included, that their modules can reach)."""
    import grimp

    graph = grimp.build_graph("bench", "julnet", "baselines")
    for command in ("bench.cli.train", "bench.cli.data"):
        reached = graph.find_upstream_modules(command)
        heavy = sorted(m for m in reached if m.startswith(("bench.metrics", "bench.harness.scorer",
                                                           "bench.harness.evaluate", "bench.report.render")))
        assert heavy == [], f"{command} reaches {heavy}"
