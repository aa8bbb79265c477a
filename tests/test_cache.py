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


def test_parallel_runs_needing_one_checkpoint_make_it_one_at_a_time(monkeypatch, tmp_path):
    """Two processes asking for the same uncached model (an experiment's --jobs 2 runs sharing a seed's
    lip-sync expert) do not train it side by side: the second waits until the first has made it."""
    import multiprocessing
    import time
    from types import SimpleNamespace

    import bench.harness.run as run_module
    from bench.config import preset_config

    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    log = tmp_path / "log.txt"

    def fake_train_or_load(model, config, dataset, train_dir, device, progress, ranks):
        with open(log, "a") as handle:
            handle.write(f"start {train_dir.name}\n")
        time.sleep(0.5)
        with open(log, "a") as handle:
            handle.write(f"end {train_dir.name}\n")
        return model, config, {}

    monkeypatch.setattr(run_module, "_cached_or_trained", fake_train_or_load)
    config = preset_config("smoke", model="syncnet")
    dataset = SimpleNamespace(content_hash="data")

    def ask() -> None:
        run_module.obtain_model(config, dataset, None, "cpu", progress=False)

    context = multiprocessing.get_context("fork")  # the children keep the monkeypatch
    workers = [context.Process(target=ask) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0], log.read_text() if log.exists() else "no log"
    lines = [line.split()[0] for line in log.read_text().splitlines()]
    assert lines == ["start", "end", "start", "end"]  # never two at once
