"""The model layer: test-tiny CLIP and Whisper through the real code paths, weights resolution,
import, refusal of damaged and pickle-bearing files, and the messages a person sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Any download attempt must fail at once instead of reaching for the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from PIL import Image

from engine.errors import ModelUnavailableError, UsageError
from engine.models import (
    TEST_TINY,
    ClipEncoder,
    ModelIdentity,
    Segment,
    Transcript,
    build_clip,
    build_whisper,
    configure_torch_threads,
    download_model,
    import_model,
    list_models,
)
from engine.models.tiny import write_tiny_clip_weights, write_tiny_whisper_weights
from engine.models.weights import file_sha256
from engine.settings import load_settings

from ._data import CORPORA

REPO = Path(__file__).resolve().parents[2]
JFK_WAV = CORPORA / "audio" / "jfk.wav"
TINY = {"SHOEBOX_CLIP_MODEL": TEST_TINY, "SHOEBOX_WHISPER_MODEL": TEST_TINY}


# No test sees the user's real model caches or the network (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("offline_caches")


def make_settings(home: Path, **env: str):
    return load_settings(home=home, env={**TINY, **env})


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-library")


@pytest.fixture(scope="module")
def tiny_clip(tiny_home):
    encoder = build_clip(make_settings(tiny_home))
    encoder.load()
    return encoder


@pytest.fixture(scope="module")
def tiny_whisper(tiny_home):
    transcriber = build_whisper(make_settings(tiny_home))
    transcriber.load()
    return transcriber


def sample_images() -> list[Image.Image]:
    gradient = np.add.outer(np.arange(96), np.arange(128)).astype(np.uint8)
    rgb = Image.fromarray(np.stack([gradient, gradient[::-1], 255 - gradient], axis=-1))
    return [
        rgb,
        rgb.convert("L"),
        rgb.convert("RGBA"),
        rgb.convert("P"),
        Image.new("RGB", (40, 300), (10, 200, 30)),
    ]


def read_wav_16k_mono(path: Path) -> np.ndarray:
    with wave.open(str(path)) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (16000, 1, 2)
        frames = f.readframes(f.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


# ------------------------------------------------------------------------- cheap import


def test_importing_the_model_layer_loads_no_torch(tmp_path):
    code = (
        "import sys, engine.models as m\n"
        "from engine.settings import load_settings\n"
        "s = load_settings(home=sys.argv[1], env={'SHOEBOX_CLIP_MODEL': 'test-tiny'})\n"
        "print(m.build_clip(s).identity, m.build_whisper(s).name)\n"
        "heavy = [n for n in ('torch', 'open_clip', 'whisper', 'PySide6') if n in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "library")], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "test-tiny (seed0, 64-d) base" in done.stdout


# ------------------------------------------------------------------------- CLIP test-tiny


def test_tiny_clip_embeds_images_and_texts_into_one_normalised_space(tiny_clip):
    assert tiny_clip.identity == ModelIdentity(TEST_TINY, "seed0", 64)
    images = tiny_clip.encode_images(sample_images())
    texts = tiny_clip.encode_texts(["a red bicycle", "", "a receipt from the dentist " * 30])
    for vectors, n in ((images, 5), (texts, 3)):
        assert vectors.shape == (n, tiny_clip.identity.dim)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Different inputs give different vectors (the weights are not degenerate).
    assert np.abs(images[0] - images[4]).max() > 1e-3
    assert np.abs(texts[0] - texts[2]).max() > 1e-3
    assert tiny_clip.encode_images([]).shape == (0, 64)
    assert tiny_clip.encode_texts([]).shape == (0, 64)


def test_tiny_clip_weights_are_a_real_checkpoint_file_in_the_cache(tiny_clip, tiny_home):
    checkpoint = tiny_home / "models" / "clip" / TEST_TINY / "seed0" / "open_clip_model.safetensors"
    assert tiny_clip.locate_weights() == checkpoint
    assert checkpoint.stat().st_size > 100_000


def test_tiny_models_give_the_same_results_in_another_process(tiny_clip, tiny_whisper, tmp_path):
    # The other process uses its own library, so it also regenerates the weights from the seed.
    code = (
        "import json, sys, wave\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from engine.models import build_clip, build_whisper\n"
        "from engine.settings import load_settings\n"
        "s = load_settings(home=sys.argv[1], env={'SHOEBOX_CLIP_MODEL': 'test-tiny',\n"
        "                                         'SHOEBOX_WHISPER_MODEL': 'test-tiny'})\n"
        "enc, asr = build_clip(s), build_whisper(s)\n"
        "g = np.add.outer(np.arange(96), np.arange(128)).astype(np.uint8)\n"
        "img = Image.fromarray(np.stack([g, g[::-1], 255 - g], axis=-1))\n"
        "with wave.open(sys.argv[2]) as f:\n"
        "    audio = np.frombuffer(f.readframes(f.getnframes()), dtype='<i2').astype(np.float32) / 32768\n"
        "t = asr.transcribe(audio)\n"
        "print(json.dumps({'image': enc.encode_images([img])[0].tolist(),\n"
        "                  'text': enc.encode_texts(['a red bicycle'])[0].tolist(),\n"
        "                  'path': str(enc.locate_weights()), 'whisper_path': str(asr.locate_weights()),\n"
        "                  'transcript': [t.language, [[x.start, x.end, x.text] for x in t.segments]]}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "other"), str(JFK_WAV)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert file_sha256(Path(other["path"])) == file_sha256(tiny_clip.locate_weights())
    assert file_sha256(Path(other["whisper_path"])) == file_sha256(tiny_whisper.locate_weights())
    here = tiny_whisper.transcribe(read_wav_16k_mono(JFK_WAV))
    assert other["transcript"] == [here.language, [[x.start, x.end, x.text] for x in here.segments]]
    np.testing.assert_allclose(other["image"], tiny_clip.encode_images(sample_images()[:1])[0], atol=1e-6)
    np.testing.assert_allclose(other["text"], tiny_clip.encode_texts(["a red bicycle"])[0], atol=1e-6)


def test_preprocess_is_thread_safe_and_batching_does_not_change_vectors(tiny_home):
    import torch

    # PyTorch's vectors do not depend on the batch; int8 ONNX ones do, slightly (test_clip_onnx.py).
    tiny_clip = ClipEncoder(make_settings(tiny_home, SHOEBOX_CLIP_RUNTIME="torch"))

    images = sample_images() * 3
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(tiny_clip.preprocess, images))
    sequential = [tiny_clip.preprocess(im) for im in images]
    assert all(torch.equal(a, b) for a, b in zip(threaded, sequential, strict=True))
    assert sequential[0].shape == (3, 64, 64)

    small_batches = ClipEncoder(make_settings(tiny_home, SHOEBOX_BATCH_SIZE="2", SHOEBOX_CLIP_RUNTIME="torch"))
    batch = torch.stack(sequential)
    np.testing.assert_allclose(
        small_batches.encode_image_tensors(batch), tiny_clip.encode_image_tensors(batch), atol=1e-5
    )
    texts = [f"photo number {i}" for i in range(7)]
    np.testing.assert_allclose(small_batches.encode_texts(texts), tiny_clip.encode_texts(texts), atol=1e-5)
    np.testing.assert_allclose(
        tiny_clip.encode_image_tensors(sequential[0]), tiny_clip.encode_image_tensors(batch[:1]), atol=1e-6
    )


def test_concurrent_first_use_loads_once(tiny_home, tiny_clip):
    encoder = build_clip(make_settings(tiny_home))
    texts = ["one", "two", "three", "four"]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda t: encoder.encode_texts([t]), texts))
    one_by_one = np.concatenate([tiny_clip.encode_texts([t]) for t in texts])
    np.testing.assert_allclose(np.concatenate(results), one_by_one, atol=1e-5)


def test_count_tokens_uses_the_clip_tokenizer_without_start_and_end(tiny_clip):
    assert tiny_clip.count_tokens("") == 0
    assert tiny_clip.count_tokens("a photo of a dog") == 5
    # Longer than the 77-token context: still counted in full, so chunkers see the overflow.
    assert tiny_clip.count_tokens("word " * 200) == 200


def test_count_tokens_asks_a_hugging_face_tokenizer_without_special_tokens(tiny_home, monkeypatch):
    class FakeHF:
        def __call__(self, text, add_special_tokens):
            assert add_special_tokens is False
            return {"input_ids": text.split()}

    class FakeOpenClipHFTokenizer:
        tokenizer = FakeHF()

    encoder = build_clip(make_settings(tiny_home))
    monkeypatch.setattr(encoder, "_tokenizer", FakeOpenClipHFTokenizer())
    monkeypatch.setattr(encoder, "_bpe", False)  # a model without CLIP's plain BPE tokenizer
    assert encoder.count_tokens("eins zwei drei") == 3


def test_a_model_with_an_uncached_hugging_face_tokenizer_says_so(tmp_path):
    encoder = build_clip(make_settings(tmp_path, SHOEBOX_CLIP_MODEL="xlm-roberta-base-ViT-B-32"))
    assert encoder.identity.dim == 512
    with pytest.raises(ModelUnavailableError, match="xlm-roberta-base"):
        encoder.count_tokens("안녕하세요")


def test_random_weights_are_for_benchmarks_only(tmp_path):
    settings = make_settings(tmp_path, SHOEBOX_CLIP_MODEL="ViT-B-32")
    encoder = ClipEncoder(settings, random_init=True)
    assert encoder.identity == ModelIdentity("ViT-B-32", "random-seed0", 512)
    assert encoder.locate_weights() is None
    text = ["same arithmetic as the real model"]
    vectors = encoder.encode_texts(text)
    assert vectors.shape == (1, 512)
    np.testing.assert_allclose(ClipEncoder(settings, random_init=True).encode_texts(text), vectors, atol=1e-6)
    with pytest.raises(UsageError, match="benchmarks"):
        build_clip(make_settings(tmp_path, SHOEBOX_CLIP_PRETRAINED="random"))


# ------------------------------------------------------------------------- Whisper test-tiny


def test_tiny_whisper_transcribes_a_real_recording_quickly(tiny_whisper):
    samples = read_wav_16k_mono(JFK_WAV)
    duration = len(samples) / 16000
    started = time.perf_counter()
    transcript = tiny_whisper.transcribe(samples)
    elapsed = time.perf_counter() - started
    assert isinstance(transcript, Transcript)
    assert isinstance(transcript.language, str) and transcript.language  # detected, whatever it is
    assert all(isinstance(s, Segment) for s in transcript.segments)
    for segment in transcript.segments:
        assert segment.text == segment.text.strip() and segment.text
        assert 0.0 <= segment.start <= segment.end <= duration
    assert elapsed < 10, f"test-tiny took {elapsed:.1f}s for {duration:.0f}s of audio"
    assert tiny_whisper.weights == "seed0"


def test_whisper_input_edge_cases(tiny_whisper):
    assert tiny_whisper.transcribe(np.zeros(0, dtype=np.float32)) == Transcript(None, [])
    with pytest.raises(UsageError, match="mono"):
        tiny_whisper.transcribe(np.zeros((2, 16000), dtype=np.float32))
    column = tiny_whisper.transcribe(np.zeros((8000, 1), dtype=np.float32))
    assert isinstance(column, Transcript)


def test_tiny_whisper_checkpoint_has_whispers_file_format(tiny_whisper, tiny_home):
    import torch

    path = tiny_whisper.locate_weights()
    assert path == tiny_home / "models" / "whisper" / "test-tiny.pt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"dims", "model_state_dict"}
    assert checkpoint["dims"]["n_audio_ctx"] == 1500 and checkpoint["dims"]["n_vocab"] == 51865


# ------------------------------------------------------------------------- resolution and messages


def test_missing_weights_offline_say_what_to_run(tmp_path):
    settings = load_settings(home=tmp_path, env={})
    clip = build_clip(settings)
    assert clip.identity == ModelIdentity("ViT-B-32", "laion2b_s34b_b79k", 512)
    with pytest.raises(ModelUnavailableError) as caught:
        clip.load()
    message = str(caught.value)
    assert "ViT-B-32 (laion2b_s34b_b79k) are not on this computer" in message
    assert "`shoebox models download clip`" in message
    assert "SHOEBOX_CLIP_WEIGHTS=" in message and "`shoebox models import FILE`" in message

    with pytest.raises(ModelUnavailableError, match=r"`shoebox models download whisper`.*SHOEBOX_WHISPER_WEIGHTS"):
        build_whisper(settings).load()
    with pytest.raises(ModelUnavailableError, match="SHOEBOX_ALLOW_DOWNLOAD=1"):
        download_model(settings, "clip")


def test_failed_download_is_a_clear_error_and_a_good_one_fills_the_cache(tmp_path, monkeypatch):
    import huggingface_hub

    settings = load_settings(home=tmp_path / "lib", env={"SHOEBOX_ALLOW_DOWNLOAD": "1"})

    def unreachable(repo_id, filename, **kwargs):
        raise OSError("Network is unreachable")

    # ViT-B-32 laion2b_s34b_b79k lives on the Hugging Face hub: its download is the hub's.
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(ModelUnavailableError, match=r"Could not download CLIP weights for ViT-B-32.*unreachable"):
        build_clip(settings).load()

    # A download that works lands in Shoebox's own cache and is found there from then on.
    source = write_tiny_clip_weights(tmp_path / "served" / "open_clip_model.safetensors", seed=4)
    asked: list[tuple[str, str]] = []

    def served(repo_id, filename, *, cache_dir, tqdm_class, **kwargs):
        asked.append((repo_id, filename))
        target = Path(cache_dir) / "snapshot" / filename
        target.parent.mkdir(parents=True)
        with tqdm_class(total=source.stat().st_size, unit="B") as bar:  # as huggingface_hub counts the bytes
            target.write_bytes(source.read_bytes())
            bar.update(source.stat().st_size)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", served)
    progress: list[tuple[int, int]] = []
    path = download_model(
        load_settings(home=tmp_path / "lib", env={}),
        "clip",
        "ViT-B-32:laion2b_s34b_b79k",
        force_allowed=True,
        on_progress=lambda done, total, _message: progress.append((done, total)),
    )
    assert asked == [("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors")]  # safetensors first
    assert (source.stat().st_size, source.stat().st_size) in progress
    assert path == tmp_path / "lib" / "models" / "clip" / "ViT-B-32" / "laion2b_s34b_b79k" / source.name
    assert [p.name for p in path.parent.parent.parent.iterdir()] == ["ViT-B-32"]  # staging folder removed
    assert build_clip(load_settings(home=tmp_path / "lib", env={})).locate_weights() == path


def test_the_caches_of_open_clip_and_whisper_are_used(tmp_path):
    # The layouts huggingface_hub and whisper.load_model leave behind.
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    hf_file = repo / "snapshots" / revision / "open_clip_model.safetensors"
    hf_file.parent.mkdir(parents=True)
    hf_file.write_bytes(b"weights")
    whisper_file = tmp_path / "xdg-cache" / "whisper" / "base.pt"
    whisper_file.parent.mkdir(parents=True)
    whisper_file.write_bytes(b"weights")

    settings = load_settings(home=tmp_path / "lib", env={})
    assert build_clip(settings).locate_weights() == hf_file
    assert build_whisper(settings).locate_weights() == whisper_file
    rows = {(r["kind"], r["name"], r["weights"]): r for r in list_models(settings)}
    assert rows[("clip", "ViT-B-32", "laion2b_s34b_b79k")]["source"] == "hf-cache"
    assert rows[("whisper", "base", "openai")]["source"] == "whisper-cache"


def test_explicit_weights_files_win_and_name_the_identity(tmp_path, tiny_home):
    elsewhere = write_tiny_clip_weights(tmp_path / "elsewhere" / "my clip.safetensors", seed=3)
    settings = make_settings(tiny_home, SHOEBOX_CLIP_WEIGHTS=str(elsewhere))
    encoder = build_clip(settings)
    assert encoder.identity == ModelIdentity(TEST_TINY, f"file:{file_sha256(elsewhere)[:12]}", 64)
    assert encoder.locate_weights() == elsewhere
    seeded = ClipEncoder(make_settings(tmp_path / "lib"), pretrained="seed3")
    np.testing.assert_allclose(
        encoder.encode_texts(["a red bicycle"]), seeded.encode_texts(["a red bicycle"]), atol=1e-6
    )

    whisper_file = write_tiny_whisper_weights(tmp_path / "elsewhere" / "w.pt", seed=1)
    transcriber = build_whisper(make_settings(tiny_home, SHOEBOX_WHISPER_WEIGHTS=str(whisper_file)))
    assert transcriber.locate_weights() == whisper_file
    assert transcriber.weights == f"file:{file_sha256(whisper_file)[:12]}"
    transcriber.load()

    with pytest.raises(ModelUnavailableError, match=r"SHOEBOX_CLIP_WEIGHTS is set to .*no file there"):
        build_clip(make_settings(tiny_home, SHOEBOX_CLIP_WEIGHTS=str(tmp_path / "nope.safetensors")))


def test_import_model_round_trip(tmp_path):
    import torch
    from safetensors.torch import load_file

    settings = make_settings(tmp_path / "lib")
    outside = write_tiny_clip_weights(tmp_path / "downloads" / "weights.safetensors", seed=5)
    sha = file_sha256(outside)

    cached = import_model(settings, outside)  # kind and architecture inferred from the tensors
    assert cached == settings.models_dir / "clip" / TEST_TINY / f"file-{sha[:12]}" / "open_clip_model.safetensors"
    assert file_sha256(cached) == sha
    assert import_model(settings, outside, kind="clip") == cached  # again: nothing changes

    imported = build_clip(make_settings(tmp_path / "lib", SHOEBOX_CLIP_PRETRAINED=f"file:{sha[:12]}"))
    assert imported.identity.weights == f"file:{sha[:12]}"
    assert imported.locate_weights() == cached
    direct = build_clip(make_settings(tmp_path / "other", SHOEBOX_CLIP_WEIGHTS=str(outside)))
    np.testing.assert_allclose(imported.encode_texts(["x"]), direct.encode_texts(["x"]), atol=1e-6)

    # A plain torch.save'd state dict, imported under an explicit tag, is read with weights_only.
    pt = tmp_path / "downloads" / "weights.pt"
    torch.save(load_file(str(outside)), pt)
    tagged = import_model(settings, pt, name=f"{TEST_TINY}:seed5")
    assert tagged == settings.models_dir / "clip" / TEST_TINY / "seed5" / "open_clip_pytorch_model.bin"
    np.testing.assert_allclose(
        ClipEncoder(settings, pretrained="seed5").encode_texts(["x"]), direct.encode_texts(["x"]), atol=1e-6
    )

    whisper_file = write_tiny_whisper_weights(tmp_path / "downloads" / "my-whisper.pt", seed=2)
    with pytest.raises(UsageError, match="--name"):
        import_model(settings, whisper_file)
    cached_whisper = import_model(settings, whisper_file, name="mytiny")
    assert cached_whisper == settings.models_dir / "whisper" / "mytiny.pt"
    build_whisper(make_settings(tmp_path / "lib", SHOEBOX_WHISPER_MODEL="mytiny")).load()

    with pytest.raises(UsageError, match="holds whisper weights, not clip"):
        import_model(settings, whisper_file, kind="clip")
    with pytest.raises(UsageError, match="There is no file"):
        import_model(settings, tmp_path / "missing.pt")


def test_a_corrupted_weights_file_is_named_in_the_error(tmp_path):
    settings = make_settings(tmp_path)
    checkpoint = build_clip(settings).locate_weights()  # generates the test-tiny file
    assert checkpoint is not None
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(ModelUnavailableError) as caught:
        build_clip(settings).load()
    assert str(checkpoint) in str(caught.value) and "damaged" in str(caught.value)
    assert "`shoebox models download clip`" in str(caught.value)

    whisper_file = build_whisper(settings).locate_weights()
    whisper_file.write_bytes(b"\x00not a checkpoint at all" * 100)
    with pytest.raises(ModelUnavailableError, match="damaged") as caught:
        build_whisper(settings).load()
    assert str(whisper_file) in str(caught.value)

    with pytest.raises(UsageError, match="is not a weights file"):
        import_model(settings, whisper_file)

    # `shoebox models download` on test-tiny regenerates it, which repairs the damage.
    assert download_model(settings, "clip", force_allowed=True) == checkpoint
    build_clip(settings).load()

    # A file that does not fit the named architecture is refused before it is loaded, under the person's own path.
    with pytest.raises(UsageError, match=r"does not hold weights for the CLIP model ViT-B-32: .* test-tiny") as refused:
        import_model(settings, checkpoint, name="ViT-B-32")
    assert str(checkpoint) in str(refused.value) and ".incoming" not in str(refused.value)
    assert not list((settings.models_dir / "clip" / "ViT-B-32").rglob("*.safetensors"))


class _Payload:
    """Pickles as a call to exec(): what a booby-trapped checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_weights_file_carrying_python_objects_is_refused(tmp_path):
    import torch

    from engine.models.tiny import TINY_WHISPER_DIMS

    marker = tmp_path / "code-ran"
    trapped_whisper = tmp_path / "trapped.pt"
    torch.save({"dims": TINY_WHISPER_DIMS, "model_state_dict": {}, "extra": _Payload(marker)}, trapped_whisper)
    trapped_clip = tmp_path / "trapped_clip.pt"
    torch.save({"visual.proj": torch.zeros(2, 2), "payload": _Payload(marker)}, trapped_clip)

    settings = make_settings(
        tmp_path / "lib", SHOEBOX_WHISPER_WEIGHTS=str(trapped_whisper), SHOEBOX_CLIP_WEIGHTS=str(trapped_clip)
    )
    with pytest.raises(ModelUnavailableError, match=r"Refused to load .*trapped\.pt.*weights_only"):
        build_whisper(settings).load()
    with pytest.raises(ModelUnavailableError, match=r"Refused to load .*trapped_clip\.pt"):
        build_clip(settings).load()
    with pytest.raises(ModelUnavailableError, match="Refused to load"):
        import_model(settings, trapped_whisper)
    assert not marker.exists()


def test_bad_names_list_valid_ones(tmp_path):
    with pytest.raises(UsageError, match=r"no CLIP model called 'ViT-B-33'.*ViT-B-32"):
        build_clip(make_settings(tmp_path, SHOEBOX_CLIP_MODEL="ViT-B-33"))
    with pytest.raises(UsageError, match=r"no Whisper model called 'bse'.*base"):
        build_whisper(make_settings(tmp_path, SHOEBOX_WHISPER_MODEL="bse"))
    wrong_tag = build_clip(make_settings(tmp_path, SHOEBOX_CLIP_MODEL="ViT-B-32", SHOEBOX_CLIP_PRETRAINED="laion9b"))
    with pytest.raises(UsageError, match=r"no CLIP weights tagged 'laion9b'.*laion2b_s34b_b79k"):
        wrong_tag.load()
    with pytest.raises(UsageError, match="clip or whisper"):
        download_model(make_settings(tmp_path), "llm", force_allowed=True)


def test_list_models_shows_what_is_here_and_what_is_selected(tmp_path):
    settings = make_settings(tmp_path)
    build_clip(settings).locate_weights()
    build_whisper(settings).locate_weights()
    rows = list_models(settings)
    assert all(set(r) == {"kind", "name", "weights", "present", "path", "size", "source", "selected"} for r in rows)
    by_key = {(r["kind"], r["name"], r["weights"]): r for r in rows}
    clip = by_key[("clip", TEST_TINY, "seed0")]
    assert clip["present"] and clip["selected"] and clip["size"] == Path(clip["path"]).stat().st_size
    whisper = by_key[("whisper", TEST_TINY, "seed0")]
    assert whisper["present"] and whisper["selected"] and whisper["source"] == "shoebox-cache"
    base = by_key[("whisper", "base", "openai")]
    assert not base["present"] and not base["selected"] and base["path"] is None
    assert [r["kind"] for r in rows if r["selected"]] == ["clip", "text", "whisper"]  # one selected row per kind

    default = {(r["kind"], r["name"], r["weights"]): r for r in list_models(load_settings(home=tmp_path, env={}))}
    assert not default[("clip", "ViT-B-32", "laion2b_s34b_b79k")]["present"]
    assert default[("clip", "ViT-B-32", "laion2b_s34b_b79k")]["selected"]
    assert default[("clip", TEST_TINY, "seed0")]["present"]  # still in the cache, just not selected


def test_device_and_threads(tmp_path):
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="SHOEBOX_DEVICE=cpu"):
            build_clip(make_settings(tmp_path, SHOEBOX_DEVICE="cuda")).load()
    before = torch.get_num_threads()
    try:
        configure_torch_threads(make_settings(tmp_path, SHOEBOX_THREADS="1"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
