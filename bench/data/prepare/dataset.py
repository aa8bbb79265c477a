"""`bench data prepare`: a folder of videos -> a dataset in the clip format, resumable and never half-done.

Order of writing: ``.prepare-state.json`` first (the marker of an unfinished dataset, rewritten after every
clip with its source's sha256 and result), then the clip archives, then ``qa.parquet``, and
``manifest.json`` last; the state file is removed once the manifest is in place. A directory with
``manifest.json`` is complete; one with the state file and no manifest was interrupted and resumes: clips
whose source sha256 and options match are kept.
"""
from __future__ import annotations

import io
import json
import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench.data.clips import FORMAT, PREPARE_STATE, load_clip, save_clip, write_manifest
from bench.files import atomic_write, file_sha256

from .layouts import PrepareError, find_sources
from .process import DEFAULT_MAX_SECONDS, Options, Source, prepare_source, source_digest
from .split import assign_splits

log = logging.getLogger(__name__)

STATE_FILE = PREPARE_STATE
QA_FILE = "qa.parquet"
PREPARE_VERSION = "2"  # 2: cuts, segments, several faces (a state written by 1 is not reused)


@dataclass
class PrepareResult:
    root: Path
    qa: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)  # train / val / test clips written
    reused: int = 0  # clips kept from an interrupted run

    @property
    def skipped(self) -> pd.DataFrame:
        """Files with no clip (one row each)."""
        return self.qa[self.qa["status"] == "skipped"]

    @property
    def dropped(self) -> pd.DataFrame:
        """Parts of prepared files left out (too short between cuts, no face there)."""
        return self.qa[self.qa["status"] == "dropped"]


def _claim(out: Path, force: bool) -> dict[str, Any]:
    """Check the output directory; returns the resumable state (empty for a fresh start)."""
    if out.exists() and not out.is_dir():
        raise PrepareError(f"{out}: exists and is not a directory")
    manifest, state = out / "manifest.json", out / STATE_FILE
    if manifest.is_file():
        if not force:
            raise PrepareError(f"{out}: already holds a dataset (manifest.json); pass --force to overwrite it")
        _clear(out)
        return {}
    if state.is_file():
        if force:
            _clear(out)
            return {}
        try:
            return dict(json.loads(state.read_text()))
        except (OSError, ValueError):
            log.warning("%s: unreadable, starting over", state)
            return {}
    if out.is_dir() and any(out.iterdir()):
        raise PrepareError(f"{out}: holds files and is not a `bench data prepare` output; choose a new or empty "
                           "directory")
    return {}


def _clear(out: Path) -> None:
    """Remove what an earlier prepare wrote (its manifest first, so the directory never looks complete)."""
    (out / "manifest.json").unlink(missing_ok=True)
    for path in [*out.glob("*.npz"), out / QA_FILE, out / STATE_FILE]:
        path.unlink(missing_ok=True)


def _reusable(record: dict[str, Any] | None, sha: str, settings: dict[str, Any], out: Path) -> bool:
    if not record or record.get("source_sha256") != sha or record.get("settings") != settings:
        return False
    entries = record.get("entries", [])  # none: skipped before for the same bytes, the same reason holds
    return all((out / e["file"]).is_file() and file_sha256(out / e["file"]) == e["sha256"] for e in entries)


def _mp_context() -> multiprocessing.context.BaseContext:
    """Spawn, not fork: a forked child inherits MediaPipe's graph and torch's thread pool without their threads,
    and hangs on its first frame once the parent has run either."""
    return multiprocessing.get_context("spawn")


def _worker_init(level: int) -> None:
    """In each worker: one torch thread (the processes are the parallelism) and the parent's log level."""
    import torch

    torch.set_num_threads(1)
    logging.getLogger("bench.data.prepare").setLevel(level)


def prepare_dataset(out: Path, videos: Path | None = None, list_file: Path | None = None, layout: str = "folder",
                    size: int = 256, workers: int = 1, force: bool = False,
                    max_seconds: float | None = DEFAULT_MAX_SECONDS, first_seconds: float | None = None,
                    views: str | None = None, seed: int = 0, test_fraction: float = 0.2, val_fraction: float = 0.1,
                    progress: bool = True,
                    on_result: Callable[[dict[str, Any]], None] | None = None) -> PrepareResult:
    """Prepare every source into ``out``; bad sources are skipped (QA row with the reason), never fatal.

    ``max_seconds``: the longest clip (a longer video is split, at cuts where there are any; None: never split);
    ``first_seconds``: read only that much of each video; ``views``: "front,left_30" or "all" (mead only)."""
    if (videos is None) == (list_file is None):
        raise PrepareError("give exactly one of --videos DIR and --list FILE")
    if size < 32 or size > 1024:
        raise PrepareError(f"--size {size}: choose 32 ... 1024 px")
    if not 0.0 < test_fraction < 1.0:
        raise PrepareError(f"--test-fraction {test_fraction}: choose a value between 0 and 1")
    if not 0.0 <= val_fraction < 1.0 or test_fraction + val_fraction >= 1.0:
        raise PrepareError(f"--val-fraction {val_fraction}: choose 0 (no val split) or more, with "
                           f"--test-fraction + --val-fraction below 1")
    if max_seconds is not None and max_seconds < 1.0:
        raise PrepareError(f"--max-seconds {max_seconds}: choose 1 s or more (clips need a few sync windows)")
    sources, split_by = find_sources(videos, list_file, layout, views)
    out = Path(out)
    state = _claim(out, force)
    out.mkdir(parents=True, exist_ok=True)
    options = Options(size=size, max_seconds=max_seconds, first_seconds=first_seconds)
    settings = {**asdict(options), "version": PREPARE_VERSION}
    records: dict[str, Any] = dict(state.get("clips", {}))
    _save_state(out, records)  # the unfinished marker, before any clip is written

    todo, reused = [], 0
    for source in sources:
        sha = source_digest(source)
        if _reusable(records.get(source.clip_id), sha, settings, out):
            reused += 1
        else:
            todo.append(source)

    def finish(source: Source, result: dict[str, Any]) -> None:
        records[source.clip_id] = {**result, "settings": settings, "name": source.name}
        _save_state(out, records)
        if on_result is not None:
            for row in result["qa"]:
                on_result(row)

    bar = tqdm(total=len(todo), unit="video", desc="prepare", file=sys.stderr, disable=not progress, leave=False)
    with bar:
        if workers <= 1 or len(todo) <= 1:
            for source in todo:
                finish(source, prepare_source(source, str(out), options))
                bar.update(1)
        else:
            level = logging.getLogger("bench.data.prepare").getEffectiveLevel()
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=_mp_context(),
                                     initializer=_worker_init, initargs=(level,)) as pool:
                futures = {pool.submit(prepare_source, source, str(out), options): source for source in todo}
                try:
                    for future in as_completed(futures):
                        finish(futures[future], future.result())
                        bar.update(1)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    current = {source.clip_id for source in sources}
    return _finalize(out, {k: v for k, v in records.items() if k in current}, sources, split_by, seed,
                     test_fraction, val_fraction, layout, options, reused)


def _save_state(out: Path, records: dict[str, Any]) -> None:
    atomic_write(out / STATE_FILE, json.dumps({"format": FORMAT, "clips": records}, indent=1, sort_keys=True,
                                              default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _finalize(out: Path, records: dict[str, Any], sources: list[Source], split_by: str, seed: int,
              test_fraction: float, val_fraction: float, layout: str, options: Options,
              reused: int) -> PrepareResult:
    order = {source.clip_id: i for i, source in enumerate(sources)}
    rows = [row for k in sorted(records, key=order.__getitem__) for row in records[k]["qa"]]
    qa = pd.DataFrame(rows)
    entries = [entry for k in sorted(records) for entry in records[k].get("entries", [])]
    splits = assign_splits(entries, split_by, seed=seed, test_fraction=test_fraction, val_fraction=val_fraction)
    for entry in entries:  # (the entries are the records' own dicts: updated in place)
        if entry["split"] != splits[entry["id"]]:  # the split is known only now: rewrite the clip's meta
            clip = load_clip(out / entry["file"], sha256=entry["sha256"])
            clip.meta["split"] = splits[entry["id"]]
            entry["sha256"] = save_clip(out / entry["file"], clip)
            entry["split"] = splits[entry["id"]]
    _save_state(out, records)
    if not qa.empty:
        qa["split"] = qa["clip_id"].map(splits).fillna("")
    buffer = io.BytesIO()
    qa.to_parquet(buffer, index=False)
    atomic_write(out / QA_FILE, buffer.getvalue())
    if entries:
        write_manifest(out, entries, source="prepare", layout=layout, split_by=split_by, split_seed=seed,
                       test_fraction=test_fraction, val_fraction=val_fraction,
                       prepare={**asdict(options), "version": PREPARE_VERSION},
                       pose_labels="estimated per frame by bench.data.head_pose on the crops",
                       skipped=[{"file": r["file"], "reason": r["reason"]} for r in rows if r["status"] == "skipped"],
                       dropped=[{"file": r["file"], "start_s": r["start_s"], "end_s": r["end_s"],
                                 "reason": r["reason"]} for r in rows if r["status"] == "dropped"])
        (out / STATE_FILE).unlink(missing_ok=True)
    else:
        log.warning("%s: no clip could be prepared; no manifest written", out)
    counts = {name: sum(1 for e in entries if e["split"] == name) for name in ("train", "val", "test")}
    return PrepareResult(out, qa, counts, reused)
