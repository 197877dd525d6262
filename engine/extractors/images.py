"""Images: decode a photo into a small RGB picture for CLIP, its capture time and camera.

Everything a camera or an editor writes is accepted when Pillow can decode it:
CMYK and grey JPEGs, 16-bit PNG and TIFF, palette images with transparency,
animations (the first frame is used), EXIF or XMP orientation, and HEIC/HEIF
(iPhone photos) through pillow-heif.  Files that are truncated, corrupt, not
images at all, or that claim more pixels than can be decoded safely raise
:class:`~engine.errors.ExtractionError`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ExtractionError, UnsupportedFileError
from ._common import check_file, describe, parse_datetime

# Pixels we are willing to hold decoded at once: 100 MP is about 400 MB as RGBA,
# already a lot beside a CLIP model.  JPEGs are decoded at 1/2, 1/4 or 1/8 scale
# (Image.draft), so far larger photos still pass.  Pillow itself refuses files
# claiming more than 2 x Image.MAX_IMAGE_PIXELS (~358 MP) before we can draft.
MAX_DECODED_PIXELS = 100_000_000

# EXIF tag numbers (see PIL.ExifTags).
_ORIENTATION = 0x0112
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME = 0x0132
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_TIME_ORIGINAL = 0x9011

_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# ftyp major brands of HEIF files whose pictures are HEVC-coded (HEIC) or may be
# (mif1/msf1: the generic HEIF brands); AVIF's own brands are Pillow's.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")

# First bytes of the formats Pillow reads; used only to word the error message
# ("corrupt PNG" versus "this .png is not an image at all").
_IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",  # BigTIFF
    b"MM\x00+",
    b"\x00\x00\x01\x00",  # ICO
)


@dataclass
class ExtractedImage:
    """One decoded image, ready for the CLIP image encoder and the thumbnail.

    ``image`` is RGB, EXIF orientation applied, alpha composited on white, and its
    longest side at most the ``max_side`` asked for.  ``width``/``height`` are the
    full-resolution size as the picture is displayed (after orientation).
    ``media_time`` is when the picture was taken, as the camera's local time.
    ``meta`` is JSON-serialisable: ``format``, ``mode``, ``frames``, and when
    known ``camera_make``, ``camera_model``, ``orientation``, ``offset_time``;
    ``warnings`` lists problems that did not stop the extraction.
    """

    image: Image.Image
    width: int
    height: int
    media_time: datetime | None
    meta: dict[str, Any] = field(default_factory=dict)


def extract_image(path: str | os.PathLike[str], max_side: int = 768, slack: float = 1.0) -> ExtractedImage:
    """Decode the image at ``path`` into an :class:`ExtractedImage`.

    ``max_side`` bounds the longest side of the returned picture (it is never
    enlarged).  JPEGs are decoded directly at a reduced scale, so a 24 MP photo
    costs about as much as a 1.5 MP one.  A picture whose longest side is at
    most ``slack`` times ``max_side`` (after that reduction) is kept as it is:
    for a picture that is shrunk again anyway (CLIP's input, a thumbnail), a
    resize by a few per cent only costs time.

    Raises :class:`ExtractionError` with a reason for a person when the file is
    missing, empty, not an image, truncated or corrupt, or too large to decode
    safely.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    if slack < 1:
        raise ValueError(f"slack must be at least 1, not {slack}")
    p, _size = check_file(path)
    try:
        return _extract(p, max_side, slack)
    except ExtractionError:
        raise
    except PermissionError as exc:
        raise ExtractionError("permission denied: Shoebox may not read this file") from exc
    except Image.DecompressionBombError as exc:
        raise ExtractionError(_too_large_message(exc)) from exc
    except MemoryError as exc:
        raise ExtractionError("not enough memory to decode this image") from exc
    except UnidentifiedImageError as exc:
        message = _unidentified_message(p)
        if message.startswith("HEIC/HEIF photos need"):
            raise UnsupportedFileError(message) from exc
        raise ExtractionError(message) from exc
    except Exception as exc:
        # Pillow's plugins raise OSError, SyntaxError, ValueError, EOFError,
        # struct.error, zlib.error ... for damaged files; all mean the same to a person.
        raise ExtractionError(_damaged_message(exc)) from exc


def open_image(path: str | os.PathLike[str], max_side: int) -> Image.Image:
    """The picture at ``path`` as RGB, upright, its longest side at most ``max_side``.

    Decoded exactly as :func:`extract_image` does (EXIF orientation, HEIC,
    transparency on white), for callers that need only the pixels at another
    size, such as text recognition.  Raises what :func:`extract_image` raises.
    """
    return extract_image(path, max_side=max_side).image


@functools.cache
def _heif_reader_problem() -> str | None:
    """Register pillow-heif's HEIC/HEIF reader with Pillow (once); ``None`` when it is ready.

    Otherwise the reason HEIC/HEIF photos cannot be read, written for a person
    and saying how to enable them.  Called on the first image decoded rather
    than at import, so that nothing pays for pillow-heif before a photo is read.
    """
    try:
        from pillow_heif import register_heif_opener
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "pillow_heif":
            state, command = "which is not installed", "pip install pillow-heif"
        else:
            state, command = f"which cannot be loaded ({describe(exc)})", "pip install --force-reinstall pillow-heif"
        return (
            f"HEIC/HEIF photos need the pillow-heif package, {state}: run `{command}` in Shoebox's "
            "Python environment, then retry the failed files (Retry failed, or `shoebox index --retry-failed`)"
        )
    # Pillow's own plugins first: its AVIF reader then keeps the AVIF files that
    # share HEIF's generic mif1 brand (this pillow-heif wheel decodes HEVC only).
    Image.init()
    # Depth maps and auxiliary images are never used: do not hold them in memory.
    register_heif_opener(depth_images=False, aux_images=False)
    return None


def _extract(p: Path, max_side: int, slack: float = 1.0) -> ExtractedImage:
    problem = _heif_reader_problem()
    if problem is not None and p.suffix.lower() in (".heic", ".heif"):
        raise UnsupportedFileError(problem)
    with Image.open(p) as im:
        fmt = im.format or "unknown"
        original_mode = im.mode
        stored_w, stored_h = im.size
        # Only the first frame is decoded.  n_frames walks the later frames'
        # headers (Pillow stops quietly at one cut off), never their pixels, so
        # an oversized or damaged later frame does not matter here.
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            im.seek(0)

        decode_w, decode_h = stored_w, stored_h
        if fmt in ("JPEG", "MPO"):
            scale = max_side / max(stored_w, stored_h)
            if scale < 1:
                # draft() picks the largest 1/2^k reduction that stays at least
                # this size, so the final resize only ever shrinks.
                im.draft(None, (max(1, round(stored_w * scale)), max(1, round(stored_h * scale))))
                decode_w, decode_h = im.size
        if decode_w * decode_h > MAX_DECODED_PIXELS:
            raise ExtractionError(f"image is too large to open safely ({_megapixels(stored_w * stored_h)} megapixels)")
        im.load()
        # Only after load(): for PNG, getexif() loads the pixels itself to find an
        # eXIf chunk after the image data, and a failed load there would leave a
        # half-decoded image behind that a second load() no longer rejects.
        warnings: list[str] = []
        exif_info = _read_exif(im, warnings)
        # libheif turns a HEIF picture upright itself (the container's irot/imir
        # boxes) and pillow-heif resets the EXIF orientation to 1 so that it is not
        # applied twice; the camera's value is recorded as for any photo.
        already_upright = fmt == "HEIF"
        camera_orientation = im.info.get("original_orientation") if already_upright else None
        if isinstance(camera_orientation, int) and 1 <= camera_orientation <= 8:
            exif_info["orientation"] = camera_orientation
        rgb = _to_rgb(im)

    if max(rgb.size) > max_side * slack:
        # Bicubic after a box pre-reduction: indistinguishable from Lanczos at
        # CLIP's 224 pixels and about twice as fast, which matters because
        # decoding shares the CPU with the model while indexing.
        rgb.thumbnail((max_side, max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    orientation = exif_info.get("orientation")
    transpose = None
    if isinstance(orientation, int) and not already_upright:
        transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    width, height = stored_w, stored_h
    if transpose is not None:
        rgb = rgb.transpose(transpose)
        if transpose in (
            Image.Transpose.TRANSPOSE,
            Image.Transpose.TRANSVERSE,
            Image.Transpose.ROTATE_90,
            Image.Transpose.ROTATE_270,
        ):
            width, height = stored_h, stored_w

    meta: dict[str, Any] = {"format": fmt, "mode": original_mode, "frames": frames}
    for key in ("camera_make", "camera_model", "orientation", "offset_time"):
        if exif_info.get(key) is not None:
            meta[key] = exif_info[key]
    if warnings:
        meta["warnings"] = warnings
    return ExtractedImage(image=rgb, width=width, height=height, media_time=exif_info.get("media_time"), meta=meta)


def _read_exif(im: Image.Image, warnings: list[str]) -> dict[str, Any]:
    """Orientation, capture time and camera from EXIF (or XMP orientation for PNG).

    Damaged EXIF is common and never a reason to skip a photo: the problem is
    recorded in ``warnings`` and the picture is used without it.
    """
    info: dict[str, Any] = {}
    try:
        exif = im.getexif()
    except Exception as exc:
        warnings.append(f"EXIF data is unreadable ({describe(exc)})")
        return info
    try:
        exif_ifd = exif.get_ifd(_EXIF_IFD)
    except Exception as exc:
        warnings.append(f"EXIF sub-directory is unreadable ({describe(exc)})")
        exif_ifd = {}

    orientation = exif.get(_ORIENTATION)
    if isinstance(orientation, tuple) and orientation:
        orientation = orientation[0]
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        info["orientation"] = orientation
    elif orientation is not None:
        warnings.append(f"EXIF orientation {orientation!r} is not valid; ignored")

    # DateTimeOriginal is the shutter time; DateTimeDigitized is usually the same;
    # DateTime (IFD0) is when the file was last changed, so it comes last.
    for tag, source in ((_DATETIME_ORIGINAL, exif_ifd), (_DATETIME_DIGITIZED, exif_ifd), (_DATETIME, exif)):
        value = parse_datetime(_exif_text(source.get(tag)))
        if value is not None:
            info["media_time"] = value
            break
    for key, tag, source in (
        ("camera_make", _MAKE, exif),
        ("camera_model", _MODEL, exif),
        ("offset_time", _OFFSET_TIME_ORIGINAL, exif_ifd),
    ):
        text = _exif_text(source.get(tag))
        if text:
            info[key] = text
    return info


def _exif_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", " ").strip()
    return text or None


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparent parts become white."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im.copy()
    if mode.startswith("I") or mode == "F":
        return _wide_grey_to_rgb(im)
    palette_alpha = mode == "P" and im.palette is not None and im.palette.mode == "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or palette_alpha or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _wide_grey_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grey images to 8-bit RGB by scaling, not clipping.

    Pillow's own ``convert("L")`` clips these at 255, which turns a normal
    16-bit photo almost entirely white.
    """
    arr = np.asarray(im)
    if arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 1.0
        scaled = np.nan_to_num(arr, nan=0.0) / max(1.0, top) * 255.0
    elif im.mode.startswith("I;16") or (arr.size and int(arr.max()) <= 0xFFFF):
        scaled = arr.astype(np.float32) / 257.0
    else:
        scaled = arr.astype(np.float64) / max(int(arr.max()), 1) * 255.0
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    rgb = Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")
    transparency = im.info.get("transparency")
    if isinstance(transparency, int):
        # PNG tRNS for grey images names one sample value that is fully transparent.
        white = np.full(arr.shape, 255, np.uint8)
        mask = Image.fromarray(np.where(arr == transparency, 255, 0).astype(np.uint8), "L")
        rgb.paste(Image.fromarray(np.repeat(white[..., None], 3, axis=2), "RGB"), mask=mask)
    return rgb


def _megapixels(pixels: int) -> str:
    mp = pixels / 1_000_000
    return f"{mp:,.0f}" if mp >= 10 else f"{mp:.1f}"


def _too_large_message(exc: BaseException) -> str:
    m = re.search(r"\((\d+) pixels\)", str(exc))
    if m:
        return f"image is too large to open safely ({_megapixels(int(m.group(1)))} megapixels)"
    return "image is too large to open safely (it claims more pixels than Shoebox decodes)"


def _unidentified_message(p: Path) -> str:
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        return f"file cannot be read: {exc.strerror or exc}"
    if head.startswith(_IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image data is truncated or corrupt (the header cannot be parsed)"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        problem = _heif_reader_problem()
        if problem is not None:
            return problem
        return "HEIC/HEIF image is corrupt or uses a coding this pillow-heif cannot decode"
    suffix = p.suffix.lower() or "no extension"
    return f"file ends with {suffix} but is not an image"


def _damaged_message(exc: BaseException) -> str:
    text = describe(exc)
    if "Decompressed data too large" in text:
        # PNG zTXt/iTXt/iCCP chunks that inflate to megabytes: a known denial-of-service trick.
        return "image has a metadata chunk too large to decompress safely (decompression bomb)"
    if "truncated" in text.lower():
        return "image data is truncated or corrupt (the file ends too early)"
    return f"image data is truncated or corrupt ({text})"


def save_thumbnail(image: Image.Image, dest: str | os.PathLike[str], size: int = 320) -> None:
    """Write ``image`` as a JPEG thumbnail whose longest side is at most ``size``.

    The file appears at ``dest`` complete or not at all (written to a temporary
    file in the same folder, then renamed over ``dest``); missing folders are
    created.  Raises ``OSError`` when the disk or folder cannot be written: that
    is a problem with the library location, not with the photo, so it is not an
    :class:`ExtractionError`.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    dest = Path(dest)
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    if thumb.mode != "RGB":
        thumb = _to_rgb(thumb)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            thumb.save(f, format="JPEG", quality=85)
        # No fsync: a thumbnail lost in a power cut is simply made again.
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
