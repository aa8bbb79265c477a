"""Train/val/test split of prepared clips: by identity where the layout names one, else by source video (its
segments together), with the test groups, then the val groups, drawn per pose stratum (median |yaw| of the
group's clips) like the synthetic splits. Test is chosen first and never depends on ``val_fraction``: adding a val split only moves
train groups."""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Any


def _rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def assign_splits(entries: list[dict[str, Any]], split_by: str, seed: int = 0, test_fraction: float = 0.2,
                  val_fraction: float = 0.0) -> dict[str, str]:
    """clip id -> "train" | "val" | "test". Groups (identities or clips) never straddle splits.

    Test: each pose stratum gives ``test_fraction`` of its groups (rounded up where it has two or more); with
    two or more groups at least one is in test and one in train. Val: then each stratum gives
    ``val_fraction`` of its groups (rounded up) from those left, keeping at least one in train there; with
    three or more groups and ``val_fraction`` > 0, at least one is in val as long as two are left in train.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        # By clip: by source video, so the segments of one video (cuts, --max-seconds) stay together.
        key = str(entry["identity"]) if split_by == "identity" else str(entry.get("source_id", entry["id"]))
        groups.setdefault(key, []).append(entry)
    if len(groups) < 2:
        return _single_group(entries)
    stratum = {key: Counter(str(e.get("stratum")) for e in members).most_common(1)[0][0]
               for key, members in groups.items()}
    by_stratum = {name: sorted((k for k in groups if stratum[k] == name), key=lambda k: _rank(seed, k))
                  for name in sorted(set(stratum.values()))}
    test: set[str] = set()
    for keys in by_stratum.values():
        count = math.ceil(len(keys) * test_fraction) if len(keys) >= 2 else 0
        test.update(keys[:count])
    ordered = sorted(groups, key=lambda k: _rank(seed, k))
    if not test:
        test.add(ordered[0])
    if len(test) == len(groups):
        test.discard(sorted(test, key=lambda k: _rank(seed, k))[-1])
    val = _pick_val(by_stratum, test, val_fraction) if val_fraction > 0 and len(groups) >= 3 else set()
    return {entry["id"]: ("test" if key in test else "val" if key in val else "train")
            for key, members in groups.items() for entry in members}


def _pick_val(by_stratum: dict[str, list[str]], test: set[str], val_fraction: float) -> set[str]:
    """Val groups from the non-test ones, next in each stratum's rank order (so a larger fraction only adds)."""
    val: set[str] = set()
    left = {name: [k for k in keys if k not in test] for name, keys in by_stratum.items()}
    for name, keys in by_stratum.items():
        count = min(math.ceil(len(keys) * val_fraction), len(left[name]) - 1)  # one train group stays
        val.update(left[name][:max(count, 0)])
    if not val:  # small sets: one val group from the stratum with the most train groups, if train keeps one
        name = max(left, key=lambda n: len(left[n]))  # the first such stratum by name
        if sum(len(keys) for keys in left.values()) >= 2 and left[name]:
            val.add(left[name][0])
    return val


def _single_group(entries: list[dict[str, Any]]) -> dict[str, str]:
    """One identity only: its clips cannot be split by identity; the last clip (by id) is the test clip (and
    there is no val split: it could not be identity-disjoint)."""
    ids = sorted(entry["id"] for entry in entries)
    return {clip_id: ("test" if clip_id == ids[-1] else "train") for clip_id in ids}
