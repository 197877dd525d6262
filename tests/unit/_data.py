"""The shared real-world corpora (``../shared/data`` beside the repository) for the extractor tests.

Tests that need a corpus call :func:`corpus_dir` (skips when the data is not
there); parametrised tests read the manifests at collection time through
:func:`manifest`, which returns no rows when the data is missing, so those
tests are reported as skipped rather than failing.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("SHOEBOX_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
).resolve()
CORPORA = SHARED_DATA / "corpora"

# How the corpora README says intentionally broken files are flagged: the
# upper-case words, or "decompression-bomb".  ("Corrupt JPEG" in mixed case
# describes damaged metadata around intact pixels, not a broken file.)
_BROKEN_FLAG_RE = re.compile(r"\b(BROKEN|TRUNCATED|CORRUPT|MALFORMED)\b|[Dd]ecompression[- ]bomb")


def corpus_dir(name: str) -> Path:
    path = CORPORA / name
    if not path.is_dir():
        pytest.skip(f"shared corpus not found at {path}")
    return path


def manifest(name: str) -> list[dict[str, str]]:
    """Rows of ``corpora/<name>/MANIFEST.tsv`` (empty when the corpus is missing)."""
    path = CORPORA / name / "MANIFEST.tsv"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def flagged_broken(row: dict[str, str]) -> bool:
    return bool(_BROKEN_FLAG_RE.search(row["description"]))
