"""The ``test-tiny`` models: the real CLIP, Whisper and BERT architectures, tiny and seeded.

Tests and demos need models that run the real open_clip / whisper / transformers code in
seconds and give the same numbers in every process.  The weights are generated once, from
a fixed seed, into the model cache as ordinary checkpoint files (a safetensors state dict
for CLIP, the ``{"dims", "model_state_dict"}`` file that whisper publishes for Whisper, a
complete sentence-transformers folder for the text model), and are then loaded through
exactly the code that loads real weights.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TypedDict

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
TINY_WHISPER_DIMS = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 64,
    "n_audio_head": 2,
    "n_audio_layer": 2,
    "n_vocab": 51865,
    "n_text_ctx": 448,
    "n_text_state": 64,
    "n_text_head": 2,
    "n_text_layer": 2,
}

# Random weights never emit an end-of-text token, so the decoder would run to its limit
# and the temperature fallback would retry five more times.  Eight tokens at
# temperature 0 keeps a 10 s clip at about a second while running the real decoder.
TINY_WHISPER_DECODE = {
    "temperature": 0.0,
    "sample_len": 8,
    "compression_ratio_threshold": None,
    "logprob_threshold": None,
    "condition_on_previous_text": False,
}

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


class _BertSize(TypedDict):
    """The size arguments of transformers' ``BertConfig``."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int


# The tiny text model is a BERT small enough to generate in well under a second, with the
# positions of a real one (512) so truncation and chunking behave as with real models.
TINY_TEXT_BERT: _BertSize = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
}
TINY_TEXT_MAX_SEQ_LENGTH = 256
TINY_TEXT_DIM = TINY_TEXT_BERT["hidden_size"]
# Special tokens come first, then one token per byte value: ids 5 .. 260.
_TINY_TEXT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _byte_symbols() -> list[str]:
    """One printable character per byte value, in byte order (the byte-level BPE alphabet).

    Byte-level tokenizers cannot keep raw bytes in a vocabulary of strings, so bytes that
    are not printable are shifted into unused code points above 255.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + shifted)
            shifted += 1
    return [symbols[byte] for byte in range(256)]


def tiny_text_tokenizer():
    """The test-tiny tokenizer: every UTF-8 byte of a text is one token, in ``[CLS] ... [SEP]``.

    A real ``tokenizers`` tokenizer (byte-level pre-tokenizer, a BPE model without merges),
    so the code that reads real tokenizer.json files reads this one too, and Korean or
    emoji cost several tokens per character, as they do with real vocabularies.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(_TINY_TEXT_SPECIALS)}
    vocab.update({symbol: len(_TINY_TEXT_SPECIALS) + byte for byte, symbol in enumerate(_byte_symbols())})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in _TINY_TEXT_SPECIALS])
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer


def write_tiny_text_model(folder: Path, seed: int) -> Path:
    """Generate the tiny text model from ``seed`` as a sentence-transformers folder at ``folder``.

    The folder holds what a real sentence-transformers model has: config.json and
    model.safetensors (a 2-layer, 32-wide BERT with seeded random weights), tokenizer.json
    with tokenizer_config.json and special_tokens_map.json, modules.json (Transformer,
    mean Pooling, Normalize), 1_Pooling/config.json and sentence_bert_config.json.  The
    same seed gives the same files byte for byte.  Written to a hidden sibling folder and
    renamed into place, so a reader (or a second process generating it at the same time)
    only ever sees a whole folder.  Returns ``folder``.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    tokenizer = tiny_text_tokenizer()
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), pad_token_id=0, **TINY_TEXT_BERT)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)  # with the pooler, as real BERT checkpoints have it
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    config_dict = config.to_dict()
    config_dict.pop("transformers_version", None)  # keeps the files the same under every transformers version
    config_dict["architectures"] = ["BertModel"]
    roles = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
    specials = dict(zip(roles, _TINY_TEXT_SPECIALS, strict=True))
    files = {
        "config.json": config_dict,
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": TINY_TEXT_BERT["max_position_embeddings"],
            "clean_up_tokenization_spaces": False,
            **specials,
        },
        "special_tokens_map.json": specials,
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "1_Pooling/config.json": {
            "word_embedding_dimension": TINY_TEXT_DIM,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
        "sentence_bert_config.json": {"max_seq_length": TINY_TEXT_MAX_SEQ_LENGTH, "do_lower_case": False},
        "config_sentence_transformers.json": {"prompts": {}, "default_prompt_name": None},
    }

    def write(tmp: Path) -> None:
        for name, content in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / "2_Normalize").mkdir()
        tokenizer.save(str(tmp / "tokenizer.json"))
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})

    _atomic_write_folder(Path(folder), write)
    return Path(folder)


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


def _atomic_write_folder(folder: Path, write) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".gen-{folder.name}-", dir=folder.parent))
    try:
        write(tmp)
        install_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install_folder(staged: Path, folder: Path) -> None:
    """Put the finished folder ``staged`` in place at ``folder`` (same file system), replacing what is there.

    Readers see the old folder or the new one, never a mix: a folder cannot be swapped
    over a non-empty one in one step, so the old one is first renamed aside.  When another
    process puts its own copy in place in between (two workers generating test-tiny at
    once), the rename fails and that copy is kept.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    old = None
    try:
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{folder.name}-", dir=folder.parent))
            os.replace(folder, old / folder.name)
        try:
            os.replace(staged, folder)
        except OSError:
            if folder.is_dir():
                return
            if old is not None:
                os.replace(old / folder.name, folder)  # put the previous copy back rather than lose it
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
