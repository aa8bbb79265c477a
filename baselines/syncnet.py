"""SyncNet-style audio-visual sync expert (Chung & Zisserman 2016, as retrained for Wav2Lip's lip-sync loss).

Not a generator: it scores whether a mel window and five consecutive lower-face frames belong
together. ``forward(mel, frames5) -> (visual_emb, audio_emb)``, both L2-normalised;
``sync_probability`` maps their cosine similarity to [0, 1] and training is BCE on in-sync and
shifted pairs (Wav2Lip's expert: cosine similarity + BCE, 5 frames, lower half of the face).

Alignment: the protocol's mel window of frame t is 16 mel frames (0.2 s) *centred* on t
(``bench.data.audio``), which covers the same 0.2 s as the five video frames t-2 ... t+2 at 25 fps; so the
in-sync pair for centre t is (mel[t], frames[t-2 : t+3]) (Wav2Lip pairs a window starting at t with
frames t ... t+4, as its mel windows start at the frame). A negative keeps the frames and takes the
mel window of a frame at least ``SYNC_NEGATIVE_OFFSET`` = 5 frames away (one whole window: no overlap).

Adapted from Wav2Lip's expert: the visual encoder's depth follows the image size (a first stride
(1, 2) conv makes the S/2 x S crop square, then stride-2 levels down to at most 4 x 4 and a valid
conv to 1 x 1); the audio encoder is ``baselines.wav2lip.MelEncoder``; embeddings are 128-d with no
final ReLU, so the cosine spans [-1, 1] and is mapped as (1 + cos) / 2 (Wav2Lip keeps the ReLU and
uses the cosine of non-negative vectors directly).

The shared training loop draws batches from ``model.sampler_class`` (``SyncSampler`` here, with
``TrainSampler``'s interface) because the generator sampler yields single frames only.

Embedding normalisation: each encoder's 128-d output passes a parameter-free BatchNorm
(``EmbeddingNorm``) before the L2 normalisation. Without it the freshly initialised encoders map
every input to nearly the same direction, the cosine of every pair sits at one value and the
BCE stays on its ln 2 plateau for thousands of steps (Wav2Lip's expert is known for this); centring
and scaling each dimension over the batch spreads the cosines from the first step. On the quick
preset's data (64 px, batch 16, 1000 steps) held-out sync accuracy went from 0.56 (lr 5e-4,
no normalisation) to 0.68-0.73 (lr 2e-4); lr 5e-4 still stays on the plateau, so train the expert
with lr of about 2e-4. In eval mode the running statistics are used, so scoring is per sample.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.wav2lip import ConvBlock, MelEncoder, level_sizes
from bench.api import SYNC_WINDOW, ClipFrames, ModelConfig, generated_rows

SYNC_NEGATIVE_OFFSET = 5
MIN_SYNC_CLIP_FRAMES = 2 * SYNC_NEGATIVE_OFFSET  # shortest clip in which every centre has a negative
PROBABILITY_EPS = 1e-6


def lower_face(frames: torch.Tensor) -> torch.Tensor:
    """... x H x W -> ... x (H - H//2) x W: the rows the protocol masks (mouth and jaw)."""
    return frames[..., generated_rows(frames.shape[-2]), :]


def make_sync_batch(clips: list[ClipFrames], batch_size: int, generator: torch.Generator,
                    device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """In-sync and shifted (audio, 5-frame) pairs for BCE training, half of each.

    Even rows are positives (label 1): frames t-2 ... t+2 with the mel window of t. Odd rows are
    negatives (label 0): the same kind of frame window with the mel window of a frame t' of the same
    clip with |t' - t| >= 5. Clips shorter than 10 frames are skipped (in them some centre has no
    such t'). Returns ``mel`` B x 80 x 16, ``frames`` B x 5 x 3 x S x S in [0, 1] (full frames; the
    model crops), ``label`` B float, ``offset`` B long (t' - t, 0 for positives).
    """
    usable = [clip for clip in clips if clip.n_frames >= MIN_SYNC_CLIP_FRAMES]
    if not usable:
        raise ValueError(f"sync training needs clips of at least {MIN_SYNC_CLIP_FRAMES} frames")
    picks = torch.randint(len(usable), (batch_size,), generator=generator).tolist()
    half = SYNC_WINDOW // 2
    mels, windows, labels, offsets = [], [], [], []
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
    return {
        "mel": torch.stack(mels).to(device),
        "frames": torch.stack(windows).to(device).float() / 255.0,
        "label": torch.tensor(labels, device=device),
        "offset": torch.tensor(offsets, dtype=torch.long, device=device),
    }


class SyncSampler:
    """``TrainSampler``'s interface over ``make_sync_batch``; ``n_refs`` is accepted and unused."""

    def __init__(self, clips: list[ClipFrames], n_refs: int = 0, seed: int = 0) -> None:
        if not any(clip.n_frames >= MIN_SYNC_CLIP_FRAMES for clip in clips):
            raise ValueError(f"the training split has no clip of at least {MIN_SYNC_CLIP_FRAMES} frames")
        self.clips = clips
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        return make_sync_batch(self.clips, batch_size, self.generator, device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])


class VisualEncoder(nn.Module):
    """5 lower-face frames stacked on channels (15 x S/2 x S) -> ``out_dim`` x 1 x 1."""

    def __init__(self, image_size: int, base: int, out_dim: int) -> None:
        super().__init__()
        cap = 16 * base
        sizes = level_sizes((image_size + 1) // 2)  # the crop after the stride-(1, 2) conv
        widths = [min(base * 2 ** i, cap) for i in range(len(sizes))]
        layers: list[nn.Module] = [ConvBlock(3 * SYNC_WINDOW, widths[0], kernel=7, padding=3),
                                   ConvBlock(widths[0], widths[0], stride=(1, 2)),  # S/2 x S -> S/2 x S/2
                                   ConvBlock(widths[0], widths[0], residual=True)]
        for level in range(1, len(sizes)):
            layers += [ConvBlock(widths[level - 1], widths[level], stride=2),
                       ConvBlock(widths[level], widths[level], residual=True)]
        layers += [ConvBlock(widths[-1], cap, kernel=sizes[-1], padding=0, norm=False),
                   nn.Conv2d(cap, out_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.net(crops)


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


class SyncNet(nn.Module):
    """Audio-visual sync expert; a scorer, not a generator (``kind = "sync_expert"``)."""

    kind = "sync_expert"  # declared capabilities (bench.api)
    trainable = True
    sampler_class = SyncSampler
    make_sync_batch = staticmethod(make_sync_batch)

    def __init__(self, config: ModelConfig, embed_dim: int = 128) -> None:
        super().__init__()
        if config.image_size < 8:
            raise ValueError("SyncNet needs image_size >= 8")
        self.config = config
        base = max(4, config.channels // 2)
        self.visual = VisualEncoder(config.image_size, base, embed_dim)
        audio_width = 16 * base
        self.audio = nn.Sequential(MelEncoder(audio_width, max(2, base // 2)), nn.Conv2d(audio_width, embed_dim, 1))
        self.visual_norm = EmbeddingNorm(embed_dim)
        self.audio_norm = EmbeddingNorm(embed_dim)

    def forward(self, mel: torch.Tensor, frames5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel`` B x 80 x 16, ``frames5`` B x 5 x 3 x S x S full frames in [0, 1] (cropped here)."""
        if frames5.dim() != 5 or frames5.shape[1] != SYNC_WINDOW:
            raise ValueError(f"frames5 must be B x {SYNC_WINDOW} x 3 x S x S, got {tuple(frames5.shape)}")
        crops = lower_face(frames5).flatten(1, 2)
        visual = F.normalize(self.visual_norm(self.visual(crops).flatten(1)), dim=1)
        audio = F.normalize(self.audio_norm(self.audio(mel).flatten(1)), dim=1)
        return visual, audio

    def sync_probability(self, mel: torch.Tensor, frames5: torch.Tensor) -> torch.Tensor:
        """B values in [0, 1]: (1 + cosine similarity) / 2 of the two embeddings."""
        visual, audio = self(mel, frames5)
        return (1.0 + (visual * audio).sum(dim=1)) / 2.0

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """BCE of the sync probability against the in-sync label (a ``SyncSampler`` batch)."""
        # BCE written out in float32: F.binary_cross_entropy refuses to run under CUDA autocast.
        prob = self.sync_probability(batch["mel"], batch["frames"]).float()
        prob = prob.clamp(PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
        label = batch["label"].float()
        loss = -(label * torch.log(prob) + (1.0 - label) * torch.log1p(-prob)).mean()
        accuracy = ((prob > 0.5).to(label.dtype) == label).float().mean()
        return loss, {"bce": loss.item(), "acc": accuracy.item()}
