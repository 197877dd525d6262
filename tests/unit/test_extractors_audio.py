"""Audio decoding: real speech recordings from the test corpus (tests/data) and tones made here."""

from __future__ import annotations

import json
import wave
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np
import pytest

from engine.errors import ExtractionError
from engine.extractors import AUDIO_EXTENSIONS, kind_for_path
from engine.extractors.audio import SAMPLE_RATE, DecodedAudio, decode_audio

from ._data import corpus_dir, flagged_broken, manifest

AUDIO_ROWS = manifest("audio")

# Lengths stated in the manifest (seconds) and how far the decode may differ.  Some of these
# recordings are only in the full shared corpus (SHOEBOX_SHARED_DATA), not in tests/data.
KNOWN_DURATIONS = {
    "jfk.flac": (11.0, 0.02),
    "jfk.wav": (11.0, 0.02),
    "jfk.mp3": (11.0, 0.05),
    "LDC93S1.wav": (2.925, 0.01),
    "LDC93S1_pcms16le_1_8000.wav": (2.925, 0.01),
    "LDC93S1_pcms16le_2_44100.wav": (2.925, 0.01),
    "new-home-in-the-stars-16k.wav": (3.59, 0.01),
    "ru.wav": (5.67, 0.01),
    "english.wav": (2.75, 0.01),
    "french.aiff": (2.53, 0.01),
    "chinese.flac": (0.96, 0.01),
    "audio-mono-8-bit-44100Hz.wav": (2.75, 0.01),
    "audio-mono-32-bit-44100Hz.wav": (2.75, 0.01),
    "audio-stereo-24-bit-44100Hz.flac": (2.75, 0.01),
    "audio-stereo-16-bit-44100Hz.aiff": (2.75, 0.01),
    "non_ascii_filename_äää.mp3": (5.04, 0.06),
    "test.ogg": (1.0, 0.01),
    "8khz_5s.opus": (5.0, 0.01),
    "mpeg4_with_image.m4a": (1.29, 0.15),  # AAC's priming frame is decoded too
    "alac_silence.m4a": (0.1, 0.005),
    "silence-22khz-mono-1s.wav": (1.0, 0.01),
    "flac1sMono.flac": (1.0, 0.01),
    "8bit_pcm.wav": (0.1, 0.005),
    "gsm_6_10.wav": (0.1, 0.01),
    "mono.wav": (5 / 44100, 0.0002),  # five samples: valid, only very short
    "stereo.wav": (4 / 44100, 0.0002),
}

# Every corpus file that must be refused, and a phrase the reason must contain.
EXPECTED_FAILURES = {
    "empty_file.wav": "file is empty (0 bytes)",
    "incomplete.mp3": "not an audio file PyAV can decode",
    "mp4_extended_size_truncated.m4a": "not an audio file PyAV can decode",
    "chinese_id3.mp3": "not an audio file PyAV can decode",  # 1000 bytes: the ID3 tag and no audio frame
    "test.opus": "truncated",
    "test.m4a": "no audio samples",  # headers without an mdat box
}

# The manifest says which recordings hold speech.
SPEECH = [row["relative_path"] for row in AUDIO_ROWS if row["description"].startswith("SPEECH")]


def _aligned_correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * SAMPLE_RATE / samples.size)


def _write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    if channels == 2:
        pcm = np.repeat(pcm, 2)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def _encode(path: Path, codec: str, rate: int, samples: np.ndarray, fmt: str | None = None,
            metadata: dict[str, str] | None = None, bit_rate: int | None = None) -> Path:  # fmt: skip
    with av.open(str(path), "w", format=fmt) as out:
        for key, value in (metadata or {}).items():
            out.metadata[key] = value
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _assert_whisper_ready(audio: DecodedAudio) -> None:
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    assert audio.duration == pytest.approx(audio.samples.size / SAMPLE_RATE)
    assert np.abs(audio.samples).max() <= 1.0
    json.dumps(audio.meta)


# --------------------------------------------------------------------- corpus


def test_expected_failures_cover_every_flagged_recording() -> None:
    flagged = {row["relative_path"] for row in AUDIO_ROWS if flagged_broken(row)}
    assert flagged <= set(EXPECTED_FAILURES)
    names = {row["relative_path"] for row in AUDIO_ROWS}
    assert set(EXPECTED_FAILURES) <= names  # every broken file is in the test corpus
    assert names <= set(KNOWN_DURATIONS) | set(EXPECTED_FAILURES)  # and every other file has a known length
    assert len(SPEECH) >= 5


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_broken_corpus_recording_is_refused_with_a_reason(name: str) -> None:
    with pytest.raises(ExtractionError) as info:
        decode_audio(corpus_dir("audio") / name)
    assert EXPECTED_FAILURES[name] in str(info.value)


@pytest.mark.parametrize(
    "name", [row["relative_path"] for row in AUDIO_ROWS if row["relative_path"] not in EXPECTED_FAILURES]
)
def test_corpus_recording_decodes_to_its_known_length(name: str) -> None:
    path = corpus_dir("audio") / name
    assert kind_for_path(path) == "audio"
    audio = decode_audio(path)
    _assert_whisper_ready(audio)
    expected, tolerance = KNOWN_DURATIONS[name]
    assert audio.duration == pytest.approx(expected, abs=tolerance)


@pytest.mark.parametrize("name", SPEECH)
def test_speech_is_not_decoded_as_silence(name: str) -> None:
    samples = decode_audio(corpus_dir("audio") / name).samples
    # The quietest recordings (TIMIT, chinese.flac) peak near 0.1 with RMS near 0.008.
    assert float(np.sqrt(np.mean(samples**2))) > 0.005
    assert float(np.abs(samples).max()) > 0.05


@pytest.mark.parametrize("name", ["silence-22khz-mono-1s.wav", "alac_silence.m4a"])
def test_silence_is_decoded_as_silence(name: str) -> None:
    assert float(np.abs(decode_audio(corpus_dir("audio") / name).samples).max()) < 0.001


def test_same_speech_as_wav_and_mp3_decodes_to_the_same_signal() -> None:
    folder = corpus_dir("audio")
    wav = decode_audio(folder / "jfk.wav").samples  # 16 kHz mono 16-bit
    mp3 = decode_audio(folder / "jfk.mp3").samples
    assert _aligned_correlation(wav, mp3) > 0.99


def test_telephone_rate_is_converted_like_the_original() -> None:
    folder = corpus_dir("audio")
    reference = decode_audio(folder / "LDC93S1.wav").samples  # 16 kHz
    assert _aligned_correlation(reference, decode_audio(folder / "LDC93S1_pcms16le_1_8000.wav").samples) > 0.95


@pytest.mark.parametrize("codec", ["pcm_u8", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le"])
def test_sample_widths_made_here_decode_alike(tmp_path: Path, codec: str) -> None:
    # 8-bit WAV is unsigned (silence is 128): decoded as signed, the tone would ride on a huge offset.
    audio = decode_audio(_encode(tmp_path / f"{codec}.wav", codec, 44100, _tone(1.0, 44100)))
    assert (audio.meta["codec"], audio.meta["sample_rate"]) == (codec, 44100)
    assert abs(float(audio.samples.mean())) < 0.01
    assert float(np.abs(audio.samples).max()) == pytest.approx(0.5, abs=0.03)
    assert _dominant_frequency(audio.samples) == pytest.approx(440, abs=3)


def test_original_format_is_described() -> None:
    flac = decode_audio(corpus_dir("audio") / "chinese.flac")
    assert flac.meta["codec"] == "flac"
    assert flac.meta["sample_rate"] == 48000
    assert flac.meta["channels"] == 1
    assert flac.meta["declared_duration"] == pytest.approx(0.96, abs=0.01)
    ogg = decode_audio(corpus_dir("audio") / "test.ogg")
    assert (ogg.meta["codec"], ogg.meta["sample_rate"], ogg.meta["channels"]) == ("vorbis", 44100, 2)


def test_tags_are_read() -> None:
    folder = corpus_dir("audio")
    ogg = decode_audio(folder / "test.ogg").meta["tags"]
    assert ogg["title"] == "the boss" and ogg["artist"] == "james brown" and ogg["album"] == "the boss"
    flac = decode_audio(folder / "flac1sMono.flac").meta["tags"]
    assert (flac["title"], flac["artist"], flac["album"], flac["genre"]) == ("track", "art", "alb", "Avantgarde")
    assert decode_audio(folder / "mpeg4_with_image.m4a").meta["tags"]["artist"] == "test1"
    # A year alone is a release year, not the moment of a recording.
    assert decode_audio(folder / "flac1sMono.flac").media_time is None


def test_over_full_scale_float_wav_is_clipped_into_range(tmp_path: Path) -> None:
    loud = np.where(np.arange(44100) % 200 < 100, 1.75, -1.75).astype(np.float32)  # a float WAV may exceed 1
    audio = decode_audio(_encode(tmp_path / "loud.wav", "pcm_f32le", 44100, loud))
    assert np.abs(audio.samples).max() == pytest.approx(1.0)
    # The corpus file with such values: ±1.75 in opposite channels, 4 frames.
    tiny = decode_audio(corpus_dir("audio") / "stereo.wav")
    assert tiny.samples.size >= 1 and np.abs(tiny.samples).max() <= 1.0


def test_stereo_is_averaged_not_boosted(tmp_path: Path) -> None:
    # FFmpeg's own stereo-to-mono mix is (L + R) / sqrt(2): +3 dB, clipping loud files.
    tone = _tone(1.0, 16000) * 1.6  # peak 0.8 in both channels
    audio = decode_audio(_write_wav(tmp_path / "stereo.wav", tone, 16000, channels=2))
    assert float(np.abs(audio.samples).max()) == pytest.approx(0.8, abs=0.01)


# --------------------------------------------------------------------- made here


def test_wav_made_with_the_wave_module(tmp_path: Path) -> None:
    path = _write_wav(tmp_path / "tone.wav", _tone(1.0, 22050), 22050, channels=2)
    audio = decode_audio(path)
    _assert_whisper_ready(audio)
    assert audio.duration == pytest.approx(1.0, abs=0.005)
    assert _dominant_frequency(audio.samples) == pytest.approx(440, abs=3)
    assert float(np.abs(audio.samples).max()) == pytest.approx(0.5, abs=0.03)
    assert audio.meta["channels"] == 2 and audio.meta["sample_rate"] == 22050


@pytest.mark.parametrize(
    ("name", "codec", "rate", "fmt", "bit_rate"),
    [
        ("tone.mp3", "libmp3lame", 44100, None, None),
        ("tone.opus", "libopus", 48000, "ogg", None),
        ("tone.ogg", "libopus", 48000, "ogg", None),
        ("tone.m4a", "aac", 44100, "ipod", None),
        ("tone.flac", "flac", 22050, None, None),
        ("tone.wma", "wmav2", 44100, "asf", 64000),
    ],
)
def test_compressed_formats_made_with_pyav(tmp_path: Path, name: str, codec: str, rate: int, fmt, bit_rate) -> None:
    assert kind_for_path(name) == "audio" and Path(name).suffix in AUDIO_EXTENSIONS
    path = _encode(tmp_path / name, codec, rate, _tone(1.5, rate), fmt=fmt, bit_rate=bit_rate)
    audio = decode_audio(path)
    _assert_whisper_ready(audio)
    assert audio.duration == pytest.approx(1.5, abs=0.05)
    assert _dominant_frequency(audio.samples) == pytest.approx(440, abs=3)


def test_recording_time_and_title_from_tags(tmp_path: Path) -> None:
    path = _encode(
        tmp_path / "voice memo.m4a", "aac", 44100, _tone(0.5, 44100), fmt="ipod",
        metadata={"title": "Interview with Kim", "creation_time": "2021-05-01T10:00:00.000000Z"},
    )  # fmt: skip
    audio = decode_audio(path)
    # A recorder's creation_time is UTC; media_time is this machine's local time.
    expected = datetime(2021, 5, 1, 10, 0, 0, tzinfo=timezone.utc).astimezone().replace(tzinfo=None)
    assert audio.media_time == expected
    assert audio.meta["tags"]["title"] == "Interview with Kim"


def test_full_date_tag_is_a_recording_time(tmp_path: Path) -> None:
    path = _encode(tmp_path / "lecture.flac", "flac", 16000, _tone(0.5, 16000), metadata={"DATE": "2019-11-23"})
    assert decode_audio(path).media_time == datetime(2019, 11, 23)


def test_korean_file_name(tmp_path: Path) -> None:
    path = _write_wav(tmp_path / "회의 녹음 2024.wav", _tone(0.5, 16000), 16000)
    assert decode_audio(path).duration == pytest.approx(0.5, abs=0.001)


def test_max_seconds_stops_early() -> None:
    audio = decode_audio(corpus_dir("audio") / "jfk.wav", max_seconds=2.0)
    assert audio.duration == pytest.approx(2.0)
    assert audio.meta["clipped"] is True
    full = decode_audio(corpus_dir("audio") / "jfk.wav")
    assert np.allclose(audio.samples, full.samples[: audio.samples.size])
    assert "clipped" not in full.meta


# --------------------------------------------------------------------- bad files


def test_truncated_files_made_here_are_refused(tmp_path: Path) -> None:
    folder = corpus_dir("audio")
    for name in ("jfk.wav", "chinese.flac", "french.aiff", "8khz_5s.opus"):
        data = (folder / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(data[: len(data) * 6 // 10])
        with pytest.raises(ExtractionError, match="truncated"):
            decode_audio(cut)


def test_truncated_wav_message_says_how_much_is_missing(tmp_path: Path) -> None:
    whole = _write_wav(tmp_path / "whole.wav", _tone(1.0, 16000), 16000).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[:20044])  # header (44 bytes) + 20,000 of 32,000 data bytes
    with pytest.raises(ExtractionError, match=r"20,000 of 32,000 bytes of audio data are present"):
        decode_audio(cut)


def test_not_audio_at_all(tmp_path: Path) -> None:
    text = tmp_path / "song.mp3"
    text.write_text("lyrics only, no music " * 50)
    with pytest.raises(ExtractionError, match="not an audio file PyAV can decode"):
        decode_audio(text)
    (tmp_path / "empty.flac").write_bytes(b"")
    with pytest.raises(ExtractionError, match=r"^file is empty \(0 bytes\)$"):
        decode_audio(tmp_path / "empty.flac")
    with pytest.raises(ExtractionError, match="file not found"):
        decode_audio(tmp_path / "missing.ogg")


def test_video_without_sound_has_no_audio_stream(tmp_path: Path) -> None:
    path = tmp_path / "silent-film.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 60, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(ExtractionError, match=r"no audio stream \(it has video streams\)"):
        decode_audio(path)


def test_bad_max_seconds_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_seconds must be positive"):
        decode_audio(tmp_path / "x.wav", max_seconds=0)
