"""Where the videos are and who is in them: one function per ``--layout``.

A layout maps a root folder to ``Source`` records (file, unique clip id, identity). ``folder`` takes every
video under the root, recursively, one identity per clip; ``hdtf`` takes the root's per-video mp4 files
(``WRA_KellyAyotte_000.mp4``) with the identity = the name before its last ``_``. ``mead`` takes
``<speaker>/video/<view>/<emotion>/<level>/NNN.mp4`` with the sound in ``<speaker>/audio/<emotion>/<level>/NNN``
(.m4a, .wav, .aac or .mp3; MEAD ships audio apart from video), identity = the speaker, the front view unless
``--views`` names others (``all``: every view found).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from bench.data.video import VIDEO_SUFFIXES, natural_key
from bench.errors import BenchError

from .process import Source

MEAD_VIEWS = ("front", "down", "top", "left_30", "left_60", "right_30", "right_60")
AUDIO_SUFFIXES = (".m4a", ".wav", ".aac", ".mp3")


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
        out.append(replace(source, clip_id=clip_id, identity=identity))
    return out


def folder_layout(root: Path, views: tuple[str, ...] | None = None) -> list[Source]:
    files = sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
                   key=lambda p: natural_key(str(p.relative_to(root))))
    sources = []
    for path in files:
        relative = path.relative_to(root)
        clip_id = _clip_id(relative)
        sources.append(Source(str(path), clip_id, clip_id, str(relative)))
    return _unique(sources)


def hdtf_layout(root: Path, views: tuple[str, ...] | None = None) -> list[Source]:
    files = sorted((p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".mp4"),
                   key=lambda p: natural_key(p.name))
    sources = []
    for path in files:
        clip_id = _clip_id(Path(path.name))
        identity = path.stem.rsplit("_", 1)[0] if "_" in path.stem else path.stem
        sources.append(Source(str(path), clip_id, identity, path.name))
    return _unique(sources)


def mead_source(path: Path, root: Path) -> Source | None:
    """A MEAD video ``<speaker>/video/<view>/<emotion>/<level>/NNN.mp4`` under ``root`` -> its Source (the audio
    file it expects, the first of AUDIO_SUFFIXES that exists, else the .m4a name); None if not that shape."""
    parts = path.parts
    if len(parts) < 6 or parts[-5] != "video":
        return None
    speaker, view, emotion, level = parts[-6], parts[-4], parts[-3], parts[-2]
    audio_dir = Path(*parts[:-5]) / "audio" / emotion / level
    candidates = [audio_dir / (path.stem + suffix) for suffix in AUDIO_SUFFIXES]
    audio = next((c for c in candidates if c.is_file()), candidates[0])
    clip_id = _clip_id(Path(speaker, view, emotion, level, path.stem))
    name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    return Source(str(path), clip_id, speaker, name, audio=str(audio), view=view)


def mead_layout(root: Path, views: tuple[str, ...] | None = None) -> list[Source]:
    wanted = set(views or ("front",))
    files = sorted((p for p in root.glob("*/video/*/*/*/*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
                   key=lambda p: natural_key(str(p.relative_to(root))))
    sources = [s for s in (mead_source(p, root) for p in files) if s is not None]
    found = sorted({s.view for s in sources})
    chosen = [s for s in sources if "all" in wanted or s.view in wanted]
    if sources and not chosen:
        raise PrepareError(f"{root}: no MEAD video in view(s) {sorted(wanted)}; views found: {found}")
    return _unique(chosen)


# layout -> (find sources under a root, how the split is drawn)
LAYOUTS: dict[str, tuple[Callable[[Path, tuple[str, ...] | None], list[Source]], str]] = {
    "folder": (folder_layout, "clip"),
    "hdtf": (hdtf_layout, "identity"),
    "mead": (mead_layout, "identity"),
}


def parse_views(text: str | None, layout: str) -> tuple[str, ...] | None:
    """``--views front,left_30`` (or ``all``) -> the view names; only the mead layout has views."""
    if text is None:
        return None
    if layout != "mead":
        raise PrepareError(f"--views {text}: only --layout mead has camera views")
    views = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in views if v not in (*MEAD_VIEWS, "all")]
    if not views or unknown:
        raise PrepareError(f"--views {text}: unknown view(s) {unknown}; choose from {', '.join(MEAD_VIEWS)} or all")
    return views


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


def _mead_list(sources: list[Source], views: tuple[str, ...] | None) -> list[Source]:
    """--list with --layout mead: each line's MEAD path gives speaker, view and audio; other lines stay clips."""
    wanted = set(views or ("front",))
    out = []
    for source in sources:
        mead = mead_source(Path(source.path), Path(source.path).parent)
        if mead is None:
            out.append(source)
        elif "all" in wanted or mead.view in wanted:
            out.append(Source(source.path, mead.clip_id, mead.identity, source.name, mead.audio, mead.view))
    return _unique(out)


def find_sources(videos: Path | None, list_file: Path | None, layout: str,
                 views: str | None = None) -> tuple[list[Source], str]:
    """The sources and how to split them ("identity" or "clip")."""
    if layout not in LAYOUTS:
        raise PrepareError(f"unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    find, split_by = LAYOUTS[layout]
    chosen = parse_views(views, layout)
    if list_file is not None:
        if not list_file.is_file():
            raise PrepareError(f"{list_file}: no such list file")
        sources = list_sources(list_file)
        if layout == "hdtf":
            sources = [Source(s.path, s.clip_id, Path(s.path).stem.rsplit("_", 1)[0], s.name) for s in sources]
        if layout == "mead":
            sources = _mead_list(sources, chosen)
        return sources, split_by
    assert videos is not None
    if not videos.is_dir():
        raise PrepareError(f"{videos}: no such directory of videos")
    sources = find(videos, chosen)
    if not sources:
        raise PrepareError(f"{videos}: holds no video files for layout {layout!r}")
    return sources, split_by
