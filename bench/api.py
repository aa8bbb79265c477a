"""The model protocol: what a model must be to run in talkbench, and the constants every layer shares.

This module is the one place ``julnet/`` and ``baselines/`` import from the harness (besides the
shared building blocks in ``bench.blocks``). It imports no torch, numpy or other bench module, so
the command line can read it without loading the model stack.

The generator protocol (every generator follows it)::

    model(audio, masked, refs) -> (pred, log_scale)

``audio`` B x 80 x 16 mel windows (``bench.data.audio``: 0.2 s centred on the frame), ``masked``
B x 3 x S x S target frames whose generated region (``generated_rows``: the lower half) is blanked
(Wav2Lip's mask: pose-agnostic and it always covers mouth and jaw of a centred face crop), ``refs``
B x R x 3 x S x S frames of the same identity at least ``MIN_REF_GAP`` frames from the target, all
floats in [0, 1]; ``pred`` B x 3 x S x S in [0, 1] and ``log_scale`` B x 1 x S x S, the log of the
per-pixel Laplace scale u. ``model.training_loss(batch, critics=None) -> (loss, logs)`` is its
training objective; the batch holds ``audio``, ``masked``, ``refs`` and ``target`` (and ``sync_mel``
when the sync expert's term is on).

Capabilities are declared, not probed: each model class states them as class attributes

* ``kind``: ``"generator"`` (follows the protocol above and is evaluated), ``"sync_expert"``
  (scores audio-visual sync; trained, never evaluated as a generator) or ``"reference"`` (a floor
  such as ``copyref``: follows the generator protocol, has nothing to train);
* ``trainable``: whether ``bench train`` / ``bench run`` train it;
* ``sampler_class`` (optional): the batch sampler its ``training_loss`` needs, with
  ``TrainSampler``'s interface (``cls(clips, n_refs, seed)``, ``sample``, ``state_dict``,
  ``load_state_dict``); ``None`` means the harness's default sampler;
* ``revision`` (optional, default 0): raised when a change to the class's code changes what training
  produces under the same config, so the harness stops reusing cached checkpoints (and experiment runs
  scored with them) of the earlier revision.

and the harness reads them through ``capabilities(model_or_class)`` only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing this module must not load torch
    import torch

SAMPLE_RATE = 16000  # Hz: the audio every dataset is read at and the mel front-end expects
VIDEO_FPS = 25  # frames per second of the protocol's video (one mel window per frame)
SYNC_WINDOW = 5  # consecutive frames the sync expert reads (t-2 ... t+2): 0.2 s, one mel window
MIN_REF_GAP = 3  # frames: a reference this close to the target would leak its mouth shape
UNCERTAINTY_MODES = ("none", "lun1", "joint")  # none = plain L1; lun1 = Lun1; joint = Lun1 + Lun2

ModelKind = Literal["generator", "sync_expert", "reference"]
MODEL_KINDS: tuple[str, ...] = ("generator", "sync_expert", "reference")


def generated_rows(height: int) -> slice:
    """The rows of an H-row frame that the protocol blanks and a generator fills: the lower half.

    The one definition of the generated region: the input mask, the pixel-loss region, the
    discriminator's crop and the sync expert's crop all derive from it.
    """
    return slice(height // 2, height)


def generated_height(height: int) -> int:
    """How many rows ``generated_rows(height)`` covers (H - H // 2)."""
    rows = generated_rows(height)
    return rows.stop - rows.start


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64
    n_refs: int = 3
    channels: int = 32
    uncertainty: str = "joint"  # none | lun1 | joint (= Lun1 + lun2_weight * Lun2)
    lun2_weight: float = 1.0
    hist_bins: int = 11
    perceptual_weight: float = 0.0  # VGG perceptual loss (DINet: 10); off on CPU presets (about 1 s a step)
    gan_weight: float = 0.0  # LSGAN term against a lower-half PatchGAN discriminator (DINet: 1)
    sync_weight: float = 0.0  # lip-sync expert term, -log P(in sync) (DINet: 0.1; Wav2Lip: 0.03)
    # The generated region as a per-pixel blend of flow-warped reference pixels and the decoder's RGB
    # (bench.blocks.reference_path); False: the decoder paints every generated pixel, as the papers do.
    reference_path: bool = True
    # An extra L1 term on the target's mouth box (from landmarks; batches without boxes skip it), weighted
    # against the reconstruction loss: the few mouth pixels are what lip sync is judged on.
    mouth_weight: float = 0.0
    # Weight of the reference path's blend entropy (mean over the generated pixels outside the target's mouth box,
    # in nats): a softmax over several misaligned references that stays near uniform averages them into a ghosted,
    # soft image (the quick preset's julnet held 0.37 of a pixel's weight on its likeliest source, 0.25 being
    # uniform); the term pushes each pixel to copy one source. 0 (the default until 2026-12-08): no term.
    blend_entropy: float = 0.0
    # Weight of an L1 on the decoder's own RGB over the generated pixels, before the blend. Through the blend
    # alone the decoder's gradient scales with its share, which training drove to about 1%: it never learnt to
    # paint the mouth the references get wrong. 0 (the default until 2026-12-08): no term.
    decoder_weight: float = 0.0


@dataclass(frozen=True)
class Capabilities:
    """What a model class declares about itself (see the module docstring)."""

    kind: str
    trainable: bool
    sampler_class: type | None = None
    revision: int = 0

    @property
    def generator(self) -> bool:
        """Follows the generator protocol and is trained with the generator's critics."""
        return self.kind == "generator"


def capabilities(model_or_class: Any) -> Capabilities:
    """The declared capabilities of a model instance or class; a class without them is refused.

    No defaults: a model that forgot to declare ``kind`` or ``trainable`` fails here, by name,
    instead of being treated as a generator by accident.
    """
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    missing = [name for name in ("kind", "trainable") if not hasattr(cls, name)]
    if missing:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} does not declare {', '.join(missing)} "
                        "(see bench.api: every model class states its capabilities)")
    if cls.kind not in MODEL_KINDS:
        raise TypeError(f"{cls.__qualname__}.kind is {cls.kind!r}; expected one of {', '.join(MODEL_KINDS)}")
    # Optional declarations: no sampler_class means the harness's default sampler; no revision, revision 0.
    return Capabilities(kind=cls.kind, trainable=bool(cls.trainable), sampler_class=getattr(cls, "sampler_class", None),
                        revision=int(getattr(cls, "revision", 0)))


class Declared(Protocol):
    """The class attributes every model states."""

    kind: ClassVar[str]
    trainable: ClassVar[bool]


@runtime_checkable
class Critic(Protocol):
    """What a generator's ``training_loss`` may be handed: the extra terms of its loss (``bench.training.critics``)."""

    def generator_terms(self, pred: torch.Tensor,
                        batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]: ...


class Generator(Declared, Protocol):
    """A ``generator`` or ``reference`` model (an ``nn.Module``)."""

    config: ModelConfig

    def __call__(self, audio: torch.Tensor, masked: torch.Tensor,
                 refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def training_loss(self, batch: dict[str, torch.Tensor],
                      critics: Critic | None = None) -> tuple[torch.Tensor, dict[str, float]]: ...


class SyncExpert(Declared, Protocol):
    """A ``sync_expert`` model: ``(mel, frames) -> (visual_emb, audio_emb)``, L2-normalised.

    ``mel`` B x 80 x 16, ``frames`` B x SYNC_WINDOW x 3 x S x S full frames in [0, 1] (the expert
    crops the generated rows itself); ``sync_probability`` maps the pair to P(in sync) in [0, 1].
    """

    config: ModelConfig

    def __call__(self, mel: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def sync_probability(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor: ...


class ClipFrames(Protocol):
    """What a model's own sampler may read of a prepared clip (``bench.data.frames.ClipTensors``)."""

    frames: torch.Tensor  # T x 3 x S x S uint8
    mel: torch.Tensor  # T x 80 x 16

    @property
    def n_frames(self) -> int: ...
