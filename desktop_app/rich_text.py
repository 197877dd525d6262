"""Text as a person reads it: Markdown rendered, paragraphs kept, matched words highlighted.

A preview, a result card and an answer all show text that may be Markdown
(notes, READMEs, what a language model writes) and that carries the words the
person searched for.  :func:`fill_document` puts such text into a
``QTextDocument``: Markdown rendered (its ``#`` and ``*`` become headings and
emphasis), plain text with its line breaks and blank lines, and the matched
words on a highlight tint.  The words are found again in the rendered text by
the engine's own matching rules (:func:`engine.search.mark_terms`), so a word
marked in the source is marked in the rendering too, whatever Markdown did
around it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtGui import QFont, QPalette, QTextBlockFormat, QTextCharFormat, QTextCursor, QTextDocument

from .style import MARK_CLOSE, MARK_OPEN, mark_background, marked_terms, selected_background

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
# GitHub's dialect (tables, task lists, strikethrough, autolinks), and no raw HTML: a note's
# "<img src=…>" or "<a href=…>" is shown as written, never loaded or followed.
MARKDOWN_FEATURES = QTextDocument.MarkdownFeature(
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub.value | QTextDocument.MarkdownFeature.MarkdownNoHTML.value
)
_MARKER = re.compile(r"\[(\d{1,3})\]")


def is_markdown(path: str | None) -> bool:
    """Whether the file at ``path`` is Markdown (by its name)."""
    return bool(path) and Path(str(path)).suffix.lower() in MARKDOWN_SUFFIXES


def split_marks(text: str) -> tuple[str, list[tuple[int, int]]]:
    """``text`` without its « » marks, and the spans (start, end) of what they marked in it."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    opened: int | None = None
    for ch in text:
        if ch == MARK_OPEN:
            opened = length
        elif ch == MARK_CLOSE:
            if opened is not None and length > opened:
                spans.append((opened, length))
            opened = None
        else:
            out.append(ch)
            length += 1
    return "".join(out), spans


def term_spans(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """Where ``terms`` match in ``text`` by the keyword search's rules (whole words and prefixes in
    spaced scripts, anywhere in Chinese, Japanese and Korean)."""
    if not terms or not text:
        return []
    from engine.search import mark_terms  # loaded by the time anything was found

    return split_marks(mark_terms(text, list(terms)))[1]


def fill_document(
    doc: QTextDocument,
    text: str,
    palette: QPalette,
    *,
    markdown: bool = False,
    terms: Sequence[str] | None = None,
    focus: tuple[int, int] | None = None,
    compact: bool = False,
) -> int:
    """Put ``text`` into ``doc`` and return the position a reader should be shown first.

    ``text`` may hold « » marks around matched words.  With ``terms``, the words
    to highlight are found in the text instead.  ``markdown`` renders it as
    Markdown, else it is plain text with its line breaks kept.  ``focus``, a span
    of the (plain) text, is tinted lightly: the passage that was found, inside
    the context shown around it.  ``compact`` (a result card) renders Markdown
    without heading sizes or paragraph gaps.  The position returned is the
    first highlighted word inside ``focus`` (or anywhere), else the focus's start.
    """
    plain, spans = split_marks(text)
    words = list(terms) if terms is not None else marked_terms(text)
    if markdown:
        doc.setMarkdown(plain, MARKDOWN_FEATURES)
        if compact:
            _flatten(doc)
        rendered = doc.toPlainText()
        spans = term_spans(rendered, words)
        # Markdown moves text about; the focus is placed by its share of the source.
        if focus is not None and plain:
            share = len(rendered) / len(plain)
            focus = (int(focus[0] * share), int(focus[1] * share))
    else:
        doc.setPlainText(plain)
        if terms is not None:
            spans = term_spans(plain, words)
    size = doc.characterCount() - 1
    if focus is not None and 0 <= focus[0] < focus[1] <= size and (focus[1] - focus[0]) < size:
        tint = QTextCharFormat()
        tint.setBackground(selected_background(palette))
        _format(doc, focus, tint)
    mark = QTextCharFormat()
    mark.setBackground(mark_background(palette))
    mark.setFontWeight(QFont.Weight.DemiBold)
    for span in spans:
        if 0 <= span[0] < span[1] <= size:
            _format(doc, span, mark)
    if focus is not None:
        inside = [a for a, b in spans if a >= focus[0] - 1 and a < max(focus[1], focus[0] + 1)]
        return min(inside) if inside else max(0, min(focus[0], size))
    return min((a for a, _b in spans), default=0)


def _format(doc: QTextDocument, span: tuple[int, int], char_format: QTextCharFormat) -> None:
    cursor = QTextCursor(doc)
    cursor.setPosition(span[0])
    cursor.setPosition(span[1], QTextCursor.MoveMode.KeepAnchor)
    cursor.mergeCharFormat(char_format)


def _flatten(doc: QTextDocument) -> None:
    """Headings at the body's size and weight, and no gaps between blocks (a few lines on a card)."""
    plain = QTextCharFormat()
    plain.setFontPointSize(doc.defaultFont().pointSizeF())
    plain.setFontWeight(QFont.Weight.Normal)
    block = doc.begin()
    while block.isValid():
        cursor = QTextCursor(block)
        if block.blockFormat().headingLevel() > 0:
            cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
            cursor.mergeCharFormat(plain)
        block_format = QTextBlockFormat()
        block_format.setHeadingLevel(0)
        block_format.setTopMargin(0)
        block_format.setBottomMargin(0)
        cursor.mergeBlockFormat(block_format)
        block = block.next()


_HEADING_MARKS = re.compile(r"(?:^|(?<=\s))#{1,6}\s+")


def snippet_markdown(snippet: str) -> str:
    """A Markdown snippet made fit to render: a snippet is one line (its line breaks were joined), so a
    heading's "##" stands mid-line, where Markdown would leave it; it is taken out."""
    return _HEADING_MARKS.sub("", snippet)


def markdown_snippet_html(snippet: str) -> str:
    """A Markdown snippet as rich text for a label: rendered, its « » words in bold, no heading sizes."""
    doc = QTextDocument()
    plain, _spans = split_marks(snippet_markdown(snippet))
    doc.setMarkdown(plain, MARKDOWN_FEATURES)
    _flatten(doc)
    bold = QTextCharFormat()
    bold.setFontWeight(QFont.Weight.Bold)
    for span in term_spans(doc.toPlainText(), marked_terms(snippet)):
        _format(doc, span, bold)
    body = re.search(r"<body[^>]*>(.*)</body>", doc.toHtml(), re.DOTALL)
    return body.group(1).strip() if body else html.escape(plain)


def answer_markdown(text: str, numbers: Sequence[int]) -> str:
    """An answer as Markdown: each ``[n]`` naming a source becomes a link to it (``cite:n``), and a
    line break in the answer stays one (Markdown would join the lines)."""
    known = set(numbers)

    def link(match: re.Match) -> str:
        n = int(match.group(1))
        return f"[\\[{n}\\]](cite:{n})" if n in known else match.group(0)

    lines = [_MARKER.sub(link, line) for line in text.split("\n")]
    # Two spaces before a line break make it a hard break; blank lines stay paragraph breaks.
    return "\n".join(line + "  " if line.strip() and i + 1 < len(lines) else line for i, line in enumerate(lines))
