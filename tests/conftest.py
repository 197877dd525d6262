"""Shared fixtures: a library in tmp_path and the test-tiny models.

Tests never touch the user's real library: SHOEBOX_HOME points into a
temporary folder for every test, and HF_HUB_OFFLINE makes any stray download
fail at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A real PostgreSQL server (pgvector, pg_trgm) for the tests that ask for postgres_server or postgres_db.
pytest_plugins = ("tests.postgres",)

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]

TINY_ENV = {
    "SHOEBOX_CLIP_MODEL": "test-tiny",
    "SHOEBOX_CLIP_PRETRAINED": "",
    "SHOEBOX_WHISPER_MODEL": "test-tiny",
    "SHOEBOX_TEXT_MODEL": "test-tiny",
    "SHOEBOX_THREADS": "2",
    "SHOEBOX_BATCH_SIZE": "8",
    "HF_HUB_OFFLINE": "1",
}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own SHOEBOX_HOME, so the real library is never touched."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SHOEBOX_HOME", str(home))
    for name in ("SHOEBOX_CLIP_WEIGHTS", "SHOEBOX_WHISPER_WEIGHTS", "SHOEBOX_ALLOW_DOWNLOAD", "SHOEBOX_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def offline_caches(tmp_path, monkeypatch):
    """No test sees the user's real model caches (~/.cache/whisper, the Hugging Face hub) or the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("SHOEBOX_TEXT_MODEL", raising=False)


@pytest.fixture(scope="session")
def models_home(tmp_path_factory) -> Path:
    """One home for the session's test-tiny weights, so they are generated once."""
    return tmp_path_factory.mktemp("models-home")


@pytest.fixture(scope="session")
def tiny_settings(models_home):
    from engine.settings import load_settings

    return load_settings(home=models_home, env=dict(TINY_ENV))


@pytest.fixture(scope="session")
def tiny_clip(tiny_settings):
    from engine.models import build_clip

    return build_clip(tiny_settings)


@pytest.fixture(scope="session")
def tiny_whisper(tiny_settings):
    from engine.models import build_whisper

    return build_whisper(tiny_settings)


@pytest.fixture(scope="session")
def tiny_text(tiny_settings):
    from engine.models import build_text_encoder

    return build_text_encoder(tiny_settings)


@pytest.fixture
def store_setting(request) -> str:
    """SHOEBOX_STORE of the ``library`` fixture: empty, the SQLite file in its home.

    With ``SHOEBOX_TEST_STORE=postgresql`` in the environment, a fresh PostgreSQL database
    instead, so any test of a library can be tried on the server store.  A module whose tests
    must hold on both stores overrides this fixture with :func:`tests.postgres.both_stores`
    (``store_setting = both_stores``).
    """
    if os.environ.get("SHOEBOX_TEST_STORE") == "postgresql":
        return request.getfixturevalue("postgres_db")
    return ""


@pytest.fixture
def library(tmp_path, tiny_clip, tiny_whisper, tiny_text, store_setting):
    """An empty library in tmp_path with the test-tiny models injected (kept where ``store_setting`` says)."""
    from engine.library import Library
    from engine.settings import load_settings

    settings = load_settings(home=tmp_path / "library", env={**TINY_ENV, "SHOEBOX_STORE": store_setting})
    lib = Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text)
    yield lib
    lib.close()


def tiny_env(home: Path) -> dict[str, str]:
    """Environment for a `shoebox` subprocess using the test-tiny models and library ``home``."""
    env = dict(os.environ)
    env.update(TINY_ENV)
    env["SHOEBOX_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env
