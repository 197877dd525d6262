"""The real-world test corpora: ``tests/data/corpora`` in the repository, or the full shared set.

``tests/data/corpora`` is a small subset of ``../shared/data/corpora`` that goes with every clone
(tests/data/README.md says what was kept and where each file comes from).  Setting
``SHOEBOX_SHARED_DATA`` to a folder holding ``corpora/`` (the full ``../shared/data``) runs the
same tests on every file there.

Data that is missing fails the tests that need it; it never skips them.  Parametrised tests read
the manifests at collection time through :func:`manifest`, so a missing manifest is a collection
error of the whole module.
"""

from __future__ import annotations

import csv
import json
import lzma
import os
import re
from pathlib import Path

import pytest

DATA_ENV = "SHOEBOX_SHARED_DATA"
IN_REPO_DATA = Path(__file__).resolve().parents[1] / "data"
DATA = Path(os.environ[DATA_ENV]).resolve() if os.environ.get(DATA_ENV) else IN_REPO_DATA
CORPORA = DATA / "corpora"

# How the corpora README says intentionally broken files are flagged: the
# upper-case words, or "decompression-bomb".  ("Corrupt JPEG" in mixed case
# describes damaged metadata around intact pixels, not a broken file.)
_BROKEN_FLAG_RE = re.compile(r"\b(BROKEN|TRUNCATED|CORRUPT|MALFORMED)\b|[Dd]ecompression[- ]bomb")


def _where() -> str:
    if DATA == IN_REPO_DATA:
        return "tests/data is part of the repository: is the checkout complete?"
    return f"{DATA_ENV}={os.environ[DATA_ENV]} should name a folder holding corpora/"


def corpus_dir(name: str) -> Path:
    path = CORPORA / name
    if not path.is_dir():
        pytest.fail(f"test corpus not found at {path} ({_where()})", pytrace=False)
    return path


def manifest(name: str) -> list[dict[str, str]]:
    """Rows of ``corpora/<name>/MANIFEST.tsv``; raises FileNotFoundError when it is missing."""
    path = CORPORA / name / "MANIFEST.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"test corpus manifest not found at {path} ({_where()})")
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def corpus_bytes(path: Path) -> bytes:
    """The bytes of a corpus file, read from ``<path>.xz`` where only the compressed copy is kept."""
    if not path.is_file() and path.with_name(path.name + ".xz").is_file():
        return lzma.decompress(path.with_name(path.name + ".xz").read_bytes())
    return path.read_bytes()


def qa_json(name: str) -> dict:
    """One question-answering set of ``corpora/qa`` (SQuAD JSON), as parsed JSON."""
    return json.loads(corpus_bytes(corpus_dir("qa") / name).decode("utf-8"))


def flagged_broken(row: dict[str, str]) -> bool:
    return bool(_BROKEN_FLAG_RE.search(row["description"]))
