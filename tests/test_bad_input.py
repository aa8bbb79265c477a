"""Bad input at the command line: one `bench: error:` line naming the file and the problem, exit 2, no
traceback, and nothing already on disk lost or changed.

Every row of CASES is one kind of bad input: (id, set-up, argv, expected substring of the error line).
A set-up gets the test's directory and writes what the command is pointed at; argv may use {tmp}.
Rows whose argv starts with "run" get the metric weights (`bench run` checks them before the data).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from bench.cli import main
from bench.data.clips import Clip, manifest_entry, save_clip, write_manifest
from tests.fake_run import make_fake_run

# ---------------------------------------------------------------------------------------------- set-ups


def tiny_clip(clip_id: str, split: str, n_frames: int = 8, size: int = 16, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(clip_id=clip_id, frames=rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8),
                audio=np.zeros(n_frames * 640, np.float32), fps=25.0,
                meta={"split": split, "identity": "p0", "stratum": "frontal"})


def tiny_dataset(root: Path, splits: tuple[str, ...] = ("train", "test")) -> Path:
    """A valid two-clip dataset (one per split) of 8 16x16 frames, as bench.data.clips writes it."""
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, split in enumerate(splits):
        clip = tiny_clip(f"{split}0", split, seed=i)
        entries.append(manifest_entry(clip, f"{clip.clip_id}.npz", save_clip(root / f"{clip.clip_id}.npz", clip)))
    write_manifest(root, entries, source="test")
    return root


def _edit_manifest(root: Path, edit: Callable[[dict], object]) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(edit(manifest)))


def _dataset_with(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda tmp: _edit_manifest(tiny_dataset(tmp / "data"), edit)


def _video_folder(tmp: Path, manifest: object | None = None) -> None:
    """What a newcomer tries first: a folder of videos, perhaps with a hand-written manifest."""
    (tmp / "data").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp / "data" / name).write_bytes(b"\x00\x00\x00\x18ftypmp42")
    if manifest is not None:
        (tmp / "data" / "manifest.json").write_text(json.dumps(manifest))


def _replace_clip(tmp: Path, write: Callable[[Path], None], fix_sha: bool = True) -> None:
    """A dataset whose test clip file is replaced (its manifest sha256 updated unless ``fix_sha``)."""
    root = tiny_dataset(tmp / "data")
    write(root / "test0.npz")
    if fix_sha:
        sha = hashlib.sha256((root / "test0.npz").read_bytes()).hexdigest()
        _edit_manifest(root, lambda m: {**m, "clips": [{**e, "sha256": sha} if e["id"] == "test0" else e
                                                        for e in m["clips"]]})


def _npz_without(key: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with np.load(path) as archive:
            good = dict(archive)
        del good[key]
        with open(path, "wb") as handle:
            np.savez(handle, **good)
    return write


def _npz_with(**changes: np.ndarray) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with np.load(path) as archive:
            arrays = {**dict(archive), **changes}
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    return write


def _changed_clip(tmp: Path) -> None:
    """A clip re-saved with other pixels after the manifest (and its hash) were written."""
    root = tiny_dataset(tmp / "data")
    save_clip(root / "test0.npz", tiny_clip("test0", "test", seed=7))


def _runs(status_a: str = "complete", status_b: str = "complete", **edit_b: object) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        make_fake_run(tmp / "a", seed=0, status=status_a)
        make_fake_run(tmp / "b", seed=1, status=status_b)
        if edit_b:
            _edit_manifest(tmp / "b", lambda m: {**m, **edit_b})
    return setup


def _run_without_manifest(tmp: Path) -> None:
    _runs()(tmp)
    (tmp / "b" / "manifest.json").unlink()


def _external_runs(gt_b: str) -> Callable[[Path], None]:
    """Two `bench score` runs (their data hash covers the predictions too) and the ground truth of each clip."""
    def setup(tmp: Path) -> None:
        _runs()(tmp)
        for run, hash_, gt in (("a", "11" * 32, "/gt"), ("b", "22" * 32, gt_b)):
            clips = [{"clip_id": c, "gt": f"{gt}/{c}.mp4", "n_frames": 8} for c in ("fro00", "mod00", "ext00")]
            _edit_manifest(tmp / run, lambda m: {**m, "data": {"source": "external", "hash": hash_, "clips": clips}})
    return setup


def _weights_json(text: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / "weights").mkdir()
        (tmp / "weights" / "weights.json").write_text(text)
        (tmp / "weights" / "lpips_alex.pt").write_bytes(b"kept as it is")
    return setup


def _file(name: str, data: bytes = b"not a checkpoint") -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_bytes(data)


def _checkpoint_of_another_run(tmp: Path) -> None:
    """A dataset, and a last.pt in the training --out that another model and width wrote."""
    import torch

    from bench.config import ModelConfig, RunConfig

    tiny_dataset(tmp / "data")
    config = RunConfig(model="wav2lip", net=ModelConfig(channels=8))
    (tmp / "train").mkdir()
    torch.save({"config": config.to_dict(), "model": {}, "step": 1}, tmp / "train" / "last.pt")


def _nothing(tmp: Path) -> None:
    pass


TRAIN = ["train", "--model", "julnet", "--preset", "smoke", "--no-progress", "--out", "{tmp}/train"]
RUN = ["run", "--model", "copyref", "--preset", "smoke", "--no-progress", "--no-report", "--out", "{tmp}/run"]
SHEET = ["data", "sheet", "{tmp}/data", "--out", "{tmp}/sheet.png"]
HINT = "bench data synth --out"  # every "this is not a dataset" message says how to make one

CASES = [
    # datasets (issue 9 part 5, defect 1 and 5)
    ("run-manifest-is-a-list", lambda t: _video_folder(t, [{"file": "a.mp4"}]), RUN + ["--data", "{tmp}/data"],
     "manifest.json: a JSON list, not a talkbench-clips/1 manifest"),
    ("sheet-manifest-is-a-list", lambda t: _video_folder(t, [{"file": "a.mp4"}]), SHEET, "`bench data prepare`"),
    ("videos-without-manifest", _video_folder, TRAIN + ["--data", "{tmp}/data"], "(it holds 2 video file(s)); a dataset"),
    ("manifest-not-json", lambda t: (_video_folder(t), (t / "data" / "manifest.json").write_text("{clips: [")),
     SHEET, "manifest.json: not valid JSON"),
    ("manifest-not-utf8", lambda t: (_video_folder(t), (t / "data" / "manifest.json").write_bytes(b"\xff\xfe{")),
     SHEET, "manifest.json: not valid JSON"),
    ("manifest-without-clips", _dataset_with(lambda m: {"format": m["format"]}), TRAIN + ["--data", "{tmp}/data"],
     'manifest.json: has no "clips" list'),
    ("manifest-wrong-format", _dataset_with(lambda m: {**m, "format": "talkbench-clips/0"}), SHEET,
     "\"format\" is 'talkbench-clips/0', not \"talkbench-clips/1\""),
    ("manifest-without-format", _dataset_with(lambda m: {"clips": m["clips"]}), SHEET, '"format" is none'),
    ("clip-entry-lacks-keys", _dataset_with(lambda m: {**m, "clips": [{"id": "x"}]}), TRAIN + ["--data", "{tmp}/data"],
     "clips[0] lacks ['file', 'split']"),
    ("clip-entry-not-object", _dataset_with(lambda m: {**m, "clips": ["test0.npz"]}), SHEET,
     "clips[0] is a JSON str, not an object"),
    ("clip-id-twice", _dataset_with(lambda m: {**m, "clips": m["clips"] + m["clips"][:1]}), SHEET, "appears twice"),
    ("clip-file-missing", lambda t: (tiny_dataset(t / "data"), (t / "data" / "test0.npz").unlink()),
     TRAIN + ["--data", "{tmp}/data"], "lists clip file 'test0.npz', not found in"),
    ("clip-not-a-zip", lambda t: _replace_clip(t, lambda p: p.write_bytes(b"<html>404</html>")),
     SHEET, "test0.npz: not a clip archive"),
    ("clip-truncated-zip", lambda t: _replace_clip(t, lambda p: p.write_bytes(p.read_bytes()[:200])),
     SHEET, "test0.npz: not a readable clip archive"),
    ("clip-without-frames", lambda t: _replace_clip(t, _npz_without("frames")), SHEET, "has no 'frames' array"),
    ("clip-meta-not-json", lambda t: _replace_clip(t, _npz_with(meta=np.asarray("{oops"))), SHEET,
     "'meta' must be a JSON string"),
    ("clip-with-no-frames", lambda t: _replace_clip(t, _npz_with(frames=np.zeros((0, 16, 16, 3), np.uint8))), SHEET,
     "the clip has no frames"),
    ("clip-changed-since-manifest", _changed_clip, RUN + ["--data", "{tmp}/data"],
     "test0.npz: changed since its manifest was written (sha256 "),
    ("data-dir-missing", _nothing, TRAIN + ["--data", "{tmp}/nowhere"], "nowhere: no such dataset directory"),
    ("data-is-a-file", _file("clip.mp4"), TRAIN + ["--data", "{tmp}/clip.mp4"], "clip.mp4: not a directory"),
    ("data-without-test-split", lambda t: tiny_dataset(t / "data", splits=("train",)), RUN + ["--data", "{tmp}/data"],
     "the dataset has no 'test' clips"),
    ("sheet-of-no-clips", _dataset_with(lambda m: {**m, "clips": []}), SHEET, "the dataset has no clips"),
    ("sheet-out-not-png", lambda t: tiny_dataset(t / "data"), SHEET + ["--out", "{tmp}/sheet.txt"],
     "sheet.txt: --out must name a .png file"),
    ("sheet-out-a-directory", lambda t: (tiny_dataset(t / "data"), (t / "sheets").mkdir()),
     SHEET + ["--out", "{tmp}/sheets"], "sheets: --out must name a .png file"),
    # bench compare (defects 3 and 4)
    ("compare-failed-run", _runs(status_b="failed", error="RuntimeError: out of memory"),
     ["compare", "{tmp}/a", "{tmp}/b"], "b/manifest.json: status is 'failed' (RuntimeError: out of memory)"),
    ("compare-running-run", _runs(status_a="running"), ["compare", "{tmp}/a", "{tmp}/b"],
     "a/manifest.json: status is 'running'"),
    ("compare-no-manifest", _run_without_manifest, ["compare", "{tmp}/a", "{tmp}/b"], "b/manifest.json: missing"),
    ("compare-different-data", _runs(data={"source": "/elsewhere", "hash": "77" * 32}),
     ["compare", "{tmp}/a", "{tmp}/b"], f"different data (data hash {'9f2c' * 16} != data hash {'77' * 32})"),
    ("compare-no-data-hash", _runs(data={}), ["compare", "{tmp}/a", "{tmp}/b"], "records no data hash"),
    ("compare-external-different-gt", _external_runs("/other-gt"), ["compare", "{tmp}/a", "{tmp}/b"],
     "was scored against different ground truth"),
    ("compare-a-file", _file("run.txt"), ["compare", "{tmp}/run.txt", "{tmp}/run.txt"], "run.txt: not a directory"),
    ("compare-missing-dir", _nothing, ["compare", "{tmp}/nope", "{tmp}/nope"], "nope: no such directory"),
    # bench weights (defect 6)
    ("weights-json-corrupt-verify", _weights_json("{\"entries\": {"), ["weights", "verify"],
     "weights.json: unreadable (not valid JSON"),
    ("weights-json-list-verify", _weights_json("[]"), ["weights", "verify"], "weights.json: unreadable"),
    ("weights-json-bad-record-verify", _weights_json('{"entries": {"lpips_alex": "sha"}}'), ["weights", "verify"],
     "run: bench weights fetch --force"),
    ("weights-json-corrupt-fetch", _weights_json("{"), ["weights", "fetch", "--only", "lpips_alex"],
     "weights.json: unreadable"),
    ("weights-from-missing-file", _nothing, ["weights", "fetch", "--from-file", "lpips_alex={tmp}/none.pth"],
     "none.pth is not a file"),
    ("weights-from-file-unknown-name", _file("x.pth"), ["weights", "fetch", "--from-file", "alexnet={tmp}/x.pth"],
     "unknown weights 'alexnet'"),
    ("weights-from-wrong-file", _file("alex.pth"), ["weights", "fetch", "--from-file", "lpips_alex={tmp}/alex.pth"],
     "alex.pth is neither the official alexnet-owt-7be5be79.pth"),
    ("weights-from-junk-syncnet", _file("syncnet_v2.model", b"junk\n"),
     ["weights", "fetch", "--from-file", "syncnet={tmp}/syncnet_v2.model"], "cannot be read as a plain state dict"),
    # other commands
    ("train-unknown-model", _nothing, ["train", "--model", "julnett", "--preset", "smoke"], "unknown model 'julnett'"),
    ("sync-expert-missing", _nothing, TRAIN + ["--sync-expert", "{tmp}/expert.pt"], "expert.pt: sync expert checkpoint"),
    ("train-out-under-a-file", _file("train"), TRAIN[:-1] + ["{tmp}/train/sub"], "train is a file, not a directory"),
    ("train-out-is-a-file", _file("train"), TRAIN, "train is a file, not a directory"),
    ("train-resume-another-config", _checkpoint_of_another_run, TRAIN + ["--resume", "--data", "{tmp}/data"],
     "was written by another run configuration (model, "),
]

# Bad values argparse refuses: usage plus one "bench <command>: error:" line, exit 2, nothing written.
ARGPARSE_CASES = [
    ("steps-zero", TRAIN + ["--steps", "0"], "--steps: expected a positive integer, got 0"),
    ("steps-negative", TRAIN + ["--steps", "-3"], "--steps: expected a positive integer, got -3"),
    ("steps-text", TRAIN + ["--steps", "many"], "--steps: expected a positive integer, got 'many'"),
    ("seed-text", RUN + ["--seed", "abc"], "--seed: invalid int value: 'abc'"),
    ("unknown-preset", ["run", "--model", "julnet", "--preset", "fast"], "--preset: invalid choice: 'fast'"),
    ("yaw-bins-text", RUN + ["--yaw-bins", "wide"], "--yaw-bins: expected two increasing degrees"),
    ("yaw-bins-decreasing", RUN + ["--yaw-bins", "30,15"], "--yaw-bins: expected two increasing degrees"),
    ("sheet-frames-zero", SHEET + ["--frames", "0"], "--frames: expected a positive integer, got 0"),
    ("synth-workers-zero", ["data", "synth", "--preset", "smoke", "--workers", "0"], "--workers: expected a positive"),
    ("compare-resamples-zero", ["compare", "{tmp}/a", "{tmp}/b", "--resamples", "0"], "--resamples: expected a positive"),
    ("weights-from-file-no-name", ["weights", "fetch", "--from-file", "{tmp}/x.pth"], "expected NAME=PATH"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under root (but the weights lock, which fetch may create) -> sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory with its own cache and weights directory (empty unless a case needs weights)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path


def _check_bad_input(sandbox: Path, capsys, setup: Callable[[Path], None], argv: list[str], expected: str) -> None:
    setup(sandbox)
    before = _snapshot(sandbox)
    code = main([arg.format(tmp=sandbox) for arg in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), lines
    assert expected in lines[0], lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert _snapshot(sandbox) == before  # nothing lost, changed or half-written (no run directory either)


def _params(rows: list[tuple], keep: Callable[[list[str]], bool]) -> list:
    return [pytest.param(*row[1:], id=row[0]) for row in rows if keep(row[2])]


@pytest.mark.parametrize("setup, argv, expected", _params(CASES, lambda argv: argv[0] != "run"))
def test_bad_input_gives_one_error_line(sandbox, capsys, setup, argv, expected):
    _check_bad_input(sandbox, capsys, setup, argv, expected)


@pytest.mark.parametrize("setup, argv, expected", _params(CASES, lambda argv: argv[0] == "run"))
def test_bad_input_to_bench_run_gives_one_error_line(provisioned, sandbox, monkeypatch, capsys, setup, argv, expected):
    # `provisioned` comes first (session scope), so this test's monkeypatch restores its TALKBENCH_WEIGHTS after.
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(provisioned[0]))  # `bench run` checks the weights before the data
    _check_bad_input(sandbox, capsys, setup, argv, expected)


@pytest.mark.parametrize("argv, expected", [pytest.param(*case[1:], id=case[0]) for case in ARGPARSE_CASES])
def test_bad_values_are_refused_by_the_parser(sandbox, capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_info:
        main([arg.format(tmp=sandbox) for arg in argv])
    errors = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert errors[-1].startswith("bench ") and ": error: " in errors[-1] and expected in errors[-1], errors
    assert not any(sandbox.iterdir())  # nothing written


def test_the_suite_covers_at_least_30_kinds_of_bad_input():
    assert len({case[0] for case in CASES} | {case[0] for case in ARGPARSE_CASES}) >= 30


# ---------------------------------------------------------------------------------------------- good input stays good


def test_a_hand_made_dataset_loads_and_its_hash_covers_the_clip_files(tmp_path):
    from bench.data.clips import open_dataset

    dataset = open_dataset(tiny_dataset(tmp_path / "data"))
    assert [dataset.clip(e).clip_id for e in dataset.entries] == ["test0", "train0"]
    before = dataset.content_hash
    save_clip(tmp_path / "data" / "test0.npz", tiny_clip("test0", "test", seed=7))
    changed = open_dataset(tmp_path / "data")
    assert changed.content_hash == before  # the manifest did not change: only the load-time check notices
    with pytest.raises(ValueError, match="changed since its manifest was written"):
        changed.clip(changed.split("test")[0])


def test_entries_without_sha256_load_with_a_warning(tmp_path, caplog):
    from bench.data.clips import open_dataset

    root = tiny_dataset(tmp_path / "data")
    _edit_manifest(root, lambda m: {**m, "clips": [{k: v for k, v in e.items() if k != "sha256"} for e in m["clips"]]})
    with caplog.at_level(logging.WARNING, logger="bench.data.clips"):
        dataset = open_dataset(root)
    assert "2 clip entries have no sha256" in caplog.text
    assert dataset.clip(dataset.split("train")[0]).n_frames == 8


@pytest.mark.parametrize("status", ["scored", "complete"])
def test_compare_accepts_runs_whose_results_were_written(tmp_path, capsys, status):
    _runs(status_b=status)(tmp_path)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--resamples", "50"]) == 0
    assert "psnr" in capsys.readouterr().out


def test_compare_of_different_data_goes_ahead_only_when_allowed(tmp_path, capsys, caplog):
    _runs(data={"source": "/elsewhere", "hash": "77" * 32})(tmp_path)
    argv = ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--resamples", "50"]
    with caplog.at_level(logging.WARNING, logger="bench.harness.compare"):
        assert main(argv + ["--allow-different-data"]) == 0
    assert "psnr" in capsys.readouterr().out and "without checking" in caplog.text


def test_compare_of_two_external_runs_on_the_same_ground_truth(tmp_path, capsys):
    """`bench score` hashes predictions too: two models scored on one ground truth stay comparable."""
    _external_runs("/gt")(tmp_path)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--resamples", "50"]) == 0
    assert "psnr" in capsys.readouterr().out


def test_weights_fetch_force_keeps_an_unreadable_manifest_beside_the_new_one(provisioned, tmp_path, monkeypatch,
                                                                              caplog, capsys):
    cache = tmp_path / "weights"
    cache.mkdir()
    shutil.copy(provisioned[0] / "lpips_alex.pt", tmp_path / "lpips_alex_copy.pt")
    (cache / "weights.json").write_text("{\"entries\": {\"lpips_alex\": ")
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(cache))
    argv = ["weights", "fetch", "--force", "--only", "lpips_alex", "--from-file",
            f"lpips_alex={tmp_path / 'lpips_alex_copy.pt'}"]
    with caplog.at_level(logging.WARNING, logger="bench.weights.store"):
        assert main(argv) == 0
    backups = list(cache.glob("weights.json.unreadable-*"))
    assert len(backups) == 1 and backups[0].read_text() == "{\"entries\": {\"lpips_alex\": "
    assert "was unreadable; kept it as" in caplog.text
    assert json.loads((cache / "weights.json").read_text())["entries"]["lpips_alex"]["sha256"]
    capsys.readouterr()
    assert main(["weights", "verify"]) == 2  # the other entries are not recorded any more: fetch says so
    assert "lpips_alex: ok" in capsys.readouterr().out


def test_tiny_images_score_psnr_with_ssim_and_lpips_undefined(provisioned, tmp_path, monkeypatch, capsys):
    """A 1x1 image pair (smaller than SSIM's 11x11 window and LPIPS's backbone): a result, not a traceback."""
    from PIL import Image

    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((1, 1, 3), 9, np.uint8)).save(tmp_path / "b.png")
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(provisioned[0]))
    code = main(["score", "--pred", str(tmp_path / "a.png"), "--gt", str(tmp_path / "b.png"), "--out",
                 str(tmp_path / "run"), "--no-report", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]
    assert summary["psnr"]["value"] == pytest.approx(10 * np.log10(255**2 / 81))
    assert summary["ssim"]["value"] is None and summary["lpips"]["value"] is None
    capsys.readouterr()
    assert main(["score", "--metric", "ssim", "--pred", str(tmp_path / "a.png"), "--gt", str(tmp_path / "b.png")]) == 0
    assert capsys.readouterr().out.strip() == "nan"


def test_clip_zip_is_checked_by_magic_not_by_suffix(tmp_path):
    """A .npy renamed .npz is refused in one line (np.load would return a bare array)."""
    from bench.data.clips import ClipFormatError, load_clip

    np.save(tmp_path / "x.npy", np.zeros(3))
    (tmp_path / "x.npy").rename(tmp_path / "x.npz")
    with pytest.raises(ClipFormatError, match="not a clip archive"):
        load_clip(tmp_path / "x.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ClipFormatError, match="has no 'frames' array"):
        load_clip(tmp_path / "empty.npz")
