"""Extractors: pure functions that turn one file into what the encoders need.

One module per media family: :mod:`.images` (pixels, EXIF time, thumbnails),
:mod:`.documents` (text per page, split into chunks), :mod:`.audio` (16 kHz mono
samples for Whisper), :mod:`.video` (chosen frames and the sound track) and
:mod:`.chunking` (CLIP-sized text spans).  They touch no
database, no model and no Qt; a bad file raises
:class:`engine.errors.ExtractionError` whose message is the reason shown to the
user beside the file.

This module only knows which file names belong to which family, so that the
scanner can decide without importing Pillow, PyAV or pypdf.
"""

from __future__ import annotations

import os
from pathlib import PurePath

# .heic/.heif are listed even when pillow-heif cannot be imported: such a photo is
# then recorded as failed with how to enable it, never skipped without a word.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
DOCUMENT_EXTENSIONS = {".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx", ".odt", ".pptx", ".epub", ".eml"}
# .wma: PyAV's bundled FFmpeg always has the asf demuxer and the wmav1/wmav2 decoders.
AUDIO_EXTENSIONS = {".mp3", ".wav", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma"}
# Videos: containers and codecs that PyAV's bundled FFmpeg demuxes and decodes (H.264, HEVC, AV1, VP8/9,
# MPEG-2/4, ProRes, DV, MJPEG, WMV/VC-1 ...).  .m4a stays audio: it is MP4 with sound only.  Plain .ts is
# left out: in most folders it is TypeScript source, not an MPEG transport stream (.mts/.m2ts are kept).
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".wmv", ".asf", ".3gp", ".3g2", ".mts",
                    ".m2ts", ".mpg", ".mpeg", ".vob", ".ogv", ".flv", ".dv", ".mxf"}  # fmt: skip


def _pillow_reads_avif() -> bool:
    # Pillow >= 11.3 wheels bundle libavif; older or self-built Pillows may not.
    try:
        from PIL import features

        return bool(features.check_module("avif"))
    except Exception:  # any failure here only means "no AVIF", never an error for the caller
        return False


if _pillow_reads_avif():
    IMAGE_EXTENSIONS.add(".avif")


def kind_for_path(path: str | os.PathLike[str]) -> str | None:
    """Return ``"image"``, ``"document"``, ``"audio"`` or ``"video"`` for a file name, else ``None``.

    Decided by the extension alone, case-insensitively (``IMG_0001.JPG`` is an
    image); the content is checked later by the extractor, which raises if a
    ``.jpg`` is not an image.
    """
    suffix = PurePath(os.fspath(path)).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in DOCUMENT_EXTENSIONS:
        return "document"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


__all__ = ["AUDIO_EXTENSIONS", "DOCUMENT_EXTENSIONS", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "kind_for_path"]
