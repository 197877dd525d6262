"""Builders of real media files for tests: videos with distinct scenes and a spoken sound track.

Everything is written with PyAV (FFmpeg inside its wheel) and, for speech,
``espeak-ng``; a missing espeak-ng fails the test with the package to install,
never skips it, because a test that does not run proves nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SPEECH_RATE = 22050  # what espeak-ng writes

# A scene is a colour (r, g, b), a text drawn large on a background of its own, or a picture; and its seconds.
Scene = tuple[tuple[int, int, int] | str | Image.Image, float]


def speak(text: str, dest: Path) -> Path:
    """Write ``text`` spoken by espeak-ng as a WAV file at ``dest``."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise RuntimeError(
            "espeak-ng is needed to make spoken test media: install it (on Debian/Ubuntu: sudo apt install espeak-ng)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([program, "-w", str(dest), text], check=True, capture_output=True)
    return dest


def speech_samples(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng, mono float32 at ``SPEECH_RATE``."""
    import av

    with tempfile.TemporaryDirectory() as folder:
        wav = speak(text, Path(folder) / "speech.wav")
        with av.open(str(wav)) as container:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SPEECH_RATE)
            pieces = [
                out.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for out in resampler.resample(frame)
            ]
            pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(pieces).astype(np.float32)


def scene_picture(
    scene: tuple[int, int, int] | str | Image.Image, size: tuple[int, int], index: int = 0
) -> Image.Image:
    """What a scene shows: a flat colour, dark text on a light background that differs per scene, or the picture."""
    if isinstance(scene, Image.Image):
        return scene.convert("RGB").resize(size)
    if not isinstance(scene, str):
        return Image.new("RGB", size, tuple(scene))
    backgrounds = [(250, 240, 200), (200, 230, 250), (230, 250, 210), (250, 215, 230)]
    image = Image.new("RGB", size, backgrounds[index % len(backgrounds)])
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, size[1] // 6))
    box = draw.textbbox((0, 0), scene, font=font)
    x = (size[0] - (box[2] - box[0])) // 2
    y = (size[1] - (box[3] - box[1])) // 2
    draw.text((x, y), scene, fill=(20, 20, 20), font=font)
    return image


def video_encoder() -> str:
    """libx264 where PyAV's FFmpeg has it, else its own MPEG-4 part 2 encoder."""
    import av

    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except av.codec.codec.UnknownCodecError:
        return "mpeg4"


def make_video(
    path: Path,
    scenes: Sequence[Scene],
    speech: str | Sequence[tuple[float, str]] | None = None,
    *,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    keyframe_every_s: float | None = 1.0,
    rotation: int = 0,
    created: datetime | None = None,
    codec: str | None = None,
) -> Path:
    """Write a real video: each scene for its seconds, and a sound track of the given speech.

    ``speech`` is one text spoken from the start, or ``(start_s, text)`` pairs.
    ``keyframe_every_s`` sets the encoder's keyframe interval (None: the
    encoder's default, libx264's 10 s); ``rotation`` is the display rotation in
    degrees counter-clockwise, as a phone held upright writes it (-90 for the
    usual portrait video); ``created`` becomes the container's ``creation_time``
    (a naive time is UTC).  The container follows the file name (.mp4, .mkv, .mov ...).
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    total = sum(seconds for _scene, seconds in scenes)
    codec = codec or video_encoder()
    with av.open(str(path), "w") as out:
        if created is not None:
            when = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
            out.metadata["creation_time"] = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        video = out.add_stream(codec, rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        if keyframe_every_s is not None:
            video.codec_context.gop_size = max(1, round(keyframe_every_s * fps))
        if codec == "libx264":
            # Keyframes only where asked: no extra ones at the cuts, so a test knows where they are.
            video.options = (
                {"preset": "ultrafast", "sc_threshold": "0"} if keyframe_every_s else {"preset": "ultrafast"}
            )
        if rotation:
            video.set_display_rotation(rotation)
        audio = None
        if speech is not None:
            audio = out.add_stream("aac", rate=SPEECH_RATE)
            audio.layout = "mono"

        count = 0
        for index, (scene, seconds) in enumerate(scenes):
            picture = np.asarray(scene_picture(scene, size, index))
            frame_count = round(seconds * fps)
            for _ in range(frame_count):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = count
                count += 1
                for packet in video.encode(frame):
                    out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)

        if audio is not None:
            track = np.zeros(round(total * SPEECH_RATE), np.float32)
            parts = [(0.0, speech)] if isinstance(speech, str) else list(speech or [])
            for start, text in parts:
                spoken = speech_samples(text)
                begin = round(start * SPEECH_RATE)
                spoken = spoken[: max(0, track.size - begin)]
                track[begin : begin + spoken.size] += spoken
            block = 1024
            for offset in range(0, track.size, block):
                piece = track[offset : offset + block].reshape(1, -1)
                sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="flt", layout="mono")
                sound.sample_rate = SPEECH_RATE
                sound.pts = offset
                for packet in audio.encode(sound):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return path


def make_sound_only_video(path: Path, text: str) -> Path:
    """An .mp4 holding only a spoken AAC sound track (a phone's voice memo): no picture."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    samples = speech_samples(text)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=SPEECH_RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate, frame.pts = SPEECH_RATE, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path
