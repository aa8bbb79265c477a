"""LSE-C / LSE-D (bench.metrics.sync) and the official SyncNet port (bench.metrics.syncnet_official).

The metric is checked against a plain loop restatement of syncnet_python's definitions written here;
the network against the official key names and shapes (hard-coded below from syncnet_python's
SyncNetModel.py, class S) and against the official front-end's alignment rules.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import python_speech_features
import torch
from scipy import signal

from bench.metrics import sync as sm
from bench.metrics import syncnet_official as so

# ------------------------------------------------------------------ the official layout (SyncNetModel.S)
# (module prefix, weight shape) for convs / linears (weight + bias); (prefix, channels) for batch norms
# (weight, bias, running_mean, running_var, num_batches_tracked). Indices are positions in the official
# nn.Sequential, ReLU / max-pool layers included, so gaps are expected.
OFFICIAL_LAYERS: list[tuple[str, tuple[int, ...] | int]] = [
    ("netcnnaud.0", (64, 1, 3, 3)), ("netcnnaud.1", 64),
    ("netcnnaud.4", (192, 64, 3, 3)), ("netcnnaud.5", 192),
    ("netcnnaud.8", (384, 192, 3, 3)), ("netcnnaud.9", 384),
    ("netcnnaud.11", (256, 384, 3, 3)), ("netcnnaud.12", 256),
    ("netcnnaud.14", (256, 256, 3, 3)), ("netcnnaud.15", 256),
    ("netcnnaud.18", (512, 256, 5, 4)), ("netcnnaud.19", 512),
    ("netfcaud.0", (512, 512)), ("netfcaud.1", 512), ("netfcaud.3", (1024, 512)),
    ("netfclip.0", (512, 512)), ("netfclip.1", 512), ("netfclip.3", (1024, 512)),
    ("netcnnlip.0", (96, 3, 5, 7, 7)), ("netcnnlip.1", 96),
    ("netcnnlip.4", (256, 96, 1, 5, 5)), ("netcnnlip.5", 256),
    ("netcnnlip.8", (256, 256, 1, 3, 3)), ("netcnnlip.9", 256),
    ("netcnnlip.11", (256, 256, 1, 3, 3)), ("netcnnlip.12", 256),
    ("netcnnlip.14", (256, 256, 1, 3, 3)), ("netcnnlip.15", 256),
    ("netcnnlip.18", (512, 256, 1, 6, 6)), ("netcnnlip.19", 512),
]


def _official_keys() -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {}
    for prefix, spec in OFFICIAL_LAYERS:
        if isinstance(spec, int):
            keys.update({f"{prefix}.{n}": (spec,) for n in ("weight", "bias", "running_mean", "running_var")})
            keys[f"{prefix}.num_batches_tracked"] = ()
        else:
            keys.update({f"{prefix}.weight": spec, f"{prefix}.bias": (spec[0],)})
    return keys


OFFICIAL_KEYS = _official_keys()


# ------------------------------------------------------------------ a loop restatement of the metric

def reference_lse(video: np.ndarray, audio: np.ndarray, vshift: int = 15) -> dict:
    """syncnet_python's evaluate, restated as loops in float64: zero audio outside the clip, ||v - a + 1e-6||."""
    n, dim = video.shape
    width = 2 * vshift + 1
    dists = np.zeros((n, width))
    for t in range(n):
        for k in range(width):
            j = t + k - vshift
            partner = audio[j] if 0 <= j < n else np.zeros(dim)
            dists[t, k] = np.sqrt(np.sum((video[t] - partner + 1e-6) ** 2))
    mean = dists.mean(axis=0)
    best = int(np.argmin(mean))
    median = float(np.sort(mean)[vshift])  # odd count: the middle one
    frame_conf = signal.medfilt(median - dists[:, best], kernel_size=9)
    return {"mean": mean, "dists": dists, "offset": vshift - best, "lse_d": mean[best],
            "lse_c": median - mean[best], "frame_conf": frame_conf}


@pytest.mark.parametrize("n,dim,vshift", [(40, 16, 15), (12, 8, 15), (25, 32, 4)])
def test_lse_matches_loop_restatement(n, dim, vshift):
    rng = np.random.default_rng(n + dim)
    video = rng.normal(size=(n, dim)).astype(np.float32)
    audio = (0.7 * np.roll(video, 2, axis=0) + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)
    ref = reference_lse(video.astype(np.float64), audio.astype(np.float64), vshift)
    mean, per_frame = sm.offset_distances(video, audio, vshift)
    assert mean.shape == (2 * vshift + 1,) and per_frame.shape == (n, 2 * vshift + 1)
    np.testing.assert_allclose(per_frame, ref["dists"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean, ref["mean"], rtol=1e-5, atol=1e-5)
    res = sm.lse(torch.from_numpy(video), torch.from_numpy(audio), vshift)
    assert res.offset == ref["offset"]
    assert res.lse_d == pytest.approx(ref["lse_d"], rel=1e-5)
    assert res.lse_c == pytest.approx(ref["lse_c"], rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(res.per_frame_conf, ref["frame_conf"], rtol=1e-4, atol=1e-4)
    assert res.offsets[np.argmin(res.mean_dists)] == res.offset


@pytest.mark.parametrize("shift", [3, -4, 0])
def test_shifted_audio_gives_offset_minus_shift(shift):
    """audio[t + s] == video[t] (audio lags by s frames) -> offset -s; offset > 0 means the audio leads."""
    rng = np.random.default_rng(7)
    n, dim = 60, 32
    video = rng.normal(size=(n, dim)).astype(np.float32)
    audio = rng.normal(size=(n, dim)).astype(np.float32)
    lo, hi = max(0, -shift), min(n, n - shift)
    audio[lo + shift:hi + shift] = video[lo:hi]
    res = sm.lse(video, audio)
    assert res.offset == -shift
    _, per_frame = sm.offset_distances(video, audio)
    column = 15 + shift  # the column comparing video t with audio t + shift
    assert np.all(per_frame[lo:hi, column] < 1e-4)  # sqrt(D) * 1e-6: pairwise_distance's eps
    assert res.lse_c > 5.0


def test_exact_shift_with_zero_edges_gives_zero_distance():
    """With the frames that meet the zero padding also zero, the mean distance at the offset is ~0."""
    rng = np.random.default_rng(3)
    n, dim, s = 50, 16, 5
    video = rng.normal(size=(n, dim)).astype(np.float32)
    video[n - s:] = 0.0
    audio = np.zeros_like(video)
    audio[s:] = video[:n - s]
    res = sm.lse(video, audio)
    assert res.offset == -s
    assert res.lse_d == pytest.approx(np.sqrt(dim) * 1e-6, abs=1e-6)


def test_shuffled_embeddings_give_small_confidence():
    rng = np.random.default_rng(11)
    video = rng.normal(size=(200, 64)).astype(np.float32)
    synced = sm.lse(video, video.copy())
    shuffled = sm.lse(video, video[rng.permutation(200)])
    assert synced.offset == 0 and synced.lse_c > 8.0
    assert shuffled.lse_c < 0.05 * synced.lse_c


def test_bad_embedding_shapes_are_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        sm.lse(np.zeros((5, 4)), np.zeros((6, 4)))
    with pytest.raises(ValueError, match="T x D"):
        sm.lse(np.zeros(5), np.zeros(5))


# ------------------------------------------------------------------ the official network and its weights

@pytest.fixture(scope="module")
def model() -> so.OfficialSyncNet:
    torch.manual_seed(0)
    net = so.OfficialSyncNet()
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode BN is exercised
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def official_file(model, tmp_path_factory):
    """The official file's form: a plain state dict with the official names, in torch's pre-1.6 (non-zip)
    serialisation and without num_batches_tracked, as the torch of 2017-2018 wrote it."""
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def test_state_dict_keys_and_shapes_are_the_official_ones(model):
    assert len(OFFICIAL_KEYS) == 102  # 12 convs/linears x 2 + 14 batch norms x 5
    assert so.expected_shapes() == OFFICIAL_KEYS
    assert list(model.state_dict()) == list(OFFICIAL_KEYS)  # same registration order as S


def test_load_official_file_with_weights_only(model, official_file):
    loaded = so.load_official_syncnet(official_file)
    assert not loaded.training
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded.state_dict()[key], value), key


def test_prefixed_state_dict_loads(model, tmp_path):
    path = tmp_path / "prefixed.model"
    torch.save({f"__S__.{k}": v for k, v in model.state_dict().items()}, path)
    assert torch.equal(so.load_official_syncnet(path).netfclip[3].weight, model.netfclip[3].weight)


@pytest.mark.parametrize("damage,expected", [
    ("rename", "1 missing keys: netcnnlip.0.weight; 1 unexpected keys: netcnnlip.0.weights"),
    ("reshape", "1 wrong shapes: netfcaud.3.weight (512, 512) (expected (1024, 512))"),
    ("extra", "1 unexpected keys: extra.weight"),
])
def test_wrong_state_dict_gives_one_error_naming_the_file(model, tmp_path, damage, expected):
    state = dict(model.state_dict())
    if damage == "rename":
        state["netcnnlip.0.weights"] = state.pop("netcnnlip.0.weight")
    elif damage == "reshape":
        state["netfcaud.3.weight"] = torch.zeros(512, 512)
    else:
        state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.model"
    torch.save(state, path)
    with pytest.raises(so.OfficialWeightsError) as info:
        so.load_official_syncnet(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not the official SyncNet") and expected in message
    assert "\n" not in message


def test_not_a_state_dict_or_not_torch(tmp_path):
    listed = tmp_path / "list.model"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(so.OfficialWeightsError, match=f"{listed}: expected a state dict"):
        so.load_official_syncnet(listed)
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(so.OfficialWeightsError, match="weights_only=True"):
        so.load_official_syncnet(junk)


def test_whole_pickled_model_needs_knowing_conversion(model, tmp_path, monkeypatch):
    """A torch.save(model) of syncnet_python's S (class SyncNetModel.S) is refused by weights_only; the
    conversion unpickles it only with allow_pickle=True and yields a plain state dict."""
    fake = types.ModuleType("SyncNetModel")
    S = type("S", (so.OfficialSyncNet,), {"__module__": "SyncNetModel"})
    fake.S = S
    monkeypatch.setitem(sys.modules, "SyncNetModel", fake)
    whole = S()
    whole.load_state_dict(model.state_dict())
    path = tmp_path / "whole.model"
    torch.save(whole, path)
    monkeypatch.delitem(sys.modules, "SyncNetModel")
    with pytest.raises(so.OfficialWeightsError, match="allow_pickle=True"):
        so.load_official_syncnet(path)
    with pytest.raises(so.OfficialWeightsError, match="allow_pickle=True"):
        so.convert_official_syncnet(path)
    state = so.convert_official_syncnet(path, allow_pickle=True)
    assert "SyncNetModel" not in sys.modules
    assert set(state) == set(OFFICIAL_KEYS) and all(type(v) is torch.Tensor for v in state.values())
    converted = tmp_path / "converted.model"
    torch.save(state, converted)
    assert torch.equal(so.load_official_syncnet(converted).netcnnaud[0].weight, model.netcnnaud[0].weight)


# ------------------------------------------------------------------ front-ends and end to end

def test_mfcc_rate_is_100_per_second_and_matches_the_official_call():
    rng = np.random.default_rng(0)
    one, two = rng.uniform(-0.5, 0.5, 16000), rng.uniform(-0.5, 0.5, 32000)
    m1, m2 = so.mfcc_features(one), so.mfcc_features(two)
    assert m1.shape == (13, 99) and m2.shape == (13, 199)  # 1 + ceil((n - 400) / 160): 10 ms step
    pcm = np.round(one * 32768).astype(np.int16)  # what scipy.io.wavfile.read gives the official code
    np.testing.assert_allclose(m1, python_speech_features.mfcc(pcm, 16000).T, rtol=1e-5, atol=1e-4)
    assert np.array_equal(so.to_pcm16(pcm / 32768.0), pcm.astype(np.float64))


def test_mfcc_window_of_video_frame_starts_at_its_first_sample():
    """A burst during video frame k (samples 640k ... 640k+638; pre-emphasis smears it one sample on, to
    640k+639) raises the energy (c0) of exactly the 400-sample MFCC frames that overlap it, 4k-2 ... 4k+3:
    MFCC frame 4k starts at video frame k's first sample, so 20 MFCC frames from 4v span the 5 video
    frames from v (0.2 s, plus the last MFCC frame's 15 ms tail)."""
    k = 10
    audio = np.zeros(30 * 640, np.float32)
    audio[640 * k:640 * (k + 1) - 1] = np.random.default_rng(1).uniform(-0.5, 0.5, 639)
    energy = so.mfcc_features(audio)[0]
    loud = np.flatnonzero(energy > energy.min() + 10)
    assert list(loud) == list(range(4 * k - 2, 4 * k + 4))
    assert so.MFCC_WINDOW == 20 and so.MFCC_PER_FRAME * so.FPS == 100


class _Recorder:
    """Stands in for the network: records what each tower is given, returns zeros."""

    def __init__(self) -> None:
        self.video: list[torch.Tensor] = []
        self.audio: list[torch.Tensor] = []

    def eval(self) -> "_Recorder":
        return self

    def embed_video(self, x: torch.Tensor) -> torch.Tensor:
        self.video.append(x.clone())
        return torch.zeros(len(x), 4)

    def embed_audio(self, x: torch.Tensor) -> torch.Tensor:
        self.audio.append(x.clone())
        return torch.zeros(len(x), 4)


def test_windows_pair_frames_v_to_v_plus_4_with_mfcc_4v_to_4v_plus_19():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    audio = rng.uniform(-0.3, 0.3, 11 * 640 + 100).astype(np.float32)  # audio is the shorter: 11 frames
    rec = _Recorder()
    video_emb, audio_emb = so.official_embeddings(rec, frames, audio, batch_size=4)  # type: ignore[arg-type]
    assert so.window_count(12, len(audio)) == 6 and video_emb.shape == audio_emb.shape == (6, 4)
    clips, windows = torch.cat(rec.video), torch.cat(rec.audio)
    assert clips.shape == (6, 3, 5, 224, 224) and windows.shape == (6, 1, 13, 20)
    mfcc = so.mfcc_features(audio)
    for v in range(6):
        bgr = torch.from_numpy(frames[v:v + 5, :, :, ::-1].copy()).permute(3, 0, 1, 2).float()
        assert torch.equal(clips[v], bgr)  # BGR, raw 0-255, no normalisation
        assert torch.equal(windows[v, 0], torch.from_numpy(mfcc[:, 4 * v:4 * v + 20]))


def test_prepare_frames_resizes_to_224_in_bgr():
    frames = np.zeros((2, 96, 80, 3), np.uint8)
    frames[..., 0], frames[..., 2] = 200, 10
    out = so.prepare_frames(frames)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.uint8
    assert int(out[:, 0].min()) == int(out[:, 0].max()) == 10 and int(out[:, 2].min()) == 200
    with pytest.raises(ValueError, match="uint8 T x H x W x 3"):
        so.prepare_frames(np.zeros((2, 8, 8, 3), np.float32))


def test_too_short_clip_is_refused(model):
    with pytest.raises(ValueError, match="too short"):
        so.official_embeddings(model, np.zeros((5, 224, 224, 3), np.uint8), np.zeros(5 * 640, np.float32))


def test_official_embeddings_end_to_end(official_file):
    """Two windows through the real towers (7 frames of 224 x 224 and 0.28 s of audio), then lse()."""
    net = so.load_official_syncnet(official_file)
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (7, 224, 224, 3), dtype=np.uint8)
    audio = rng.uniform(-0.3, 0.3, 7 * 640).astype(np.float32)
    video_emb, audio_emb = so.official_embeddings(net, frames, audio)
    assert video_emb.shape == audio_emb.shape == (2, so.EMBED_DIM)
    assert video_emb.dtype == torch.float32 and torch.isfinite(video_emb).all() and torch.isfinite(audio_emb).all()
    one, _ = so.official_embeddings(net, frames, audio, batch_size=1, max_windows=1)
    torch.testing.assert_close(one, video_emb[:1], rtol=1e-4, atol=1e-4)  # batching does not matter
    result = sm.lse(video_emb, audio_emb)
    assert result.mean_dists.shape == (31,) and -15 <= result.offset <= 15
    assert result.lse_d > 0 and result.lse_c >= 0 and result.per_frame_conf.shape == (2,)


def test_the_floor_moves_the_audio_beyond_the_offset_search():
    from bench.metrics.sync import MAX_OFFSET, shifted_mel

    for n in (50, 40, 20):
        mel = torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 80, 16)
        moved = shifted_mel(mel)
        shift = int((moved[:, 0, 0] - mel[:, 0, 0]).remainder(n)[0])
        assert sorted(moved[:, 0, 0].tolist()) == list(range(n))  # a permutation: the same audio, moved
        assert torch.equal(moved[:, 0, 0], mel[:, 0, 0].roll(n - shift))
        distance = min(shift, n - shift)
        # every frame's audio is at least the search's reach away where the clip allows it
        assert distance >= (MAX_OFFSET + 1 if n >= 2 * (MAX_OFFSET + 1) else n // 2)
