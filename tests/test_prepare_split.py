"""bench data prepare without decoding video: layouts, identity splits (train / val / test) and crop boxes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_layouts_and_lists_name_identities(tmp_path):
    from bench.data.prepare.layouts import find_sources

    for name in ("WRA_KellyAyotte_000.mp4", "WRA_KellyAyotte_001.mp4", "RD_Radio1_000.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.mov").write_bytes(b"")
    sources, split_by = find_sources(tmp_path, None, "hdtf")
    assert split_by == "identity"
    assert {s.clip_id: s.identity for s in sources} == {
        "WRA_KellyAyotte_000": "WRA_KellyAyotte", "WRA_KellyAyotte_001": "WRA_KellyAyotte", "RD_Radio1_000": "RD_Radio1"}
    sources, split_by = find_sources(tmp_path, None, "folder")
    assert split_by == "clip" and "sub__x" in {s.clip_id for s in sources} and len(sources) == 4
    listing = tmp_path / "list.txt"
    listing.write_text("# my clips\nWRA_KellyAyotte_000.mp4\nsub/x.mov  # a comment\n\n/elsewhere/x.mp4\n")
    sources, _ = find_sources(None, listing, "folder")
    assert [s.clip_id for s in sources] == ["WRA_KellyAyotte_000", "x", "x-2"]  # ids stay unique
    assert [s.identity for s in sources] == ["WRA_KellyAyotte_000", "x", "x-2"]
    assert Path(sources[1].path) == tmp_path / "sub" / "x.mov"


def test_split_keeps_identities_together_and_stratifies_by_pose():
    from bench.data.prepare.split import assign_splits

    entries = [{"id": f"{who}_{k}", "identity": who, "stratum": stratum}
               for who, stratum in [("a", "frontal"), ("b", "frontal"), ("c", "frontal"), ("d", "frontal"),
                                    ("e", "moderate"), ("f", "moderate"), ("g", "extreme")] for k in range(3)]
    splits = assign_splits(entries, "identity", seed=0)
    by_identity = {}
    for entry in entries:
        by_identity.setdefault(entry["identity"], set()).add(splits[entry["id"]])
    assert all(len(found) == 1 for found in by_identity.values())  # no identity straddles the split
    test = {who for who, found in by_identity.items() if found == {"test"}}
    assert len(test & {"a", "b", "c", "d"}) == 1 and len(test & {"e", "f"}) == 1 and "g" not in test
    assert assign_splits(entries, "identity", seed=0) == splits  # deterministic
    two = [{"id": "x", "identity": "x", "stratum": "frontal"}, {"id": "y", "identity": "y", "stratum": "frontal"}]
    assert sorted(assign_splits(two, "clip").values()) == ["test", "train"]  # small sets still get a test clip
    one_person = [{"id": f"p_{k}", "identity": "p", "stratum": "frontal"} for k in range(3)]
    assert sorted(assign_splits(one_person, "identity").values()) == ["test", "train", "train"]


def _groups(counts: dict[str, int], clips: int = 2) -> list[dict[str, str]]:
    """``clips`` entries per identity, ``counts[stratum]`` identities per pose stratum."""
    return [{"id": f"{name}{i}_{k}", "identity": f"{name}{i}", "stratum": name}
            for name, n in counts.items() for i in range(n) for k in range(clips)]


def _by_identity(entries: list[dict[str, str]], splits: dict[str, str]) -> dict[str, str]:
    found: dict[str, set[str]] = {}
    for entry in entries:
        found.setdefault(entry["identity"], set()).add(splits[entry["id"]])
    assert all(len(names) == 1 for names in found.values())  # no identity straddles two splits
    return {who: names.pop() for who, names in found.items()}


def test_val_split_is_identity_disjoint_stratified_and_leaves_test_alone():
    from bench.data.prepare.split import assign_splits

    entries = _groups({"frontal": 16, "moderate": 9, "extreme": 5})
    for seed in range(4):
        plain = _by_identity(entries, assign_splits(entries, "identity", seed=seed))
        with_val = _by_identity(entries, assign_splits(entries, "identity", seed=seed, val_fraction=0.1))
        more_val = _by_identity(entries, assign_splits(entries, "identity", seed=seed, val_fraction=0.3))
        assert "val" not in plain.values()
        test = {who for who, name in plain.items() if name == "test"}
        for split in (with_val, more_val):  # test first, then val from the rest: test never moves
            assert {who for who, name in split.items() if name == "test"} == test
            assert {who for who, name in split.items() if name == "train"} < \
                {who for who, name in plain.items() if name == "train"}
        val = {who for who, name in with_val.items() if name == "val"}
        assert val < {who for who, name in more_val.items() if name == "val"}  # a larger fraction only adds
        for stratum, n, n_test, n_val in [("frontal", 16, 4, 2), ("moderate", 9, 2, 1), ("extreme", 5, 1, 1)]:
            assert sum(who.startswith(stratum) for who in test) == n_test  # ceil(20%) of each stratum
            assert sum(who.startswith(stratum) for who in val) == n_val  # ceil(10%) of each stratum
    explicit_zero = assign_splits(entries, "identity", seed=0, test_fraction=0.2, val_fraction=0.0)
    assert explicit_zero == assign_splits(entries, "identity", seed=0) and "val" not in explicit_zero.values()
    by_clip = assign_splits(entries, "clip", seed=0, val_fraction=0.1)
    assert sum(name == "val" for name in by_clip.values()) == 4 + 2 + 1  # clips are the groups: 32 + 18 + 10


def test_small_sets_get_one_val_group_from_three_on():
    from bench.data.prepare.split import assign_splits

    for counts in ({"frontal": 3}, {"frontal": 1, "moderate": 1, "extreme": 1}, {"frontal": 2, "moderate": 1}):
        entries = _groups(counts)
        split = _by_identity(entries, assign_splits(entries, "identity", val_fraction=0.1))
        assert sorted(split.values()) == ["test", "train", "val"], counts
    for counts in ({"frontal": 2}, {"frontal": 1, "extreme": 1}):  # too few groups: train and test only
        entries = _groups(counts)
        assert sorted(assign_splits(entries, "identity", val_fraction=0.5).values()) == ["test"] * 2 + ["train"] * 2
    one_person = _groups({"frontal": 1}, clips=4)
    assert "val" not in assign_splits(one_person, "identity", val_fraction=0.5).values()  # not identity-disjoint
    # Val never takes the last train group, even when test takes nearly all.
    entries = _groups({"frontal": 3})
    split = assign_splits(entries, "identity", test_fraction=0.6, val_fraction=0.3)
    assert sorted(_by_identity(entries, split).values()) == ["test", "test", "train"]


def test_crop_boxes_fill_gaps_ignore_jumps_to_another_face_and_stay_inside_the_frame():
    from bench.data.prepare.track import crop_boxes

    t = 40
    centre = np.stack([100 + np.arange(t) * 0.5, np.full(t, 120.0)], axis=1)  # a face drifting right
    offsets = np.random.default_rng(0).uniform(-30, 30, (468, 2))
    points = centre[:, None, :] + offsets[None]
    points[10:13] = np.nan  # missed
    points[20] += 150  # another face for one frame
    boxes, found = crop_boxes(points, 240, 320)
    assert not found[10:13].any() and not found[20] and found.sum() == t - 4
    side = boxes[:, 2]
    assert np.allclose(side, side[0], rtol=0.05) and side[0] == pytest.approx(1.7 * 60, rel=0.1)
    centres = boxes[:, :2] + side[:, None] / 2
    assert np.abs(centres[:, 0] - centre[:, 0]).max() < 3  # the filled and the jumped frames follow the track
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] + side <= 320).all() and (boxes[:, 1] + side <= 240).all()
