"""Procedural talking-head data: the default dataset, needing nothing but numpy.

``ensure_dataset(SynthConfig())`` returns a cached dataset of speaking synthetic heads with
exact labels (pose, mouth opening, visemes, landmarks), generated on first use.
"""
from .dataset import (
    GENERATOR_VERSION,
    STRATA,
    SynthConfig,
    config_hash,
    dataset_path,
    default_cache_dir,
    ensure_dataset,
    generate_dataset,
    plan_clips,
    render_clip,
)
from .identity import Identity, make_identity
from .render import FaceState, Frame, render_frame

__all__ = [
    "GENERATOR_VERSION",
    "STRATA",
    "FaceState",
    "Frame",
    "Identity",
    "SynthConfig",
    "config_hash",
    "dataset_path",
    "default_cache_dir",
    "ensure_dataset",
    "generate_dataset",
    "make_identity",
    "plan_clips",
    "render_clip",
    "render_frame",
]
