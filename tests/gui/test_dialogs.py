"""The settings dialog (the model set-up dialog is tested in test_model_setup.py)."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QFileDialog

from desktop_app.dialogs import THUMBNAIL_SIZE_KEY, SettingsDialog, thumbnail_size
from engine.settings import load_settings
from tests.conftest import TINY_ENV


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path / "library", env=dict(TINY_ENV))


@pytest.fixture
def app_settings(tmp_path):
    return QSettings(str(tmp_path / "app.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def settings_dialog(qtbot, settings, app_settings):
    dialog = SettingsDialog(settings, app_settings=app_settings)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.clip_model.count() > 1, timeout=10_000)  # the model names arrived
    return dialog


def test_settings_are_saved(qtbot, settings_dialog, settings, app_settings):
    settings_dialog.llm_url.setText("http://127.0.0.1:11434/v1")
    settings_dialog.llm_model.setText("llama3.2")
    settings_dialog.device.setCurrentIndex(settings_dialog.device.findData("cuda"))
    settings_dialog.thumbnail_size.setValue(224)
    with qtbot.waitSignal(settings_dialog.settings_changed, timeout=2_000) as changed:
        qtbot.mouseClick(settings_dialog.save_button, Qt.MouseButton.LeftButton)
    new = changed.args[0]
    assert (new.llm_url, new.llm_model, new.device) == ("http://127.0.0.1:11434/v1", "llama3.2", "cuda")
    stored = json.loads((settings.home / "settings.json").read_text())
    assert stored == {"llm_url": "http://127.0.0.1:11434/v1", "llm_model": "llama3.2", "device": "cuda"}
    reloaded = load_settings(home=settings.home, env=dict(TINY_ENV))
    assert (reloaded.llm_url, reloaded.device) == ("http://127.0.0.1:11434/v1", "cuda")
    assert thumbnail_size(app_settings) == 224
    assert app_settings.value(THUMBNAIL_SIZE_KEY) in (224, "224")
    assert not settings_dialog.isVisible()


def test_bad_values_are_refused_beside_their_field(qtbot, settings_dialog, settings, tmp_path):
    settings_dialog.llm_url.setText("localhost:11434")
    settings_dialog.clip_weights.edit.setText(str(tmp_path / "nowhere.safetensors"))
    settings_dialog.whisper_weights.edit.setText(str(tmp_path))
    settings_dialog.clip_model.setCurrentText("ViT-Q-99")
    with qtbot.assertNotEmitted(settings_dialog.settings_changed):
        qtbot.mouseClick(settings_dialog.save_button, Qt.MouseButton.LeftButton)
    assert settings_dialog.errors["llm_url"].message().startswith("Enter an address that starts with http://")
    assert settings_dialog.errors["llm_url"].isVisible()
    assert settings_dialog.errors["clip_weights"].message() == "There is no file at this path."
    assert (
        settings_dialog.errors["whisper_weights"]
        .message()
        .startswith("This folder holds no faster-whisper model (model.bin and config.json)")
    )
    assert "ViT-Q-99" in settings_dialog.errors["clip_model"].message()
    assert settings_dialog.reencode_note.isVisible()
    assert not settings_dialog.errors["device"].isVisible()
    assert not (settings.home / "settings.json").exists()
    assert settings_dialog.isVisible()

    # Fixing the field clears its message, and then it saves.
    settings_dialog.llm_url.setText("https://llm.home.arpa/v1")
    assert not settings_dialog.errors["llm_url"].isVisible()
    settings_dialog.clip_weights.edit.clear()
    settings_dialog.whisper_weights.edit.clear()
    settings_dialog.clip_model.setCurrentText("test-tiny")
    with qtbot.waitSignal(settings_dialog.settings_changed, timeout=2_000):
        assert settings_dialog.save()
    assert json.loads((settings.home / "settings.json").read_text()) == {"llm_url": "https://llm.home.arpa/v1"}


def test_settings_show_the_library_folders_and_the_theme(qtbot, library, tmp_path, app_settings):
    from desktop_app.controller import AppController
    from tests.helpers import make_text

    make_text(tmp_path / "docs" / "a.txt", "A note about the garden.")
    library.index([tmp_path / "docs"])
    controller = AppController(library=library)
    try:
        dialog = SettingsDialog(library.settings, controller=controller, app_settings=app_settings)
        qtbot.addWidget(dialog)
        assert dialog.folders is not None
        with qtbot.waitSignal(dialog.folders.folders_shown, timeout=5_000) as shown:
            dialog.show()
        assert shown.args == [[str(tmp_path / "docs")]]
        assert "follows your system" in dialog.theme_label.text()
        assert dialog.folders.remove_button.isVisible()
        qtbot.waitUntil(lambda: dialog.clip_model.count() > 1, timeout=10_000)
    finally:
        controller.shutdown()


def test_settings_choose_the_text_model_and_the_relevance_default(qtbot, settings, tmp_path, monkeypatch, app_settings):
    dialog = SettingsDialog(settings, app_settings=app_settings)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.text_model.currentText() == "test-tiny" and not dialog.text_note.isVisible()
    assert dialog.min_relevance.value() == pytest.approx(settings.min_relevance)
    dialog.text_model.setCurrentText(str(tmp_path / "nowhere"))
    assert dialog.text_note.isVisible()  # passages will be embedded again
    assert not dialog.save()
    assert "no folder at this path" in dialog.errors["text_model"].message()
    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    qtbot.mouseClick(dialog.text_folder_button, Qt.MouseButton.LeftButton)
    assert dialog.text_model.currentText() == str(folder)
    dialog.min_relevance.setValue(0.4)
    with qtbot.waitSignal(dialog.settings_changed) as saved:
        assert dialog.save()
    assert saved.args[0].text_model == str(folder) and saved.args[0].min_relevance == pytest.approx(0.4)
    stored = json.loads((settings.home / "settings.json").read_text())
    assert stored["text_model"] == str(folder) and stored["min_relevance"] == pytest.approx(0.4)


def test_a_faster_whisper_folder_is_accepted_as_whisper_weights(qtbot, settings_dialog, tmp_path):
    folder = tmp_path / "faster-whisper-base"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"\0" * 16)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    assert settings_dialog.whisper_weights.browse_folder is not None
    settings_dialog.whisper_weights.edit.setText(str(folder))
    settings_dialog.clip_weights.edit.setText(str(folder))  # a folder is no CLIP weights file
    with qtbot.assertNotEmitted(settings_dialog.settings_changed):
        qtbot.mouseClick(settings_dialog.save_button, Qt.MouseButton.LeftButton)
    assert not settings_dialog.errors["whisper_weights"].isVisible()
    assert settings_dialog.errors["clip_weights"].message() == "This is a folder; choose the weights file inside it."
