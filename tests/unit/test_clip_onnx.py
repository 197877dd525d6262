"""CLIP on ONNX Runtime: same vectors as PyTorch (within int8), cached, verified, with fallbacks."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import UsageError
from engine.models import ClipEncoder, clip_onnx
from engine.settings import load_settings
from tests.conftest import TINY_ENV

TEXTS = ["a red bicycle", "a cat asleep on a sofa", "mountains at dawn", "생일 케이크"]


def make_settings(home: Path, **env: str):
    return load_settings(home=home, env={**TINY_ENV, **env})


def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    gradient = np.add.outer(np.arange(96), np.arange(128)).astype(np.uint8)
    base = Image.fromarray(np.stack([gradient, gradient[::-1], 255 - gradient], axis=-1))
    noise = Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8))
    return [base, noise, Image.new("RGB", (50, 200), (10, 200, 30)), base.rotate(90, expand=True)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-home")


@pytest.fixture(scope="module")
def onnx_clip(onnx_home):
    clip = ClipEncoder(make_settings(onnx_home, SHOEBOX_CLIP_RUNTIME="onnx"))
    clip.load()
    return clip


@pytest.fixture(scope="module")
def torch_clip(onnx_home):
    clip = ClipEncoder(make_settings(onnx_home, SHOEBOX_CLIP_RUNTIME="torch"))
    clip.load()
    return clip


def onnx_folders(home: Path) -> list[Path]:
    return sorted(p.parent for p in (home / "models" / "clip-onnx").rglob("manifest.json"))


def test_onnx_int8_matches_pytorch_on_images_and_texts(onnx_clip, torch_clip):
    assert onnx_clip.runtime == "onnx-int8" and onnx_clip.runtime_note == ""
    assert torch_clip.runtime == "torch"
    assert onnx_clip.identity == torch_clip.identity  # one library holds vectors from either
    images = onnx_clip.encode_images(pictures())
    texts = onnx_clip.encode_texts(TEXTS)
    assert images.shape == (4, onnx_clip.dim) and images.dtype == np.float32
    assert texts.shape == (4, onnx_clip.dim) and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert cosines(images, torch_clip.encode_images(pictures())).min() >= 0.99
    assert cosines(texts, torch_clip.encode_texts(TEXTS)).min() >= 0.99
    # Not the PyTorch path in disguise: int8 arithmetic gives slightly different numbers.
    assert not np.allclose(images, torch_clip.encode_images(pictures()), atol=1e-6)


def test_int8_vectors_depend_only_slightly_on_the_batch(onnx_home, onnx_clip):
    one_by_one = ClipEncoder(make_settings(onnx_home, SHOEBOX_CLIP_RUNTIME="onnx", SHOEBOX_BATCH_SIZE="1"))
    assert cosines(one_by_one.encode_images(pictures()), onnx_clip.encode_images(pictures())).min() >= 0.999
    assert cosines(one_by_one.encode_texts(TEXTS), onnx_clip.encode_texts(TEXTS)).min() >= 0.999
    assert onnx_clip.encode_image_tensors(onnx_clip.preprocess(pictures()[0])).shape == (1, onnx_clip.dim)
    assert onnx_clip.encode_images([]).shape == (0, onnx_clip.dim)
    assert onnx_clip.encode_texts([]).shape == (0, onnx_clip.dim)


def test_the_text_tower_reads_only_up_to_the_longest_texts_end(onnx_home, onnx_clip, torch_clip):
    """The causal text tower is exported for any length: padding after the end token is cut, same vectors."""
    [folder] = onnx_folders(onnx_home)
    assert json.loads((folder / "manifest.json").read_text())["short_text"] is True
    onnx = onnx_clip._onnx
    assert onnx is not None and onnx.short_text
    tokens = onnx_clip._get_tokenizer()(["a dog", "a much longer description of a red car parked in the snow"])
    tokens = np.asarray(tokens)
    ends = tokens.argmax(axis=1)
    trimmed = clip_onnx._trim_tokens(tokens)
    assert trimmed.shape == (2, int(ends.max()) + 1) and (trimmed == tokens[:, : trimmed.shape[1]]).all()
    seen: list[tuple[int, ...]] = []
    run = clip_onnx._run

    def watched(session, array):
        seen.append(array.shape)
        return run(session, array)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clip_onnx, "_run", watched)
        short = onnx_clip.encode_texts(["a dog"])
        both = onnx_clip.encode_texts(["a dog", "a much longer description of a red car parked in the snow"])
    assert seen[0][1] == int(ends[0]) + 1 < 77 and seen[1][1] == int(ends.max()) + 1
    # The same vectors as PyTorch over the whole padded context, alone or beside a longer text.
    full = torch_clip.encode_texts(["a dog", "a much longer description of a red car parked in the snow"])
    assert cosines(short, full[:1]).min() >= 0.99 and cosines(both, full).min() >= 0.99
    assert cosines(short, both[:1]).min() >= 0.999


def test_the_cache_is_reused_without_exporting_again(onnx_home, onnx_clip, monkeypatch):
    [folder] = onnx_folders(onnx_home)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {manifest["towers"][t]["precision"] for t in ("image", "text")} == {"int8"}
    assert all(manifest["towers"][t]["cosine"]["int8"] >= 0.99 for t in ("image", "text"))
    assert sorted(p.name for p in folder.iterdir()) == ["image-int8.onnx", "manifest.json", "text-int8.onnx"]

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the towers")

    monkeypatch.setattr(clip_onnx, "_export", no_export)
    again = ClipEncoder(make_settings(onnx_home, SHOEBOX_CLIP_RUNTIME="onnx"))
    again.load()
    assert again.runtime == "onnx-int8"
    assert again._model is None  # PyTorch weights are not even loaded
    np.testing.assert_array_equal(again.encode_texts(TEXTS), onnx_clip.encode_texts(TEXTS))


def test_the_default_runtime_on_a_cpu_is_onnx(tmp_path):
    clip = ClipEncoder(make_settings(tmp_path))
    assert clip.settings.clip_runtime == "auto"
    clip.load()
    assert clip.runtime == "onnx-int8"
    assert "loaded, onnx-int8" in repr(clip)


def test_a_damaged_cached_tower_is_built_again(tmp_path, monkeypatch):
    first = ClipEncoder(make_settings(tmp_path))
    expected = first.encode_texts(TEXTS)
    [folder] = onnx_folders(tmp_path)
    (folder / "image-int8.onnx").write_bytes(b"not an onnx model at all")
    exports = []
    real_export = clip_onnx._export

    def counting_export(*args):
        exports.append(args[1])
        real_export(*args)

    monkeypatch.setattr(clip_onnx, "_export", counting_export)
    second = ClipEncoder(make_settings(tmp_path))
    second.load()
    assert exports == ["image", "text"]
    assert second.runtime == "onnx-int8"
    np.testing.assert_allclose(second.encode_texts(TEXTS), expected, atol=1e-6)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (
        manifest["towers"]["image"]["sha256"] == hashlib.sha256((folder / "image-int8.onnx").read_bytes()).hexdigest()
    )


def test_int8_that_drifts_from_pytorch_falls_back_to_fp32_and_says_so(tmp_path, monkeypatch):
    real_session = clip_onnx._session

    class Drifting:
        """An int8 session whose vectors are rotated: what a broken quantisation would give."""

        def __init__(self, session):
            self.session = session

        def get_inputs(self):
            return self.session.get_inputs()

        def run(self, names, feeds):
            return [np.roll(out, 7, axis=1) for out in self.session.run(names, feeds)]

    def session(path, settings):
        made = real_session(path, settings)
        return Drifting(made) if "int8" in Path(path).name else made

    monkeypatch.setattr(clip_onnx, "_session", session)
    clip = ClipEncoder(make_settings(tmp_path))
    clip.load()
    assert clip.runtime == "onnx-fp32"
    assert "int8 image vectors differed from PyTorch's" in clip.runtime_note
    assert "int8 text vectors differed" in clip.runtime_note and "fp32" in clip.runtime_note
    torch_clip = ClipEncoder(make_settings(tmp_path, SHOEBOX_CLIP_RUNTIME="torch"))
    assert cosines(clip.encode_texts(TEXTS), torch_clip.encode_texts(TEXTS)).min() >= 0.9999
    [folder] = onnx_folders(tmp_path)
    assert sorted(p.name for p in folder.glob("*.onnx")) == ["image-fp32.onnx", "text-fp32.onnx"]

    monkeypatch.setattr(clip_onnx, "_session", real_session)
    reopened = ClipEncoder(make_settings(tmp_path))
    reopened.load()  # from the cache: still fp32, still saying why
    assert reopened.runtime == "onnx-fp32" and reopened.runtime_note == clip.runtime_note


def test_the_threshold_decides_between_int8_and_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_onnx, "MIN_COSINE", 0.9999999)  # int8 cannot reach it; fp32 can
    clip = ClipEncoder(make_settings(tmp_path))
    clip.load()
    assert clip.runtime in ("onnx-fp32", "onnx-int8/fp32", "onnx-fp32/int8")
    assert "below 0.9999999" in clip.runtime_note


def test_torch_runtime_uses_pytorch_and_builds_nothing(tmp_path):
    clip = ClipEncoder(make_settings(tmp_path, SHOEBOX_CLIP_RUNTIME="torch"))
    clip.encode_texts(TEXTS)
    assert clip.runtime == "torch" and clip.runtime_note == ""
    assert not (tmp_path / "models" / "clip-onnx").exists()


def test_on_a_gpu_pytorch_runs_unless_asked_otherwise(tmp_path):
    assert ClipEncoder(make_settings(tmp_path, SHOEBOX_DEVICE="mps"))._wanted_runtime() == ("torch", "")
    runtime, note = ClipEncoder(
        make_settings(tmp_path, SHOEBOX_DEVICE="cuda", SHOEBOX_CLIP_RUNTIME="onnx")
    )._wanted_runtime()
    assert runtime == "torch" and "runs on the CPU only" in note
    assert ClipEncoder(make_settings(tmp_path))._wanted_runtime() == ("onnx", "")


def test_without_onnxruntime_pytorch_runs_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    clip = ClipEncoder(make_settings(tmp_path))
    vectors = clip.encode_images(pictures())
    assert clip.runtime == "torch"
    assert clip.runtime_note == "CLIP runs on PyTorch: the Python package onnxruntime is not installed."
    assert vectors.shape == (4, clip.dim)


def test_an_export_error_falls_back_to_pytorch_with_a_plain_reason(tmp_path, monkeypatch):
    def broken(model, tower, sample, path, short=False):
        raise RuntimeError("Exporting the operator 'aten::strange' to ONNX is not supported\nmore detail")

    monkeypatch.setattr(clip_onnx, "_export", broken)
    clip = ClipEncoder(make_settings(tmp_path))
    assert clip.encode_texts(TEXTS).shape == (4, clip.dim)
    assert clip.runtime == "torch"
    assert clip.runtime_note == (
        "CLIP runs on PyTorch: the image tower could not be exported to ONNX "
        "(Exporting the operator 'aten::strange' to ONNX is not supported)."
    )
    assert not list((tmp_path / "models" / "clip-onnx").rglob("*.onnx*"))  # no half-written files left


def test_an_unknown_runtime_setting_is_refused(tmp_path):
    with pytest.raises(UsageError, match="SHOEBOX_CLIP_RUNTIME must be auto, onnx, torch"):
        make_settings(tmp_path, SHOEBOX_CLIP_RUNTIME="tensorflow")


def test_indexing_and_searching_with_the_onnx_runtime(tmp_path, onnx_clip, tiny_whisper, tiny_text):
    from engine.library import Library

    photos = tmp_path / "photos"
    photos.mkdir()
    for n, image in enumerate(pictures()):
        image.save(photos / f"photo{n}.png")
    lib = Library(
        make_settings(tmp_path / "library", SHOEBOX_MIN_RELEVANCE="0"),
        clip=onnx_clip,
        whisper=tiny_whisper,
        text_model=tiny_text,
    )
    try:
        summary = lib.index([photos])
        assert summary.added == 4 and summary.failed == []
        found = lib.search(image=photos / "photo1.png", k=2).results
        assert found[0].path == str(photos / "photo1.png")
        assert found[0].similarity is not None and found[0].similarity > 0.999
        assert len(lib.search("a red bicycle", k=4).results) == 4  # the text tower answers a query
    finally:
        lib.close()
    assert onnx_clip.runtime == "onnx-int8"


def test_a_text_tower_that_cannot_take_short_inputs_is_exported_as_is(tmp_path, monkeypatch):
    """Should the any-length form not reproduce PyTorch, the whole-context tower is used, in int8."""

    def wrong(model, tokens):
        import torch

        return torch.nn.functional.normalize(torch.ones(tokens.shape[0], model.text_projection.shape[1]), dim=-1)

    monkeypatch.setattr(clip_onnx, "_encode_short_text", wrong)
    clip = ClipEncoder(make_settings(tmp_path, SHOEBOX_CLIP_RUNTIME="onnx"))
    clip.load()
    [folder] = onnx_folders(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["short_text"] is False and clip.runtime == "onnx-int8" and clip.runtime_note == ""
    assert clip._onnx is not None and not clip._onnx.short_text
    reference = ClipEncoder(make_settings(tmp_path, SHOEBOX_CLIP_RUNTIME="torch"))
    assert cosines(clip.encode_texts(TEXTS), reference.encode_texts(TEXTS)).min() >= 0.99
