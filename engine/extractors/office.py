"""Word (.docx), OpenDocument text (.odt), PowerPoint (.pptx) and EPUB e-books.

All four are zip archives of XML.  Word and OpenDocument files flow their text
into pages only when a program lays them out, so each is one text; a
presentation is one text per slide and an e-book one per spine item (the
files a reader shows in order: cover, chapters, notes), the HTML read as the
HTML reader reads web pages.  Paragraphs are separated by blank lines so that
chunks end at them; a table is one line per row, its cells separated by tabs.

Each reader returns ``(pages, media_time, meta)`` for
:func:`engine.extractors.documents.extract_document` and raises
:class:`ExtractionError` with a reason for a person: damaged or cut off,
password-protected, DRM-protected, no text.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import ExtractionError
from ._common import describe, parse_datetime

# What a person calls each kind of file, in messages.
FORMAT_NAMES = {".docx": "Word document", ".odt": "OpenDocument text", ".pptx": "PowerPoint file", ".epub": "e-book"}

# XML is what these readers hold in memory (several times over, as trees); a
# few hundred MB of it is no document a person wrote but a zip bomb.  Pictures
# and fonts are not counted: they are never decompressed.
MAX_XML_BYTES = 256 * 1024 * 1024
_XML_SUFFIXES = (".xml", ".rels", ".xhtml", ".html", ".htm", ".opf", ".ncx")

# Password-protected Office files are not zip archives but OLE compound files
# holding an "EncryptedPackage" stream (the name is stored in UTF-16).
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_DC = "http://purl.org/dc/elements/1.1/"
_DCTERMS = "http://purl.org/dc/terms/"
_OPF = "http://www.idpf.org/2007/opf"
_CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"
_XMLENC = "http://www.w3.org/2001/04/xmlenc#"

Pages = tuple[list[str], datetime | None, dict[str, Any]]


def read_office_document(p: Path) -> Pages:
    """Pages, creation time and metadata of a .docx, .odt, .pptx or .epub file."""
    suffix = p.suffix.lower()
    name = FORMAT_NAMES[suffix]
    _check_archive(p, name)
    readers: dict[str, Callable[[Path], Pages]] = {
        ".docx": _read_docx,
        ".odt": _read_odt,
        ".pptx": _read_pptx,
        ".epub": _read_epub,
    }
    try:
        pages, media_time, meta = readers[suffix](p)
    except (ExtractionError, MemoryError, PermissionError):
        raise
    except zipfile.BadZipFile as exc:
        raise ExtractionError(f"this {name} is damaged ({describe(exc)})") from exc
    except Exception as exc:
        # The libraries fail on broken files in their own ways (KeyError for a
        # missing part, XMLSyntaxError, ValueError for a wrong content type).
        raise ExtractionError(
            f"this {name} is damaged and cannot be read ({type(exc).__name__}: {describe(exc)})"
        ) from exc
    if not any(page.strip() for page in pages):
        raise ExtractionError(f"this {name} contains no text")
    meta["page_count"] = len(pages)
    return pages, media_time, meta


def _check_archive(p: Path, name: str) -> None:
    with open(p, "rb") as f:
        head = f.read(8)
    if head == _OLE_MAGIC:
        if _contains(p, _ENCRYPTED_PACKAGE):
            raise ExtractionError(f"this {name} is password-protected; Shoebox cannot read it")
        raise ExtractionError(f"this file is in an older binary format (Office 97–2003), not a {name} as its name says")
    if not zipfile.is_zipfile(p):
        raise ExtractionError(f"this {name} is damaged or cut off (it is not a complete zip archive)")
    with zipfile.ZipFile(p) as zf:
        xml_bytes = sum(i.file_size for i in zf.infolist() if i.filename.lower().endswith(_XML_SUFFIXES))
    if xml_bytes > MAX_XML_BYTES:
        raise ExtractionError(
            f"this {name} is too large to index ({xml_bytes / 2**20:,.0f} MB of text markup; "
            f"the limit is {MAX_XML_BYTES // 2**20} MB)"
        )


def _contains(p: Path, needle: bytes) -> bool:
    overlap = len(needle) - 1
    tail = b""
    with open(p, "rb") as f:
        while block := f.read(1 << 20):
            if needle in tail + block:
                return True
            tail = block[-overlap:]
    return False


def _xml(data: bytes) -> Any:
    """Parse XML without entities, DTDs or network access (no billion laughs, no XXE)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.fromstring(data, parser)


def _join(blocks: list[str]) -> str:
    return "\n\n".join(b for b in blocks if b.strip())


def _clean(text: str) -> str:
    # python-pptx writes a line break inside a paragraph as a vertical tab.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\v", "\n").replace("\x00", "").strip()


def _local_time(value: Any) -> datetime | None:
    """An Office creation time (UTC by the standard) as this machine's wall clock."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if aware.year < 1800:
            return None
        return aware.astimezone().replace(tzinfo=None)
    return parse_datetime(value, to_local=True) if isinstance(value, str) else None


def _ooxml_properties(p: Path, meta: dict[str, Any]) -> datetime | None:
    """Title, author and subject from docProps/core.xml; the creation time is returned.

    Read here, not through python-docx or python-pptx: both invent a title
    ("Word Document") for a file that has no properties part.
    """
    with zipfile.ZipFile(p) as zf:
        try:
            data = zf.read("docProps/core.xml")
        except KeyError:
            return None
    try:
        root = _xml(data)
    except Exception as exc:
        meta.setdefault("warnings", []).append(f"document properties are unreadable ({describe(exc)})")
        return None
    for tag, key in ((f"{{{_DC}}}title", "title"), (f"{{{_DC}}}creator", "author"), (f"{{{_DC}}}subject", "subject")):
        value = " ".join((root.findtext(tag) or "").split())
        if value:
            meta[key] = value
    return _local_time((root.findtext(f"{{{_DCTERMS}}}created") or "").strip())


# --------------------------------------------------------------------------- Word


def _read_docx(p: Path) -> Pages:
    import docx
    from docx.table import Table

    document = docx.Document(str(p))
    blocks: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            blocks.append(_docx_table(block))
        else:
            blocks.append(_clean(block.text))
    blocks.extend(_docx_notes(document))
    meta: dict[str, Any] = {"format": "docx"}
    media_time = _ooxml_properties(p, meta)
    return [_join(blocks)], media_time, meta


def _docx_table(table: Any) -> str:
    rows: list[str] = []
    for row in table.rows:
        seen: set[int] = set()
        cells: list[str] = []
        for cell in row.cells:
            # A merged cell is returned once for every grid column it spans.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = " ".join(_clean(cell.text).split())
            if text:
                cells.append(text)
        if cells:
            rows.append("\t".join(cells))
    return "\n".join(rows)


def _docx_notes(document: Any) -> Iterator[str]:
    """Footnote and endnote paragraphs, after the body, in their order of definition."""
    for part in document.part.package.iter_parts():
        if str(part.partname) not in ("/word/footnotes.xml", "/word/endnotes.xml"):
            continue
        root = _xml(part.blob)
        for note in root:
            if note.get(f"{{{_W}}}type"):  # separators, not notes
                continue
            for paragraph in note.iter(f"{{{_W}}}p"):
                text = _clean("".join(t.text or "" for t in paragraph.iter(f"{{{_W}}}t")))
                if text:
                    yield text


# --------------------------------------------------------------------------- OpenDocument


def _read_odt(p: Path) -> Pages:
    with zipfile.ZipFile(p) as zf:
        try:
            manifest = zf.read("META-INF/manifest.xml")
        except KeyError:
            manifest = b""
    if b"encryption-data" in manifest:
        raise ExtractionError("this OpenDocument text is password-protected; Shoebox cannot read it")

    from odf.namespaces import DCNS, METANS
    from odf.opendocument import load

    document = load(str(p))
    blocks: list[str] = []
    notes: list[str] = []
    _odf_blocks(document.text, blocks, notes)
    blocks.extend(notes)

    meta: dict[str, Any] = {"format": "odt"}
    fields: dict[tuple[str, str], str] = {}
    for node in document.meta.childNodes:
        if node.nodeType == node.ELEMENT_NODE and node.qname not in fields:
            fields[node.qname] = " ".join(_odf_inline(node, []).split())
    for qname, key in (((DCNS, "title"), "title"), ((DCNS, "subject"), "subject")):
        if fields.get(qname):
            meta[key] = fields[qname]
    author = fields.get((METANS, "initial-creator")) or fields.get((DCNS, "creator"))
    if author:
        meta["author"] = author
    media_time = parse_datetime(fields.get((METANS, "creation-date")))  # local time, as LibreOffice writes it
    return [_join(blocks)], media_time, meta


def _odf_blocks(node: Any, out: list[str], notes: list[str]) -> None:
    from odf.namespaces import TABLENS, TEXTNS

    for child in node.childNodes:
        if child.nodeType != child.ELEMENT_NODE:
            continue
        if child.qname in ((TEXTNS, "p"), (TEXTNS, "h")):
            out.append(_clean(_odf_inline(child, notes)))
        elif child.qname == (TABLENS, "table"):
            out.append(_odf_table(child, notes))
        elif child.qname in ((TEXTNS, "tracked-changes"), (TEXTNS, "table-of-content")):
            continue  # deleted text, and headings repeated
        else:
            _odf_blocks(child, out, notes)  # lists, sections, frames, text boxes


def _odf_inline(node: Any, notes: list[str]) -> str:
    from odf.namespaces import TEXTNS

    parts: list[str] = []
    for child in node.childNodes:
        if child.nodeType == child.TEXT_NODE:
            parts.append(child.data)
        elif child.nodeType != child.ELEMENT_NODE:
            continue
        elif child.qname == (TEXTNS, "s"):
            parts.append(" " * int(child.getAttrNS(TEXTNS, "c") or 1))
        elif child.qname == (TEXTNS, "tab"):
            parts.append("\t")
        elif child.qname == (TEXTNS, "line-break"):
            parts.append("\n")
        elif child.qname == (TEXTNS, "note"):
            body: list[str] = []
            for part in child.childNodes:
                if part.nodeType == part.ELEMENT_NODE and part.qname == (TEXTNS, "note-body"):
                    _odf_blocks(part, body, notes)
            notes.extend(b for b in body if b.strip())
        else:
            parts.append(_odf_inline(child, notes))
    return "".join(parts)


def _odf_table(table: Any, notes: list[str]) -> str:
    from odf.namespaces import TABLENS
    from odf.table import TableRow

    rows: list[str] = []
    for row in table.getElementsByType(TableRow):
        cells: list[str] = []
        for cell in row.childNodes:
            if cell.nodeType == cell.ELEMENT_NODE and cell.qname == (TABLENS, "table-cell"):
                content: list[str] = []
                _odf_blocks(cell, content, notes)
                text = " ".join(" ".join(content).split())
                if text:
                    cells.append(text)
        if cells:
            rows.append("\t".join(cells))
    return "\n".join(rows)


# --------------------------------------------------------------------------- PowerPoint


def _read_pptx(p: Path) -> Pages:
    from pptx import Presentation

    presentation = Presentation(str(p))
    pages: list[str] = []
    for slide in presentation.slides:
        blocks: list[str] = []
        title = slide.shapes.title
        if title is not None and title.has_text_frame:
            blocks.append(_clean(title.text_frame.text))
        for shape in _pptx_shapes(slide.shapes):
            if title is not None and shape.shape_id == title.shape_id:
                continue
            if shape.has_text_frame:
                blocks.append(_clean(shape.text_frame.text))
            elif getattr(shape, "has_table", False):
                blocks.append(_pptx_table(shape.table))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None:
                blocks.append(_clean(notes.text))
        pages.append(_join(blocks))
    if not pages:
        raise ExtractionError("this PowerPoint file has no slides")
    meta: dict[str, Any] = {"format": "pptx"}
    media_time = _ooxml_properties(p, meta)
    return pages, media_time, meta


def _pptx_shapes(shapes: Any) -> Iterator[Any]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _pptx_shapes(shape.shapes)
        else:
            yield shape


def _pptx_table(table: Any) -> str:
    rows: list[str] = []
    for row in table.rows:
        cells = [" ".join(_clean(cell.text).split()) for cell in row.cells if not cell.is_spanned]
        if any(cells):
            rows.append("\t".join(c for c in cells if c))
    return "\n".join(rows)


# --------------------------------------------------------------------------- EPUB


def _read_epub(p: Path) -> Pages:
    from .documents import decode_text, html_to_text

    meta: dict[str, Any] = {"format": "epub"}
    warnings: list[str] = []
    with zipfile.ZipFile(p) as zf:
        names = {name: name for name in zf.namelist()}
        folded = {name.lower(): name for name in names}
        try:
            container = _xml(zf.read("META-INF/container.xml"))
        except KeyError:
            raise ExtractionError("this e-book is damaged (META-INF/container.xml is missing)") from None
        rootfile = container.find(f".//{{{_CONTAINER}}}rootfile")
        opf_path = rootfile.get("full-path") if rootfile is not None else None
        if not opf_path or opf_path not in names:
            raise ExtractionError("this e-book is damaged (its package document is missing)")
        opf = _xml(zf.read(opf_path))
        base = posixpath.dirname(opf_path)

        for tag, key in (("title", "title"), ("subject", "subject")):
            value = " ".join((opf.findtext(f".//{{{_DC}}}{tag}") or "").split())
            if value:
                meta[key] = value
        creators = [" ".join((c.text or "").split()) for c in opf.iter(f"{{{_DC}}}creator")]
        if any(creators):
            meta["author"] = ", ".join(c for c in creators if c)

        manifest = {
            item.get("id"): posixpath.normpath(posixpath.join(base, unquote(item.get("href") or "")))
            for item in opf.iter(f"{{{_OPF}}}item")
        }
        spine = [manifest.get(ref.get("idref")) for ref in opf.iter(f"{{{_OPF}}}itemref")]
        if not spine:
            raise ExtractionError("this e-book is damaged (its reading order lists no files)")

        protected = _epub_encrypted(zf)
        if any(path in protected for path in spine if path):
            raise ExtractionError("this e-book is DRM-protected; Shoebox cannot read it")

        pages: list[str] = []
        for number, path in enumerate(spine, start=1):
            member = names.get(path or "") or folded.get((path or "").lower())
            if member is None:
                warnings.append(f"section {number}: {path or 'an unknown file'} is missing from the e-book")
                pages.append("")
                continue
            try:
                text, _ = decode_text(zf.read(member), html=True)
                body, _title = html_to_text(text)
            except ExtractionError as exc:
                warnings.append(f"section {number}: {exc}")
                body = ""
            except zipfile.BadZipFile as exc:
                warnings.append(f"section {number}: damaged ({describe(exc)})")
                body = ""
            pages.append(_clean(body))
    if warnings:
        meta["warnings"] = warnings
    return pages, None, meta


def _epub_encrypted(zf: zipfile.ZipFile) -> set[str]:
    """Files META-INF/encryption.xml lists as encrypted (fonts are, harmlessly, in many books)."""
    try:
        root = _xml(zf.read("META-INF/encryption.xml"))
    except KeyError:
        return set()
    return {posixpath.normpath(unquote(ref.get("URI") or "")) for ref in root.iter(f"{{{_XMLENC}}}CipherReference")}
