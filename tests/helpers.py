"""Makers of small real files for tests, and a counting wrapper around an encoder."""

from __future__ import annotations

import contextlib
import sys
import types
import wave
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image


def make_photo(
    path: Path,
    seed: int,
    size=(96, 72),
    taken: datetime | None = None,
    fmt: str | None = None,
    orientation: int | None = None,
) -> Path:
    """A noisy, colourful picture unlike any other seed's; EXIF DateTimeOriginal when ``taken``.

    ``orientation`` is written as the EXIF Orientation; a ``.heic``/``.heif`` name
    is written as HEIC through pillow-heif, which turns the stored picture as an
    iPhone does (the container's rotation, the EXIF value kept).
    """
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=3)
    pixels = (rng.normal(0, 60, size=(size[1], size[0], 3)) + base).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Image.Exif | bytes] = {}
    if taken is not None or orientation is not None:
        exif = Image.Exif()
        if taken is not None:
            exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
        if orientation is not None:
            exif[0x0112] = orientation
        kwargs["exif"] = exif
    if path.suffix.lower() in (".heic", ".heif"):
        enable_heif_writing()
        fmt = fmt or "HEIF"
        exif_given = kwargs.get("exif")
        if isinstance(exif_given, Image.Exif):
            # As bytes: only then does pillow-heif write the container's rotation beside the EXIF value.
            kwargs["exif"] = exif_given.tobytes()
    image.save(path, format=fmt, **kwargs)
    return path


def enable_heif_writing() -> None:
    """Let Pillow write HEIC (pillow-heif's encoder); Pillow's own plugins stay first, as in the engine."""
    from pillow_heif import register_heif_opener

    Image.init()
    register_heif_opener()


@contextlib.contextmanager
def pillow_heif_missing(monkeypatch, instead: types.ModuleType | None = None) -> Iterator[None]:
    """As if pillow-heif were not installed (its import fails), or were ``instead``; the engine asks again."""
    from engine.extractors import images

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "pillow_heif", instead)  # None: import raises ModuleNotFoundError
        images._heif_reader_problem.cache_clear()
        try:
            yield
        finally:
            images._heif_reader_problem.cache_clear()


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


class CountingText:
    """Wraps a text model and counts the passages and queries it encodes."""

    def __init__(self, inner):
        self.inner = inner
        self.texts = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_passages(self, texts):
        self.texts += len(texts)
        return self.inner.encode_passages(texts)

    def encode_queries(self, texts):
        self.texts += len(texts)
        return self.inner.encode_queries(texts)


class CountingModels:
    """CLIP and the text model, each counted: ``images`` CLIP encoded, ``texts`` either encoded."""

    def __init__(self, clip, text):
        self.clip = CountingClip(clip)
        self.text = CountingText(text)

    @property
    def images(self) -> int:
        return self.clip.images

    @property
    def texts(self) -> int:
        return self.clip.texts + self.text.texts


def make_v2_library(db_path: Path, roots: list[str], files: list[dict], dim: int = 4) -> None:
    """A library database as Shoebox wrote it at schema 2: one CLIP space for everything, FTS over raw text.

    ``files``: dicts with ``path``, ``kind``, ``size``, ``mtime`` and ``items`` (tuples of
    modality, text, start, end).  Every item gets a CLIP-sized vector, as passages did then.
    """
    import json

    import apsw
    import sqlite_vec

    from engine.store import MIGRATIONS

    conn = apsw.Connection(str(db_path))
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    for number, step in enumerate(MIGRATIONS[:2], start=1):
        conn.execute(step)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('model', ?)",
        (json.dumps({"name": "test-tiny", "weights": "seed0", "dim": dim}),),
    )
    conn.execute(
        f"CREATE VIRTUAL TABLE item_vectors USING vec0 (item_id INTEGER PRIMARY KEY, "
        f"embedding float[{dim}] distance_metric=cosine, kind TEXT, media_time FLOAT)"
    )
    for root in roots:
        conn.execute("INSERT INTO roots (path, added_at) VALUES (?, 0)", (root,))
    item = 0
    for file_id, row in enumerate(files, start=1):
        conn.execute(
            "INSERT INTO files (id, path, folder, size, mtime, content_hash, kind, status, media_time, meta, "
            "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'indexed', 1.0, '{}', 0)",
            (
                file_id,
                row["path"],
                row["path"].rsplit("/", 1)[0],
                row.get("size", 1),
                row.get("mtime", 1.0),
                f"h{file_id}",
                row["kind"],
            ),
        )
        for seq, (modality, text, start, end) in enumerate(row["items"]):
            item += 1
            conn.execute(
                "INSERT INTO items (id, file_id, seq, modality, text, start_s, end_s, language) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'en')",
                (item, file_id, seq, modality, text, start, end),
            )
            conn.execute(
                "INSERT INTO item_vectors (item_id, embedding, kind, media_time) VALUES (?, ?, ?, 1.0)",
                (item, np.ones(dim, np.float32).tobytes(), row["kind"]),
            )
    conn.close()
