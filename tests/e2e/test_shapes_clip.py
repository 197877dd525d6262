"""shapes-clip: a CLIP trained in this repository (``scripts/shapes_clip.py``) really finds things.

The committed checkpoint is loaded exactly as a person's own weights are: the setting
``clip_weights`` (SHOEBOX_CLIP_WEIGHTS) names the file and ``clip_model`` the
architecture.  Pictures of coloured shapes are indexed through the whole pipeline
(decoding, the model's preprocessing, the store) and a typed query must put the right
picture first, where random test weights could only run the code.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ModelUnavailableError, UsageError
from engine.library import Library
from engine.models import ModelIdentity, build_clip
from engine.models.weights import file_sha256, sniff_format
from engine.settings import load_settings
from engine.store import Filters
from scripts.shapes_clip import SceneSpec, Thing, render_scene
from tests.conftest import ROOT
from tests.helpers import make_text

CHECKPOINT = ROOT / "resources" / "models" / "shapes-clip.safetensors"

# Fixed scenes (never drawn at random).  Red, blue, yellow and green each come as two
# shapes and each shape in two colours, so a right answer needs both the colour and the
# shape.  (Where a shape is, "on the left", is learnt too, but with margins too thin to
# assert on.)
SCENES: dict[str, SceneSpec] = {
    "img-01.png": SceneSpec((Thing("circle", "red", "centre"),), (140, 140, 135), 0.0, 101),
    "img-02.png": SceneSpec((Thing("square", "red", "left"),), (120, 128, 120), 0.0, 102),
    "img-03.png": SceneSpec((Thing("circle", "blue", "right"),), (150, 145, 140), 5.0, 103),
    "img-04.png": SceneSpec((Thing("square", "blue", "centre"),), (130, 130, 140), 0.0, 104),
    "img-05.png": SceneSpec((Thing("star", "yellow", "top"),), (110, 115, 120), 0.0, 105),
    "img-06.png": SceneSpec((Thing("triangle", "yellow", "bottom"),), (135, 125, 125), 6.0, 106),
    "img-07.png": SceneSpec((Thing("triangle", "green", "centre"),), (160, 155, 150), 0.0, 107),
    "img-08.png": SceneSpec((Thing("star", "green", "left"),), (125, 135, 135), 0.0, 108),
    # Two shapes in one picture, and each of them alone.
    "img-09.png": SceneSpec(
        (Thing("circle", "purple", "left"), Thing("star", "orange", "right")), (140, 140, 145), 0.0, 109
    ),
    "img-10.png": SceneSpec((Thing("circle", "purple", "bottom"),), (130, 135, 125), 0.0, 110),
    "img-11.png": SceneSpec((Thing("star", "orange", "top"),), (120, 120, 125), 4.0, 111),
}
QUERIES = {
    "a red circle": "img-01.png",
    "a blue square": "img-04.png",
    "a yellow star": "img-05.png",
    "a green triangle": "img-07.png",
    "a photo of a red square": "img-02.png",
    "a purple circle and an orange star": "img-09.png",
}


def shapes_settings(home: Path, weights: Path | str = CHECKPOINT, **overrides: Any):
    """Settings a person would write to use weights of their own: model name plus file.

    Passages get the test-tiny text model: these tests are about what CLIP finds.
    """
    return load_settings(
        home=home, clip_model="shapes-clip", clip_weights=str(weights), text_model="test-tiny", **overrides
    )


@pytest.fixture(scope="module")
def shapes_library(tmp_path_factory, both_stores_per_module):
    """A library of the scenes above (plus one text note), indexed with shapes-clip (in SQLite, then PostgreSQL)."""
    if not CHECKPOINT.is_file():
        pytest.fail(f"{CHECKPOINT} is missing; train it with `python -m scripts.shapes_clip`")
    folder = tmp_path_factory.mktemp("shapes")
    for name, spec in SCENES.items():
        render_scene(spec, 128).save(folder / name)
    # A document that names a query, so the kind filter has something to remove.
    make_text(folder / "notes.txt", "a red circle was drawn on the whiteboard")
    library = Library(shapes_settings(tmp_path_factory.mktemp("shapes-home"), store=both_stores_per_module))
    summary = library.index([folder])
    assert summary.failed == [] and summary.added == len(SCENES) + 1
    yield library, folder
    library.close()


def test_checkpoint_is_small_safetensors():
    assert sniff_format(CHECKPOINT) == "safetensors"
    assert CHECKPOINT.stat().st_size <= 8 * 1024 * 1024


def test_loads_as_explicit_weights_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    encoder = build_clip(shapes_settings(tmp_path / "home"))
    assert encoder.locate_weights() == CHECKPOINT
    assert encoder.identity == ModelIdentity("shapes-clip", f"file:{file_sha256(CHECKPOINT)[:12]}", 64)
    encoder.load()
    texts = encoder.encode_texts(["a red circle", "a blue square"])
    assert texts.shape == (2, 64)
    assert abs(float(texts[0] @ texts[1])) < 0.99  # a trained text tower tells them apart


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_search_ranks_the_described_picture_first(shapes_library, query):
    library, folder = shapes_library
    every = [r for r in library.search(query, k=20, min_relevance=0).results if r.kind == "image"]
    assert len(every) == len(SCENES)
    assert every[0].path == str(folder / QUERIES[query])
    # At the calibrated default, pictures of other shapes are left out.
    shown = [r for r in library.search(query, k=20).results if r.kind == "image"]
    assert shown[0].path == str(folder / QUERIES[query])
    assert len(shown) <= 3, [(r.path, r.relevance) for r in shown]


def test_a_shape_is_found_in_a_picture_that_holds_more(shapes_library):
    library, folder = shapes_library
    images = [r.path for r in library.search("an orange star", k=20, min_relevance=0).results if r.kind == "image"]
    assert set(images[:2]) == {str(folder / "img-09.png"), str(folder / "img-11.png")}


def test_image_filter_keeps_only_pictures(shapes_library):
    library, folder = shapes_library
    everything = library.search("a red circle", k=20).results
    assert str(folder / "notes.txt") in [r.path for r in everything]  # the keyword match
    only_images = library.search("a red circle", filters=Filters(kinds=("image",)), k=20, min_relevance=0).results
    assert [r.kind for r in only_images] == ["image"] * len(SCENES)
    assert only_images[0].path == str(folder / "img-01.png")


def test_missing_weights_file_is_reported(tmp_path):
    missing = tmp_path / "nowhere" / "shapes-clip.safetensors"
    with pytest.raises(ModelUnavailableError, match=r"SHOEBOX_CLIP_WEIGHTS is set to .* but there is no file there"):
        build_clip(shapes_settings(tmp_path / "home", missing))


def test_without_a_weights_file_says_how_to_get_one(tmp_path):
    encoder = build_clip(shapes_settings(tmp_path / "home", ""))
    with pytest.raises(UsageError, match=r"open_clip publishes no weights for shapes-clip.*SHOEBOX_CLIP_WEIGHTS"):
        encoder.load()


def test_hybrid_ranking_keeps_the_picture_beside_the_matching_note(shapes_library):
    library, folder = shapes_library
    top = [r.path for r in library.search("a red circle", k=2).results]
    assert set(top) == {str(folder / "img-01.png"), str(folder / "notes.txt")}


@pytest.fixture(scope="module")
def planned_library(tmp_path_factory):
    """The scenes with notes and a shapes vocabulary, searched through the HNSW planner."""
    folder = tmp_path_factory.mktemp("planned")
    (folder / "pictures").mkdir()
    for name, spec in SCENES.items():
        render_scene(spec, 128).save(folder / "pictures" / name)
    make_text(
        folder / "notes" / "meeting.txt",
        "Directions for Saturday. The red circle on the map marks the meeting point by the lake.",
    )
    make_text(
        folder / "notes" / "parking.txt",
        "The blue square on the map marks the car park; it closes at eight in the evening.",
    )
    vocabulary = folder / "shapes-vocabulary.txt"
    vocabulary.write_text("circle: a circle\nsquare: a square\nstar: a star\ntriangle: a triangle\n", encoding="utf-8")
    settings = load_settings(
        home=tmp_path_factory.mktemp("planned-home"),
        clip_model="shapes-clip",
        clip_weights=str(CHECKPOINT),
        autotag_vocabulary=str(vocabulary),
        autotag_threshold=0.5,
        text_model="test-tiny",
    )
    library = Library(settings, graph_min_items=5)
    assert library.index([folder]).failed == []
    yield library, folder
    library.close()


def test_the_planner_finds_meaning_through_the_hnsw_index(planned_library):
    library, folder = planned_library
    response = library.search("a blue square", filters=Filters(kinds=("image",)), k=5)
    assert response.plan.startswith("hnsw")
    assert response.results[0].path == str(folder / "pictures" / "img-04.png")


def test_auto_tags_name_the_shapes(planned_library):
    library, folder = planned_library
    store = library.store
    for name, spec in SCENES.items():
        if len(spec.things) != 1:
            continue
        file_id = store.get_file(str(folder / "pictures" / name)).id
        assert store.tags_of_files([file_id], source="auto")[file_id] == [spec.things[0].shape], name
    stars = library.search(filters=Filters(tags=("star",)), k=20).results
    assert {r.path for r in stars} >= {str(folder / "pictures" / n) for n in ("img-05.png", "img-08.png", "img-11.png")}


def test_ask_cites_the_right_document(planned_library):
    library, folder = planned_library
    answer = library.ask("What marks the meeting point?", use_llm=False)
    assert answer.found and "meeting point" in answer.answer
    assert answer.citations[0].path == str(folder / "notes" / "meeting.txt")
    answer = library.ask("When does the car park close?", use_llm=False)
    assert answer.citations[0].path == str(folder / "notes" / "parking.txt") and "eight" in answer.answer
