"""SyncNet-style audio-visual sync expert (Chung & Zisserman 2016, as retrained for Wav2Lip's lip-sync loss).

Not a generator: it scores whether a mel window and five consecutive frames belong together.
``forward(mel, frames5) -> (visual_emb, audio_emb)``, both L2-normalised, so the LSE offset search
(``bench.metrics.sync``) reads L2 distances of unit vectors (distance^2 = 2 - 2 cos);
``sync_probability`` is sigmoid(scale * cos + bias) with a learned scale and bias.

Alignment: the protocol's mel window of frame t is 16 mel frames (0.2 s) *centred* on t
(``bench.data.audio``), which covers the same 0.2 s as the five video frames t-2 ... t+2 at 25 fps; so the
in-sync pair for centre t is (mel[t], frames[t-2 : t+3]) (Wav2Lip pairs a window starting at t with
frames t ... t+4, as its mel windows start at the frame). A negative keeps the frames and takes the
mel window of a frame at least ``SYNC_NEGATIVE_OFFSET`` = 5 frames away (one whole window: no overlap).

Design (differs from Wav2Lip's expert, which stacks the five lower halves on channels):

- Mouth crop: rows S/2 ... 7S/8 and columns S/8 ... 7S/8 of each frame (inside the protocol's masked
  lower half; at 64 px a 24 x 48 crop). On the synthetic data the mouth boxes (``mouth_boxes``) of
  every pose, |yaw| up to 75 degrees, fall in it; the rest of the lower half is cheek and neck that
  carry no sync signal.
- Per-frame visual encoder: one 2-D conv stack shared by the five frames (a stride-(1, 2) conv makes
  the crop square, stride-2 levels down to at most 4 x 4, a valid conv to one ``FRAME_FEATURES``-d
  vector per frame), then a temporal 1-D conv over the five vectors and a linear map to the embedding.
  Each frame's mouth shape is read by the same filters; only the temporal layers see motion.
- Audio encoder: ``baselines.wav2lip.MelEncoder`` and a 1 x 1 conv to the 128-d embedding.
- Embedding normalisation: each encoder's output passes a parameter-free BatchNorm (``EmbeddingNorm``)
  before the L2 normalisation. Without it the freshly initialised encoders map every input to nearly
  the same direction, the cosine of every pair sits at one value and the BCE stays on its ln 2 plateau
  for thousands of steps (Wav2Lip's expert is known for this). In eval mode the running statistics
  are used, so scoring is per sample.
- Probability: sigmoid(scale * cos + bias), scale and bias learned (SigLIP's pairwise sigmoid), instead
  of Wav2Lip's fixed map of the cosine. Contrastive training puts in-sync pairs near cos 0.8-0.9 and
  shifted ones around 0 with a wide spread (a window cannot point away from every other time of
  its clip at once), so a fixed threshold at cos 0 misjudged a quarter of the pairs (accuracy 0.73 at
  an AUC of 0.96); the learned bias moves the decision point to where the two groups part.
- Loss: BCE on the sampler's in-sync and shifted pairs (it fits the probability) plus a symmetric
  InfoNCE term (temperature ``CONTRASTIVE_TEMPERATURE``) over the batch: each in-sync row's window
  against every row's mel, and its mel against every row's window, at no extra encoder cost. The
  sampler draws ``SYNC_GROUP`` consecutive rows from one clip, so each window also meets same-clip
  audio at other times (hard negatives: same voice and face, wrong time); pairs of the same clip
  less than 5 frames apart are left out (their windows overlap). Without same-clip negatives a
  contrastive expert can match voice to face instead of timing.

The shared training loop draws batches from ``model.sampler_class`` (``SyncSampler`` here, with
``TrainSampler``'s interface) because the generator sampler yields single frames only.

Measured (``benchmarks/bench_sync_expert.py``; quick preset: 64 px, batch 16, synthetic data, held-out
pairs of the test split): the stacked-channel design (BCE on (1 + cos) / 2, 1000 steps, lr 2e-4) reached
0.68-0.73 sync accuracy (AUC 0.78); this design, 1500 steps at lr 1e-3 (``eval.sync_steps`` /
``eval.sync_lr``), 0.89-0.90 on seed 0 (AUC 0.95-0.96; 1 or 2 threads), 0.86 and 0.85 on seeds 1 and 2,
at 1.3-1.45x the old time per step. lr 2e-3 does not
train; 8 rows per clip or temperature 0.2 were no better; InfoNCE weight 0.5 beat 1.0 (0.90 vs 0.89).
Those were the still data. On the moving default data (heads turn, the camera moves) the same schedule left
seed 1's expert on its BCE plateau (0.60 after 1500 steps; LSE-C on the ground truth 0.058, with the audio
shifted 0.061: blind). A linear lr warm-up over the first 10% of the steps (``eval.sync_warmup``) trains all
three seeds: held-out accuracy 0.877 / 0.824 / 0.809, AUC 0.94 / 0.91 / 0.90, LSE-C ground truth 0.72 / 0.58 /
0.56 against 0.21 / 0.20 / 0.18 with the audio shifted (seeds 0 / 1 / 2, one thread; without warm-up seeds 0
and 2 reached 0.60 and 0.53 against 0.23 and 0.19). Mirroring half the training windows (``SyncSampler``; revision 1)
lifts held-out accuracy to 0.878 / 0.857 / 0.849 and AUC to 0.947 / 0.918 / 0.915, LSE-C on the ground truth to
0.76 / 0.67 / 0.56 (0.20 / 0.21 / 0.19 shifted); the gap between training and held-out pairs shrinks from 0.08 to 0.02 on
seeds 1 and 2 (training-pair accuracy 0.88 / 0.87 from 0.91 / 0.90) and stays at 0.04 on seed 0. With mirroring a
longer schedule helps where before it hurt: 2500 steps (``eval.sync_steps``' default) reach 0.916 / 0.904 / 0.900,
AUC 0.965 / 0.957 / 0.963, LSE-C on the ground truth 0.77 / 0.78 / 0.73 against 0.20 / 0.20 / 0.18 shifted.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.wav2lip import ConvBlock, MelEncoder, level_sizes
from bench.api import SYNC_WINDOW, ClipFrames, ModelConfig

SYNC_NEGATIVE_OFFSET = 5
MIN_SYNC_CLIP_FRAMES = 2 * SYNC_NEGATIVE_OFFSET  # shortest clip in which every centre has a negative
PROBABILITY_EPS = 1e-6
SYNC_GROUP = 4  # rows drawn from the same clip in a training batch (same-clip negatives for InfoNCE)
CONTRASTIVE_TEMPERATURE = 0.1
CONTRASTIVE_WEIGHT = 0.5
FRAME_FEATURES = 64  # per-frame feature width (fixed across presets)
PROBABILITY_SCALE = 5.0  # initial scale and threshold (cosine) of P(in sync); both are learned
PROBABILITY_THRESHOLD = 0.5


def mouth_crop(frames: torch.Tensor) -> torch.Tensor:
    """... x S x S -> ... x (7S/8 - S/2) x (6S/8): the mouth region inside the protocol's masked lower half."""
    size = frames.shape[-1]
    top, bottom = size - size // 2, size - size // 8
    left, right = size // 8, size - size // 8
    return frames[..., top:bottom, left:right]


def make_sync_batch(clips: list[ClipFrames], batch_size: int, generator: torch.Generator,
                    device: torch.device | str = "cpu", group: int = 1) -> dict[str, torch.Tensor]:
    """In-sync and shifted (audio, 5-frame) pairs for BCE training, half of each.

    Even rows are positives (label 1): frames t-2 ... t+2 with the mel window of t. Odd rows are
    negatives (label 0): the same kind of frame window with the mel window of a frame t' of the same
    clip with |t' - t| >= 5. Clips shorter than 10 frames are skipped (in them some centre has no
    such t'). ``group`` consecutive rows come from one clip (1: each row picks its clip; the
    training sampler uses ``SYNC_GROUP``). Returns ``mel`` B x 80 x 16, ``frames`` B x 5 x 3 x S x S
    in [0, 1] (full frames; the model crops), ``label`` B float, ``offset`` B long (t' - t, 0 for
    positives), ``clip`` B long (index of the row's clip) and ``centre`` B long (its centre frame).
    """
    usable = [clip for clip in clips if clip.n_frames >= MIN_SYNC_CLIP_FRAMES]
    if not usable:
        raise ValueError(f"sync training needs clips of at least {MIN_SYNC_CLIP_FRAMES} frames")
    if group < 1:
        raise ValueError(f"group must be >= 1, got {group}")
    picks = torch.randint(len(usable), (-(-batch_size // group),), generator=generator)
    picks = picks.repeat_interleave(group)[:batch_size].tolist()
    half = SYNC_WINDOW // 2
    mels, windows, labels, offsets, centres = [], [], [], [], []
    for row, index in enumerate(picks):
        clip = usable[index]
        n = clip.n_frames
        centre = half + int(torch.randint(n - 2 * half, (1,), generator=generator))
        audio_frame = centre
        if row % 2 == 1:
            candidates = [t for t in range(n) if abs(t - centre) >= SYNC_NEGATIVE_OFFSET]
            audio_frame = candidates[int(torch.randint(len(candidates), (1,), generator=generator))]
        mels.append(clip.mel[audio_frame])
        windows.append(clip.frames[centre - half:centre + half + 1])
        labels.append(1.0 if row % 2 == 0 else 0.0)
        offsets.append(audio_frame - centre)
        centres.append(centre)
    return {
        "mel": torch.stack(mels).to(device),
        "frames": torch.stack(windows).to(device).float() / 255.0,
        "label": torch.tensor(labels, device=device),
        "offset": torch.tensor(offsets, dtype=torch.long, device=device),
        "clip": torch.tensor(picks, dtype=torch.long, device=device),
        "centre": torch.tensor(centres, dtype=torch.long, device=device),
    }


class SyncSampler:
    """``TrainSampler``'s interface over ``make_sync_batch``; ``n_refs`` is accepted and unused.

    Each training window is mirrored left-right with probability 1/2 (all five frames alike; the mel is
    untouched): a mouth is near-symmetric, so a mirrored window is another in-sync or shifted example of
    the same speech (lip-reading training commonly flips for the same reason). The held-out pairs of
    ``make_sync_batch`` and all scoring are never flipped.
    """

    group = SYNC_GROUP
    mirror = True

    def __init__(self, clips: list[ClipFrames], n_refs: int = 0, seed: int = 0) -> None:
        if not any(clip.n_frames >= MIN_SYNC_CLIP_FRAMES for clip in clips):
            raise ValueError(f"the training split has no clip of at least {MIN_SYNC_CLIP_FRAMES} frames")
        self.clips = clips
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        batch = make_sync_batch(self.clips, batch_size, self.generator, device, group=self.group)
        if self.mirror:  # drawn from the sampler's own generator: the stream stays exact on resume
            flip = (torch.rand(batch_size, generator=self.generator) < 0.5).to(batch["frames"].device)
            batch["frames"] = torch.where(flip[:, None, None, None, None], batch["frames"].flip(-1), batch["frames"])
            batch["mirrored"] = flip
        return batch

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])


class FrameEncoder(nn.Module):
    """One mouth crop 3 x H x 2H -> ``out_dim`` features (shared by the five frames of a window)."""

    def __init__(self, height: int, base: int, out_dim: int) -> None:
        super().__init__()
        sizes = level_sizes(height)
        widths = [min(base * 2 ** i, 8 * base) for i in range(len(sizes))]
        layers: list[nn.Module] = [ConvBlock(3, widths[0]),
                                   ConvBlock(widths[0], widths[0], stride=(1, 2)),  # H x 2H -> H x H
                                   ConvBlock(widths[0], widths[0], residual=True)]
        for level in range(1, len(sizes)):
            layers += [ConvBlock(widths[level - 1], widths[level], stride=2),
                       ConvBlock(widths[level], widths[level], residual=True)]
        layers += [ConvBlock(widths[-1], out_dim, kernel=sizes[-1], padding=0)]
        self.net = nn.Sequential(*layers)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.net(crops).flatten(1)


class VisualEncoder(nn.Module):
    """B x 5 x 3 x S x S frames -> B x ``out_dim``: per-frame features, then a temporal conv."""

    def __init__(self, image_size: int, base: int, out_dim: int, features: int = FRAME_FEATURES) -> None:
        super().__init__()
        height = mouth_crop(torch.zeros(1, image_size, image_size)).shape[-2]
        self.frame = FrameEncoder(height, base, features)
        self.temporal = nn.Sequential(
            nn.Conv1d(features, features, 3, padding=1, bias=False), nn.BatchNorm1d(features), nn.ReLU(),
            nn.Conv1d(features, features, 3, padding=1, bias=False), nn.BatchNorm1d(features), nn.ReLU())
        self.out = nn.Linear(features * SYNC_WINDOW, out_dim)

    def forward(self, frames5: torch.Tensor) -> torch.Tensor:
        batch = frames5.shape[0]
        crops = mouth_crop(frames5).flatten(0, 1)  # (B * 5) x 3 x h x w
        per_frame = self.frame(crops).view(batch, SYNC_WINDOW, -1).transpose(1, 2)  # B x F x 5
        return self.out(self.temporal(per_frame).flatten(1))


class EmbeddingNorm(nn.BatchNorm1d):
    """Parameter-free BatchNorm over embedding dimensions (see the module docstring).

    A one-row batch in train mode uses the running statistics (BatchNorm cannot estimate them from
    one row).
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, training=False, eps=self.eps)
        return super().forward(x)


def _contrastive(visual: torch.Tensor, audio: torch.Tensor, anchors: torch.Tensor,
                 allowed: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a B x B similarity: window i and audio i match for every ``anchors`` row i.

    ``allowed[i, j]`` says whether window i and audio j may be compared (False: same clip, overlapping
    windows); the matching pairs are always allowed.
    """
    logits = (visual @ audio.t()).float() / CONTRASTIVE_TEMPERATURE
    logits = logits.masked_fill(~allowed, float("-inf"))
    rows = anchors.nonzero().flatten()
    video_to_audio = F.cross_entropy(logits[rows], rows)
    audio_to_video = F.cross_entropy(logits[:, rows].t(), rows)
    return (video_to_audio + audio_to_video) / 2


class SyncNet(nn.Module):
    """Audio-visual sync expert; a scorer, not a generator (``kind = "sync_expert"``)."""

    kind = "sync_expert"  # declared capabilities (bench.api)
    trainable = True
    sampler_class = SyncSampler
    revision = 1  # 1: training windows mirrored (SyncSampler); 0 had none
    make_sync_batch = staticmethod(make_sync_batch)

    def __init__(self, config: ModelConfig, embed_dim: int = 128) -> None:
        super().__init__()
        if config.image_size < 16:
            raise ValueError("SyncNet needs image_size >= 16")
        self.config = config
        base = max(4, config.channels // 2)
        self.visual = VisualEncoder(config.image_size, base, embed_dim)
        audio_width = 16 * base
        self.audio = nn.Sequential(MelEncoder(audio_width, max(2, base // 2)), nn.Conv2d(audio_width, embed_dim, 1))
        self.visual_norm = EmbeddingNorm(embed_dim)
        self.audio_norm = EmbeddingNorm(embed_dim)
        # P(in sync) = sigmoid(scale * cos + bias), both learned (SigLIP's pairwise sigmoid; see the docstring)
        self.log_scale = nn.Parameter(torch.tensor(float(PROBABILITY_SCALE)).log())
        self.bias = nn.Parameter(torch.tensor(-PROBABILITY_SCALE * PROBABILITY_THRESHOLD))

    def forward(self, mel: torch.Tensor, frames5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel`` B x 80 x 16, ``frames5`` B x 5 x 3 x S x S full frames in [0, 1] (cropped here)."""
        if frames5.dim() != 5 or frames5.shape[1] != SYNC_WINDOW:
            raise ValueError(f"frames5 must be B x {SYNC_WINDOW} x 3 x S x S, got {tuple(frames5.shape)}")
        visual = F.normalize(self.visual_norm(self.visual(frames5)), dim=1)
        audio = F.normalize(self.audio_norm(self.audio(mel).flatten(1)), dim=1)
        return visual, audio

    def sync_logit(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """B logits of P(in sync): the learned affine map of the embeddings' cosine similarity."""
        return self.log_scale.exp() * (visual * audio).sum(dim=1) + self.bias

    def sync_probability(self, mel: torch.Tensor, frames5: torch.Tensor) -> torch.Tensor:
        """B values in [0, 1]: sigmoid(scale * cosine similarity + bias) of the two embeddings."""
        return torch.sigmoid(self.sync_logit(*self(mel, frames5)))

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """BCE on the in-sync and shifted pairs plus InfoNCE over the batch's audio windows."""
        visual, audio = self(batch["mel"], batch["frames"])
        label = batch["label"].float()
        logit = self.sync_logit(visual, audio).float()  # float32 under CUDA autocast too
        bce = F.binary_cross_entropy_with_logits(logit, label)
        accuracy = ((logit > 0).to(label.dtype) == label).float().mean()
        logs = {"bce": bce.item(), "acc": accuracy.item()}  # the pair terms (the total adds InfoNCE)
        if CONTRASTIVE_WEIGHT == 0 or "clip" not in batch:
            return bce, logs
        # Every in-sync row is an anchor; the other rows' mels are its candidates (no extra audio pass).
        # A candidate of the same clip whose time is within 5 frames of the window's centre is left out.
        clip, centre = batch["clip"], batch["centre"]
        audio_time = centre + batch["offset"]
        near = (clip[:, None] == clip[None, :]) & ((centre[:, None] - audio_time[None, :]).abs()
                                                   < SYNC_NEGATIVE_OFFSET)
        anchors = label > 0.5
        allowed = ~near | torch.diag(anchors)
        nce = _contrastive(visual, audio, anchors, allowed)
        return bce + CONTRASTIVE_WEIGHT * nce, logs
