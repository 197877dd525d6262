"""File ▸ Library storage…: keeping the library on this computer or on a PostgreSQL server."""

from __future__ import annotations

import dataclasses
import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from desktop_app.store_dialog import StoreSettingsDialog
from engine.settings import Settings
from engine.stores import split_password, with_password
from tests.gui import test_main_window as shared
from tests.gui.test_main_window import search

# The window fixtures shared with test_main_window (pytest finds fixtures by name in the module).
corpus = shared.corpus
indexed = shared.indexed
window = shared.window

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/x"


def open_page(qtbot, window) -> StoreSettingsDialog:
    window.storage_action.trigger()
    dialog = window.storage_dialog
    assert isinstance(dialog, StoreSettingsDialog)
    qtbot.waitExposed(dialog)
    return dialog


def choose_server(qtbot, dialog: StoreSettingsDialog, address: str) -> None:
    qtbot.mouseClick(dialog.server_choice, Qt.MouseButton.LeftButton)
    dialog.address.setText(address)


def test_the_page_opens_from_the_file_menu_on_this_computer(qtbot, window):
    assert window.storage_action in window.file_menu.actions()
    assert window.storage_action.shortcut().toString() == "Ctrl+Shift+L"
    dialog = open_page(qtbot, window)
    assert dialog.local_choice.isChecked()
    assert str(window.controller.settings.db_path) in dialog.local_path.text()
    for field in (dialog.address, dialog.password, dialog.test_button):
        assert not field.isEnabled()
    assert "<code>shoebox store migrate</code>" in dialog.migrate_help.text()
    dialog.close()


def test_choosing_a_server_enables_its_fields(qtbot, window):
    dialog = open_page(qtbot, window)
    qtbot.mouseClick(dialog.server_choice, Qt.MouseButton.LeftButton)
    assert dialog.server_choice.isChecked()
    for field in (dialog.address, dialog.password, dialog.test_button, dialog.advanced_button):
        assert field.isEnabled()
    assert dialog.address.placeholderText().startswith("postgresql://")
    assert dialog.password.echoMode() == QLineEdit.EchoMode.Password
    # The advanced fields start at the declared defaults; an IVFFlat index shows its own.
    assert dialog.advanced.isHidden()
    dialog.advanced_button.click()
    assert dialog.advanced.isVisible()
    declared = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert (dialog.pg_m.value(), dialog.pg_ef_construction.value(), dialog.pg_ef_search.value()) == (
        declared["pg_m"],
        declared["pg_ef_construction"],
        declared["pg_ef_search"],
    )
    assert dialog.pg_m.isVisible() and not dialog.pg_lists.isVisible()
    dialog.index_kind.setCurrentIndex(dialog.index_kind.findData("ivfflat"))
    assert dialog.pg_lists.isVisible() and dialog.pg_probes.isVisible() and not dialog.pg_m.isVisible()
    assert dialog.pg_lists.text() == "Chosen for you"
    dialog.close()


def test_a_bad_address_is_refused_beside_the_field(qtbot, window):
    dialog = open_page(qtbot, window)
    choose_server(qtbot, dialog, "nas.local")
    with qtbot.assertNotEmitted(dialog.tested):
        dialog.test_button.click()
    assert "postgresql://" in dialog.address_error.message()
    assert not dialog.save()
    assert not (window.controller.settings.home / "settings.json").exists()
    dialog.close()


def test_testing_a_server_says_what_it_holds(qtbot, window, postgres_db):
    dialog = open_page(qtbot, window)
    choose_server(qtbot, dialog, postgres_db)
    with qtbot.waitSignal(dialog.tested, timeout=20_000) as blocker:
        dialog.test_button.click()
        assert dialog.is_busy() and dialog.progress_bar.isVisible()
    usable, text = blocker.args
    assert usable, text
    assert text.startswith("Connected to PostgreSQL ")
    assert "holds no Shoebox library yet" in text
    assert dialog.message() == text
    # Testing changed nothing on the server: it still holds no library.
    with qtbot.waitSignal(dialog.tested, timeout=20_000) as again:
        dialog.test_button.click()
    assert "holds no Shoebox library yet" in again.args[1]
    dialog.close()


def test_an_unreachable_server_is_reported_without_a_traceback(qtbot, window):
    dialog = open_page(qtbot, window)
    choose_server(qtbot, dialog, UNREACHABLE)
    with qtbot.waitSignal(dialog.tested, timeout=20_000) as blocker:
        dialog.test_button.click()
    usable, text = blocker.args
    assert not usable
    assert text.startswith("Shoebox cannot reach the PostgreSQL server (postgresql://nobody@127.0.0.1:1/x)")
    assert "Traceback" not in text and "SHOEBOX_STORE" not in text
    assert dialog.outcome.isVisible() and dialog.message() == text
    assert not dialog.is_busy() and dialog.test_button.isEnabled()
    dialog.close()


def test_a_test_can_be_cancelled(qtbot, window):
    dialog = open_page(qtbot, window)
    choose_server(qtbot, dialog, UNREACHABLE)
    with qtbot.assertNotEmitted(dialog.tested, wait=500):
        dialog.test_button.click()
        assert dialog.cancel_button.isVisible()
        dialog.cancel_button.click()
    assert not dialog.is_busy()
    assert dialog.message() == "Stopped waiting for the server."
    dialog.close()


def test_saving_moves_the_running_app_to_the_server(qtbot, window, corpus, postgres_db):
    assert search(qtbot, window, "boiler") > 0  # on the SQLite library the window opened with
    home = window.controller.settings.home
    dialog = open_page(qtbot, window)
    choose_server(qtbot, dialog, postgres_db)
    dialog.advanced_button.click()
    dialog.pg_ef_search.setValue(80)
    # The search typed before runs again, on the server's library: new, and empty.
    with (
        qtbot.waitSignals([window.library_info_loaded, window.results_shown], timeout=30_000),
        qtbot.waitSignal(dialog.store_changed, timeout=30_000) as changed,
    ):
        assert dialog.save()
    assert window.results.shown_paths() == []
    saved = changed.args[0]
    assert (saved.store, saved.pg_ef_search) == (postgres_db, 80)
    assert json.loads((home / "settings.json").read_text()) == {"store": postgres_db, "pg_ef_search": 80}
    assert window.controller.settings.store == postgres_db
    assert window.library_label.toolTip().startswith(f"Library: {postgres_db.split('@')[0]}")
    assert window.storage_dialog is None  # the page closed
    # Browsing shows the server's library, which is empty; what is indexed now goes there.
    window.clear_search()
    qtbot.waitUntil(lambda: window.results.showing_empty() and "empty" in window.results.empty_label.text())
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000) as finished:
        window.controller.index([corpus.root])
    assert finished.args[0].added == 5
    assert search(qtbot, window, "boiler") > 0
    assert any(p.endswith("boiler.txt") for p in window.results.shown_paths())

    # And back: the library on this computer is as it was left.
    dialog = open_page(qtbot, window)
    assert dialog.server_choice.isChecked() and dialog.address.text() == postgres_db
    dialog.local_choice.click()
    with (
        qtbot.waitSignal(window.results_shown, timeout=30_000),
        qtbot.waitSignal(dialog.store_changed, timeout=30_000),
    ):
        assert dialog.save()
    assert window.controller.settings.store == ""
    assert json.loads((home / "settings.json").read_text())["store"] == ""
    assert any(p.endswith("boiler.txt") for p in window.results.shown_paths())


def test_a_server_that_does_not_answer_leaves_the_library_where_it_was(qtbot, window):
    home = window.controller.settings.home
    dialog = open_page(qtbot, window)
    choose_server(qtbot, dialog, UNREACHABLE)
    with qtbot.assertNotEmitted(dialog.store_changed, wait=0):
        assert dialog.save()
        qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=20_000)
    assert dialog.message().startswith("The library stays where it was. Shoebox cannot reach")
    assert dialog.isVisible()
    assert not (home / "settings.json").exists()
    assert window.controller.settings.store == ""
    assert search(qtbot, window, "boiler") > 0
    dialog.close()


def test_the_environment_setting_disables_the_page(qtbot, window, monkeypatch):
    location = "postgresql://me:hunter2@nas.local/shoebox"
    monkeypatch.setenv("SHOEBOX_STORE", location)
    window.controller.settings = window.controller.settings.with_overrides(store=location)  # as loaded with it
    dialog = open_page(qtbot, window)
    note = dialog.environment_note.message()
    assert "set where Shoebox was started from" in note
    assert "postgresql://me:***@nas.local/shoebox" in note
    assert dialog.server_choice.isChecked()
    for field in (dialog.local_choice, dialog.server_choice, dialog.address, dialog.password, dialog.save_button):
        assert not field.isEnabled()
    assert dialog.test_button.isEnabled()  # trying where it points changes nothing
    assert not dialog.save()
    assert not (window.controller.settings.home / "settings.json").exists()
    dialog.close()


def test_a_saved_password_is_never_shown_and_is_kept(qtbot, window):
    controller = window.controller
    controller.settings = controller.settings.with_overrides(store="postgresql://me:hunter2@nas.local/shoebox")
    dialog = open_page(qtbot, window)
    assert dialog.server_choice.isChecked()
    assert dialog.address.text() == "postgresql://me@nas.local/shoebox"
    assert dialog.password.text() == ""
    assert "Saved" in dialog.password.placeholderText()
    shown = [w.text() for w in dialog.findChildren(QLineEdit)] + [
        label.text() for label in dialog.findChildren(type(dialog.local_path))
    ]
    assert not any("hunter2" in text for text in shown)
    # Left empty, the saved password stays in what would be saved; a new one replaces it.
    assert dialog.location() == "postgresql://me:hunter2@nas.local/shoebox"
    dialog.password.setText("new secret")
    assert dialog.location() == "postgresql://me:new%20secret@nas.local/shoebox"
    # Another server does not get the old server's password.
    dialog.password.clear()
    dialog.address.setText("postgresql://me@other.local/shoebox")
    assert dialog.location() == "postgresql://me@other.local/shoebox"
    dialog.close()


@pytest.mark.parametrize(
    ("location", "address", "password"),
    [
        ("postgresql://me:s%40cret@nas/db", "postgresql://me@nas/db", "s@cret"),
        ("postgresql://me@nas/db?sslmode=require&password=x%20y", "postgresql://me@nas/db?sslmode=require", "x y"),
        ("postgresql:///shoebox?host=/run/postgresql", "postgresql:///shoebox?host=/run/postgresql", ""),
        ("host=nas password='it\\'s' dbname=shoebox", "host=nas dbname=shoebox", "it's"),
    ],
)
def test_a_password_comes_out_of_an_address_and_goes_back(location, address, password):
    from psycopg.conninfo import conninfo_to_dict

    assert split_password(location) == (address, password)
    merged = with_password(address, password)
    assert conninfo_to_dict(merged) == conninfo_to_dict(location)
