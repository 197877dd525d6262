"""Makers of small real files for tests, and a counting wrapper around an encoder."""

from __future__ import annotations

import wave
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image


def make_photo(path: Path, seed: int, size=(96, 72), taken: datetime | None = None, fmt: str | None = None) -> Path:
    """A noisy, colourful picture unlike any other seed's; EXIF DateTimeOriginal when ``taken``."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=3)
    pixels = (rng.normal(0, 60, size=(size[1], size[0], 3)) + base).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if taken is not None:
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
        kwargs["exif"] = exif
    image.save(path, format=fmt, **kwargs)
    return path


def make_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def make_tone(path: Path, seconds: float = 1.0, freq: float = 440.0, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


class CountingClip:
    """Wraps a CLIP encoder and counts what it encodes (to prove nothing is encoded twice)."""

    def __init__(self, inner):
        self.inner = inner
        self.images = 0
        self.texts = 0

    @property
    def identity(self):
        return self.inner.identity

    def preprocess(self, image):
        return self.inner.preprocess(image)

    def encode_image_tensors(self, batch):
        self.images += len(batch)
        return self.inner.encode_image_tensors(batch)

    def encode_images(self, images):
        self.images += len(images)
        return self.inner.encode_images(images)

    def encode_texts(self, texts):
        self.texts += len(texts)
        return self.inner.encode_texts(texts)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)
