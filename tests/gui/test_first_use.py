"""A first use from start to finish, as a person who has never seen Shoebox goes through it.

Nothing is typed on a command line and nothing is configured beforehand: the window starts on a
new library without its models, the set-up dialog imports them, the folder is added from the
File menu, the library is browsed, searched, and a file that could not be read is found in
View ▸ Problems and retried once it is put right.  Only the system's file pickers are answered
by the test (they are the desktop's own windows).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QFileDialog

from desktop_app.main_window import MainWindow
from engine.models.tiny import write_tiny_text_model
from engine.settings import load_settings
from tests.conftest import TINY_ENV

# A text model Shoebox knows by name and downloads, which this computer does not have.
KNOWN_TEXT = "sentence-transformers/all-MiniLM-L6-v2"


def _photo(path: Path, colour: str, day: int) -> None:
    image = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(image).ellipse((80, 40, 240, 200), fill=colour)
    exif = Image.Exif()
    exif[0x0132] = f"2024:0{day % 9 + 1}:{day % 27 + 1:02d} 10:00:00"  # DateTime: spread over months
    image.save(path, exif=exif)


def _files(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    for n, colour in enumerate(["red", "blue", "green", "orange", "purple", "yellow"]):
        _photo(folder / f"IMG_{n:03}.jpg", colour, n * 11)
    note = folder / "boiler-service.txt"
    note.write_text("The boiler was serviced on 4 March; the engineer replaced the pressure valve.\n", "utf-8")
    broken = folder / "IMG_999.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a picture")
    return {"note": note, "broken": broken}


def test_a_new_user_sets_up_adds_browses_searches_and_retries_without_a_command(
    qtbot, tmp_path, offline_caches, monkeypatch
):
    settings = load_settings(home=tmp_path / "library", env={**TINY_ENV, "SHOEBOX_TEXT_MODEL": KNOWN_TEXT})
    window = MainWindow(
        settings=settings, app_settings=QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    )
    qtbot.addWidget(window)
    files = _files(tmp_path / "Pictures")
    try:
        # 1. It starts without its text model: a banner says so and offers to set it up.
        with qtbot.waitSignal(window.controller.models_missing, timeout=60_000):
            window.show()
        assert window.models_banner.isVisible() and window.models_dialog is None

        # 2. The set-up dialog imports the text model from a folder copied from another computer,
        # named from the list.  (The photo model here is test-tiny, which Shoebox makes itself: a
        # real CLIP file is hundreds of megabytes; importing a CLIP file is tested in test_model_setup.)
        qtbot.mouseClick(window.models_banner.action_button, Qt.MouseButton.LeftButton)
        dialog = window.models_dialog
        assert dialog is not None
        qtbot.waitUntil(
            lambda: dialog.name_box.count() > 0 and dialog.status_text("whisper") != "Looking…", timeout=60_000
        )
        assert dialog.status_text("text").endswith("not on this computer")
        text_folder = tmp_path / "copied-model"
        write_tiny_text_model(text_folder, 0)
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(text_folder)))
        dialog.choose("text", KNOWN_TEXT)
        with qtbot.waitSignal(window.controller.models_ready, timeout=120_000):
            qtbot.mouseClick(dialog.import_folder_button, Qt.MouseButton.LeftButton)
        assert not window.models_banner.isVisible()
        qtbot.waitUntil(lambda: dialog.status_text("text").endswith("ready"), timeout=60_000)
        dialog.close()

        # 3. File ▸ Add folder… indexes the folder the person picks.
        monkeypatch.setattr(
            QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(tmp_path / "Pictures"))
        )
        with qtbot.waitSignal(window.controller.index_finished, timeout=120_000):
            window.add_folder_action.trigger()

        # 4. With nothing typed, the library is shown by month.
        qtbot.waitUntil(
            lambda: window.results.browsing and len(window.results.photo_model.results()) == 6, timeout=30_000
        )
        # The month titles are a read of their own, which may arrive after the first page.
        qtbot.waitUntil(lambda: bool(window.results.months()), timeout=30_000)

        # 5. A search finds the note by its words.
        with qtbot.waitSignal(window.results_shown, timeout=30_000):
            qtbot.keyClicks(window.search_field, "boiler valve")
            qtbot.keyClick(window.search_field, Qt.Key.Key_Return)
        assert not window.results.browsing
        assert window.results.all_results()[0].path == str(files["note"])

        # 6. The file that could not be read is listed with its reason; once replaced, Retry reads it.
        with qtbot.waitSignal(window.problems_window.problems_shown, timeout=10_000) as shown:
            window.problems_action.trigger()
        assert shown.args[0] == 1
        problems = window.problems_window
        problems.select([str(files["broken"])])
        assert not problems.retry_button.isEnabled()  # unchanged, it would fail the same way
        _photo(files["broken"], "black", 3)
        with qtbot.waitSignal(problems.problems_shown, timeout=10_000):
            problems.refresh()
        problems.select([str(files["broken"])])
        assert problems.retry_button.isEnabled()
        with qtbot.waitSignal(problems.problems_shown, timeout=120_000) as after:
            qtbot.mouseClick(problems.retry_button, Qt.MouseButton.LeftButton)
        assert after.args[0] == 0
        problems.close()
    finally:
        window.close()
