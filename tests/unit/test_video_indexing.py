"""Videos in the library: frames through CLIP, the sound track through Whisper, results at the second."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from engine.ingest import thumbnail_path
from engine.library import Library
from engine.models.whisper import Segment, Transcript
from engine.query import Filters
from engine.settings import load_settings
from tests.conftest import TINY_ENV
from tests.media import make_sound_only_video, make_video

SPOKEN = [(1.0, "Welcome to the harbour."), (7.0, "The ferry to the lighthouse leaves at noon.")]


class ScheduledWhisper:
    """Hears what the test video says, where it says it: checks the plumbing from sound track to result.

    The samples it is given must be the video's whole sound track at 16 kHz.
    """

    def __init__(self, inner, schedule, duration):
        self.inner = inner
        self.schedule = schedule
        self.duration = duration
        self.heard: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def transcribe(self, samples: np.ndarray, *, should_cancel=None) -> Transcript:
        self.heard.append(len(samples))
        segments = [
            Segment(start, min(start + 3.0, self.duration), text)
            for start, text in self.schedule
            if start < len(samples) / 16_000
        ]
        return Transcript("en", segments)


@pytest.fixture
def video_folder(tmp_path):
    root = tmp_path / "clips"
    make_video(
        root / "harbour trip.mp4",
        [((200, 40, 40), 4.0), ((40, 40, 200), 4.0), ("LIGHTHOUSE", 4.0)],
        speech=SPOKEN,
        created=datetime(2025, 8, 2, 10, 0),
    )
    return root


def test_a_video_is_found_by_what_is_said_and_opens_at_that_second(tmp_path, video_folder, tiny_clip, tiny_text):
    heard = ScheduledWhisper(None, SPOKEN, 12.0)
    settings = load_settings(home=tmp_path / "lib", env=dict(TINY_ENV, SHOEBOX_HOME=str(tmp_path / "lib")))
    with Library(settings, clip=tiny_clip, whisper=heard, text_model=tiny_text) as library:
        summary = library.index([video_folder])
        assert summary.failed == [] and summary.added == 1
        path = str(video_folder / "harbour trip.mp4")
        row = library.store.get_file(path)
        assert row is not None and row.kind == "video"
        assert row.meta["duration"] == pytest.approx(12.0, abs=0.2)
        # The whole sound track went to Whisper, once.
        assert len(heard.heard) == 1 and heard.heard[0] / 16_000 == pytest.approx(12.0, abs=0.3)
        # Frames: the first and one per scene at least, each with its time, each with a CLIP vector.
        details = library.store.item_details(library.store.item_ids_of(path))
        frames = sorted(d["locator"]["start"] for d in details.values() if d["modality"] == "image")
        assert frames[0] == 0.0 and any(3.5 <= t <= 4.5 for t in frames) and any(7.5 <= t <= 8.5 for t in frames)
        assert library.store.files_missing_vectors("clip") == []
        assert thumbnail_path(settings.thumbnails_dir, row.content_hash or "").exists()
        assert library.store.stats()["files"]["video"] == 1

        response = library.search("ferry to the lighthouse", min_relevance=0)
        best = response.results[0]
        assert (best.path, best.kind, best.modality) == (path, "video", "speech")
        assert best.locator["start"] == pytest.approx(7.0, abs=1.0)
        # Photos-only filters still reach videos' pictures; "video" filters find it.
        only_videos = library.search("harbour", filters=Filters(kinds=("video",)), min_relevance=0)
        assert [r.path for r in only_videos.results] == [path]


def test_an_mp4_without_a_picture_is_a_recording(tmp_path, tiny_clip, tiny_text, tiny_whisper):
    root = tmp_path / "memos"
    make_sound_only_video(root / "memo.mp4", "Remember the milk.")
    settings = load_settings(home=tmp_path / "lib", env=dict(TINY_ENV, SHOEBOX_HOME=str(tmp_path / "lib")))
    with Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text) as library:
        summary = library.index([root])
        assert summary.failed == []
        row = library.store.get_file(str(root / "memo.mp4"))
        assert row is not None and row.kind == "audio"


def test_a_broken_video_fails_with_a_reason(tmp_path, library):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "cut.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    summary = library.index([root])
    assert [f["path"] for f in summary.failed] == [str(root / "cut.mp4")]
    reason = summary.failed[0]["reason"]
    assert "Traceback" not in reason and len(reason) < 300 and reason[0].isalpha()
    assert library.store.failed_files()[0].error == reason


def test_reembedding_a_video_reads_its_frames_again(tmp_path, video_folder, tiny_clip, tiny_text):
    heard = ScheduledWhisper(None, SPOKEN, 12.0)
    settings = load_settings(home=tmp_path / "lib", env=dict(TINY_ENV, SHOEBOX_HOME=str(tmp_path / "lib")))
    with Library(settings, clip=tiny_clip, whisper=heard, text_model=tiny_text) as library:
        library.index([video_folder])
        before = library.store.count_items("clip")
        summary = library.reembed(space="clip")
        assert summary.failed == [] and summary.reembedded == 1
        assert library.store.count_items("clip") == before


def test_stopping_while_whisper_listens_records_no_failure(tmp_path, tiny_clip, tiny_text, tiny_whisper):
    from engine.errors import Cancelled
    from tests.helpers import make_tone

    root = tmp_path / "memos"
    make_tone(root / "a.wav", seconds=1.0)
    make_tone(root / "b.wav", seconds=1.0, freq=660.0)
    stop = {"now": False}

    class StoppedWhisper:
        """The person presses Cancel while the first recording is being transcribed."""

        def __getattr__(self, name):
            return getattr(tiny_whisper, name)

        def transcribe(self, samples, *, should_cancel=None):
            stop["now"] = True
            assert should_cancel is not None and should_cancel()
            raise Cancelled("stopped")

    settings = load_settings(home=tmp_path / "lib", env=dict(TINY_ENV, SHOEBOX_HOME=str(tmp_path / "lib")))
    with Library(settings, clip=tiny_clip, whisper=StoppedWhisper(), text_model=tiny_text) as library:
        summary = library.index([root], should_cancel=lambda: stop["now"])
        assert summary.cancelled and summary.failed == [] and summary.added == 0
        assert library.store.failed_files() == []
    with Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text) as library:
        assert library.index([root]).added == 2
