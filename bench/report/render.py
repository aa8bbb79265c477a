"""Render a run directory into one self-contained, offline HTML report.

The report is ``notebooks/run.ipynb`` executed with papermill (parameter ``run_dir``) and
converted with nbconvert's HTMLExporter. Two things need care:

* **Kernel.** The notebook must run in *this* interpreter (the virtualenv), whatever kernelspecs
  are registered: a ``python3`` kernelspec earlier on the Jupyter path (``JUPYTER_PATH``, or the
  user's data dir outside a venv) would otherwise be launched instead. ``_CurrentPythonKernelManager``
  skips the kernelspec lookup and always launches ``sys.executable -m ipykernel_launcher``;
  papermill passes it through to nbclient as ``kernel_manager_class``.
* **Offline HTML.** nbconvert's ``lab`` template always emits ``<script src=...>`` tags pointing
  at CDNs (require.js, MathJax, mermaid; jupyter-widgets when the notebook has widget state). The
  ``talkbench-offline`` template below extends ``lab`` and empties those blocks; CSS is inlined
  by ``lab`` itself and uses system fonts, images are base64 ``data:`` URIs. As a safety net for
  future nbconvert versions, ``strip_remote_refs`` removes any remaining remote ``src``/``href``
  and logs a warning, so a reader without network never waits on (or leaks to) a CDN. It also
  drops CSS comments that quote URLs (lab's theme credits), which are inert but noisy to audit.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
import zmq
from jinja2 import DictLoader
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError
from traitlets import default

from bench.errors import BenchError
from bench.files import atomic_write, write_json
from bench.harness.rundir import REPORT_LOG, check_schema, report_failed

log = logging.getLogger(__name__)

REQUIRED_FILES = ("summary.json", "frames.parquet")
# Shipped as package data (pyproject's package-data); the repository's top-level notebooks/ links here.
NOTEBOOK_DIR: Path = Path(__file__).resolve().parent / "notebooks"


def notebook_path(name: str) -> Path:
    """The parameterised notebook ``name`` ("run": one run's report)."""
    return NOTEBOOK_DIR / f"{name}.ipynb"

_TEMPLATE_NAME = "talkbench-offline.html.j2"
_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{#- Offline variant of nbconvert's lab template: no CDN scripts at all. -#}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{#- Same as lab's data_png, plus alt text that _reader_notebook copies from the cell's "alt" metadata. -#}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
 alt="{{ (output.metadata.get('image/png') or {}).get('alt', 'figure') | escape_html }}">
</div>
{%- endblock data_png -%}
{%- block extra_css -%}
<style type="text/css">
  body.jp-Notebook { background: #fff; }
  main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 48px 32px; }
  .jp-Cell { padding: 0; }
  .jp-OutputArea-output img { max-width: 100%; height: auto; }
  .jp-RenderedHTMLCommon { font-size: 14px; line-height: 1.5; }
  .jp-RenderedHTMLCommon h2 { margin: 1.6em 0 0.5em 0; padding-bottom: 4px; border-bottom: 1px solid #e5e5e5;
                              font-size: 19px; font-weight: 600; }
  .jp-RenderedHTMLCommon table.tb-table, .jp-RenderedHTMLCommon table.tb-kv { table-layout: auto; }
  .jp-RenderedHTMLCommon table caption { text-align: left; color: #555; font-size: 12px; padding-bottom: 4px;
                                         caption-side: top; }
  .jp-OutputArea-output { overflow-x: auto; }
  .jp-MarkdownOutput.jp-RenderedHTMLCommon { padding-left: 0; }
</style>
{%- endblock extra_css -%}
"""

_REMOTE = r"""(?:https?:)?//"""
_REMOTE_ELEMENT = re.compile(
    r"""<(script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']?\s*""" + _REMOTE + r"""[^>]*>(?:\s*</script>)?""",
    re.IGNORECASE)
_REMOTE_ATTR = re.compile(r"""\s(src|href)\s*=\s*(["'])\s*""" + _REMOTE + r""".*?\2""", re.IGNORECASE | re.DOTALL)
_REMOTE_ATTR_BARE = re.compile(r"""\s(src|href)\s*=\s*""" + _REMOTE + r"""[^\s>]*""", re.IGNORECASE)
# CSS comments quoting URLs (lab's theme CSS credits its colour sources); never fetched, but they
# would make a plain `grep https://` on the report look like it had remote references.
_URL_CSS_COMMENT = re.compile(r"/\*(?:(?!\*/).)*?://.*?\*/", re.DOTALL)
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.IGNORECASE | re.DOTALL)


class ReportError(BenchError, RuntimeError):
    """The report could not be rendered; the message names the run directory and the problem.

    ``detail`` holds the notebook's full traceback (plain text) when there is one, for a log file.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _kernel_supports_curve() -> bool:
    """Both ends must know CurveZMQ keys; an older ipykernel would ignore them and never answer."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return False
    return zmq.has("curve") and "curve_secretkey" in IPKernelApp.class_trait_names()


class _CurrentPythonKernelManager(AsyncKernelManager):
    """Kernel manager that always runs ipykernel on ``sys.executable`` (this venv's python).

    It also asks for CurveZMQ transport encryption where libzmq has it, since ipykernel warns
    about (and exposes) plain-TCP traffic otherwise.
    """

    @default("transport_encryption")
    def _transport_encryption_default(self) -> str:
        return "auto" if _kernel_supports_curve() else "disabled"

    @property
    def kernel_spec(self) -> KernelSpec:
        if self._kernel_spec is None:
            self._kernel_spec = KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name=f"Python {sys.version_info.major}.{sys.version_info.minor} (talkbench)",
                language="python", metadata={"debugger": False, "supported_encryption": ["curve"]})
        return self._kernel_spec


def check_run_dir(run_dir: str | Path) -> Path:
    """Fail early, before a kernel starts, when the run directory cannot make a report."""
    run = Path(run_dir).expanduser().resolve()
    if not run.is_dir():
        raise ReportError(f"run directory {run} does not exist or is not a directory")
    missing = [name for name in REQUIRED_FILES if not (run / name).is_file()]
    if missing:
        raise ReportError(f"run directory {run} lacks {', '.join(missing)}: run `bench score` first")
    if (run / "manifest.json").is_file():
        try:
            manifest = json.loads((run / "manifest.json").read_text())
        except (OSError, ValueError):
            manifest = None  # the notebook copes without one
        if isinstance(manifest, dict):
            check_schema(manifest, run / "manifest.json")
    return run


def strip_remote_refs(html: str) -> tuple[str, list[str]]:
    """Remove remote script/link elements and remote src/href attributes; return (html, removed)."""
    removed: list[str] = []

    def _drop(match: re.Match[str]) -> str:
        removed.append(match.group(0)[:160])
        return ""

    html = _REMOTE_ELEMENT.sub(_drop, html)
    html = _REMOTE_ATTR.sub(_drop, html)
    html = _REMOTE_ATTR_BARE.sub(_drop, html)
    html = _STYLE_BLOCK.sub(lambda m: m.group(1) + _URL_CSS_COMMENT.sub("", m.group(2)) + m.group(3), html)
    return html, removed


def _model_name(run: Path) -> str:
    try:
        return str(json.loads((run / "summary.json").read_text()).get("model") or run.name)
    except (OSError, ValueError, AttributeError):
        return run.name


def _execute(notebook: Path, parameters: dict[str, Any], executed: Path, cwd: Path, subject: str,
             timeout_s: int) -> None:
    """Run ``notebook`` with papermill into ``executed``; turn failures into one-line ReportErrors."""
    try:
        pm.execute_notebook(
            str(notebook), str(executed), parameters=parameters,
            kernel_name="python3", language="python", cwd=str(cwd), progress_bar=False, log_output=False,
            start_timeout=min(120, timeout_s), execution_timeout=timeout_s,
            kernel_manager_class=_CurrentPythonKernelManager)
    except PapermillExecutionError as exc:
        detail = _ANSI.sub("", "\n".join(exc.traceback or []))
        log.debug("report notebook traceback:\n%s", detail)
        evalue = str(exc.evalue).strip().splitlines()
        raise ReportError(f"report notebook failed for {subject} in cell {exc.exec_count}: "
                          f"{exc.ename}: {evalue[0] if evalue else ''}", detail) from None
    except Exception as exc:  # kernel death, cell timeout, bad notebook: keep it to one line
        first = str(exc).strip().splitlines()
        raise ReportError(f"report notebook could not run for {subject}: "
                          f"{type(exc).__name__}: {first[0] if first else ''}",
                          "".join(traceback.format_exception(exc))) from exc


def _reader_notebook(executed: Path, title: str) -> nbformat.NotebookNode:
    """Drop what a reader should not see (cells without output, stderr streams); label images."""
    nb = nbformat.read(executed, as_version=4)
    kept = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream" and out.get("name") == "stderr":
                    log.debug("report notebook stderr: %s", "".join(out.get("text", "")).strip()[:500])
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
            if not cell.outputs:
                continue
            alt = cell.metadata.get("alt")
            for out in cell.outputs:
                if alt and "image/png" in out.get("data", {}):
                    out.setdefault("metadata", {}).setdefault("image/png", {})["alt"] = alt
        kept.append(cell)
    nb.cells = kept
    nb.metadata["title"] = title
    return nb


def to_offline_html(nb: nbformat.NotebookNode) -> str:
    """Export with the offline template, inputs and prompts hidden, then strip any remote reference."""
    exporter = HTMLExporter(
        template_name="lab", extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})], template_file=_TEMPLATE_NAME,
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True,
        theme="light", anchor_link_text="")
    body, _ = exporter.from_notebook_node(nb)
    body, removed = strip_remote_refs(body)
    if removed:
        log.warning("stripped %d remote reference(s) from the report: %s", len(removed), removed)
    return body


def render_notebook(name: str, parameters: dict[str, Any], out: Path, title: str, subject: str, cwd: Path,
                    timeout_s: int = 600) -> Path:
    """Execute notebook ``name`` with ``parameters``; write one offline HTML file to ``out`` and the executed
    notebook beside it (``out`` with ``.ipynb``: it opens in JupyterLab, to rerun with other parameters).

    ``subject`` names what is rendered in error lines ("run directory X"). Both files are replaced only
    once the new report rendered completely (atomic writes, the HTML last); a failure leaves the old ones.
    """
    notebook = notebook_path(name)
    if not notebook.is_file():
        raise ReportError(f"cannot render {subject}: report notebook not found at {notebook}")
    start = time.perf_counter()
    log.info("rendering the %s report for %s", name, subject)
    with tempfile.TemporaryDirectory(prefix="talkbench-report-") as tmp:
        executed = Path(tmp) / notebook.name
        _execute(notebook, parameters, executed, cwd, subject, timeout_s)
        html = to_offline_html(_reader_notebook(executed, title))
        atomic_write(out.with_suffix(".ipynb"), executed.read_bytes())
    atomic_write(out, html)
    log.info("wrote %s (%.0f KiB) in %.1f s", out, len(html) / 1024, time.perf_counter() - start)
    return out


def render_report(run_dir: str | Path, out_path: str | Path | None = None, timeout_s: int = 600) -> Path:
    """Execute the run notebook on ``run_dir`` and write one offline HTML file (and the executed notebook
    beside it); return the HTML's path.

    ``out_path`` defaults to ``run_dir/report.html``; ``timeout_s`` bounds each notebook cell.
    An existing report is only replaced once the new one rendered completely.
    """
    run = check_run_dir(run_dir)
    out = Path(out_path).expanduser().resolve() if out_path is not None else run / "report.html"
    return render_notebook("run", {"run_dir": str(run)}, out, f"{_model_name(run)} · talkbench report",
                           f"run directory {run}", cwd=run, timeout_s=timeout_s)


RUN_NOTEBOOKS = {"run": ("report.html", "talkbench report"), "calibration": ("calibration.html", "calibration")}


def render_run_notebook(run_dir: str | Path, notebook: str, out_path: str | Path | None = None,
                        timeout_s: int = 600) -> Path:
    """Render one of the notebooks that read a single run directory (``RUN_NOTEBOOKS``) into ``out_path``
    (default: its file name in the run directory)."""
    if notebook not in RUN_NOTEBOOKS:
        raise ReportError(f"unknown notebook '{notebook}'; choose one of {', '.join(RUN_NOTEBOOKS)}")
    run = check_run_dir(run_dir)
    name, title = RUN_NOTEBOOKS[notebook]
    out = Path(out_path).expanduser().resolve() if out_path is not None else run / name
    return render_notebook(notebook, {"run_dir": str(run)}, out, f"{_model_name(run)} · {title}",
                           f"run directory {run}", cwd=run, timeout_s=timeout_s)


def rerender_report(run_dir: str | Path) -> Path:
    """`bench report RUN_DIR`: render an existing run's report again and record the outcome in its manifest.

    Only the manifest's "report" entry changes (and "scored", a run stopped while rendering, becomes
    "complete": its results were all written). A failure is recorded, then raised as a ReportError.
    """
    run = check_run_dir(run_dir)
    path = run / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        manifest = manifest if isinstance(manifest, dict) else None
    except (OSError, ValueError):
        manifest = None  # the notebook copes without one; nothing to record into
    try:
        out = render_report(run)
        entry: dict[str, Any] = {"status": "rendered", "path": out.name}
        (run / REPORT_LOG).unlink(missing_ok=True)  # it described an earlier failure
    except ReportError as error:
        entry = report_failed(run, error)
        if manifest is not None:
            write_json(path, {**manifest, "report": entry})
        raise ReportError(f"{error}" + (f" (details in {run / REPORT_LOG})" if entry.get("log") else "")) from None
    if manifest is not None:
        status = "complete" if manifest.get("status") == "scored" else manifest.get("status")
        write_json(path, {**manifest, "status": status, "report": entry})
    return out
