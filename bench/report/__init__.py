"""HTML reports: notebook rendering and plot helpers."""
