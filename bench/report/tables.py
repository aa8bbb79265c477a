"""HTML tables and number formatting for the report, built from summary.json and bench.metrics.specs.

Order, direction (↑/↓), group and the one-line note of each metric come from ``bench.metrics.specs``;
a metric the table does not know goes last, in an "other" group, with the direction summary.json
gives it. Values may be null, NaN or missing: they show as "n/a", never as "nan".
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.metrics import specs

OTHER_GROUP = "other"
_MUTED_NA = '<span class="tb-muted">n/a</span>'


def num(x: Any) -> float:
    """Float value or NaN: summary values may be null, NaN or missing."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def decimals(ref: Any) -> int:
    """Decimals showing ~4 significant digits of ``ref``, so a value and its CI line up."""
    r = abs(num(ref))
    return 3 if not math.isfinite(r) or r == 0 else int(min(6, max(0, 3 - math.floor(math.log10(r)))))


def fmt(x: Any, ref: Any = None) -> str:
    v = num(x)
    if not math.isfinite(v):
        return "n/a"
    if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-4):
        return f"{v:.3g}"
    return f"{v:,.{decimals(v if ref is None else ref)}f}"


def fmt_count(x: Any) -> str:
    v = num(x)
    return f"{int(v):,}" if math.isfinite(v) else "—"


def fmt_ci(ci: Any, ref: Any = None) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or not all(math.isfinite(num(c)) for c in ci):
        return "—"
    ref = ci[1] if ref is None or not math.isfinite(num(ref)) else ref
    return f"{fmt(ci[0], ref)} – {fmt(ci[1], ref)}"


def fmt_secs(s: Any) -> str:
    v = num(s)
    if not math.isfinite(v):
        return "—"
    return f"{v:.1f} s" if v < 60 else f"{int(v // 60)} min {v % 60:02.0f} s" if v < 3600 else f"{v / 3600:.1f} h"


def short(s: Any, n: int = 12) -> str:
    """A long hash as ``<code>`` of its first ``n`` characters, the whole of it as the tooltip."""
    s = "" if s is None else str(s)
    return f'<code title="{html.escape(s)}">{html.escape(s[:n])}{"…" if len(s) > n else ""}</code>' if s else "—"


def direction(name: str, *entries: Any) -> bool | None:
    """higher_is_better from bench.metrics.specs; for a name it does not know, the first summary entry's."""
    if specs.spec(name) is not None:
        return specs.higher_is_better(name)
    for entry in entries:
        hib = entry.get("higher_is_better") if isinstance(entry, Mapping) else None
        if hib in (True, False):
            return hib
    return None


def arrow(name: str, *entries: Any) -> str:
    hib = direction(name, *entries)
    return "↑" if hib is True else "↓" if hib is False else ""


def grouped(names: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(group, names in table order) for the groups of specs.GROUPS that occur, then "other"."""
    by_group: dict[str, list[str]] = {}
    for name in sorted(set(names), key=specs.sort_key):
        row = specs.spec(name)
        by_group.setdefault(row.group if row is not None else OTHER_GROUP, []).append(name)
    order = [*specs.GROUPS, *sorted(g for g in by_group if g not in specs.GROUPS and g != OTHER_GROUP), OTHER_GROUP]
    return [(g, by_group[g]) for g in order if g in by_group]


def _entry(value: Any) -> dict:
    return value if isinstance(value, Mapping) else {"value": value}


def _metric_cell(name: str, *entries: Any) -> str:
    row = specs.spec(name)
    title = f' title="{html.escape(row.note)}"' if row is not None else ""
    return f'<span{title}>{html.escape(name)}</span> <span class="tb-arrow">{arrow(name, *entries)}</span>'


Group = tuple[str, list[list[str]]] | tuple[str, list[list[str]], list[list[str]]]


def split_headline(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(headline, rest) of one group's names (bench.metrics.specs' ``headline``). A group with no headline
    metric (e.g. names the table does not know) shows all of them: there would be nothing to lead with."""
    lead = [n for n in names if specs.is_headline(n)]
    return (lead, [n for n in names if n not in lead]) if lead else (list(names), [])


def _colgroup(widths: Sequence[str | None]) -> str:
    return "<colgroup>" + "".join(f'<col style="width:{w}">' if w else "<col>" for w in widths) + "</colgroup>"


def _rows(rows: list[list[str]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows)


def _fold(group: str, names: Sequence[str], rows: list[list[str]], ncols: int, widths: Sequence[str | None]) -> str:
    """A full-width row holding a <details> (folded, works without JavaScript) with the group's other rows in
    a table of the same fixed column widths, so its columns line up with the outer table's."""
    listed = ", ".join(html.escape(n) for n in names)
    return (f'<tr class="tb-fold"><td colspan="{ncols}" style="padding:0;background:#fff">'
            f'<details class="tb-details tb-fold"><summary style="padding:4px 14px;font-size:12px;text-align:left;'
            f'white-space:normal">{len(rows)} more {html.escape(group)} metric{"s" if len(rows) != 1 else ""}: '
            f'<span class="tb-muted">{listed}</span></summary>'
            f'<table class="tb-table tb-inner" style="margin:0;width:100%;table-layout:fixed">{_colgroup(widths)}'
            f"<tbody>{_rows(rows)}</tbody></table></details></td></tr>")


def _table(caption: str, header: Sequence[str], groups: Sequence[Group], extra_class: str = "",
           widths: Sequence[str | None] | None = None, folded_names: Mapping[str, Sequence[str]] | None = None) -> str:
    """A tb-table; ``header`` and row cells are HTML already; a group heading row above each group's rows.

    A group given as (group, rows, folded rows) shows its folded rows in a <details> under the others
    (``widths``: the columns' fixed widths, which the folded table repeats; ``folded_names`` the names
    its summary lists).
    """
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for group, rows, *rest in groups:
        folded = rest[0] if rest else []
        body.append(f'<tr class="tb-group"><td colspan="{len(header)}">{html.escape(group)}</td></tr>')
        body.append(_rows(rows))
        if folded:
            body.append(_fold(group, (folded_names or {}).get(group, ()), folded, len(header), widths or ()))
    cls = f"tb-table {extra_class}".strip()
    layout = f' style="table-layout:fixed;width:100%">{_colgroup(widths)}' if widths else ">"
    return (f'<table class="{cls}"{layout}<caption>{caption}</caption><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def metrics_table(metrics: Mapping[str, Any], floor: Mapping[str, Any] | None = None) -> str:
    """Overall metrics: value, 95% CI, n and what the metric measures, grouped and ordered by specs.

    ``floor``: summary.json's "floor" (the copyref baseline's metrics on the same clips), a column beside
    the value when given.
    """
    floor_metrics = floor.get("metrics") if isinstance(floor, Mapping) else None
    floor_metrics = floor_metrics if isinstance(floor_metrics, Mapping) else None
    groups, folded_names = [], {}

    def row_of(name: str) -> list[str]:
        m = _entry(metrics[name])
        value = num(m.get("value"))
        row = specs.spec(name)
        about = (f'<span title="{html.escape(row.reference)}">{html.escape(row.note)}</span>'
                 if row is not None else "")
        cells = [_metric_cell(name, m), _MUTED_NA if fmt(value) == "n/a" else fmt(value),
                 fmt_ci(m.get("ci95"), value if math.isfinite(value) else None), fmt_count(m.get("n"))]
        if floor_metrics is not None:
            base = num(_entry(floor_metrics.get(name)).get("value"))
            cells.append(_MUTED_NA if fmt(base) == "n/a" else fmt(base, value if math.isfinite(value) else None))
        return [*cells, f'<span class="tb-about">{about}</span>']

    for group, names in grouped(metrics):
        lead, rest = split_headline(names)
        groups.append((group, [row_of(n) for n in lead], [row_of(n) for n in rest]))
        folded_names[group] = rest
    header, caption = ["metric", "value", "95% CI", "n"], "Overall · ↑ higher is better, ↓ lower is better"
    widths = ["17%", "10%", "17%", "7%"]
    if floor_metrics is not None:
        floor_name = html.escape(str(floor.get("model") or "baseline"))
        header.append(f"{floor_name} floor")
        widths.append("10%")
        caption += f" · {floor_name} floor: the baseline every generator must beat, scored on the same clips"
    caption += " · the other metrics of each group are folded under its headline ones"
    return _table(caption, header + ['<span class="tb-about-h">what it measures</span>'], groups, "tb-overall",
                  widths=[*widths, None], folded_names=folded_names)


def pose_table(metrics: Mapping[str, Any], by_pose: Mapping[str, Any], bins: Sequence[str],
               bin_counts: Mapping[str, int]) -> tuple[str, bool]:
    """Metrics x pose bins, each value with its 95% CI below and the worst bin per metric in red bold;
    headline metrics first in each group, the others folded (as in ``metrics_table``).

    Returns (html, whether any worst bin was marked): ties and metrics with no direction have none.
    A bin missing from ``by_pose`` reads "no frames".
    """
    names = set(metrics) | {n for b in by_pose.values() if isinstance(b, Mapping) for n in b}
    marked = []

    def row_of(name: str) -> list[str]:
        overall_entry = metrics.get(name)
        entries = {b: (by_pose.get(b) or {}).get(name) for b in bins}
        hib = direction(name, overall_entry, *entries.values())
        values = {b: num(_entry(e).get("value")) if e is not None else float("nan") for b, e in entries.items()}
        finite = {b: v for b, v in values.items() if math.isfinite(v)}
        overall = num(_entry(overall_entry).get("value")) if overall_entry is not None else float("nan")
        refs = [abs(x) for x in (overall, *finite.values()) if math.isfinite(x)]
        ref = max(refs) if refs else float("nan")
        worst = None
        if len(set(finite.values())) >= 2 and hib in (True, False):  # ties have no worst bin
            worst = (min if hib else max)(finite, key=finite.get)
            marked.append(name)
        cells = [_metric_cell(name, overall_entry, *entries.values()),
                 _MUTED_NA if fmt(overall) == "n/a" else fmt(overall, ref)]
        for b in bins:
            if b not in by_pose:
                cells.append('<span class="tb-muted">no frames</span>')
                continue
            if b not in finite:
                cells.append(_MUTED_NA)
                continue
            text = f'<span class="{"tb-worst" if b == worst else ""}">{fmt(values[b], ref)}</span>'
            ci = fmt_ci(_entry(entries[b]).get("ci95"), ref)
            cells.append(text + (f'<br><span class="tb-ci">{ci}</span>' if ci != "—" else ""))
        return cells

    groups, folded_names = [], {}
    for group, group_names in grouped(names):
        lead, rest = split_headline(group_names)
        groups.append((group, [row_of(n) for n in lead], [row_of(n) for n in rest]))
        folded_names[group] = rest
    header = ["metric", "all", *(f'{html.escape(b)}<br><span class="tb-n">{bin_counts.get(b, 0)} frames</span>'
                                 for b in bins)]
    widths = ["17%", "13%", *[f"{70 / max(len(bins), 1):.2f}%"] * len(bins)]
    caption = ("By pose bin (per-frame |yaw|) · value with 95% CI below · the other metrics of each group are "
               "folded under its headline ones")
    return _table(caption, header, groups, "tb-pose", widths=widths, folded_names=folded_names), bool(marked)


def kv_table(rows: Iterable[tuple[str, str | None]]) -> str:
    """Two-column key/value table (values are HTML); rows whose value is None are left out."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows if v is not None)
    return f'<table class="tb-kv">{body}</table>'


# ---- comparison
# Tables of `bench compare --report` (bench/report/notebooks/compare.ipynb): inputs are
# bench.harness.compare's long frames (summary_values, Comparison.diffs) and floor_failures; every
# run label and metric name is escaped here.

LEVEL_TAG = {"clip": "clip", "set": "set", "pooled": "pooled"}  # frame level carries no tag


def _level_tag(level: Any) -> str:
    tag = LEVEL_TAG.get(str(level))
    return f' <span class="tb-level">{tag}</span>' if tag else ""


def runs_table(values: Any, runs: Sequence[str], floors: Sequence[str] = (), baseline: str | None = None,
               failures: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Every metric (rows, grouped as specs groups them) of every run (columns), from summary.json.

    ``values``: bench.harness.compare.summary_values (its "all" rows are used). The best value of each
    row is bold with ★ (by the metric's direction; ties all marked); ``failures`` (floor_failures) puts
    a ▼ mark and a tint on a run's value that does not beat a floor, with the floor in the tooltip.
    ``floors`` label the floor runs' columns.
    """
    failures = failures or {}
    overall = values[values["pose_bin"] == "all"]
    table = {(r.run, r.metric): r for r in overall.itertuples(index=False)}
    groups = []
    for group, names in grouped(overall["metric"].unique()):
        rows = []
        for name in names:
            hib = direction(name)
            vals = {run: num(table[(run, name)].value) if (run, name) in table else float("nan") for run in runs}
            finite = [v for v in vals.values() if math.isfinite(v)]
            best = (max(finite) if hib else min(finite)) if finite and hib in (True, False) and len(finite) > 1 \
                else None
            ref = max((abs(v) for v in finite), default=float("nan"))
            cells = [_metric_cell(name) + _level_tag(specs.spec(name).level if specs.spec(name) else "")]
            for run in runs:
                v = vals[run]
                if not math.isfinite(v):
                    cells.append(_MUTED_NA if (run, name) in table else '<span class="tb-muted">—</span>')
                    continue
                text = fmt(v, ref)
                if best is not None and v == best:
                    text = f'<span class="tb-best" title="best of the compared runs">{text} ★</span>'
                floor = failures.get(run, {}).get(name)
                if floor:
                    text = (f'<span class="tb-floor" title="does not beat the {html.escape(floor)} floor">'
                            f'{text} ▼</span>')
                entry = table[(run, name)]
                ci = fmt_ci([entry.ci_low, entry.ci_high], ref)
                cells.append(text + (f'<br><span class="tb-ci">{ci}</span>' if ci != "—" else ""))
            rows.append(cells)
        groups.append((group, rows))
    header = ["metric"] + [html.escape(r) + ('<br><span class="tb-n">baseline</span>' if r == baseline else
                                            '<br><span class="tb-n">floor</span>' if r in floors else "")
                           for r in runs]
    caption = ("All runs · summary.json values with 95% CI · ↑ higher is better, ↓ lower is better · "
               "★ best of the compared runs · ▼ does not beat a floor (copyref / pasteref)")
    return _table(caption, header, groups, "tb-runs")


def _diff_cell(row: Any) -> str:
    """Δ with its CI and p below; green / red when significantly better / worse than the baseline."""
    diff = num(row.diff)
    if not math.isfinite(diff):
        return _MUTED_NA
    ref = max(abs(num(row.ci_low)), abs(num(row.ci_high)), abs(diff)) if math.isfinite(num(row.ci_low)) else diff
    cls = ("tb-better" if row.better == "B" else "tb-worse" if row.better == "A" else "") if row.significant else ""
    text = f'<span class="{cls}">{"+" if diff > 0 else ""}{fmt(diff, ref)}</span>'
    if math.isfinite(num(row.ci_low)):
        p = num(row.p_value)
        ptext = "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if math.isfinite(p) else ""
        return text + f'<br><span class="tb-ci">{fmt_ci([row.ci_low, row.ci_high], ref)} · {ptext}</span>'
    if "no CI" in str(row.basis):
        return text + '<br><span class="tb-noci" title="difference of summary.json values: the run directory keeps '\
                      'no per-clip data for this metric">no CI</span>'
    return text + '<br><span class="tb-ci">one clip: no CI</span>'


def diffs_table(diffs: Any, runs: Sequence[str], baseline: str, pose_bin: str = "all") -> str:
    """Paired differences run − baseline (columns: the other runs; rows: metrics, grouped by specs) for one
    pose bin, from bench.harness.compare's ``Comparison.diffs``; each cell Δ, 95% CI and p-value."""
    sub = diffs[diffs["pose_bin"] == pose_bin]
    others = [r for r in runs if r != baseline and (sub["run"] == r).any()]
    cell = {(r.run, r.metric): r for r in sub.itertuples(index=False)}
    levels = {r.metric: r.level for r in sub.itertuples(index=False)}
    groups = []
    for group, names in grouped(sub["metric"].unique()):
        rows = []
        for name in names:
            base = next((cell[(r, name)].mean_a for r in others if (r, name) in cell), float("nan"))
            cells = [_metric_cell(name) + _level_tag(levels.get(name)), fmt(base)]
            cells += [_diff_cell(cell[(r, name)]) if (r, name) in cell else '<span class="tb-muted">—</span>'
                      for r in others]
            rows.append(cells)
        groups.append((group, rows))
    header = ["metric", f"{html.escape(baseline)}<br><span class=\"tb-n\">baseline</span>"]
    header += [f"{html.escape(r)} − baseline" for r in others]
    caption = (f"Paired differences vs {html.escape(baseline)} · pose bin: {html.escape(pose_bin)} · Δ with 95% CI "
               "and p-value (paired clip bootstrap over the clips both runs scored) · "
               '<span class="tb-better">green</span> / <span class="tb-worse">red</span>: significantly better / '
               "worse than the baseline (p < 0.05)")
    return _table(caption, header, groups, "tb-diffs")


def runs_provenance(runs: Sequence[Any], baseline: Any) -> str:
    """One row per run (bench.harness.compare.RunData): label, model, status, preset, data, directory."""
    head = "".join(f"<th>{h}</th>" for h in ("run", "model", "status", "preset", "data", "frames", "directory"))
    body = []
    for run in runs:
        data = run.manifest.get("data") if isinstance(run.manifest.get("data"), dict) else {}
        role = " (baseline)" if run is baseline else " (floor)" if run.is_floor else ""
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            f"<b>{html.escape(run.label)}</b>{role}", html.escape(run.model),
            html.escape(str(run.manifest.get("status", "—"))), html.escape(str(run.preset or "—")),
            f'{html.escape(str(data.get("source", "—")))} {short(data.get("hash") or data.get("gt_hash"))}',
            fmt_count(len(run.frames)), f"<code>{html.escape(str(run.path))}</code>")) + "</tr>")
    return f'<table class="tb-table tb-prov"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
