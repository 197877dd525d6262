"""Where model weights come from: the explicit file or folder, the caches, a download, an import.

Resolution order, the same for CLIP, Whisper and the text model:

1. an explicit file (``SHOEBOX_CLIP_WEIGHTS`` / ``SHOEBOX_WHISPER_WEIGHTS``, which may also
   name a CTranslate2 Whisper folder), or for the text model ``SHOEBOX_TEXT_MODEL`` set to a
   folder rather than a model name;
2. Shoebox's own cache under ``settings.models_dir``, then the caches other tools fill
   (open_clip's and sentence-transformers' Hugging Face hub cache, whisper's ``~/.cache/whisper``,
   faster-whisper's ``Systran/faster-whisper-<name>`` in the Hugging Face hub cache);
3. a download, only when ``settings.allow_download`` is on.

Shoebox's cache looks like this::

    models/clip/<model>/<tag>/open_clip_model.safetensors   downloaded, or imported as a known tag
    models/clip/<model>/file-<sha256[:12]>/<checkpoint>     imported, provenance unknown
    models/whisper/<name>.pt                                 downloaded, imported, or test-tiny (openai-whisper)
    models/whisper/<name>/                                   a CTranslate2 Whisper folder (faster-whisper):
                                                             model.bin, config.json, tokenizer.json,
                                                             vocabulary.* (downloaded or imported)
    models/text/<org>--<name>/                               a sentence-transformers folder: modules.json,
                                                             config.json, model.safetensors, tokenizer.json,
                                                             1_Pooling/config.json, ... (downloaded or imported)
    models/text/test-tiny/                                   the generated test-tiny text model
    models/hashes.json                                       sha256 of weight files, by path+size+mtime

A text model's name is a Hugging Face repository id (``intfloat/multilingual-e5-small``;
short names of well-known models are accepted, see :data:`TEXT_ALIASES`), ``test-tiny``,
or the name it was imported under; ``/`` becomes ``--`` in the cache folder's name, as in
the Hugging Face cache.

Nothing here unpickles arbitrary objects: every ``torch.load`` passes ``weights_only=True``
and safetensors files are read with safetensors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelUnavailableError, UsageError
from ..settings import Settings
from .tiny import (
    TEST_TINY,
    tiny_seed,
    write_tiny_clip_weights,
    write_tiny_text_model,
    write_tiny_whisper_weights,
)

KINDS = ("clip", "whisper", "text")
WEIGHTS_ENV = {"clip": "SHOEBOX_CLIP_WEIGHTS", "whisper": "SHOEBOX_WHISPER_WEIGHTS", "text": "SHOEBOX_TEXT_MODEL"}

# The checkpoint file names open_clip's Hugging Face repositories use, best first.
_CLIP_FILE_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)

# Whisper's published checkpoints.  Kept here rather than read from whisper._MODELS so
# that checking a name does not import torch (the window must appear before torch loads);
# downloads take their URL from whisper itself.
WHISPER_NAMES = (
    "tiny.en",
    "tiny",
    "base.en",
    "base",
    "small.en",
    "small",
    "medium.en",
    "medium",
    "large-v1",
    "large-v2",
    "large-v3",
    "large",
    "large-v3-turbo",
    "turbo",
)


# Where faster-whisper's converted copies of the published Whisper checkpoints live on the
# Hugging Face hub (the same table faster-whisper keeps; kept here so that no look-up imports it).
CT2_WHISPER_REPOS = {
    **{
        name: f"Systran/faster-whisper-{name}"
        for name in (
            "tiny.en",
            "tiny",
            "base.en",
            "base",
            "small.en",
            "small",
            "medium.en",
            "medium",
            "large-v1",
            "large-v2",
            "large-v3",
        )
    },
    "large": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}
# What a CTranslate2 Whisper folder needs, and what a download fetches.
CT2_WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")
CT2_WHISPER_PATTERNS = ["model.bin", "config.json", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"]


@dataclass(frozen=True)
class WeightsLocation:
    """A weights file (a model folder, for the text model) on this computer, and which resolution step found it."""

    path: Path
    source: str  # explicit | shoebox-cache | hf-cache | open_clip-cache | whisper-cache | generated | download


# ---------------------------------------------------------------------------- files


def sniff_format(path: Path) -> str:
    """``safetensors``, ``torch-zip`` (torch.save since 1.6), ``pickle`` (older torch.save) or ``unknown``."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return "unknown"
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if head[:1] == b"\x80":
        return "pickle"
    # safetensors: an 8-byte little-endian header length, then a JSON header.
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    return "unknown"


def load_weights_file(path: Path, *, what: str, fix: str, shown_as: Path | None = None) -> Any:
    """Read a weights file without running code from it.

    safetensors files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickled objects other than tensors
    and plain containers.  Raises :class:`ModelUnavailableError` naming ``path`` when the
    file is damaged, is not a weights file, or carries Python objects.
    """
    import torch

    try:
        if sniff_format(path) == "safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # every reader error means the same thing to the person
        raise weights_error(exc, Path(shown_as or path), what, fix) from exc


def weights_error(exc: BaseException, path: Path, what: str, fix: str) -> ModelUnavailableError:
    """Translate a failure to read or apply a weights file into a message for a person."""
    text = str(exc)
    refused = re.search(r"GLOBAL\s+([\w.]+)", text, re.IGNORECASE)
    if "weights only load failed" in text.lower() and refused:
        return ModelUnavailableError(
            f"Refused to load the {what} file {path}: besides weights it holds Python objects "
            f"({refused.group(1)}) that would run code when loaded. Shoebox only loads plain weight "
            f"files (safetensors, or PyTorch files that load with weights_only=True); "
            f"get the .safetensors release of these weights instead."
        )
    return ModelUnavailableError(
        f"The {what} file {path} is damaged or is not a {what} checkpoint ({_short_reason(exc)}). {fix}"
    )


def _short_reason(exc: BaseException) -> str:
    noise = ("weights only load failed", "check the documentation", "please file an issue", "in pytorch 2.6")
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.lower().startswith(noise):
            return line[:200]
    return type(exc).__name__


def file_sha256(path: Path, settings: Settings | None = None) -> str:
    """sha256 of a file, remembered in ``models/hashes.json`` by path, size and mtime.

    Weight files are hundreds of megabytes and the identity of a library built from an
    explicit file is its hash, so the hash is computed once per file version, not per start.
    """
    path = Path(path).resolve()
    stat = path.stat()
    cache_file = settings.models_dir / "hashes.json" if settings is not None else None
    cache: dict[str, Any] = {}
    if cache_file is not None:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
        entry = cache.get(str(path))
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    if cache_file is not None:
        cache[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
        # A read-only library still works; it only hashes again next time.
        with contextlib.suppress(OSError):
            _write_text_atomic(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    return sha


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _staging_file(directory: Path, suffix: str) -> Path:
    # A hidden name, so find_checkpoint never picks up a half-written or unvalidated file.
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", suffix=suffix, dir=directory)
    os.close(fd)
    return Path(tmp)


# ---------------------------------------------------------------------------- cache layout


def explicit_weights_file(settings: Settings, kind: str) -> Path | None:
    """The file named by SHOEBOX_CLIP_WEIGHTS / SHOEBOX_WHISPER_WEIGHTS, or None when unset.

    Raises :class:`ModelUnavailableError` when the setting names something that is not a file.
    """
    raw = settings.clip_weights if kind == "clip" else settings.whisper_weights
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        what = "no file" if not path.exists() else "a folder, not a file"
        raise ModelUnavailableError(
            f"{WEIGHTS_ENV[kind]} is set to {path}, but there is {what} there. "
            f"Fix the path, or unset {WEIGHTS_ENV[kind]} to use the model cache."
        )
    return path


def explicit_whisper_weights(settings: Settings) -> Path | None:
    """What SHOEBOX_WHISPER_WEIGHTS names: a whisper .pt file or a CTranslate2 folder; None when unset.

    The ``model.bin`` of a CTranslate2 folder stands for its folder.  Raises
    :class:`ModelUnavailableError` when nothing is there, or a folder that is not a
    CTranslate2 Whisper model.
    """
    raw = settings.whisper_weights
    if not raw:
        return None
    path = Path(raw).expanduser()
    if path.is_file() and path.name == "model.bin" and is_ct2_folder(path.parent):
        path = path.parent
    if path.is_dir():
        problems = ct2_whisper_problems(path)
        if problems:
            raise ModelUnavailableError(
                f"SHOEBOX_WHISPER_WEIGHTS is set to the folder {path}, which is not a CTranslate2 Whisper model: "
                f"it lacks {', '.join(problems)}. Point it at a faster-whisper model folder "
                f"(model.bin, config.json, tokenizer.json) or at a Whisper .pt file."
            )
        return path
    if not path.is_file():
        raise ModelUnavailableError(
            f"SHOEBOX_WHISPER_WEIGHTS is set to {path}, but there is nothing there. "
            f"Fix the path, or unset SHOEBOX_WHISPER_WEIGHTS to use the model cache."
        )
    return path


def is_ct2_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding a CTranslate2 model (model.bin beside config.json)."""
    return path.is_dir() and (path / "model.bin").is_file() and (path / "config.json").is_file()


def ct2_model_spec(path: Path) -> str | None:
    """The model kind written at the start of a CTranslate2 ``model.bin`` (``WhisperSpec``), or None.

    Reads a few bytes: a format version, then the spec's name as a length and characters.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(6 + 64)
    except OSError:
        return None
    if len(head) < 6:
        return None
    version = int.from_bytes(head[:4], "little")
    length = int.from_bytes(head[4:6], "little")
    if not 1 <= version <= 100 or not 1 <= length <= 64 or len(head) < 6 + length:
        return None
    try:
        return head[6 : 6 + length].rstrip(b"\x00").decode("ascii") or None
    except UnicodeDecodeError:
        return None


def ct2_whisper_problems(folder: Path) -> list[str]:
    """What keeps ``folder`` from being a CTranslate2 Whisper model, as phrases; empty when it is one."""
    if not folder.is_dir():
        return ["the folder itself"]
    problems = [f"{name}" for name in CT2_WHISPER_FILES if not (folder / name).is_file()]
    if (folder / "model.bin").is_file():
        spec = ct2_model_spec(folder / "model.bin")
        if spec != "WhisperSpec":
            what = f"a CTranslate2 {spec} model" if spec else "not a CTranslate2 model file"
            problems.append(f"Whisper weights in model.bin (it holds {what})")
    return problems


def ct2_whisper_sha256(folder: Path, settings: Settings | None = None) -> str:
    """sha256 of a CTranslate2 Whisper folder's model.bin (remembered like every weights file's hash)."""
    return file_sha256(folder / "model.bin", settings)


def clip_cache_dir(settings: Settings, name: str, tag: str) -> Path:
    """Folder of Shoebox's cache that holds CLIP ``name`` with weights ``tag``."""
    # ':' is not allowed in Windows file names, so "file:<sha>" is stored as "file-<sha>".
    return settings.models_dir / "clip" / name / tag.replace(":", "-")


def _tag_from_dirname(dirname: str) -> str:
    return "file:" + dirname[5:] if dirname.startswith("file-") else dirname


def whisper_cache_file(settings: Settings, name: str) -> Path:
    """Path of Whisper ``name`` in Shoebox's cache."""
    return settings.models_dir / "whisper" / f"{name}.pt"


def whisper_cache_folder(settings: Settings, name: str) -> Path:
    """Folder of Shoebox's cache that holds Whisper ``name`` in CTranslate2 format."""
    return settings.models_dir / "whisper" / name


def find_checkpoint(directory: Path) -> Path | None:
    """The checkpoint file in a cache folder (safetensors first), or None."""
    if not directory.is_dir():
        return None
    files = [p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]
    if not files:
        return None
    order = {name: i for i, name in enumerate(_CLIP_FILE_NAMES)}
    files.sort(key=lambda p: (order.get(p.name, len(order)), p.suffix != ".safetensors", p.name))
    return files[0]


def _hf_hub_cache_dir() -> Path:
    # Read the environment now rather than huggingface_hub's constants, which are frozen
    # when it is imported: tests and the app point HF_HOME elsewhere after start-up.
    env = os.environ
    if env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        return Path(env.get("HF_HUB_CACHE") or env["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface" / "hub"


def _whisper_standard_dir() -> Path:
    # The folder whisper.load_model downloads into.
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "whisper"


def _clip_standard_cache(cfg: dict) -> WeightsLocation | None:
    """A CLIP checkpoint open_clip has already downloaded for this pretrained config, if any."""
    hub = cfg.get("hf_hub") or ""
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            pass
        else:
            repo, filename = hub.rstrip("/"), ""
            if not hub.endswith("/"):
                repo, filename = os.path.split(hub)
            filename = filename or "open_clip_pytorch_model.bin"
            candidates = [filename]
            if filename.endswith((".bin", ".pth")):
                # open_clip prefers a safetensors twin of the pickle file when the repo has one.
                candidates.insert(
                    0,
                    "open_clip_model.safetensors"
                    if filename == "open_clip_pytorch_model.bin"
                    else filename[:-4] + ".safetensors",
                )
            for candidate in candidates:
                found = try_to_load_from_cache(repo, candidate, cache_dir=str(_hf_hub_cache_dir()))
                if isinstance(found, str) and os.path.isfile(found):
                    return WeightsLocation(Path(found), "hf-cache")
    url = cfg.get("url") or ""
    # OpenAI's own URLs serve TorchScript archives, which cannot be read without running
    # their code; those models are taken from the Hugging Face copies instead.
    if url and "openaipublic" not in url:
        path = Path.home() / ".cache" / "clip" / os.path.basename(url)
        if path.is_file():
            return WeightsLocation(path, "open_clip-cache")
    return None


def _whisper_url(name: str) -> str:
    import whisper

    return whisper._MODELS[name]  # the published URL, which also carries the file's sha256


def _whisper_standard_cache(name: str) -> WeightsLocation | None:
    if name not in WHISPER_NAMES:
        return None
    path = _whisper_standard_dir() / os.path.basename(_whisper_url(name))
    return WeightsLocation(path, "whisper-cache") if path.is_file() else None


def hf_ct2_whisper_snapshot(name: str) -> Path | None:
    """faster-whisper's download of Whisper ``name`` in the Hugging Face hub cache, when it is whole; else None."""
    repo = CT2_WHISPER_REPOS.get(name)
    if repo is None:
        return None
    folder = _hf_hub_cache_dir() / f"models--{repo.replace('/', '--')}"
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    try:
        main = (folder / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        main = ""
    candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    candidates.sort(key=lambda p: p.name != main)  # stable: main first, then newest first
    return next((p for p in candidates if not ct2_whisper_problems(p)), None)


# ---------------------------------------------------------------------------- resolution


def clip_missing_message(settings: Settings, name: str, tag: str) -> str:
    """What to tell a person whose CLIP weights are nowhere on this computer."""
    if tag.startswith("file:"):
        message = (
            f"CLIP weights for {name} ({tag}) are not in the model cache ({clip_cache_dir(settings, name, tag)}). "
            f"Import the file again with `shoebox models import FILE`, "
            f"or set SHOEBOX_CLIP_WEIGHTS=/path/to/the/file."
        )
    else:
        message = (
            f"CLIP weights for {name} ({tag}) are not on this computer. "
            f"Run `shoebox models download clip`, or set SHOEBOX_CLIP_WEIGHTS=/path/to/open_clip_model.safetensors, "
            f"or `shoebox models import FILE`."
        )
    others = sorted(
        _tag_from_dirname(d.name)
        for d in (settings.models_dir / "clip" / name).glob("*")
        if find_checkpoint(d) is not None
    )
    if others:
        message += (
            f" The cache does hold {name} weights tagged {', '.join(others)}; "
            f"set SHOEBOX_CLIP_PRETRAINED to one of those to use them."
        )
    return message


def clip_missing_error(settings: Settings, name: str, tag: str) -> ModelUnavailableError:
    """The error for CLIP weights that are nowhere on this computer: commands for the CLI, plain words for a window."""
    return ModelUnavailableError(
        clip_missing_message(settings, name, tag),
        plain=(
            f"The CLIP model {name} ({tag}), which finds photos by meaning, is not on this computer. "
            "Download it, or import a copy of its weights file."
        ),
    )


def whisper_missing_error(name: str) -> ModelUnavailableError:
    """The error for Whisper weights that are nowhere on this computer."""
    return ModelUnavailableError(
        whisper_missing_message(name),
        plain=(
            f"The Whisper model {name}, which turns speech into text, is not on this computer. "
            "Download it, or import a copy of its weights file or model folder."
        ),
    )


def whisper_missing_message(name: str) -> str:
    """What to tell a person whose Whisper weights are nowhere on this computer."""
    return (
        f"Whisper weights for {name} are not on this computer. "
        f"Run `shoebox models download whisper`, or set SHOEBOX_WHISPER_WEIGHTS to a faster-whisper model folder "
        f"or to /path/to/{name}.pt, or `shoebox models import FILE_OR_FOLDER --kind whisper`."
    )


def clip_pretrained_cfg(name: str, tag: str) -> dict:
    """open_clip's pretrained config for ``name``/``tag``; :class:`UsageError` when there is none."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if cfg:
        return cfg
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tags:
        raise UsageError(
            f"There are no CLIP weights tagged {tag!r} for {name}. Set SHOEBOX_CLIP_PRETRAINED to one of: "
            f"{', '.join(tags)}.",
            plain=f"There are no CLIP weights tagged {tag!r} for {name}; the published ones are {', '.join(tags)}.",
        )
    raise UsageError(
        f"open_clip publishes no weights for {name}. Import a {name} weights file with "
        f"`shoebox models import FILE --name {name}`, or set SHOEBOX_CLIP_WEIGHTS, or choose another model.",
        plain=(
            f"No weights for the CLIP model {name} are published, so it cannot be downloaded. "
            f"Import a {name} weights file you have, or choose another model."
        ),
    )


def locate_clip_weights(settings: Settings, name: str, tag: str) -> WeightsLocation:
    """Find CLIP ``name``/``tag`` weights in the caches, generating test-tiny or downloading when allowed.

    The explicit-file step is the caller's (it also decides the model's identity).
    Raises :class:`ModelUnavailableError` with the commands that fix it when the weights are
    missing, and :class:`UsageError` for a tag open_clip does not know.
    """
    cached = find_checkpoint(clip_cache_dir(settings, name, tag))
    if cached is not None:
        return WeightsLocation(cached, "shoebox-cache")
    if tag.startswith("file:"):
        raise clip_missing_error(settings, name, tag)
    if name == TEST_TINY:
        seed = tiny_seed(tag)
        if seed is None:
            raise UsageError(f"{TEST_TINY} weights are tagged seed<N> (for example seed0), not {tag!r}.")
        path = clip_cache_dir(settings, name, tag) / "open_clip_model.safetensors"
        return WeightsLocation(write_tiny_clip_weights(path, seed), "generated")
    found = _clip_standard_cache(clip_pretrained_cfg(name, tag))
    if found is not None:
        return found
    if settings.allow_download:
        from .management import download_model

        return WeightsLocation(download_model(settings, "clip", f"{name}:{tag}", force_allowed=True), "download")
    raise clip_missing_error(settings, name, tag)


def locate_whisper_weights(settings: Settings, name: str, formats: tuple[str, ...] = ("pt",)) -> WeightsLocation:
    """Find Whisper ``name`` in the caches, generating test-tiny or downloading when allowed.

    ``formats`` are the weight formats the caller can run, preferred first: ``"ct2"`` (a
    CTranslate2 folder, for faster-whisper) and ``"pt"`` (a whisper checkpoint file).
    Each step (Shoebox's cache, the other tools' caches, a download) tries them in that
    order.  Raises :class:`ModelUnavailableError` with the commands that fix it when it is missing.
    """
    if name == TEST_TINY:
        formats = ("pt",)  # test-tiny is generated in whisper's format only
    for kind in formats:
        if kind == "ct2":
            folder = whisper_cache_folder(settings, name)
            if is_ct2_folder(folder):
                problems = ct2_whisper_problems(folder)
                if problems:
                    lacks = (
                        f"The Whisper model folder {folder} is incomplete or damaged: it lacks {', '.join(problems)}."
                    )
                    raise ModelUnavailableError(
                        f"{lacks} Run `shoebox models download whisper` to fetch it again, or "
                        f"`shoebox models import FOLDER --kind whisper` with an intact copy.",
                        plain=f"{lacks} Download it again, or import an intact copy of the model folder.",
                    )
                return WeightsLocation(folder, "shoebox-cache")
        elif whisper_cache_file(settings, name).is_file():
            return WeightsLocation(whisper_cache_file(settings, name), "shoebox-cache")
    if name == TEST_TINY:
        return WeightsLocation(write_tiny_whisper_weights(whisper_cache_file(settings, name), 0), "generated")
    for kind in formats:
        if kind == "pt":
            found = _whisper_standard_cache(name)
            if found is not None:
                return found
        else:
            snapshot = hf_ct2_whisper_snapshot(name)
            if snapshot is not None:
                return WeightsLocation(snapshot, "hf-cache")
    if settings.allow_download:
        from .management import download_model

        for kind in formats:
            if (kind == "pt" and name in WHISPER_NAMES) or (kind == "ct2" and name in CT2_WHISPER_REPOS):
                path = download_model(settings, "whisper", name, force_allowed=True, whisper_format=kind)
                return WeightsLocation(path, "download")
    raise whisper_missing_error(name)


# ---------------------------------------------------------------------------- text models

# Short names of well-known sentence-embedding models, so SHOEBOX_TEXT_MODEL=all-MiniLM-L6-v2
# works as sentence-transformers itself allows.  The values are the models Shoebox knows by
# name: `shoebox models list` looks for them in the Hugging Face cache.
TEXT_ALIASES = {
    "multilingual-e5-small": "intfloat/multilingual-e5-small",
    "multilingual-e5-base": "intfloat/multilingual-e5-base",
    "multilingual-e5-large": "intfloat/multilingual-e5-large",
    "e5-small-v2": "intfloat/e5-small-v2",
    "e5-base-v2": "intfloat/e5-base-v2",
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "all-MiniLM-L12-v2": "sentence-transformers/all-MiniLM-L12-v2",
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
    "paraphrase-multilingual-MiniLM-L12-v2": "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
    "bge-small-en-v1.5": "BAAI/bge-small-en-v1.5",
    "bge-base-en-v1.5": "BAAI/bge-base-en-v1.5",
}
KNOWN_TEXT_MODELS = tuple(sorted(set(TEXT_ALIASES.values()), key=str.lower))

# A Hugging Face repository id ("org/name") or a bare name; never "..", so a name cannot
# reach outside models/text when it becomes a folder name.
_TEXT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")

# What a download fetches: configuration, tokenizer, safetensors weights, and the
# sentence-transformers module folders.  Not the ONNX / OpenVINO copies or pickle weights.
TEXT_DOWNLOAD_PATTERNS = [
    "*.json",
    "tokenizer*",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "model.safetensors",
    "model-*.safetensors",
    "README.md",
    "1_Pooling/*",
    "*Dense*/*.json",
    "*Dense*/model.safetensors",
]

# Weights of a transformers model folder, best first.  The pickle formats are read only
# with weights_only=True (see the text model's loader).
TEXT_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TEXT_TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "spiece.model", "vocab.txt", "vocab.json")


def canonical_text_name(raw: str) -> str:
    """The canonical name of a text model: aliases resolved (``all-MiniLM-L6-v2`` ->
    ``sentence-transformers/all-MiniLM-L6-v2``), known names in their published spelling.

    Raises :class:`UsageError` for a name that is neither a repository id nor a plain name.
    """
    name = raw.strip()
    if name == TEST_TINY:
        return name
    lookup = {alias.lower(): full for alias, full in TEXT_ALIASES.items()}
    lookup.update({full.lower(): full for full in KNOWN_TEXT_MODELS})
    name = lookup.get(name.lower(), name)
    if not _TEXT_NAME.match(name) or ".." in name:
        raise UsageError(
            f"{raw!r} is not a text model name or folder. Set SHOEBOX_TEXT_MODEL to a Hugging Face name "
            f"(for example intfloat/multilingual-e5-small or all-MiniLM-L6-v2), test-tiny, "
            f"or the path of a model folder."
        )
    return name


def is_text_model_name(name: str) -> bool:
    """Whether ``name`` can name a text model (and so a folder in models/text)."""
    return bool(_TEXT_NAME.match(name)) and ".." not in name


def text_setting_folder(raw: str) -> Path | None:
    """The folder SHOEBOX_TEXT_MODEL names, or None when it names a model instead.

    A value is a folder path when it is absolute or starts with ``~`` or ``.``, or when it
    holds a path separator and something exists there (``intfloat/multilingual-e5-small``
    is a name unless there is such a folder here).  Raises :class:`ModelUnavailableError`
    when the path leads nowhere or to a file.
    """
    text = raw.strip()
    if not text:
        return None
    path = Path(text).expanduser()
    explicit = text.startswith(("~", ".")) or path.is_absolute()
    if not explicit:
        has_separator = any(sep in text for sep in (os.sep, os.altsep) if sep)
        if not has_separator or (not path.exists() and is_text_model_name(text)):
            return None
    if not path.exists():
        raise ModelUnavailableError(
            f"SHOEBOX_TEXT_MODEL is set to the folder {path}, but there is nothing there. Fix the path, "
            f"or set SHOEBOX_TEXT_MODEL to a model name (for example intfloat/multilingual-e5-small)."
        )
    if not path.is_dir():
        raise ModelUnavailableError(
            f"SHOEBOX_TEXT_MODEL is set to {path}, which is a file. A text model is a folder (config.json, "
            f"model.safetensors, tokenizer.json, ...): set SHOEBOX_TEXT_MODEL to the folder that holds them."
        )
    return path.resolve()


def text_cache_dir(settings: Settings, name: str) -> Path:
    """Folder of Shoebox's cache that holds text model ``name`` ("/" becomes "--", as in the Hugging Face cache)."""
    return settings.models_dir / "text" / name.replace("/", "--")


def text_name_from_cache_dir(dirname: str) -> str:
    """The model name a folder of models/text holds (the inverse of :func:`text_cache_dir`)."""
    return dirname.replace("--", "/", 1)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def text_modules(folder: Path) -> list[dict] | None:
    """The entries of a sentence-transformers folder's modules.json; None for a plain transformers folder."""
    if not (folder / "modules.json").is_file():
        return None
    modules = _read_json(folder / "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ModelUnavailableError(
            f"The text model folder {folder} has a damaged modules.json. Copy the model folder again, "
            f"or run `shoebox models download text`."
        )
    return sorted(modules, key=lambda m: int(m.get("idx", 0)))


def module_kind(entry: dict) -> str:
    """``Transformer``, ``Pooling``, ``Dense``, ``Normalize`` ... : the class name of a modules.json entry."""
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def text_transformer_dir(folder: Path) -> Path:
    """The folder holding config.json, the weights and the tokenizer (older models keep them in 0_Transformer/)."""
    for entry in text_modules(folder) or []:
        if module_kind(entry) == "Transformer":
            return folder / str(entry.get("path") or "")
    return folder


def text_weights_file(folder: Path) -> Path | None:
    """The main weights file of a text model folder (safetensors first), or None."""
    transformer = text_transformer_dir(folder)
    return next((transformer / n for n in TEXT_WEIGHT_FILES if (transformer / n).is_file()), None)


def text_folder_problems(folder: Path) -> list[str]:
    """What a text model folder lacks, as phrases for a message; empty when it looks complete.

    Reads only the folder's JSON files (no torch): configuration, weights, tokenizer, and
    the pooling and Dense modules modules.json lists.
    """
    if not folder.is_dir():
        return ["the folder itself"]
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        return ["modules.json and config.json (it is not a sentence-transformers or transformers model folder)"]
    problems = []
    transformer = text_transformer_dir(folder)
    shown = "" if transformer == folder else f"{transformer.name}/"
    if not (transformer / "config.json").is_file():
        problems.append(f"the model configuration ({shown}config.json)")
    if text_weights_file(folder) is None:
        problems.append(f"the weights ({shown}model.safetensors)")
    if not any((transformer / n).is_file() for n in TEXT_TOKENIZER_FILES):
        problems.append(f"the tokenizer ({shown}tokenizer.json)")
    for entry in text_modules(folder) or []:
        sub = str(entry.get("path") or "")
        if module_kind(entry) in ("Pooling", "Dense") and not (folder / sub / "config.json").is_file():
            problems.append(f"the {module_kind(entry).lower()} settings ({sub}/config.json)")
        if module_kind(entry) == "Dense" and not any(
            (folder / sub / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")
        ):
            problems.append(f"the dense layer's weights ({sub}/model.safetensors)")
    return problems


def text_incomplete_message(folder: Path, problems: list[str], fix: str) -> str:
    """What to tell a person whose text model folder lacks pieces."""
    return f"The text model folder {folder} is incomplete: it lacks {', '.join(problems)}. {fix}"


def text_folder_name(folder: Path, settings: Settings | None = None) -> str | None:
    """The published name of the model in ``folder``, where the folder tells it reliably; else None.

    A Hugging Face cache snapshot says it in its path, a folder of Shoebox's cache in its
    name, and a copy of a well-known model in the first heading of its README.
    """
    folder = Path(folder)
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent.name[len("models--") :].replace("--", "/")
    if settings is not None and folder.parent == (settings.models_dir / "text").resolve():
        return text_name_from_cache_dir(folder.name)
    try:
        with open(folder / "README.md", encoding="utf-8") as f:
            heading = next((line[2:].strip() for line in f if line.startswith("# ")), "")
    except (OSError, UnicodeDecodeError):
        return None
    lookup = {alias.lower(): full for alias, full in TEXT_ALIASES.items()}
    lookup.update({full.lower(): full for full in KNOWN_TEXT_MODELS})
    return lookup.get(heading.lower())


def hf_text_snapshot(name: str) -> Path | None:
    """A complete snapshot of text model ``name`` in the Hugging Face hub cache, or None.

    The cache is where sentence-transformers and transformers download to; HF_HOME and
    HF_HUB_CACHE are read now, not when huggingface_hub was imported.  The snapshot the
    ``main`` ref points at is preferred, then the newest complete one.
    """
    repo = _hf_hub_cache_dir() / f"models--{name.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    try:
        main = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        main = ""
    candidates.sort(key=lambda p: p.name != main)  # stable: main first, then newest first
    for candidate in candidates:
        try:
            if not text_folder_problems(candidate):
                return candidate
        except ModelUnavailableError:
            continue  # a damaged snapshot; another may be whole
    return None


def text_missing_message(name: str) -> str:
    """What to tell a person whose text model is nowhere on this computer."""
    return (
        f"The text model {name} is not on this computer. Run `shoebox models download text`, "
        f"or `shoebox models import FOLDER --kind text` with a copy of its folder, "
        f"or set SHOEBOX_TEXT_MODEL=/path/to/the/model/folder."
    )


def locate_text_model(settings: Settings, name: str) -> WeightsLocation:
    """Find the folder of text model ``name``: Shoebox's cache, test-tiny, the Hugging Face cache, a download.

    The explicit-folder step is the caller's.  Generates test-tiny when it is missing (or
    damaged); downloads only when ``settings.allow_download`` is on.  Raises
    :class:`ModelUnavailableError` saying what to run when the model is missing, or naming
    the cache folder and what it lacks when it is incomplete.
    """
    cached = text_cache_dir(settings, name)
    if cached.is_dir():
        problems = text_folder_problems(cached)
        if not problems:
            return WeightsLocation(cached, "shoebox-cache")
        if name != TEST_TINY:
            raise ModelUnavailableError(
                text_incomplete_message(
                    cached,
                    problems,
                    "Run `shoebox models download text` to fetch it again, "
                    "or `shoebox models import FOLDER --kind text` with an intact copy.",
                ),
                plain=text_incomplete_message(
                    cached, problems, "Download it again, or import an intact copy of the model folder."
                ),
            )
    if name == TEST_TINY:
        return WeightsLocation(write_tiny_text_model(cached, 0), "generated")
    found = hf_text_snapshot(name)
    if found is not None:
        return WeightsLocation(found, "hf-cache")
    if settings.allow_download:
        from .management import download_model

        return WeightsLocation(download_model(settings, "text", name, force_allowed=True), "download")
    raise ModelUnavailableError(
        text_missing_message(name),
        plain=(
            f"The text model {name}, which finds passages of documents and recordings by meaning, is not on "
            "this computer. Download it, or import a copy of its model folder."
        ),
    )
