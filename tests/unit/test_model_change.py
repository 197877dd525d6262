"""A library has one model per space: another is refused, and re-embedding switches at once.

The library here is written by test-tiny CLIP with seed 0; "another model" is
test-tiny with seed 1 (SHOEBOX_CLIP_PRETRAINED=seed1): the same architecture
and width, different weights, so only the recorded identity tells them apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ModelMismatchError
from engine.library import Library, ModelChange
from engine.query import Query
from engine.settings import load_settings
from tests.conftest import TINY_ENV
from tests.helpers import make_photo, make_text

PHOTOS = 6


@pytest.fixture
def built(tmp_path, tiny_clip, tiny_whisper, tiny_text) -> tuple[Path, Path]:
    """A library (home, folder) with photos and a note, written by test-tiny seed 0."""
    root = tmp_path / "files"
    for n in range(PHOTOS):
        make_photo(root / f"photo-{n}.png", seed=n)
    make_text(root / "boiler.txt", "The boiler service is due in October.")
    home = tmp_path / "lib"
    settings = load_settings(home=home, env=dict(TINY_ENV))
    with Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text, graph_min_items=1) as lib:
        lib.index([root])
    return home, root


def _open(home: Path, seed: int, tiny_text, **kwargs) -> Library:
    env = dict(TINY_ENV, SHOEBOX_CLIP_PRETRAINED=f"seed{seed}")
    return Library(load_settings(home=home, env=env), text_model=tiny_text, graph_min_items=1, **kwargs)


def _like(lib: Library, root: Path) -> list[str]:
    return [r.path for r in lib.search(Query(like=str(root / "photo-0.png"), k=PHOTOS, min_relevance=0.0)).results]


def test_another_model_is_refused_with_what_to_do(built, tiny_text):
    home, root = built
    with _open(home, 1, tiny_text) as lib:
        changes = lib.model_changes()
        assert changes == [
            ModelChange(
                "clip",
                {"name": "test-tiny", "weights": "seed0", "dim": changes[0].recorded["dim"]},
                {"name": "test-tiny", "weights": "seed1", "dim": changes[0].recorded["dim"]},
                False,
            )
        ]
        with pytest.raises(ModelMismatchError, match="shoebox reembed"):
            lib.search("boiler")
        with pytest.raises(ModelMismatchError, match="shoebox reembed"):
            lib.index([root])
    with _open(home, 0, tiny_text) as lib:
        assert lib.model_changes() == []


def test_reembedding_keeps_search_on_the_old_vectors_until_it_switches(built, tiny_text):
    home, root = built
    with _open(home, 0, tiny_text) as lib:
        before = _like(lib, root)
        old_table = lib.store.vector_table("clip")
    assert len(before) == PHOTOS - 1

    with _open(home, 1, tiny_text) as lib:
        seen: list[list[str]] = []

        def progress(done: int, total: int, message: str) -> None:
            if "photos" in message:
                seen.append(_like(lib, root))  # a search in the middle: the old model and vectors

        stopped = lib.reembed(on_progress=progress, should_cancel=lambda: len(seen) >= 2)
        assert stopped.cancelled
        assert lib.model_changes()[0].staged  # what was done is kept
        identity = lib.store.model_identity("clip")
        assert identity is not None and identity["weights"] == "seed0"
        assert _like(lib, root) == before  # stopped: everything as it was
        assert all(s == before for s in seen)

        summary = lib.reembed(on_progress=progress)  # resumes and switches
        assert not summary.cancelled and summary.failed == []
        assert lib.model_changes() == [] and lib.store.staged_model("clip") is None
        identity = lib.store.model_identity("clip")
        assert identity is not None and identity["weights"] == "seed1"
        assert lib.store.vector_table("clip") != old_table
        assert lib.store.count_items("clip") == PHOTOS
        after = _like(lib, root)
        assert sorted(after) == sorted(before)  # every photo is found with the new vectors
        assert lib.vector_index("clip").table == lib.store.vector_table("clip")
        assert [r.path for r in lib.search("boiler", k=1).results] == [str(root / "boiler.txt")]
    with _open(home, 0, tiny_text) as lib, pytest.raises(ModelMismatchError):  # the old model is now the other one
        lib.search("boiler")


def test_a_photo_gone_since_indexing_is_recorded_as_failed(built, tiny_text):
    home, root = built
    (root / "photo-3.png").write_bytes(b"not a picture any more")
    with _open(home, 1, tiny_text) as lib:
        summary = lib.reembed(space="clip")
        assert [f["path"] for f in summary.failed] == [str(root / "photo-3.png")]
        identity = lib.store.model_identity("clip")
        assert identity is not None and identity["weights"] == "seed1"
        assert str(root / "photo-3.png") in {f.path for f in lib.store.failed_files()}
        assert len(_like(lib, root)) == PHOTOS - 2


def test_items_indexed_during_a_reembed_get_new_vectors_before_the_switch(built, tiny_clip, tiny_text, tmp_path):
    home, root = built
    with _open(home, 1, tiny_text) as lib:
        lib.reembed(space="clip", should_cancel=lambda: True)  # staged, nothing done yet
        assert lib.store.staged_model("clip") is not None
    make_photo(root / "photo-new.png", seed=99)
    settings = load_settings(home=home, env=dict(TINY_ENV))
    with Library(settings, clip=tiny_clip, text_model=tiny_text, graph_min_items=1) as old:
        old.index([root])  # another process, still on the old model, adds a photo
    with _open(home, 1, tiny_text) as lib:
        lib.reembed(space="clip")
        assert lib.store.count_items("clip") == PHOTOS + 1
        assert str(root / "photo-new.png") in _like(lib, root)


def test_the_command_line_refuses_and_reports_another_model(built, tiny_text):
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT, tiny_env

    home, _root = built
    env = dict(tiny_env(home), SHOEBOX_CLIP_PRETRAINED="seed1")
    search = subprocess.run(
        [sys.executable, "-m", "engine", "search", "boiler"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert search.returncode == 1 and "shoebox reembed" in search.stderr and "Traceback" not in search.stderr
    status = subprocess.run(
        [sys.executable, "-m", "engine", "status", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    [change] = json.loads(status.stdout)["model_changes"]
    assert (change["space"], change["recorded"]["weights"], change["configured"]["weights"], change["staged"]) == (
        "clip",
        "seed0",
        "seed1",
        False,
    )


def test_a_photo_deleted_since_indexing_leaves_the_library_on_reembed(built, tiny_text):
    home, root = built
    (root / "photo-4.png").unlink()
    with _open(home, 1, tiny_text) as lib:
        summary = lib.reembed(space="clip")
        assert summary.failed == [] and summary.removed == 1
        assert lib.store.get_file(str(root / "photo-4.png")) is None
        assert lib.store.count_items("clip") == PHOTOS - 1
