"""Nested JSON-like trees as flat {path: leaf} dicts, for comparing summaries value by value in tests."""
from __future__ import annotations


def leaves(tree, path: str = "") -> dict[str, object]:
    """Every leaf of ``tree`` (dicts and lists) under its path, e.g. ``/metrics/psnr/ci95/0``."""
    if isinstance(tree, dict):
        return {k: v for key, item in tree.items() for k, v in leaves(item, f"{path}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for index, item in enumerate(tree) for k, v in leaves(item, f"{path}/{index}").items()}
    return {path: tree}
