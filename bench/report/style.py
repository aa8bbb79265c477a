"""The look every report notebook shares: one stylesheet, inlined into the HTML (no external CSS)."""

CSS = """<style>
.tb-title { margin: 0 0 2px 0; font-size: 26px; font-weight: 650; letter-spacing: -0.01em; }
.tb-sub { color: #666; margin: 0 0 14px 0; font-size: 13px; }
.tb-pill { display: inline-block; padding: 1px 10px; border-radius: 10px; font-size: 12px; font-weight: 600;
           vertical-align: middle; margin-left: 8px; color: #fff; }
.tb-pill-complete { background: #2e8b57; } .tb-pill-running { background: #d68910; }
.tb-pill-failed { background: #c0392b; } .tb-pill-unknown { background: #7f8c8d; }
.tb-note { padding: 8px 12px; border-left: 4px solid #3a6ea5; background: #eef3f9; margin: 6px 0 10px 0;
           font-size: 13px; border-radius: 2px; }
.tb-note-warn { border-left-color: #d68910; background: #fdf4e3; }
.tb-note-error { border-left-color: #c0392b; background: #fbeae8; }
.jp-RenderedHTMLCommon table.tb-kv, .jp-RenderedHTMLCommon table.tb-table {
  border-collapse: collapse; font-size: 13px; margin: 4px 0 12px 0; table-layout: auto; }
.jp-RenderedHTMLCommon table.tb-kv th { text-align: left; color: #555; font-weight: 600; padding: 4px 22px 4px 0;
  vertical-align: top; white-space: nowrap; border-bottom: 1px solid #eee; background: #fff; }
.jp-RenderedHTMLCommon table.tb-kv td { text-align: left; padding: 4px 0; border-bottom: 1px solid #eee; }
.jp-RenderedHTMLCommon table.tb-kv tr { background: #fff; }
.jp-RenderedHTMLCommon table.tb-table th, .jp-RenderedHTMLCommon table.tb-table td {
  padding: 5px 14px; border-bottom: 1px solid #e4e4e4; text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
.jp-RenderedHTMLCommon table.tb-table thead th { border-bottom: 2px solid #999; font-weight: 600; background: #fafafa;
  vertical-align: bottom; }
.jp-RenderedHTMLCommon table.tb-table td:first-child, .jp-RenderedHTMLCommon table.tb-table th:first-child {
  text-align: left; white-space: nowrap; }
.jp-RenderedHTMLCommon table.tb-table tbody tr:nth-child(even) { background: #fbfbfb; }
.jp-RenderedHTMLCommon table.tb-table tbody tr:nth-child(odd) { background: #fff; }
.jp-RenderedHTMLCommon table.tb-table tbody tr:hover { background: #f2f6fb; }
.jp-RenderedHTMLCommon table.tb-table tbody tr.tb-group td { background: #f3f5f8; color: #555; font-size: 11px;
  font-weight: 600; text-transform: uppercase; letter-spacing: 0.05em; text-align: left; padding: 3px 14px; }
.jp-RenderedHTMLCommon table.tb-table td:last-child .tb-about, .jp-RenderedHTMLCommon table.tb-table .tb-about-h {
  display: block; text-align: left; }
.jp-RenderedHTMLCommon table.tb-overall td:last-child { text-align: left; color: #666; font-size: 12px;
  min-width: 260px; white-space: normal; }
.jp-RenderedHTMLCommon table.tb-table caption { text-align: left; color: #555; font-size: 12px; padding-bottom: 4px; }
.tb-muted { color: #999; } .tb-ci { color: #777; font-size: 11px; }
.tb-n { color: #888; font-weight: 400; font-size: 11px; }
.tb-arrow { color: #888; font-size: 12px; } .tb-worst { font-weight: 700; color: #a93226; }
.tb-caption { color: #777; font-size: 12px; margin: 2px 0 14px 0; }
details.tb-details summary { cursor: pointer; color: #3a6ea5; font-size: 13px; }
details.tb-details pre { background: #f7f7f7; padding: 8px; font-size: 12px; max-height: 420px; overflow: auto; }
</style>"""
