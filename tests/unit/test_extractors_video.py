"""Videos: the frames chosen (first, scene changes, one every few seconds), rotation, time, sound, and bad files."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import ExtractionError, NoPictureError
from engine.extractors import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, kind_for_path
from engine.extractors.audio import SAMPLE_RATE
from engine.extractors.video import extract_video, video_poster, video_sound
from tests.media import make_sound_only_video, make_video

RED, GREEN, BLUE, BLACK = (230, 20, 20), (20, 200, 40), (20, 40, 230), (0, 0, 0)


def colour_of(image: Image.Image) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0))


def near(colour: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 20) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


@pytest.fixture(scope="module")
def spoken_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("video")
    return make_video(
        folder / "holiday.mp4",
        [(RED, 3.0), ("Hello beach", 3.0), (BLUE, 5.0)],
        speech=[(0.5, "the plumber fixed the boiler"), (6.5, "we walked along the beach")],
        created=datetime(2021, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
    )


def test_the_first_frame_each_scene_change_and_a_frame_every_few_seconds(spoken_clip):
    video = extract_video(spoken_clip, every_s=4.0)
    assert video.meta["sampling"] == "keyframes"  # one keyframe a second, as phone cameras write
    times = [frame.time_s for frame in video.frames]
    # 0: the first frame; 3 and 6: the cuts; 10: four seconds into the last scene.
    assert times == pytest.approx([0.0, 3.0, 6.0, 10.0], abs=0.05)
    colours = [colour_of(frame.image) for frame in video.frames]
    assert near(colours[0], RED) and near(colours[2], BLUE) and near(colours[3], BLUE)
    assert not near(colours[1], RED) and not near(colours[1], BLUE)  # the text scene
    assert video.duration == pytest.approx(11.0, abs=0.05)
    assert (video.width, video.height) == (320, 240)
    assert all(frame.image.size == (320, 240) and frame.image.mode == "RGB" for frame in video.frames)
    assert video.has_audio and video.meta["audio_codec"] == "aac"
    assert video.meta["codec"] in ("h264", "mpeg4")


def test_frames_are_never_larger_than_asked(spoken_clip):
    video = extract_video(spoken_clip, max_side=100)
    assert all(max(frame.image.size) == 100 for frame in video.frames)
    assert (video.width, video.height) == (320, 240)  # the video's own size is still reported


def test_sparse_keyframes_are_decoded_in_order_and_still_find_the_cuts(tmp_path):
    # The encoder's default: a keyframe every 10 s (more than the interval), so every frame is decoded.
    path = make_video(tmp_path / "screen.mkv", [(GREEN, 2.5), (RED, 2.5), (BLUE, 6.0)], keyframe_every_s=None)
    video = extract_video(path, every_s=4.0)
    assert video.meta["sampling"] == "sequential"
    times = [frame.time_s for frame in video.frames]
    assert times[:3] == pytest.approx([0.0, 2.5, 5.0], abs=0.3)  # a frame is looked at every 0.25 s
    assert len(times) == 4 and times[3] == pytest.approx(times[2] + 4.0, abs=0.3)
    assert [near(colour_of(f.image), c) for f, c in zip(video.frames, (GREEN, RED, BLUE, BLUE), strict=True)] == [
        True
    ] * 4
    assert not video.has_audio and video.media_time is None


def test_a_still_video_gets_one_frame_per_interval(tmp_path):
    path = make_video(tmp_path / "still.mp4", [(GREEN, 12.0)])
    assert [f.time_s for f in extract_video(path, every_s=3.0).frames] == pytest.approx([0, 3, 6, 9], abs=0.05)


def test_never_more_frames_than_asked_and_the_first_always_kept(tmp_path):
    scenes = [((40 * i % 255, 255 - 30 * i % 255, 90 * i % 255), 1.5) for i in range(10)]
    path = make_video(tmp_path / "many.mp4", scenes)
    every = extract_video(path, every_s=100.0)
    assert len(every.frames) == 10  # each cut found
    few = extract_video(path, every_s=100.0, max_frames=4)
    assert len(few.frames) == 4 and few.frames[0].time_s == 0.0
    assert [f.time_s for f in few.frames] == sorted(f.time_s for f in few.frames)


def test_a_long_video_widens_the_interval_to_stay_within_max_frames(tmp_path):
    path = make_video(tmp_path / "long.mp4", [(GREEN, 20.0)])
    video = extract_video(path, every_s=1.0, max_frames=5)
    assert [f.time_s for f in video.frames] == pytest.approx([0, 4, 8, 12, 16], abs=0.05)


def test_a_phone_video_held_upright_is_turned_as_a_player_shows_it(tmp_path):
    # Stored landscape with a red band along the top; the display matrix turns it a quarter clockwise
    # (as a phone held upright writes it), so the band is on the right of the portrait picture.
    stored = np.full((240, 320, 3), 200, np.uint8)
    stored[:40] = RED
    path = make_video(tmp_path / "IMG_0042.MOV", [(Image.fromarray(stored), 2.0)], rotation=-90)
    video = extract_video(path)
    assert video.meta["rotation"] == 270  # counter-clockwise
    assert (video.width, video.height) == (240, 320)
    picture = np.asarray(video.frames[0].image).astype(int)
    assert picture.shape == (320, 240, 3)
    assert near(tuple(picture[:, -20:].reshape(-1, 3).mean(axis=0).astype(int)), RED, 30)
    assert near(tuple(picture[:, :100].reshape(-1, 3).mean(axis=0).astype(int)), (200, 200, 200), 10)


def test_media_time_is_the_creation_time_in_local_time(spoken_clip, tmp_path):
    expected = datetime(2021, 5, 6, 7, 8, 9, tzinfo=timezone.utc).astimezone().replace(tzinfo=None)
    assert extract_video(spoken_clip).media_time == expected
    unset = make_video(tmp_path / "unset.mp4", [(RED, 1.0)], created=datetime(1970, 1, 1, tzinfo=timezone.utc))
    assert extract_video(unset).media_time is None  # an unset camera clock is not a time


def test_the_sound_track_decodes_to_the_length_of_the_video(spoken_clip):
    sound = video_sound(spoken_clip)
    assert sound is not None
    assert sound.duration == pytest.approx(11.0, abs=0.1)
    assert sound.samples.dtype == np.float32 and sound.meta["codec"] == "aac"
    # The speech is where it was put: loud at 0.5 s and 6.5 s, silent before and in between.
    loud = [float(np.abs(sound.samples[round(t * SAMPLE_RATE) : round((t + 0.5) * SAMPLE_RATE)]).max()) for t in
            (0.0, 0.6, 4.8, 6.6)]  # fmt: skip
    assert loud[0] < 0.02 and loud[1] > 0.05 and loud[2] < 0.02 and loud[3] > 0.05
    assert video_sound(spoken_clip, max_seconds=2.0).duration == pytest.approx(2.0, abs=0.01)  # type: ignore[union-attr]


def test_a_video_without_sound_has_no_sound_track(tmp_path):
    assert video_sound(make_video(tmp_path / "quiet.mp4", [(RED, 1.0)])) is None


def test_the_poster_is_the_first_frame_that_is_not_black(tmp_path):
    path = make_video(tmp_path / "fade.mp4", [(BLACK, 1.0), (GREEN, 3.0)])
    video = extract_video(path)
    assert near(colour_of(video.frames[0].image), BLACK)
    poster = video.poster()
    assert near(colour_of(poster.image), GREEN) and poster.time_s == pytest.approx(1.0, abs=0.05)
    # The same picture without choosing all the frames (a thumbnail the window makes itself).
    quick = video_poster(path, max_side=160)
    assert quick.size == (160, 120) and near(colour_of(quick), GREEN)
    upright = make_video(tmp_path / "upright.mp4", [(RED, 1.0)], rotation=-90)
    assert video_poster(upright, max_side=160).size == (120, 160)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"x" * 999)
    with pytest.raises(ExtractionError, match="not a video file"):
        video_poster(garbage)


def test_a_file_with_only_sound_says_it_has_no_picture(tmp_path):
    path = make_sound_only_video(tmp_path / "voice-memo.mp4", "hello")
    with pytest.raises(NoPictureError, match="no picture, only sound"):
        extract_video(path)
    assert video_sound(path) is not None  # what a caller indexes instead


def _faststart_copy(source: Path, dest: Path) -> Path:
    """The same MP4 with its index (moov) first, as web and phone exports write it."""
    import av

    with av.open(str(source)) as src, av.open(str(dest), "w", options={"movflags": "+faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return dest


@pytest.mark.parametrize(
    ("name", "damage", "reason"),
    [
        ("empty.mp4", lambda data: b"", "file is empty (0 bytes)"),
        ("notes.mp4", lambda data: b"These are my notes, not a film.\n" * 40, "not a video file, or too damaged"),
        ("noise.mkv", lambda data: bytes(range(256)) * 40, "not a video file, or too damaged"),
        ("cut.mp4", lambda data: data[: len(data) // 2], "its index (the 'moov' box) is missing"),
        ("unknown.mp4", lambda data: data.replace(b"avc1", b"zzzz").replace(b"mp4v", b"zzzz"),
         "coded in a format Shoebox cannot decode"),
    ],
)  # fmt: skip
def test_broken_files_say_why_in_words(tmp_path, spoken_clip, name, damage, reason):
    path = tmp_path / name
    path.write_bytes(damage(spoken_clip.read_bytes()))
    with pytest.raises(ExtractionError) as error:
        extract_video(path)
    assert reason in str(error.value)
    assert "Traceback" not in str(error.value) and "Errno" not in str(error.value)


def test_a_video_cut_short_after_its_index_says_how_much_is_there(tmp_path, spoken_clip):
    whole = _faststart_copy(spoken_clip, tmp_path / "whole.mp4")
    assert extract_video(whole).duration == pytest.approx(11.0, abs=0.05)
    cut = tmp_path / "copy-stopped.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.5)])
    with pytest.raises(ExtractionError, match=r"video file is truncated: only \d+\.\d s of 11\.0 s are present"):
        extract_video(cut)


def test_a_missing_file_is_named_as_missing(tmp_path):
    with pytest.raises(ExtractionError, match="file not found"):
        extract_video(tmp_path / "gone.mp4")
    with pytest.raises(ExtractionError, match="file not found"):
        video_sound(tmp_path / "gone.mp4")


def test_video_names_are_videos_and_m4a_stays_audio():
    assert kind_for_path("/films/Holiday.MP4") == "video"
    assert {kind_for_path(f"a{ext}") for ext in (".mov", ".mkv", ".webm", ".avi", ".3gp", ".mts", ".m4v")} == {"video"}
    assert kind_for_path("song.m4a") == "audio" and ".m4a" in AUDIO_EXTENSIONS
    assert kind_for_path("app.ts") is None  # TypeScript far more often than a transport stream
    assert not VIDEO_EXTENSIONS & AUDIO_EXTENSIONS


def test_every_listed_container_is_one_pyav_can_open():
    import av

    demuxers = {
        ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".qt": "mov", ".mkv": "matroska", ".webm": "webm",
        ".avi": "avi", ".wmv": "asf", ".asf": "asf", ".3gp": "3gp", ".3g2": "3g2", ".mts": "mpegts",
        ".m2ts": "mpegts", ".mpg": "mpeg", ".mpeg": "mpeg", ".vob": "mpeg", ".ogv": "ogg", ".flv": "flv",
        ".dv": "dv", ".mxf": "mxf",
    }  # fmt: skip
    assert set(demuxers) == VIDEO_EXTENSIONS
    assert {name for name in demuxers.values() if name not in av.formats_available} == set()


def test_the_poster_at_a_second_shows_that_scene(tmp_path):
    path = make_video(tmp_path / "scenes.mp4", [((220, 30, 30), 4.0), ((30, 30, 220), 4.0)], keyframe_every_s=1.0)
    first = np.asarray(video_poster(path, max_side=64)).reshape(-1, 3).mean(axis=0)
    later = np.asarray(video_poster(path, max_side=64, at_s=5.0)).reshape(-1, 3).mean(axis=0)
    assert first[0] > 150 > first[2]  # red: the first scene
    assert later[2] > 150 > later[0]  # blue: the scene at 5 s
