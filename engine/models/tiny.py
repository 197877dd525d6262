"""The ``test-tiny`` models: the real CLIP and Whisper architectures, tiny and seeded.

Tests and demos need models that run the real open_clip / whisper code in seconds and
give the same numbers in every process.  The weights are generated once, from a fixed
seed, into the model cache as ordinary checkpoint files (a safetensors state dict for
CLIP, the ``{"dims", "model_state_dict"}`` file that whisper publishes for Whisper), and
are then loaded through exactly the code that loads real weight files.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
from pathlib import Path

TEST_TINY = "test-tiny"

# The open_clip architecture config of the tiny CLIP, registered with
# ``open_clip.add_model_config``.  It keeps the standard CLIP tokenizer (vocabulary
# 49408, context 77) so token counting and chunking behave as with ViT-B-32.
TINY_CLIP_CONFIG = Path(__file__).with_name("configs") / f"{TEST_TINY}.json"

# ``shapes-clip``: a small CLIP (a tiny ResNet image tower, the standard tokenizer) whose
# weights ``scripts/shapes_clip.py`` trains on generated pictures of coloured shapes.  It
# has no seeded or published weights: it is loaded from an explicit file
# (SHOEBOX_CLIP_WEIGHTS), like any weights a person brings.
SHAPES_CLIP = "shapes-clip"
SHAPES_CLIP_CONFIG = TINY_CLIP_CONFIG.with_name(f"{SHAPES_CLIP}.json")

# Architecture configs that ship with Shoebox rather than with open_clip.
LOCAL_CLIP_CONFIGS = {TEST_TINY: TINY_CLIP_CONFIG, SHAPES_CLIP: SHAPES_CLIP_CONFIG}

# n_mels, n_audio_ctx and n_vocab must stay those of the real multilingual models:
# the mel front end, the 30 s window and the tokenizer (language detection included)
# are fixed by them.  Only the widths and depths shrink.
TINY_WHISPER_DIMS = dict(
    n_mels=80,
    n_audio_ctx=1500,
    n_audio_state=64,
    n_audio_head=2,
    n_audio_layer=2,
    n_vocab=51865,
    n_text_ctx=448,
    n_text_state=64,
    n_text_head=2,
    n_text_layer=2,
)

# Random weights never emit an end-of-text token, so the decoder would run to its limit
# and the temperature fallback would retry five more times.  Eight tokens at
# temperature 0 keeps a 10 s clip at about a second while running the real decoder.
TINY_WHISPER_DECODE = dict(
    temperature=0.0,
    sample_len=8,
    compression_ratio_threshold=None,
    logprob_threshold=None,
    condition_on_previous_text=False,
)

DEFAULT_TINY_TAG = "seed0"
_SEED_TAG = re.compile(r"^seed(\d{1,9})$")


def tiny_seed(tag: str) -> int | None:
    """The seed named by a ``seed<N>`` tag, or None when the tag is not one."""
    match = _SEED_TAG.match(tag)
    return int(match.group(1)) if match else None


def write_tiny_clip_weights(path: Path, seed: int) -> Path:
    """Generate the tiny CLIP's weights from ``seed`` and save them at ``path`` (safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    register_tiny_clip_config()
    # fork_rng: seeding must not disturb the caller's random stream.
    with torch.random.fork_rng(devices=[]), quiet_random_init_warning():
        torch.manual_seed(seed)
        model = open_clip.create_model(TEST_TINY, pretrained=None, device="cpu")
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    _atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"shoebox": f"{TEST_TINY} seed {seed}"}))
    return path


def write_tiny_whisper_weights(path: Path, seed: int) -> Path:
    """Generate the tiny Whisper's weights from ``seed`` and save them at ``path`` (whisper's .pt format)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Whisper(ModelDimensions(**TINY_WHISPER_DIMS))
        # whisper allocates the decoder's positional embedding with torch.empty (real
        # checkpoints overwrite it), so without this it would hold whatever was in memory.
        torch.nn.init.normal_(model.decoder.positional_embedding, std=0.01)
    checkpoint = {"dims": dict(TINY_WHISPER_DIMS), "model_state_dict": model.state_dict()}
    # Saved through a buffer: torch.save names the archive's root folder after the file,
    # and the temporary file's random name would make every generated file differ.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    _atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    return path


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


@contextlib.contextmanager
def quiet_random_init_warning():
    """Silence open_clip's "initialized randomly" warning where random weights are the point."""
    # open_clip logs it on the root logger; the filter is removed again on the way out.
    flt = _DropRandomInitWarning()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


_registered = False


def register_tiny_clip_config() -> None:
    """Make ``test-tiny`` and ``shapes-clip`` known to open_clip (once per process)."""
    global _registered
    if _registered:
        return
    import open_clip

    for config in LOCAL_CLIP_CONFIGS.values():
        open_clip.add_model_config(config)
    _registered = True


def _atomic_write(path: Path, write) -> None:
    # Two processes may generate the same file at once (parallel test workers); each
    # writes its own temporary file and the rename makes a reader see a whole file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gen-", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
