"""Model management behind ``shoebox models list|download|import``.

Downloads and imports land in Shoebox's cache (layout in :mod:`engine.models.weights`);
an imported file or text model folder is loaded into its model, exactly as at run time,
before it is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import Cancelled, ModelUnavailableError, UsageError
from ..settings import Settings
from .tiny import (
    TEST_TINY,
    install_folder,
    tiny_seed,
    write_tiny_clip_weights,
    write_tiny_text_model,
    write_tiny_whisper_weights,
)
from .weights import (
    CT2_WHISPER_PATTERNS,
    CT2_WHISPER_REPOS,
    KINDS,
    KNOWN_TEXT_MODELS,
    TEXT_DOWNLOAD_PATTERNS,
    WHISPER_NAMES,
    _clip_standard_cache,
    _short_reason,
    _staging_file,
    _tag_from_dirname,
    _whisper_standard_cache,
    _whisper_url,
    canonical_text_name,
    clip_cache_dir,
    clip_pretrained_cfg,
    ct2_whisper_problems,
    ct2_whisper_sha256,
    file_sha256,
    find_checkpoint,
    hf_ct2_whisper_snapshot,
    hf_text_snapshot,
    is_ct2_folder,
    is_text_model_name,
    load_weights_file,
    sniff_format,
    text_cache_dir,
    text_folder_name,
    text_folder_problems,
    text_incomplete_message,
    text_name_from_cache_dir,
    text_setting_folder,
    text_transformer_dir,
    text_weights_file,
    whisper_cache_file,
    whisper_cache_folder,
)

ProgressCallback = Callable[[int, int, str], None]

# Encoder width of each published Whisper size, to catch a file imported under the wrong name.
_WHISPER_WIDTH = {"tiny": 384, "base": 512, "small": 768, "medium": 1024, "large": 1280, "turbo": 1280}

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

_KIND_CHOICES = "text, clip or whisper"


# ---------------------------------------------------------------------------- download

BytesCallback = Callable[[int, int], None]


class Downloader:
    """Where model files come from: the one place a download reaches the network.

    The default fetches from the models' publishers: open_clip's locations for CLIP, the
    Hugging Face hub for text models and faster-whisper folders, OpenAI's URLs for
    whisper's ``.pt`` files.  :func:`download_model` takes another one (a mirror, or a
    fake in tests); each method calls ``report(done, total)`` as the download goes on
    (bytes, ``total`` 0 when unknown), and ``report`` may raise
    :class:`~engine.errors.Cancelled` to stop it.  Whatever a method raises,
    :func:`download_model` removes what was partly written and keeps the cache as it was.
    """

    def fetch_url(self, url: str, out: BinaryIO, report: BytesCallback) -> None:
        """Write the file at ``url`` into ``out``."""
        with urllib.request.urlopen(url, timeout=60) as source:
            total = int(source.headers.get("Content-Length") or 0)
            done = 0
            for block in iter(lambda: source.read(1 << 20), b""):
                out.write(block)
                done += len(block)
                report(done, total)

    def fetch_repo(self, repo: str, folder: Path, patterns: Sequence[str], report: BytesCallback) -> None:
        """Make ``folder`` (not there yet) hold the files of Hugging Face repository ``repo`` that match ``patterns``."""
        from huggingface_hub import snapshot_download

        report(0, 0)
        snapshot_download(
            repo,
            local_dir=str(folder),
            cache_dir=str(folder.parent / "hub"),
            allow_patterns=list(patterns),
            tqdm_class=_reporting_bar(report),
        )
        shutil.rmtree(folder / ".cache", ignore_errors=True)  # huggingface_hub's own bookkeeping

    def fetch_clip(self, cfg: dict, folder: Path, report: BytesCallback) -> Path:
        """Fetch the open_clip weights ``cfg`` describes into ``folder``; returns the file."""
        import open_clip

        report(0, 0)
        hub = cfg.get("hf_hub", "")
        if hub:
            return _fetch_clip_from_hub(hub, folder, report)
        # A release URL: open_clip knows it and checks the hash it publishes; it only gets a
        # private folder to fill (and reports no progress).
        fetched = open_clip.download_pretrained(cfg, cache_dir=str(folder))
        if not fetched:
            raise ModelUnavailableError("open_clip has no download location for these weights")
        return Path(fetched)


PUBLISHERS = Downloader()


def _fetch_clip_from_hub(hub: str, folder: Path, report: BytesCallback) -> Path:
    """The CLIP weights open_clip names ``"org/repo/file"`` on the Hugging Face hub, as open_clip fetches them.

    As open_clip does, a safetensors copy is preferred where the repository has one; this
    copy of its steps is here to count the bytes as they arrive and to be stopped by ``report``.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo, filename = os.path.split(hub)
    filename = filename or "open_clip_pytorch_model.bin"
    if filename == "open_clip_pytorch_model.bin":
        safer = "open_clip_model.safetensors"
    elif filename.endswith((".bin", ".pth")):
        safer = filename[:-4] + ".safetensors"
    else:
        safer = ""
    bar = _reporting_bar(report)
    if safer:
        try:
            return Path(hf_hub_download(repo, safer, cache_dir=str(folder), tqdm_class=bar))
        except EntryNotFoundError:
            pass  # the repository has the pickled file only, which is read with weights_only
    return Path(hf_hub_download(repo, filename, cache_dir=str(folder), tqdm_class=bar))


def _reporting_bar(report: BytesCallback) -> Any:
    """A tqdm class for huggingface_hub that passes its byte counts to ``report`` and prints nothing.

    huggingface_hub counts every file's bytes in one bar made from this class; ``report``
    raising (a cancelled download) stops the transfer from inside that count.
    """
    import io

    from tqdm import tqdm  # type: ignore[import-untyped]  # its stubs are a separate package, not installed

    class ReportingBar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False  # counted even where huggingface_hub's own bars are off
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.unit == "B":
                report(int(self.n), int(self.total or 0))
            return shown

    return ReportingBar


def known_model_names(settings: Settings, kind: str) -> list[str]:
    """The model names Shoebox knows for ``kind`` (``"clip"``, ``"text"``, ``"whisper"``), for a list to choose from.

    CLIP: every architecture open_clip can build; text: the well-known sentence-embedding
    models; Whisper: the published sizes and the names imported into the cache.  The
    configured name comes first where it is not among them.
    """
    from .clip import clip_model_names
    from .whisper import whisper_model_names

    if kind == "clip":
        names, configured = clip_model_names(), settings.clip_model
    elif kind == "text":
        names, configured = sorted(KNOWN_TEXT_MODELS, key=str.lower), settings.text_model
        if _text_setting_folder_quietly(configured) is not None:
            configured = ""
    elif kind == "whisper":
        names, configured = whisper_model_names(settings), settings.whisper_model
    else:
        raise UsageError(f"kind must be {_KIND_CHOICES}, not {kind!r}")
    if configured and configured not in names:
        names = [configured, *names]
    return names


def _text_setting_folder_quietly(value: str) -> Path | None:
    """The folder a text model setting names, or None when it names a model (or a folder that is gone)."""
    try:
        return text_setting_folder(value)
    except ModelUnavailableError:
        return Path(value).expanduser()


def download_choice(settings: Settings, kind: str, name: str) -> tuple[str | None, str]:
    """What :func:`download_model` would fetch for model ``name`` of ``kind``, as ``(name, why_not)``.

    ``name`` is the argument to pass (a CLIP name carries its weights tag: the configured
    tag where it is published for that model, else the first published one), or None when
    nothing can be downloaded for it; ``why_not`` then says why, in plain words.
    """
    if kind == "clip":
        import open_clip

        from .clip import default_tag

        if name == TEST_TINY:
            return f"{name}:{default_tag(name, settings.clip_pretrained)}", ""
        tags = open_clip.list_pretrained_tags_by_model(name)
        if not tags:
            return None, f"No weights for the CLIP model {name} are published, so it cannot be downloaded."
        tag = settings.clip_pretrained if settings.clip_pretrained in tags else tags[0]
        return f"{name}:{tag}", ""
    if kind == "whisper":
        if name in WHISPER_NAMES or name == TEST_TINY:
            return name, ""
        return None, f"The Whisper model {name} was imported from a file; it cannot be downloaded."
    if kind == "text":
        if is_text_model_name(name):
            return name, ""
        return None, f"{name} is not the name of a published text model, so it cannot be downloaded."
    raise UsageError(f"kind must be {_KIND_CHOICES}, not {kind!r}")


def _split_clip_name(settings: Settings, name: str | None) -> tuple[str, str]:
    from .clip import check_clip_name, default_tag

    if not name:
        model, tag = settings.clip_model, ""
    else:
        model, _, tag = name.partition(":")
    check_clip_name(model)
    return model, tag or default_tag(model, settings.clip_pretrained)


def download_model(
    settings: Settings,
    kind: str,
    name: str | None = None,
    *,
    force_allowed: bool = False,
    on_progress: ProgressCallback | None = None,
    whisper_format: str | None = None,
    downloader: Downloader | None = None,
) -> Path:
    """Fetch model weights into Shoebox's cache and return the file's path (the folder's, for text).

    ``kind`` is ``"clip"``, ``"whisper"`` or ``"text"``.  ``name`` defaults to the
    configured model; for CLIP it may carry a tag, ``"ViT-B-32:laion2b_s34b_b79k"``; for
    text it is a Hugging Face repository id or a short name (``all-MiniLM-L6-v2``), and only
    the files the model needs are fetched (safetensors weights, configuration, tokenizer,
    pooling and Dense modules).  Whisper comes as a CTranslate2 folder from faster-whisper's
    Hugging Face repository (``Systran/faster-whisper-<name>``) where the configured backend
    runs it, else as whisper's ``.pt`` file; ``whisper_format`` (``"ct2"`` or ``"pt"``)
    overrides that choice.  ``test-tiny`` is generated locally instead.  A configured
    text model folder (SHOEBOX_TEXT_MODEL=/path) has nothing to download; its path is
    returned.  Runs only when ``settings.allow_download`` is on or the caller passes
    ``force_allowed=True`` (the ``shoebox models download`` command).
    ``on_progress(done, total, message)`` reports bytes where the source says how many;
    it may raise :class:`~engine.errors.Cancelled`, which stops the download and keeps
    nothing of it.  ``downloader`` is where the files come from (default
    :data:`PUBLISHERS`, see :class:`Downloader`).

    Raises :class:`ModelUnavailableError` when downloads are off or the download fails,
    :class:`UsageError` for an unknown kind, model or tag.
    """
    if kind not in KINDS:
        raise UsageError(f"kind must be {_KIND_CHOICES}, not {kind!r}")
    if not (settings.allow_download or force_allowed):
        raise ModelUnavailableError(
            f"Downloading model weights is turned off. Run `shoebox models download {kind}`, "
            f"or set SHOEBOX_ALLOW_DOWNLOAD=1 to let Shoebox fetch them when needed.",
            plain="Downloading models is turned off: Shoebox downloads a model only when you ask it to.",
        )
    report = on_progress or (lambda done, total, message: None)
    source = downloader or PUBLISHERS
    if kind == "text":
        if name is None:
            folder = text_setting_folder(settings.text_model)
            if folder is not None:
                return folder
        model = canonical_text_name(name or settings.text_model)
        if model == TEST_TINY:
            return write_tiny_text_model(text_cache_dir(settings, model), 0)
        return _download_text(settings, model, report, source)
    if kind == "clip":
        model, tag = _split_clip_name(settings, name)
        if model == TEST_TINY:
            seed = tiny_seed(tag)
            if seed is None:
                raise UsageError(f"{TEST_TINY} weights are tagged seed<N> (for example seed0), not {tag!r}.")
            # "Downloading" test-tiny regenerates it, which also repairs a damaged file.
            return write_tiny_clip_weights(clip_cache_dir(settings, model, tag) / "open_clip_model.safetensors", seed)
        if tag.startswith("file:"):
            raise UsageError(f"{model} {tag} is an imported file; it cannot be downloaded. Import it again instead.")
        return _download_clip(settings, model, tag, report, source)
    from .whisper import check_whisper_name, whisper_formats

    model = name or settings.whisper_model
    check_whisper_name(model, settings)
    if model == TEST_TINY:
        return write_tiny_whisper_weights(whisper_cache_file(settings, model), 0)
    if model not in WHISPER_NAMES:
        raise UsageError(f"{model} is an imported Whisper model; it cannot be downloaded. Import it again instead.")
    if (whisper_format or whisper_formats(settings)[0]) == "ct2":
        return _download_ct2_whisper(settings, model, report, source)
    url = _whisper_url(model)
    dest = whisper_cache_file(settings, model)
    _fetch_url(url, dest, sha256=url.split("/")[-2], report=report, what=f"Whisper {model}", source=source)
    return dest


def _download_failed(what: str, reason: str, cli_fix: str, copy: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"Could not download {what}: {reason}. {cli_fix}",
        plain=(
            f"Could not download {what}: {reason}. Check that this computer is connected to the internet, "
            f"or import {copy} copied from another computer."
        ),
    )


def _download_clip(settings: Settings, model: str, tag: str, report: ProgressCallback, source: Downloader) -> Path:
    cfg = clip_pretrained_cfg(model, tag)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=settings.models_dir))
    what = f"CLIP {model} ({tag})"
    report(0, 0, f"downloading {what}")
    try:
        try:
            fetched = source.fetch_clip(cfg, staging, lambda done, total: report(done, total, f"downloading {what}"))
        except Cancelled:
            raise
        except Exception as exc:
            raise _download_failed(
                f"CLIP weights for {model} ({tag})",
                _short_reason(exc),
                "Check the network connection, or copy the weights file from another computer "
                "and run `shoebox models import FILE`.",
                "the weights file",
            ) from exc
        real = Path(os.path.realpath(fetched))  # the hub cache links snapshot files to blobs
        name = Path(fetched).name
        if name.endswith(".pt"):
            name = "open_clip_pytorch_model.bin"
        dest_dir = clip_cache_dir(settings, model, tag)
        dest_dir.mkdir(parents=True, exist_ok=True)
        tmp = _staging_file(dest_dir, Path(name).suffix)
        shutil.move(str(real), tmp)
        for old in dest_dir.iterdir():
            if old.is_file() and not old.name.startswith("."):
                old.unlink()
        os.replace(tmp, dest_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report(1, 1, f"downloaded {what}")
    return dest_dir / name


def _download_folder(
    repo: str,
    dest: Path,
    patterns: Sequence[str],
    *,
    source: Downloader,
    report: BytesCallback,
    failed: Callable[[str], ModelUnavailableError],
    problems_of: Callable[[Path], list[str]],
    incomplete: Callable[[list[str]], ModelUnavailableError],
) -> None:
    """Download the Hugging Face repository ``repo`` (files matching ``patterns``) into the folder ``dest``.

    Fetched into a hidden folder beside ``dest`` and moved into place when whole, so an
    interrupted download never leaves a half model where the loader looks.  A failed
    download raises ``failed(reason)``; a download that lacks what ``problems_of`` asks
    for, ``incomplete(problems)``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=dest.parent))
    try:
        folder = staging / "model"
        try:
            source.fetch_repo(repo, folder, patterns, report)
        except Cancelled:
            raise
        except Exception as exc:
            reason = _short_reason(exc)
            if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
                # huggingface_hub's own wording is long and cut short here; this is what it means.
                error = failed("HF_HUB_OFFLINE is set, which turns Hugging Face downloads off")
                error.plain = failed("downloads from Hugging Face are turned off on this computer").plain
                raise error from exc
            raise failed(reason) from exc
        problems = problems_of(folder)
        if problems:
            raise incomplete(problems)
        install_folder(folder, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download_text(settings: Settings, model: str, report: ProgressCallback, source: Downloader) -> Path:
    (settings.models_dir / "text").mkdir(parents=True, exist_ok=True)
    dest = text_cache_dir(settings, model)
    what = f"text model {model}"
    report(0, 0, f"downloading {what}")

    def incomplete(problems: list[str]) -> ModelUnavailableError:
        lacks = (
            f"The text model {model} could not be downloaded whole: it lacks {', '.join(problems)}. "
            f"Shoebox downloads sentence-transformers models with safetensors weights"
        )
        return ModelUnavailableError(
            f"{lacks}; choose another model with SHOEBOX_TEXT_MODEL, or import a folder you have with "
            f"`shoebox models import FOLDER`.",
            plain=f"{lacks}. Choose another model, or import a model folder you have.",
        )

    _download_folder(
        model,
        dest,
        TEXT_DOWNLOAD_PATTERNS,
        source=source,
        report=lambda done, total: report(done, total, f"downloading {what}"),
        failed=lambda reason: _download_failed(
            f"the {what}",
            reason,
            "Check the network connection and the model's name, or copy the model folder from another "
            "computer and run `shoebox models import FOLDER --kind text`.",
            "the model folder",
        ),
        problems_of=text_folder_problems,
        incomplete=incomplete,
    )
    report(1, 1, f"downloaded text model {model}")
    return dest


def _download_ct2_whisper(settings: Settings, model: str, report: ProgressCallback, source: Downloader) -> Path:
    repo = CT2_WHISPER_REPOS[model]
    dest = whisper_cache_folder(settings, model)
    message = f"downloading Whisper {model} (CTranslate2, {repo})"
    report(0, 0, message)
    _download_folder(
        repo,
        dest,
        CT2_WHISPER_PATTERNS,
        source=source,
        report=lambda done, total: report(done, total, message),
        failed=lambda reason: _download_failed(
            f"Whisper {model} from {repo}",
            reason,
            "Check the network connection, or copy a faster-whisper model folder from another computer "
            "and run `shoebox models import FOLDER --kind whisper`.",
            "a faster-whisper model folder",
        ),
        problems_of=ct2_whisper_problems,
        incomplete=lambda problems: ModelUnavailableError(
            f"Whisper {model} could not be downloaded whole from {repo}: it lacks {', '.join(problems)}."
        ),
    )
    report(1, 1, f"downloaded Whisper {model}")
    return dest


def _fetch_url(url: str, dest: Path, *, sha256: str, report: ProgressCallback, what: str, source: Downloader) -> None:
    tmp = _staging_file(dest.parent, ".part")
    try:
        try:
            with open(tmp, "wb") as out:
                source.fetch_url(url, out, lambda done, total: report(done, total, f"downloading {what}"))
        except OSError as exc:
            raise _download_failed(
                f"{what} weights from {url}",
                _short_reason(exc),
                "Check the network connection, or copy the .pt file from another computer and run "
                "`shoebox models import FILE`.",
                "the weights file",
            ) from exc
        digest = hashlib.sha256()
        with open(tmp, "rb") as written:
            for block in iter(lambda: written.read(1 << 20), b""):
                digest.update(block)
        if sha256 and digest.hexdigest() != sha256:
            damaged = f"The downloaded {what} weights do not match their published checksum; the download was damaged."
            raise ModelUnavailableError(
                f"{damaged} Run `shoebox models download` again.", plain=f"{damaged} Download it again."
            )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


# ---------------------------------------------------------------------------- import


def import_model(settings: Settings, path: str | os.PathLike, kind: str | None = None, name: str | None = None) -> Path:
    """Copy a person's weights file, or text model folder, into Shoebox's cache after checking that it loads.

    ``kind`` (``"clip"``/``"whisper"``/``"text"``) and ``name`` are inferred when left out:
    the kind from the file's contents (a folder is a text model); a Whisper name from the
    published checksums or the file name; a CLIP architecture from the tensor shapes.  A
    CLIP ``name`` may carry the weights tag, ``"ViT-B-32:laion2b_s34b_b79k"``; without one
    the tag is taken from published checksums where open_clip lists them, else it is
    ``file:<sha256[:12]>``.  A text model folder is named by ``name``, else by what the
    folder says (a Hugging Face cache path, the README's title of a well-known model,
    config.json's ``_name_or_path``), else by the folder's own name; it is loaded and made
    to encode a sentence before it is copied to ``models/text/<name>``.  Files are read
    with ``weights_only=True`` and loaded into the model exactly as at run time before
    they are kept.  A CTranslate2 Whisper folder (faster-whisper's format: model.bin,
    config.json, tokenizer.json) is a Whisper model; its name comes from ``name``, from its
    model.bin's published checksum, a Hugging Face cache path or the folder's name
    (``faster-whisper-base``); it is loaded with faster-whisper before it is copied to
    ``models/whisper/<name>/``.  Returns the cached file's (or folder's) path.

    Raises :class:`UsageError` when the file is missing or its kind or model cannot be
    told, :class:`ModelUnavailableError` when it is damaged, incomplete, carries Python
    objects, or does not fit the model.
    """
    src = Path(path).expanduser()
    if kind not in (None, *KINDS):
        raise UsageError(f"kind must be {_KIND_CHOICES}, not {kind!r}")
    if src.is_dir():
        if kind == "whisper" or (kind is None and is_ct2_folder(src) and not ct2_whisper_problems(src)):
            return _import_ct2_whisper(settings, src, name)
        if kind not in (None, "text"):
            raise UsageError(
                f"{src} is a folder; {kind} weights are a single file. Import the weights file itself, "
                f"or use --kind text for a sentence-embedding model folder.",
                plain=f"{src.name} is a folder; CLIP weights are a single file. Import the weights file itself.",
            )
        return _import_text(settings, src, name)
    if kind == "text":
        what = "a file" if src.exists() else "nothing"
        raise UsageError(
            f"There is {what} at {src}; a text model is a folder (config.json, model.safetensors, "
            f"tokenizer.json, ...). Import the folder that holds the model."
        )
    if not src.is_file():
        raise UsageError(f"There is no file at {src}.")
    if sniff_format(src) == "unknown":
        raise UsageError(
            f"{src} is not a weights file (Shoebox imports .safetensors and PyTorch .pt/.bin/.pth files, "
            f"and text model folders).",
            plain=(
                f"{src.name} is not a weights file, or it is damaged: Shoebox imports .safetensors and "
                f"PyTorch .pt, .bin and .pth files, and model folders."
            ),
        )
    label = {"clip": "CLIP weights", "whisper": "Whisper weights"}.get(kind or "", "weights")
    fix = "Import an intact copy of the weights file."
    content = load_weights_file(src, what=label, fix=fix)
    detected = _detect_kind(content)
    if kind is None:
        if detected is None:
            raise UsageError(
                f"Cannot tell whether {src} holds CLIP or Whisper weights; "
                f"say which with --kind clip or --kind whisper.",
                plain=f"Cannot tell whether {src.name} holds CLIP or Whisper weights; say which it is.",
            )
        kind = detected
    elif detected is not None and detected != kind:
        names = {"clip": "CLIP (photos)", "whisper": "Whisper (speech)"}
        raise UsageError(
            f"{src} holds {detected} weights, not {kind} weights.",
            plain=f"{src.name} holds {names[detected]} weights, not {names[kind]} weights.",
        )
    sha = file_sha256(src)
    if kind == "whisper":
        return _import_whisper(settings, src, content, sha, name)
    return _import_clip(settings, src, content, sha, name)


def _detect_kind(content: Any) -> str | None:
    if not isinstance(content, dict):
        return None
    if "dims" in content and "model_state_dict" in content:
        return "whisper"
    state = content.get("state_dict", content)
    if isinstance(state, dict) and any(
        isinstance(k, str) and (k.startswith(("visual.", "module.visual.")) or k == "logit_scale") for k in state
    ):
        return "clip"
    return None


def _import_whisper(settings: Settings, src: Path, content: Any, sha: str, name: str | None) -> Path:
    from .whisper import load_whisper_checkpoint

    dims = content.get("dims") if isinstance(content, dict) else None
    if not isinstance(dims, dict) or not isinstance(content.get("model_state_dict"), dict):
        raise ModelUnavailableError(
            f"{src} is not a Whisper checkpoint (whisper's .pt files hold 'dims' and 'model_state_dict').",
            plain=f"{src.name} is not a Whisper model file: it lacks what whisper's .pt files hold.",
        )
    official = next((n for n in WHISPER_NAMES if _whisper_url(n).split("/")[-2] == sha), None)
    # "large" and "large-v3" (and "turbo", "large-v3-turbo") are the same published file.
    if name in WHISPER_NAMES and official and _whisper_url(name) != _whisper_url(official):
        raise UsageError(
            f"{src} is the published Whisper {official!r} model, not {name!r}.",
            plain=f"{src.name} is the published Whisper {official} model, not {name}; choose {official}.",
        )
    target = name or official or (src.stem if src.stem in WHISPER_NAMES else None)
    if target is None:
        raise UsageError(
            f"Cannot tell which Whisper model {src} is; give it a name with --name (for example --name base).",
            plain=f"Cannot tell which Whisper model {src.name} is; say which it is.",
        )
    if not _SAFE_NAME.match(target) or target == TEST_TINY:
        raise UsageError(f"{target!r} cannot name a Whisper model; use letters, digits, '.', '-' and '_'.")
    family = re.split(r"[.-]", target)[0]
    width = dims.get("n_audio_state")
    if family in _WHISPER_WIDTH and target in WHISPER_NAMES and width != _WHISPER_WIDTH[family]:
        fits = [n for n, w in _WHISPER_WIDTH.items() if w == width]
        hint = f"; it fits {' or '.join(fits)}" if fits else ""
        raise UsageError(
            f"{src} is not a Whisper {target} model "
            f"(its encoder is {width} wide, {target}'s is {_WHISPER_WIDTH[family]}).",
            plain=(
                f"{src.name} is not a Whisper {target} model: its encoder is {width} wide, "
                f"{target}'s is {_WHISPER_WIDTH[family]}{hint}."
            ),
        )
    dest = whisper_cache_file(settings, target)
    if dest.is_file() and file_sha256(dest, settings) == sha:
        return dest
    tmp = _staging_file(dest.parent, ".pt")
    try:
        shutil.copyfile(src, tmp)
        load_whisper_checkpoint(tmp, "cpu", label=f"Whisper {target}", fix="Import an intact copy.", shown_as=src)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


# SHA-256 of model.bin in faster-whisper's published conversions, to name an imported folder.
CT2_WHISPER_SHA256 = {
    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9": "base",
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a": "tiny.en",
}


def _ct2_whisper_name(src: Path, sha: str) -> str | None:
    if sha in CT2_WHISPER_SHA256:
        return CT2_WHISPER_SHA256[sha]
    repos = {repo.split("/")[-1].lower(): n for n, repo in CT2_WHISPER_REPOS.items()}
    if src.parent.name == "snapshots" and src.parent.parent.name.startswith("models--"):
        return repos.get(src.parent.parent.name.split("--")[-1].lower())
    if src.name in WHISPER_NAMES:
        return src.name
    return repos.get(src.name.lower())


def _import_ct2_whisper(settings: Settings, src: Path, name: str | None) -> Path:
    from .whisper import _FasterWhisper

    src = src.resolve()
    problems = ct2_whisper_problems(src)
    if problems:
        raise ModelUnavailableError(
            f"{src} is not a CTranslate2 Whisper model folder: it lacks {', '.join(problems)}. Import the folder "
            f"that holds a faster-whisper model (model.bin, config.json, tokenizer.json), or a Whisper .pt file."
        )
    target = name or _ct2_whisper_name(src, ct2_whisper_sha256(src, settings))
    if target is None:
        raise UsageError(
            f"Cannot tell which Whisper model {src} holds; give it a name with --name (for example --name base).",
            plain=f"Cannot tell which Whisper model the folder {src.name} holds; say which it is.",
        )
    if not _SAFE_NAME.match(target) or target == TEST_TINY:
        raise UsageError(f"{target!r} cannot name a Whisper model; use letters, digits, '.', '-' and '_'.")
    dest = whisper_cache_folder(settings, target)
    if dest.resolve() == src:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=dest.parent))
    try:
        staged = staging / "model"
        staged.mkdir()
        for pattern in CT2_WHISPER_PATTERNS:
            for file in src.glob(pattern):
                shutil.copyfile(file, staged / file.name)  # follows a hub snapshot's links to its blobs
        # Loaded on the CPU exactly as at run time before it is kept.
        _FasterWhisper(
            settings.with_overrides(device="cpu", whisper_backend="faster"),
            staged,
            label=f"Whisper {target}",
            fix="Import an intact copy.",
        )
        install_folder(staged, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _import_clip(settings: Settings, src: Path, content: Any, sha: str, name: str | None) -> Path:
    from .clip import check_clip_name, load_clip_checkpoint, quick_gelu_for

    state = content.get("state_dict", content) if isinstance(content, dict) else content
    if not isinstance(state, dict) or not state:
        raise ModelUnavailableError(f"{src} is not a CLIP checkpoint (it holds no state dict).")
    model, _, tag = (name or "").partition(":")
    if model:
        check_clip_name(model)
        _check_clip_fits(state, model, src)
    else:
        model = _infer_clip_name(state, settings, src)
    if not tag:
        tag = _clip_tag_by_sha(model, sha) or f"file:{sha[:12]}"
    is_safetensors = sniff_format(src) == "safetensors"
    filename = "open_clip_model.safetensors" if is_safetensors else "open_clip_pytorch_model.bin"
    dest_dir = clip_cache_dir(settings, model, tag)
    dest = dest_dir / filename
    if find_checkpoint(dest_dir) == dest and file_sha256(dest, settings) == sha:
        return dest
    # open_clip picks its reader by the file suffix, so the staged copy keeps the real one.
    tmp = _staging_file(dest_dir, ".safetensors" if is_safetensors else ".bin")
    try:
        shutil.copyfile(src, tmp)
        fix = f"Check that it holds {model} weights (name the model with --name), or import an intact copy."
        try:
            load_clip_checkpoint(
                model, tmp, "cpu", quick_gelu=quick_gelu_for(model, tag), label=f"CLIP {model}", fix=fix, shown_as=src
            )
        except ModelUnavailableError as exc:
            plain = (
                str(exc)
                .replace(str(src), src.name)
                .replace(fix, f"Check that it holds {model} weights, or import an intact copy.")
            )
            raise ModelUnavailableError(str(exc), plain=plain) from exc
        for old in dest_dir.iterdir():
            if old.is_file() and not old.name.startswith("."):
                old.unlink()
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
        with contextlib.suppress(OSError):
            dest_dir.rmdir()  # only succeeds when a failed import left the folder empty
    return dest


def _import_text(settings: Settings, src: Path, name: str | None) -> Path:
    from .text import TextEncoder

    src = src.resolve()
    if not (src / "modules.json").is_file() and not (src / "config.json").is_file():
        raise UsageError(
            f"{src} is not a sentence-embedding model folder: it has no modules.json or config.json. "
            f"Import the folder that holds the model's files (config.json, model.safetensors, tokenizer.json, ...)."
        )
    problems = text_folder_problems(src)
    if problems:
        raise ModelUnavailableError(
            text_incomplete_message(src, problems, "Copy the whole model folder and import it again.")
        )
    target = canonical_text_name(name) if name else _text_name_in_folder(src, settings)
    if target == TEST_TINY:
        raise UsageError(
            f"{TEST_TINY} is generated by Shoebox; import the folder under another name with --name.",
            plain=f"{TEST_TINY} is generated by Shoebox; import the folder under another name.",
        )
    # Loaded and used once, on the CPU, exactly as at run time: tokenizer, network, pooling.
    encoder = TextEncoder(settings.with_overrides(device="cpu"), name=target, folder=src)
    encoder.encode_passages(["Shoebox checks that this model can embed a sentence."])
    dest = text_cache_dir(settings, target)
    if dest.resolve() == src:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=dest.parent))
    try:
        staged = staging / "model"
        # copytree follows links, so a Hugging Face snapshot (links into its blob store) is copied whole.
        shutil.copytree(src, staged, ignore=_unneeded_model_files)
        transformer = text_transformer_dir(staged)
        if not (transformer / "tokenizer.json").is_file():
            # Converted from vocab.txt / sentencepiece by the check above; kept, so counting
            # tokens never needs transformers (and torch) again.
            counter, _ = encoder._tokenizers()
            counter.save(str(transformer / "tokenizer.json"))
        install_folder(staged, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _text_name_in_folder(src: Path, settings: Settings) -> str:
    found = text_folder_name(src, settings)
    if found:
        return found
    config = load_json_quietly(text_transformer_dir(src) / "config.json")
    origin = config.get("_name_or_path") if isinstance(config, dict) else None
    # transformers writes the repository it started from, or the local folder it was saved from.
    if isinstance(origin, str) and "/" in origin and is_text_model_name(origin) and not Path(origin).exists():
        return canonical_text_name(origin)
    if is_text_model_name(src.name):
        return canonical_text_name(src.name)
    raise UsageError(
        f"Cannot tell which text model {src} holds; give it a name with --name (for example --name my-model).",
        plain=f"Cannot tell which text model the folder {src.name} holds; say which it is.",
    )


def load_json_quietly(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


_SKIPPED_DIRS = {".git", ".cache", "__pycache__", "onnx", "openvino"}
_SKIPPED_SUFFIXES = (".h5", ".msgpack", ".ot", ".onnx", ".tflite", ".mlmodel", ".gguf")


def _unneeded_model_files(directory: str, names: list[str]) -> set[str]:
    # Other frameworks' copies of the weights are as large as the model and never read.
    skipped = {n for n in names if n in _SKIPPED_DIRS or n.endswith(_SKIPPED_SUFFIXES)}
    if "model.safetensors" in names or "model.safetensors.index.json" in names:
        skipped.update(n for n in names if n.startswith("pytorch_model") and n.endswith((".bin", ".bin.index.json")))
    return skipped


def _vit_signature(state: dict) -> tuple | None:
    """Architecture numbers of an open_clip ViT state dict, or None when it is not one."""
    try:
        width, _, patch, _ = state["visual.conv1.weight"].shape
        grid = math.isqrt(state["visual.positional_embedding"].shape[0] - 1)
        embed_dim = state["visual.proj"].shape[1]
        vocab, text_width = state["token_embedding.weight"].shape
        context = state["positional_embedding"].shape[0]
    except (KeyError, AttributeError, ValueError):
        return None

    def depth(prefix: str) -> int:
        found = [int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))]
        return max(found) + 1 if found else 0

    return (
        embed_dim,
        int(width),
        int(patch),
        int(grid * patch),
        depth("visual.transformer.resblocks."),
        int(vocab),
        int(text_width),
        int(context),
        depth("transformer.resblocks."),
    )


def _config_signature(cfg: dict) -> tuple | None:
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    if "timm_model_name" in vision or "hf_model_name" in text:
        return None
    layers, size = vision.get("layers", 12), vision.get("image_size", 224)
    if not isinstance(layers, int) or not isinstance(size, int):
        return None  # ResNet towers and non-square inputs are not inferred; name them instead
    # Defaults are open_clip's CLIPVisionCfg / CLIPTextCfg defaults.
    return (
        cfg.get("embed_dim"),
        vision.get("width", 768),
        vision.get("patch_size", 16),
        size,
        layers,
        text.get("vocab_size", 49408),
        text.get("width", 512),
        text.get("context_length", 77),
        text.get("layers", 12),
    )


def _infer_clip_name(state: dict, settings: Settings, src: Path) -> str:
    from .clip import clip_model_config, clip_model_names

    signature = _vit_signature({k.removeprefix("module."): v for k, v in state.items()})
    matches = (
        []
        if signature is None
        else [n for n in clip_model_names() if _config_signature(clip_model_config(n)) == signature]
    )
    if settings.clip_model in matches:
        return settings.clip_model
    # A -quickgelu variant has the same tensors as its base; the base is the usual one.
    plain = [n for n in matches if not n.endswith("-quickgelu")]
    if len(plain) == 1:
        return plain[0]
    hint = f" It fits: {', '.join(matches)}." if matches else ""
    raise UsageError(
        f"Cannot tell which CLIP model {src} is for; name it with --name (for example --name ViT-B-32).{hint}",
        plain=f"Cannot tell which CLIP model {src.name} is for; say which it is.{hint}",
    )


def _check_clip_fits(state: dict, model: str, src: Path) -> None:
    """Raise :class:`UsageError` when a ViT state dict's shapes are not those of CLIP ``model``.

    Only what can be told from the shapes is refused: a state dict that is not an
    open_clip ViT, or a model whose configuration cannot be compared, is left to the
    loader, which names what does not fit.
    """
    from .clip import clip_model_config, clip_model_names

    signature = _vit_signature({k.removeprefix("module."): v for k, v in state.items()})
    expected = _config_signature(clip_model_config(model))
    if signature is None or expected is None or signature == expected:
        return
    fits = [n for n in clip_model_names() if _config_signature(clip_model_config(n)) == signature]
    plain_fits = [n for n in fits if not n.endswith("-quickgelu")] or fits
    if plain_fits:
        reason = f"its layout is that of {', '.join(plain_fits[:4])}; choose that model instead"
    else:
        reason = "its layout fits no CLIP model Shoebox knows (an unknown architecture)"
    raise UsageError(
        f"{src} does not hold weights for the CLIP model {model}: {reason}.",
        plain=f"{src.name} does not hold weights for the CLIP model {model}: {reason}.",
    )


def _clip_tag_by_sha(model: str, sha: str) -> str | None:
    """The open_clip tag whose published checksum matches ``sha``, where open_clip lists one."""
    import open_clip

    for tag in open_clip.list_pretrained_tags_by_model(model):
        url = open_clip.get_pretrained_cfg(model, tag).get("url") or ""
        if "openaipublic" in url:
            expected = url.split("/")[-2]
        elif "mlfoundations" in url:
            expected = os.path.splitext(os.path.basename(url))[0].split("-")[-1]
        else:
            continue
        if len(expected) >= 8 and sha.startswith(expected):
            return tag
    return None


# ---------------------------------------------------------------------------- listing


def list_models(settings: Settings) -> list[dict]:
    """Every CLIP, Whisper and text model Shoebox can see, for ``shoebox models list``.

    Each row: ``kind`` ("clip"/"whisper"/"text"), ``name``, ``weights`` (tag, ``seed0``,
    ``openai`` for published Whisper files, ``file:<sha256[:12]>``, or for text models
    ``sha256:<16 hex>`` of the weights file; empty when unknown), ``present``, ``path`` (a
    folder for text models) and ``size`` in bytes (None when absent), ``source`` (which
    resolution step finds it) and ``selected`` (the one the settings pick).  Lists the
    selected models, everything in the caches (the Hugging Face cache: the well-known text
    models), and every published Whisper size.  Imports open_clip.
    """
    import open_clip

    from .clip import default_tag
    from .whisper import whisper_weights_tag

    rows: list[dict] = []
    seen: set[tuple[str, str, str]] = set()
    selected_kinds: set[str] = set()

    # Rows are added in resolution order, so the first candidate of a kind that matches
    # the settings is the one a model would load; later matches are not "selected".
    def add(
        kind: str,
        name: str,
        weights: str,
        path: Path | None,
        source: str | None,
        selected: bool,
        present: bool | None = None,
    ) -> None:
        if (kind, name, weights) in seen:
            return
        seen.add((kind, name, weights))
        selected = selected and kind not in selected_kinds
        if selected:
            selected_kinds.add(kind)
        if present is None:
            present = path is not None and path.is_file()
        size = None
        if present and path is not None:
            size = path.stat().st_size if path.is_file() else _folder_size(path)
        rows.append(
            {
                "kind": kind,
                "name": name,
                "weights": weights,
                "present": present,
                "path": str(path) if path is not None else None,
                "size": size,
                "source": source,
                "selected": selected,
            }
        )

    def add_explicit(kind: str, name: str) -> bool:
        raw = settings.clip_weights if kind == "clip" else settings.whisper_weights
        if not raw:
            return False
        path = Path(raw).expanduser()
        if kind == "whisper" and is_ct2_folder(path):
            add(kind, name, whisper_weights_tag("", path, settings), path, "explicit", True, present=True)
            return True
        weights = f"file:{file_sha256(path, settings)[:12]}" if path.is_file() else "file:(missing)"
        add(kind, name, weights, path, "explicit", True)
        return True

    # CLIP
    clip_name = settings.clip_model
    clip_tag = default_tag(clip_name, settings.clip_pretrained)
    explicit = add_explicit("clip", clip_name)
    for model_dir in sorted((settings.models_dir / "clip").glob("*")):
        for tag_dir in sorted(model_dir.glob("*")):
            ckpt = find_checkpoint(tag_dir)
            if ckpt is not None:
                tag = _tag_from_dirname(tag_dir.name)
                add(
                    "clip",
                    model_dir.name,
                    tag,
                    ckpt,
                    "shoebox-cache",
                    not explicit and (model_dir.name, tag) == (clip_name, clip_tag),
                )
    for model, tag in open_clip.list_pretrained():
        found = _clip_standard_cache(open_clip.get_pretrained_cfg(model, tag))
        if found is not None:
            add("clip", model, tag, found.path, found.source, not explicit and (model, tag) == (clip_name, clip_tag))
    if not explicit:
        add("clip", clip_name, clip_tag, None, None, True)

    # Whisper
    whisper_name = settings.whisper_model
    explicit = add_explicit("whisper", whisper_name)

    # Rows in the order the configured backend looks for weights (CTranslate2 folders first
    # for faster-whisper), so the one it would load is the one marked selected.
    def whisper_pt_rows() -> None:
        for path in sorted((settings.models_dir / "whisper").glob("*.pt")):
            add(
                "whisper",
                path.stem,
                whisper_weights_tag(path.stem, path, settings),
                path,
                "shoebox-cache",
                not explicit and path.stem == whisper_name,
            )

    def whisper_ct2_rows() -> None:
        for folder in sorted((settings.models_dir / "whisper").glob("*")):
            if is_ct2_folder(folder) and not folder.name.startswith("."):
                add(
                    "whisper",
                    folder.name,
                    whisper_weights_tag(folder.name, folder, settings),
                    folder,
                    "shoebox-cache",
                    not explicit and folder.name == whisper_name,
                    present=True,
                )

    from .whisper import whisper_formats

    if whisper_formats(settings)[0] == "ct2":
        whisper_ct2_rows()
        whisper_pt_rows()
    else:
        whisper_pt_rows()
        whisper_ct2_rows()
    for name in WHISPER_NAMES:
        snapshot = hf_ct2_whisper_snapshot(name)
        if snapshot is not None:
            add(
                "whisper",
                name,
                whisper_weights_tag(name, snapshot, settings),
                snapshot,
                "hf-cache",
                not explicit and name == whisper_name,
                present=True,
            )
    for name in (*WHISPER_NAMES, TEST_TINY):
        found = _whisper_standard_cache(name)
        add(
            "whisper",
            name,
            whisper_weights_tag(name, None, settings),
            found.path if found else None,
            found.source if found else None,
            not explicit and name == whisper_name,
        )
    if not explicit:
        add("whisper", whisper_name, whisper_weights_tag(whisper_name, None, settings), None, None, True)

    _list_text_models(settings, add)
    rows.sort(key=lambda r: (r["kind"], not r["selected"], not r["present"], r["name"], r["weights"]))
    return rows


def _text_weights_tag(name: str, folder: Path, settings: Settings) -> str:
    if name == TEST_TINY:
        return "seed0"
    weights = text_weights_file(folder)
    return f"sha256:{file_sha256(weights, settings)[:16]}" if weights is not None else ""


def _list_text_models(settings: Settings, add: Callable[..., None]) -> None:
    """Add the text rows to :func:`list_models`, in resolution order (see its ``add``)."""
    raw = settings.text_model
    try:
        explicit = text_setting_folder(raw)
    except ModelUnavailableError:
        # A configured folder that is not there: shown as missing rather than stopping the listing.
        add("text", f"folder:{Path(raw).name}", "", Path(raw).expanduser(), "explicit", True, present=False)
        return
    if explicit is not None:
        present = not text_folder_problems(explicit)
        name = text_folder_name(explicit, settings) or f"folder:{explicit.name}"
        weights = _text_weights_tag("", explicit, settings) if present else ""
        add("text", name, weights, explicit, "explicit", True, present=present)
        configured = None
    else:
        try:
            configured = canonical_text_name(raw)
        except UsageError:
            configured = raw
    found: set[str] = set()  # names with a row already; the configured one is listed as missing only otherwise
    root = settings.models_dir / "text"
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        name = text_name_from_cache_dir(folder.name)
        present = not text_folder_problems(folder)
        add(
            "text",
            name,
            _text_weights_tag(name, folder, settings) if present else "",
            folder,
            "shoebox-cache",
            name == configured,
            present=present,
        )
        found.add(name)
    for name in dict.fromkeys([*KNOWN_TEXT_MODELS, *([configured] if configured else [])]):
        if name == TEST_TINY:
            continue
        snapshot = hf_text_snapshot(name)
        if snapshot is not None:
            add(
                "text",
                name,
                _text_weights_tag(name, snapshot, settings),
                snapshot,
                "hf-cache",
                name == configured,
                present=True,
            )
            found.add(name)
    if configured is not None and configured not in found:
        add("text", configured, "seed0" if configured == TEST_TINY else "", None, None, True, present=False)


def _folder_size(folder: Path) -> int:
    # Sizes of the files a model folder holds; a Hugging Face snapshot links to its blobs,
    # which stat() follows.
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total
