"""Videos: a few frames for CLIP (the first, each scene change, one every few seconds) and the sound track.

FFmpeg (bundled in PyAV's wheels) demuxes and decodes; no ``ffmpeg`` program is
needed.  Decoding every frame of a phone video costs far more than CLIP needs,
so frames are chosen cheaply:

* When the video's keyframes are at most the sampling interval apart (phone
  cameras write one every second or two), only keyframes are decoded.  Encoders
  also start a keyframe at a cut, so scene changes are among them.
* Otherwise (screen recordings, downloads with a keyframe every 10 s or more),
  the frames are decoded in order, skipping the ones no other frame refers to,
  and only a few per second are looked at.

A frame looked at is shrunk to a tiny picture; it is kept when it differs
enough from the last kept one (a new scene), or when the last kept one is
``every_s`` seconds old.  The first frame is always kept, and never more than
``max_frames``.  Rotation (a phone held upright) and non-square pixels are
applied, so frames look as a player shows them.

A file whose only streams are sound raises :class:`engine.errors.NoPictureError`
(an :class:`~engine.errors.ExtractionError`), so that a caller may index it as a
recording instead.  Empty, truncated, corrupt files, and pictures coded in a
way this FFmpeg cannot decode raise :class:`~engine.errors.ExtractionError`.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ExtractionError, NoPictureError
from ._common import check_file, container_tags, declared_duration, describe, ffmpeg_reason, parse_datetime
from .audio import DecodedAudio, decode_audio

DEFAULT_EVERY_S = 4.0
DEFAULT_MAX_FRAMES = 100
# A kept frame differs from the previous kept one by at least this much (mean
# absolute difference of tiny RGB pictures, 0-1) to count as a new scene.
SCENE_THRESHOLD = 0.12
# Scene changes closer than this to the last kept frame are ignored (flashes, fades).
MIN_SCENE_GAP_S = 1.0
# How often a frame is looked at when every frame is decoded.
LOOK_EVERY_S = 0.25
_SIGNATURE_SIZE = (24, 14)

# Containers whose headers state the true length; reading clearly less than that
# means the file was cut short (a copy that stopped, a camera that lost power).
_AUTHORITATIVE_LENGTH_FORMATS = ("mov", "mp4", "matroska", "webm", "avi")
# Tags copied into meta when present (lower-cased).
_TAG_KEYS = ("title", "comment", "encoder", "creation_time", "com.apple.quicktime.make",
             "com.apple.quicktime.model", "com.apple.quicktime.software", "com.android.version")  # fmt: skip


@dataclass
class VideoFrame:
    """One chosen frame: ``time_s`` seconds from the start of the video, ``image`` RGB as a player shows it."""

    time_s: float
    image: Image.Image


@dataclass
class ExtractedVideo:
    """The frames chosen from a video, and what is known about it.

    ``frames`` are in time order, the first frame first, each image RGB with its
    longest side at most the ``max_side`` asked for, rotation applied.
    ``duration`` is in seconds; ``width``/``height`` the full size as displayed
    (after rotation and pixel aspect).  ``media_time`` is when it was filmed,
    in this machine's local time (the camera's ``creation_time``).
    ``has_audio`` says whether there is a sound track (see :func:`video_sound`).
    ``meta`` is JSON-serialisable: ``format``, ``codec``, ``fps``, ``rotation``,
    ``sampling`` (``"keyframes"`` or ``"sequential"``), ``audio_codec``,
    ``declared_duration``, lower-cased ``tags``, ``warnings`` for problems that
    did not stop the extraction.
    """

    frames: list[VideoFrame]
    duration: float
    width: int
    height: int
    media_time: datetime | None
    has_audio: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def poster(self) -> VideoFrame:
        """The frame to show for the video (its thumbnail): the first that is not blank, else the first."""
        for frame in self.frames[:8]:
            if not _is_blank(frame.image):
                return frame
        return self.frames[0]


def _is_blank(image: Image.Image) -> bool:
    """Nearly one dark or one light colour: a fade from black, a white title card before the picture."""
    small = np.asarray(image.convert("L").resize((32, 18)), dtype=np.float32)
    return bool(small.std() <= 6.0 and not 24.0 < small.mean() < 232.0)


def extract_video(
    path: str | os.PathLike[str],
    *,
    max_side: int = 448,
    every_s: float = DEFAULT_EVERY_S,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> ExtractedVideo:
    """Choose and decode frames of the video at ``path``.

    The first frame is always chosen, then each scene change, and at least one
    frame every ``every_s`` seconds (the interval grows for long videos so that
    no more than ``max_frames`` are chosen).  ``max_side`` bounds the longest
    side of each returned picture.

    Raises :class:`NoPictureError` for a file with sound but no picture, and
    :class:`ExtractionError` with a reason for a person when the file is missing,
    empty, not a video, truncated, corrupt, or coded in a way that cannot be decoded.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    if not every_s > 0:
        raise ValueError(f"every_s must be positive, not {every_s}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, not {max_frames}")
    p, _size = check_file(path)
    try:
        return _extract(p, max_side, every_s, max_frames)
    except ExtractionError:
        raise
    except MemoryError as exc:
        raise ExtractionError("not enough memory to decode this video") from exc
    except Exception as exc:
        raise ExtractionError(f"video could not be decoded ({type(exc).__name__}: {describe(exc)})") from exc


def video_poster(
    path: str | os.PathLike[str], max_side: int = 320, within_s: float = 5.0, *, at_s: float = 0.0
) -> Image.Image:
    """The picture to show for a video: its first keyframe within ``within_s`` seconds that is not blank.

    With ``at_s``, the keyframe at or just before that second (what a result
    found there shows).  Cheap: only keyframes near there are decoded.
    Rotation applied; the longest side at most ``max_side``.  Raises
    :class:`ExtractionError` (or :class:`NoPictureError`) as :func:`extract_video` does.
    """
    p, _size = check_file(path)
    try:
        container = _open(p)
        with container:
            stream = _video_stream(container)
            if at_s > 0:
                # In FFmpeg's microseconds; backward: the keyframe at or before the second.
                container.seek(int(at_s * 1_000_000), backward=True, any_frame=False)
                within_s += at_s
            stream.codec_context.skip_frame = "NONKEY"
            sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
            rotation = _rotation_tag(stream)
            reader = _Reader(container, stream, keyframes_only=True)
            first: Image.Image | None = None
            for frame, time_s in reader.frames():
                if first is None:
                    rotation = _frame_rotation(frame, rotation)
                picture = _picture(frame, max_side, sar, rotation)
                first = first or picture
                if not _is_blank(picture) or time_s > within_s:
                    return picture
            if first is None:
                raise ExtractionError("video contains no pictures (headers only, or the video data is missing)")
            return first
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(f"video could not be decoded ({type(exc).__name__}: {describe(exc)})") from exc


def video_sound(path: str | os.PathLike[str], max_seconds: float | None = None) -> DecodedAudio | None:
    """The sound track of the video at ``path`` as 16 kHz mono float32 (for Whisper); None when it has none.

    ``max_seconds`` stops after that much sound.  Raises :class:`ExtractionError`
    when the file cannot be opened, or has a sound track that cannot be decoded.
    """
    p, _size = check_file(path)
    container = _open(p)
    with container:
        if not container.streams.audio:
            return None
    return decode_audio(p, max_seconds=max_seconds)


def _open(p: Path) -> Any:
    import av

    try:
        return av.open(str(p), metadata_errors="replace")
    except PermissionError as exc:
        raise ExtractionError("permission denied: Shoebox may not read this file") from exc
    except av.error.EOFError as exc:
        raise ExtractionError("video file is truncated: it ends inside its own headers") from exc
    except av.error.FFmpegError as exc:
        if _mp4_without_index(p):
            # MP4/MOV usually write their index last: a recording interrupted, or a copy cut short.
            raise ExtractionError(
                "video file is truncated or was never finished: its index (the 'moov' box) is missing"
            ) from exc
        raise ExtractionError(f"not a video file, or too damaged to read (FFmpeg: {ffmpeg_reason(exc)})") from exc


def _mp4_without_index(p: Path) -> bool:
    """Whether ``p`` starts as an MP4/MOV (an ``ftyp`` box) but has no ``moov`` box among its top-level boxes."""
    with open(p, "rb") as f:
        head = f.read(8)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return False
        size = p.stat().st_size
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            box = f.read(16)
            length, kind = int.from_bytes(box[:4], "big"), box[4:8]
            if kind == b"moov":
                return False
            if length == 1 and len(box) >= 16:
                length = int.from_bytes(box[8:16], "big")  # a 64-bit size follows the type
            if length < 8:
                break  # 0: the box runs to the end of the file
            offset += length
        return True


def _extract(p: Path, max_side: int, every_s: float, max_frames: int) -> ExtractedVideo:
    container = _open(p)
    with container:
        stream = _video_stream(container)
        codec = stream.codec_context
        declared = declared_duration(container, stream)
        # Long videos: widen the interval so the periodic frames alone stay within max_frames.
        interval = max(every_s, (declared or 0.0) / max_frames)
        keyframe_times = _keyframe_times(stream)
        dense = _keyframes_dense(keyframe_times, declared, interval)
        codec.thread_type = "AUTO"  # frame and slice threads: both cores
        codec.skip_frame = "NONKEY" if dense else "NONREF"
        sampler = _FrameSampler(interval, max_frames, look_every=0.0 if dense else min(LOOK_EVERY_S, interval / 4))
        tags = _tags(container, stream)
        sar = stream.sample_aspect_ratio or codec.sample_aspect_ratio
        rotation = _rotation_tag(stream)
        warnings: list[str] = []
        reader = _Reader(container, stream, keyframes_only=dense)
        first_size: tuple[int, int] | None = None
        for frame, time_s in reader.frames():
            if first_size is None:
                first_size = (frame.width, frame.height)
                rotation = _frame_rotation(frame, rotation)
            if sampler.wants(time_s):
                sampler.offer(time_s, frame, functools.partial(_picture, max_side=max_side, sar=sar, rotation=rotation))
        if reader.bad_packets:
            warnings.append(f"{reader.bad_packets} damaged packet(s) skipped ({reader.first_error})")
        if first_size is None:
            if reader.bad_packets:
                raise ExtractionError(f"video data is corrupt: no frame could be decoded ({reader.first_error})")
            raise ExtractionError("video contains no pictures (headers only, or the video data is missing)")
        if reader.bad_packets > max(2, reader.packets // 10):
            raise ExtractionError(
                f"video data is corrupt: {reader.bad_packets} of {reader.packets} packets could not be decoded "
                f"({reader.first_error})"
            )
        fmt = container.format.name
        end = max(reader.end_time, sampler.last_time)
        authoritative = set(fmt.split(",")) & set(_AUTHORITATIVE_LENGTH_FORMATS)
        if declared is not None and authoritative and declared - end > max(1.0, 0.02 * declared):
            raise ExtractionError(f"video file is truncated: only {end:.1f} s of {declared:.1f} s are present")
        duration = declared if declared is not None else end
        width, height = _display_size(*first_size, sar, rotation)
        audio = list(container.streams.audio)
        meta: dict[str, Any] = {
            "format": fmt,
            "codec": codec.name,
            "fps": round(float(stream.average_rate), 3) if stream.average_rate else None,
            "rotation": rotation,
            "sampling": "keyframes" if dense else "sequential",
        }
        if audio:
            meta["audio_codec"] = audio[0].codec_context.name if audio[0].codec_context is not None else None
        if declared is not None:
            meta["declared_duration"] = round(declared, 3)
        if tags:
            meta["tags"] = tags
        if warnings:
            meta["warnings"] = warnings
        frames = sampler.chosen()
    return ExtractedVideo(
        frames=frames,
        duration=round(float(duration), 3),
        width=width,
        height=height,
        media_time=_media_time(tags),
        has_audio=bool(audio),
        meta=meta,
    )


def _video_stream(container: Any) -> Any:
    import av

    streams = [s for s in container.streams.video if not _is_cover_art(s)]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        if "audio" in kinds:
            raise NoPictureError("file has no picture, only sound (it can be indexed as a recording)")
        found = f" (it has {', '.join(kinds)} streams)" if kinds else ""
        raise ExtractionError(f"file has no video stream{found}")
    decodable = [s for s in streams if s.codec_context is not None]
    if not decodable:
        raise ExtractionError(
            "the video is coded in a format Shoebox cannot decode; converting it to H.264 MP4 would let Shoebox read it"
        )
    stream = max(decodable, key=lambda s: s.codec_context.width * s.codec_context.height)
    if not isinstance(stream, av.video.stream.VideoStream):
        raise ExtractionError("file has no video stream PyAV can read")
    return stream


def _is_cover_art(stream: Any) -> bool:
    # An album cover in an M4A or MKV is a "video" stream of one picture.
    disposition = getattr(stream, "disposition", None)
    try:
        import av

        return bool(disposition is not None and disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def _keyframe_times(stream: Any) -> list[float] | None:
    """Times of the keyframes from the container's index, without reading the file; None when it has no index."""
    if stream.time_base is None:
        return None
    try:
        entries = stream.index_entries
        count = len(entries)
    except Exception:  # a demuxer without an index: decide by decoding in order
        return None
    if count == 0:
        return None
    base = float(stream.time_base)
    start = stream.start_time or 0
    return [(entries[i].timestamp - start) * base for i in range(count) if entries[i].is_keyframe]


def _keyframes_dense(times: list[float] | None, duration: float | None, interval: float) -> bool:
    """Whether decoding keyframes alone gives a frame at least every ``interval`` seconds."""
    if not times:
        return False
    points = sorted(times)
    if duration is not None:
        points.append(duration)
    gaps = [b - a for a, b in itertools.pairwise(points)]
    return not gaps or max(gaps) <= interval * 1.25


class _Reader:
    """Demuxes the video stream and decodes it (keyframes only, or in order), counting damage."""

    def __init__(self, container: Any, stream: Any, *, keyframes_only: bool):
        self._container = container
        self._stream = stream
        self._keyframes_only = keyframes_only
        self._base = float(stream.time_base) if stream.time_base is not None else None
        self._start = stream.start_time or 0
        self._fps = float(stream.average_rate or stream.guessed_rate or 25)
        self.packets = 0
        self.bad_packets = 0
        self.first_error: str | None = None
        self.end_time = 0.0  # where the last packet read ends (seconds)
        self._last_time = -1.0

    def _time_of(self, frame: Any) -> float:
        if frame.pts is not None and self._base is not None:
            value = (frame.pts - self._start) * self._base
        else:
            value = self._last_time + 1.0 / self._fps
        self._last_time = max(value, 0.0)
        return self._last_time

    def frames(self) -> Any:
        import av

        try:
            for packet in self._container.demux(self._stream):
                if packet.size > 0:
                    self.packets += 1
                    if packet.pts is not None and self._base is not None:
                        ends = (packet.pts + (packet.duration or 0) - self._start) * self._base
                        self.end_time = max(self.end_time, ends)
                    if self._keyframes_only and not packet.is_keyframe:
                        continue  # never sent to the decoder: cheaper than letting it skip
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:
                    # FFmpeg skips an occasional damaged packet; so do we, counting them.
                    self.bad_packets += 1
                    self.first_error = self.first_error or ffmpeg_reason(exc)
                    continue
                for frame in decoded:
                    yield frame, self._time_of(frame)
        except av.error.FFmpegError as exc:
            raise ExtractionError(
                f"video data is truncated or corrupt (reading stopped at {self.end_time:.1f} s: {ffmpeg_reason(exc)})"
            ) from exc


class _FrameSampler:
    """Keeps the first frame, scene changes and one frame per interval; never more than ``max_frames``.

    A kept frame becomes its small picture at once: decoded frames of a long
    1080p video would not fit in memory, the pictures do.
    """

    def __init__(self, interval: float, max_frames: int, look_every: float):
        self._interval = interval
        self._max = max_frames
        self._look_every = look_every
        self._next_look = 0.0
        self._kept: list[tuple[VideoFrame, np.ndarray, float]] = []  # frame, signature, novelty
        self.last_time = 0.0

    def wants(self, time_s: float) -> bool:
        """Whether the frame at ``time_s`` is worth looking at (all of them when decoding keyframes only)."""
        self.last_time = max(self.last_time, time_s)
        if time_s + 1e-6 < self._next_look:
            return False
        if self._look_every > 0:
            # On a fixed grid (0, 0.25, 0.5 ...), so that the looks do not drift later frame by frame.
            self._next_look = (math.floor(time_s / self._look_every + 1e-6) + 1) * self._look_every
        return True

    def offer(self, time_s: float, frame: Any, picture: Any) -> None:
        signature = _signature(frame)
        if self._kept:
            last, last_signature, _novelty = self._kept[-1]
            since = time_s - last.time_s
            change = float(np.abs(signature - last_signature).mean())
            if not ((change >= SCENE_THRESHOLD and since >= MIN_SCENE_GAP_S) or since >= self._interval - 1e-6):
                return
        else:
            change = math.inf  # the first frame always stays
        self._kept.append((VideoFrame(time_s=round(time_s, 3), image=picture(frame)), signature, change))
        if len(self._kept) > self._max:
            # Drop the least novel frame (never the first): the nearest repeat of the one before it.
            weakest = min(range(1, len(self._kept)), key=lambda i: self._kept[i][2])
            del self._kept[weakest]

    def chosen(self) -> list[VideoFrame]:
        return [frame for frame, _signature, _novelty in self._kept]


def _signature(frame: Any) -> np.ndarray:
    """The frame as a tiny RGB picture (0-1): enough to tell one scene from another, cheap to compare."""
    width, height = _SIGNATURE_SIZE
    small = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    return small.to_ndarray().astype(np.float32) / 255.0


def _rotation_tag(stream: Any) -> int:
    """The counter-clockwise turn a ``rotate`` tag asks for (old muxers write it clockwise)."""
    value = dict(stream.metadata).get("rotate")
    try:
        return _normal_angle(-float(value)) if value is not None else 0
    except ValueError:
        return 0


def _frame_rotation(frame: Any, fallback: int) -> int:
    """The counter-clockwise turn that shows the frame upright (its display matrix), else ``fallback``."""
    value = getattr(frame, "rotation", 0) or 0
    return _normal_angle(float(value)) if value else fallback


def _normal_angle(degrees: float) -> int:
    # Display matrices hold right angles in practice; round others to the nearest one.
    return round(degrees / 90.0) % 4 * 90


_TRANSPOSE_FOR_ROTATION = {
    90: Image.Transpose.ROTATE_90,  # Pillow turns counter-clockwise, as the display matrix does
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


def _display_size(width: int, height: int, sar: Any, rotation: int) -> tuple[int, int]:
    if sar and float(sar) > 0 and abs(float(sar) - 1.0) > 1e-3:
        width = max(1, round(width * float(sar)))
    return (height, width) if rotation in (90, 270) else (width, height)


def _picture(frame: Any, max_side: int, sar: Any, rotation: int) -> Image.Image:
    """The frame as RGB, pixel aspect and rotation applied, its longest side at most ``max_side``."""
    width, height = _display_size(frame.width, frame.height, sar, 0)
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    # swscale shrinks and converts in one step, from the decoder's planes straight to RGB.
    image = frame.to_image(width=out_w, height=out_h, interpolation="AREA")
    transpose = _TRANSPOSE_FOR_ROTATION.get(rotation)
    return image.transpose(transpose) if transpose is not None else image


def _tags(container: Any, stream: Any) -> dict[str, str]:
    return container_tags(container, stream, (*_TAG_KEYS, "com.apple.quicktime.creationdate"))


def _media_time(tags: dict[str, str]) -> datetime | None:
    # Apple writes the local time with its offset beside the UTC creation_time; either converts to local time.
    for key in ("com.apple.quicktime.creationdate", "creation_time"):
        value = parse_datetime(tags.get(key), to_local=True)
        # 1904-01-01 and 1970-01-01 are the zero points of MP4 and Unix clocks: an unset camera clock.
        if value is not None and value.year > 1971:
            return value
    return None


__all__ = [
    "DEFAULT_EVERY_S",
    "DEFAULT_MAX_FRAMES",
    "ExtractedVideo",
    "VideoFrame",
    "extract_video",
    "video_poster",
    "video_sound",
]
