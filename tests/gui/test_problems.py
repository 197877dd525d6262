"""View ▸ Problems: every failed file with its reason, a filter, Open / Show in folder / Retry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt

from desktop_app.main_window import MainWindow
from desktop_app.problems import EMPTY_TEXT, Problem, format_failed_at, retry_hint
from tests.conftest import TINY_ENV
from tests.gui.test_main_window import opened, search  # noqa: F401  (fixture and helper)
from tests.helpers import make_photo, make_text

MISSING_MODEL = (
    "CLIP weights for ViT-B-32 (openai) are not on this computer. Run `shoebox models download clip`, "
    "or set SHOEBOX_CLIP_WEIGHTS=/path/to/open_clip_model.safetensors, or `shoebox models import FILE`."
)


@dataclass
class Files:
    root: Path
    good: Path  # read fine
    damaged: Path  # a .jpg that is no picture: fails, and would fail again unchanged
    junk_mail: Path  # an .eml with no mail headers
    harbour: Path  # a good photo recorded as failed for want of the CLIP model


@pytest.fixture
def unwatched_library(tmp_path, tiny_clip, tiny_whisper, tiny_text):
    """A library whose folders are not watched: a fixed file waits for Retry rather than being indexed at once."""
    from engine.library import Library
    from engine.settings import load_settings

    settings = load_settings(home=tmp_path / "library", env={**TINY_ENV, "SHOEBOX_WATCH": "0"})
    lib = Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text)
    yield lib
    lib.close()


@pytest.fixture
def files(tmp_path) -> Files:
    root = tmp_path / "files"
    damaged = root / "scans" / "damaged.jpg"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"this is not a picture" * 20)
    junk = root / "mail" / "junk.eml"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"\x00\x01 nothing here looks like a mail message \x02" * 30)
    return Files(
        root=root,
        good=make_text(root / "notes" / "boiler.txt", "The boiler service is due in October."),
        damaged=damaged,
        junk_mail=junk,
        harbour=make_photo(root / "photos" / "harbour.jpg", 4),
    )


@pytest.fixture
def failing(unwatched_library, files):
    summary = unwatched_library.index([files.root])
    assert sorted(Path(f["path"]).name for f in summary.failed) == ["damaged.jpg", "junk.eml"]
    # As if the photo had been read while the CLIP weights were missing.
    st = os.stat(files.harbour)
    unwatched_library.store.record_failure(
        str(files.harbour), size=st.st_size, mtime=st.st_mtime, kind="image", reason=MISSING_MODEL
    )
    return unwatched_library


@pytest.fixture
def window(qtbot, failing):
    w = MainWindow(library=failing)
    w.results.set_threshold(None)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.library_ready, timeout=10_000):
        w.show()
    yield w
    w.close()


def open_problems(qtbot, window: MainWindow, how=None) -> int:
    """Open View ▸ Problems (by ``how``, the menu action by default); how many files it lists."""
    with qtbot.waitSignal(window.problems_window.problems_shown, timeout=10_000) as shown:
        (how or window.problems_action.trigger)()
    assert window.problems_window.isVisible()
    return shown.args[0]


def rows(problems_window) -> list[tuple[str, str]]:
    """(name, reason) of each row shown, by name."""
    model = problems_window.model
    return sorted((model.index(r, 0).data(), model.index(r, 1).data()) for r in range(model.rowCount()))


def select(problems_window, *paths: Path) -> None:
    problems_window.select([str(p) for p in paths])


# -- pure parts -------------------------------------------------------------------------------------


def test_retry_is_offered_only_where_the_cause_can_go_away():
    assert retry_hint(MISSING_MODEL)[0]
    assert retry_hint("PDF has no text layer (scanned pages?) and text recognition is off: TESSDATA…")[0]
    assert retry_hint("permission denied: Shoebox may not read this file")[0]
    assert retry_hint("cannot read the file: Input/output error")[0]
    damaged = "file ends with .jpg but is not an image"
    assert retry_hint(damaged) == (False, "Retrying would fail the same way until the file is replaced or repaired.")
    assert not retry_hint("unsupported file type .xyz; Shoebox indexes photos, documents and recordings")[0]
    assert retry_hint(damaged, changed=True) == (True, "The file changed since it failed: Retry reads it again.")
    # A file that is not there any more cannot be read, whatever the reason was.
    assert not retry_hint(MISSING_MODEL, present=False)[0]


def test_when_a_file_failed_is_said_briefly():
    now = datetime(2024, 5, 10, 15, 0)
    assert format_failed_at(datetime(2024, 5, 10, 9, 5).timestamp(), now) == "today 09:05"
    assert format_failed_at(datetime(2024, 5, 9, 23, 59).timestamp(), now) == "yesterday 23:59"
    assert format_failed_at(datetime(2024, 3, 3, 14, 3).timestamp(), now) == "3 Mar 14:03"
    assert format_failed_at(datetime(2022, 3, 3, 14, 3).timestamp(), now) == "3 Mar 2022"
    assert format_failed_at(0.0, now) == ""


# -- the window -------------------------------------------------------------------------------------


def test_the_menu_action_and_its_shortcut_open_the_list(qtbot, window):
    assert window.problems_action in window.view_menu.actions()
    assert window.problems_action.shortcut().toString() == "Ctrl+Shift+P"
    window.activateWindow()
    qtbot.waitActive(window)
    count = open_problems(
        qtbot,
        window,
        lambda: qtbot.keyClick(
            window, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        ),
    )
    assert count == 3


def test_every_failure_is_listed_with_its_reason_after_the_summary_is_gone(qtbot, window, files):
    # A run through the window shows its summary; once dismissed, the failures are still here.
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000):
        window.controller.index([files.root])
    window.indexing_panel.dismiss()
    assert not window.indexing_dock.isVisible()

    assert open_problems(qtbot, window) == 3
    problems = window.problems_window
    assert rows(problems) == [
        ("damaged.jpg", "File ends with .jpg but is not an image"),
        # Shown without the command-line advice the CLI gives with it.
        ("harbour.jpg", "CLIP weights for ViT-B-32 (openai) are not on this computer."),
        ("junk.eml", "This file is not a mail message (it has no mail headers such as From, To or Subject)"),
    ]
    assert problems.title.text() == "3 files could not be read · 1 can be retried"
    # Its folder and when it failed are columns too.
    first = {problems.model.index(r, 0).data(): r for r in range(3)}["junk.eml"]
    assert problems.model.index(first, 2).data().endswith(os.path.join("files", "mail"))
    assert problems.model.index(first, 3).data().startswith("today ")
    select(problems, files.junk_mail)
    assert problems.details.text().startswith(f"{files.junk_mail}\nThis file is not a mail message")  # tmp: not under ~


def test_the_filter_narrows_by_name_folder_and_reason(qtbot, window, files):
    open_problems(qtbot, window)
    problems = window.problems_window
    qtbot.keyClicks(problems.filter_field, "MAIL headers")  # words of the reason, any case
    assert [name for name, _ in rows(problems)] == ["junk.eml"]
    problems.filter_field.setText("scans")  # the folder
    assert [name for name, _ in rows(problems)] == ["damaged.jpg"]
    problems.filter_field.setText("harb")  # the name
    assert [name for name, _ in rows(problems)] == ["harbour.jpg"]
    problems.filter_field.setText("nothing like this")
    assert rows(problems) == []
    assert problems.stack.currentWidget() is problems.empty_label
    assert problems.empty_label.text() == "No problem matches “nothing like this”."
    problems.filter_field.clear()
    problems.retryable_only.setChecked(True)
    assert [name for name, _ in rows(problems)] == ["harbour.jpg"]


def test_retry_fixes_what_can_be_fixed(qtbot, window, files):
    open_problems(qtbot, window)
    problems = window.problems_window

    # Damaged and unchanged: retrying would fail the same way.
    select(problems, files.damaged)
    assert not problems.retry_button.isEnabled()
    assert problems.details.text().endswith("until the file is replaced or repaired.")
    # The model is here now: the photo can be retried.
    select(problems, files.harbour)
    assert problems.retry_button.isEnabled()

    # The person replaces the damaged file with a good one; the list sees it when looked at again.
    make_photo(files.damaged, 7)
    with qtbot.waitSignal(problems.problems_shown, timeout=10_000):
        problems.refresh()
    select(problems, files.damaged, files.harbour, files.junk_mail)
    assert problems.details.text() == "3 files selected. 2 of them can be retried."
    with qtbot.waitSignal(window.controller.index_started, timeout=5_000) as started:
        qtbot.mouseClick(problems.retry_button, Qt.MouseButton.LeftButton)
    assert sorted(started.args[0]) == sorted([str(files.damaged), str(files.harbour)])  # not the junk mail
    assert window.indexing_dock.isVisible()  # progress shows as for any indexing
    assert problems.progress_bar.isVisible() and problems.progress_label.text() == "Retrying 2 files…"
    with qtbot.waitSignal(problems.problems_shown, timeout=60_000) as shown:
        pass
    assert shown.args[0] == 1
    assert [name for name, _ in rows(problems)] == ["junk.eml"]
    assert problems.progress_label.text() == "Retried 2 files: 2 read now."
    assert not problems.progress_bar.isVisible()
    assert window.controller.library is not None
    assert window.controller.library.store.get_file(str(files.damaged)).status == "indexed"
    # ... and both are found now.
    search(qtbot, window, "damaged")
    assert str(files.damaged) in window.results.photo_paths()
    search(qtbot, window, "harbour")
    assert str(files.harbour) in window.results.photo_paths()
    qtbot.waitUntil(lambda: window.failed_label.text().endswith(">1 failed</a>"), timeout=10_000)


def test_open_and_show_in_folder_use_the_results_helpers(qtbot, window, files, opened):  # noqa: F811
    open_problems(qtbot, window)
    problems = window.problems_window
    select(problems, files.junk_mail)
    qtbot.mouseClick(problems.open_button, Qt.MouseButton.LeftButton)
    assert [u.toLocalFile() for u in opened] == [str(files.junk_mail)]
    assert window.statusBar().currentMessage() == "Opened junk.eml"
    opened.clear()
    select(problems, files.junk_mail, files.damaged)
    qtbot.mouseClick(problems.reveal_button, Qt.MouseButton.LeftButton)
    assert sorted(u.toLocalFile() for u in opened) == sorted([str(files.junk_mail.parent), str(files.damaged.parent)])


def test_a_file_that_is_gone_is_neither_opened_nor_retried(qtbot, window, files):
    files.harbour.unlink()
    open_problems(qtbot, window)
    problems = window.problems_window
    select(problems, files.harbour)
    assert not problems.open_button.isEnabled()
    assert not problems.retry_button.isEnabled()
    assert problems.reveal_button.isEnabled()
    assert "not there any more" in problems.details.text()


def test_the_status_bar_count_opens_the_list(qtbot, window):
    label = window.failed_label
    assert label.isVisible() and label.text() == '<a href="problems">3 failed</a>'
    assert window.library_label.text() == "0 photos · 1 document · 0 recordings"  # the photo that failed is not counted
    assert not window.problems_window.isVisible()
    # Clicking the link, as a person does.
    centre = QPoint(label.contentsRect().left() + label.fontMetrics().horizontalAdvance("3 fa"), label.height() // 2)
    assert open_problems(qtbot, window, lambda: qtbot.mouseClick(label, Qt.MouseButton.LeftButton, pos=centre)) == 3


def test_the_list_follows_the_library(qtbot, window, files):
    open_problems(qtbot, window)
    problems = window.problems_window
    # Indexing that records a new failure refreshes the open list by itself.
    broken = files.root / "scans" / "also-broken.png"
    broken.write_bytes(b"no picture here" * 10)
    with qtbot.waitSignal(problems.problems_shown, timeout=60_000) as shown:
        window.controller.index([broken])
    while shown.args[0] != 4:  # the end of the run and the library's change each refresh it
        with qtbot.waitSignal(problems.problems_shown, timeout=10_000) as shown:
            pass
    assert "also-broken.png" in [name for name, _ in rows(problems)]


def test_the_empty_state(qtbot, library, tmp_path):
    make_text(tmp_path / "files" / "note.txt", "All good here.")
    assert library.index([tmp_path / "files"]).failed == []
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    assert not window.failed_label.isVisible()
    assert open_problems(qtbot, window) == 0
    problems = window.problems_window
    assert problems.stack.currentWidget() is problems.empty_label
    assert problems.empty_label.isVisible() and problems.empty_label.text() == EMPTY_TEXT
    assert not problems.filter_field.isEnabled()
    window.close()


def test_thousands_of_rows_are_one_model(qtbot, window):
    open_problems(qtbot, window)
    problems = window.problems_window
    many = [
        Problem.from_row(
            {
                "path": f"/photos/{i:05}.jpg",
                "folder": "/photos",
                "reason": "file ends with .jpg but is not an image",
                "failed_at": 1.7e9 + i,
                "present": True,
                "changed": False,
            }
        )
        for i in range(5000)
    ]
    problems.set_problems(many)
    assert problems.model.rowCount() == 5000
    assert problems.model.index(0, 0).data() == "04999.jpg"  # the latest failure first
    problems.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # a click on Name
    assert problems.model.index(0, 0).data() == "00000.jpg"
    problems.select(["/photos/04999.jpg", "/photos/00007.jpg"])
    problems.filter_field.setText("04999")
    assert [name for name, _ in rows(problems)] == ["04999.jpg"]
    # Actions apply to what is shown: a selected row the filter hides is no longer selected.
    assert [p.name for p in problems.selected_problems()] == ["04999.jpg"]
    problems.filter_field.clear()
    assert [p.name for p in problems.selected_problems()] == ["04999.jpg"]
    # No widget per row: the window has as many widgets with 5000 rows as with 3.
    from PySide6.QtWidgets import QWidget

    assert len(problems.findChildren(QWidget)) < 60
