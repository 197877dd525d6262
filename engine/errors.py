"""Exceptions raised by the engine.

Every message is written for a person: it says what went wrong and what to do
about it.  The CLI and the desktop app show ``str(error)`` and never a
traceback; they are the only places that translate these into output.
"""

from __future__ import annotations


class ShoeboxError(Exception):
    """Base class of every error the engine raises on purpose.

    ``ShoeboxError(message, plain=None)``: ``message`` (``str(error)``) is what the CLI
    prints, and may name a command or an environment variable that fixes the problem.
    ``plain`` is the same facts for a window, where there is no command line: it names no
    command, option or environment variable.  None when ``message`` already is such a text;
    :attr:`for_window` is whichever applies.
    """

    def __init__(self, *args: object, plain: str | None = None) -> None:
        super().__init__(*args)
        self.plain = plain

    @property
    def for_window(self) -> str:
        """The message for a window: ``plain`` when given, else ``str(self)``."""
        return self.plain or str(self)


class UsageError(ShoeboxError):
    """The caller asked for something that cannot be done (bad argument, missing file)."""


class LibraryError(ShoeboxError):
    """The library database cannot be opened or used."""


class SchemaTooNewError(LibraryError):
    """The database was written by a newer Shoebox than this one."""


class ModelMismatchError(LibraryError):
    """The library was built with a different embedding model than the one configured."""


class ModelUnavailableError(ShoeboxError):
    """Model weights are missing, unreadable, or may not be downloaded."""


class ExtractionError(ShoeboxError):
    """A file could not be read; the message is the reason shown beside the file."""


class UnsupportedFileError(ExtractionError):
    """The file's type is not one Shoebox indexes."""


class NoPictureError(ExtractionError):
    """A video file holds sound but no picture; it can be read as a recording instead."""


class IndexFileError(ShoeboxError):
    """An on-disk vector index cannot be used; rebuild it from the store."""


class IndexCorruptError(IndexFileError):
    """The index file is truncated, damaged or not an index file at all."""


class IndexStaleError(IndexFileError):
    """The index file was built from an older state of the library."""


class Cancelled(ShoeboxError):
    """Raised inside long work when the cancel check says stop (caught by the engine)."""


class LlmError(ShoeboxError):
    """The local LLM endpoint (SHOEBOX_LLM_URL) could not be reached or gave no usable answer."""
