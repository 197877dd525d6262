"""Colours and small formatting helpers shared by the window's widgets.

Nothing here hard-codes a colour that would break in a dark theme: every
colour is derived from the widget's palette (mixed with the base colour), and
style sheets use ``palette(...)`` references so they follow the system.
"""

from __future__ import annotations

import html
import math
import re
from datetime import datetime

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QAbstractButton, QStyle

from engine.extractors.documents import page_unit

MARK_OPEN, MARK_CLOSE = "«", "»"  # as engine.search writes them (not imported: keeps this module light)
_MARKED = re.compile(f"{MARK_OPEN}(.*?){MARK_CLOSE}", re.DOTALL)


def mix(a: QColor, b: QColor, amount: float) -> QColor:
    """``amount`` of ``a`` over ``b`` (0 gives ``b``, 1 gives ``a``)."""
    t = max(0.0, min(1.0, amount))
    return QColor(
        round(a.red() * t + b.red() * (1 - t)),
        round(a.green() * t + b.green() * (1 - t)),
        round(a.blue() * t + b.blue() * (1 - t)),
    )


def mark_background(palette: QPalette) -> QColor:
    """Behind matched words: the highlight colour, faded into the base colour."""
    return mix(palette.color(QPalette.ColorRole.Highlight), palette.color(QPalette.ColorRole.Base), 0.32)


def selected_background(palette: QPalette) -> QColor:
    """Behind a selected card or thumbnail: a lighter tint than the marks."""
    return mix(palette.color(QPalette.ColorRole.Highlight), palette.color(QPalette.ColorRole.Base), 0.2)


def muted_text(palette: QPalette) -> QColor:
    """Secondary text (dates, counts): the text colour halfway into the base."""
    return mix(palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base), 0.6)


def error_background(palette: QPalette) -> QColor:
    return mix(QColor(220, 50, 47), palette.color(QPalette.ColorRole.Window), 0.22)


def info_background(palette: QPalette) -> QColor:
    return mix(palette.color(QPalette.ColorRole.Highlight), palette.color(QPalette.ColorRole.Window), 0.16)


def has_marks(snippet: str | None) -> bool:
    """Whether a snippet holds words the person typed (marked « »)."""
    return bool(snippet and MARK_OPEN in snippet and MARK_CLOSE in snippet)


def marked_terms(snippet: str | None) -> list[str]:
    """The distinct words marked in a snippet, in order."""
    terms: list[str] = []
    for match in _MARKED.finditer(snippet or ""):
        word = match.group(1).strip()
        if word and word.lower() not in (t.lower() for t in terms):
            terms.append(word)
    return terms


def marked_html(text: str | None, palette: QPalette) -> str:
    """``text`` as rich text: « » marks become bold words on a highlight tint; the rest is escaped.

    A stray mark without its partner is dropped, never shown raw.
    """
    if not text:
        return ""
    background = mark_background(palette).name()
    out: list[str] = []
    position = 0
    for match in _MARKED.finditer(text):
        out.append(_plain(text[position : match.start()]))
        out.append(f'<span style="background-color:{background}; font-weight:600">{_plain(match.group(1))}</span>')
        position = match.end()
    out.append(_plain(text[position:]))
    return "".join(out)


def plain_text(text: str | None) -> str:
    """``text`` with the marks taken out (for tooltips and accessibility)."""
    return (text or "").replace(MARK_OPEN, "").replace(MARK_CLOSE, "")


def _plain(piece: str) -> str:
    return html.escape(piece.replace(MARK_OPEN, "").replace(MARK_CLOSE, ""), quote=False).replace("\n", "<br>")


def narrow_button(button: QAbstractButton) -> QAbstractButton:
    """Let a layout give ``button`` less than the style's minimum (80 pixels in Fusion), never less
    than its text needs: "Ask" and "Stop" then fit in a narrow panel with their words whole."""
    style = button.style()
    margin = style.pixelMetric(QStyle.PixelMetric.PM_ButtonMargin, None, button)
    frame = style.pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, None, button)
    text = button.fontMetrics().horizontalAdvance(button.text())
    icon = button.iconSize().width() + 4 if not button.icon().isNull() else 0
    button.setMinimumWidth(text + icon + 2 * (margin + frame) + 8)
    return button


def format_clock(seconds: float | None) -> str:
    """``75.4`` -> ``01:15``; an hour or more -> ``1:02:03``."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def parse_time(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def format_date(iso: str | None, *, with_time: bool = False) -> str:
    """``2021-07-14T10:30:00`` -> ``14 Jul 2021`` (``14 Jul 2021, 10:30`` with the time)."""
    moment = parse_time(iso)
    if moment is None:
        return ""
    text = f"{moment.day} {moment:%b %Y}"
    return f"{text}, {moment:%H:%M}" if with_time else text


def locator_text(result: object) -> str:
    """Where in the file a result is: ``page 3``, ``slide 3``, ``section 3``, ``01:05–01:20``, or ''."""
    locator = getattr(result, "locator", None) or {}
    if "start" in locator:
        start, end = float(locator.get("start") or 0.0), locator.get("end")
        first = format_clock(start)
        last = format_clock(math.ceil(end)) if end is not None else first
        return f"{first}–{last}" if last != first else first
    if "page" in locator:
        return f"{page_unit(getattr(result, 'path', ''))} {locator['page']}"
    return ""


# Chips, the message banner and section titles.  palette(...) keeps them right in dark themes.
STYLE_SHEET = """
QFrame#Chip {
    border: 1px solid palette(mid);
    border-radius: 11px;
    background: palette(alternate-base);
}
QFrame#Chip QLabel { padding: 0 2px 0 6px; }
QFrame#Chip QToolButton { border: none; padding: 0 4px; font-weight: bold; }
QFrame#Chip QToolButton:hover { color: palette(highlight); }
QLabel#SectionTitle { font-weight: 600; }
QLabel#EmptyState { font-size: 15px; }
"""
