"""A spoken recording found by what is said in it: real Whisper base (faster-whisper) and all-MiniLM-L6-v2.

Both come from registry wheels, SHA-256 checked (tests/real_models.py); CLIP is test-tiny,
since no photo is searched.  The recording is a minute of espeak-ng speech whose sentence
start times are known from the samples (tests/speech.py).
"""

from __future__ import annotations

import pytest

from engine.library import Library
from engine.settings import load_settings
from tests.conftest import TINY_ENV
from tests.real_models import minilm_folder, whisper_base_folder
from tests.speech import spoken_recording

pytestmark = pytest.mark.real_weights

# Spoken as sentence 10 of 13, at about 39.5 s of 57 s: the second half of the recording.
SPOKEN = "The lighthouse keeper repaired the broken lamp just before the storm arrived."


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    whisper, minilm = whisper_base_folder(), minilm_folder()
    folder = tmp_path_factory.mktemp("recordings")
    recording = spoken_recording(folder / "garden-club.wav")
    (folder / "notes.txt").write_text(
        "Shopping list: flour, eggs, butter and two lemons for the cake.", encoding="utf-8"
    )
    env = {**TINY_ENV, "SHOEBOX_WHISPER_WEIGHTS": str(whisper), "SHOEBOX_TEXT_MODEL": str(minilm)}
    env["SHOEBOX_AUTOTAGS"] = "0"
    library = Library(load_settings(home=tmp_path_factory.mktemp("speech-home"), env=env))
    summary = library.index([folder])
    assert summary.failed == [] and summary.added == 2
    yield library, recording
    library.close()


def test_the_recording_is_transcribed_by_whisper_base_on_faster_whisper(indexed):
    library, recording = indexed
    assert library.whisper.backend == "faster"
    assert library.whisper.weights == "ct2:d01c3014881c"
    response = library.search("volunteers built the wooden shed in April", k=3)
    assert response.results and response.results[0].path == str(recording.path)


@pytest.mark.parametrize(
    "query",
    ["lighthouse keeper repaired the broken lamp", "someone fixed the light before the bad weather came"],
)
def test_a_phrase_spoken_in_the_second_half_finds_the_recording_at_its_second(indexed, query):
    library, recording = indexed
    spoken_at = recording.starts[recording.sentences.index(SPOKEN)]
    assert spoken_at > recording.duration / 2
    results = library.search(query, k=3).results
    assert results, query
    top = results[0]
    assert top.path == str(recording.path) and top.modality == "speech"
    # The found passage spans the second the phrase is spoken at ...
    assert top.locator["start"] <= spoken_at + 1.0 and spoken_at < top.locator["end"]
    # ... and the transcript kept in the library has the sentence within a second of it.
    heard = [s for s in library.store.transcript(top.file_id) if "lighthouse" in (s.text or "").lower()]
    assert len(heard) == 1 and abs((heard[0].start_s or 0.0) - spoken_at) <= 1.0, heard


def test_the_locator_starts_within_a_second_of_the_spoken_phrase(indexed):
    library, recording = indexed
    spoken_at = recording.starts[recording.sentences.index(SPOKEN)]
    # Found by its words: the result plays from the segment where they are said.
    top = library.search("lighthouse keeper repaired the broken lamp", k=1).results[0]
    assert abs(top.locator["start"] - spoken_at) <= 1.0, top.locator
    assert top.locator["passage"][0] <= top.locator["start"] <= top.locator["passage"][1]


def test_a_video_is_found_by_a_phrase_spoken_in_it_at_its_second(tmp_path):
    """An MP4 with three scenes and a spoken sound track (espeak-ng), through real Whisper base."""
    from tests.media import make_video

    whisper, minilm = whisper_base_folder(), minilm_folder()
    folder = tmp_path / "videos"
    make_video(
        folder / "boat trip.mp4",
        [((30, 90, 160), 6.0), ((200, 180, 90), 6.0), ((40, 140, 60), 8.0)],
        speech=[
            (0.5, "We are leaving the harbour on a sunny morning."),
            (13.0, "Look, the dolphins are swimming next to the boat."),
        ],
    )
    env = {**TINY_ENV, "SHOEBOX_WHISPER_WEIGHTS": str(whisper), "SHOEBOX_TEXT_MODEL": str(minilm)}
    env["SHOEBOX_AUTOTAGS"] = "0"
    with Library(load_settings(home=tmp_path / "home", env=env)) as library:
        summary = library.index([folder])
        assert summary.failed == [] and summary.added == 1
        top = library.search("dolphins swimming next to the boat", k=1).results[0]
        assert top.path == str(folder / "boat trip.mp4") and top.kind == "video" and top.modality == "speech"
        assert abs(top.locator["start"] - 13.0) <= 1.0, top.locator
        # Its pictures are there too: one per scene at least, each at its second.
        frames = [
            d["locator"]["start"]
            for d in library.store.item_details(library.store.item_ids_of(top.path)).values()
            if d["modality"] == "image"
        ]
        assert len(frames) >= 3 and min(frames) == 0.0
