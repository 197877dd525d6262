"""How long choosing and decoding a video's frames takes: seconds of CPU time per minute of video.

Writes one-minute H.264 clips with PyAV (720p and 1080p at 30 fps; a keyframe
every second as phone cameras write them, and every 10 s as libx264 does by
default), then times :func:`engine.extractors.video.extract_video` and
:func:`engine.extractors.video.video_sound` on each.  Prints a table and writes
JSON beside it (``--json``).

    python -m benchmarks.video [--seconds 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clip(path: Path, size: tuple[int, int], seconds: float, keyframe_every_s: float | None, fps: int = 30) -> Path:
    """A clip with motion and texture (a panned noise field, a moving block, a cut every 7 s)."""
    import av

    width, height = size
    rng = np.random.default_rng(0)
    field = rng.integers(0, 255, size=(height, width * 2, 3), dtype=np.uint8)
    field = (field // 4 + 96).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        options = {"preset": "ultrafast", "crf": "28"}
        if keyframe_every_s is not None:
            stream.codec_context.gop_size = round(keyframe_every_s * fps)
        stream.options = options
        for n in range(round(seconds * fps)):
            shift = (n * 4) % width
            picture = field[:, shift : shift + width].copy()
            scene = (n // (7 * fps)) % 3
            picture[..., scene] = np.minimum(255, picture[..., scene].astype(np.int16) + 90).astype(np.uint8)
            x = (n * 7) % (width - 120)
            picture[height // 3 : height // 3 + 120, x : x + 120] = 240
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = n
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from engine.extractors.video import extract_video

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, size in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
            for gop in (1.0, None):
                path = make_clip(Path(folder) / f"{label}-{gop}.mp4", size, args.seconds, gop)
                wall, cpu = time.perf_counter(), time.process_time()
                video = extract_video(path)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                minutes = video.duration / 60
                rows.append(
                    {
                        "clip": label,
                        "keyframes": "every 1 s" if gop else "every 10 s",
                        "sampling": video.meta["sampling"],
                        "frames": len(video.frames),
                        "wall_s_per_min": round(wall / minutes, 2),
                        "cpu_s_per_min": round(cpu / minutes, 2),
                    }
                )
    print(f"{'clip':6} {'keyframes':11} {'sampling':11} {'frames':>6} {'wall s/min':>10} {'cpu s/min':>10}")
    for r in rows:
        print(
            f"{r['clip']:6} {r['keyframes']:11} {r['sampling']:11} {r['frames']:>6} "
            f"{r['wall_s_per_min']:>10} {r['cpu_s_per_min']:>10}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
