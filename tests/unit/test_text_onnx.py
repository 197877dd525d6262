"""The text model on ONNX Runtime: PyTorch's vectors (within int8), cached, verified, with fallbacks;
and a search that finds its caches built loads neither torch, open_clip nor transformers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import UsageError
from engine.models import TextEncoder, build_text_encoder, text_onnx
from engine.settings import load_settings
from tests.conftest import ROOT, TINY_ENV
from tests.real_models import minilm_folder

TEXTS = [
    "a red bicycle",
    "",
    "the dentist's receipt " * 40,
    "영수증",
    "Quarterly report: revenue grew 12% in the third quarter.",
]
HEAVY = ("torch", "open_clip", "transformers")


def make_settings(home: Path, **env: str):
    return load_settings(home=home, env={**TINY_ENV, **env})


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def onnx_folders(home: Path) -> list[Path]:
    return sorted(p.parent for p in (home / "models" / "text-onnx").rglob("manifest.json"))


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory):
    return tmp_path_factory.mktemp("text-onnx-home")


@pytest.fixture(scope="module")
def onnx_text(onnx_home):
    encoder = build_text_encoder(make_settings(onnx_home, SHOEBOX_TEXT_RUNTIME="onnx"))
    encoder.load()
    return encoder


@pytest.fixture(scope="module")
def torch_text(onnx_home):
    encoder = build_text_encoder(make_settings(onnx_home, SHOEBOX_TEXT_RUNTIME="torch"))
    encoder.load()
    return encoder


def test_onnx_int8_matches_pytorch(onnx_text, torch_text):
    assert onnx_text.runtime == "onnx-int8" and onnx_text.runtime_note == ""
    assert torch_text.runtime == "torch"
    assert onnx_text.identity == torch_text.identity  # one library holds vectors from either
    for encode in ("encode_passages", "encode_queries"):
        ours, reference = getattr(onnx_text, encode)(TEXTS), getattr(torch_text, encode)(TEXTS)
        assert ours.shape == (len(TEXTS), onnx_text.dim) and ours.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        assert cosines(ours, reference).min() >= 0.99
        # Not the PyTorch path in disguise: int8 arithmetic gives slightly different numbers.
        assert not np.allclose(ours, reference, atol=1e-6)
    assert onnx_text.encode_queries([]).shape == (0, onnx_text.dim)
    assert "loaded, onnx-int8" in repr(onnx_text)


def test_vectors_depend_only_slightly_on_the_batch(onnx_home, onnx_text):
    one_by_one = build_text_encoder(make_settings(onnx_home, SHOEBOX_BATCH_SIZE="1"))
    assert cosines(one_by_one.encode_passages(TEXTS), onnx_text.encode_passages(TEXTS)).min() >= 0.999


def test_the_cache_is_reused_without_exporting_again(onnx_home, onnx_text, monkeypatch):
    [folder] = onnx_folders(onnx_home)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["network"]["precision"] == "int8" and manifest["network"]["cosine"]["int8"] >= 0.99
    assert manifest["network"]["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]  # BERT takes token types
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "network-int8.onnx"]

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the network")

    monkeypatch.setattr(text_onnx, "_export", no_export)
    again = build_text_encoder(make_settings(onnx_home))
    again.load()
    assert again.runtime == "onnx-int8" and again._model is None  # PyTorch weights are not even loaded
    np.testing.assert_array_equal(again.encode_passages(TEXTS), onnx_text.encode_passages(TEXTS))


def test_the_default_runtime_on_a_cpu_is_onnx_and_torch_builds_nothing(tmp_path):
    encoder = build_text_encoder(make_settings(tmp_path / "a"))
    assert encoder.settings.text_runtime == "auto"
    encoder.encode_queries(["tax"])
    assert encoder.runtime == "onnx-int8"
    pinned = build_text_encoder(make_settings(tmp_path / "b", SHOEBOX_TEXT_RUNTIME="torch"))
    pinned.encode_queries(["tax"])
    assert pinned.runtime == "torch" and pinned.runtime_note == ""
    assert not (tmp_path / "b" / "models" / "text-onnx").exists()


def test_on_a_gpu_pytorch_runs_unless_asked_otherwise(tmp_path):
    assert build_text_encoder(make_settings(tmp_path, SHOEBOX_DEVICE="mps"))._wanted_runtime() == ("torch", "")
    runtime, note = build_text_encoder(
        make_settings(tmp_path, SHOEBOX_DEVICE="cuda", SHOEBOX_TEXT_RUNTIME="onnx")
    )._wanted_runtime()
    assert runtime == "torch"
    assert note == (
        "The text model runs on PyTorch: SHOEBOX_TEXT_RUNTIME=onnx runs on the CPU only, and SHOEBOX_DEVICE is cuda."
    )
    assert build_text_encoder(make_settings(tmp_path))._wanted_runtime() == ("onnx", "")


def test_an_unknown_runtime_setting_is_refused(tmp_path):
    with pytest.raises(UsageError, match="SHOEBOX_TEXT_RUNTIME must be auto, onnx, torch, not 'tensorflow'"):
        make_settings(tmp_path, SHOEBOX_TEXT_RUNTIME="tensorflow")


def test_without_onnxruntime_pytorch_runs_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    encoder = build_text_encoder(make_settings(tmp_path))
    assert encoder.encode_passages(TEXTS).shape == (len(TEXTS), encoder.dim)
    assert encoder.runtime == "torch"
    assert encoder.runtime_note == "The text model runs on PyTorch: the Python package onnxruntime is not installed."


def test_an_export_error_falls_back_to_pytorch_with_a_plain_reason(tmp_path, monkeypatch, torch_text):
    def broken(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::strange' to ONNX is not supported\nmore detail")

    monkeypatch.setattr(text_onnx, "_export", broken)
    encoder = build_text_encoder(make_settings(tmp_path))
    np.testing.assert_allclose(encoder.encode_passages(TEXTS), torch_text.encode_passages(TEXTS), atol=1e-6)
    assert encoder.runtime == "torch"
    assert encoder.runtime_note == (
        "The text model runs on PyTorch: the network could not be exported to ONNX "
        "(Exporting the operator 'aten::strange' to ONNX is not supported)."
    )
    assert not list((tmp_path / "models" / "text-onnx").rglob("*.onnx*"))  # no half-written files left
    assert not list((tmp_path / "models" / "text-onnx").rglob("manifest.json"))


class Drifting:
    """An int8 session whose token vectors are rotated: what a broken quantisation would give."""

    def __init__(self, session):
        self.session = session

    def run(self, names, feeds):
        return [np.roll(out, 5, axis=-1) for out in self.session.run(names, feeds)]


def test_int8_that_drifts_from_pytorch_falls_back_to_fp32_and_says_so(tmp_path, monkeypatch, torch_text):
    real_session = text_onnx._session

    def session(path, settings):
        made = real_session(path, settings)
        return Drifting(made) if "int8" in Path(path).name else made

    monkeypatch.setattr(text_onnx, "_session", session)
    encoder = build_text_encoder(make_settings(tmp_path))
    encoder.load()
    assert encoder.runtime == "onnx-fp32"
    assert encoder.runtime_note.startswith("int8 vectors differed from PyTorch's (cosine ")
    assert "so the network runs in fp32" in encoder.runtime_note
    assert cosines(encoder.encode_passages(TEXTS), torch_text.encode_passages(TEXTS)).min() >= 0.9999
    [folder] = onnx_folders(tmp_path)
    assert sorted(p.name for p in folder.glob("*.onnx")) == ["network-fp32.onnx"]

    monkeypatch.setattr(text_onnx, "_session", real_session)
    reopened = build_text_encoder(make_settings(tmp_path))
    reopened.load()  # from the cache: still fp32, still saying why
    assert reopened.runtime == "onnx-fp32" and reopened.runtime_note == encoder.runtime_note


def test_when_neither_precision_matches_pytorch_runs(tmp_path, monkeypatch, torch_text):
    real_session = text_onnx._session
    monkeypatch.setattr(text_onnx, "_session", lambda path, settings: Drifting(real_session(path, settings)))
    encoder = build_text_encoder(make_settings(tmp_path))
    np.testing.assert_allclose(encoder.encode_queries(TEXTS), torch_text.encode_queries(TEXTS), atol=1e-6)
    assert encoder.runtime == "torch"
    assert encoder.runtime_note.startswith(
        "The text model runs on PyTorch: the ONNX network does not reproduce PyTorch's vectors (cosine "
    )
    assert not onnx_folders(tmp_path)


def test_a_damaged_cached_network_is_built_again(tmp_path, monkeypatch):
    first = build_text_encoder(make_settings(tmp_path))
    expected = first.encode_passages(TEXTS)
    [folder] = onnx_folders(tmp_path)
    (folder / "network-int8.onnx").write_bytes(b"not an onnx model at all")
    exports = []
    real_export = text_onnx._export

    def counting_export(*args):
        exports.append(args[1])
        real_export(*args)

    monkeypatch.setattr(text_onnx, "_export", counting_export)
    second = build_text_encoder(make_settings(tmp_path))
    second.load()
    assert len(exports) == 1 and second.runtime == "onnx-int8"
    np.testing.assert_allclose(second.encode_passages(TEXTS), expected, atol=1e-6)


def dense_cls_folder(tiny_text: TextEncoder, dest: Path, activation: str) -> Path:
    """test-tiny with cls+mean pooling that leaves the prompt out, then a Dense layer."""
    from safetensors.numpy import save_file

    shutil.copytree(tiny_text.locate(), dest)
    pooling = json.loads((dest / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=True, include_prompt=False)
    (dest / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (dest / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: ", "passage": "passage: "}})
    )
    modules = json.loads((dest / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (dest / "modules.json").write_text(json.dumps(modules))
    (dest / "2_Dense").mkdir()
    config = {"in_features": 64, "out_features": 24, "activation_function": f"torch.nn.modules.activation.{activation}"}
    (dest / "2_Dense" / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(3)
    weights = {"linear.weight": rng.normal(size=(24, 64)).astype(np.float32) / 8, "linear.bias": rng.normal(size=24)}
    save_file({k: v.astype(np.float32) for k, v in weights.items()}, str(dest / "2_Dense" / "model.safetensors"))
    return dest


@pytest.mark.parametrize("activation", ["Tanh", "GELU"])
def test_pooling_prompts_and_dense_layers_run_in_numpy_as_in_pytorch(tmp_path, tiny_text, activation):
    folder = dense_cls_folder(tiny_text, tmp_path / "model", activation)
    onnx = TextEncoder(make_settings(tmp_path / "lib"), folder=folder)
    reference = TextEncoder(make_settings(tmp_path / "lib", SHOEBOX_TEXT_RUNTIME="torch"), folder=folder)
    assert onnx.dim == 24 and onnx.query_prefix == "query: "
    ours = onnx.encode_queries(TEXTS)
    assert onnx.runtime == "onnx-int8" and ours.shape == (len(TEXTS), 24)
    assert cosines(ours, reference.encode_queries(TEXTS)).min() >= 0.99
    [cache] = onnx_folders(tmp_path / "lib")
    assert sorted(p.name for p in cache.iterdir()) == ["dense-0.npz", "manifest.json", "network-int8.onnx"]
    reopened = TextEncoder(make_settings(tmp_path / "lib"), folder=folder)
    np.testing.assert_array_equal(reopened.encode_queries(TEXTS), ours)


def test_numpy_pooling_matches_the_pytorch_pooling():
    import torch

    from engine.models.text import _pool

    rng = np.random.default_rng(11)
    hidden = rng.normal(size=(3, 6, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0]], dtype=np.int64)
    modes = ("cls", "max", "mean", "mean_sqrt_len", "weightedmean", "lasttoken")
    expected = _pool(torch.from_numpy(hidden), torch.from_numpy(mask), modes).numpy()
    np.testing.assert_allclose(text_onnx.pool(hidden, mask, modes), expected, rtol=1e-6, atol=1e-6)


SEARCH_SCRIPT = """
import sys
from engine.settings import load_settings
from engine.models import build_clip, build_text_encoder
settings = load_settings(home=sys.argv[1])
clip, text = build_clip(settings), build_text_encoder(settings)
clip.encode_texts(["a dog on the beach"])
text.encode_queries(["a dog on the beach"])
print(clip.runtime, text.runtime)
from engine.cli import main
code = main(["search", "receipt from the dentist"])
print("exit", code)
print("heavy", sorted(m for m in {heavy} if m in sys.modules))
"""


def test_a_search_with_the_caches_built_imports_no_torch(tmp_path):
    from engine.library import Library

    home = tmp_path / "library"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "dentist.txt").write_text("The receipt from the dentist, paid in March.", encoding="utf-8")
    gradient = np.add.outer(np.arange(64), np.arange(96)).astype(np.uint8)
    Image.fromarray(np.stack([gradient, gradient[::-1], 255 - gradient], axis=-1)).save(docs / "beach.png")
    settings = make_settings(home)
    with Library(settings) as lib:  # indexing builds (and caches) both ONNX models
        assert lib.index([docs]).added == 2
        assert lib.clip.runtime == "onnx-int8" and lib.text_model.runtime == "onnx-int8"
    env = {**TINY_ENV, "SHOEBOX_HOME": str(home), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SEARCH_SCRIPT.format(heavy=HEAVY), str(home)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "onnx-int8 onnx-int8"
    assert "dentist.txt" in done.stdout and "exit 0" in lines
    assert lines[-1] == "heavy []", done.stdout


# ------------------------------------------------------------------------- real weights


@pytest.mark.real_weights
def test_minilm_on_onnx_runtime_matches_pytorch(tmp_path):
    folder = minilm_folder()
    env = {"SHOEBOX_TEXT_MODEL": str(folder), "SHOEBOX_THREADS": "2"}
    onnx = build_text_encoder(load_settings(home=tmp_path, env=env))
    reference = build_text_encoder(load_settings(home=tmp_path, env={**env, "SHOEBOX_TEXT_RUNTIME": "torch"}))
    sentences = [
        "This is an example sentence",
        "how do I stop my dog from barking at night",
        "Our new puppy kept the whole house awake with his noise after dark.",
        "Chocolate cake: cream the butter and sugar, fold in the flour, bake for forty minutes.",
        "The train to the coast leaves every hour from platform four.",
        "안녕하세요 세계",
    ]
    ours = onnx.encode_passages(sentences)
    assert onnx.runtime == "onnx-int8", onnx.runtime_note
    assert cosines(ours, reference.encode_passages(sentences)).min() >= 0.99
    scores = onnx.encode_queries(sentences[1:2]) @ ours.T
    assert int(np.argmax(scores[0][2:])) == 0  # the paraphrase ranks first among the others
    assert onnx.identity == reference.identity
