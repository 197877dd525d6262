"""Whisper: speech to timed transcript segments, language detected.

torch and whisper are imported inside the functions that need them (whisper pulls in
numba as well), so importing this module costs nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelUnavailableError, UsageError
from ..settings import Settings
from .runtime import configure_torch_threads, torch_device
from .tiny import TEST_TINY, TINY_WHISPER_DECODE
from .weights import (
    WHISPER_NAMES,
    explicit_weights_file,
    file_sha256,
    load_weights_file,
    locate_whisper_weights,
    weights_error,
    whisper_cache_file,
)

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16_000


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
        names += sorted(p.stem for p in (settings.models_dir / "whisper").glob("*.pt") if p.stem not in names)
    return names


def check_whisper_name(name: str, settings: Settings | None = None) -> None:
    """Raise :class:`UsageError` listing valid names when ``name`` is not a Whisper model here."""
    if name in whisper_model_names(settings):
        return
    raise UsageError(
        f"There is no Whisper model called {name!r}. Choose one of: {', '.join(whisper_model_names(settings))} "
        f"(SHOEBOX_WHISPER_MODEL)."
    )


def whisper_weights_tag(name: str, path: Path | None, settings: Settings) -> str:
    """``openai`` for a published checkpoint, ``seed0`` for test-tiny, else ``file:<sha256[:12]>``."""
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


class WhisperTranscriber:
    """A Whisper model that turns 16 kHz mono samples into a :class:`Transcript`.

    Cheap to build; weights load on first use (or :meth:`load`), once, under a lock.
    ``name`` is the configured model name; ``weights`` says which file it is.
    Build the configured one with :func:`build_whisper`.
    """

    def __init__(self, settings: Settings, *, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or settings.whisper_model
        self._explicit = explicit_weights_file(settings, "whisper")
        if self._explicit is None:
            check_whisper_name(self.name, settings)
        self._model: Any = None  # a whisper model once loaded (whisper has no type information)
        self._device: torch.device | None = None
        self._weights: str | None = None
        self._load_lock = threading.Lock()
        # whisper's decoder hooks a key/value cache onto the shared modules for the length
        # of a decode, so two transcriptions at once would mix their caches.
        self._run_lock = threading.Lock()

    @property
    def weights(self) -> str:
        """``openai``, ``seed0`` or ``file:<sha256[:12]>``; hashes an explicit or imported file once."""
        if self._weights is None:
            if self._explicit is not None:
                self._weights = f"file:{file_sha256(self._explicit, self.settings)[:12]}"
            else:
                cached = whisper_cache_file(self.settings, self.name)
                self._weights = whisper_weights_tag(self.name, cached if cached.is_file() else None, self.settings)
        return self._weights

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def locate_weights(self) -> Path:
        """The checkpoint :meth:`load` will read, without loading it (may download or generate).

        Raises :class:`ModelUnavailableError` saying what to run when it is missing.
        """
        explicit = explicit_weights_file(self.settings, "whisper")
        if explicit is not None:
            return explicit
        return locate_whisper_weights(self.settings, self.name).path

    def load(self) -> None:
        """Load the weights onto ``settings.device`` (once).

        Raises :class:`ModelUnavailableError` (missing, damaged or refused weights) or
        :class:`UsageError` (device not available).
        """
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            device = torch_device(self.settings)
            configure_torch_threads(self.settings)
            path = self.locate_weights()
            if self._explicit is not None:
                fix = "Point SHOEBOX_WHISPER_WEIGHTS at an intact Whisper .pt file."
            else:
                fix = (
                    "Run `shoebox models download whisper` to fetch it again, "
                    "or import an intact copy with `shoebox models import FILE`."
                )
            model = load_whisper_checkpoint(path, device, label=f"Whisper {self.name}", fix=fix)
            self._device = device
            self._model = model

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe 16 kHz mono float32 samples in [-1, 1]; the language is detected.

        Returns the segments with text, in order, times clamped to the recording; an
        empty recording gives ``Transcript(None, [])``.  Raises :class:`UsageError` for
        samples that are not one channel, and what :meth:`load` raises.
        """
        import whisper

        audio = np.asarray(samples, dtype=np.float32)
        if audio.ndim == 2 and 1 in audio.shape:
            audio = audio.reshape(-1)
        if audio.ndim != 1:
            raise UsageError(f"transcribe needs mono samples (one dimension), got shape {audio.shape}")
        if audio.size == 0:
            return Transcript(None, [])
        audio = np.ascontiguousarray(audio)
        self.load()
        options = dict(TINY_WHISPER_DECODE) if self.name == TEST_TINY else {}
        # fp16 is a GPU speed-up; on CPU whisper would warn and fall back.
        fp16 = self._device is not None and self._device.type == "cuda"
        with self._run_lock:
            result = whisper.transcribe(
                self._model,
                audio,
                verbose=None,  # no console output from a library
                fp16=fp16,
                **options,
            )
        duration = audio.size / SAMPLE_RATE
        segments = []
        for raw in result.get("segments", []):
            text = str(raw.get("text", "")).strip()
            if not text:
                continue
            # Locators must point inside the recording for the player to seek there.
            end = min(float(raw["end"]), duration)
            start = min(max(float(raw["start"]), 0.0), end)
            segments.append(Segment(start, end, text))
        return Transcript(result.get("language") or None, segments)

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"WhisperTranscriber({self.name}, {state})"


def build_whisper(settings: Settings) -> WhisperTranscriber:
    """The Whisper transcriber the settings ask for (SHOEBOX_WHISPER_MODEL / _WEIGHTS).

    Cheap: loads nothing.  Raises :class:`UsageError` for an unknown model name,
    :class:`ModelUnavailableError` when SHOEBOX_WHISPER_WEIGHTS names no file.
    """
    return WhisperTranscriber(settings)
