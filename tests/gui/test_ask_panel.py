"""The ask panel: answers with clickable sources, streaming from a local LLM, not-found, errors."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from PySide6.QtCore import QPoint, Qt, QThreadPool
from PySide6.QtWidgets import QApplication

from desktop_app.ask_panel import AskPanel, _read_thumbnail, citation_label, format_clock
from desktop_app.controller import AppController
from desktop_app.rich_text import answer_markdown
from engine.answer import NOT_FOUND_MESSAGE, Citation
from tests.helpers import make_photo, make_text
from tests.unit.test_llm import FakeChatServer, closed_port_url, sse_event

QUESTION = "When is the boiler service due?"


@pytest.fixture
def notes(library, tmp_path):
    folder = tmp_path / "notes"
    make_text(
        folder / "boiler.txt", "The boiler service is due in October. The engineer from Acme Heating comes on Tuesday."
    )
    make_text(folder / "garden.txt", "Plant the tulip bulbs in November. The roses need pruning in March.")
    make_text(folder / "car.txt", "The car insurance renews on 3 May. Call Bluebird Insurance to compare quotes.")
    make_photo(folder / "boiler-room.jpg", 7)
    summary = library.index([folder])
    assert summary.added == 4 and not summary.failed
    return folder


@pytest.fixture
def controller(library, notes):
    controller = AppController(library=library)
    yield controller
    controller.shutdown()


@pytest.fixture
def panel(qtbot, controller):
    panel = AskPanel(controller)
    qtbot.addWidget(panel)
    panel.resize(600, 700)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def ask_and_wait(qtbot, panel, question, timeout=60_000):
    with qtbot.waitSignal(panel.answer_shown, timeout=timeout) as shown:
        qtbot.keyClicks(panel.question_field, question)
        qtbot.keyClick(panel.question_field, Qt.Key.Key_Return)
    return shown.args[0]


def use_llm(library, url):
    library.settings = dataclasses.replace(library.settings, llm_url=url, llm_model="test-model")


def test_an_answer_with_clickable_sources_and_photos(qtbot, panel, notes):
    loaded: list[int] = []
    panel.photos_shown.connect(loaded.append)
    answer = ask_and_wait(qtbot, panel, QUESTION)
    assert answer.found and answer.mode == "extractive"
    assert panel.answer_view.toPlainText() == answer.answer
    assert "October" in panel.answer_view.toPlainText()
    assert "[1]" in panel.answer_view.toPlainText()
    assert panel.citation_texts()[0] == "[1] boiler.txt"
    assert panel.status_label.text().startswith("Answered in")
    assert not panel.stop_button.isEnabled()
    assert not panel.warnings_label.isVisible()

    # Clicking the source in the list opens it at its place.
    label = panel.citation_labels[0]
    with qtbot.waitSignal(panel.citation_activated, timeout=2_000) as activated:
        qtbot.mouseClick(label, Qt.MouseButton.LeftButton, pos=QPoint(6, label.fontMetrics().height() // 2))
    boiler = answer.citations[0]
    assert activated.args == [str(notes / "boiler.txt"), "document", boiler.locator]
    assert "char_start" in activated.args[2]

    # So does the [1] in the answer text.
    cursor = panel.answer_view.document().find("[1]")
    assert not cursor.isNull()
    cursor.setPosition(cursor.selectionStart() + 1)
    spot = panel.answer_view.cursorRect(cursor).center()
    with qtbot.waitSignal(panel.citation_activated, timeout=2_000) as activated:
        qtbot.mouseClick(panel.answer_view.viewport(), Qt.MouseButton.LeftButton, pos=spot)
    assert activated.args[0] == str(notes / "boiler.txt")

    # The photo whose name matches is shown as a thumbnail; clicking it names it.
    photo = str(notes / "boiler-room.jpg")
    assert [p.path for p in answer.photos] == [photo]
    assert panel.photos.isVisible()
    assert panel.photo_paths() == [photo]
    qtbot.waitUntil(lambda: loaded == [1], timeout=10_000)
    assert not panel.photos.item(0).icon().isNull()
    rect = panel.photos.visualItemRect(panel.photos.item(0))
    with qtbot.waitSignal(panel.photo_activated, timeout=2_000) as clicked:
        qtbot.mouseClick(panel.photos.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert clicked.args == [photo]


def test_the_answer_streams_from_a_local_llm_in_order(qtbot, panel, library, controller):
    with FakeChatServer() as server:
        gate = server.gate()
        server.script = [
            sse_event({"role": "assistant"}),
            sse_event({"content": "The boiler"}),
            sse_event({"content": " service is due"}),
            gate,
            sse_event({"content": " in October [1]."}),
            sse_event(finish="stop"),
            b"data: [DONE]\n\n",
        ]
        use_llm(library, server.base_url)
        seen: list[str] = []
        controller.ask_token.connect(lambda _request, _text: seen.append(panel.answer_view.toPlainText()))

        qtbot.keyClicks(panel.question_field, QUESTION)
        qtbot.keyClick(panel.question_field, Qt.Key.Key_Return)
        # The first pieces are on screen while the server still holds back the rest.
        qtbot.waitUntil(lambda: panel.answer_view.toPlainText() == "The boiler service is due", timeout=60_000)
        assert panel.answer is None
        assert panel.stop_button.isEnabled()
        assert panel.status_label.text() == "Writing the answer…"
        # A piece of an older question is never shown.
        controller.ask_token.emit(controller._ask_request - 1, " STALE")
        assert "STALE" not in panel.answer_view.toPlainText()

        with qtbot.waitSignal(panel.answer_shown, timeout=30_000) as shown:
            gate.set()
    answer = shown.args[0]
    assert answer.mode == "llm"
    assert answer.answer == "The boiler service is due in October [1]."
    assert seen[:2] == ["The boiler", "The boiler service is due"]
    assert seen[-1] == answer.answer
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
    assert panel.answer_view.toPlainText() == answer.answer
    assert panel.citation_texts() == ["[1] boiler.txt"]
    assert "local language model" in panel.status_label.text()


def test_a_markdown_answer_is_rendered_and_its_citation_still_opens_the_source(qtbot, panel, library):
    with FakeChatServer() as server:
        server.script = [
            sse_event({"role": "assistant"}),
            sse_event({"content": "# Club meeting [1]\n\nThe boiler service is **due in October** [1]."}),
            sse_event(finish="stop"),
            b"data: [DONE]\n\n",
        ]
        use_llm(library, server.base_url)
        answer = ask_and_wait(qtbot, panel, QUESTION)
    assert answer.mode == "llm" and answer.answer.startswith("# Club meeting [1]")
    document = panel.answer_view.document()
    heading = document.firstBlock()
    assert heading.text() == "Club meeting [1]"  # no "#": a heading
    assert heading.blockFormat().headingLevel() == 1
    assert "#" not in panel.answer_view.toPlainText() and "**" not in panel.answer_view.toPlainText()
    bold = document.find("due in October")
    assert bold.charFormat().fontWeight() >= 600
    # The [1] in the heading is still a link to the source, and clicking it opens that source.
    cursor = document.find("[1]")
    assert cursor.charFormat().isAnchor() and cursor.charFormat().anchorHref() == "cite:1"
    rect = panel.answer_view.cursorRect(cursor)
    with qtbot.waitSignal(panel.citation_activated, timeout=2_000) as activated:
        qtbot.mouseClick(
            panel.answer_view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(rect.left() - 4, rect.center().y())
        )
    assert activated.args[0].endswith("boiler.txt")


def test_stop_keeps_what_streamed_and_ignores_the_rest(qtbot, panel, library):
    with FakeChatServer() as server:
        gate = server.gate()
        server.script = [
            sse_event({"role": "assistant"}),
            sse_event({"content": "The boiler"}),
            gate,
            sse_event({"content": " LATE"}),
            sse_event(finish="stop"),
            b"data: [DONE]\n\n",
        ]
        use_llm(library, server.base_url)
        panel.ask(QUESTION)
        qtbot.waitUntil(lambda: panel.answer_view.toPlainText() == "The boiler", timeout=60_000)
        with qtbot.assertNotEmitted(panel.answer_shown):
            qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
            assert panel.status_label.text() == "Stopped."
            assert not panel.stop_button.isEnabled()
            gate.set()
            assert server.finished.wait(10)
            qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10_000)
            QApplication.processEvents()
    assert panel.answer_view.toPlainText() == "The boiler"


def test_a_question_the_library_cannot_answer(qtbot, panel):
    answer = ask_and_wait(qtbot, panel, "quantum chromodynamics lattice gauge theory")
    assert answer.found is False
    assert panel.answer_view.toPlainText() == NOT_FOUND_MESSAGE
    assert panel.citation_texts() == []
    assert not panel.sources_title.isVisible()
    assert "Try other words" in panel.status_label.text()


def test_errors_are_shown_as_a_message(qtbot, panel, library):
    use_llm(library, "ftp://example.com/v1")
    with qtbot.waitSignal(panel.failed, timeout=60_000) as failed:
        panel.ask(QUESTION)
    shown = panel.answer_view.toPlainText()
    assert shown.startswith("Shoebox could not answer: ")
    assert "http://" in shown and failed.args[0] in shown
    assert "Traceback" not in shown
    assert not panel.stop_button.isEnabled()


def test_a_failing_llm_gives_the_extractive_answer_with_a_quiet_warning(qtbot, panel, library):
    use_llm(library, closed_port_url())
    answer = ask_and_wait(qtbot, panel, QUESTION)
    assert answer.mode == "extractive" and answer.warnings
    assert panel.warnings_label.isVisible()
    assert "The local LLM gave no answer" in panel.warnings_label.text()
    assert "October" in panel.answer_view.toPlainText()


def test_words():
    def cite(path, kind, locator, number=1):
        return Citation(number, path, kind, locator, "", 1)

    assert citation_label(cite("/x/report.pdf", "document", {"page": 3})) == "[1] report.pdf, page 3"
    assert citation_label(cite("/x/memo.m4a", "audio", {"start": 72.4, "end": 80.0}, 2)) == "[2] memo.m4a at 01:12"
    assert citation_label(cite("/x/beach.jpg", "image", {}, 3)) == "[3] beach.jpg (photo)"
    assert format_clock(3723) == "1:02:03"
    # [1] names a source: a link; [7] names none and stays text; a line break stays one.
    assert answer_markdown("A [1] and [7]\nnext", [1]) == "A [\\[1\\]](cite:1) and [7]  \nnext"


def test_asking_before_the_library_is_open_says_so(qtbot):
    controller = AppController()  # no library yet
    try:
        panel = AskPanel(controller)
        qtbot.addWidget(panel)
        with qtbot.waitSignal(panel.failed, timeout=2_000) as failed:
            panel.ask(QUESTION)
        assert failed.args == ["The library is still opening."]
        assert panel.answer_view.toPlainText() == "Shoebox could not answer: The library is still opening."
        assert not panel.stop_button.isEnabled()
        assert panel._request is None  # nothing is left waiting for an answer
    finally:
        controller.shutdown()


def test_a_heic_photo_without_a_saved_thumbnail_is_decoded_through_the_engine(qtbot, tmp_path):
    heic = make_photo(tmp_path / "IMG_0060.HEIC", 10, size=(400, 300), orientation=6)
    image = _read_thumbnail(str(heic), None, 96)
    assert image is not None and (image.width(), image.height()) == (72, 96)
