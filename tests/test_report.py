"""The HTML report renders from a run directory, offline, and fails loudly and safely."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.report import NOTEBOOK_PATH, ReportError, render_report, strip_remote_refs

try:
    from fake_run import BINS, make_fake_run
except ImportError:  # tests/ imported as a package
    from tests.fake_run import BINS, make_fake_run

_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*([^"'\s>]*)""", re.IGNORECASE)


def _remote_refs(html: str) -> list[str]:
    return [v for v in _ATTR.findall(html) if re.match(r"(?:https?:)?//", v, re.IGNORECASE)]


def test_notebook_is_found() -> None:
    assert NOTEBOOK_PATH.is_file()


def test_render_full_run(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path / "run", model="julnet-fake", nan_metric="ause")
    out = render_report(run)

    assert out == (run / "report.html").resolve()
    html = out.read_text(encoding="utf-8")
    assert "julnet-fake" in html
    for name in ("psnr", "ssim", "unc_spearman", "ause", *BINS):
        assert name in html, name
    assert html.count("data:image/png;base64,") >= 3  # pose box plots, scatters, curves, sample strip
    assert _remote_refs(html) == []
    assert "<script" not in html
    assert "n/a" in html  # the NaN metric is shown as such, not as "nan"
    assert not list(run.glob(".report.html.*"))  # no temp file left behind


def test_render_degraded_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running run with an empty pose bin and no samples/curves still renders, with notes.

    A registered ``python3`` kernelspec pointing at a missing interpreter must not matter:
    the report always runs on this interpreter.
    """
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"], "language": "python",
                                                  "display_name": "broken"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    run = make_fake_run(tmp_path / "run", empty_bin="extreme", with_samples=False, with_curves=False,
                        status="running")
    out = render_report(run, out_path=tmp_path / "out" / "r.html")

    html = out.read_text(encoding="utf-8")
    assert out.parent == (tmp_path / "out").resolve()
    assert "samples.npz not found" in html and "curves.npz not found" in html
    assert "no frames" in html and "running" in html
    assert _remote_refs(html) == []


def test_missing_summary_raises_and_keeps_old_report(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path / "run", with_samples=False, with_curves=False)
    (run / "summary.json").unlink()
    old = run / "report.html"
    old.write_text("previous report")

    with pytest.raises(ReportError) as err:
        render_report(run)

    assert str(run.resolve()) in str(err.value) and "summary.json" in str(err.value)
    assert old.read_text() == "previous report"


def test_notebook_failure_is_one_line(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path / "run", with_samples=False, with_curves=False)
    (run / "frames.parquet").write_bytes(b"this is not parquet")
    old = run / "report.html"
    old.write_text("previous report")

    with pytest.raises(ReportError) as err:
        render_report(run, timeout_s=120)

    message = str(err.value)
    assert str(run.resolve()) in message
    assert re.search(r"cell \d+: \w+(Error|Invalid|Exception)\b", message), message
    assert "\n" not in message and "Traceback" not in message
    assert old.read_text() == "previous report"


def test_strip_remote_refs() -> None:
    html = ('<head><script src="https://cdn.example/require.js"></script><link rel="stylesheet" '
            'href="//fonts.example/a.css"><style>a{} /* from https://example.org */</style></head>'
            '<body><a href="http://example.org">x</a><a href="#Metrics">m</a>'
            '<img src="data:image/png;base64,AAAA"></body>')
    out, removed = strip_remote_refs(html)
    assert _remote_refs(out) == [] and "://" not in out
    assert len(removed) == 3
    assert 'href="#Metrics"' in out and "data:image/png;base64,AAAA" in out
