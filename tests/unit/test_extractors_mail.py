"""Mail messages (.eml), written here with the standard library's email package, then read and indexed."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from engine.errors import ExtractionError
from engine.extractors import kind_for_path
from engine.extractors.documents import extract_document

KOREAN_SUBJECT = "분기 보고서 검토 요청"
KOREAN_BODY = "등대지기는 새벽마다 갈매기를 세었다"


def base_message(subject: str = "Harbour survey") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Mira Okafor <mira@example.org>"
    msg["To"] = "Tomas Reyes <tomas@example.org>, 김민수 <minsu@example.kr>"
    msg["Cc"] = "ines@example.org"
    msg["Date"] = "Tue, 05 Mar 2024 14:03:09 +0900"
    msg["Subject"] = subject
    return msg


def write(path: Path, msg: EmailMessage) -> Path:
    path.write_bytes(msg.as_bytes(policy=SMTP))
    return path


def make_plain(path: Path) -> Path:
    msg = base_message()
    msg.set_content("The keeper counted forty gannets on the breakwater.\n\nSee you at the pier.\n")
    return write(path, msg)


def make_with_attachments(path: Path) -> Path:
    msg = base_message(KOREAN_SUBJECT)
    msg.set_content(f"Report attached.\n{KOREAN_BODY}\n", charset="utf-8")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="quarterly-report.pdf")
    msg.add_attachment(b"\xff\xd8\xff fake", maintype="image", subtype="jpeg", filename="등대 사진.jpg")
    return write(path, msg)


def test_eml_is_a_document_without_page_numbers(tmp_path: Path) -> None:
    assert kind_for_path("Letter.EML") == "document"
    doc = extract_document(make_plain(tmp_path / "plain.eml"))
    assert len(doc.pages) == 1 and doc.chunks
    assert all(c.page is None and doc.pages[0][c.char_start : c.char_end] == c.text for c in doc.chunks)


def test_plain_message_is_its_headers_then_its_body(tmp_path: Path) -> None:
    doc = extract_document(make_plain(tmp_path / "plain.eml"))
    assert doc.pages[0] == (
        "From: Mira Okafor <mira@example.org>\n"
        "To: Tomas Reyes <tomas@example.org>, 김민수 <minsu@example.kr>\n"
        "Cc: ines@example.org\n"
        "Date: Tue, 05 Mar 2024 14:03:09 +0900\n"
        "Subject: Harbour survey\n\n"
        "The keeper counted forty gannets on the breakwater.\n\nSee you at the pier."
    )
    assert doc.media_time == datetime(2024, 3, 5, 14, 3, 9)  # the wall clock as written, offset dropped
    assert doc.meta == {
        "format": "email",
        "subject": "Harbour survey",
        "from": "Mira Okafor <mira@example.org>",
        "to": "Tomas Reyes <tomas@example.org>, 김민수 <minsu@example.kr>",
        "attachments": [],
        "page_count": 1,
    }


def test_encoded_korean_subject_and_attachment_names_are_decoded(tmp_path: Path) -> None:
    path = make_with_attachments(tmp_path / "report.eml")
    raw = path.read_bytes()
    # The file really holds encoded words and an RFC 2231 name, not raw UTF-8.
    assert b"Subject: =?utf-8?" in raw and "분기".encode() not in raw.split(b"\r\n\r\n")[0]
    assert b"filename*=utf-8''" in raw
    doc = extract_document(path)
    text = doc.pages[0]
    assert f"Subject: {KOREAN_SUBJECT}\n" in text
    assert f"Report attached.\n{KOREAN_BODY}" in text
    assert text.endswith("\n\nAttachments: quarterly-report.pdf, 등대 사진.jpg")
    assert doc.meta["subject"] == KOREAN_SUBJECT
    assert doc.meta["attachments"] == ["quarterly-report.pdf", "등대 사진.jpg"]
    assert "fake" not in text  # attachments' contents are not read as the body


def test_html_only_alternative_is_read_as_text(tmp_path: Path) -> None:
    msg = base_message("Newsletter")
    msg.add_alternative(
        "<html><head><title>ignored</title><style>p{color:red}</style></head>"
        "<body><h1>Tide tables</h1><p>Herons wade the <b>mudflats</b> at dusk.</p></body></html>",
        subtype="html",
    )
    assert msg.get_content_type() == "multipart/alternative"
    doc = extract_document(write(tmp_path / "news.eml", msg))
    assert doc.pages[0].endswith("Subject: Newsletter\n\nTide tables\n\nHerons wade the mudflats at dusk.")
    body = doc.pages[0].split("Subject: Newsletter\n\n")[1]
    assert "color" not in body and "ignored" not in body


def test_alternative_prefers_the_plain_text_version(tmp_path: Path) -> None:
    msg = base_message("Both")
    msg.set_content("Plain version about snow petrels.")
    msg.add_alternative("<p>HTML version about snow petrels.</p>", subtype="html")
    doc = extract_document(write(tmp_path / "both.eml", msg))
    assert "Plain version" in doc.pages[0] and "HTML version" not in doc.pages[0]


def test_forwarded_message_text_and_its_attachments_are_included(tmp_path: Path) -> None:
    inner = EmailMessage()
    inner["From"] = "Kofi Mensah <kofi@example.com>"
    inner["Subject"] = "Original: glacier measurements"
    inner["Date"] = "Mon, 01 Jan 2024 09:00:00 +0000"
    inner.set_content("The moraine retreated eleven metres.")
    inner.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="measurements.csv")
    outer = base_message("Fwd: glacier measurements")
    outer.set_content("Forwarding this, see below.")
    outer.add_attachment(inner)  # message/rfc822
    doc = extract_document(write(tmp_path / "fwd.eml", outer))
    text = doc.pages[0]
    assert "Forwarding this, see below." in text
    forwarded = text.index("Forwarded message\n\nFrom: Kofi Mensah <kofi@example.com>")
    assert text.index("Forwarding this") < forwarded < text.index("The moraine retreated eleven metres.")
    assert "Subject: Original: glacier measurements" in text
    assert text.endswith("Attachments: measurements.csv")
    assert "a,b" not in text
    assert doc.media_time == datetime(2024, 3, 5, 14, 3, 9)  # the outer message's date


def test_legacy_charsets_and_unquoted_or_raw_names_are_decoded(tmp_path: Path) -> None:
    # What older Korean mailers write: EUC-KR encoded words, a body declared
    # as ks_c_5601-1987, a name as an unquoted encoded word, and one in raw 8-bit EUC-KR.
    subject = "=?euc-kr?B?" + base64.b64encode(KOREAN_SUBJECT.encode("euc-kr")).decode() + "?="
    raw = (
        b"From: =?ks_c_5601-1987?B?sei5zrz2?= <minsu@example.kr>\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Date: 5 Mar 2024 14:03 +0900\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=ks_c_5601-1987\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + KOREAN_BODY.encode("cp949")
        + b"\r\n--b1\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename==?utf-8?B?"
        + base64.b64encode("보고서.pdf".encode()).rstrip(b"=")
        + b"?=\r\n\r\nAAAA\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="' + "명단.xls".encode("euc-kr") + b'"\r\n\r\nAAAA\r\n'
        b"--b1--\r\n"
    )
    path = tmp_path / "legacy.eml"
    path.write_bytes(raw)
    doc = extract_document(path)
    text = doc.pages[0]
    assert text.startswith("From: 김민수 <minsu@example.kr>\nDate: Tue, 05 Mar 2024 14:03:00 +0900\n")
    assert f"Subject: {KOREAN_SUBJECT}\n\n{KOREAN_BODY}\n\n" in text
    assert doc.meta["attachments"] == ["보고서.pdf", "명단.xls"]
    assert doc.media_time == datetime(2024, 3, 5, 14, 3)


@pytest.mark.parametrize("declared", ["us-ascii", "iso-8859-1"])
def test_body_declared_wrongly_but_written_in_utf8_reads_right(tmp_path: Path, declared: str) -> None:
    raw = (
        f"Subject: note\r\nContent-Type: text/plain; charset={declared}\r\n\r\nCafé au lait, {KOREAN_BODY}\r\n"
    ).encode()
    path = tmp_path / "ascii.eml"
    path.write_bytes(raw)
    assert extract_document(path).pages == [f"Subject: note\n\nCafé au lait, {KOREAN_BODY}"]


def test_unreadable_date_is_no_time_and_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "nodate.eml"
    path.write_bytes(b"Subject: hello\r\nDate: sometime last week\r\n\r\nbody text\r\n")
    doc = extract_document(path)
    assert doc.media_time is None
    assert doc.meta["warnings"] == ["the Date header cannot be read as a date ('sometime last week')"]


def test_files_that_are_not_mail_fail_with_a_reason(tmp_path: Path) -> None:
    junk = tmp_path / "junk.eml"
    junk.write_bytes(os.urandom(4000))
    prose = tmp_path / "prose.eml"
    prose.write_text("Dear diary,\n\nToday the tide was high.\n", encoding="utf-8")
    png = tmp_path / "picture.eml"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200) + b"IEND")
    for path in (junk, prose, png):
        with pytest.raises(ExtractionError) as info:
            extract_document(path)
        assert str(info.value) == "this file is not a mail message (it has no mail headers such as From, To or Subject)"
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    with pytest.raises(ExtractionError, match=r"^file is empty \(0 bytes\)$"):
        extract_document(empty)


def test_malformed_messages_are_read_as_far_as_they_go(tmp_path: Path) -> None:
    cases = {
        # A multipart without its closing boundary (cut off), with a bad base64 part.
        "cut.eml": b'Subject: cut\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n--z\r\n'
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQ@@!!\r\n--z\r\n"
        b"Content-Type: text/plain\r\n\r\nsecond part survives",
        # An unknown charset and a broken address header.
        "odd.eml": b'From: "unterminated <<@@\r\nSubject: odd\r\nContent-Type: text/plain; charset=x-no-such\r\n\r\n'
        b"plain words\r\n",
        # A charset label with a NUL byte in it, which names no codec at all.
        "nul.eml": b'Subject: nul\r\nContent-Type: text/plain; charset="ut\x00f-8"\r\n\r\nstill read\r\n',
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    cut = extract_document(tmp_path / "cut.eml").pages[0]
    assert cut.startswith("Subject: cut\n\n") and cut.endswith("second part survives")
    odd = extract_document(tmp_path / "odd.eml").pages[0]
    assert odd.endswith("Subject: odd\n\nplain words") and odd.startswith("From: ")
    assert extract_document(tmp_path / "nul.eml").pages == ["Subject: nul\n\nstill read"]


def test_too_large_messages_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.extractors import mail

    monkeypatch.setattr(mail, "MAX_MAIL_BYTES", 2**20)
    path = tmp_path / "big.eml"
    path.write_bytes(b"Subject: big\r\n\r\n" + b"x" * 2 * 2**20)
    with pytest.raises(ExtractionError, match=r"^this mail message is too large to index \(2 MB; the limit is 1 MB\)$"):
        extract_document(path)


def test_mail_is_indexed_and_found_by_its_body_and_its_attachments_name(library, tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    make_plain(folder / "gannets.eml")
    make_with_attachments(folder / "report.eml")
    (folder / "broken.eml").write_bytes(os.urandom(2000))
    summary = library.index([folder])
    assert summary.added == 2
    assert summary.failed == [
        {
            "path": str(folder / "broken.eml"),
            "reason": "this file is not a mail message (it has no mail headers such as From, To or Subject)",
        }
    ]
    for query, name in (("gannets breakwater", "gannets.eml"), ("quarterly-report.pdf", "report.eml")):
        results = library.search(query, k=3).results
        assert [Path(r.path).name for r in results][:1] == [name], query
        assert results[0].locator.get("page") is None
    assert {Path(r.path).name for r in library.search("갈매기를", k=10).results} == {"report.eml"}
