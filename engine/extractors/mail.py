"""Mail messages saved as ``.eml`` files (RFC 822 / MIME), read with the standard library.

A message is one text: a header block (From, To, Cc, Date, Subject, encoded
words decoded), the body (its plain-text part, else its HTML part read as the
HTML reader reads web pages), the text of forwarded messages attached to it,
and last a line naming every attachment, so that a message is found by what
it says, who sent it and what came with it.  The Date header is the
message's time, the wall clock as written.

Mail in the wild is often not what its headers declare: 8-bit headers without
encoded words, bodies in another charset than declared, names split by RFC
2231.  Each is decoded as far as it can be and never stops the message; only
a file that is not a mail message at all fails.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_tz
from pathlib import Path
from typing import Any

from ..errors import ExtractionError
from ._common import describe
from .documents import _python_codec, decode_text, html_to_text

# The parser holds a whole message in memory several times over (about nine
# times its size at the peak: a 41 MB message with a 30 MB attachment took
# 360 MB), attachments included, though only the text parts are read.  64 MB
# holds a message with the 25 MB of attachments mail services allow, base64
# encoded, with room to spare.
MAX_MAIL_BYTES = 64 * 1024 * 1024
# Forwarded mail inside forwarded mail; deeper trees are no message a person wrote.
MAX_DEPTH = 24

# Headers only a mail message starts with; a file with none of them is not one.
_MAIL_HEADERS = {
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "received", "sender", "reply-to",
    "return-path", "delivered-to", "mime-version", "in-reply-to", "references", "x-mailer",
}  # fmt: skip
_SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject")
_SURROGATE_RE = re.compile("[\udc80-\udcff]")
_POLICY = email.policy.default

Pages = tuple[list[str], datetime | None, dict[str, Any]]


@dataclass
class _Collected:
    blocks: list[str] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def has_text(self) -> bool:
        return any(block.strip() for block in self.blocks)


def read_mail(p: Path, size: int) -> Pages:
    """The text, sent time and metadata of the mail message at ``p`` (``size`` bytes).

    Returns ``([text], media_time, meta)``: one text per message, forwarded
    messages included; ``meta`` holds ``format`` (``"email"``), ``subject``,
    ``from`` and ``to`` when present, ``attachments`` (file names, possibly
    empty) and ``page_count``.  Raises :class:`ExtractionError` when the file
    is too large or is not a mail message.
    """
    if size > MAX_MAIL_BYTES:
        raise ExtractionError(
            f"this mail message is too large to index ({size / 2**20:,.0f} MB; "
            f"the limit is {MAX_MAIL_BYTES // 2**20} MB)"
        )
    # The bytes are not kept: the parsed message holds its own copy.
    message = BytesParser(policy=_POLICY).parsebytes(p.read_bytes())
    names = {key.lower() for key, _ in message.raw_items()}
    if not names & _MAIL_HEADERS:
        raise ExtractionError("this file is not a mail message (it has no mail headers such as From, To or Subject)")

    reader = _MailReader(_declared_charsets(message))
    collected = _Collected()
    reader.message(message, collected, depth=0)
    blocks = [block for block in collected.blocks if block.strip()]
    if collected.attachments:
        blocks.append("Attachments: " + ", ".join(collected.attachments))
    text = "\n\n".join(blocks)
    if not text.strip():
        raise ExtractionError("this mail message contains no text")

    meta: dict[str, Any] = {"format": "email"}
    for name, key in (("Subject", "subject"), ("From", "from"), ("To", "to")):
        value = reader.header(message, name)
        if value:
            meta[key] = value
    meta["attachments"] = collected.attachments
    meta["page_count"] = 1
    media_time = None
    raw_date = reader.header(message, "Date")
    if raw_date:
        media_time = _parse_date(raw_date)
        if media_time is None:
            collected.warnings.append(f"the Date header cannot be read as a date ({raw_date!r})")
    if collected.warnings:
        meta["warnings"] = list(dict.fromkeys(collected.warnings))
    return [text], media_time, meta


def _declared_charsets(message: Message) -> list[str]:
    """Codecs the message's parts declare, in order: the likeliest for 8-bit headers without one."""
    codecs: list[str] = []
    for part in message.walk():
        try:
            charset = part.get_content_charset()
        except Exception:  # a malformed Content-Type only means no charset from this part
            continue
        codec = _declared_codec(charset)
        if codec and codec not in codecs and codec != "utf_8":
            codecs.append(codec)
    return codecs


def _parse_date(raw: str) -> datetime | None:
    """A Date header as the wall-clock time written in it (its UTC offset is dropped)."""
    parsed = parsedate_tz(raw)
    if parsed is None:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    try:
        value = datetime(year, month, day, hour, minute, second)
    except (ValueError, OverflowError):
        return None
    return value if value.year >= 1800 else None


class _MailReader:
    """Walks one message's MIME tree into text blocks and attachment names."""

    def __init__(self, charsets: list[str]) -> None:
        self.charsets = charsets

    # ----------------------------------------------------------------- headers

    def raw_header(self, part: Message, name: str) -> str | None:
        """The first ``name`` header's text with 8-bit bytes decoded, unfolded; encoded words kept."""
        for key, value in part.raw_items():
            if key.lower() == name.lower():
                text = str(value)
                if _SURROGATE_RE.search(text):
                    text = self._decode_8bit(text.encode("ascii", "surrogateescape"))
                return " ".join(text.split())
        return None

    def header(self, part: Message, name: str) -> str | None:
        """A header as a person reads it (encoded words decoded), or ``None`` when absent or blank."""
        text = self.raw_header(part, name)
        if text is None:
            return None
        try:
            value = str(_POLICY.header_factory(name, text))
        except Exception:  # the header parser gives up on some malformed headers; decode what we can
            value = _decode_words(text)
        value = " ".join(value.replace("\x00", "").split())
        return value or None

    def _decode_8bit(self, raw: bytes) -> str:
        # Clients that write raw 8-bit headers mostly write UTF-8, else the
        # charset they declare for the body.
        for codec in ("utf_8", *self.charsets):
            try:
                return raw.decode(codec)
            except (UnicodeDecodeError, LookupError):
                continue
        try:
            return decode_text(raw)[0]
        except ExtractionError:
            return raw.decode("utf-8", "replace")

    def filename(self, part: Message) -> str | None:
        """An attachment's file name: RFC 2231 parameters, encoded words and 8-bit bytes decoded."""
        for header, param in (("Content-Disposition", "filename"), ("Content-Type", "name")):
            text = self.raw_header(part, header)
            if not text:
                continue
            value: str | None
            try:
                value = dict(_POLICY.header_factory(header, text).params).get(param)
            except Exception:  # a malformed parameter list; the regex below still finds the name
                value = None
            if not value:
                # An encoded word left unquoted (filename==?utf-8?b?...?=) is no
                # valid parameter, but common.
                m = re.search(rf'(?i)(?:^|;)\s*{param}\s*=\s*(?:"([^"]*)"|([^;]*))', text)
                value = (m.group(1) if m.group(1) is not None else m.group(2)) if m else None
            if value and value.strip():
                return " ".join(_decode_words(value.strip()).split())
        return None

    def header_block(self, message: Message) -> str:
        lines = []
        for name in _SHOWN_HEADERS:
            value = self.header(message, name)
            if value:
                lines.append(f"{name}: {value}")
        return "\n".join(lines)

    # -------------------------------------------------------------- structure

    def message(self, message: Message, out: _Collected, depth: int) -> None:
        out.blocks.append(self.header_block(message))
        self.part(message, out, depth, in_related=False)

    def part(self, part: Message, out: _Collected, depth: int, *, in_related: bool) -> None:
        if depth > MAX_DEPTH:
            out.warnings.append(f"parts nested more than {MAX_DEPTH} levels deep were skipped")
            return
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            name = self.filename(part)
            if name:
                out.attachments.append(name)
            payload = part.get_payload()
            for inner in payload if isinstance(payload, list) else []:
                if isinstance(inner, Message):
                    out.blocks.append("Forwarded message")
                    self.message(inner, out, depth + 1)
            return
        if part.is_multipart():
            payload = part.get_payload()
            children = [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
            if ctype == "multipart/alternative":
                self.alternative(children, out, depth)
            else:
                related = in_related or ctype == "multipart/related"
                for child in children:
                    self.part(child, out, depth + 1, in_related=related)
            return
        name = self.filename(part)
        body_type = ctype in ("text/plain", "text/html")
        # Pictures embedded in an HTML body (multipart/related) are no
        # attachment a person sees; named parts elsewhere are, inline or not.
        if _is_attachment(part) or (name and not in_related) or (not body_type and not in_related):
            out.attachments.append(name or f"unnamed {ctype}")
            return
        if body_type:
            text = self.text(part, html=ctype == "text/html", out=out)
            if text:
                out.blocks.append(text)

    def alternative(self, children: list[Message], out: _Collected, depth: int) -> None:
        """The plain-text version of a body if it has text, else the HTML one, else any."""

        def rank(child: Message) -> int:
            ctype = child.get_content_type()
            return {"text/plain": 0, "text/html": 1}.get(ctype, 2 if child.is_multipart() else 3)

        versions = []
        for child in sorted(children, key=rank):
            version = _Collected()
            self.part(child, version, depth + 1, in_related=False)
            versions.append(version)
        chosen = next((v for v in versions if v.has_text()), versions[-1] if versions else None)
        if chosen is not None:
            out.blocks.extend(chosen.blocks)
            out.attachments.extend(chosen.attachments)
            out.warnings.extend(chosen.warnings)

    def text(self, part: Message, *, html: bool, out: _Collected) -> str:
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data.strip():
            return ""
        try:
            charset = part.get_content_charset()
        except Exception:  # a malformed Content-Type: detect the charset instead
            charset = None
        text = _decode_body(data, charset, html=html, warnings=out.warnings)
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        if html:
            body, title = html_to_text(text)
            text = body or title or ""
        return text.strip()


def _is_attachment(part: Message) -> bool:
    try:
        return part.get_content_disposition() == "attachment"
    except Exception:  # a malformed Content-Disposition: decided by the part's type instead
        return False


def _declared_codec(charset: str | None) -> str | None:
    """The codec for a declared charset; ``None`` for none, an unknown one or US-ASCII.

    US-ASCII is what mailers declare when they did not look: bytes above 127
    under it are some other charset, left to detection.
    """
    if not charset or charset.strip().lower() in ("us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968"):
        return None
    try:
        return _python_codec(charset)
    except ValueError:  # a label with a NUL in it names no codec
        return None


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words (``=?utf-8?b?...?=``) in ``value`` decoded; the rest kept."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # an unknown charset or broken encoding: the text as written is the best left
        return value


def _decode_body(data: bytes, charset: str | None, *, html: bool, warnings: list[str]) -> str:
    """A text part's bytes as text: valid UTF-8 first, then the declared charset, then detection.

    UTF-8 comes first because mailers often declare us-ascii or Latin-1 for
    UTF-8 text, while text in a legacy charset is almost never valid UTF-8.
    """
    declared = _declared_codec(charset)
    order = ["utf_8", declared] if declared and not declared.startswith(("utf_16", "utf_32")) else [declared, "utf_8"]
    for codec in order:
        if codec:
            try:
                return data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                continue
    try:
        return decode_text(data, html=html)[0]
    except ExtractionError as exc:
        warnings.append(
            f"a text part's characters could not be decoded ({describe(exc)}); undecodable bytes were replaced"
        )
        return data.decode(declared or "utf-8", "replace")


__all__ = ["MAX_MAIL_BYTES", "read_mail"]
