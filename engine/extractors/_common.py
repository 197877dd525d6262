"""Helpers shared by the extractors: checking a path before a decoder sees it, and dates."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..errors import ExtractionError


def check_file(path: str | os.PathLike[str]) -> tuple[Path, int]:
    """Return ``(path, size_in_bytes)`` for a readable, non-empty regular file.

    Raises :class:`ExtractionError` naming the problem (missing, a folder,
    unreadable, empty), so that decoders only ever see a file that exists.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ExtractionError("file not found (was it moved or deleted?)") from None
    except PermissionError:
        raise ExtractionError("permission denied: Shoebox may not read this file") from None
    except OSError as exc:
        raise ExtractionError(f"file cannot be read: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ExtractionError("this is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ExtractionError("not a regular file (device, pipe or socket)")
    if st.st_size == 0:
        raise ExtractionError("file is empty (0 bytes)")
    return p, st.st_size


def describe(exc: BaseException) -> str:
    """A short one-line description of a library exception, for the end of a message."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return text or type(exc).__name__


# EXIF writes "2003:12:14 12:01:44"; some tools write ISO 8601 instead, PDFs and
# audio tags use "-" or "." between date parts.  Seconds and time may be missing.
_DATETIME_RE = re.compile(
    r"^\s*(\d{4})[:\-./](\d{1,2})[:\-./](\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:[.,]\d+)?)?"
    r"\s*(Z|[+\-]\d{2}:?\d{2})?"
)


def parse_datetime(text: object, *, to_local: bool = False) -> datetime | None:
    """Parse a date/time string as written by cameras, PDFs or audio taggers.

    Returns a naive ``datetime``.  With ``to_local=False`` the wall-clock time is
    kept as written and any UTC offset is dropped (EXIF and PDF times are the
    local time where the picture or document was made).  With ``to_local=True``
    a value that carries an offset (``Z`` or ``+02:00``) is converted to this
    machine's local time, which is what a recorder's UTC ``creation_time`` means.
    Returns ``None`` for empty, zeroed (``0000:00:00``) or impossible values.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str):
        return None
    m = _DATETIME_RE.match(text.replace("\x00", ""))
    if not m:
        return None
    year, month, day, hour, minute, second, tz = m.groups()
    try:
        value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    if value.year < 1800:
        return None
    if to_local and tz:
        minutes = 0 if tz == "Z" else int(tz[1:3]) * 60 + int(tz[-2:])
        zone = timezone(timedelta(minutes=-minutes if tz.startswith("-") else minutes))
        # Outside the platform's time range: keep the time as written.
        with contextlib.suppress(OverflowError, OSError, ValueError):
            value = value.replace(tzinfo=zone).astimezone().replace(tzinfo=None)
    return value


def container_tags(container: Any, stream: Any, keys: tuple[str, ...]) -> dict[str, str]:
    """PyAV metadata of a file and one of its streams (the container's first), lower-cased, for ``keys``."""
    merged: dict[str, str] = {}
    for source in (container.metadata, stream.metadata):
        for key, value in dict(source).items():
            if isinstance(value, str) and value.strip():
                merged.setdefault(key.lower(), value.strip())
    return {key: merged[key] for key in keys if key in merged}


def ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's message without the errno and file name PyAV adds."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    return describe(exc)


def declared_duration(container: Any, stream: Any) -> float | None:
    """The length in seconds a PyAV stream (else its container) declares; None when it says nothing."""
    if stream.duration is not None and stream.time_base is not None:
        value = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        value = container.duration / 1_000_000
    else:
        return None
    return value if value > 0 else None
