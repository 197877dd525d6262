"""Index the real-world test corpora: broken files are failed with a reason, the rest indexed.

The corpora (tests/data/corpora, or the full shared set named by SHOEBOX_SHARED_DATA) hold real
photos, PDFs, recordings and text files from public repositories, many of them broken on purpose.
Indexing all of them must never crash.
"""

from __future__ import annotations

import pytest

from engine.store import Filters
from tests.unit._data import CORPORA, corpus_dir, flagged_broken, manifest

FOLDERS = ("images", "pdfs", "audio", "text")

# Flagged in a manifest, yet readable: the damage is outside the data Shoebox needs.
RECOVERABLE = {
    "images/decompression_bomb_extents.gif",  # only the oversized second frame is a bomb
    "pdfs/issue-297.pdf",  # broken xref table: pypdf rebuilds it
    "pdfs/selenium-pypdf-issue-177.pdf",  # NUL padding after %%EOF
}

# Not flagged as broken, but Shoebox cannot take anything from them, and says why.
UNREADABLE = {
    "images/ultrahdr.jpg": "truncated",  # ends right after its start-of-scan marker
    "images/bmp/b/shortfile.bmp": "truncated",  # bmpsuite "bad", described in lower case
    "pdfs/encryption/r4-aes-user-password.pdf": "password",
    "pdfs/encryption/r6-both-passwords.pdf": "password",
    "pdfs/libreoffice-writer-password.pdf": "password",
    "pdfs/encrypted-file.pdf": "password",
    "pdfs/crazyones-encrypted-256.pdf": "password",
    "pdfs/imagemagick-CCITTFaxDecode.pdf": "no text layer",  # a 16-pixel fax image, nothing to recognise
    "audio/test.m4a": "no audio samples",
}


@pytest.fixture(scope="module")
def corpora_run(tmp_path_factory):
    for folder in FOLDERS:
        corpus_dir(folder)
    from engine.library import Library
    from engine.settings import load_settings
    from tests.conftest import TINY_ENV

    with Library(load_settings(home=tmp_path_factory.mktemp("corpora-home"), env=dict(TINY_ENV))) as library:
        summary = library.index([CORPORA / f for f in FOLDERS])
        rows = {}
        for folder in FOLDERS:
            for row in library.store.files_under(str(CORPORA / folder)):
                rows[str(row.path)[len(str(CORPORA)) + 1 :]] = row
        stats = library.store.stats()
        integrity = library.store.integrity_check()
        hits = library.search(image=CORPORA / "images" / "flower.jpg", k=5, filters=Filters(kinds=("image",))).results
    return summary, rows, stats, integrity, hits


def _supported(relative: str) -> bool:
    from engine.extractors import kind_for_path

    return kind_for_path(relative) is not None


def test_run_completes_and_database_is_sound(corpora_run):
    summary, rows, stats, integrity, _ = corpora_run
    assert integrity == "ok"
    assert not summary.cancelled
    # Every file of a supported type in the manifests was seen, and all but the failed ones indexed.
    listed = {f"{folder}/{r['relative_path']}" for folder in FOLDERS for r in manifest(folder)}
    assert set(rows) == {path for path in listed if _supported(path)}
    indexed = [path for path, row in rows.items() if row.status == "indexed"]
    assert sum(stats["files"].values()) == len(indexed)
    assert stats["files"]["image"] > 40 and stats["files"]["document"] > 20 and stats["files"]["audio"] > 15


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_flagged_broken_file_is_failed_with_a_reason(corpora_run, folder):
    _, rows, _, _, _ = corpora_run
    flagged = [r["relative_path"] for r in manifest(folder) if flagged_broken(r)]
    for rel in flagged:
        path = f"{folder}/{rel}"
        if not _supported(path) or path in RECOVERABLE:
            continue
        row = rows[path]
        assert row.status == "failed", f"{path} is broken but was indexed"
        assert row.error and "Traceback" not in row.error and len(row.error) < 300


def test_recoverable_files_are_indexed(corpora_run):
    _, rows, _, _, _ = corpora_run
    for path in RECOVERABLE:
        assert rows[path].status == "indexed", (path, rows[path].error)


def test_exactly_the_unreadable_files_fail(corpora_run):
    _, rows, _, _, _ = corpora_run
    broken = {f"{folder}/{r['relative_path']}" for folder in FOLDERS for r in manifest(folder) if flagged_broken(r)}
    failed = {path for path, row in rows.items() if row.status == "failed"}
    unexpected = {path: rows[path].error for path in failed - broken - set(UNREADABLE)}
    assert unexpected == {}
    for path, words in UNREADABLE.items():
        assert rows[path].status == "failed" and words in rows[path].error, (path, rows[path].error)


def test_summary_lists_every_failure(corpora_run):
    summary, rows, _, _, _ = corpora_run
    assert {f["path"] for f in summary.failed} == {str(CORPORA / p) for p, r in rows.items() if r.status == "failed"}


def test_a_real_photo_finds_itself(corpora_run):
    *_, hits = corpora_run
    assert len(hits) == 5 and all(h.kind == "image" for h in hits)
    assert hits[0].path == str(CORPORA / "images" / "flower.jpg")
