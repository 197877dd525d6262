"""Ingestion with the test-tiny models: scan, compare, extract, encode, store."""

from __future__ import annotations

import itertools
import os
import shutil
from datetime import datetime

import pytest
from PIL import Image

from engine.errors import UsageError
from engine.ingest import Indexer, content_hash, thumbnail_path
from engine.store import Filters
from tests.helpers import CountingModels, make_photo, make_text, make_tone, pillow_heif_missing

from ._data import corpus_dir

LONG_TEXT = " ".join(
    f"Paragraph {n} of the household notes talks about the dentist appointment, the passport renewal "
    f"and the insurance letter that arrived on day {n}."
    for n in range(30)
)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "files"
    make_photo(root / "photos" / "beach.jpg", 1, taken=datetime(2021, 7, 14, 10, 30))
    make_photo(root / "photos" / "forest.png", 2)
    make_photo(root / "photos" / "2023" / "party.webp", 3)
    make_text(root / "docs" / "notes.txt", LONG_TEXT)
    make_text(
        root / "docs" / "한국어 메모.txt",
        "여권 갱신 신청서를 다음 주에 제출해야 합니다. 치과 예약은 목요일입니다.",
        "cp949",
    )
    make_text(root / "docs" / "readme.md", "# Garden\n\nThe tomatoes need water every morning.")
    return root


@pytest.fixture
def indexer(library):
    def make(models=None, **kw):
        """An indexer with the library's models, or with counting ones (:class:`CountingModels`)."""
        clip = models.clip if models is not None else library.clip
        text = models.text if models is not None else library.text_model
        return Indexer(
            library.store,
            clip,
            library.whisper,
            text=text,
            thumbnails_dir=library.settings.thumbnails_dir,
            batch_size=4,
            **kw,
        )

    return make


@pytest.fixture
def counting(library):
    return CountingModels(library.clip, library.text_model)


def test_index_a_folder(folder, indexer, library):
    summary = indexer().index([folder])
    assert summary.failed == []
    assert (summary.added, summary.updated, summary.moved, summary.removed) == (6, 0, 0, 0)
    stats = library.store.stats()
    assert stats["files"] == {"image": 3, "document": 3, "audio": 0, "video": 0}
    assert stats["items"] > 6  # the long note is several chunks
    assert library.store.integrity_check() == "ok"
    assert library.store.roots() == [str(folder)]


def test_second_run_changes_nothing_and_encodes_nothing(folder, indexer, counting):
    indexer().index([folder])
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


def test_rename_and_move_keep_vectors_without_encoding(folder, indexer, library, counting):
    indexer().index([folder])
    old = library.store.get_file(str(folder / "docs" / "notes.txt"))
    (folder / "archive").mkdir()
    shutil.move(folder / "docs" / "notes.txt", folder / "archive" / "household.txt")
    os.rename(folder / "photos" / "beach.jpg", folder / "photos" / "holiday.jpg")
    summary = indexer(counting).index([folder])
    assert (summary.moved, summary.added, summary.removed) == (2, 0, 0)
    assert counting.images == 0 and counting.texts == 0
    moved = library.store.get_file(str(folder / "archive" / "household.txt"))
    assert moved.id == old.id
    assert library.store.get_file(str(folder / "docs" / "notes.txt")) is None


def test_move_between_separately_indexed_folders(tmp_path, indexer, library, counting):
    a, b = tmp_path / "a", tmp_path / "b"
    make_photo(a / "p.jpg", 7)
    b.mkdir()
    indexer().index([a])
    shutil.move(a / "p.jpg", b / "p.jpg")
    summary = indexer(counting).index([b])
    assert summary.moved == 1 and counting.images == 0


def test_a_copy_reuses_the_vectors(folder, indexer, library, counting):
    indexer().index([folder])
    shutil.copy(folder / "photos" / "forest.png", folder / "photos" / "forest copy.png")
    summary = indexer(counting).index([folder])
    assert summary.added == 1 and counting.images == 0
    assert library.store.stats()["files"]["image"] == 4


def test_changed_content_is_encoded_again(folder, indexer, library, counting):
    indexer().index([folder])
    make_text(folder / "docs" / "readme.md", "# Garden\n\nThe roses need pruning in March.")
    summary = indexer(counting).index([folder])
    assert summary.updated == 1 and counting.texts >= 1 and counting.images == 0
    item = library.store.first_item_of_file(str(folder / "docs" / "readme.md"))
    assert "roses" in library.store.item_details([item])[item]["text"]


def test_touched_but_identical_file_is_not_encoded(folder, indexer, counting):
    indexer().index([folder])
    path = folder / "photos" / "forest.png"
    os.utime(path, (1_700_000_000, 1_700_000_000))
    summary = indexer(counting).index([folder])
    assert summary.unchanged == 6 and counting.images == 0


def test_deleted_files_leave_the_library(folder, indexer, library):
    indexer().index([folder])
    (folder / "photos" / "forest.png").unlink()
    shutil.rmtree(folder / "docs")
    summary = indexer().index([folder])
    assert summary.removed == 4
    assert library.store.stats()["files"] == {"image": 2, "document": 0, "audio": 0, "video": 0}
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
        [root],
        on_progress=progress,
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


def test_recordings_become_timed_segments(tmp_path, indexer, library):
    root = tmp_path / "audio"
    root.mkdir()
    shutil.copy(corpus_dir("audio") / "jfk.wav", root / "jfk.wav")
    make_tone(root / "tone.wav")
    summary = indexer().index([root])
    assert summary.failed == [] and summary.added == 2
    row = library.store.get_file(str(root / "jfk.wav"))
    assert row.kind == "audio" and row.meta["duration"] == pytest.approx(11.0, abs=0.2)
    ids = library.store.allowed_item_ids(Filters(kinds=("audio",)))
    for detail in library.store.item_details(ids.tolist()).values():
        assert detail["modality"] == "speech"
        assert 0 <= detail["locator"]["start"] <= detail["locator"]["end"]


def test_documents_are_cut_into_passages_of_the_text_models_size(folder, indexer, library):
    from engine.ingest import PASSAGE_TOKENS

    indexer().index([folder])
    store = library.store
    ids = store.item_ids_of(str(folder / "docs" / "notes.txt"))
    details = store.item_details(ids)
    limit = min(PASSAGE_TOKENS, library.text_model.max_tokens)
    counts = [library.text_model.count_tokens(details[i]["text"]) for i in ids]
    assert len(ids) > 1 and max(counts) <= limit and min(counts) >= limit // 4
    spans = [(details[i]["locator"]["char_start"], details[i]["locator"]["char_end"]) for i in ids]
    assert all(b[0] < a[1] for a, b in itertools.pairwise(spans))  # consecutive passages overlap
    # Passages are in the text space, photos in the clip space.
    assert store.count_items("text") == len(store.item_catalog(space="text")[0]) >= 3
    assert store.count_items("clip") == 3
    assert store.model_identity("text") == {"name": "test-tiny", "weights": "seed0", "dim": library.text_model.dim}


def test_a_recording_keeps_what_whisper_heard_and_is_searched_in_passages(tmp_path, indexer, library):
    make_tone(tmp_path / "rec" / "memo.wav", seconds=2.0)
    indexer().index([tmp_path / "rec"])
    row = library.store.get_file(str(tmp_path / "rec" / "memo.wav"))
    segments = library.store.transcript(row.id)
    assert len(segments) == row.meta["segments"]
    items = library.store.item_details(library.store.item_ids_of(row.path))
    for item in items.values():  # every passage spans whole segments
        assert item["modality"] == "speech"
        assert item["locator"]["start"] in [s.start_s for s in segments]
        assert item["locator"]["end"] in [s.end_s for s in segments]


def test_a_library_from_before_two_spaces_is_filled_on_the_next_run(tmp_path, tiny_clip, tiny_whisper, tiny_text):
    from engine.library import Library
    from engine.settings import load_settings
    from tests.conftest import TINY_ENV
    from tests.helpers import make_v2_library

    root = tmp_path / "files"
    note = make_text(root / "notes.txt", LONG_TEXT)
    home = tmp_path / "home"
    home.mkdir()
    st = os.stat(note)
    make_v2_library(
        home / "library.sqlite3",
        [str(root)],
        [
            {
                "path": str(note),
                "kind": "document",
                "size": st.st_size,
                "mtime": st.st_mtime,
                "items": [("text", LONG_TEXT[:200], None, None), ("text", LONG_TEXT[180:400], None, None)],
            },
            {
                "path": str(root / "gone.wav"),
                "kind": "audio",
                "size": 1,
                "mtime": 1.0,  # the file is gone now
                "items": [("speech", "call the plumber", 0.0, 2.0), ("speech", "about the boiler", 2.0, 4.0)],
            },
        ],
        dim=tiny_clip.dim,
    )
    settings = load_settings(home=home, env=dict(TINY_ENV))
    with Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text) as lib:
        assert len(lib.store.files_missing_vectors("text")) == 2
        # Before any model runs, passages are found by their words.
        assert [r.path for r in lib.search("dentist", k=3).results] == [str(note)]
        summary = lib.index([root])
        assert summary.unchanged == 1 and summary.removed == 1 and summary.reembedded == 1
        assert lib.store.files_missing_vectors("text") == []
        ids = lib.store.item_ids_of(str(note))
        assert len(ids) > 2  # cut again, for the text model
        assert lib.store.count_items("text") == len(ids)


def test_reembedding_passages_runs_no_whisper_again(tmp_path, library, monkeypatch):
    make_tone(tmp_path / "rec" / "memo.wav", seconds=2.0)
    make_text(tmp_path / "rec" / "note.txt", LONG_TEXT)
    library.index([tmp_path / "rec"])
    calls: list[int] = []
    original = library.whisper.transcribe

    def transcribe(samples):
        calls.append(1)
        return original(samples)

    monkeypatch.setattr(library.whisper, "transcribe", transcribe)
    summary = library.reembed(space="text")
    assert summary.reembedded == 2 and calls == []
    assert library.store.files_missing_vectors("text") == []
    assert library.store.count_items("clip") == 0  # photos untouched (there are none)


def test_forgetting_a_folder_removes_its_files_and_keeps_the_others(tmp_path, library):
    make_text(tmp_path / "a" / "boiler.txt", "The boiler service is due in October.")
    make_text(tmp_path / "b" / "garden.txt", "The tomatoes in the garden need water.")
    library.index([tmp_path / "a", tmp_path / "b"])
    assert library.forget_folder(str(tmp_path / "a")) == 1
    assert library.store.roots() == [str(tmp_path / "b")]
    assert [f.path for f in library.store.files_under(str(tmp_path))] == [str(tmp_path / "b" / "garden.txt")]
    assert library.search("boiler", k=3).results == []
    assert (tmp_path / "a" / "boiler.txt").exists()  # only the library forgets it


def test_rescan_brings_every_folder_up_to_date(tmp_path, library):
    a, b = tmp_path / "a", tmp_path / "b"
    make_text(a / "boiler.txt", "The boiler service is due in October.")
    make_text(a / "old.txt", "A note that will be deleted.")
    make_text(b / "garden.txt", "The tomatoes in the garden need water.")
    library.index([a, b])
    make_text(a / "dentist.txt", "The dentist appointment is on Tuesday.")  # added
    (a / "old.txt").unlink()  # deleted
    (b / "garden.txt").rename(b / "tomatoes.txt")  # moved
    summary = library.rescan()
    assert (summary.added, summary.removed, summary.moved, summary.warnings) == (1, 1, 1, [])
    assert [r.path for r in library.search("dentist", k=1).results] == [str(a / "dentist.txt")]
    assert [r.path for r in library.search("tomatoes", k=1).results] == [str(b / "tomatoes.txt")]


def test_rescan_leaves_a_folder_that_is_not_there_as_it_was(tmp_path, library):
    make_text(tmp_path / "drive" / "boiler.txt", "The boiler service is due in October.")
    make_text(tmp_path / "home" / "garden.txt", "The tomatoes in the garden need water.")
    library.index([tmp_path / "drive", tmp_path / "home"])
    (tmp_path / "drive").rename(tmp_path / "unplugged")
    summary = library.rescan()
    assert summary.removed == 0
    assert summary.warnings == [
        f"{tmp_path / 'drive'} is not there or is empty (an unplugged drive?): its files stay in the library as they were"
    ]
    assert [r.path for r in library.search("boiler", k=1).results] == [str(tmp_path / "drive" / "boiler.txt")]


def test_rescan_of_a_library_without_folders_says_what_to_do(library):
    with pytest.raises(UsageError, match="no folders yet"):
        library.rescan()


def test_an_iphone_heic_is_indexed_upright_with_its_date_and_thumbnail(tmp_path, library):
    root = tmp_path / "iphone"
    # Stored 96 x 72 and turned a quarter by its orientation, as an iPhone held upright writes it.
    heic = make_photo(root / "IMG_0042.HEIC", 21, taken=datetime(2024, 5, 3, 8, 15, 30), orientation=6)
    twin = make_photo(root / "IMG_0042 export.jpg", 21, orientation=6)  # the same picture as a JPEG
    for n in range(3):
        make_photo(root / f"other{n}.jpg", 30 + n)
    summary = library.index([root])
    assert summary.failed == [] and summary.added == 5

    row = library.store.get_file(str(heic))
    assert row.kind == "image"
    assert datetime.fromtimestamp(row.media_time) == datetime(2024, 5, 3, 8, 15, 30)
    assert row.meta["format"] == "HEIF" and row.meta["orientation"] == 6
    assert (row.meta["width"], row.meta["height"]) == (72, 96)
    thumb = thumbnail_path(library.settings.thumbnails_dir, row.content_hash)
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and im.size == (72, 96)

    by_file = library.search(image=heic, k=2).results  # `shoebox search --image IMG_0042.HEIC`
    assert by_file[0].path == str(heic) and by_file[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert by_file[1].path == str(twin)
    # "More like this" from either copy finds the other first.
    assert library.search(like=str(heic), k=2).results[0].path == str(twin)
    assert library.search(like=str(twin), k=2).results[0].path == str(heic)


def test_heic_without_pillow_heif_is_a_failure_with_the_fix_not_a_skip(tmp_path, library, monkeypatch):
    root = tmp_path / "iphone"
    heic = make_photo(root / "IMG_0043.heic", 22)
    make_photo(root / "fine.jpg", 23)
    with pillow_heif_missing(monkeypatch):
        summary = library.index([root])
    assert summary.added == 1
    assert [f["path"] for f in summary.failed] == [str(heic)]
    assert "pip install pillow-heif" in summary.failed[0]["reason"]
    assert [(f.path, f.error) for f in library.store.failed_files()] == [(str(heic), summary.failed[0]["reason"])]
    # Once the package is there, retrying the failed files indexes it.
    assert library.index([root], retry_failed=True).added == 1
