"""Reading what was found: paragraphs kept, the whole passage in context with the match in view, Markdown rendered."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QPalette, QTextCursor, QTextDocument

from desktop_app.main_window import MainWindow
from desktop_app.results import CardDelegate
from desktop_app.style import mark_background
from tests.gui.test_main_window import search
from tests.helpers import make_text

FILLER = (
    "Paragraph {n} says little of note: the weather was mild, the trains ran on time, and the shop on the "
    "corner sold bread, milk and the morning papers to the people who passed by on their way to work."
)
ENGLISH = "\n\n".join(
    [FILLER.format(n=n) for n in range(1, 8)]
    + ["The harbour lighthouse was repainted red and white in the spring.\nIts lamp is lit again at dusk."]
    + [FILLER.format(n=n) for n in range(9, 16)]
)
KOREAN_FILLER = (
    "오늘은 날씨가 맑았고 기차는 제시간에 도착했으며 모퉁이 가게에서는 빵과 우유와 신문을 팔았다 {n}번째 문단이다"
)
KOREAN = "\n\n".join(
    [KOREAN_FILLER.format(n=n) for n in range(1, 8)]
    + ["등대는 봄에 빨간색과 흰색으로 다시 칠해졌다\n해질녘에 등불이 다시 켜진다"]
    + [KOREAN_FILLER.format(n=n) for n in range(9, 16)]
)
MARKDOWN = "# Club meeting\n\nWe meet on **Thursday** at the boathouse.\n\n- bring a torch\n- bring the minutes\n"


@pytest.fixture
def reading_window(qtbot, library, tmp_path):
    folder = tmp_path / "notes"
    make_text(folder / "harbour.txt", ENGLISH)
    make_text(folder / "등대.txt", KOREAN)
    make_text(folder / "club.md", MARKDOWN)
    summary = library.index([folder])
    assert summary.added == 3 and not summary.failed
    window = MainWindow(library=library)
    window.results.set_threshold(None)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    yield window
    window.close()


def preview_card(qtbot, window: MainWindow, name: str):
    """Select the card of the file ``name`` and wait until the preview has the passage's details."""
    model = window.results.passage_model
    rows = [row for row in range(model.rowCount()) if Path(model.result(row).path).name == name]
    assert rows, f"{name} was not found"
    window.results.passage_view.setFocus()
    window.results.passage_view.setCurrentIndex(model.index(rows[0]))
    preview = window.preview
    qtbot.waitUntil(lambda: bool(preview.details), timeout=10_000)
    return model.result(rows[0])


def highlighted(preview, word: str) -> list[int]:
    """Where ``word`` starts in the passage with the match highlight behind it."""
    document = preview.passage_view.document()
    colour = mark_background(preview.passage_view.palette())
    found, cursor = [], document.find(word)
    while not cursor.isNull():
        if cursor.charFormat().background().color() == colour:
            found.append(cursor.selectionStart())
        cursor = document.find(word, cursor)
    return found


def match_in_view(qtbot, preview) -> None:
    view = preview.passage_view
    cursor = QTextCursor(view.document())
    cursor.setPosition(preview.match_position)

    def visible() -> bool:
        rect = view.cursorRect(cursor)
        return rect.top() >= 0 and rect.bottom() <= view.viewport().height()

    qtbot.waitUntil(visible, timeout=5_000)


def test_an_english_passage_keeps_its_paragraphs_and_shows_the_match_in_context(qtbot, reading_window):
    search(qtbot, reading_window, "lighthouse")
    result = preview_card(qtbot, reading_window, "harbour.txt")
    preview = reading_window.preview
    own = preview.details["text"]
    shown = preview.passage_view.toPlainText()
    # More than the stored passage: the paragraphs around it on the page, line breaks and blank lines kept.
    assert len(shown) > len(own) and own in shown
    assert "lighthouse was repainted red and white in the spring.\nIts lamp is lit again at dusk." in shown
    assert "\n\nParagraph 9 says" in shown
    assert shown in ENGLISH  # stitched from the chunks around it exactly as the file has it
    # The word typed is highlighted, and scrolled into view in a preview too short for the whole page.
    assert highlighted(preview, "lighthouse")
    assert preview.match_position == highlighted(preview, "lighthouse")[0]
    assert preview.passage_view.verticalScrollBar().maximum() > 0
    match_in_view(qtbot, preview)
    assert result.snippet and "«lighthouse»" in result.snippet


def test_a_korean_passage_is_shown_whole_not_as_a_short_chunk(qtbot, reading_window):
    search(qtbot, reading_window, "등대는")
    preview_card(qtbot, reading_window, "등대.txt")
    preview = reading_window.preview
    own = preview.details["text"]
    shown = preview.passage_view.toPlainText()
    assert own in shown and len(shown) > len(own)
    assert shown in KOREAN
    # Korean has few spaces and Chinese and Japanese none: no word-based cut shortens the passage.
    assert "등대는 봄에 빨간색과 흰색으로 다시 칠해졌다\n해질녘에 등불이 다시 켜진다" in shown
    assert "\n\n" in shown
    assert len(shown) >= 300
    # "등대는" is "등대" (lighthouse) and a particle: the word is what is marked.
    assert highlighted(preview, "등대")
    assert preview.match_position == highlighted(preview, "등대")[0]
    match_in_view(qtbot, preview)


def test_markdown_is_rendered_in_the_preview_and_on_the_card(qtbot, reading_window):
    search(qtbot, reading_window, "boathouse")
    result = preview_card(qtbot, reading_window, "club.md")
    document = reading_window.preview.passage_view.document()
    assert document.firstBlock().text() == "Club meeting"
    assert document.firstBlock().blockFormat().headingLevel() == 1
    shown = document.toPlainText()
    assert "#" not in shown and "**" not in shown and "bring a torch" in shown
    assert document.find("Thursday").charFormat().fontWeight() >= 600
    assert highlighted(reading_window.preview, "boathouse")
    # The card's snippet reads as text too, at the card's own size.
    delegate = reading_window.results.passage_view.itemDelegate()
    assert isinstance(delegate, CardDelegate)
    palette = reading_window.results.passage_view.palette()
    card = delegate._document(result, palette, reading_window.font(), 300)
    assert "#" not in card.toPlainText() and card.toPlainText().startswith("Club meeting")
    assert card.firstBlock().blockFormat().headingLevel() == 0
    mark = mark_background(palette)
    cursor = card.find("boathouse")
    assert cursor.charFormat().background().color() == mark
    assert palette.color(QPalette.ColorRole.Base) != mark


def test_a_markdown_source_of_an_answer_reads_as_text(qtbot, reading_window):
    reading_window.ask_action.trigger()
    panel = reading_window.ask_panel
    with qtbot.waitSignal(panel.answer_shown, timeout=30_000) as shown:
        panel.ask("When do we meet at the boathouse?")
    answer = shown.args[0]
    assert answer.found
    labels = [label for label in panel.citation_labels if "club.md" in label.property("citation_text")]
    assert labels, panel.citation_texts()
    html = labels[0].text()
    rendered = QTextDocument()
    rendered.setHtml(html)
    text = rendered.toPlainText()
    assert "We meet on Thursday at the boathouse." in text and "**" not in text and "#" not in text
    assert rendered.find("Thursday").charFormat().fontWeight() >= 600  # **Thursday** is bold, as written
    assert 'href="cite:' in html  # the source's name is still its link
