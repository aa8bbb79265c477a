"""The models talkbench can run, named in one dict of lazy "module:attr" strings."""
from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from bench.api import ModelConfig
from bench.errors import BenchError

if TYPE_CHECKING:  # torch loads with the model itself: `bench ls` and `bench --help` must not pay for it
    from torch import nn

MODELS: dict[str, str] = {
    "julnet": "julnet.model:JULNet",
    "copyref": "baselines.copyref:CopyRef",
    "pasteref": "baselines.copyref:PasteRef",
    "wav2lip": "baselines.wav2lip:Wav2Lip",
    "dinet": "baselines.dinet:DINet",
    "syncnet": "baselines.syncnet:SyncNet",
}


class UnknownModelError(BenchError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownModelError(f"unknown model '{name}'.{hint} Known models: {', '.join(sorted(MODELS))}")
    module_name, attr = MODELS[name].split(":")
    return getattr(importlib.import_module(module_name), attr)


def build_model(name: str, config: ModelConfig, seed: int | None = None) -> nn.Module:
    """An instance of the named model; with ``seed``, its initial weights depend on that seed alone.

    The seeded build draws from a forked copy of torch's CPU generator, so it neither depends on
    nor disturbs what ran before it in the process (a data step, another model's training).
    """
    import torch

    if seed is None:
        return model_class(name)(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(name)(config)
