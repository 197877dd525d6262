"""A library built with another model: the window offers to re-embed it, or to go back to that model.

The engine's side (``Library.model_changes`` / ``Library.reembed``) is stood in
for on the test's real library, so these tests are about what the window does:
the offer, the progress and Cancel, searching meanwhile, and going back.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import pytest

from desktop_app.indexing import PanelState
from desktop_app.main_window import MainWindow
from engine.errors import ModelMismatchError
from engine.ingest import IndexSummary
from tests.gui import test_main_window as shared
from tests.gui.test_main_window import search

corpus = shared.corpus
indexed = shared.indexed

BUILT_WITH = {"name": "ViT-B-32", "weights": "openai", "dim": 512}


@dataclass
class Change:
    """Stands in for engine.library.ModelChange."""

    space: str
    recorded: dict
    configured: dict


class FakeEngine:
    """``model_changes`` and ``reembed`` for a library whose photos were embedded by ``BUILT_WITH``.

    The configured CLIP model differs until the settings name ``BUILT_WITH`` again.
    ``reembed`` reports one step, then waits for the test to let it go on.
    """

    def __init__(self, library):
        self.library = library
        self.calls: list[dict] = []
        self.release = threading.Event()

    def configured(self) -> dict:
        s = self.library.settings
        return {"name": s.clip_model, "weights": s.clip_pretrained or "seed0", "dim": 32}

    def model_changes(self) -> list[Change]:
        if self.library.settings.clip_model == BUILT_WITH["name"]:
            return []
        return [Change("clip", dict(BUILT_WITH), self.configured())]

    def reembed(self, space=None, *, on_progress=None, should_cancel=None) -> IndexSummary:
        self.calls.append({"space": space, "should_cancel": should_cancel})
        on_progress(1, 4, "/photos/beach.jpg")
        assert self.release.wait(20), "the test never let the re-embed go on"
        return IndexSummary(cancelled=bool(should_cancel())) if should_cancel() else IndexSummary(updated=4)


@pytest.fixture
def engine(indexed, monkeypatch):
    fake = FakeEngine(indexed)
    monkeypatch.setattr(indexed, "model_changes", fake.model_changes, raising=False)
    monkeypatch.setattr(indexed, "reembed", fake.reembed)
    yield fake
    fake.release.set()  # never leave the worker waiting


@pytest.fixture
def window(qtbot, indexed, engine):
    w = MainWindow(library=indexed)
    w.results.set_threshold(None)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.controller.model_changes_found, timeout=10_000) as found:
        w.show()
    assert [c.space for c in found.args[0]] == ["clip"]
    yield w
    engine.release.set()
    w.close()


def test_a_library_built_with_another_model_offers_the_choice(qtbot, window):
    text = window.banner.text()
    assert text.startswith("Your library was built with CLIP ViT-B-32 (openai); the settings now name CLIP test-tiny")
    assert "Re-embed the library with the new model? Search keeps working meanwhile." in text
    assert window.banner.level == "info"
    assert window.banner.action_button.defaultAction() is window.reembed_action
    assert window.banner.second_button.defaultAction() is window.restore_models_action
    assert window.banner.action_button.isVisibleTo(window.banner)
    assert window.banner.second_button.isVisibleTo(window.banner)
    assert window.isModal() is False and window.indexing_dock.isHidden()  # an offer, not a dialog


def test_reembedding_shows_progress_keeps_search_and_can_be_cancelled(qtbot, window, engine, corpus):
    c, panel = window.controller, window.indexing_panel
    with qtbot.waitSignal(c.reembed_progress, timeout=10_000) as progress:
        window.banner.action_button.click()
    assert progress.args[:3] == [1, 4, "/photos/beach.jpg"]
    assert engine.calls[0]["space"] == "clip"  # only the photos' model changed
    assert c.reembedding and window.banner.text() == ""
    assert window.indexing_dock.isVisible()
    assert panel.state is PanelState.RUNNING
    assert panel.title.text().startswith("Re-embedding the photos with CLIP test-tiny")
    assert panel.progress_bar.value() == 1 and panel.progress_bar.maximum() == 4
    assert panel.message_label.full_text() == "Reading beach.jpg in photos"

    # Searching stays enabled meanwhile (the engine searches the old vectors).
    assert window.search_field.isEnabled()
    search(qtbot, window, "boiler")
    assert str(corpus.boiler) in window.results.passage_paths()

    assert engine.calls[0]["should_cancel"]() is False
    panel.cancel_button.click()
    assert engine.calls[0]["should_cancel"]() is True
    assert panel.state is PanelState.STOPPING
    with qtbot.waitSignal(c.reembed_finished, timeout=10_000) as finished:
        engine.release.set()
    assert finished.args[0].cancelled
    assert panel.title.text() == "Re-embedding stopped"
    assert "searches keep using the model the library was built with" in panel.summary_label.text()
    # The models still differ: the offer is made again, after saying what happened.
    qtbot.waitUntil(lambda: window.banner.action_button.isVisibleTo(window.banner), timeout=10_000)
    assert window.banner.text().startswith("Re-embedding stopped. Nothing changed")
    assert "Re-embed the library with the new model?" in window.banner.text()


def test_a_finished_reembed_says_so_and_refreshes_the_counts(qtbot, window, engine, monkeypatch):
    c = window.controller
    with qtbot.waitSignal(c.reembed_progress, timeout=10_000):
        window.reembed_action.trigger()
    # The engine switched to the new model: nothing differs any more.
    monkeypatch.setattr(engine.library, "model_changes", list, raising=False)
    with qtbot.waitSignals([c.reembed_finished, window.library_info_loaded], timeout=10_000):
        engine.release.set()
    assert window.indexing_panel.title.text() == "Re-embedding finished"
    assert window.banner.text() == "The library is re-embedded: searches now use the new model."
    assert not c.reembedding


def test_going_back_restores_the_recorded_model_in_the_settings(qtbot, window, engine, monkeypatch):
    c = window.controller
    monkeypatch.setattr(c, "load_models", lambda: None)  # ViT-B-32's weights are not here; not the point
    with qtbot.waitSignal(c.model_changes_found, timeout=10_000) as found:
        window.banner.second_button.click()
    assert found.args[0] == []
    assert c.settings.clip_model == "ViT-B-32" and c.settings.clip_pretrained == "openai"
    assert c.settings.clip_weights == ""
    assert engine.library.settings.clip_model == "ViT-B-32"  # the library uses it now
    assert json.loads((c.settings.home / "settings.json").read_text())["clip_model"] == "ViT-B-32"  # saved
    assert window.banner.text() == ""
    assert engine.calls == []  # nothing was re-embedded


def test_a_search_refused_for_the_model_shows_the_offer_not_the_error(qtbot, window, engine, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise ModelMismatchError("this library was built with CLIP ViT-B-32; run `shoebox reembed`")

    monkeypatch.setattr(engine.library, "search", refuse)
    window.banner.hide()
    errors: list[str] = []
    window.search_error.connect(errors.append)
    window.search_field.setText("boiler")
    with qtbot.waitSignal(window.controller.search_needs_model_choice, timeout=10_000):
        window.run_search()
    assert errors == []
    assert "Re-embed the library with the new model?" in window.banner.text()
    assert "shoebox reembed" not in window.banner.text()
    assert "Searching waits for your choice" in window.results.empty_label.text()


def test_going_back_says_when_the_environment_names_the_new_model(qtbot, window, monkeypatch):
    monkeypatch.setattr(window.controller, "load_models", lambda: None)
    monkeypatch.setenv("SHOEBOX_CLIP_MODEL", "test-tiny")
    with qtbot.waitSignal(window.controller.model_changes_found, timeout=10_000):
        window.restore_models_action.trigger()
    assert window.controller.settings.clip_model == "ViT-B-32"
    assert "started with the new model set in its environment" in window.banner.text()
    assert "SHOEBOX_" not in window.banner.text()


def test_the_window_reembeds_a_real_library_and_searches_throughout(qtbot, tmp_path, corpus, tiny_whisper, tiny_text):
    """No stand-ins: a library written by test-tiny seed 0, opened with seed 1 configured."""
    from engine.library import Library
    from engine.settings import load_settings
    from tests.conftest import TINY_ENV

    home = tmp_path / "real-lib"
    with Library(load_settings(home=home, env=dict(TINY_ENV)), text_model=tiny_text, whisper=tiny_whisper) as old:
        assert old.index([corpus.root]).added == 5
    settings = load_settings(home=home, env=dict(TINY_ENV, SHOEBOX_CLIP_PRETRAINED="seed1"))
    library = Library(settings, text_model=tiny_text, whisper=tiny_whisper)
    w = MainWindow(library=library)
    w.results.set_threshold(None)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.controller.model_changes_found, timeout=20_000) as found:
        w.show()
    [change] = found.args[0]
    assert (change.space, change.recorded["weights"], change.configured["weights"]) == ("clip", "seed0", "seed1")
    assert "Re-embed the library with the new model?" in w.banner.text()

    c = w.controller
    with qtbot.waitSignal(c.reembed_finished, timeout=60_000) as finished:
        w.banner.action_button.click()
        search(qtbot, w, "boiler")  # meanwhile: searches go on (with the old model's vectors)
        assert str(corpus.boiler) in w.results.passage_paths()
    assert not finished.args[0].cancelled and finished.args[0].reembedded == 3
    qtbot.waitUntil(lambda: c.model_changes() == [] and not c.reembedding, timeout=20_000)
    recorded = library.store.model_identity("clip")
    assert recorded is not None and recorded["weights"] == "seed1"
    assert w.banner.text() == "The library is re-embedded: searches now use the new model."
    search(qtbot, w, "boiler")
    assert str(corpus.boiler) in w.results.passage_paths()
    w.close()
    library.close()
