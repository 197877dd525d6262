"""Settings, each declared once with its default, environment variable and description.

Precedence, highest first: an explicit override passed in code (the CLI's flags),
the environment, the library's ``settings.json``, the declared default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import UsageError

APP_NAME = "Shoebox"
WHISPER_BACKENDS = ("auto", "faster", "openai")
CLIP_RUNTIMES = ("auto", "onnx", "torch")
TEXT_RUNTIMES = ("auto", "onnx", "torch")
PG_INDEXES = ("hnsw", "ivfflat")


def _setting(default: Any, env: str, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Everything a user can configure.  Build one with :func:`load_settings`."""

    home: Path = _setting(None, "SHOEBOX_HOME", "Folder that holds the library database, thumbnails and models.")
    clip_model: str = _setting("ViT-B-32", "SHOEBOX_CLIP_MODEL", "open_clip model name, or test-tiny.")
    clip_pretrained: str = _setting(
        "laion2b_s34b_b79k", "SHOEBOX_CLIP_PRETRAINED", "open_clip pretrained tag of the CLIP weights."
    )
    clip_weights: str = _setting("", "SHOEBOX_CLIP_WEIGHTS", "Path of a local CLIP weights file (overrides the cache).")
    clip_runtime: str = _setting(
        "auto",
        "SHOEBOX_CLIP_RUNTIME",
        "What runs CLIP: onnx (ONNX Runtime, int8 weights, on the CPU), torch (PyTorch), "
        "or auto (onnx when SHOEBOX_DEVICE is cpu, torch on a GPU).",
    )
    whisper_model: str = _setting(
        "base", "SHOEBOX_WHISPER_MODEL", "Whisper model name (tiny, base, small, ...), or test-tiny."
    )
    whisper_weights: str = _setting(
        "",
        "SHOEBOX_WHISPER_WEIGHTS",
        "Path of local Whisper weights: a whisper checkpoint (.pt) or a CTranslate2 model folder.",
    )
    whisper_backend: str = _setting(
        "auto",
        "SHOEBOX_WHISPER_BACKEND",
        "Speech recognition engine: faster (faster-whisper, CTranslate2 weights), openai (openai-whisper, "
        ".pt checkpoints), or auto (whichever fits the weights found; faster-whisper when both do).",
    )
    text_model: str = _setting(
        "intfloat/multilingual-e5-small",
        "SHOEBOX_TEXT_MODEL",
        "Sentence-embedding model for passages: a Hugging Face name (intfloat/multilingual-e5-small, "
        "all-MiniLM-L6-v2, ...), a local folder, or test-tiny.",
    )
    text_runtime: str = _setting(
        "auto",
        "SHOEBOX_TEXT_RUNTIME",
        "What runs the text model: onnx (ONNX Runtime, int8 weights, on the CPU), torch (PyTorch), "
        "or auto (onnx when SHOEBOX_DEVICE is cpu, torch on a GPU).",
    )
    allow_download: bool = _setting(
        False, "SHOEBOX_ALLOW_DOWNLOAD", "Allow fetching missing model weights from the network."
    )
    device: str = _setting("cpu", "SHOEBOX_DEVICE", "Torch device for the models: cpu, cuda or mps.")
    threads: int = _setting(0, "SHOEBOX_THREADS", "Torch threads for the models; 0 picks the number of cores.")
    batch_size: int = _setting(32, "SHOEBOX_BATCH_SIZE", "Images or text chunks encoded together.")
    llm_url: str = _setting(
        "", "SHOEBOX_LLM_URL", "OpenAI-compatible chat-completions endpoint for answers (optional)."
    )
    llm_model: str = _setting("", "SHOEBOX_LLM_MODEL", "Model name to ask the LLM endpoint for.")
    autotags: bool = _setting(True, "SHOEBOX_AUTOTAGS", "Tag photos automatically from the auto-tag vocabulary.")
    autotag_vocabulary: str = _setting(
        "", "SHOEBOX_AUTOTAG_VOCABULARY", "Text file of auto-tag labels, one per line (empty: the bundled list)."
    )
    autotag_threshold: float = _setting(
        0.2, "SHOEBOX_AUTOTAG_THRESHOLD", "How sure CLIP must be (0-1) before a photo gets an auto-tag."
    )
    watch_folders: bool = _setting(
        True,
        "SHOEBOX_WATCH",
        "While the app runs, watch the library's folders and index what changes in them.",
    )
    min_relevance: float = _setting(
        0.25,
        "SHOEBOX_MIN_RELEVANCE",
        "Calibrated relevance (0-1) a result needs when no typed word supports it; 0 shows every result.",
    )

    store: str = _setting(
        "",
        "SHOEBOX_STORE",
        "Where the library is kept: empty for the SQLite file in SHOEBOX_HOME, or a PostgreSQL server's libpq "
        "address (postgresql://user@host/db, or host=/run/postgresql dbname=shoebox) for a library several "
        "computers share.",
    )
    pg_index: str = _setting(
        "hnsw",
        "SHOEBOX_PG_INDEX",
        "PostgreSQL store: the vector index a new library builds, hnsw or ivfflat (its library keeps it).",
    )
    pg_m: int = _setting(16, "SHOEBOX_PG_M", "PostgreSQL store, HNSW: links per node (pgvector's m).")
    pg_ef_construction: int = _setting(
        64, "SHOEBOX_PG_EF_CONSTRUCTION", "PostgreSQL store, HNSW: candidates while building (ef_construction)."
    )
    pg_ef_search: int = _setting(
        160, "SHOEBOX_PG_EF_SEARCH", "PostgreSQL store, HNSW: candidates while searching (hnsw.ef_search)."
    )
    pg_lists: int = _setting(
        0, "SHOEBOX_PG_LISTS", "PostgreSQL store, IVFFlat: lists; 0 picks rows / 1000 (at least 10) when built."
    )
    pg_probes: int = _setting(
        0, "SHOEBOX_PG_PROBES", "PostgreSQL store, IVFFlat: lists searched (ivfflat.probes); 0 picks sqrt(lists)."
    )

    @property
    def db_path(self) -> Path:
        return self.home / "library.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def thumbnails_dir(self) -> Path:
        return self.home / "thumbnails"

    def with_overrides(self, **values: Any) -> Settings:
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def describe(self) -> list[tuple[str, str, Any, str]]:
        """(name, environment variable, current value, description) for each setting."""
        return [(f.name, f.metadata["env"], getattr(self, f.name), f.metadata["doc"]) for f in fields(self)]


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def _convert(name: str, kind: Any, raw: Any) -> Any:
    if kind in (bool, "bool"):
        if isinstance(raw, bool):
            return raw
        value = str(raw).strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("", "0", "false", "no", "off"):
            return False
        raise UsageError(f"setting {name}: expected 1 or 0, got {raw!r}")
    if kind in (int, "int"):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise UsageError(f"setting {name}: expected a whole number, got {raw!r}") from None
    if kind in (float, "float"):
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise UsageError(f"setting {name}: expected a number, got {raw!r}") from None
    if kind in (Path, "Path"):
        return Path(raw).expanduser()
    return str(raw)


def load_settings(
    home: str | os.PathLike | None = None, env: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings for the library at ``home`` (or ``SHOEBOX_HOME``, or the user data directory).

    Raises :class:`UsageError` when a value cannot be understood.
    """
    env = os.environ if env is None else env
    if home is None:
        home = env.get("SHOEBOX_HOME") or default_home()
    home = Path(home).expanduser().resolve()
    stored: dict[str, Any] = {}
    settings_file = home / "settings.json"
    if settings_file.exists():
        try:
            stored = json.loads(settings_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {settings_file}: {exc}; fix or delete the file") from None
    values: dict[str, Any] = {"home": home}
    for f in fields(Settings):
        if f.name == "home":
            continue
        raw = overrides.get(f.name)
        if raw is None:
            raw = env.get(f.metadata["env"])
            if raw in (None, ""):
                raw = stored.get(f.name)
        if raw is not None:
            values[f.name] = _convert(f.name, f.type, raw)
    settings = Settings(**values)
    if not 0.0 <= settings.min_relevance < 1.0:
        raise UsageError(f"SHOEBOX_MIN_RELEVANCE must be at least 0 and below 1, not {settings.min_relevance}")
    if not 0.0 < settings.autotag_threshold <= 1.0:
        raise UsageError(f"SHOEBOX_AUTOTAG_THRESHOLD must be between 0 and 1, not {settings.autotag_threshold}")
    if settings.whisper_backend not in WHISPER_BACKENDS:
        raise UsageError(
            f"SHOEBOX_WHISPER_BACKEND must be {', '.join(WHISPER_BACKENDS)}, not {settings.whisper_backend!r}"
        )
    if settings.clip_runtime not in CLIP_RUNTIMES:
        raise UsageError(f"SHOEBOX_CLIP_RUNTIME must be {', '.join(CLIP_RUNTIMES)}, not {settings.clip_runtime!r}")
    if settings.text_runtime not in TEXT_RUNTIMES:
        raise UsageError(f"SHOEBOX_TEXT_RUNTIME must be {', '.join(TEXT_RUNTIMES)}, not {settings.text_runtime!r}")
    if settings.pg_index not in PG_INDEXES:
        raise UsageError(f"SHOEBOX_PG_INDEX must be {' or '.join(PG_INDEXES)}, not {settings.pg_index!r}")
    for name in ("pg_m", "pg_ef_construction", "pg_ef_search"):
        if getattr(settings, name) < 1:
            raise UsageError(f"SHOEBOX_{name.upper()} must be at least 1, not {getattr(settings, name)}")
    if settings.pg_lists < 0 or settings.pg_probes < 0:
        raise UsageError("SHOEBOX_PG_LISTS and SHOEBOX_PG_PROBES must be 0 (chosen for you) or more")
    if settings.store:
        from .stores import check_location

        check_location(settings.store)
    if settings.device not in ("cpu", "cuda", "mps") and not settings.device.startswith("cuda:"):
        raise UsageError(f"SHOEBOX_DEVICE must be cpu, cuda or mps, not {settings.device!r}")
    return settings


def save_settings(settings: Settings, **changes: Any) -> Settings:
    """Write the given changes to the library's ``settings.json`` and return the new settings."""
    settings_file = settings.home / "settings.json"
    stored: dict[str, Any] = {}
    if settings_file.exists():
        stored = json.loads(settings_file.read_text(encoding="utf-8"))
    stored.update(changes)
    settings.home.mkdir(parents=True, exist_ok=True)
    tmp = settings_file.with_suffix(".tmp")
    # Readable by its owner only: a server library's address may hold a password.
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        out.write(json.dumps(stored, indent=2, sort_keys=True))
    os.chmod(tmp, 0o600)  # an older temporary file keeps its mode through O_CREAT
    os.replace(tmp, settings_file)
    return replace(settings, **changes)
