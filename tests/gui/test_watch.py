"""The library stays current while the app runs: its folders are watched and changes indexed quietly."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
from PySide6.QtCore import QSettings

from desktop_app.controller import AppController, Job, describe_update
from desktop_app.dialogs import SettingsDialog
from engine.ingest import IndexSummary
from engine.settings import load_settings
from tests.conftest import TINY_ENV
from tests.gui import test_main_window as shared
from tests.gui.test_main_window import search
from tests.helpers import make_text

# The window fixtures shared with test_main_window (pytest finds fixtures by name in the module).
corpus = shared.corpus
indexed = shared.indexed
window = shared.window


def test_a_file_added_to_a_watched_folder_is_found_within_seconds(qtbot, window, corpus):
    c = window.controller
    qtbot.waitUntil(lambda: c.watching == [str(corpus.root)], timeout=10_000)
    search(qtbot, window, "passport")
    assert not any(path.endswith("passport.txt") for path in window.results.passage_paths())
    new = make_text(corpus.root / "notes" / "passport.txt", "The passport renewal form must be posted by Friday.")
    # Nothing is pressed: the watcher's batch is indexed and the search shown again.
    qtbot.waitUntil(lambda: str(new) in window.results.passage_paths(), timeout=15_000)
    assert window.status_label.text() == "Updated 1 file in files"
    assert not window.indexing_dock.isVisible()  # quiet: the indexing panel stays away
    qtbot.waitUntil(lambda: window.library_label.text() == "3 photos · 3 documents · 0 recordings", timeout=10_000)


def test_a_deleted_file_leaves_the_results(qtbot, window, corpus):
    c = window.controller
    qtbot.waitUntil(lambda: c.watching == [str(corpus.root)], timeout=10_000)
    search(qtbot, window, "boiler")
    assert str(corpus.boiler) in window.results.passage_paths()
    with qtbot.waitSignal(c.folders_updated, timeout=15_000) as updated:
        corpus.boiler.unlink()
    assert updated.args[0].removed == 1
    qtbot.waitUntil(lambda: str(corpus.boiler) not in window.results.passage_paths(), timeout=10_000)


def test_a_moved_folder_keeps_its_files(qtbot, window, corpus, indexed):
    c = window.controller
    qtbot.waitUntil(lambda: c.watching == [str(corpus.root)], timeout=10_000)
    before = indexed.store.item_ids_of(str(corpus.boiler))
    moved = corpus.root / "archive"
    with qtbot.waitSignal(c.folders_updated, timeout=15_000) as updated:
        shutil.move(corpus.root / "notes", moved)
    # A watcher may split a move over two batches; either way nothing is read again.
    qtbot.waitUntil(lambda: indexed.store.item_ids_of(str(moved / "boiler.txt")) == before, timeout=15_000)
    assert updated.args[0].added == 0 and updated.args[0].updated == 0


@pytest.fixture
def controller(indexed):
    controller = AppController(library=indexed)
    yield controller
    controller.shutdown()


def test_changes_wait_for_the_running_job(qtbot, controller, corpus, tmp_path):
    with qtbot.waitSignal(controller.library_opened, timeout=10_000):
        controller.open()
    qtbot.waitUntil(lambda: controller.watching == [str(corpus.root)], timeout=10_000)
    other = tmp_path / "more"
    for n in range(6):
        make_text(other / f"note {n}.txt", f"Note number {n} about the allotment.")
    note = make_text(corpus.root / "notes" / "dentist.txt", "The dentist appointment is on Tuesday.")
    order: list[str] = []
    controller.index_finished.connect(lambda _s: order.append("index"))
    controller.folders_updated.connect(lambda _s: order.append("watch"))
    with qtbot.waitSignal(controller.index_started, timeout=5_000):
        controller.index([other])
    assert controller.job is Job.INDEX
    # The watcher's batch arrives while indexing runs (the indexing job can end only once the event
    # loop runs again): it waits for it, never a second writer.
    controller._changes_seen.emit([str(note)])
    assert controller.job is Job.INDEX
    qtbot.waitUntil(lambda: order == ["index", "watch"], timeout=30_000)
    assert controller.job is Job.NONE
    # The new folder is watched once indexed.
    qtbot.waitUntil(lambda: controller.watching == sorted([str(corpus.root), str(other)]), timeout=10_000)


def test_watching_can_be_turned_off_in_the_settings(qtbot, controller, corpus):
    with qtbot.waitSignal(controller.library_opened, timeout=10_000):
        controller.open()
    qtbot.waitUntil(lambda: controller.watching == [str(corpus.root)], timeout=10_000)
    settings = controller.settings
    assert settings is not None and settings.watch_folders
    controller.apply_settings(replace(settings, watch_folders=False))
    assert controller.watching == []
    seen: list[object] = []
    controller.folders_updated.connect(seen.append)
    make_text(corpus.root / "notes" / "dentist.txt", "The dentist appointment is on Tuesday.")
    qtbot.wait(2_500)  # longer than the watcher's quiet period
    assert seen == []
    controller.apply_settings(replace(settings, watch_folders=True))
    qtbot.waitUntil(lambda: controller.watching == [str(corpus.root)], timeout=10_000)


def test_the_status_line_says_what_changed_where():
    summary = IndexSummary(added=2, removed=1)
    assert describe_update(summary, ["/home/me/Pictures"]) == "Updated 3 files in Pictures"
    summary = IndexSummary(moved=1, failed=[{"path": "/a/b.jpg", "reason": "empty"}])
    assert describe_update(summary, ["/a", "/b"]) == "Updated 1 file in 2 folders (1 could not be read)"


def test_the_settings_dialog_turns_watching_off(qtbot, tmp_path):
    settings = load_settings(home=tmp_path / "library", env=dict(TINY_ENV))
    dialog = SettingsDialog(settings, app_settings=QSettings(str(tmp_path / "app.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(dialog)
    assert dialog.watch_folders.isChecked()
    dialog.watch_folders.setChecked(False)
    with qtbot.waitSignal(dialog.settings_changed, timeout=2_000) as changed:
        assert dialog.save()
    assert changed.args[0].watch_folders is False
    assert json.loads((settings.home / "settings.json").read_text()) == {"watch_folders": False}
    assert load_settings(home=settings.home, env=dict(TINY_ENV)).watch_folders is False
    assert load_settings(home=settings.home, env={**TINY_ENV, "SHOEBOX_WATCH": "1"}).watch_folders is True
