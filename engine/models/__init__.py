"""The model layer: CLIP (images and text into one vector space), Whisper (speech to text)
and a sentence-embedding text model (document passages and transcript segments).

Importing this package is cheap: torch, open_clip, whisper and transformers are imported
only when a model is used, so the desktop window appears before they load.  Ingestion and
search receive the encoders built here (:func:`build_clip`, :func:`build_whisper`,
:func:`build_text_encoder`); the
``shoebox models`` command uses :func:`list_models`, :func:`download_model` and
:func:`import_model` (in :mod:`engine.models.management`).  Weights resolution and the cache layout are described in
:mod:`engine.models.weights`; the ``test-tiny`` models in :mod:`engine.models.tiny`.
"""

from .clip import ClipEncoder, ModelIdentity, build_clip, clip_model_names
from .management import download_model, import_model, list_models
from .runtime import configure_torch_threads
from .text import TextEncoder, build_text_encoder
from .tiny import TEST_TINY
from .whisper import (
    Segment,
    Transcript,
    WhisperTranscriber,
    build_whisper,
    whisper_model_names,
)

__all__ = [
    "TEST_TINY",
    "ClipEncoder",
    "ModelIdentity",
    "Segment",
    "TextEncoder",
    "Transcript",
    "WhisperTranscriber",
    "build_clip",
    "build_text_encoder",
    "build_whisper",
    "clip_model_names",
    "configure_torch_threads",
    "download_model",
    "import_model",
    "list_models",
    "whisper_model_names",
]
