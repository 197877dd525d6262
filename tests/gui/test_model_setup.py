"""Setting up the models in the window: the banner, the set-up dialog, imports, downloads, and the words used.

Downloads go through a fake :class:`engine.models.management.Downloader` (the engine's
download hook): nothing here reaches the network.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel

from desktop_app.controller import describe_error
from desktop_app.dialogs import KIND_LABELS, ModelSetupDialog
from desktop_app.main_window import MainWindow
from engine.errors import Cancelled, ModelUnavailableError
from engine.models import management
from engine.models.tiny import write_tiny_text_model
from engine.models.weights import clip_cache_dir, locate_clip_weights, text_cache_dir
from engine.settings import load_settings
from tests.conftest import TINY_ENV

# A text model Shoebox knows by name, which no test has on its computer.
KNOWN_TEXT = "sentence-transformers/all-MiniLM-L6-v2"


def _no_command_line(text: str) -> bool:
    return not any(bad in text for bad in ("--", "SHOEBOX_", "`", "shoebox models"))


@pytest.fixture
def settings(tmp_path, offline_caches):
    return load_settings(home=tmp_path / "library", env=dict(TINY_ENV))


def open_dialog(qtbot, settings, **kwargs) -> ModelSetupDialog:
    dialog = ModelSetupDialog(settings, **kwargs)
    qtbot.addWidget(dialog)
    with (
        qtbot.waitSignal(dialog.choices_loaded, timeout=60_000),
        qtbot.waitSignal(dialog.models_listed, timeout=60_000),
    ):
        dialog.show()
    return dialog


@pytest.fixture
def dialog(qtbot, settings):
    return open_dialog(qtbot, settings)


class FakeDownloader(management.Downloader):
    """Serves model files from memory, step by step, as the engine's download hook allows.

    ``steps`` blocks of ``block`` bytes each are reported; with ``endless`` it goes on until
    the progress callback stops it.  ``gate``, when given, must be set before each block after
    the first, so a test can look at the dialog mid-download.
    """

    def __init__(self, *, steps: int = 4, block: int = 250_000_000, endless: bool = False):
        self.steps, self.block, self.endless = steps, block, endless
        self.calls: list[str] = []
        self.started = threading.Event()

    def _blocks(self, report) -> None:
        total = self.steps * self.block
        step = 0
        while self.endless or step < self.steps:
            step += 1
            report(min(step * self.block, total - 1) if self.endless else step * self.block, total)
            self.started.set()
            if self.endless:
                threading.Event().wait(0.005)  # a network's pace; the test waits on signals, not on this

    def fetch_repo(self, repo, folder, patterns, report):
        self.calls.append(f"repo {repo}")
        self._blocks(report)
        write_tiny_text_model(folder, 0)

    def fetch_clip(self, cfg, folder, report):
        self.calls.append("clip")
        self._blocks(report)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "open_clip_model.safetensors"
        path.write_bytes(b"weights")
        return path

    def fetch_url(self, url, out, report):
        self.calls.append(f"url {url}")
        self._blocks(report)
        out.write(b"not what was published")


def _settled(dialog: ModelSetupDialog) -> bool:
    """Whether the dialog has its lists of names and knows which models are here."""
    return dialog.name_box.count() > 0 and dialog.status_text("whisper") != "Looking…"


# -- the banner in the window --------------------------------------------------------------------


@pytest.fixture
def window(qtbot, library):
    w = MainWindow(library=library)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.library_ready, timeout=10_000):
        w.show()
    yield w
    w.close()


@pytest.mark.qt_log_ignore("This plugin does not support raise")
def test_typing_goes_on_into_the_search_field_while_the_models_banner_appears(qtbot, window):
    window.activateWindow()
    window.search_field.setFocus()
    qtbot.waitUntil(window.search_field.hasFocus, timeout=5_000)

    def type_keys(keys: list) -> None:
        # Each key goes where the keyboard is now, as a person's typing does.
        for key in keys:
            target = QApplication.focusWidget()
            assert target is not None
            if isinstance(key, str):
                qtbot.keyClicks(target, key)
            else:
                qtbot.keyClick(target, key)

    type_keys(["red"])
    window.controller.models_missing.emit("The CLIP model is not on this computer.")
    assert window.models_banner.isVisible()
    # The keys a dialog that opened by itself would have taken: a space (a tick box), more letters, Enter.
    type_keys([Qt.Key.Key_Space, "circle", Qt.Key.Key_Space, "at the beach"])
    assert window.search_field.text() == "red circle at the beach"
    with qtbot.waitSignal(window.results_shown, timeout=10_000):
        type_keys([Qt.Key.Key_Return])  # searches; presses no button of the banner
    assert window.search_field.hasFocus()
    assert QApplication.activeModalWidget() is None
    assert window.models_dialog is None  # opens only when asked
    assert "found by meaning once the models are set up" in window.models_banner.text()
    assert window.models_banner.action_button.defaultAction() is window.set_up_models_action
    assert window.set_up_models_action in window.file_menu.actions()

    qtbot.mouseClick(window.models_banner.action_button, Qt.MouseButton.LeftButton)
    assert isinstance(window.models_dialog, ModelSetupDialog) and window.models_dialog.isVisible()
    assert not window.models_dialog.isModal()
    window.set_up_models_action.trigger()  # asked again: the same dialog, not a second one
    assert len([w for w in QApplication.topLevelWidgets() if isinstance(w, ModelSetupDialog)]) == 1
    qtbot.waitUntil(lambda: _settled(window.models_dialog), timeout=60_000)
    window.models_dialog.close()


def test_the_not_on_this_computer_banner_goes_once_the_model_is_set_up(
    qtbot, tmp_path, offline_caches, tiny_clip, tiny_whisper
):
    """A real library whose text model is missing: the banner, then an import in the dialog, then no banner."""
    from engine.library import Library

    settings = load_settings(home=tmp_path / "library", env={**TINY_ENV, "SHOEBOX_TEXT_MODEL": KNOWN_TEXT})
    library = Library(settings, clip=tiny_clip, whisper=tiny_whisper)
    w = MainWindow(library=library)
    qtbot.addWidget(w)
    try:
        with qtbot.waitSignal(w.controller.models_missing, timeout=60_000) as missing:
            w.show()
        assert KNOWN_TEXT in missing.args[0] and _no_command_line(missing.args[0])
        assert w.models_banner.isVisible()
        # A search meanwhile says nothing about the models in its own banner, in command-line words or others.
        with qtbot.waitSignal(w.results_shown, timeout=10_000):
            w.search_field.setText("boiler")
            w.run_search()
        assert _no_command_line(w.banner.text()) and "not on this computer" not in w.banner.text()

        folder = tmp_path / "copied-model"
        write_tiny_text_model(folder, 0)
        w.show_models_dialog()
        dialog = w.models_dialog
        qtbot.waitUntil(lambda: _settled(dialog), timeout=60_000)
        assert "not on this computer" in dialog.status_text("text")
        dialog.choose("text", KNOWN_TEXT)
        with qtbot.waitSignal(w.controller.models_ready, timeout=120_000):
            dialog.import_path(str(folder))
        assert not w.models_banner.isVisible()
        assert "not on this computer" not in w.banner.text()
        qtbot.waitUntil(lambda: dialog.status_text("text").endswith("ready"), timeout=60_000)
        dialog.close()
    finally:
        w.close()
        library.close()


# -- the dialog: lists, import, download ---------------------------------------------------------


def test_the_dialog_offers_each_kind_with_the_names_the_engine_knows(qtbot, dialog, settings):
    assert [dialog.kind_box.itemText(i) for i in range(dialog.kind_box.count())] == list(KIND_LABELS.values())
    for kind in ("clip", "text", "whisper"):
        dialog.choose(kind, management.known_model_names(settings, kind)[0])
        names = [dialog.name_box.itemText(i) for i in range(dialog.name_box.count())]
        assert names == management.known_model_names(settings, kind)
    assert not dialog.progress_box.isVisible()  # nothing is fetched until the person asks
    assert dialog.status_text("clip") == "test-tiny: not on this computer"  # a fresh model cache


def test_importing_a_file_as_the_kind_and_model_chosen(qtbot, dialog, settings, tiny_settings, monkeypatch):
    tiny_weights = locate_clip_weights(tiny_settings, "test-tiny", "seed0").path
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(tiny_weights), "")))
    dialog.choose("clip", "test-tiny")
    assert dialog.import_file_button.isEnabled() and not dialog.import_folder_button.isEnabled()
    with qtbot.waitSignal(dialog.models_changed, timeout=60_000) as changed:
        qtbot.mouseClick(dialog.import_file_button, Qt.MouseButton.LeftButton)
        assert dialog.is_busy() and dialog.progress_box.isVisible()
    new = changed.args[0]
    assert new.clip_model == "test-tiny" and new.clip_pretrained.startswith("file:")
    cached = clip_cache_dir(settings, "test-tiny", new.clip_pretrained) / "open_clip_model.safetensors"
    assert cached.read_bytes() == tiny_weights.read_bytes()
    assert (
        dialog.message.message()
        == "Imported CLIP test-tiny from open_clip_model.safetensors. Shoebox is loading it now."
    )
    assert not dialog.is_busy()


def test_importing_a_folder_as_the_text_model_chosen(qtbot, dialog, settings, tmp_path, monkeypatch):
    folder = tmp_path / "copied"
    write_tiny_text_model(folder, 3)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    dialog.choose("text", KNOWN_TEXT)
    assert dialog.import_folder_button.isEnabled() and not dialog.import_file_button.isEnabled()
    with qtbot.waitSignal(dialog.models_changed, timeout=60_000) as changed:
        qtbot.mouseClick(dialog.import_folder_button, Qt.MouseButton.LeftButton)
    assert changed.args[0].text_model == KNOWN_TEXT  # named as chosen, not after the folder
    assert (text_cache_dir(settings, KNOWN_TEXT) / "model.safetensors").is_file()
    qtbot.waitUntil(lambda: dialog.status_text("text") == f"{KNOWN_TEXT}: ready", timeout=60_000)


def _write_unknown_clip(path: Path) -> Path:
    """An open_clip ViT state dict whose shapes fit no model open_clip knows."""
    from safetensors.numpy import save_file

    zeros = lambda *shape: np.zeros(shape, dtype=np.float32)  # noqa: E731
    save_file(
        {
            "visual.conv1.weight": zeros(40, 3, 7, 7),
            "visual.positional_embedding": zeros(10, 40),
            "visual.proj": zeros(40, 24),
            "visual.transformer.resblocks.0.ln_1.weight": zeros(40),
            "token_embedding.weight": zeros(100, 16),
            "positional_embedding": zeros(9, 16),
            "transformer.resblocks.0.ln_1.weight": zeros(16),
            "logit_scale": zeros(1),
        },
        str(path),
    )
    return path


@pytest.mark.parametrize(
    ("kind", "name", "make", "reason"),
    [
        ("whisper", "base", "tiny-clip", "holds CLIP (photos) weights, not Whisper (speech) weights"),
        (
            "clip",
            "ViT-B-32",
            "tiny-clip",
            "does not hold weights for the CLIP model ViT-B-32: its layout is that of test-tiny",
        ),
        ("clip", "ViT-B-32", "unknown", "fits no CLIP model Shoebox knows (an unknown architecture)"),
        ("clip", "test-tiny", "damaged", "is damaged or is not a CLIP weights checkpoint"),
        ("clip", "test-tiny", "junk", "is not a weights file, or it is damaged"),
    ],
)
def test_a_file_that_does_not_fit_is_refused_with_the_reason(
    qtbot, dialog, settings, tiny_settings, tmp_path, kind, name, make, reason
):
    tiny = locate_clip_weights(tiny_settings, "test-tiny", "seed0").path
    if make == "tiny-clip":
        path = tiny
    elif make == "unknown":
        path = _write_unknown_clip(tmp_path / "mystery.safetensors")
    elif make == "damaged":
        path = tmp_path / "cut.safetensors"
        path.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    else:
        path = tmp_path / "holiday.bin"
        path.write_bytes(b"not a model at all" * 10)
    dialog.choose(kind, name)
    with qtbot.assertNotEmitted(dialog.models_changed), qtbot.waitSignal(dialog.message_shown, timeout=60_000) as shown:
        dialog.import_path(str(path))
    text, error = shown.args
    assert error and text.startswith(f"{path.name} was not imported: ")
    assert reason in text
    assert _no_command_line(text)
    assert not (settings.models_dir / "clip" / name).exists() or not any(
        (settings.models_dir / "clip" / name).iterdir()
    )


@pytest.mark.parametrize(("kind", "name"), [("clip", "ViT-B-32"), ("text", KNOWN_TEXT), ("whisper", "base")])
def test_a_download_shows_its_progress_and_cancel_keeps_nothing(qtbot, settings, kind, name):
    fake = FakeDownloader(endless=True)
    dialog = open_dialog(qtbot, settings, downloader=fake)
    dialog.choose(kind, name)
    assert dialog.download_button.isEnabled()
    seen: list[str] = []
    dialog.progress_bar.valueChanged.connect(lambda _v: seen.append(dialog.progress_label.text()))
    with qtbot.waitSignal(dialog.message_shown, timeout=60_000) as shown:
        qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
        assert dialog.cancel_button.isVisible() and not dialog.download_button.isEnabled()
        qtbot.waitUntil(lambda: any(" MB of 1,000 MB" in text for text in seen), timeout=30_000)
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert list(shown.args) == ["The download was stopped. Nothing of it was kept.", False]
    assert fake.calls  # the download went through the hook
    leftovers = [p for p in settings.models_dir.rglob("*") if p.is_file() and p.name != "hashes.json"]
    assert leftovers == []
    assert not dialog.progress_box.isVisible() and dialog.download_button.isEnabled()


def test_a_finished_download_names_the_model_in_the_settings(qtbot, settings):
    fake = FakeDownloader(steps=3, block=1_000_000_000)  # more bytes than a 32-bit int holds
    dialog = open_dialog(qtbot, settings, downloader=fake)
    seen: list[str] = []
    dialog.progress_bar.valueChanged.connect(lambda _v: seen.append(dialog.progress_label.text()))
    dialog.choose("text", KNOWN_TEXT)
    with qtbot.waitSignal(dialog.models_changed, timeout=60_000) as changed:
        qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    assert changed.args[0].text_model == KNOWN_TEXT
    assert fake.calls == [f"repo {KNOWN_TEXT}"]
    assert any("2,000 MB of 3,000 MB" in text for text in seen)
    assert (text_cache_dir(settings, KNOWN_TEXT) / "model.safetensors").is_file()
    assert dialog.message.message().startswith("Text model sentence-transformers/all-MiniLM-L6-v2 is downloaded.")


def test_a_damaged_download_says_so_in_plain_words(settings):
    """OpenAI's Whisper files are checked against their published checksum; the fake's bytes are not those."""
    with pytest.raises(ModelUnavailableError, match="checksum") as raised:
        management.download_model(
            settings, "whisper", "base", force_allowed=True, whisper_format="pt", downloader=FakeDownloader(steps=2)
        )
    text = describe_error(raised.value)
    assert "do not match their published checksum" in text and text.endswith("Download it again.")
    assert _no_command_line(text)
    assert "shoebox models download" in str(raised.value)  # the command line keeps its advice
    assert not list((settings.models_dir / "whisper").iterdir())


def test_a_model_that_cannot_be_downloaded_says_so_and_offers_import(qtbot, dialog):
    rows = dialog._choices["clip"]
    name = next(n for n, download, _why in rows if download is None)
    dialog.choose("clip", name)
    assert not dialog.download_button.isEnabled()
    assert dialog.import_file_button.isEnabled()
    note = dialog.download_note.text()
    assert dialog.download_note.isVisible() and "cannot be downloaded" in note and "Import" in note


# -- no command-line words in the window -----------------------------------------------------------


def _errors_the_window_can_show(settings, tiny_settings, tmp_path) -> list[BaseException]:
    """Engine errors about missing or unusable models, raised the way the window meets them."""
    from engine.models import clip as clip_module
    from engine.models import weights, whisper

    off = settings.with_overrides(allow_download=False)
    raised: list[BaseException] = []

    def catch(fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            raised.append(exc)
        else:
            raise AssertionError(f"{fn.__name__}{args} raised nothing")

    catch(weights.locate_clip_weights, off, "ViT-B-32", "laion2b_s34b_b79k")
    catch(weights.locate_clip_weights, off, "ViT-B-32", "file:0123456789ab")
    catch(weights.locate_whisper_weights, off, "base")
    catch(weights.locate_whisper_weights, off, "base", ("ct2", "pt"))
    catch(weights.locate_text_model, off, KNOWN_TEXT)
    catch(weights.clip_pretrained_cfg, "ViT-B-32", "no-such-tag")
    catch(clip_module.check_clip_name, "ViT-B-99")
    catch(whisper.check_whisper_name, "enormous", off)
    catch(management.download_model, off, "clip")
    tiny = locate_clip_weights(tiny_settings, "test-tiny", "seed0").path
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"nothing" * 20)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny.read_bytes()[:1000])
    no_name = tmp_path / "my model (copy)"  # not a name a model can have
    write_tiny_text_model(no_name, 0)
    catch(management.import_model, off, tiny, "whisper", "base")
    catch(management.import_model, off, tiny, "clip", "ViT-B-32")
    catch(management.import_model, off, _write_unknown_clip(tmp_path / "mystery.safetensors"), "clip")
    catch(management.import_model, off, junk, "clip", "test-tiny")
    catch(management.import_model, off, cut, "clip", "test-tiny")
    catch(management.import_model, off, junk, "text", KNOWN_TEXT)
    catch(management.import_model, off, no_name, "clip", "test-tiny")
    catch(management.import_model, off, no_name, "text")
    catch(management.import_model, off, no_name, "whisper")
    catch(management.import_model, off, tmp_path / "gone.pt", "whisper", "base")

    class Offline(management.Downloader):
        def fetch_repo(self, repo, folder, patterns, report):
            raise OSError("Network is unreachable")

        def fetch_clip(self, cfg, folder, report):
            raise OSError("Network is unreachable")

        def fetch_url(self, url, out, report):
            raise OSError("Network is unreachable")

    for kind, name in (("clip", "ViT-B-32:openai"), ("text", KNOWN_TEXT), ("whisper", "base")):
        catch(management.download_model, off, kind, name, force_allowed=True, downloader=Offline())
    for fmt in ("pt", "ct2"):
        catch(
            management.download_model,
            off,
            "whisper",
            "base",
            force_allowed=True,
            whisper_format=fmt,
            downloader=Offline(),
        )
    return raised


def test_no_message_about_models_names_a_command_or_an_environment_variable(
    qtbot, settings, tiny_settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    errors = _errors_the_window_can_show(settings, tiny_settings, tmp_path)
    assert len(errors) >= 20
    shown = [describe_error(exc) for exc in errors]
    for exc, text in zip(errors, shown, strict=True):
        assert text.strip(), f"nothing left of {exc}"
        assert _no_command_line(text), f"{type(exc).__name__}: {text}"
    # The command line keeps its own advice.
    assert any("shoebox models download" in str(exc) for exc in errors)
    assert any("SHOEBOX_" in str(exc) for exc in errors)

    # What the window itself writes: the banner, and every label and tip of the set-up dialog.
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    for text in shown:
        w._on_models_missing(text)
        assert _no_command_line(w.models_banner.text())
    dialog = ModelSetupDialog(settings, reason=shown[0])
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.choices_loaded, timeout=60_000):
        dialog.show()
    for kind in ("clip", "text", "whisper"):
        dialog.kind_box.setCurrentIndex(dialog.kind_box.findData(kind))
        for index in range(dialog.name_box.count()):
            dialog.name_box.setCurrentIndex(index)
            assert _no_command_line(dialog.download_note.text())
    words = [label.text() for label in dialog.findChildren(QLabel)]
    words += [widget.toolTip() for widget in dialog.findChildren(QLabel)]
    words += [dialog.windowTitle()]
    for text in words:
        assert _no_command_line(text), text
    dialog.close()
    w.close()


def test_window_text_keeps_the_facts_and_drops_the_commands():
    from desktop_app.controller import window_text

    assert window_text("Whisper base is not on this computer. Run `shoebox models download whisper`.") == (
        "Whisper base is not on this computer."
    )
    assert window_text("The file is damaged (bad header). Check it (name it with --name), or import a copy.") == (
        "The file is damaged (bad header)."
    )
    # A variable for a setting the window has is named as the window names it.
    assert window_text("cannot connect: start the server or correct SHOEBOX_LLM_URL") == (
        "Cannot connect: start the server or correct the server address in File ▸ Settings."
    )
    # Advice with nothing of the window in it goes; when nothing is left, the fallback says what is wrong.
    assert window_text("Set SHOEBOX_CLIP_WEIGHTS=/path/to/the/file.").endswith("Set up models…")
    assert window_text("Run `shoebox index`.", fallback="") == ""
    assert window_text("ViT-B-32 is here; e5 too.") == "ViT-B-32 is here; e5 too."


def test_stopping_inside_a_download_removes_the_partial_files(settings):
    calls = []

    def report(done, total, message):
        calls.append(done)
        if done >= 500_000_000:
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        management.download_model(
            settings,
            "text",
            KNOWN_TEXT,
            force_allowed=True,
            on_progress=report,
            downloader=FakeDownloader(endless=True),
        )
    assert calls and not text_cache_dir(settings, KNOWN_TEXT).exists()
    assert not list((settings.models_dir / "text").iterdir())


def test_the_hub_download_reports_bytes_and_stops_when_told(tmp_path, monkeypatch):
    """The publishers' downloader counts huggingface_hub's bytes bar, and a raising report stops it."""
    import huggingface_hub

    def snapshot_download(repo, *, local_dir, cache_dir, allow_patterns, tqdm_class):
        with tqdm_class(total=0, unit="it") as files:  # the files counted: not bytes
            files.update(1)
        transfer = tqdm_class(total=0, initial=0, unit="B", desc="Downloading bytes")
        transfer.total = 3_000
        for _ in range(3):
            transfer.update(1_000)
        transfer.close()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    seen: list[tuple[int, int]] = []
    management.PUBLISHERS.fetch_repo("org/model", tmp_path / "model", ["*.json"], lambda d, t: seen.append((d, t)))
    assert seen == [(0, 0), (1_000, 3_000), (2_000, 3_000), (3_000, 3_000)]

    def stop(done: int, total: int) -> None:
        if done >= 2_000:
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        management.PUBLISHERS.fetch_repo("org/model", tmp_path / "model", ["*.json"], stop)
