"""The test corpora are what their manifests say: every file listed with its source, unchanged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._data import DATA_ENV, IN_REPO_DATA, corpus_bytes, corpus_dir, manifest

REPO = IN_REPO_DATA.parents[1]

FOLDERS = ("images", "pdfs", "audio", "text", "qa")
# Files about the corpus rather than in it.
NOT_LISTED = {"MANIFEST.tsv", "TRANSCRIPTS.tsv", "LICENSES/ATTRIBUTION.txt"}


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_file_is_listed_with_its_source_and_licence(folder: str) -> None:
    root = corpus_dir(folder)
    rows = {row["relative_path"]: row for row in manifest(folder)}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        if relative in NOT_LISTED:
            continue
        listed = relative.removesuffix(".xz")
        assert listed in rows, f"{folder}/{relative} is not in {folder}/MANIFEST.tsv"
        assert rows[listed]["source_repo"] and rows[listed]["source_repo_licence"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_listed_file_is_there_unchanged(folder: str) -> None:
    root = corpus_dir(folder)
    for row in manifest(folder):
        data = corpus_bytes(root / row["relative_path"])  # an .xz copy must decompress to the original
        assert len(data) == int(row["size_bytes"]), row["relative_path"]
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["relative_path"]


def test_corpora_in_the_repository_stay_small() -> None:
    files = [p for p in IN_REPO_DATA.rglob("*") if p.is_file()]
    assert len(files) > 100  # the subset is there at all
    assert sum(p.stat().st_size for p in files) < 5_000_000


def test_corpora_default_to_the_repository_and_the_variable_points_elsewhere(tmp_path) -> None:
    code = "from tests.unit._data import CORPORA; print(CORPORA)"
    env = {k: v for k, v in os.environ.items() if k != DATA_ENV}
    run = [sys.executable, "-c", code]
    default = subprocess.run(run, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert Path(default.stdout.strip()) == IN_REPO_DATA / "corpora"
    env[DATA_ENV] = str(tmp_path / "shared" / "data")
    elsewhere = subprocess.run(run, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert Path(elsewhere.stdout.strip()) == tmp_path / "shared" / "data" / "corpora"
