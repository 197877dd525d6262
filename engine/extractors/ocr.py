"""Text in pictures: Tesseract (through tesserocr) for photos that hold text and scanned PDF pages.

:func:`ocr_status` says whether text recognition can run here and, when it
cannot, why and what to install; nothing in this module raises because
Tesseract or its language data is missing.  :func:`likely_has_text` is a cheap
test on the small picture indexing already decodes, so that ordinary photos
never pay for Tesseract; :func:`photo_text` combines the two for indexing.
:func:`recognise` runs Tesseract on one picture and :func:`pdf_page_images`
renders PDF pages (pypdfium2) for it.

Tesseract's language data is not in the tesserocr wheels (they bundle only
libtesseract): it comes from the system (``tesseract-ocr-eng`` and
``tesseract-ocr-kor`` on Debian and Ubuntu, ``tesseract-lang`` with Homebrew),
or from the folder ``TESSDATA_PREFIX`` names.  No Qt, no database, no model.
"""

from __future__ import annotations

import functools
import glob
import itertools
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ExtractionError
from ._common import check_file, describe

# The languages recognised when their data is installed, in Tesseract's names,
# with the Debian package that installs each and the name a person knows.
LANGUAGES = ("eng", "kor")
_LANGUAGE_PACKAGES = {"eng": "tesseract-ocr-eng", "kor": "tesseract-ocr-kor"}
_LANGUAGE_NAMES = {"eng": "English", "kor": "Korean"}

# SHOEBOX_OCR=off (or 0, no, false) turns text recognition off.
OCR_ENV = "SHOEBOX_OCR"
_OFF_VALUES = {"off", "0", "no", "false", "disabled"}

# The longest side a photo is decoded at for Tesseract.  Tesseract reads best
# with letters 20-40 pixels tall; a phone photo of a printed page at 1600
# pixels has body text about that size, and Tesseract's time grows with the
# pixel count (at 2000 it read no more on the photos of text we tried).
OCR_SIDE = 1600
# Rendering resolution of scanned PDF pages: 300 dpi is what scanners write and
# what Tesseract is trained for.
PDF_DPI = 300
# Words Tesseract is less sure of than this (0-100) are left out: on photos
# without text it "reads" texture as short, low-confidence words.
MIN_WORD_CONFIDENCE = 60
# Fewer letters and digits than this in all credible words is no text.
MIN_TEXT_CHARACTERS = 4


def _tessdata_candidates() -> list[str]:
    """Folders where Tesseract's language data usually lives, most specific first."""
    folders = sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)  # Debian/Ubuntu: 5, 4.00
    folders += [
        "/usr/share/tesseract-ocr/tessdata",
        "/usr/share/tessdata",  # Fedora, Arch
        "/usr/local/share/tessdata",  # built from source, Homebrew on Intel Macs
        "/usr/local/share/tesseract-ocr/tessdata",
        "/opt/homebrew/share/tessdata",  # Homebrew on Apple silicon
        "/opt/local/share/tessdata",  # MacPorts
        os.path.join(sys.prefix, "share", "tessdata"),  # conda
    ]
    if os.name == "nt":
        for base in (os.environ.get("PROGRAMFILES"), os.environ.get("LOCALAPPDATA")):
            if base:
                folders.append(os.path.join(base, "Tesseract-OCR", "tessdata"))
                folders.append(os.path.join(base, "Programs", "Tesseract-OCR", "tessdata"))
    return folders


# Module level so that a test can point it elsewhere.
TESSDATA_CANDIDATES: tuple[str, ...] = tuple(_tessdata_candidates())


@dataclass(frozen=True)
class OcrStatus:
    """Whether text recognition runs here.

    ``available`` is True when Tesseract and at least one of :data:`LANGUAGES`
    can be used; ``languages`` are those (Tesseract's names, ``("eng", "kor")``).
    ``reason`` is ``None`` when everything is there; otherwise a sentence for a
    person: why recognition is off and what to install, or, when it is on,
    which language is missing.  ``missing`` lists the languages without data;
    ``tessdata`` is the folder the data is read from.
    """

    available: bool
    reason: str | None
    languages: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    tessdata: str | None = None

    def describe(self) -> str:
        """One line for ``shoebox status`` and the app: "on (English, Korean)" or the reason."""
        if not self.available:
            return self.reason or "text recognition is off"
        names = ", ".join(_LANGUAGE_NAMES.get(code, code) for code in self.languages)
        return f"on ({names})" + (f"; {self.reason}" if self.reason else "")


def ocr_status() -> OcrStatus:
    """Whether text recognition can run here, and why not; never raises.

    Reads ``SHOEBOX_OCR`` and ``TESSDATA_PREFIX`` each call; the work behind an
    answer (importing tesserocr, finding and loading the language data) is done
    once per distinct setting.
    """
    return _status(os.environ.get(OCR_ENV, ""), os.environ.get("TESSDATA_PREFIX", ""), TESSDATA_CANDIDATES)


@functools.lru_cache(maxsize=8)
def _status(setting: str, prefix: str, candidates: tuple[str, ...]) -> OcrStatus:
    if setting.strip().lower() in _OFF_VALUES:
        return OcrStatus(
            False, f"text recognition is off: {OCR_ENV}={setting.strip()} is set (unset it to read text in pictures)"
        )
    try:
        import tesserocr
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "tesserocr":
            state, command = "is not installed", "pip install tesserocr"
        else:
            state, command = f"cannot be loaded ({describe(exc)})", "pip install --force-reinstall tesserocr"
        return OcrStatus(
            False, f"text recognition is off: the tesserocr package {state} (run `{command}` in Shoebox's environment)"
        )

    folders: list[str] = []
    if prefix:
        # Tesseract 4 and later read TESSDATA_PREFIX as the tessdata folder itself; 3 as its parent.
        folders += [prefix, os.path.join(prefix, "tessdata")]
    folders += candidates
    best: tuple[str, tuple[str, ...]] | None = None
    for folder in folders:
        present = tuple(code for code in LANGUAGES if os.path.isfile(os.path.join(folder, f"{code}.traineddata")))
        if present and (best is None or len(present) > len(best[1])):
            best = (folder, present)
        if len(present) == len(LANGUAGES):
            break
    if best is None:
        packages = " ".join(_LANGUAGE_PACKAGES[code] for code in LANGUAGES)
        where = f" (TESSDATA_PREFIX={prefix} holds none)" if prefix else ""
        return OcrStatus(
            False,
            f"text recognition is off: Tesseract's language data was not found{where} "
            f"(on Debian/Ubuntu: sudo apt install {packages}; with Homebrew: brew install tesseract-lang; "
            "or set TESSDATA_PREFIX to the folder holding eng.traineddata)",
            missing=LANGUAGES,
        )
    folder, languages = best
    missing = tuple(code for code in LANGUAGES if code not in languages)
    # Loading the data once proves it is data this Tesseract reads (Tesseract 3's
    # files, or a cut-off download, are not).
    try:
        api = tesserocr.PyTessBaseAPI(path=_tesseract_path(folder), lang="+".join(languages))
        api.End()
    except Exception as exc:
        return OcrStatus(
            False,
            f"text recognition is off: Tesseract cannot load its language data in {folder} ({describe(exc)}); "
            f"reinstall it (on Debian/Ubuntu: sudo apt install --reinstall "
            f"{' '.join(_LANGUAGE_PACKAGES[c] for c in languages)})",
            missing=LANGUAGES,
            tessdata=folder,
        )
    reason = None
    if missing:
        names = " and ".join(_LANGUAGE_NAMES[code] for code in missing)
        packages = " ".join(_LANGUAGE_PACKAGES[code] for code in missing)
        reason = (
            f"{names} text is not recognised: its language data is not in {folder} "
            f"(on Debian/Ubuntu: sudo apt install {packages})"
        )
    return OcrStatus(True, reason, languages, missing, folder)


def _tesseract_path(folder: str) -> str:
    # tesserocr hands the path to Tesseract, which joins file names to it directly.
    return folder if folder.endswith(("/", os.sep)) else folder + os.sep


# --------------------------------------------------------------------------- detection

# Block side (pixels of the <=448-px preview) over which text evidence is gathered:
# about one line of small print.
_BLOCK = 16
# A pixel step at least this large (0-255 grey) is an edge a letter could make.
_EDGE = 40


def likely_has_text(image: Image.Image) -> bool:
    """Whether ``image`` (an RGB preview, longest side about 448) likely holds readable text.

    A cheap test (a few milliseconds, numpy only) meant to spare ordinary photos
    the cost of Tesseract: it looks for runs of small blocks whose pixels are
    two-toned (ink and paper, letters and sign) and crossed by many short strokes,
    which printed pages, receipts, screenshots, slides and signs have and scenery
    rarely does.  Pictures smaller than :data:`MIN_TEXT_PICTURE` are never said
    to hold text, nor are pictures whose only text is lettering taller than
    about a tenth of the preview (a shop name across the whole photo).  It errs
    towards yes for fine, regular high-contrast pattern (tiles, bare branches
    against the sky); Tesseract then finds no credible words and nothing is kept.
    """
    if max(image.size) < MIN_TEXT_PICTURE[0] or min(image.size) < MIN_TEXT_PICTURE[1]:
        return False
    return _text_blocks(_grey(image)) >= _MIN_TEXT_BLOCKS


# Longest and shortest side below which a picture is too small to hold text worth reading.
MIN_TEXT_PICTURE = (160, 48)
# Text-like blocks in lines needed to say yes: about two short words.
_MIN_TEXT_BLOCKS = 6


def _text_blocks(g: np.ndarray) -> int:
    """How many blocks of ``g`` (grey levels) look like text and sit beside another such block.

    A block looks like text when its pixels are two-toned (nearly all within a
    quarter of its range of its darkest or lightest level, the range above 70),
    and short strokes (a rise and a fall of more than :data:`_EDGE` within three
    pixels) cross more than 3 % and under half of it along rows and more than
    1 % along columns.  Compiled (:mod:`._text_kernel`): it runs for every photo.
    """
    from ._text_kernel import text_blocks

    return int(text_blocks(np.ascontiguousarray(g, dtype=np.float32), _BLOCK, float(_EDGE)))


def _grey(image: Image.Image) -> np.ndarray:
    """The picture as float32 grey levels, reduced to at most about 512 pixels on its longest side."""
    if max(image.size) > 640:
        factor = max(image.size) // 448
        image = image.reduce(factor)
    grey = image.convert("L") if image.mode != "L" else image
    return np.asarray(grey, dtype=np.float32)


# --------------------------------------------------------------------------- recognition

_local = threading.local()
# Tesseract runs at most on a quarter of the cores at once (one on a laptop):
# indexing decodes on every core and the CLIP model's thread team slows far
# more than its share when other threads crowd its cores.
MAX_CONCURRENT_RECOGNITIONS = max(1, (os.cpu_count() or 1) // 4)
_running = threading.BoundedSemaphore(MAX_CONCURRENT_RECOGNITIONS)


def _api() -> Any:
    """This thread's Tesseract, made on first use (a TessBaseAPI must not be shared between threads)."""
    status = ocr_status()
    if not status.available:
        raise ExtractionError(status.reason or "text recognition is off")
    key = (status.tessdata, status.languages)
    api = getattr(_local, "api", None)
    if api is not None and getattr(_local, "key", None) == key:
        return api
    import tesserocr

    assert status.tessdata is not None  # an available status names its folder
    try:
        api = tesserocr.PyTessBaseAPI(
            path=_tesseract_path(status.tessdata), lang="+".join(status.languages), psm=tesserocr.PSM.AUTO
        )
    except Exception as exc:
        raise ExtractionError(f"text recognition failed to start ({describe(exc)})") from exc
    old = getattr(_local, "api", None)
    if old is not None:
        old.End()
    _local.api, _local.key = api, key
    return api


def recognise(image: Image.Image, *, dpi: int | None = None, sparse: bool = False) -> str:
    """The text Tesseract reads in ``image``, one line per line; ``''`` when it finds nothing credible.

    Words Tesseract is not reasonably sure of are left out.  ``dpi`` is the
    picture's resolution when known (rendered PDF pages).  ``sparse=True`` looks
    for text scattered anywhere in the picture (signs, labels, a receipt on a
    table) instead of analysing it as a page of columns and paragraphs: on
    photos it finds more, on scanned pages it may lose the reading order.  Each
    thread keeps its own Tesseract, so threads may call this at once (at most
    :data:`MAX_CONCURRENT_RECOGNITIONS` recognise together; the others wait).

    Raises :class:`ExtractionError` with a reason for a person when text
    recognition is off (see :func:`ocr_status`) or Tesseract fails.
    """
    import tesserocr

    api = _api()
    picture = image if image.mode in ("RGB", "L") else image.convert("RGB")

    def read(mode: int) -> str:
        try:
            api.SetPageSegMode(mode)
            api.SetImage(picture)
            # Photos carry no useful resolution; 300 keeps Tesseract from guessing (and saying so).
            api.SetSourceResolution(int(dpi or 300))
            api.Recognize()
            words = list(_words(api.GetIterator(), tesserocr))
        except Exception as exc:
            raise ExtractionError(f"text recognition failed ({describe(exc)})") from exc
        finally:
            api.Clear()
        return _layout(words, paragraphs=not sparse)

    with _running:
        return _read_with(read, tesserocr, sparse)


def _read_with(read: Any, tesserocr: Any, sparse: bool) -> str:
    if sparse:
        return read(tesserocr.PSM.SPARSE_TEXT)
    text = read(tesserocr.PSM.AUTO)
    if any(_is_hangul(ch) for ch in text):
        # Tesseract's page layout analysis takes whole lines of Hangul for pictures
        # and drops them; read as one block of text, such a page keeps them.
        block = read(tesserocr.PSM.SINGLE_BLOCK)
        if _credible_characters(block) > _credible_characters(text):
            return block
    return text


def _credible_characters(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


@dataclass
class _Word:
    text: str
    confidence: float
    box: tuple[int, int, int, int]
    new_block: bool
    new_line: bool


def _words(iterator: Any, tesserocr: Any) -> Iterable[_Word]:
    if iterator is None:
        return
    level = tesserocr.RIL.WORD
    while True:
        try:
            text = iterator.GetUTF8Text(level)
        except RuntimeError:  # tesserocr's way of saying the word is empty
            text = ""
        if text:
            yield _Word(
                text=text.strip(),
                confidence=float(iterator.Confidence(level)),
                box=tuple(iterator.BoundingBox(level) or (0, 0, 0, 0)),
                new_block=bool(iterator.IsAtBeginningOf(tesserocr.RIL.PARA)),
                new_line=bool(iterator.IsAtBeginningOf(tesserocr.RIL.TEXTLINE)),
            )
        if not iterator.Next(level):
            return


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u3131" <= ch <= "\u318e"


def _layout(words: Sequence[_Word], *, paragraphs: bool = True) -> str:
    """Credible words as lines of text, with ``paragraphs`` a blank line between; ``''`` when too little is credible.

    A line whose credible words are all single letters or digits is dropped:
    that is what Tesseract makes of texture ("1", "l", "T").
    """
    lines: list[list[_Word]] = []
    blank_before: list[bool] = []
    for word in words:
        if word.new_line or not lines:
            lines.append([])
            blank_before.append(paragraphs and word.new_block and bool(lines[:-1]))
        if word.text and word.confidence >= MIN_WORD_CONFIDENCE and any(ch.isalnum() for ch in word.text):
            lines[-1].append(word)
    out: list[str] = []
    for line, blank in zip(lines, blank_before, strict=True):
        if not any(sum(ch.isalnum() for ch in word.text) >= 2 for word in line):
            continue
        if blank and out:
            out.append("")
        out.append(_join_line(line))
    text = "\n".join(out).strip()
    if _credible_characters(text) < MIN_TEXT_CHARACTERS:
        return ""
    return text


def _join_line(line: Sequence[_Word]) -> str:
    """Words of one line, separated by spaces, except where Tesseract split one Korean word.

    Tesseract's Korean model often cuts a word between syllables ("예 약 은"),
    with gaps hardly narrower than real spaces.  Hangul is searched as
    substrings, so a space too many hides a word from keyword search while one
    too few does not: two Hangul words less than half the line's height apart
    are joined.
    """
    height = max((w.box[3] - w.box[1] for w in line), default=0)
    parts = [line[0].text]
    for before, word in itertools.pairwise(line):
        gap = word.box[0] - before.box[2]
        joined = before.text and word.text and _is_hangul(before.text[-1]) and _is_hangul(word.text[0])
        parts.append("" if joined and gap < height / 2 else " ")
        parts.append(word.text)
    return "".join(parts)


# --------------------------------------------------------------------------- photos and PDF pages


def photo_text(path: str | os.PathLike[str], preview: Image.Image) -> str:
    """The text in the photo at ``path``, ``''`` for photos without (returned without running Tesseract).

    ``preview`` is the photo already decoded for indexing (RGB, longest side
    about 448); only when :func:`likely_has_text` says yes is the photo decoded
    again at :data:`OCR_SIDE` (EXIF orientation applied, HEIC read as for
    indexing) and recognised.  Returns ``''`` when text recognition is off.

    Raises :class:`ExtractionError` when the photo cannot be decoded again or
    Tesseract fails.
    """
    if not ocr_status().available or not likely_has_text(preview):
        return ""
    from .images import open_image

    return recognise(open_image(path, OCR_SIDE), sparse=True)


# pdfium keeps global state: one document at a time, across threads.
_pdfium_lock = threading.Lock()


def pdf_page_images(
    path: str | os.PathLike[str], pages: Iterable[int], dpi: int = PDF_DPI
) -> Iterable[tuple[int, Image.Image]]:
    """Render the 1-based ``pages`` of the PDF at ``path`` at ``dpi``; yields ``(page, RGB image)``.

    Pages beyond the document's end are skipped.  Pages are rendered one at a
    time under a lock (pdfium is not thread-safe), each page's image handed out
    before the next is rendered.  Raises :class:`ExtractionError` when the PDF
    cannot be opened by pdfium (damaged, or needs a password).
    """
    import pypdfium2 as pdfium

    p, _size = check_file(path)
    wanted = list(pages)
    scale = dpi / 72
    for number in wanted:
        with _pdfium_lock:
            try:
                document = pdfium.PdfDocument(p)
            except pdfium.PdfiumError as exc:
                raise ExtractionError(f"PDF pages cannot be rendered ({describe(exc)})") from exc
            try:
                if not 1 <= number <= len(document):
                    continue
                page = document[number - 1]
                try:
                    # Scans are often several thousand pixels a side already; a
                    # page larger than A3 at this scale is rendered smaller.
                    width, height = page.get_size()
                    page_scale = min(scale, 5000 / max(width, height, 1))
                    bitmap = page.render(scale=page_scale, grayscale=False)
                    image = bitmap.to_pil().convert("RGB")
                finally:
                    page.close()
            except ExtractionError:
                raise
            except Exception as exc:
                raise ExtractionError(f"PDF page {number} cannot be rendered ({describe(exc)})") from exc
            finally:
                document.close()
        yield number, image


def pdf_pages_text(path: str | os.PathLike[str], pages: Iterable[int], dpi: int = PDF_DPI) -> dict[int, str]:
    """Recognised text of the 1-based ``pages`` of a PDF (see :func:`pdf_page_images` and :func:`recognise`)."""
    return {number: recognise(image, dpi=dpi) for number, image in pdf_page_images(path, pages, dpi)}


__all__ = [
    "LANGUAGES",
    "OCR_SIDE",
    "OcrStatus",
    "likely_has_text",
    "ocr_status",
    "pdf_page_images",
    "pdf_pages_text",
    "photo_text",
    "recognise",
]
