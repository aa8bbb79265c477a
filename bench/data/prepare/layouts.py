"""Where the videos are and who is in them: one function per ``--layout``.

A layout maps a root folder to ``Source`` records (file, unique clip id, identity). ``folder`` takes every
video under the root, recursively, one identity per clip; ``hdtf`` takes the root's per-video mp4 files
(``WRA_KellyAyotte_000.mp4``) with the identity = the name before its last ``_``. ``mead`` (speaker /
video / view / emotion / level / NNN.mp4) is not written yet: add a function here and a row in LAYOUTS.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from bench.data.video import VIDEO_SUFFIXES, natural_key
from bench.errors import BenchError

from .process import Source


class PrepareError(BenchError, ValueError):
    """Bad arguments or an output directory that cannot be used; one line naming the path."""


def _clip_id(relative: Path) -> str:
    """A file-system-safe id from the relative path (folders joined by '__')."""
    text = "__".join(relative.with_suffix("").parts)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "clip"


def _unique(sources: list[Source]) -> list[Source]:
    seen: dict[str, int] = {}
    out = []
    for source in sources:
        count = seen.get(source.clip_id, 0)
        seen[source.clip_id] = count + 1
        clip_id = source.clip_id if count == 0 else f"{source.clip_id}-{count + 1}"
        identity = clip_id if source.identity == source.clip_id else source.identity  # by-clip ids follow
        out.append(Source(source.path, clip_id, identity, source.name))
    return out


def folder_layout(root: Path) -> list[Source]:
    files = sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
                   key=lambda p: natural_key(str(p.relative_to(root))))
    sources = []
    for path in files:
        relative = path.relative_to(root)
        clip_id = _clip_id(relative)
        sources.append(Source(str(path), clip_id, clip_id, str(relative)))
    return _unique(sources)


def hdtf_layout(root: Path) -> list[Source]:
    files = sorted((p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".mp4"),
                   key=lambda p: natural_key(p.name))
    sources = []
    for path in files:
        clip_id = _clip_id(Path(path.name))
        identity = path.stem.rsplit("_", 1)[0] if "_" in path.stem else path.stem
        sources.append(Source(str(path), clip_id, identity, path.name))
    return _unique(sources)


# layout -> (find sources under a root, how the split is drawn)
LAYOUTS: dict[str, tuple[Callable[[Path], list[Source]], str]] = {
    "folder": (folder_layout, "clip"),
    "hdtf": (hdtf_layout, "identity"),
}


def list_sources(list_file: Path) -> list[Source]:
    """``--list FILE``: one video path a line (relative to the list's folder; '#' starts a comment)."""
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PrepareError(f"{list_file}: cannot read the list ({error})") from None
    sources = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        path = Path(line) if Path(line).is_absolute() else list_file.parent / line
        clip_id = _clip_id(Path(Path(line).name))
        sources.append(Source(str(path), clip_id, clip_id, line))
    return _unique(sources)


def find_sources(videos: Path | None, list_file: Path | None, layout: str) -> tuple[list[Source], str]:
    """The sources and how to split them ("identity" or "clip")."""
    if layout not in LAYOUTS:
        raise PrepareError(f"unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    find, split_by = LAYOUTS[layout]
    if list_file is not None:
        if not list_file.is_file():
            raise PrepareError(f"{list_file}: no such list file")
        sources = list_sources(list_file)
        if layout == "hdtf":
            sources = [Source(s.path, s.clip_id, Path(s.path).stem.rsplit("_", 1)[0], s.name) for s in sources]
        return sources, split_by
    assert videos is not None
    if not videos.is_dir():
        raise PrepareError(f"{videos}: no such directory of videos")
    sources = find(videos)
    if not sources:
        raise PrepareError(f"{videos}: holds no video files for layout {layout!r}")
    return sources, split_by
