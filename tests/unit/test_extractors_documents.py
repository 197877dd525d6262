"""Document extraction: legacy-encoded text, HTML and PDFs from the test corpus (tests/data) and made here."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from engine.errors import ExtractionError, UnsupportedFileError
from engine.extractors.chunking import clip_token_counter
from engine.extractors.documents import ExtractedDocument, decode_text, extract_document, html_to_text

from ._data import corpus_dir, flagged_broken, manifest

PDF_ROWS = manifest("pdfs")
TEXT_ROWS = manifest("text")

try:
    import cryptography  # noqa: F401  # pypdf needs it for AES-encrypted PDFs

    HAVE_AES = True
except ImportError:
    HAVE_AES = False

_NEEDS_PASSWORD = "password-protected"
_NEEDS_CRYPTOGRAPHY = "'cryptography'"

# Every corpus PDF that must be refused, and a phrase the reason must contain.
EXPECTED_PDF_FAILURES = {
    "encryption/r4-aes-user-password.pdf": _NEEDS_PASSWORD,  # RC4-style key check fails before any AES
    "libreoffice-writer-password.pdf": _NEEDS_PASSWORD,
    "encrypted-file.pdf": _NEEDS_PASSWORD,
    "encryption/r6-both-passwords.pdf": _NEEDS_PASSWORD if HAVE_AES else _NEEDS_CRYPTOGRAPHY,
    "crazyones-encrypted-256.pdf": _NEEDS_PASSWORD if HAVE_AES else _NEEDS_CRYPTOGRAPHY,
    # A 16-pixel fax image: no text layer, and nothing for text recognition to read.
    "imagemagick-CCITTFaxDecode.pdf": "no text layer (scanned pages?) and text recognition found no text",
}
if not HAVE_AES:
    # AES-256 with an empty password (and, it turns out, an empty owner password
    # for "r6-user-password"): readable, but only with the cryptography package.
    EXPECTED_PDF_FAILURES["encryption/r6-empty-password.pdf"] = _NEEDS_CRYPTOGRAPHY
    EXPECTED_PDF_FAILURES["encryption/r6-user-password.pdf"] = _NEEDS_CRYPTOGRAPHY

# Flagged MALFORMED, but pypdf's lenient mode recovers the whole text, as every
# PDF viewer does; refusing them would hide readable documents.
FLAGGED_BUT_READABLE = {
    "issue-297.pdf": "test example",
    "selenium-pypdf-issue-177.pdf": "Hello World",
}

# (file, text that must appear once decoded, encodings accepted)
TEXT_SAMPLES = [
    ("ko/euc-kr_north-korea-naming_ude_euc2.txt",
     "북조선 사람들은 흔히 자국을 조선(朝鮮)이나 공화국(共和國)이라고 부른다.", {"cp949"}),
    ("ko/cp949_historical-jesus_sample-korean.txt",
     "역사적 예수 연구자들은 복음서나 사도들의 서신서 속의 교리적 예수가 아닌", {"cp949"}),
    ("ko/cp949_news_no-charset.html",
     "한나라당은 2월 임시국회에서 국회 내 폭력행사 방지를 위한 '국회 폭력방지법' 제정도", {"cp949"}),
    ("ko/utf-8_coding-interview-university_README-ko.md",
     "# 코딩 면접 대학(Coding Interview University)", {"utf-8"}),
    ("latin/iso-8859-1_portuguese_ude_1.txt",
     "Nas paginas que em seguida se leem acha-se tão bem determinada", {"cp1252", "latin-1"}),
    ("latin/windows-1252_dutch_ude_2.txt",
     "Stipan Arkadiewitsch was tegenover zich zelf tamelijk oprecht.", {"cp1252"}),
    ("latin/cp1252_moliere_sample-french-1.txt",
     "JEAN-BAPTISTE POQUELIN MOLIÈRE\nNÉ LE 15 JANVIER 1622", {"cp1252"}),
    ("cjk/big5_classical-chinese-wikipedia_sample-chinese.txt",
     "維基大典（Wikipedia）者，網路為礎", {"big5", "big5hkscs", "cp950"}),
    ("cjk/shift_jis_universalchardet-readme_ude_2.txt",
     "コンソール アプリケーション : universalchardet プロジェクトの概要", {"cp932", "shift_jis"}),
    ("cjk/utf-8_momotaro.html", "「桃太郎」と名付けて大事に育てた。", {"utf-8"}),
    ("bom/utf-8-bom_subtitles_sample-english.bom.txt",
     "1\n00:00:06,500 --> 00:00:09,000\nAbout 2 months ago I found myself on", {"utf-8"}),
    ("en/crazyones.txt", "The Crazy Ones\nOctober 14, 1998", {"utf-8"}),
    ("en/whisper_README.md", "# Whisper", {"utf-8"}),
]  # fmt: skip
SHORT_KOREAN = "오늘 회의록: 예산 검토 및 다음 주 일정. 치과 예약은 목요일 오전 10시."


def _assert_chunks_are_consistent(doc: ExtractedDocument, *, is_pdf: bool) -> None:
    """Chunks point into their page, fit CLIP, and cover every non-space character."""
    count = clip_token_counter()
    covered = [bytearray(len(page)) for page in doc.pages]
    for chunk in doc.chunks:
        assert (chunk.page is None) is (not is_pdf)
        page_index = chunk.page - 1 if chunk.page is not None else 0
        page = doc.pages[page_index]
        assert chunk.text == page[chunk.char_start : chunk.char_end]
        assert chunk.text == chunk.text.strip() and chunk.text
        assert count(chunk.text) <= 75
        covered[page_index][chunk.char_start : chunk.char_end] = b"\x01" * (chunk.char_end - chunk.char_start)
    for page, marks in zip(doc.pages, covered, strict=True):
        assert all(marks[i] or ch.isspace() for i, ch in enumerate(page))


# --------------------------------------------------------------------- text files


@pytest.mark.parametrize(("name", "expected", "encodings"), TEXT_SAMPLES)
def test_corpus_text_decodes_to_the_right_characters(name: str, expected: str, encodings: set[str]) -> None:
    path = corpus_dir("text") / name
    doc = extract_document(path)
    assert len(doc.pages) == 1
    assert expected in doc.pages[0]
    assert "\ufffd" not in doc.pages[0] and "\ufeff" not in doc.pages[0]
    assert doc.meta["encoding"] in encodings
    assert doc.media_time is None
    _assert_chunks_are_consistent(doc, is_pdf=False)
    json.dumps(doc.meta)


def test_every_corpus_text_file_of_a_supported_type_extracts() -> None:
    from engine.extractors import kind_for_path

    corpus_dir("text")
    tested = [row["relative_path"] for row in TEXT_ROWS if kind_for_path(row["relative_path"]) == "document"]
    assert {name for name, _, _ in TEXT_SAMPLES} == set(tested)


def test_utf16_with_bom_reads_like_its_utf8_twin(tmp_path: Path) -> None:
    folder = corpus_dir("text")
    # .srt is not a document type Shoebox indexes; the decoding is what is tested.
    copy = tmp_path / "subtitles.txt"
    copy.write_bytes((folder / "bom" / "utf-16le-bom_subtitles.srt").read_bytes())
    utf16 = extract_document(copy)
    utf8 = extract_document(folder / "bom" / "utf-8-bom_subtitles_sample-english.bom.txt")
    assert utf16.meta["encoding"] == "utf-16-le"
    assert utf16.pages == utf8.pages


def test_markdown_keeps_its_source_text_so_spans_point_into_the_file() -> None:
    path = corpus_dir("text") / "en" / "whisper_README.md"
    doc = extract_document(path)
    assert doc.pages[0] == path.read_text(encoding="utf-8").replace("\r\n", "\n")
    assert doc.meta["format"] == "markdown"


@pytest.mark.parametrize("encoding", ["cp949", "euc-kr", "utf-8", "utf-8-sig", "utf-16"])
def test_korean_file_name_and_korean_text_in_each_encoding(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "한국어 메모.txt"
    path.write_bytes(SHORT_KOREAN.encode(encoding))
    doc = extract_document(path)
    assert doc.pages == [SHORT_KOREAN]
    assert "치과 예약은 목요일" in doc.chunks[0].text


def test_longer_korean_passage_round_trips_through_cp949(tmp_path: Path) -> None:
    original = extract_document(corpus_dir("text") / "ko" / "cp949_historical-jesus_sample-korean.txt").pages[0]
    for encoding in ("cp949", "utf-8"):
        path = tmp_path / f"역사 {encoding}.txt"
        path.write_bytes(original.encode(encoding))
        assert extract_document(path).pages == [original]


def test_decode_text_prefers_bom_then_utf8() -> None:
    assert decode_text("naïve café".encode()) == ("naïve café", "utf-8")
    assert decode_text(b"\xef\xbb\xbfhello") == ("hello", "utf-8")
    assert decode_text(b"\xfe\xff" + "hello".encode("utf-16-be")) == ("hello", "utf-16-be")


def test_newlines_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "dos.txt"
    path.write_bytes(b"first line\r\nsecond line\rthird line\r\n")
    assert extract_document(path).pages == ["first line\nsecond line\nthird line\n"]


# --------------------------------------------------------------------- HTML


def test_html_drops_scripts_keeps_paragraphs_and_title(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<!doctype html><html><head><title>  Dentist   receipt </title>"
        "<style>p { color: red }</style><script>var secret = 'do not index';</script></head>"
        "<body><h1>Receipt</h1><p>Cleaning &amp; check-up<br>Total: 120&nbsp;EUR</p>"
        "<div>Paid by card</div><pre>  line 1\n    line 2</pre>"
        "<noscript>enable JS</noscript><img src=x.png alt='clinic logo'></body></html>",
        encoding="utf-8",
    )
    doc = extract_document(path)
    assert doc.meta["title"] == "Dentist receipt"
    assert doc.meta["format"] == "html"
    text = doc.pages[0]
    assert text.startswith("Receipt\n\nCleaning & check-up\nTotal: 120 EUR\n\nPaid by card\n\n  line 1\n    line 2")
    assert "clinic logo" in text
    for hidden in ("secret", "color: red", "enable JS", "Dentist"):
        assert hidden not in text


def test_html_declared_charset_is_used(tmp_path: Path) -> None:
    markup = '<html><head><meta charset="euc-kr"><title>공지</title></head><body><p>다음 주 월요일은 휴무입니다.</p></body></html>'
    path = tmp_path / "notice.htm"
    path.write_bytes(markup.encode("euc-kr"))
    doc = extract_document(path)
    assert doc.pages == ["다음 주 월요일은 휴무입니다."]
    assert doc.meta["title"] == "공지"
    assert doc.meta["encoding"] == "cp949"


def test_html_without_body_text_uses_its_title(tmp_path: Path) -> None:
    path = tmp_path / "only-title.html"
    path.write_text("<html><head><title>Boarding pass</title></head><body></body></html>")
    assert extract_document(path).pages == ["Boarding pass"]


def test_html_to_text_blank_lines_separate_paragraphs() -> None:
    text, title = html_to_text("<body>first paragraph\n  still first\n\n second paragraph</body>")
    assert text == "first paragraph still first\n\nsecond paragraph"
    assert title is None


def test_korean_html_without_charset_from_corpus() -> None:
    doc = extract_document(corpus_dir("text") / "ko" / "cp949_news_no-charset.html")
    assert doc.meta["title"] == "windows-949"
    assert doc.pages[0].count("\n\n") == 2  # three paragraphs separated by blank lines in the source


# --------------------------------------------------------------------- PDF


def test_expected_pdf_failures_cover_every_flagged_pdf() -> None:
    flagged = {row["relative_path"] for row in PDF_ROWS if flagged_broken(row)}
    assert flagged <= set(EXPECTED_PDF_FAILURES) | set(FLAGGED_BUT_READABLE)
    # Every refused and every recovered PDF is in the test corpus.
    assert set(EXPECTED_PDF_FAILURES) | set(FLAGGED_BUT_READABLE) <= {row["relative_path"] for row in PDF_ROWS}


@pytest.mark.parametrize("name", sorted(EXPECTED_PDF_FAILURES))
def test_unreadable_corpus_pdf_is_refused_with_a_reason(name: str) -> None:
    with pytest.raises(ExtractionError) as info:
        extract_document(corpus_dir("pdfs") / name)
    assert EXPECTED_PDF_FAILURES[name] in str(info.value)


@pytest.mark.parametrize(
    "name", [row["relative_path"] for row in PDF_ROWS if row["relative_path"] not in EXPECTED_PDF_FAILURES]
)
def test_every_other_corpus_pdf_extracts(name: str) -> None:
    doc = extract_document(corpus_dir("pdfs") / name)
    assert doc.meta["page_count"] == len(doc.pages) >= 1
    assert doc.chunks
    _assert_chunks_are_consistent(doc, is_pdf=True)
    if name in FLAGGED_BUT_READABLE:
        assert FLAGGED_BUT_READABLE[name] in doc.pages[0]
    json.dumps(doc.meta)


def test_pdf_text_matches_pypdf_ground_truth_and_creation_date() -> None:
    doc = extract_document(corpus_dir("pdfs") / "crazyones.pdf")
    truth = (corpus_dir("text") / "en" / "crazyones.txt").read_text(encoding="utf-8")
    assert doc.pages == [truth]
    assert doc.media_time == datetime(2015, 6, 4, 13, 34, 6)  # as written, offset -06'00' dropped
    assert doc.chunks[0].text.startswith("The Crazy Ones\nOctober 14, 1998")


def test_multilingual_pdf() -> None:
    text = extract_document(corpus_dir("pdfs") / "hello-world.pdf").pages[0]
    for greeting in ("Hello World", "你好世界", "こんにちは世界", "Привет"):
        assert greeting in text


def test_pdf_pages_are_numbered_from_one() -> None:
    doc = extract_document(corpus_dir("pdfs") / "pdflatex-outline.pdf")
    assert len(doc.pages) == 4
    assert {chunk.page for chunk in doc.chunks} == {1, 2, 3, 4}
    assert [c.page for c in doc.chunks] == sorted(c.page for c in doc.chunks if c.page is not None)


def test_pdf_information_dictionary() -> None:
    doc = extract_document(corpus_dir("pdfs") / "metadata.pdf")
    assert doc.meta["title"] == "The Title"
    assert doc.meta["author"] == "Martin Thoma"
    assert doc.meta["subject"] == "The Subject"
    assert doc.media_time == datetime(2022, 4, 15, 9, 32, 43)


def test_pdf_title_written_as_raw_utf8_is_repaired() -> None:
    doc = extract_document(corpus_dir("pdfs") / "bytes.pdf")
    assert doc.meta["title"] == "Microsoft Word - トランスバース社買収電話会議英語Final.docx"


def test_pdf_with_empty_owner_password_opens() -> None:
    doc = extract_document(corpus_dir("pdfs") / "encryption" / "r2-owner-password.pdf")
    assert doc.meta["encrypted"] is True
    assert doc.pages[0].startswith("pdf encryption test")


def test_scanned_pdf_with_ocr_layer_is_read() -> None:
    doc = extract_document(corpus_dir("pdfs") / "Seige_of_Vicksburg_Sample_OCR.pdf")
    assert len(doc.pages) == 6
    assert "VICKSBURG" in doc.pages[0]


def test_scanned_pdf_without_text_layer_is_read_by_ocr() -> None:
    # Empty password opens it; its pages are CCITT fax images, the second a patent's front page.
    doc = extract_document(corpus_dir("pdfs") / "encrypted_doc_no_id.pdf")
    assert doc.recognised_pages == [2] and doc.meta["recognised_pages"] == [2]
    assert "PCT Gazette" in doc.pages[1]
    assert doc.chunks and all(chunk.recognised and chunk.page == 2 for chunk in doc.chunks)


def _scanned_pdf(path: Path, *pages: list[str]) -> Path:
    from tests.helpers import text_picture

    try:
        pictures = [text_picture(lines) for lines in pages]
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], resolution=150)
    return path


SCAN_ENGLISH = ["Lease agreement for the flat on Elm Street", "Monthly rent: 950 pounds, due on the first"]
SCAN_KOREAN = ["임대차 계약서", "월세는 매월 1일에 납부합니다"]


@pytest.fixture
def ocr_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.extractors.ocr import OCR_ENV, ocr_status

    monkeypatch.delenv(OCR_ENV, raising=False)
    status = ocr_status()
    if not status.available or status.languages != ("eng", "kor"):
        pytest.fail(f"the OCR tests need Tesseract with English and Korean: {status.describe()}", pytrace=False)


def test_scanned_pdf_pages_are_recognised(tmp_path: Path, ocr_on: None) -> None:
    pdf = _scanned_pdf(tmp_path / "lease.pdf", SCAN_ENGLISH, SCAN_KOREAN)
    doc = extract_document(pdf)
    assert doc.recognised_pages == [1, 2]
    english, korean = doc.pages[0].casefold(), "".join(doc.pages[1].split())
    for word in ("lease", "agreement", "elm", "street", "rent", "950", "pounds"):
        assert word in english, doc.pages[0]
    for word in ("임대차", "계약서", "월세는", "매월", "납부합니다"):
        assert word in korean, doc.pages[1]
    assert {chunk.page for chunk in doc.chunks} == {1, 2}
    assert all(chunk.recognised for chunk in doc.chunks)
    _assert_chunks_are_consistent(doc, is_pdf=True)
    json.dumps(doc.meta)


def test_pdf_with_a_text_layer_is_not_recognised_again(tmp_path: Path, ocr_on: None) -> None:
    from pypdf import PdfReader, PdfWriter

    scan = _scanned_pdf(tmp_path / "scan.pdf", SCAN_ENGLISH)
    writer = PdfWriter()
    for source in (corpus_dir("pdfs") / "crazyones.pdf", scan):
        for page in PdfReader(source).pages:
            writer.add_page(page)
    mixed = tmp_path / "mixed.pdf"
    with open(mixed, "wb") as f:
        writer.write(f)
    doc = extract_document(mixed)
    assert doc.recognised_pages == [2]
    assert "The Crazy Ones" in doc.pages[0] and "lease" in doc.pages[1].casefold()
    assert {chunk.page for chunk in doc.chunks if chunk.recognised} == {2}
    assert {chunk.page for chunk in doc.chunks if not chunk.recognised} == {1}


def test_scanned_pdf_with_ocr_off_fails_saying_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.extractors.ocr import OCR_ENV

    pdf = _scanned_pdf(tmp_path / "lease.pdf", SCAN_ENGLISH)
    monkeypatch.setenv(OCR_ENV, "off")
    with pytest.raises(ExtractionError) as info:
        extract_document(pdf)
    assert str(info.value) == (
        "PDF has no text layer (scanned pages?) and text recognition is off: "
        "SHOEBOX_OCR=off is set (unset it to read text in pictures)"
    )


def test_scanned_pdf_without_language_data_fails_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.extractors import ocr

    pdf = _scanned_pdf(tmp_path / "lease.pdf", SCAN_ENGLISH)
    monkeypatch.delenv(ocr.OCR_ENV, raising=False)
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path / "empty"))
    monkeypatch.setattr(ocr, "TESSDATA_CANDIDATES", ())
    with pytest.raises(ExtractionError, match=r"no text layer .* language data was not found .*tesseract-ocr-eng"):
        extract_document(pdf)


def test_mixed_pdf_with_ocr_not_asked_for_keeps_its_text_pages(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    scan = _scanned_pdf(tmp_path / "scan.pdf", SCAN_ENGLISH)
    writer = PdfWriter()
    for source in (corpus_dir("pdfs") / "crazyones.pdf", scan):
        writer.add_page(PdfReader(source).pages[0])
    mixed = tmp_path / "mixed.pdf"
    with open(mixed, "wb") as f:
        writer.write(f)
    doc = extract_document(mixed, ocr=False)
    assert doc.recognised_pages == [] and doc.pages[1] == ""
    assert doc.meta["warnings"] == ["page 2 without a text layer not read: text recognition was not asked for"]
    with pytest.raises(ExtractionError, match=r"no text layer \(scanned pages\?\) and text recognition was not asked"):
        extract_document(scan, ocr=False)


def test_pypdf_warnings_do_not_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("pypdf")
    level_before = logger.level
    with caplog.at_level(logging.WARNING):
        doc = extract_document(corpus_dir("pdfs") / "issue-297.pdf")  # broken xref: pypdf complains
    assert doc.pages[0].strip() == "test example"
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    assert logger.level == level_before


def test_not_a_pdf_truncated_pdf_and_garbage(tmp_path: Path) -> None:
    fake = tmp_path / "invoice.pdf"
    fake.write_text("Dear customer, please find attached ...")
    with pytest.raises(ExtractionError, match=r"^file ends with \.pdf but is not a PDF$"):
        extract_document(fake)

    whole = (corpus_dir("pdfs") / "crazyones.pdf").read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ExtractionError, match="PDF is damaged or truncated"):
        extract_document(cut)

    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 16)
    with pytest.raises(ExtractionError, match="PDF is damaged"):
        extract_document(garbage)


# --------------------------------------------------------------------- bad files and options


def test_empty_blank_and_binary_text_files(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ExtractionError, match=r"^file is empty \(0 bytes\)$"):
        extract_document(tmp_path / "empty.txt")
    (tmp_path / "blank.md").write_text("  \n\n\t \n")
    with pytest.raises(ExtractionError, match="no text"):
        extract_document(tmp_path / "blank.md")
    (tmp_path / "program.txt").write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ExtractionError, match="not text"):
        extract_document(tmp_path / "program.txt")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "letter.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    with pytest.raises(UnsupportedFileError, match=r"\.doc is not"):
        extract_document(path)


def test_custom_token_len_bounds_every_chunk(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text(" ".join(f"word{i}." for i in range(500)))
    doc = extract_document(path, token_len=lambda piece: len(piece.split()))
    assert all(len(chunk.text.split()) <= 75 for chunk in doc.chunks)
    assert doc.chunks[0].text.startswith("word0.") and doc.chunks[-1].text.endswith("word499.")
