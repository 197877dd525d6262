"""Word, OpenDocument, PowerPoint and EPUB files, written here by their own libraries, then read and indexed."""

from __future__ import annotations

import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.errors import ExtractionError
from engine.extractors import kind_for_path
from engine.extractors.documents import extract_document, page_unit

KOREAN = "등대지기는 새벽마다 갈매기를 세었다"
CREATED = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Harbour notes"
    document.core_properties.author = "Mira Okafor"
    document.core_properties.created = CREATED
    document.add_heading("Lighthouse inventory", level=1)
    document.add_paragraph("The keeper counted forty gannets on the breakwater.")
    document.add_paragraph(KOREAN)
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "lamp oil"
    table.cell(0, 1).text = "twelve barrels"
    table.cell(1, 0).merge(table.cell(1, 2)).text = "spare wicks in the cellar"
    document.add_paragraph("Closing remark about the foghorn.")
    document.save(str(path))
    return path


def make_odt(path: Path) -> Path:
    from odf import dc, meta, table, text
    from odf.opendocument import OpenDocumentText

    document = OpenDocumentText()
    document.meta.addElement(dc.Title(text="Orchard ledger"))
    document.meta.addElement(meta.InitialCreator(text="Tomas Reyes"))
    document.meta.addElement(meta.CreationDate(text="2020-09-10T08:30:00"))
    document.text.addElement(text.H(outlinelevel=1, text="Apple harvest"))
    paragraph = text.P(text="The quince trees fruited early this autumn.")
    note = text.Note(id="ftn1", noteclass="footnote")
    note.addElement(text.NoteCitation(text="1"))
    body = text.NoteBody()
    body.addElement(text.P(text="Footnote about the beehives."))
    note.addElement(body)
    paragraph.addElement(note)
    document.text.addElement(paragraph)
    document.text.addElement(text.P(text=KOREAN))
    grid = table.Table(name="Yield")
    grid.addElement(table.TableColumn(numbercolumnsrepeated=2))
    for left, right in (("pears", "ninety crates"), ("plums", "sixty crates")):
        row = table.TableRow()
        for value in (left, right):
            cell = table.TableCell()
            cell.addElement(text.P(text=value))
            row.addElement(cell)
        grid.addElement(row)
    document.text.addElement(grid)
    document.save(str(path))
    return path


def make_pptx(path: Path) -> Path:
    from pptx import Presentation

    presentation = Presentation()
    presentation.core_properties.title = "Glacier survey"
    presentation.core_properties.author = "Ines Alvarez"
    slides = (
        ("Glacier survey", "Opening slide", None),
        ("Meltwater findings", "The moraine retreated eleven metres.", "Remember to mention the snow petrels."),
        ("한국어 슬라이드", KOREAN, None),
    )
    for title, body, notes in slides:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    presentation.save(str(path))
    return path


def make_epub(path: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("shoebox-test-book")
    book.set_title("The Tide Almanac")
    book.set_language("en")
    book.add_author("Kofi Mensah")
    chapters = [
        ("Spring tides", "<h1>Spring tides</h1><p>The <b>estuary</b> floods twice daily.</p><script>x=1</script>"),
        ("Neap tides", "<h1>Neap tides</h1><p>Herons wade the mudflats at dusk.</p>"),
        ("바다", f"<h1>바다</h1><p>{KOREAN}</p>"),
    ]
    items = []
    for number, (title, body) in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=title, file_name=f"chap_{number}.xhtml", lang="en")
        item.content = f"<html><head><title>{title}</title></head><body>{body}</body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [*items, "nav"]
    epub.write_epub(str(path), book)
    return path


MAKERS = {".docx": make_docx, ".odt": make_odt, ".pptx": make_pptx, ".epub": make_epub}


def test_office_types_are_documents() -> None:
    for suffix in MAKERS:
        assert kind_for_path(f"report{suffix.upper()}") == "document"
    assert [page_unit(f"a{s}") for s in (".pdf", ".pptx", ".EPUB", ".docx", ".txt")] == [
        "page", "slide", "section", "page", "page",
    ]  # fmt: skip


def test_slides_and_sections_are_named_so_where_a_passage_is_described() -> None:
    from engine.answer import Passage, describe_location
    from engine.cli import _locator_text

    where = {"page": 3, "char_start": 0, "char_end": 9}
    assert [_locator_text(where, f"/x/talk{s}") for s in (".pdf", ".pptx", ".epub")] == [
        " p.3", " slide 3", " section 3",
    ]  # fmt: skip
    passage = Passage(1, "/x/talk.pptx", "document", where, "text", None, [], 1.0, None)
    assert describe_location(passage) == "slide 3"


def test_docx_keeps_headings_paragraphs_tables_and_properties(tmp_path: Path) -> None:
    doc = extract_document(make_docx(tmp_path / "harbour.docx"))
    assert len(doc.pages) == 1
    text = doc.pages[0]
    assert text.split("\n\n")[:3] == [
        "Lighthouse inventory", "The keeper counted forty gannets on the breakwater.", KOREAN,
    ]  # fmt: skip
    assert "lamp oil\ttwelve barrels\nspare wicks in the cellar\n\nClosing remark" in text  # merged cell once
    assert doc.meta["format"] == "docx" and doc.meta["page_count"] == 1
    assert doc.meta["title"] == "Harbour notes" and doc.meta["author"] == "Mira Okafor"
    assert doc.media_time == CREATED.astimezone().replace(tzinfo=None)
    assert all(c.page is None and text[c.char_start : c.char_end] == c.text for c in doc.chunks)


def test_docx_footnotes_follow_the_body(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "notes.docx")
    # python-docx cannot write footnotes: add the part Word writes, with its separator.
    footnotes = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:footnotes xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
        '<w:footnote w:id="1"><w:p><w:r><w:t>Source: the harbour </w:t></w:r><w:r><w:t>master.</w:t></w:r></w:p></w:footnote>'
        "</w:footnotes>"
    )
    rewritten = tmp_path / "rewritten.docx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"</Types>",
                    b'<Override PartName="/word/footnotes.xml" ContentType="application/'
                    b'vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"/></Types>',
                )
            elif info.filename == "word/_rels/document.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdNotes" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    b'relationships/footnotes" Target="footnotes.xml"/></Relationships>',
                )
            dst.writestr(info, data)
        dst.writestr("word/footnotes.xml", footnotes)
    assert (
        extract_document(rewritten)
        .pages[0]
        .endswith("Closing remark about the foghorn.\n\nSource: the harbour master.")
    )


def test_odt_keeps_headings_tables_footnotes_and_metadata(tmp_path: Path) -> None:
    doc = extract_document(make_odt(tmp_path / "orchard.odt"))
    assert doc.pages == [
        (
            "Apple harvest\n\nThe quince trees fruited early this autumn.\n\n"
            f"{KOREAN}\n\npears\tninety crates\nplums\tsixty crates\n\nFootnote about the beehives."
        )
    ]
    assert doc.meta["format"] == "odt" and doc.meta["title"] == "Orchard ledger"
    assert doc.meta["author"] == "Tomas Reyes"
    assert doc.media_time == datetime(2020, 9, 10, 8, 30)
    assert all(c.page is None for c in doc.chunks)


def test_pptx_is_one_page_per_slide_with_notes(tmp_path: Path) -> None:
    doc = extract_document(make_pptx(tmp_path / "glacier.pptx"))
    assert doc.pages == [
        "Glacier survey\n\nOpening slide",
        "Meltwater findings\n\nThe moraine retreated eleven metres.\n\nRemember to mention the snow petrels.",
        f"한국어 슬라이드\n\n{KOREAN}",
    ]
    assert doc.meta["format"] == "pptx" and doc.meta["page_count"] == 3
    assert doc.meta["title"] == "Glacier survey" and doc.meta["author"] == "Ines Alvarez"
    for chunk in doc.chunks:
        assert doc.pages[chunk.page - 1][chunk.char_start : chunk.char_end] == chunk.text  # type: ignore[operator]
    assert {c.page for c in doc.chunks} == {1, 2, 3}


def test_epub_is_one_page_per_spine_section(tmp_path: Path) -> None:
    doc = extract_document(make_epub(tmp_path / "tides.epub"))
    assert doc.pages[:3] == [
        "Spring tides\n\nThe estuary floods twice daily.",
        "Neap tides\n\nHerons wade the mudflats at dusk.",
        f"바다\n\n{KOREAN}",
    ]
    assert len(doc.pages) == 4 and "Neap tides" in doc.pages[3]  # the table of contents, last in the spine
    assert doc.meta["format"] == "epub" and doc.meta["title"] == "The Tide Almanac"
    assert doc.meta["author"] == "Kofi Mensah" and doc.media_time is None
    assert [c.page for c in doc.chunks if "Herons" in c.text] == [2]


@pytest.mark.parametrize("suffix", sorted(MAKERS))
def test_truncated_and_garbage_files_fail_with_a_reason(tmp_path: Path, suffix: str) -> None:
    name = {".docx": "Word document", ".odt": "OpenDocument text", ".pptx": "PowerPoint file", ".epub": "e-book"}
    good = MAKERS[suffix](tmp_path / f"good{suffix}")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(os.urandom(3000))
    for path in (cut, garbage):
        with pytest.raises(ExtractionError) as info:
            extract_document(path)
        assert str(info.value) == f"this {name[suffix]} is damaged or cut off (it is not a complete zip archive)"


def test_zip_without_the_document_inside_is_damaged(tmp_path: Path) -> None:
    for suffix, expected in ((".docx", "Word document is damaged"), (".pptx", "PowerPoint file is damaged"),
                             (".odt", "OpenDocument text is damaged"), (".epub", "container.xml is missing")):  # fmt: skip
        path = tmp_path / f"other{suffix}"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("readme.txt", "not a document")
        with pytest.raises(ExtractionError, match=expected):
            extract_document(path)


def test_password_protected_office_files_say_so(tmp_path: Path) -> None:
    # Office writes an encrypted .docx/.pptx as an OLE compound file with an "EncryptedPackage" stream.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1000) + "EncryptedPackage".encode("utf-16-le") + bytes(500)
    for suffix in (".docx", ".pptx"):
        path = tmp_path / f"secret{suffix}"
        path.write_bytes(ole)
        with pytest.raises(ExtractionError, match="password-protected"):
            extract_document(path)
    old = tmp_path / "old.docx"
    old.write_bytes(ole.replace("EncryptedPackage".encode("utf-16-le"), "WordDocument".encode("utf-16-le")))
    with pytest.raises(ExtractionError, match="older binary format"):
        extract_document(old)

    odt = make_odt(tmp_path / "plain.odt")
    secret = tmp_path / "secret.odt"
    with zipfile.ZipFile(odt) as src, zipfile.ZipFile(secret, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "META-INF/manifest.xml":
                data = data.replace(b"</manifest:manifest>", b"<manifest:encryption-data/></manifest:manifest>")
            dst.writestr(info, data)
    with pytest.raises(ExtractionError, match="password-protected"):
        extract_document(secret)


def test_drm_protected_epub_says_so_but_obfuscated_fonts_do_not_matter(tmp_path: Path) -> None:
    book = make_epub(tmp_path / "book.epub")
    for target, expected in (("EPUB/chap_1.xhtml", "DRM-protected"), ("EPUB/fonts/a.otf", None)):
        encryption = (
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            f'<enc:CipherData><enc:CipherReference URI="{target}"/></enc:CipherData>'
            "</enc:EncryptedData></encryption>"
        )
        copy = tmp_path / "copy.epub"
        with zipfile.ZipFile(book) as src, zipfile.ZipFile(copy, "w") as dst:
            for info in src.infolist():
                dst.writestr(info, src.read(info))
            dst.writestr("META-INF/encryption.xml", encryption)
        if expected:
            with pytest.raises(ExtractionError, match=expected):
                extract_document(copy)
        else:
            assert extract_document(copy).pages[0].startswith("Spring tides")


def test_office_files_are_indexed_and_found_by_a_phrase_with_their_slide_or_section(library, tmp_path: Path) -> None:
    folder = tmp_path / "office"
    folder.mkdir()
    for suffix, make in MAKERS.items():
        make(folder / f"sample{suffix}")
    (folder / "broken.pptx").write_bytes(b"PK\x03\x04 not really")
    summary = library.index([folder])
    assert summary.added == 4
    assert summary.failed == [
        {
            "path": str(folder / "broken.pptx"),
            "reason": "this PowerPoint file is damaged or cut off (it is not a complete zip archive)",
        }
    ]
    expected = {
        "gannets": ("sample.docx", {}),
        "beehives": ("sample.odt", {}),
        "petrels": ("sample.pptx", {"page": 2}),
        "mudflats": ("sample.epub", {"page": 2}),
    }
    for word, (name, where) in expected.items():
        results = library.search(word, k=3).results
        assert [Path(r.path).name for r in results] == [name], word
        assert {k: v for k, v in results[0].locator.items() if k == "page"} == where
    korean = {Path(r.path).name for r in library.search("갈매기를", k=10).results}
    assert korean == {name for name, _ in expected.values()}
