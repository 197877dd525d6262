"""The first-run dialog (download or import the models) and the settings dialog."""

from __future__ import annotations

import json
import urllib.error

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QFileDialog

from desktop_app.dialogs import THUMBNAIL_SIZE_KEY, FirstRunDialog, SettingsDialog, thumbnail_size
from engine.errors import ModelUnavailableError
from engine.models import management
from engine.models.weights import clip_cache_dir, locate_clip_weights
from engine.settings import load_settings
from tests.conftest import TINY_ENV

MISSING = (
    "CLIP weights for ViT-B-32 (laion2b_s34b_b79k) are not in the model cache. Run `shoebox models download clip`."
)


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path / "library", env=dict(TINY_ENV))


@pytest.fixture
def first_run(qtbot, settings):
    dialog = FirstRunDialog(settings, reason=MISSING)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.models_listed, timeout=60_000):
        dialog.show()
    return dialog


def test_first_run_explains_the_choice(first_run):
    text = first_run.explanation.text()
    assert "found by their names, dates and words straight away" in text
    assert "download the models now" in text
    assert "choose them" in text
    assert first_run.reason_label.text() == f"Details: {MISSING}"
    assert first_run.download_button.isEnabled() and first_run.choose_button.isEnabled()
    assert not first_run.progress_bar.isVisible()  # nothing is fetched until the person asks
    assert "test-tiny" in first_run.clip_box.text()


def test_choosing_a_weights_file_imports_it(qtbot, first_run, settings, tiny_settings, monkeypatch):
    # Where the test-tiny CLIP weights are generated (the session's model cache).
    tiny_weights = locate_clip_weights(tiny_settings, "test-tiny", "seed0").path
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(lambda *a, **k: ([str(tiny_weights)], "")))
    with qtbot.waitSignal(first_run.models_changed, timeout=60_000) as changed:
        qtbot.mouseClick(first_run.choose_button, Qt.MouseButton.LeftButton)
        assert first_run.is_busy()
        assert first_run.progress_bar.isVisible()
    new = changed.args[0]
    assert new.clip_model == "test-tiny"
    assert new.clip_pretrained.startswith("file:")
    cached = clip_cache_dir(settings, "test-tiny", new.clip_pretrained) / "open_clip_model.safetensors"
    assert cached.read_bytes() == tiny_weights.read_bytes()
    stored = json.loads((settings.home / "settings.json").read_text())
    assert stored["clip_pretrained"] == new.clip_pretrained
    assert load_settings(home=settings.home, env=dict(TINY_ENV)).clip_pretrained == new.clip_pretrained
    assert first_run.message.message() == "Imported CLIP weights from open_clip_model.safetensors."
    assert first_run.close_button.text() == "Done"
    assert not first_run.is_busy()


def test_choosing_a_file_that_is_not_weights_says_so(qtbot, first_run, tmp_path, monkeypatch):
    junk = tmp_path / "holiday.bin"
    junk.write_bytes(b"not a model at all" * 10)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(lambda *a, **k: ([str(junk)], "")))
    with qtbot.assertNotEmitted(first_run.models_changed):
        qtbot.mouseClick(first_run.choose_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not first_run.is_busy(), timeout=30_000)
    assert first_run.message.message().startswith("holiday.bin: ")
    assert "is not a weights file" in first_run.message.message()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ModelUnavailableError(
                "Could not download CLIP weights for ViT-B-32 (laion2b_s34b_b79k): "
                "[Errno -3] Temporary failure in name resolution. Check the network connection, or "
                "copy the weights file from another computer and run `shoebox models import FILE`."
            ),
            "Could not download CLIP weights for ViT-B-32",
        ),
        (urllib.error.URLError("[Errno 101] Network is unreachable"), "The download failed: "),
    ],
)
def test_a_failing_download_shows_the_message(qtbot, first_run, monkeypatch, error, expected):
    calls = []

    def fake_download(settings, kind, name=None, *, force_allowed=False, on_progress=None):
        calls.append((kind, force_allowed))
        on_progress(3_000_000, 600_000_000, f"downloading {kind}")
        raise error

    monkeypatch.setattr(management, "download_model", fake_download)
    first_run.clip_box.setChecked(True)
    first_run.whisper_box.setChecked(False)
    with qtbot.waitSignal(first_run.download_failed, timeout=10_000) as failed:
        qtbot.mouseClick(first_run.download_button, Qt.MouseButton.LeftButton)
    assert calls == [("clip", True)]
    assert failed.args[0].startswith(expected)
    assert first_run.message.message() == failed.args[0]
    assert "Traceback" not in failed.args[0]
    assert not first_run.progress_bar.isVisible()
    assert first_run.download_button.isEnabled() and first_run.download_button.text() == "Try again"


def test_a_download_reports_progress_and_can_be_stopped(qtbot, first_run, monkeypatch, tmp_path):
    seen: list[str] = []
    first_run.progress_bar.valueChanged.connect(lambda _v: seen.append(first_run.progress_label.text()))

    def fake_download(settings, kind, name=None, *, force_allowed=False, on_progress=None):
        for done in range(0, 3_000_000_001, 1_000_000_000):  # larger than a 32-bit int
            on_progress(done, 3_000_000_000, "downloading Whisper large-v3")
        return tmp_path / f"{kind}.pt"

    monkeypatch.setattr(management, "download_model", fake_download)
    first_run.clip_box.setChecked(False)
    first_run.whisper_box.setChecked(True)
    with qtbot.waitSignal(first_run.models_changed, timeout=10_000):
        qtbot.mouseClick(first_run.download_button, Qt.MouseButton.LeftButton)
    assert "Downloading Whisper large-v3: 2,000 MB of 3,000 MB" in seen
    assert first_run.progress_bar.value() == 1000
    assert "The models are here" in first_run.message.message()

    def endless(settings, kind, name=None, *, force_allowed=False, on_progress=None):
        done = 0
        while True:  # stops only when the progress callback raises
            done += 1
            on_progress(done, 10**9, "downloading CLIP")

    monkeypatch.setattr(management, "download_model", endless)
    first_run.clip_box.setChecked(True)
    with qtbot.waitSignal(first_run.download_failed, timeout=10_000) as failed:
        qtbot.mouseClick(first_run.download_button, Qt.MouseButton.LeftButton)
        assert first_run.close_button.text() == "Stop"
        qtbot.mouseClick(first_run.close_button, Qt.MouseButton.LeftButton)
    assert failed.args[0].startswith("The download was stopped")
    assert first_run.isVisible()  # stopping does not close the dialog


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


def test_first_run_offers_the_text_model_too(first_run):
    assert "Text model test-tiny" in first_run.text_box.text()
    assert "documents and recordings" in first_run.text_box.text()
    assert set(first_run.boxes) == {"clip", "text", "whisper"}
    assert first_run.choose_folder_button.isEnabled()


def test_choosing_a_text_model_folder_imports_it(qtbot, first_run, settings, tmp_path, monkeypatch):
    from engine.models.tiny import write_tiny_text_model
    from engine.models.weights import text_cache_dir

    folder = tmp_path / "my-notes-model"
    write_tiny_text_model(folder, 3)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    with qtbot.waitSignal(first_run.models_changed, timeout=60_000) as changed:
        qtbot.mouseClick(first_run.choose_folder_button, Qt.MouseButton.LeftButton)
    new = changed.args[0]
    assert new.text_model == "my-notes-model"
    assert (text_cache_dir(settings, "my-notes-model") / "model.safetensors").is_file()
    assert json.loads((settings.home / "settings.json").read_text())["text_model"] == "my-notes-model"
    assert first_run.message.message() == "Imported the Text model from my-notes-model."


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
