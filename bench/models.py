"""The models talkbench can run, named in one dict of lazy "module:attr" strings."""
from __future__ import annotations

import difflib
import importlib

from torch import nn

from bench.config import ModelConfig

MODELS: dict[str, str] = {
    "julnet": "julnet.model:JULNet",
    "copyref": "baselines.copyref:CopyRef",
    "pasteref": "baselines.copyref:PasteRef",
    "wav2lip": "baselines.wav2lip:Wav2Lip",
    "dinet": "baselines.dinet:DINet",
    "syncnet": "baselines.syncnet:SyncNet",
}


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownModelError(f"unknown model '{name}'.{hint} Known models: {', '.join(sorted(MODELS))}")
    module_name, attr = MODELS[name].split(":")
    return getattr(importlib.import_module(module_name), attr)


def build_model(name: str, config: ModelConfig) -> nn.Module:
    return model_class(name)(config)
