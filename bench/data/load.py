"""A run's data: the dataset its config names (the embedded synthetic heads, generated and cached on first
use, or a dataset directory in the clip format) and a split of it as model-ready tensors.

Kept in the data layer so that `bench train` and `bench data` load data without the metric stack.
"""
from __future__ import annotations

from tqdm.auto import tqdm

from bench.cache import cache_root
from bench.config import RunConfig
from bench.data.clips import ClipFormatError, Dataset, open_dataset
from bench.data.frames import ClipTensors, prepare_clip


def load_data(config: RunConfig, progress: bool = True) -> Dataset:
    if config.data.source == "synth":
        from bench.data.synth import ensure_dataset

        return ensure_dataset(config.data.synth, cache_root() / "data", progress=progress)
    return open_dataset(config.data.source)


def prepare_split(dataset: Dataset, split: str, image_size: int, progress: bool = True) -> list[ClipTensors]:
    entries = dataset.split(split)
    if not entries:
        raise ClipFormatError(f"{dataset.root / 'manifest.json'}: the dataset has no '{split}' clips")
    return [prepare_clip(dataset.clip(e), image_size)
            for e in tqdm(entries, desc=f"load {split}", unit="clip", disable=not progress, leave=False)]
