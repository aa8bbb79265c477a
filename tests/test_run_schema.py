"""The run directory's schema_version: written by every run, and a newer one is refused with one line."""
import json

import pytest

from bench.cli import main
from bench.harness.rundir import SCHEMA_VERSION, RunDirError, new_manifest, read_manifest
from fake_run import make_fake_run


def _set_version(run_dir, version):
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = version
    path.write_text(json.dumps(manifest))
    return path


def test_every_new_manifest_records_the_schema_version():
    manifest = new_manifest("julnet", {}, 0)
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert next(iter(manifest)) == "schema_version"  # first thing a reader sees


def test_read_manifest_accepts_this_and_older_versions(tmp_path):
    run = make_fake_run(tmp_path / "run")
    _set_version(run, SCHEMA_VERSION)
    assert read_manifest(run)["schema_version"] == SCHEMA_VERSION
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.pop("schema_version")
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert "schema_version" not in read_manifest(run)  # written before versions existed: version 0


def test_a_newer_run_directory_is_refused_in_one_line(tmp_path, capsys):
    run = make_fake_run(tmp_path / "run")
    path = _set_version(run, SCHEMA_VERSION + 1)
    with pytest.raises(RunDirError, match="newer than this talkbench reads"):
        read_manifest(run)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and "schema_version" in err
    assert not (run / "report.html").exists()  # nothing rendered or overwritten


def test_compare_refuses_a_newer_run_directory(tmp_path, capsys):
    old, new = make_fake_run(tmp_path / "a"), make_fake_run(tmp_path / "b")
    path = _set_version(new, SCHEMA_VERSION + 1)
    assert main(["compare", str(old), str(new)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and "newer than this talkbench reads" in err
