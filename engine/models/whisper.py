"""Whisper: speech to timed transcript segments, language detected.

Two engines run the same model:

* ``faster``: faster-whisper (CTranslate2), which reads a CTranslate2 model folder
  (model.bin, config.json, tokenizer.json) and on a CPU runs int8 arithmetic, several
  times faster than PyTorch at the same accuracy (``benchmarks/speech.py``);
* ``openai``: openai-whisper (PyTorch), which reads whisper's ``.pt`` checkpoints
  (the published ones, imported ones, and the generated ``test-tiny``).

``SHOEBOX_WHISPER_BACKEND`` picks one; left at ``auto``, the weights found decide: a
CTranslate2 folder runs on faster-whisper, a ``.pt`` file on openai-whisper, and where
both could be found the CTranslate2 copy is looked for first.

torch, whisper and faster-whisper are imported inside the functions that need them
(whisper pulls in numba as well), so importing this module costs nothing.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Cancelled, ModelUnavailableError, UsageError
from ..settings import Settings
from .runtime import available_cores, configure_torch_threads, torch_device
from .tiny import TEST_TINY, TINY_WHISPER_DECODE
from .weights import (
    WHISPER_NAMES,
    _short_reason,
    ct2_whisper_problems,
    ct2_whisper_sha256,
    explicit_whisper_weights,
    file_sha256,
    is_ct2_folder,
    load_weights_file,
    locate_whisper_weights,
    weights_error,
    whisper_cache_file,
    whisper_cache_folder,
)

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16_000

CancelCheck = Callable[[], bool]

# faster-whisper decodes greedily here (beam 1, with whisper's temperature fallback), as
# openai-whisper does by default: on Whisper base the 5-wide beam faster-whisper would use
# by default gave no lower word error rate on the test speech and took 1.6 times as long.
FASTER_BEAM_SIZE = 1


@dataclass
class Segment:
    """A stretch of speech: seconds from the start of the recording, and its text (stripped)."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    """A recording's transcript: the detected language code (``"en"``), or None when nothing was heard."""

    language: str | None
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)


def whisper_model_names(settings: Settings | None = None) -> list[str]:
    """Published Whisper names, ``test-tiny``, and names imported into the cache.  Does not import torch."""
    names = [*WHISPER_NAMES, TEST_TINY]
    if settings is not None:
        cached = settings.models_dir / "whisper"
        imported = {p.stem for p in cached.glob("*.pt")} | {p.name for p in cached.glob("*") if is_ct2_folder(p)}
        names += sorted(n for n in imported if n not in names)
    return names


def check_whisper_name(name: str, settings: Settings | None = None) -> None:
    """Raise :class:`UsageError` listing valid names when ``name`` is not a Whisper model here."""
    if name in whisper_model_names(settings):
        return
    names = ", ".join(whisper_model_names(settings))
    raise UsageError(
        f"There is no Whisper model called {name!r}. Choose one of: {names} (SHOEBOX_WHISPER_MODEL).",
        plain=f"There is no Whisper model called {name!r}. Choose one of: {names}.",
    )


def whisper_weights_tag(name: str, path: Path | None, settings: Settings) -> str:
    """``openai`` for a published checkpoint, ``seed0`` for test-tiny, ``ct2:<sha256[:12]>``
    (of model.bin) for a CTranslate2 folder, else ``file:<sha256[:12]>``."""
    if path is not None and path.is_dir():
        return f"ct2:{ct2_whisper_sha256(path, settings)[:12]}"
    if name == TEST_TINY:
        return "seed0"
    if path is None:
        return "openai" if name in WHISPER_NAMES else ""
    sha = file_sha256(path, settings)
    if name in WHISPER_NAMES:
        from .weights import _whisper_url

        if _whisper_url(name).split("/")[-2] == sha:
            return "openai"
    return f"file:{sha[:12]}"


def load_whisper_checkpoint(
    path: Path, device: torch.device | str, *, label: str, fix: str, shown_as: Path | None = None
):
    """Build a Whisper model from a whisper-format checkpoint file, in eval mode on ``device``.

    The one loader for every Whisper file (published, imported, explicit, test-tiny):
    ``torch.load(weights_only=True)``, then ``dims`` and a strict ``model_state_dict``.
    Raises :class:`ModelUnavailableError` naming ``path`` when the file is damaged, carries
    Python objects, or is not a Whisper checkpoint (naming ``shown_as`` instead, when given).
    """
    from whisper.model import ModelDimensions, Whisper

    shown = Path(shown_as or path)
    checkpoint = load_weights_file(Path(path), what=label, fix=fix, shown_as=shown)
    if not (
        isinstance(checkpoint, dict)
        and isinstance(checkpoint.get("dims"), dict)
        and isinstance(checkpoint.get("model_state_dict"), dict)
    ):
        raise ModelUnavailableError(
            f"{shown} is not a Whisper checkpoint (whisper's .pt files hold 'dims' and 'model_state_dict'). {fix}"
        )
    try:
        model = Whisper(ModelDimensions(**checkpoint["dims"]))
        model.load_state_dict(checkpoint["model_state_dict"])
    except Exception as exc:  # wrong dims or tensors: the file does not describe a usable model
        raise weights_error(exc, shown, label, fix) from exc
    # Word-level alignment heads are not set: Shoebox uses segment timestamps only.
    return model.to(device).eval()


def faster_whisper_installed() -> bool:
    """Whether the faster-whisper package can be imported here (checked without importing it)."""
    return importlib.util.find_spec("faster_whisper") is not None


def whisper_formats(settings: Settings) -> tuple[str, ...]:
    """The weight formats the configured backend can run, preferred first: ``"ct2"`` and/or ``"pt"``."""
    backend = settings.whisper_backend
    if backend == "faster":
        return ("ct2",)
    if backend == "openai":
        return ("pt",)
    # auto: faster-whisper where it is installed; CTranslate2 has no Apple GPU support, so
    # with SHOEBOX_DEVICE=mps whisper's own checkpoints (run by PyTorch on the GPU) come first.
    if not faster_whisper_installed():
        return ("pt",)
    return ("pt", "ct2") if settings.device == "mps" else ("ct2", "pt")


def _missing_faster_whisper() -> ModelUnavailableError:
    return ModelUnavailableError(
        "These Whisper weights are in CTranslate2 format, which needs the faster-whisper package, "
        "and it is not installed. Install it with `pip install faster-whisper`, or use a Whisper .pt "
        "checkpoint with SHOEBOX_WHISPER_BACKEND=openai."
    )


class _OpenAIWhisper:
    """openai-whisper (PyTorch) running a whisper checkpoint."""

    name = "openai"

    def __init__(self, settings: Settings, path: Path, *, label: str, fix: str, test_tiny: bool) -> None:
        device = torch_device(settings)
        configure_torch_threads(settings)
        self.model = load_whisper_checkpoint(path, device, label=label, fix=fix)
        # fp16 is a GPU speed-up; on CPU whisper would warn and fall back.
        self.fp16 = device.type == "cuda"
        self.options = dict(TINY_WHISPER_DECODE) if test_tiny else {}

    def transcribe(self, audio: np.ndarray, should_cancel: CancelCheck | None) -> tuple[str | None, list[tuple]]:
        import whisper

        hook = None
        if should_cancel is not None:
            # whisper.transcribe offers no way to stop; its decoder runs once per token, so
            # a check there stops a long recording within one token's work.  The exception
            # leaves through whisper's own clean-up (it removes its cache hooks in a finally).
            def check(module: Any, args: Any) -> None:
                if should_cancel():
                    raise Cancelled("transcription cancelled")

            hook = self.model.decoder.register_forward_pre_hook(check)
        try:
            result = whisper.transcribe(
                self.model,
                audio,
                verbose=None,  # no console output from a library
                fp16=self.fp16,
                **self.options,
            )
        finally:
            if hook is not None:
                hook.remove()
        segments = [(float(r["start"]), float(r["end"]), str(r.get("text", ""))) for r in result.get("segments", [])]
        return result.get("language") or None, segments


class _FasterWhisper:
    """faster-whisper (CTranslate2) running a CTranslate2 Whisper folder."""

    name = "faster"

    def __init__(self, settings: Settings, folder: Path, *, label: str, fix: str) -> None:
        if not faster_whisper_installed():
            raise _missing_faster_whisper()
        problems = ct2_whisper_problems(folder)
        if problems:
            raise ModelUnavailableError(
                f"The folder {folder} is not a CTranslate2 Whisper model: it lacks {', '.join(problems)}. {fix}"
            )
        import ctranslate2
        from faster_whisper import WhisperModel

        device, index, compute_type = "cpu", 0, "int8"
        if settings.device.startswith("cuda"):
            index = int(settings.device.split(":", 1)[1]) if ":" in settings.device else 0
            count = ctranslate2.get_cuda_device_count()
            if index >= count:
                raise UsageError(
                    f"SHOEBOX_DEVICE is {settings.device!r}, but faster-whisper sees {count} CUDA GPU(s) here. "
                    "Set SHOEBOX_DEVICE=cpu, or SHOEBOX_WHISPER_BACKEND=openai to run Whisper with PyTorch."
                )
            device, compute_type = "cuda", "float16"
        elif settings.device == "mps" and settings.whisper_backend == "faster":
            raise UsageError(
                "faster-whisper cannot use Apple's Metal GPU (SHOEBOX_DEVICE=mps). Set "
                "SHOEBOX_WHISPER_BACKEND=openai with a Whisper .pt checkpoint, or SHOEBOX_DEVICE=cpu."
            )
        # With SHOEBOX_DEVICE=mps and only CTranslate2 weights at hand, Whisper runs on the CPU.
        threads = settings.threads if settings.threads > 0 else available_cores()
        try:
            self.model = WhisperModel(
                str(folder),
                device=device,
                device_index=index,
                compute_type=compute_type,
                cpu_threads=threads if device == "cpu" else 0,
                num_workers=1,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2's reader: a damaged or foreign model.bin
            raise ModelUnavailableError(
                f"The {label} model in {folder} could not be loaded ({_short_reason(exc)}). {fix}"
            ) from exc

    def transcribe(self, audio: np.ndarray, should_cancel: CancelCheck | None) -> tuple[str | None, list[tuple]]:
        pieces, info = self.model.transcribe(
            audio,
            beam_size=FASTER_BEAM_SIZE,
            vad_filter=False,  # measured: no better on speech, and it moves timestamps
            word_timestamps=False,
        )
        segments = []
        try:
            # Segments come from a generator, one 30-second window at a time: a cancel
            # stops before the next window is decoded.
            for piece in pieces:
                segments.append((float(piece.start), float(piece.end), str(piece.text)))
                if should_cancel is not None and should_cancel():
                    raise Cancelled("transcription cancelled")
        finally:
            pieces.close()
        return info.language or None, segments


class WhisperTranscriber:
    """A Whisper model that turns 16 kHz mono samples into a :class:`Transcript`.

    Cheap to build; weights load on first use (or :meth:`load`), once, under a lock.
    ``name`` is the configured model name; ``weights`` says which weights they are;
    ``backend`` which engine runs them (``"faster"`` or ``"openai"``, None until loaded).
    Build the configured one with :func:`build_whisper`.
    """

    def __init__(self, settings: Settings, *, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or settings.whisper_model
        self._explicit = explicit_whisper_weights(settings)
        if self._explicit is None:
            check_whisper_name(self.name, settings)
        else:
            self._check_explicit_backend(self._explicit)
        self._backend: _OpenAIWhisper | _FasterWhisper | None = None
        self._weights: str | None = None
        self._load_lock = threading.Lock()
        # whisper's decoder hooks a key/value cache onto the shared modules for the length
        # of a decode, so two transcriptions at once would mix their caches; CTranslate2
        # with one worker would queue them anyway.
        self._run_lock = threading.Lock()

    def _check_explicit_backend(self, path: Path) -> None:
        wanted = self.settings.whisper_backend
        if wanted == "openai" and path.is_dir():
            raise UsageError(
                f"SHOEBOX_WHISPER_WEIGHTS names the CTranslate2 folder {path}, which openai-whisper cannot read. "
                f"Set SHOEBOX_WHISPER_BACKEND=faster (or auto), or point SHOEBOX_WHISPER_WEIGHTS at a .pt file."
            )
        if wanted == "faster" and path.is_file():
            raise UsageError(
                f"SHOEBOX_WHISPER_WEIGHTS names the file {path}, but faster-whisper reads CTranslate2 model folders. "
                f"Set SHOEBOX_WHISPER_BACKEND=openai (or auto), or point SHOEBOX_WHISPER_WEIGHTS at a "
                f"faster-whisper model folder."
            )

    @property
    def weights(self) -> str:
        """``openai``, ``seed0``, ``ct2:<sha256[:12]>`` or ``file:<sha256[:12]>``; hashes a file once."""
        if self._weights is None:
            if self._explicit is not None:
                # Named by hash alone: an explicit file's provenance is unknown.
                self._weights = whisper_weights_tag("", self._explicit, self.settings)
            else:
                folder = whisper_cache_folder(self.settings, self.name)
                cached = whisper_cache_file(self.settings, self.name)
                found: Path | None = None
                for kind in whisper_formats(self.settings):
                    if kind == "ct2" and is_ct2_folder(folder):
                        found = folder
                        break
                    if kind == "pt" and cached.is_file():
                        found = cached
                        break
                self._weights = whisper_weights_tag(self.name, found, self.settings)
        return self._weights

    @property
    def backend(self) -> str | None:
        """``"faster"`` or ``"openai"`` once loaded; None before."""
        return self._backend.name if self._backend is not None else None

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def locate_weights(self) -> Path:
        """The checkpoint file or CTranslate2 folder :meth:`load` will read, without loading it
        (may download or generate).

        Raises :class:`ModelUnavailableError` saying what to run when it is missing.
        """
        explicit = explicit_whisper_weights(self.settings)
        if explicit is not None:
            return explicit
        return locate_whisper_weights(self.settings, self.name, whisper_formats(self.settings)).path

    def load(self) -> None:
        """Load the weights onto ``settings.device`` (once), with the engine that reads them.

        Raises :class:`ModelUnavailableError` (missing, damaged or refused weights, or
        faster-whisper not installed for a CTranslate2 folder) or :class:`UsageError`
        (device not available).
        """
        if self._backend is not None:
            return
        with self._load_lock:
            if self._backend is not None:
                return
            path = self.locate_weights()
            if self._explicit is not None:
                fix = "Point SHOEBOX_WHISPER_WEIGHTS at an intact Whisper .pt file or faster-whisper model folder."
            else:
                fix = (
                    "Run `shoebox models download whisper` to fetch it again, "
                    "or import an intact copy with `shoebox models import FILE_OR_FOLDER --kind whisper`."
                )
            label = f"Whisper {self.name}"
            backend: _OpenAIWhisper | _FasterWhisper
            if path.is_dir():
                backend = _FasterWhisper(self.settings, path, label=label, fix=fix)
            else:
                backend = _OpenAIWhisper(
                    self.settings, path, label=label, fix=fix, test_tiny=self.name == TEST_TINY and not self._explicit
                )
            self._weights = whisper_weights_tag("" if self._explicit else self.name, path, self.settings)
            self._backend = backend

    def transcribe(self, samples: np.ndarray, *, should_cancel: CancelCheck | None = None) -> Transcript:
        """Transcribe 16 kHz mono float32 samples in [-1, 1]; the language is detected.

        Returns the segments with text, in order, times clamped to the recording; an
        empty recording gives ``Transcript(None, [])``.  ``should_cancel`` is asked
        while the model works; when it says yes, :class:`Cancelled` is raised soon
        after (within one token for openai-whisper, one 30-second window for
        faster-whisper).  Raises :class:`UsageError` for samples that are not one
        channel, and what :meth:`load` raises.
        """
        audio = np.asarray(samples, dtype=np.float32)
        if audio.ndim == 2 and 1 in audio.shape:
            audio = audio.reshape(-1)
        if audio.ndim != 1:
            raise UsageError(f"transcribe needs mono samples (one dimension), got shape {audio.shape}")
        if audio.size == 0:
            return Transcript(None, [])
        audio = np.ascontiguousarray(audio)
        self.load()
        assert self._backend is not None
        if should_cancel is not None and should_cancel():
            raise Cancelled("transcription cancelled")
        with self._run_lock:
            language, raw_segments = self._backend.transcribe(audio, should_cancel)
        duration = audio.size / SAMPLE_RATE
        segments = []
        for raw_start, raw_end, raw_text in raw_segments:
            text = raw_text.strip()
            if not text:
                continue
            # Locators must point inside the recording for the player to seek there.
            end = min(raw_end, duration)
            start = min(max(raw_start, 0.0), end)
            segments.append(Segment(start, end, text))
        return Transcript(language, segments)

    def __repr__(self) -> str:
        state = f"loaded, {self.backend}" if self.loaded else "not loaded"
        return f"WhisperTranscriber({self.name}, {state})"


def build_whisper(settings: Settings) -> WhisperTranscriber:
    """The Whisper transcriber the settings ask for (SHOEBOX_WHISPER_MODEL / _WEIGHTS / _BACKEND).

    Cheap: loads nothing.  Raises :class:`UsageError` for an unknown model name or weights
    the chosen backend cannot read, :class:`ModelUnavailableError` when SHOEBOX_WHISPER_WEIGHTS
    names nothing, or a folder that is not a CTranslate2 Whisper model.
    """
    return WhisperTranscriber(settings)
