"""Audio: decode any recording PyAV can read into 16 kHz mono float32 samples for Whisper.

FFmpeg (bundled in PyAV's wheels) does the container parsing, decoding and
resampling, so MP3, WAV (any PCM width, GSM, ADPCM), FLAC,
Ogg Vorbis/Opus, M4A (AAC, ALAC), AIFF and WMA all take the same path.
Empty, truncated, undecodable files and files without audio raise
:class:`~engine.errors.ExtractionError`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExtractionError
from ._common import check_file, container_tags, declared_duration, describe, ffmpeg_reason, parse_datetime

SAMPLE_RATE = 16000

# Containers whose headers state the true length (sample count or data size),
# so decoding clearly less than that means the file was cut short.  MP3 and
# Ogg are not here: FFmpeg estimates their length from the bit rate or the
# last complete page, which a truncated file also satisfies.
_AUTHORITATIVE_LENGTH_FORMATS = ("flac", "aiff", "mov", "mp4", "m4a", "caf", "w64")
# Tags copied into meta when present (lower-cased; containers differ in case).
_TAG_KEYS = ("title", "artist", "album", "album_artist", "composer", "genre", "date", "creation_time",
             "comment", "language", "encoder")  # fmt: skip


@dataclass
class DecodedAudio:
    """A recording as Whisper wants it.

    ``samples`` is float32, mono, ``SAMPLE_RATE`` (16 kHz), within [-1, 1];
    ``duration`` is ``len(samples) / SAMPLE_RATE`` in seconds.  ``meta`` is
    JSON-serialisable: ``format``, ``codec``, ``sample_rate`` and ``channels``
    of the original, ``declared_duration`` when the container states one,
    lower-cased ``tags`` (title, artist, ...), ``clipped`` when ``max_seconds``
    cut the recording short, ``warnings`` for problems that did not stop the
    extraction.  ``media_time`` comes from the ``creation_time`` (converted to
    local time) or a full ``date`` tag.
    """

    samples: np.ndarray
    duration: float
    meta: dict[str, Any] = field(default_factory=dict)
    media_time: datetime | None = None


def decode_audio(path: str | os.PathLike[str], max_seconds: float | None = None) -> DecodedAudio:
    """Decode the audio stream of ``path`` to 16 kHz mono float32.

    ``max_seconds`` stops decoding after that much audio (for previews or a
    length cap); the rest of the file is not read.

    Raises :class:`ExtractionError` with a reason for a person when the file is
    missing, empty, not audio, has no audio stream, holds no samples, or is
    truncated or corrupt.
    """
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, not {max_seconds}")
    p, size = check_file(path)
    try:
        return _decode(p, size, max_seconds)
    except ExtractionError:
        raise
    except MemoryError as exc:
        raise ExtractionError("not enough memory to decode this recording") from exc
    except Exception as exc:
        raise ExtractionError(f"audio could not be decoded ({type(exc).__name__}: {describe(exc)})") from exc


def _decode(p: Path, size: int, max_seconds: float | None) -> DecodedAudio:
    import av

    try:
        # Tags in legacy encodings (GBK stored as Latin-1 ...) must not stop decoding.
        container = av.open(str(p), metadata_errors="replace")
    except PermissionError as exc:
        raise ExtractionError("permission denied: Shoebox may not read this file") from exc
    except av.error.EOFError as exc:
        raise ExtractionError("audio file is truncated: it ends inside its own headers") from exc
    except av.error.FFmpegError as exc:
        raise ExtractionError(f"not an audio file PyAV can decode: {ffmpeg_reason(exc)}") from exc

    with container:
        stream = container.streams.best("audio")
        if not isinstance(stream, av.audio.stream.AudioStream):  # None: best() found no audio stream
            kinds = sorted({s.type for s in container.streams})
            found = f" (it has {', '.join(kinds)} streams)" if kinds else ""
            raise ExtractionError(f"file has no audio stream{found}")
        codec = stream.codec_context
        meta: dict[str, Any] = {
            "format": container.format.name,
            "codec": codec.name,
            "sample_rate": int(codec.sample_rate or stream.rate or 0),
            "channels": int(codec.channels or 0),
        }
        declared = declared_duration(container, stream)
        if declared is not None:
            meta["declared_duration"] = round(declared, 3)
        tags = _tags(container, stream)
        if tags:
            meta["tags"] = tags
        media_time = _media_time(tags)

        limit = None if max_seconds is None else round(max_seconds * SAMPLE_RATE)
        buffer = _SampleBuffer(_initial_capacity(declared, limit))
        resampler = _Resampler(meta["channels"])
        input_samples = 0
        bad_packets = 0
        packets = 0
        first_error: str | None = None
        clipped = False
        try:
            for packet in container.demux(stream):
                # The last, empty packet flushes the decoder's delayed frames.
                packets += packet.size > 0
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    # FFmpeg itself skips an occasional damaged packet; so do we,
                    # but count them (too many means the file is corrupt).
                    bad_packets += 1
                    first_error = first_error or ffmpeg_reason(exc)
                    continue
                for frame in frames:
                    input_samples += frame.samples
                    for block in resampler.resample(frame):
                        buffer.append(block)
                if limit is not None and len(buffer) >= limit:
                    clipped = True
                    break
            if not clipped:
                for block in resampler.resample(None):
                    buffer.append(block)
        except av.error.FFmpegError as exc:
            # The container itself breaks off: data missing or garbage mid-file.
            got = len(buffer) / SAMPLE_RATE
            raise ExtractionError(
                f"audio data is truncated or corrupt (decoding stopped after {got:.1f} s: {ffmpeg_reason(exc)})"
            ) from exc

    samples = buffer.result()
    if samples.size == 0 and input_samples > 0:
        # FFmpeg's resampler keeps back its filter delay; a recording of a few
        # samples never fills it.  Such a file is valid, only very short.
        samples = _resample_tiny(p)
    if limit is not None and samples.size > limit:
        samples = samples[:limit]
        clipped = True
    if samples.size == 0:
        if bad_packets:
            raise ExtractionError(f"audio data is corrupt: no packet could be decoded ({first_error})")
        raise ExtractionError("file contains no audio samples (headers only, or the audio data is missing)")
    if bad_packets > max(2, packets // 10):
        raise ExtractionError(
            f"audio data is corrupt: {bad_packets} of {packets} packets could not be decoded ({first_error})"
        )
    warnings: list[str] = []
    if bad_packets:
        warnings.append(f"{bad_packets} damaged packet(s) skipped ({first_error})")

    duration = samples.size / SAMPLE_RATE
    if not clipped:
        _check_complete(p, size, meta["format"], declared, duration)
    np.clip(samples, -1.0, 1.0, out=samples)  # float sources may exceed full scale
    if clipped:
        meta["clipped"] = True
    if warnings:
        meta["warnings"] = warnings
    return DecodedAudio(samples=samples, duration=duration, meta=meta, media_time=media_time)


class _SampleBuffer:
    """Growable float32 buffer, so an hour of audio is not held twice while joining pieces."""

    def __init__(self, capacity: int) -> None:
        self._data = np.empty(max(capacity, SAMPLE_RATE), dtype=np.float32)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, block: np.ndarray) -> None:
        block = block.reshape(-1)
        end = self._size + block.size
        if end > self._data.size:
            grown = np.empty(max(end, int(self._data.size * 1.5)), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = block
        self._size = end

    def result(self) -> np.ndarray:
        if self._data.size - self._size > SAMPLE_RATE * 10:
            return self._data[: self._size].copy()
        return self._data[: self._size]


def _initial_capacity(declared: float | None, limit: int | None) -> int:
    estimate = int((declared or 0) * SAMPLE_RATE * 1.02) + SAMPLE_RATE
    if limit is not None:
        estimate = min(estimate, limit + SAMPLE_RATE)
    return min(estimate, SAMPLE_RATE * 60 * 60 * 4)  # never trust a header for more than 4 h up front


class _Resampler:
    """FFmpeg's resampler to 16 kHz float, with our own stereo-to-mono mix.

    FFmpeg mixes stereo to mono at -3 dB per channel (L + R) / sqrt(2), which
    lifts a recording whose channels agree by 3 dB and clips a loud one.  For
    mono and stereo we keep the channels and average them, (L + R) / 2; for
    surround layouts FFmpeg's matrix (centre, fronts, surrounds weighted) is
    the better mix and is used as is.
    """

    def __init__(self, channels: int) -> None:
        import av

        self._average = channels <= 2
        layout = None if self._average else "mono"  # None keeps the input's channels
        self._inner = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)

    def resample(self, frame: Any) -> list[np.ndarray]:
        blocks = []
        for out in self._inner.resample(frame):
            planes = out.to_ndarray()  # (channels, samples)
            blocks.append(planes.mean(axis=0, dtype=np.float32) if self._average else planes[0])
        return blocks


def _resample_tiny(p: Path) -> np.ndarray:
    """Mono float samples at the native rate, linearly resampled to 16 kHz (files of a few samples)."""
    import av

    with av.open(str(p), metadata_errors="replace") as container:
        stream = container.streams.best("audio")
        rate = stream.codec_context.sample_rate or SAMPLE_RATE
        to_float = av.AudioResampler(format="fltp", rate=rate)
        frames = [out for frame in container.decode(stream) for out in to_float.resample(frame)]
        frames += to_float.resample(None)
        pieces = [frame.to_ndarray().mean(axis=0, dtype=np.float32) for frame in frames]
    native = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    count = round(native.size * SAMPLE_RATE / rate)
    if native.size == 0 or count == 0:
        return np.zeros(0, np.float32)
    positions = np.arange(count, dtype=np.float64) * (rate / SAMPLE_RATE)
    return np.interp(positions, np.arange(native.size), native).astype(np.float32)


def _check_complete(p: Path, size: int, fmt: str, declared: float | None, decoded: float) -> None:
    """Raise if the file is cut short of what its own headers promise."""
    names = set(fmt.split(","))
    if declared is not None and names & set(_AUTHORITATIVE_LENGTH_FORMATS):
        missing = declared - decoded
        if missing > max(0.25, 0.01 * declared):
            raise ExtractionError(f"audio file is truncated: only {decoded:.1f} s of {declared:.1f} s could be decoded")
    if "ogg" in names:
        reason = _ogg_truncation(p, size)
        if reason:
            raise ExtractionError(f"audio file is truncated: {reason}")
    if "wav" in names:
        reason = _wav_truncation(p, size)
        if reason:
            raise ExtractionError(f"audio file is truncated: {reason}")


def _ogg_truncation(p: Path, size: int) -> str | None:
    """Walk the Ogg pages; FFmpeg silently drops a last page that is cut off."""
    with open(p, "rb") as f:
        offset = 0
        while offset < size:
            f.seek(offset)
            header = f.read(27)
            if not b"OggS".startswith(header[:4]):
                return None  # trailing bytes that are not a page (an appended tag) are harmless
            if len(header) < 27:
                return "the last Ogg page is cut off"
            segments = header[26]
            table = f.read(segments)
            if len(table) < segments:
                return "the last Ogg page is cut off"
            end = offset + 27 + segments + sum(table)
            if end > size:
                return "the last Ogg page is cut off"
            offset = end
    return None


def _wav_truncation(p: Path, size: int) -> str | None:
    """Compare the RIFF ``data`` chunk's declared size with the bytes present.

    FFmpeg trims its duration to the file silently.  Sizes of 0 or 0xFFFFFFFF
    are the placeholders of recorders that stream, not a promise.
    """
    with open(p, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return None
                present = size - offset - 8
                if present < chunk_size:
                    return f"{present:,} of {chunk_size:,} bytes of audio data are present"
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


def _tags(container: Any, stream: Any) -> dict[str, str]:
    return container_tags(container, stream, _TAG_KEYS)


def _media_time(tags: dict[str, str]) -> datetime | None:
    created = parse_datetime(tags.get("creation_time"), to_local=True)
    # 1904-01-01 and 1970-01-01 are the zero points of MP4 and Unix clocks:
    # what an unset recorder clock writes, not a real time.
    if created is not None and created.year > 1971:
        return created
    date = tags.get("date")
    if date and len(date.strip()) >= 10:  # a full date; a year alone is a release year, not a moment
        value = parse_datetime(date, to_local=True)
        if value is not None and value.year > 1971:
            return value
    return None
