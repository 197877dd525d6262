"""Documents: text files, Markdown, HTML, PDF and office files into page texts and passage-sized chunks.

Text is never assumed to be UTF-8: a byte-order mark wins, then strict UTF-8,
then (for HTML) a declared charset, then ``charset_normalizer``'s guess, so
EUC-KR, Shift_JIS, Big5 or Windows-1252 files read as their authors wrote them.
PDFs are read with pypdf, one text per page; encrypted PDFs are opened when
they need no password.  Word, OpenDocument, PowerPoint and EPUB files are
read by :mod:`.office`, mail messages (``.eml``) by :mod:`.mail`.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ..errors import ExtractionError, UnsupportedFileError
from ._common import check_file, describe, parse_datetime
from .chunking import TokenLen, chunk_text

# Text files larger than this are not prose a person wrote; they are logs or
# data dumps, and reading them whole would hold hundreds of MB of text.
MAX_TEXT_BYTES = 64 * 1024 * 1024

_TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
_HTML_SUFFIXES = {".html", ".htm"}
_OFFICE_SUFFIXES = {".docx", ".odt", ".pptx", ".epub"}
_MAIL_SUFFIXES = {".eml"}
# Formats whose texts are numbered units, and what a person calls one.  Their
# chunks carry the unit's number as ``page``; the others are one text.
PAGE_UNITS = {".pdf": "page", ".pptx": "slide", ".epub": "section"}

# Legacy encodings whose superset decodes the same bytes identically and also
# the extra characters real files use (the WHATWG encoding standard does the
# same mapping for web pages).
_SUPERSET_ENCODING = {
    "euc_kr": "cp949",
    "ks_c_5601_1987": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "ascii": "cp1252",
    "latin_1": "cp1252",
    "iso8859_1": "cp1252",
}
# Single-byte Latin code pages charset_normalizer can confuse with Windows-1252
# when a text uses only the characters they share or nearly so (Portuguese
# "ã" read as Romanian "ă").  Windows-1252 is by far the most common of them.
_LATIN_SINGLE_BYTE = {
    "cp1250", "cp1254", "cp1257", "cp1258", "cp775", "cp850", "cp852", "cp858",
    "iso8859_2", "iso8859_9", "iso8859_13", "iso8859_15", "latin_1", "mac_latin2", "mac_roman",
}  # fmt: skip
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)


@dataclass
class TextChunk:
    """A span of one page's text, small enough for one embedding.

    ``text == pages[page - 1][char_start:char_end]`` for PDFs, presentations
    and e-books (``page`` is the 1-based page, slide or spine section; see
    :func:`page_unit`) and ``pages[0][char_start:char_end]`` for other
    documents (``page`` is ``None``).  ``recognised`` is True for chunks of a
    scanned page whose text was recognised by OCR (it may hold misread words).
    """

    text: str
    page: int | None
    char_start: int
    char_end: int
    recognised: bool = False


@dataclass
class ExtractedDocument:
    """The text of one document and its chunks.

    ``pages`` holds one string for text, Markdown, HTML, Word and OpenDocument
    files and mail messages, one per page for PDFs, one per slide for
    presentations and one per spine section (cover, chapter, notes ...) for e-books; blank ones are
    empty strings, so indexes match their numbers.  ``media_time`` is the
    PDF's, Word, OpenDocument or PowerPoint file's creation date or a mail
    message's Date, else ``None``.  ``meta`` is JSON-serialisable: ``format``,
    ``encoding`` (text and HTML), ``page_count``, ``title``/``author``/``subject`` when present,
    ``recognised_pages`` when some pages' text was recognised by OCR, and
    ``warnings`` for problems that did not stop the extraction.
    ``recognised_pages`` lists the 1-based PDF pages without a text layer whose
    text was recognised by OCR.
    """

    pages: list[str]
    chunks: list[TextChunk]
    media_time: datetime | None
    meta: dict[str, Any] = field(default_factory=dict)
    recognised_pages: list[int] = field(default_factory=list)


def extract_document(
    path: str | os.PathLike[str],
    token_len: TokenLen | None = None,
    *,
    max_tokens: int = 75,
    overlap_tokens: int = 15,
    ocr: bool = True,
) -> ExtractedDocument:
    """Read the document at ``path`` and split its text into chunks.

    ``token_len``, ``max_tokens`` and ``overlap_tokens`` are passed to
    :func:`~engine.extractors.chunking.chunk_text` (by default CLIP's tokenizer
    and context; indexing passes the text model's).  The format is chosen by extension: ``.txt``,
    ``.md``, ``.markdown``, ``.html``, ``.htm``, ``.pdf``, ``.docx``, ``.odt``, ``.pptx``, ``.epub``,
    ``.eml`` (see :func:`~engine.extractors.mail.read_mail`).
    PDF pages without a text layer (scans) are read by OCR when ``ocr`` is true
    and text recognition is available (:func:`~engine.extractors.ocr.ocr_status`).

    Raises :class:`UnsupportedFileError` for any other extension and
    :class:`ExtractionError` with a reason for a person when the file is
    missing, empty, binary, has no text, is damaged or cut off, needs a
    password (or is DRM-protected), or is a PDF with no text layer (scanned
    pages) whose text cannot be recognised: the reason then says why (text
    recognition is off, and what to install, or it found no text).
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in _TEXT_SUFFIXES | _HTML_SUFFIXES | _OFFICE_SUFFIXES | _MAIL_SUFFIXES | {".pdf"}:
        raise UnsupportedFileError(f"{suffix or 'files without an extension'} is not a document type Shoebox reads")
    p, size = check_file(path)
    recognised: list[int] = []
    try:
        if suffix == ".pdf":
            pages, media_time, meta, recognised = _read_pdf(p, ocr=ocr)
        elif suffix in _OFFICE_SUFFIXES:
            from .office import read_office_document

            pages, media_time, meta = read_office_document(p)
        elif suffix in _MAIL_SUFFIXES:
            from .mail import read_mail

            pages, media_time, meta = read_mail(p, size)
        else:
            pages, media_time, meta = _read_text_file(p, size, html=suffix in _HTML_SUFFIXES)
    except ExtractionError:
        raise
    except PermissionError as exc:
        raise ExtractionError("permission denied: Shoebox may not read this file") from exc
    except MemoryError as exc:
        raise ExtractionError("not enough memory to read this document") from exc
    except Exception as exc:
        raise ExtractionError(f"document could not be read ({type(exc).__name__}: {describe(exc)})") from exc

    numbered = suffix in PAGE_UNITS
    chunks: list[TextChunk] = []
    for number, page_text in enumerate(pages, start=1):
        by_ocr = number in recognised
        for start, end in chunk_text(page_text, max_tokens, min(overlap_tokens, max_tokens - 1), token_len=token_len):
            chunks.append(TextChunk(page_text[start:end], number if numbered else None, start, end, by_ocr))
    return ExtractedDocument(pages=pages, chunks=chunks, media_time=media_time, meta=meta, recognised_pages=recognised)


def page_unit(path: str | os.PathLike[str]) -> str:
    """What a document's locator ``page`` counts, for a person: ``"slide"``, ``"section"`` or ``"page"``.

    Decided by the file name's extension, as extraction is; ``"page"`` for
    anything else.
    """
    return PAGE_UNITS.get(Path(os.fspath(path)).suffix.lower(), "page")


# --------------------------------------------------------------------------- text


def _read_text_file(p: Path, size: int, *, html: bool) -> tuple[list[str], None, dict[str, Any]]:
    if size > MAX_TEXT_BYTES:
        raise ExtractionError(
            f"text file is too large to index ({size / 2**20:,.0f} MB; the limit is {MAX_TEXT_BYTES // 2**20} MB)"
        )
    data = p.read_bytes()
    text, encoding = decode_text(data, html=html)
    meta: dict[str, Any] = {"format": "html" if html else ("markdown" if p.suffix.lower() != ".txt" else "text")}
    meta["encoding"] = encoding
    if html:
        text, title = html_to_text(text)
        if title:
            meta["title"] = title
        if not text.strip() and title:
            text = title
    text = _normalise_newlines(text)
    if not text.strip():
        raise ExtractionError("document contains no text (only whitespace or markup)")
    meta["page_count"] = 1
    return [text], None, meta


def decode_text(data: bytes, *, html: bool = False) -> tuple[str, str]:
    """Decode bytes of a text file; return ``(text, encoding_name)``.

    Order: byte-order mark, strict UTF-8, the ``<meta charset>`` of an HTML
    page, then ``charset_normalizer``.  Raises :class:`ExtractionError` when the
    bytes look binary or no encoding fits.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), encoding
            except UnicodeDecodeError:
                break  # a BOM followed by something else; let detection decide
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if html:
        m = _META_CHARSET_RE.search(data[:4096])
        if m:
            declared = _python_codec(m.group(1).decode("ascii", "replace"))
            if declared:
                try:
                    return data.decode(declared), declared
                except UnicodeDecodeError:
                    pass  # the declaration is wrong; fall through to detection
    return _detect_and_decode(data)


def _detect_and_decode(data: bytes) -> tuple[str, str]:
    import charset_normalizer

    results = charset_normalizer.from_bytes(data)
    best = results.best()
    if best is None:
        raise ExtractionError("file is not text (no character encoding fits; binary file?)")
    encoding = best.encoding
    if "\x00" in str(best) and not encoding.startswith("utf_16") and not encoding.startswith("utf_32"):
        raise ExtractionError("file is not text (it contains binary data)")
    if encoding in _LATIN_SINGLE_BYTE:
        for other in results:
            if (
                "cp1252" in other.could_be_from_charset
                and other.chaos <= best.chaos + 0.01
                and other.coherence >= best.coherence - 0.05
            ):
                encoding = "cp1252"
                break
    encoding = _SUPERSET_ENCODING.get(encoding, encoding)
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; latin-1 maps every byte.
        if encoding == "cp1252":
            return data.decode("latin-1"), "latin-1"
        return str(best), best.encoding


def _python_codec(label: str) -> str | None:
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    name = name.replace("-", "_")
    return _SUPERSET_ENCODING.get(name, name)


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


# Elements whose end (or start) is a paragraph break in the text we keep.
_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "th",
    "thead", "tfoot", "tr", "ul",
}  # fmt: skip
_BLANK_LINE_RE = re.compile(r"\n[ \t\r\f\v]*\n")
_BR = "\ue000"  # stands for <br> until whitespace has been collapsed (not whitespace itself)
_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "iframe", "object"}


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0
        self._in_title = False
        self._in_head = False
        self.title_parts: list[str] = []

    def _break(self) -> None:
        text = "".join(self._current)
        self._current = []
        if self._pre_depth:
            text = text.strip("\n")
            if text.strip():
                self.blocks.append(text)
            return
        # A blank line in the source is no break to a browser, but it is how
        # hand-written pages without <p> separate paragraphs; keeping it lets
        # the chunker end chunks there.
        for paragraph in _BLANK_LINE_RE.split(text):
            collapsed = " ".join(paragraph.split())
            collapsed = re.sub(f" ?{_BR} ?", "\n", collapsed).strip()
            if collapsed:
                self.blocks.append(collapsed)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag == "head":
            self._in_head = True
            return
        if tag == "body":
            self._in_head = False  # </head> is optional in HTML
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
            return
        if tag in _BLOCK_TAGS:
            self._break()
        if tag == "pre":
            self._pre_depth += 1
        elif tag == "br" and not self._skip_depth:
            self._current.append("\n" if self._pre_depth else _BR)
        elif tag == "img" and not self._skip_depth:
            alt = dict(attrs).get("alt")
            if alt:
                self._current.append(f" {alt} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if tag == "head":
            self._in_head = False
            return
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if tag in _BLOCK_TAGS:
            self._break()
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip_depth and not self._in_head:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._break()


def html_to_text(markup: str) -> tuple[str, str | None]:
    """Visible text of an HTML page, paragraphs separated by blank lines, and its title.

    Scripts, styles and the ``<head>`` are dropped; ``<br>`` becomes a line
    break; ``<pre>`` keeps its spacing; ``<img alt>`` text is kept.
    """
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    title = " ".join("".join(parser.title_parts).split()) or None
    return "\n\n".join(parser.blocks), title


# --------------------------------------------------------------------------- PDF

_pypdf_quiet_lock = threading.Lock()
_pypdf_quiet_depth = 0
_pypdf_saved_level = logging.NOTSET


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's "recovered from a damaged file" warnings while we read.

    pypdf logs one line per oddity it works around (wrong xref offsets, bad
    objects); across a library of real PDFs that floods the log with messages
    nobody can act on.  Errors still pass.  Counted, so that overlapping
    extractions on several threads restore the level only when the last ends.
    """
    global _pypdf_quiet_depth, _pypdf_saved_level
    logger = logging.getLogger("pypdf")
    with _pypdf_quiet_lock:
        if _pypdf_quiet_depth == 0:
            _pypdf_saved_level = logger.level
            logger.setLevel(logging.ERROR)
        _pypdf_quiet_depth += 1
    try:
        yield
    finally:
        with _pypdf_quiet_lock:
            _pypdf_quiet_depth -= 1
            if _pypdf_quiet_depth == 0:
                logger.setLevel(_pypdf_saved_level)


def _read_pdf(p: Path, *, ocr: bool) -> tuple[list[str], datetime | None, dict[str, Any], list[int]]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    with open(p, "rb") as f:
        if b"%PDF-" not in f.read(1024):
            raise ExtractionError(f"file ends with {p.suffix.lower()} but is not a PDF")

    warnings: list[str] = []
    with _quiet_pypdf():
        try:
            reader = PdfReader(p, strict=False)
        except DependencyError as exc:
            raise ExtractionError(_aes_message()) from exc
        except MemoryError:
            raise
        except Exception as exc:
            # PdfReadError mostly, but a damaged file can make pypdf fail in any
            # way (KeyError, struct.error, RecursionError ...).
            raise ExtractionError(f"PDF is damaged or truncated and cannot be read ({describe(exc)})") from exc

        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise ExtractionError(_aes_message()) from exc
            except NotImplementedError as exc:
                raise ExtractionError(f"PDF uses an encryption Shoebox cannot read ({describe(exc)})") from exc
            except Exception as exc:
                raise ExtractionError(f"PDF is encrypted and its encryption data is damaged ({describe(exc)})") from exc
            if not opened:
                raise ExtractionError("PDF is encrypted; Shoebox cannot read password-protected PDFs")

        try:
            page_count = len(reader.pages)
        except FileNotDecryptedError as exc:
            raise ExtractionError("PDF is encrypted; Shoebox cannot read password-protected PDFs") from exc
        except DependencyError as exc:
            raise ExtractionError(_aes_message()) from exc
        except Exception as exc:
            raise ExtractionError(f"PDF is damaged: its page list cannot be read ({describe(exc)})") from exc
        if page_count == 0:
            raise ExtractionError("PDF has no pages")

        pages: list[str] = []
        failed_pages: list[int] = []
        for number in range(1, page_count + 1):
            try:
                text = reader.pages[number - 1].extract_text() or ""
            except DependencyError as exc:
                raise ExtractionError(_aes_message()) from exc
            except MemoryError:
                raise
            except Exception as exc:
                # One damaged page should not hide the other ninety-nine.
                failed_pages.append(number)
                warnings.append(f"page {number}: text could not be extracted ({describe(exc)})")
                text = ""
            pages.append(_normalise_newlines(text))

        info = _pdf_info(reader, warnings)

    if failed_pages and len(failed_pages) == page_count:
        raise ExtractionError(f"PDF is damaged: no page's text could be extracted ({warnings[0]})")
    recognised = _recognise_scanned_pages(p, pages, failed_pages, warnings, ocr=ocr)
    meta: dict[str, Any] = {"format": "pdf", "page_count": page_count}
    if reader.is_encrypted:
        meta["encrypted"] = True
    media_time = info.pop("media_time", None)
    meta.update(info)
    if recognised:
        meta["recognised_pages"] = recognised
    if warnings:
        meta["warnings"] = warnings
    return pages, media_time, meta, recognised


# A page with fewer visible characters than this has no real text layer: a scan
# often carries a stamped page number or a scanner app's name and nothing else.
_SCANNED_PAGE_CHARACTERS = 16


def _recognise_scanned_pages(
    p: Path, pages: list[str], failed_pages: list[int], warnings: list[str], *, ocr: bool
) -> list[int]:
    """Put OCR text into ``pages`` (in place) for pages without a text layer; return their numbers.

    Raises :class:`ExtractionError` when no page has text and none can be
    recognised, saying why.
    """
    scanned = [
        number
        for number, text in enumerate(pages, start=1)
        if number not in failed_pages and sum(not ch.isspace() for ch in text) < _SCANNED_PAGE_CHARACTERS
    ]
    has_text = any(page.strip() for page in pages)
    if not scanned:
        return []
    from .ocr import ocr_status, pdf_pages_text

    status = ocr_status()
    if not ocr or not status.available:
        why = status.reason if ocr else "text recognition was not asked for"
        if not has_text:
            raise ExtractionError(f"PDF has no text layer (scanned pages?) and {why}")
        warnings.append(f"{_page_list(scanned)} without a text layer not read: {why}")
        return []
    recognised: list[int] = []
    for number, text in pdf_pages_text(p, scanned).items():
        if sum(ch.isalnum() for ch in text) > sum(ch.isalnum() for ch in pages[number - 1]):
            pages[number - 1] = text
            recognised.append(number)
    if not any(page.strip() for page in pages):
        raise ExtractionError("PDF has no text layer (scanned pages?) and text recognition found no text on its pages")
    return recognised


def _page_list(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"page {numbers[0]}"
    return "pages " + ", ".join(str(n) for n in numbers)


def _aes_message() -> str:
    return "PDF is encrypted with AES; reading it needs the Python package 'cryptography', which is not installed"


def _pdf_info(reader: Any, warnings: list[str]) -> dict[str, Any]:
    """Title, author, subject and creation time from the document information dictionary."""
    out: dict[str, Any] = {}
    try:
        info = reader.metadata
    except Exception as exc:
        warnings.append(f"document information is unreadable ({describe(exc)})")
        return out
    if not info:
        return out
    for key, name in (("/Title", "title"), ("/Author", "author"), ("/Subject", "subject")):
        try:
            value = _pdf_string(info.get(key))
        except Exception as exc:
            warnings.append(f"{name} is unreadable ({describe(exc)})")
            continue
        if value:
            out[name] = value
    try:
        raw_date = _pdf_string(info.get("/CreationDate"))
    except Exception:
        raw_date = None
    if raw_date:
        out["creation_date_raw"] = raw_date
        # The standard form is compact ("D:20150604133406-06'00'"); a few
        # producers write ISO 8601 instead.
        when = _parse_pdf_compact_date(raw_date) or parse_datetime(raw_date)
        if when is not None:
            out["media_time"] = when
    return out


def _pdf_string(value: Any) -> str | None:
    """A document-information string as text, repairing titles stored as raw UTF-8."""
    if value is None:
        return None
    if hasattr(value, "get_object"):
        value = value.get_object()
    raw: bytes | None
    text: str | None
    if isinstance(value, bytes):
        # pypdf hands back bytes it could not decode at all.
        raw, text = bytes(value), None
    else:
        raw, text = getattr(value, "original_bytes", None), str(value)
    # Strings without a byte-order mark are PDFDocEncoding by the standard, but
    # many Windows tools write UTF-8 there ("Microsoft Word - トランス..." shows
    # as mojibake in every other reader).
    if raw and not raw.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF8)) and max(raw) >= 0x80:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if text is None:
                text = raw.decode("cp1252", "replace")
    if text is None:
        text = raw.decode("ascii", "replace") if raw else ""
    return " ".join(text.replace("\x00", " ").split()) or None


_PDF_DATE_RE = re.compile(r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:$|[Zz+\-'])")


def _parse_pdf_compact_date(raw: str) -> datetime | None:
    """``D:YYYYMMDDHHmmSS+HH'mm'`` as the wall-clock time written (the offset is dropped)."""
    m = _PDF_DATE_RE.match(raw.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) if g else None for g in m.groups())
    if year is None or year < 1800:
        return None
    try:
        return datetime(year, month or 1, day or 1, hour or 0, minute or 0, second or 0)
    except ValueError:
        return None
