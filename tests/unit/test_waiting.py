"""Indexing before the model weights are here: what needs no model is stored at once, the rest follows."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.ingest import WAITING, approximate_tokens
from engine.library import Library
from engine.settings import load_settings
from tests.conftest import TINY_ENV
from tests.helpers import make_photo, make_text, make_tone


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "home-folder"
    make_photo(root / "harbour-sunset.jpg", seed=3, taken=datetime(2024, 7, 14, 19, 30))
    make_text(root / "notes" / "dentist.txt", "The receipt from the dentist, paid in March.\n\nA second paragraph.")
    make_tone(root / "voice-memo.wav", seconds=1.5)
    return root


def _bare_library(home) -> Library:
    """A library whose configured models have no weights on this computer (nothing may be downloaded)."""
    return Library(load_settings(home=home, env={"SHOEBOX_HOME": str(home)}))


def test_indexing_without_weights_stores_what_needs_no_model(offline_caches, tmp_path, folder):
    with _bare_library(tmp_path / "lib") as library:
        summary = library.index([folder])
        assert summary.failed == []
        assert summary.added == 3
        assert summary.waiting == {"clip": 1, "text": 1, "speech": 1}
        # Each model waited for gets one line: what works now, what follows, and why it is not here.
        lines = {w.split(":")[0]: w for w in summary.warnings}
        assert lines.keys() >= {"1 photo or video", "1 recording or video", "1 file"}
        photo_line = lines["1 photo or video"]
        assert (
            "found by its name, date and any text in it now, by what it shows once the CLIP model is set up"
            in photo_line
        )
        assert "shoebox models" in photo_line  # the model's own message says how to get it
        store = library.store
        assert store.count_waiting() == {"clip": 1, "text": 1, "speech": 1}
        assert store.stats()["waiting"] == {"clip": 1, "text": 1, "speech": 1}

        # Keyword search works at once: document words, file names, and the photo's EXIF date.
        response = library.search("dentist receipt")
        assert response.keywords_only
        assert [r.path for r in response.results][:1] == [str(folder / "notes" / "dentist.txt")]
        assert [r.path for r in library.search("harbour sunset").results][:1] == [str(folder / "harbour-sunset.jpg")]
        assert [r.path for r in library.search("voice memo").results][:1] == [str(folder / "voice-memo.wav")]
        photo = store.get_file(str(folder / "harbour-sunset.jpg"))
        assert photo is not None and photo.meta[WAITING] == ["clip"]
        assert datetime.fromtimestamp(photo.media_time or 0).date() == datetime(2024, 7, 14).date()
        # Nothing has vectors yet.
        assert store.model_identity("clip") is None and store.model_identity("text") is None


def test_the_models_arrive_and_waiting_files_are_finished_without_reading_documents_again(
    offline_caches, tmp_path, folder, tiny_clip, tiny_whisper, tiny_text, monkeypatch
):
    home = tmp_path / "lib"
    with _bare_library(home) as library:
        library.index([folder])

    import engine.extractors.documents as documents
    import engine.extractors.images as images

    reads: list[str] = []
    real_extract_image = images.extract_image

    def counting_extract_image(path, *args, **kwargs):
        reads.append(str(path))
        return real_extract_image(path, *args, **kwargs)

    def no_document_reads(*args, **kwargs):
        raise AssertionError("a document's passages are embedded from the text the library keeps")

    monkeypatch.setattr(images, "extract_image", counting_extract_image)
    monkeypatch.setattr(documents, "extract_document", no_document_reads)

    settings = load_settings(home=home, env=dict(TINY_ENV, SHOEBOX_HOME=str(home)))
    with Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text) as library:
        assert library.has_waiting()
        summary = library.finish_waiting()
        assert summary.completed == 3, summary.warnings
        assert reads == [str(folder / "harbour-sunset.jpg")]  # the photo is read once more, for CLIP
        store = library.store
        assert store.count_waiting() == {}
        assert not library.has_waiting()
        assert store.files_missing_vectors("text") == []
        assert store.files_missing_vectors("clip") == []
        memo = store.get_file(str(folder / "voice-memo.wav"))
        assert memo is not None and WAITING not in memo.meta and "segments" in memo.meta
        # Meaning search now runs: the query is embedded, not matched by words only.
        response = library.search("a sunset over the harbour", min_relevance=0)
        assert not response.keywords_only
        assert str(folder / "harbour-sunset.jpg") in [r.path for r in response.results]


def test_a_later_index_run_finishes_waiting_files(offline_caches, tmp_path, folder, tiny_clip, tiny_whisper, tiny_text):
    home = tmp_path / "lib"
    with _bare_library(home) as library:
        library.index([folder])
    settings = load_settings(home=home, env=dict(TINY_ENV, SHOEBOX_HOME=str(home)))
    with Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text) as library:
        summary = library.index([folder])
        assert summary.unchanged == 3 and summary.completed == 3
        assert library.store.count_waiting() == {}


def test_approximate_tokens_are_generous():
    assert approximate_tokens("") == 0
    assert approximate_tokens("the cat sat") == 3
    # A long rare word counts as several pieces; punctuation counts.
    assert approximate_tokens("antidisestablishmentarianism.") >= 8
    # Every Hangul syllable and CJK ideograph counts as one.
    assert approximate_tokens("치과 영수증") == 5
    assert approximate_tokens("東京駅") == 3
