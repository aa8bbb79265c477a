"""Train/test split of prepared clips: by identity where the layout names one, else by clip, with the
test groups drawn per pose stratum (median |yaw| of the group's clips) like the synthetic test split."""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Any


def _rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def assign_splits(entries: list[dict[str, Any]], split_by: str, seed: int = 0,
                  test_fraction: float = 0.2) -> dict[str, str]:
    """clip id -> "train" | "test". Groups (identities or clips) never straddle the split; each pose stratum
    gives ``test_fraction`` of its groups (rounded up where it has two or more) to test; with two or more
    groups at least one is in test and one in train."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        key = str(entry["identity"]) if split_by == "identity" else str(entry["id"])
        groups.setdefault(key, []).append(entry)
    if len(groups) < 2:
        return _single_group(entries)
    stratum = {key: Counter(str(e.get("stratum")) for e in members).most_common(1)[0][0]
               for key, members in groups.items()}
    test: set[str] = set()
    for name in sorted(set(stratum.values())):
        keys = sorted((k for k in groups if stratum[k] == name), key=lambda k: _rank(seed, k))
        count = math.ceil(len(keys) * test_fraction) if len(keys) >= 2 else 0
        test.update(keys[:count])
    ordered = sorted(groups, key=lambda k: _rank(seed, k))
    if not test:
        test.add(ordered[0])
    if len(test) == len(groups):
        test.discard(sorted(test, key=lambda k: _rank(seed, k))[-1])
    return {entry["id"]: ("test" if key in test else "train") for key, members in groups.items() for entry in members}


def _single_group(entries: list[dict[str, Any]]) -> dict[str, str]:
    """One identity only: its clips cannot be split by identity; the last clip (by id) is the test clip."""
    ids = sorted(entry["id"] for entry in entries)
    return {clip_id: ("test" if clip_id == ids[-1] else "train") for clip_id in ids}
