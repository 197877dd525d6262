"""Ingestion with the test-tiny models: scan, compare, extract, encode, store."""

from __future__ import annotations

import os
import shutil
from datetime import datetime

import pytest

from engine.errors import UsageError
from engine.ingest import Indexer, content_hash, thumbnail_path
from engine.store import Filters
from tests.helpers import CountingClip, make_photo, make_text, make_tone

LONG_TEXT = " ".join(
    f"Paragraph {n} of the household notes talks about the dentist appointment, the passport renewal "
    f"and the insurance letter that arrived on day {n}." for n in range(30)
)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "files"
    make_photo(root / "photos" / "beach.jpg", 1, taken=datetime(2021, 7, 14, 10, 30))
    make_photo(root / "photos" / "forest.png", 2)
    make_photo(root / "photos" / "2023" / "party.webp", 3)
    make_text(root / "docs" / "notes.txt", LONG_TEXT)
    make_text(root / "docs" / "한국어 메모.txt", "여권 갱신 신청서를 다음 주에 제출해야 합니다. 치과 예약은 목요일입니다.", "cp949")
    make_text(root / "docs" / "readme.md", "# Garden\n\nThe tomatoes need water every morning.")
    return root


@pytest.fixture
def indexer(library):
    def make(clip=None, **kw):
        return Indexer(library.store, clip or library.clip, library.whisper,
                       thumbnails_dir=library.settings.thumbnails_dir, batch_size=4, **kw)
    return make


def test_index_a_folder(folder, indexer, library):
    summary = indexer().index([folder])
    assert summary.failed == []
    assert (summary.added, summary.updated, summary.moved, summary.removed) == (6, 0, 0, 0)
    stats = library.store.stats()
    assert stats["files"] == {"image": 3, "document": 3, "audio": 0}
    assert stats["items"] > 6  # the long note is several chunks
    assert library.store.integrity_check() == "ok"
    assert library.store.roots() == [str(folder)]


def test_second_run_changes_nothing_and_encodes_nothing(folder, indexer):
    indexer().index([folder])
    counting = CountingClip(indexer().clip)
    summary = indexer(counting).index([folder])
    assert (summary.added, summary.unchanged) == (0, 6)
    assert counting.images == counting.texts == 0


def test_exif_time_becomes_media_time_else_file_time(folder, indexer, library):
    indexer().index([folder])
    beach = library.store.get_file(str(folder / "photos" / "beach.jpg"))
    assert datetime.fromtimestamp(beach.media_time) == datetime(2021, 7, 14, 10, 30)
    forest_path = folder / "photos" / "forest.png"
    forest = library.store.get_file(str(forest_path))
    assert forest.media_time == pytest.approx(os.stat(forest_path).st_mtime)


def test_thumbnails_are_cached_by_content(folder, indexer, library):
    indexer().index([folder])
    digest = content_hash(folder / "photos" / "beach.jpg")
    thumb = thumbnail_path(library.settings.thumbnails_dir, digest)
    assert thumb.is_file() and thumb.stat().st_size > 0


def test_rename_and_move_keep_vectors_without_encoding(folder, indexer, library):
    indexer().index([folder])
    old = library.store.get_file(str(folder / "docs" / "notes.txt"))
    (folder / "archive").mkdir()
    shutil.move(folder / "docs" / "notes.txt", folder / "archive" / "household.txt")
    os.rename(folder / "photos" / "beach.jpg", folder / "photos" / "holiday.jpg")
    counting = CountingClip(indexer().clip)
    summary = indexer(counting).index([folder])
    assert (summary.moved, summary.added, summary.removed) == (2, 0, 0)
    assert counting.images == 0 and counting.texts == 0
    moved = library.store.get_file(str(folder / "archive" / "household.txt"))
    assert moved.id == old.id
    assert library.store.get_file(str(folder / "docs" / "notes.txt")) is None


def test_move_between_separately_indexed_folders(tmp_path, indexer, library):
    a, b = tmp_path / "a", tmp_path / "b"
    make_photo(a / "p.jpg", 7)
    b.mkdir()
    indexer().index([a])
    shutil.move(a / "p.jpg", b / "p.jpg")
    counting = CountingClip(indexer().clip)
    summary = indexer(counting).index([b])
    assert summary.moved == 1 and counting.images == 0


def test_a_copy_reuses_the_vectors(folder, indexer, library):
    indexer().index([folder])
    shutil.copy(folder / "photos" / "forest.png", folder / "photos" / "forest copy.png")
    counting = CountingClip(indexer().clip)
    summary = indexer(counting).index([folder])
    assert summary.added == 1 and counting.images == 0
    assert library.store.stats()["files"]["image"] == 4


def test_changed_content_is_encoded_again(folder, indexer, library):
    indexer().index([folder])
    make_text(folder / "docs" / "readme.md", "# Garden\n\nThe roses need pruning in March.")
    counting = CountingClip(indexer().clip)
    summary = indexer(counting).index([folder])
    assert summary.updated == 1 and counting.texts >= 1 and counting.images == 0
    item = library.store.first_item_of_file(str(folder / "docs" / "readme.md"))
    assert "roses" in library.store.item_details([item])[item]["text"]


def test_touched_but_identical_file_is_not_encoded(folder, indexer):
    indexer().index([folder])
    path = folder / "photos" / "forest.png"
    os.utime(path, (1_700_000_000, 1_700_000_000))
    counting = CountingClip(indexer().clip)
    summary = indexer(counting).index([folder])
    assert summary.unchanged == 6 and counting.images == 0


def test_deleted_files_leave_the_library(folder, indexer, library):
    indexer().index([folder])
    (folder / "photos" / "forest.png").unlink()
    shutil.rmtree(folder / "docs")
    summary = indexer().index([folder])
    assert summary.removed == 4
    assert library.store.stats()["files"] == {"image": 2, "document": 0, "audio": 0}
    kept = library.store.allowed_item_ids(Filters())
    assert len(kept) == 2
    assert library.store._query("SELECT count(*) FROM item_vectors")[0][0] == 2


def test_bad_files_are_recorded_and_never_stop_the_batch(tmp_path, indexer, library):
    root = tmp_path / "mixed"
    make_photo(root / "good.jpg", 11)
    (root / "empty.jpg").write_bytes(b"")
    (root / "fake.png").write_text("this is text, not a picture")
    (root / "truncated.jpg").write_bytes((make_photo(tmp_path / "whole.jpg", 12)).read_bytes()[:300])
    (root / "empty.txt").write_bytes(b"")
    (root / "noise.mp3").write_bytes(os.urandom(2000))
    make_text(root / "fine.txt", "a perfectly good note about the boiler")
    summary = indexer().index([root])
    reasons = {os.path.basename(f["path"]): f["reason"] for f in summary.failed}
    assert set(reasons) == {"empty.jpg", "fake.png", "truncated.jpg", "empty.txt", "noise.mp3"}
    assert all(reason and "Traceback" not in reason for reason in reasons.values())
    assert summary.added == 2
    assert {f.path for f in library.store.failed_files()} == {f["path"] for f in summary.failed}


def test_failed_files_are_retried_only_when_asked(tmp_path, indexer):
    root = tmp_path / "r"
    (root).mkdir()
    (root / "empty.jpg").write_bytes(b"")
    assert len(indexer().index([root]).failed) == 1
    again = indexer().index([root])
    assert again.failed == [] and again.unchanged == 1
    assert len(indexer().index([root], retry_failed=True).failed) == 1


def test_explicit_unsupported_file_is_a_failure_but_folders_skip_them(tmp_path, indexer):
    root = tmp_path / "u"
    make_text(root / "program.exe", "MZ")
    make_text(root / "note.txt", "hello there")
    summary = indexer().index([root])
    assert summary.added == 1 and summary.failed == []
    summary = indexer().index([root / "program.exe"])
    assert "unsupported file type .exe" in summary.failed[0]["reason"]


def test_missing_path_is_a_usage_error(tmp_path, indexer):
    with pytest.raises(UsageError, match="no such file or folder"):
        indexer().index([tmp_path / "nope"])


def test_hidden_entries_and_symlink_loops_are_skipped(tmp_path, indexer, library):
    root = tmp_path / "h"
    make_photo(root / "visible.jpg", 21)
    make_photo(root / ".hidden.jpg", 22)
    make_photo(root / ".cache" / "x.jpg", 23)
    make_photo(root / "sub" / "deep.jpg", 24)
    os.symlink(root, root / "sub" / "loop")
    summary = indexer().index([root])
    assert summary.added == 2
    assert sorted(os.path.basename(r.path) for r in library.store.files_under(str(root))) == ["deep.jpg", "visible.jpg"]


def test_korean_file_names_and_encodings(folder, indexer, library):
    indexer().index([folder])
    item = library.store.first_item_of_file(str(folder / "docs" / "한국어 메모.txt"))
    assert "여권 갱신" in library.store.item_details([item])[item]["text"]


def test_progress_and_cancel(tmp_path, indexer, library):
    root = tmp_path / "many"
    for n in range(12):
        make_photo(root / f"p{n:02}.jpg", 100 + n)
    calls = []

    def progress(done, total, message):
        calls.append((done, total, message))

    stop_after = 5
    summary = indexer().index(
        [root], on_progress=progress,
        should_cancel=lambda: sum(1 for d, t, m in calls if m.endswith(".jpg")) >= stop_after,
    )
    assert summary.cancelled
    kept = library.store.stats()["files"]["image"]
    assert 0 < kept < 12  # finished batches are committed, the rest is not
    assert library.store.integrity_check() == "ok"
    summary = indexer().index([root])
    assert not summary.cancelled
    assert summary.added == 12 - kept and summary.unchanged == kept
    file_progress = [c for c in calls if c[2].endswith(".jpg")]
    assert file_progress[0][:2] == (1, 12)


def test_recordings_become_timed_segments(tmp_path, indexer, library, shared_data):
    root = tmp_path / "audio"
    root.mkdir()
    shutil.copy(shared_data / "corpora" / "audio" / "jfk.wav", root / "jfk.wav")
    make_tone(root / "tone.wav")
    summary = indexer().index([root])
    assert summary.failed == [] and summary.added == 2
    row = library.store.get_file(str(root / "jfk.wav"))
    assert row.kind == "audio" and row.meta["duration"] == pytest.approx(11.0, abs=0.2)
    ids = library.store.allowed_item_ids(Filters(kinds=("audio",)))
    for detail in library.store.item_details(ids.tolist()).values():
        assert detail["modality"] == "speech"
        assert 0 <= detail["locator"]["start"] <= detail["locator"]["end"]
