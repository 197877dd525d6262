"""Spoken test recordings with known words and times, and the word error rate of a transcript.

The recording is made by espeak-ng one sentence at a time and joined with short pauses,
so the second at which each sentence starts is known exactly (from the samples, not
from a recogniser).  A missing espeak-ng fails the test (see :func:`tests.media.speak`).
"""

from __future__ import annotations

import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import regex

from tests.media import speak

RATE = 16_000
PAUSE_S = 0.5

# About a minute of a club meeting: plain sentences, names of things, a few numbers in words.
MEETING = (
    "Good morning, and welcome to the monthly meeting of the garden club.",
    "Today we will talk about planting tomatoes, watering in dry weather, and keeping slugs away.",
    "First, the treasurer will read the accounts for the last three months.",
    "We spent most of the money on new tools, seeds and a wooden shed.",
    "The shed was built by volunteers over two weekends in April.",
    "Next, a few words about the summer fair, which is planned for the last Saturday in July.",
    "We need people to bake cakes, sell plants and look after the car park.",
    "Please write your name on the list by the door if you can help.",
    "Now for the main talk of the evening.",
    "The lighthouse keeper repaired the broken lamp just before the storm arrived.",
    "That old story reminds us that small repairs made early can save a whole season.",
    "Check your fences and greenhouse glass before the winter winds come.",
    "Thank you all for coming, and see you again next month.",
)


@dataclass
class SpokenRecording:
    """A WAV file (16 kHz mono) of ``sentences`` spoken in order; ``starts`` the second each one begins."""

    path: Path
    sentences: tuple[str, ...]
    starts: list[float]
    duration: float

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def spoken_recording(dest: Path, sentences: tuple[str, ...] = MEETING) -> SpokenRecording:
    """Speak ``sentences`` with espeak-ng, one after another with a pause, into the WAV file ``dest``."""
    from engine.extractors.audio import decode_audio

    pause = np.zeros(int(PAUSE_S * RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    starts: list[float] = []
    done = 0
    with tempfile.TemporaryDirectory() as folder:
        for i, sentence in enumerate(sentences):
            samples = decode_audio(speak(sentence, Path(folder) / f"{i}.wav")).samples
            starts.append(done / RATE)
            pieces += [samples, pause]
            done += samples.size + pause.size
    audio = np.concatenate(pieces)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return SpokenRecording(dest, sentences, starts, audio.size / RATE)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what the word error rate compares."""
    return regex.findall(r"[\p{L}\p{N}']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / words in ``reference``: the word-level edit distance."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return float(bool(hyp))
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (r != h))
    return row[len(hyp)] / len(ref)
