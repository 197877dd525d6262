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


# -- pictures of text (OCR) ---------------------------------------------------

# Where Debian/Ubuntu, Fedora, Homebrew and Windows put the fonts the OCR tests draw with,
# and the Debian package that installs each.
_FONT_CANDIDATES = {
    "latin": (
        "DejaVu Sans",
        "fonts-dejavu-core",
        (
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
            "/opt/homebrew/share/fonts/DejaVuSans.ttf",
            "C:/Windows/Fonts/DejaVuSans.ttf",
        ),
    ),
    "hangul": (
        "Noto Sans CJK KR",
        "fonts-noto-cjk",
        (
            "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
            "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
            "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
            "/opt/homebrew/share/fonts/NotoSansCJK-Regular.ttc",
        ),
    ),
}


def font_path(script: str) -> Path:
    """A font file that draws ``script`` (``"latin"`` or ``"hangul"``): DejaVu Sans or Noto Sans CJK.

    Asks fontconfig first, then looks in the usual folders.  Raises FileNotFoundError
    naming the package to install when there is none.
    """
    import shutil
    import subprocess

    family, package, known = _FONT_CANDIDATES[script]
    found: list[str] = []
    if shutil.which("fc-match"):
        result = subprocess.run(
            ["fc-match", "-f", "%{family}\t%{file}", family], capture_output=True, text=True, check=False, timeout=30
        )
        families, _, file = result.stdout.partition("\t")
        # fc-match always answers; only a font of the family asked for will do.
        if result.returncode == 0 and family.split()[0] in families and file:
            found.append(file)
    found.extend(known)
    for candidate in found:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError(
        f"no {family} font found (needed to draw {script} text for the OCR tests); "
        f"on Debian/Ubuntu: sudo apt install {package}"
    )


def _font(script: str, size: int):
    from PIL import ImageFont

    path = font_path(script)
    # Noto Sans CJK's collection: index 1 is the Korean face (JP, KR, SC, TC, HK).
    index = 1 if path.suffix.lower() == ".ttc" else 0
    return ImageFont.truetype(str(path), size, index=index)


def _script_of(text: str) -> str:
    return "hangul" if any("\uac00" <= ch <= "\ud7a3" for ch in text) else "latin"


def text_picture(lines: list[str], *, size: int = 40, width: int = 1400, margin: int = 60) -> Image.Image:
    """Black text on white, one given line per line: what a scanner or a screenshot gives."""
    from PIL import ImageDraw

    fonts = [_font(_script_of(line), size) for line in lines]
    pitch = int(size * 1.6)
    image = Image.new("RGB", (width, 2 * margin + pitch * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for row, (line, font) in enumerate(zip(lines, fonts, strict=True)):
        draw.text((margin, margin + row * pitch), line, font=font, fill=(20, 20, 20))
    return image


def text_photo(lines: list[str], style: str, seed: int = 0, size: tuple[int, int] = (2016, 1512)) -> Image.Image:
    """A camera-like picture holding ``lines`` of text, ``size`` pixels.

    ``style``: ``"page"`` (a printed page on a table, slightly turned, unevenly lit, noisy),
    ``"receipt"`` (a narrow slip on a dark surface), ``"screenshot"`` (flat interface colours,
    no noise), ``"slide"`` (large white text on a coloured background) or ``"sign"`` (a plate
    with a few large words in an otherwise ordinary scene).
    """
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def scene() -> Image.Image:
        c0, c1 = rng.uniform(30, 220, 3), rng.uniform(30, 220, 3)
        t = (xx * rng.uniform(0.2, 1) + yy * rng.uniform(0.2, 1)) / (w + h)
        pixels = c0 + (c1 - c0) * t[..., None] + rng.normal(0, 5, (h, w, 3))
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 50)), int(rng.integers(0, h - 50))
            x1, y1 = x0 + int(rng.integers(40, w // 3)), y0 + int(rng.integers(40, h // 3))
            draw.ellipse((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        return image.filter(ImageFilter.GaussianBlur(2))

    def finish(image: Image.Image, noise: float, light: bool) -> Image.Image:
        pixels: np.ndarray = np.asarray(image, dtype=np.float32)
        if light:
            shade = 0.75 + 0.25 * (xx / w * rng.uniform(0.3, 1) + yy / h * rng.uniform(0.3, 1)) / 2
            pixels = pixels * shade[..., None]
        pixels = pixels + rng.normal(0, noise, pixels.shape)
        return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")

    if style == "screenshot":
        image = Image.new("RGB", size, (246, 247, 249))
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, w, h // 12), fill=(40, 90, 170))
        draw.rectangle((0, h // 12, w // 5, h), fill=(230, 232, 236))
        body = text_picture(lines, size=h // 30, width=w - w // 5 - 40, margin=h // 30)
        image.paste(body.crop((0, 0, body.width, min(body.height, h - h // 12 - 20))), (w // 5 + 20, h // 12 + 20))
        return image
    if style == "slide":
        colour = tuple(int(v) for v in rng.integers(10, 90, 3))
        image = Image.new("RGB", size, colour)
        draw = ImageDraw.Draw(image)
        for row, line in enumerate(lines[:6]):
            font = _font(_script_of(line), h // (9 if row == 0 else 16))
            draw.text((w // 12, h // 10 + row * h // 7), line, font=font, fill=(250, 250, 250))
        return finish(image, 2, light=False)
    if style == "sign":
        image = scene()
        draw = ImageDraw.Draw(image)
        font_size = h // 12
        fonts = [_font(_script_of(line), font_size) for line in lines[:2]]
        text_w = max(int(draw.textlength(line, font=font)) for line, font in zip(lines[:2], fonts, strict=False))
        if text_w > 0.8 * w:  # the plate fits the picture
            font_size = int(font_size * 0.8 * w / text_w)
            fonts = [_font(_script_of(line), font_size) for line in lines[:2]]
            text_w = max(int(draw.textlength(line, font=font)) for line, font in zip(lines[:2], fonts, strict=False))
        box_w, box_h = text_w + font_size, int(font_size * 1.6 * len(fonts)) + font_size // 2
        x0, y0 = int(rng.integers(0, max(1, w - box_w))), int(rng.integers(0, max(1, h - box_h)))
        dark = bool(rng.integers(0, 2))
        draw.rectangle((x0, y0, x0 + box_w, y0 + box_h), fill=(20, 70, 40) if dark else (235, 235, 225))
        for row, (line, font) in enumerate(zip(lines[:2], fonts, strict=False)):
            draw.text(
                (x0 + font_size // 2, y0 + font_size // 3 + int(row * font_size * 1.6)),
                line,
                font=font,
                fill=(245, 245, 245) if dark else (25, 25, 25),
            )
        return finish(image.rotate(float(rng.uniform(-4, 4)), resample=Image.Resampling.BICUBIC), 4, light=True)
    if style in ("page", "receipt"):
        if style == "page":
            text = text_picture(lines, size=h // 40, width=int(w * 0.7), margin=h // 20)
            paper = Image.new("RGB", (text.width, max(text.height, int(h * 0.85))), "white")
            paper.paste(text, (0, 0))
            background = scene()
        else:
            paper = text_picture(lines, size=h // 45, width=int(w * 0.3), margin=h // 40)
            background = Image.new("RGB", size, tuple(int(v) for v in rng.integers(20, 60, 3)))
        paper = paper.crop((0, 0, paper.width, min(paper.height, int(h * 0.9))))
        angle = float(rng.uniform(-3, 3))
        turned = paper.convert("RGBA").rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
        x0 = (w - turned.width) // 2 + int(rng.integers(-w // 20, w // 20))
        y0 = max(0, (h - turned.height) // 2)
        background.paste(turned, (x0, y0), turned)
        image = background.filter(ImageFilter.GaussianBlur(1.0))
        return finish(image, 6, light=True)
    raise ValueError(f"unknown style {style!r}")
