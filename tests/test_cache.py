"""One cache root: data, checkpoints and weights all resolve $TALKBENCH_CACHE the same way."""
from pathlib import Path

import pytest

from bench.weights import store as weights
from bench.cache import cache_root
from bench.data.synth import default_cache_dir


@pytest.mark.parametrize("value, expected", [("~/tb", "tb"), ("", ".cache/talkbench"), ("  ", ".cache/talkbench")])
def test_every_part_agrees_on_the_cache_root(monkeypatch, tmp_path, value, expected):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TALKBENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("TALKBENCH_CACHE", value)
    root = tmp_path / expected  # "~" expanded (not a folder named "~" in the working directory); "" = unset
    assert cache_root() == root
    assert default_cache_dir() == root / "data"
    assert weights.weights_dir() == root / "weights"


def test_an_absolute_cache_is_used_as_given(monkeypatch, tmp_path):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" and Path(cache_root()).is_absolute()
