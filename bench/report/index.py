"""The reports folder: rendered reports under one directory (``reports/`` by default) and ``index.html``
listing them.

Each report ``<name>.html`` has its executed notebook ``<name>.ipynb`` and a small JSON sidecar
``<name>.meta.json`` beside it (kind, title, models, data, preset, date, headline metrics, file name);
``build_index`` reads every sidecar in the folder and rewrites ``index.html``: one row per report,
newest first. A sidecar whose report is gone is skipped; an unreadable one is skipped with a warning.
The index is one offline HTML file (no script, every string escaped), rebuilt after each render.
"""
from __future__ import annotations

import html
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.files import atomic_write, write_json
from bench.metrics import specs
from bench.report.render import render_notebook
from bench.report.tables import fmt

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".meta.json"
INDEX_NAME = "index.html"
# The metrics the index shows per model, when a run has them: the headline ones of bench.metrics.specs, which
# the reports also show first (one list, so the index and the reports agree).
HEADLINE = specs.HEADLINE
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def report_name(kind: str, models: list[str], when: datetime | None = None) -> str:
    """``compare-julnet-wav2lip-20250101-120000``: a file-name-safe stem from the kind and model names."""
    when = when or datetime.now(timezone.utc)
    models_part = "-".join(_SAFE.sub("_", m).strip("_") or "run" for m in models)[:80].rstrip("-_")
    return f"{kind}-{models_part or 'runs'}-{when.strftime('%Y%m%d-%H%M%S')}"


def unique_report_path(reports_dir: Path, stem: str) -> Path:
    """``reports_dir/stem.html``, or ``stem-2.html``, ... when taken."""
    path, n = reports_dir / f"{stem}.html", 2
    while path.exists() or path.with_suffix(SIDECAR_SUFFIX).exists():
        path, n = reports_dir / f"{stem}-{n}.html", n + 1
    return path


def sidecar_path(report: Path) -> Path:
    return report.with_name(report.stem + SIDECAR_SUFFIX)


def headline(summary: dict) -> dict[str, float | None]:
    """The HEADLINE metrics a summary.json has: name -> value (None when NaN or null)."""
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    out = {}
    for name in HEADLINE:
        entry = metrics.get(name)
        if isinstance(entry, dict):
            value = entry.get("value")
            out[name] = float(value) if isinstance(value, (int, float)) and value == value else None
    return out


def write_sidecar(report: Path, meta: dict[str, Any]) -> Path:
    """Record what the index shows about ``report`` (its file name is added)."""
    path = sidecar_path(report)
    write_json(path, {**meta, "report": report.name})
    return path


def _read_sidecars(reports_dir: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(reports_dir.glob(f"*{SIDECAR_SUFFIX}")):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); left out of the index", path, type(exc).__name__)
            continue
        if not isinstance(meta, dict) or not (reports_dir / str(meta.get("report", ""))).is_file():
            continue
        entries.append(meta)
    return sorted(entries, key=lambda m: str(m.get("created", "")), reverse=True)


_STYLE = """<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 28px 32px; color: #222; }
h1 { font-size: 24px; margin: 0 0 4px 0; } .sub { color: #666; font-size: 13px; margin-bottom: 16px; }
table { border-collapse: collapse; font-size: 13px; } th, td { padding: 6px 14px; border-bottom: 1px solid #e4e4e4;
  text-align: left; vertical-align: top; } thead th { border-bottom: 2px solid #999; background: #fafafa; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; } .kind { color: #666; font-size: 12px; }
.muted { color: #999; } code { font-size: 12px; }
</style>"""


def _headline_cell(meta: dict[str, Any]) -> str:
    lines = []
    for model, values in (meta.get("headline") or {}).items():
        if not isinstance(values, dict):
            continue
        parts = " · ".join(f"{html.escape(str(k))} {fmt(v)}" for k, v in values.items())
        lines.append(f"<b>{html.escape(str(model))}</b> {parts}")
    return "<br>".join(lines) or '<span class="muted">—</span>'


def build_index(reports_dir: Path) -> Path:
    """(Re)write ``reports_dir/index.html`` from the sidecars there; return its path."""
    reports_dir = Path(reports_dir)
    rows = []
    for meta in _read_sidecars(reports_dir):
        esc = html.escape
        models = ", ".join(esc(str(m)) for m in meta.get("models") or []) or "—"
        created = str(meta.get("created") or "")
        rows.append(
            f'<tr><td><a href="{esc(str(meta["report"]))}">{esc(str(meta.get("title") or meta["report"]))}</a>'
            f'<br><span class="kind">{esc(str(meta.get("kind") or ""))}</span></td><td>{models}</td>'
            f'<td>{esc(str(meta.get("data") or "—"))}</td><td>{esc(str(meta.get("preset") or "—"))}</td>'
            f'<td class="num">{esc(created[:19].replace("T", " "))}</td><td class="num">{_headline_cell(meta)}</td></tr>')
    body = ("<table><thead><tr><th>report</th><th>model(s)</th><th>data</th><th>preset</th><th>date (UTC)</th>"
            f"<th>headline metrics</th></tr></thead><tbody>{''.join(rows)}</tbody></table>" if rows
            else '<p class="muted">No reports yet: run <code>bench compare RUN_DIR RUN_DIR --report</code>.</p>')
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>talkbench reports</title>{_STYLE}'
            f'</head><body><h1>talkbench reports</h1><div class="sub">{len(rows)} report(s) in '
            f'<code>{html.escape(str(reports_dir.resolve()))}</code>; rebuilt after each render</div>{body}'
            "</body></html>\n")
    out = reports_dir / INDEX_NAME
    atomic_write(out, page)
    return out


def publish(name: str, parameters: dict[str, Any], meta: dict[str, Any], *, reports_dir: Path | None = None,
            out: Path | None = None, cwd: Path | None = None, timeout_s: int = 600) -> Path:
    """Render notebook ``name`` into the reports folder and list it in its index; return the HTML's path.

    ``out``: the report's path (default ``reports_dir/<kind>-<models>-<time>.html``); the index is rebuilt
    only when the report lands in ``reports_dir``. ``meta``: the sidecar (title, kind, models, data,
    preset, headline). A failing notebook raises ReportError and leaves any older report and index as
    they were.
    """
    reports_dir = Path(reports_dir if reports_dir is not None else "reports").expanduser().resolve()
    if out is None:
        reports_dir.mkdir(parents=True, exist_ok=True)
        names = list(meta.get("model_names") or meta.get("models") or [])
        out = unique_report_path(reports_dir, report_name(str(meta.get("kind", "report")), names))
    out = Path(out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    title = str(meta.get("title") or out.stem)
    render_notebook(name, parameters, out, title, str(meta.get("subject") or title), cwd=cwd or out.parent,
                    timeout_s=timeout_s)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_sidecar(out, {**{k: v for k, v in meta.items() if k != "subject"}, "created": created})
    if out.parent == reports_dir:
        build_index(reports_dir)
    return out


def compare_meta(runs: list[Any], baseline: Any) -> dict[str, Any]:
    """The sidecar of a comparison report from ``bench.harness.compare.RunData`` runs (baseline first)."""
    ordered = [baseline, *(r for r in runs if r is not baseline)]
    data = baseline.manifest.get("data") if isinstance(baseline.manifest.get("data"), dict) else {}
    digest = str(data.get("hash") or data.get("gt_hash") or "")
    presets = sorted({r.preset for r in runs if r.preset})
    return {"kind": "compare", "title": "Comparison: " + " vs ".join(r.label for r in ordered),
            "models": [r.label for r in ordered], "model_names": list(dict.fromkeys(r.model for r in ordered)),
            "baseline": baseline.label,
            "runs": [str(r.path.resolve()) for r in ordered],
            "data": f"{data.get('source', '?')} · {digest[:12]}" if data else None,
            "preset": ", ".join(presets) or None,
            "headline": {r.label: headline(r.summary) for r in ordered},
            "subject": "runs " + ", ".join(str(r.path) for r in ordered)}


def run_meta(run_dir: Path, kind: str, title: str) -> dict[str, Any]:
    """The sidecar of a report on one run directory (its manifest and summary.json)."""
    def read(name: str) -> dict[str, Any]:
        try:
            value = json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    manifest, summary = read("manifest.json"), read("summary.json")
    model = str(summary.get("model") or manifest.get("model") or run_dir.name)
    data = manifest.get("data") if isinstance(manifest.get("data"), dict) else {}
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    digest = str(data.get("hash") or "")
    return {"kind": kind, "title": f"{model} · {title}", "models": [model], "model_names": [model],
            "runs": [str(run_dir.resolve())], "data": f"{data.get('source', '?')} · {digest[:12]}" if data else None,
            "preset": config.get("preset"), "headline": {model: headline(summary)},
            "subject": f"run directory {run_dir}"}
