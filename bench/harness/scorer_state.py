"""A ``FrameScorer``'s state as plain arrays, to save after each clip and add up later (`bench score --resume`).

``export_state`` holds everything ``FrameScorer.result`` needs from the frames scored so far: frame and
clip rows, the calibration state (coverage inside counts, region pixel counts, the pixel subsample,
sparsification curve sums and counts per group), the FID Inception features and FVD's I3D window features (a
scorer built with ``keep_features``: features, not 2048 x 2048 sums), the sample candidates, the worst-frame
candidates and every clip's mean PSNR with the representative frames still kept (``bench.harness.samples.ClipRanks``).
``merge_state`` adds states up in order into another scorer. A summary built from merged states depends
only on the states and their order, so a run resumed from saved states equals an uninterrupted one.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np

from bench.harness.samples import SAMPLE_ARRAYS, spread, wanted
from bench.harness.scorer import FrameScorer

STATE_FORMAT = "talkbench-scorer-state/1"


def _json_scalar(value: Any) -> Any:
    """numpy scalars in rows (json.dumps knows only Python's)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def sample_candidates(scorer: FrameScorer) -> dict[str, list[dict]]:
    """Per group, the samples ``result`` could pick from this scorer's frames, spread evenly over the group
    (``bench.harness.samples.wanted``: as many as the run shows from it)."""
    per_bin = scorer.config.samples_per_bin
    return {group: spread(items, wanted(group, per_bin)) for group, items in scorer.sample_pool.items()}


def clip_records(scorer: FrameScorer) -> list[tuple[str, float, int, int, dict | None]]:
    """(clip_id, PSNR sum, finite count, frames, representative frame or None) per clip, in scoring order,
    the clip being scored last: what ``ClipRanks.add_record`` replays."""
    ranks = scorer.clip_ranks
    records = [(cid, s, n, frames, ranks.kept.get(cid)) for cid, (s, n, frames, _) in ranks.clips.items()]
    record = ranks.open_record()
    return records + ([record] if record is not None else [])


def _features(kind: str, kept: list[tuple[np.ndarray | None, np.ndarray | None, np.ndarray]]) -> dict[str, np.ndarray]:
    """Kept FID / FVD features as arrays: ``<kind>_real``, ``<kind>_fake`` and ``<kind>_group`` (each row's pose
    group) when every batch has both sides (the ground truth's case); otherwise each side with its own groups
    (``<kind>_real_group``: scoring without ground truth, the real side from ``add_real_features``)."""
    if not kept:
        return {}
    reals = [(real, groups) for real, _, groups in kept if real is not None]
    fakes = [(fake, groups) for _, fake, groups in kept if fake is not None]
    out = {}
    if fakes:
        out[f"{kind}_fake"] = np.concatenate([f for f, _ in fakes])
        out[f"{kind}_group"] = np.concatenate([g for _, g in fakes]).astype(str)
    if reals:
        out[f"{kind}_real"] = np.concatenate([r for r, _ in reals])
        if len(reals) != len(kept) or len(fakes) != len(kept):
            out[f"{kind}_real_group"] = np.concatenate([g for _, g in reals]).astype(str)
    return out


def _merge_features(scorer: FrameScorer, kind: str, state: Mapping[str, np.ndarray]) -> None:
    real = np.asarray(state[f"{kind}_real"]) if f"{kind}_real" in state else None
    fake = np.asarray(state[f"{kind}_fake"]) if f"{kind}_fake" in state else None
    if real is not None and fake is not None and f"{kind}_real_group" not in state:
        scorer.add_features(kind, real, fake, np.asarray(state[f"{kind}_group"]))  # the ground truth's case
        return
    if fake is not None:
        scorer.add_features(kind, None, fake, np.asarray(state[f"{kind}_group"]))
    if real is not None:
        scorer.add_features(kind, real, None, np.asarray(state[f"{kind}_real_group"]))


def export_state(scorer: FrameScorer) -> dict[str, np.ndarray]:
    """The scorer's state as arrays that ``np.savez`` stores and ``np.load(allow_pickle=False)`` reads."""
    candidates = [(group, item) for group, items in sample_candidates(scorer).items() for item in items]
    worst = scorer.worst.entries()
    clips = clip_records(scorer)
    meta = {"format": STATE_FORMAT, "rows": scorer.rows, "clip_rows": scorer.clip_rows,
            "has_uncertainty": scorer.has_uncertainty, "curve_counts": scorer.curve_counts,
            "samples": [{"group": group, **{k: v for k, v in item.items() if k not in SAMPLE_ARRAYS}}
                        for group, item in candidates],
            "worst": [{"by": by, "value": value, "row": row, **{k: v for k, v in item.items() if k not in SAMPLE_ARRAYS}}
                      for by, value, row, item in worst],
            "clips": [{"clip_id": cid, "psnr_sum": total, "count": count, "frames": frames,
                       "item": None if item is None else {k: v for k, v in item.items() if k not in SAMPLE_ARRAYS}}
                      for cid, total, count, frames, item in clips]}
    # JSON keeps floats exactly (shortest round-trip repr), NaN and inf included.
    state = {
        "meta": np.array(json.dumps(meta, default=_json_scalar)),
        "inside": np.stack(scorer.inside) if scorer.inside else np.zeros((0, len(scorer.levels)), np.int64),
        "region_pixels": np.asarray(scorer.region_pixels, dtype=np.int64),
        "sub_u": np.concatenate(scorer.sub_u) if scorer.sub_u else np.zeros(0, np.float32),
        "sub_e": np.concatenate(scorer.sub_e) if scorer.sub_e else np.zeros(0, np.float32),
        "sub_row": np.concatenate(scorer.sub_row) if scorer.sub_row else np.zeros(0, np.int64),
        **{f"curve_{key}": np.asarray(value, dtype=np.float64) for key, value in scorer.curve_sums.items()},
    }
    state.update(_features("fid", scorer.fid_features))
    state.update(_features("fvd", scorer.fvd_features))
    for index, (_, item) in enumerate(candidates):
        for key in SAMPLE_ARRAYS:
            state[f"sample{index}_{key}"] = np.asarray(item[key])
    for index, (_, _, _, item) in enumerate(worst):
        for key in SAMPLE_ARRAYS:
            state[f"worst{index}_{key}"] = np.asarray(item[key])
    for index, (_, _, _, _, item) in enumerate(clips):
        for key in SAMPLE_ARRAYS if item is not None else ():
            state[f"clip{index}_{key}"] = np.asarray(item[key])
    return state


def merge_state(scorer: FrameScorer, state: Mapping[str, np.ndarray]) -> None:
    """Add a state from ``export_state`` (of a scorer with the same config) after the frames ``scorer`` holds."""
    meta = json.loads(str(state["meta"]))
    if meta.get("format") != STATE_FORMAT:
        raise ValueError(f"not a scorer state of format {STATE_FORMAT}: {meta.get('format')!r}")
    if scorer.has_uncertainty is None:
        scorer.has_uncertainty = meta["has_uncertainty"]
    offset = len(scorer.rows)
    scorer.rows.extend(meta["rows"])
    scorer.clip_rows.extend(meta["clip_rows"])
    scorer.inside.extend(np.asarray(state["inside"], dtype=np.int64))
    scorer.region_pixels.extend(int(n) for n in state["region_pixels"])
    if state["sub_u"].size:
        scorer.sub_u.append(np.asarray(state["sub_u"]))
        scorer.sub_e.append(np.asarray(state["sub_e"]))
        scorer.sub_row.append(np.asarray(state["sub_row"], dtype=np.int64) + offset)  # rows after the held ones
    for group, count in meta["curve_counts"].items():
        scorer.curve_counts[group] = scorer.curve_counts.get(group, 0) + int(count)
    for key in state:
        if key.startswith("curve_"):
            name = key[len("curve_"):]
            scorer.curve_sums[name] = scorer.curve_sums.get(name, 0) + np.asarray(state[key])
    for kind in ("fid", "fvd"):
        _merge_features(scorer, kind, state)
    for index, info in enumerate(meta["samples"]):
        group = info.pop("group")
        scorer.add_sample(group, {**{key: np.asarray(state[f"sample{index}_{key}"]) for key in SAMPLE_ARRAYS},
                                 **info})
    for index, info in enumerate(meta.get("worst", [])):  # states saved before worst.npz existed have none
        by, value, row = info.pop("by"), info.pop("value"), info.pop("row")
        scorer.worst.add(by, value, int(row) + offset,
                         {**{key: np.asarray(state[f"worst{index}_{key}"]) for key in SAMPLE_ARRAYS}, **info})
    scorer.clip_ranks.close()  # the saved clips come after any clip the scorer was scoring
    for index, info in enumerate(meta.get("clips", [])):  # states saved before clip_samples.npz have none
        labels = info["item"]
        item = None if labels is None else {**{key: np.asarray(state[f"clip{index}_{key}"]) for key in SAMPLE_ARRAYS},
                                            **labels}
        scorer.clip_ranks.add_record(info["clip_id"], info["psnr_sum"], int(info["count"]), int(info["frames"]), item)
