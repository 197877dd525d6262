"""Sentence embeddings: document passages and transcript segments, searched by meaning.

Any sentence-transformers model folder works (intfloat/multilingual-e5-small by default,
all-MiniLM-L6-v2, bge, ...): the folder's JSON files say how to pool the token vectors and
which Dense and Normalize modules follow, and the network itself is loaded with
``transformers``.  sentence-transformers is not needed.

The tokenizer is the folder's ``tokenizer.json`` read with the ``tokenizers`` library, the
same file transformers' fast tokenizer reads.  Using it directly keeps :meth:`count_tokens`
free of torch (a chunker calls it for every word while the models still load) and makes
the counts agree exactly with what the model is given.  Nothing here imports torch or
transformers at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelUnavailableError
from ..settings import Settings
from .clip import ModelIdentity
from .runtime import configure_torch_threads, torch_device
from .text_onnx import NumpyDense
from .tiny import TEST_TINY, TINY_TEXT_DIM
from .weights import (
    canonical_text_name,
    file_sha256,
    load_weights_file,
    locate_text_model,
    module_kind,
    text_folder_name,
    text_folder_problems,
    text_incomplete_message,
    text_modules,
    text_setting_folder,
    text_transformer_dir,
    text_weights_file,
    weights_error,
)

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

    from .text_onnx import OnnxText

log = logging.getLogger(__name__)

# Prefixes the model families were trained with, for folders whose
# config_sentence_transformers.json does not name its prompts.  Without them e5 models
# rank noticeably worse; the instruct variants want a task description instead.
_E5 = re.compile(r"(^|[/:_-])e5([_-]|$)")
_BGE_EN_V15 = re.compile(r"(^|[/:])bge-(small|base|large)-en-v1\.5$")
_BGE_QUERY = "Represent this sentence for searching relevant passages: "

# sentence-transformers' pooling modes, in the order it concatenates them.
_POOLING_FLAGS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
_POOLING_NAMES = {
    "cls": "cls",
    "max": "max",
    "mean": "mean",
    "mean_sqrt_len_tokens": "mean_sqrt_len",
    "weightedmean": "weightedmean",
    "lasttoken": "lasttoken",
}

# Models whose position ids start after the padding index (fairseq's convention), so two
# of their max_position_embeddings can never be used by tokens.
_OFFSET_POSITIONS = {
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "longformer",
    "mpnet",
    "data2vec-text",
    "roberta-prelayernorm",
    "xmod",
}

# Activations a Dense module may name (torch.nn class names).
_ACTIVATIONS = ("Identity", "Tanh", "ReLU", "GELU", "Sigmoid", "SiLU")

# count_tokens is called for every word of every document; words repeat a lot.
_COUNT_CACHE_CHARS = 64


def family_prefixes(name: str) -> tuple[str, str]:
    """(query prefix, passage prefix) a model family expects, by its name; ``("", "")`` when none is known."""
    lowered = name.lower()
    if _E5.search(lowered) and "instruct" not in lowered:
        return "query: ", "passage: "
    if _BGE_EN_V15.search(lowered):
        return _BGE_QUERY, ""
    return "", ""


@dataclass(frozen=True)
class _Layout:
    """What a model folder's JSON files say; read without torch."""

    folder: Path
    transformer: Path  # the folder with config.json, weights and tokenizer
    config: dict
    pooling: tuple[str, ...]
    include_prompt: bool
    dense: tuple[Path, ...]
    max_seq_length: int | None
    lowercase: bool
    prompts: dict
    dim: int


def _read_json(path: Path, folder: Path, fix: str) -> dict:
    """The JSON object in ``path`` ({} when the file is absent); damage is a :class:`ModelUnavailableError`."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"The text model folder {folder} has an unreadable {path.relative_to(folder)} ({exc}). {fix}"
        ) from exc
    if not isinstance(content, dict):
        raise ModelUnavailableError(
            f"The text model folder {folder} has a damaged {path.relative_to(folder)} (not a JSON object). {fix}"
        )
    return content


def _pooling_modes(cfg: dict) -> tuple[str, ...]:
    modes = tuple(mode for key, mode in _POOLING_FLAGS if cfg.get(key))
    if not modes and isinstance(cfg.get("pooling_mode"), str):
        named = _POOLING_NAMES.get(cfg["pooling_mode"])
        modes = (named,) if named else ()
    return modes


def read_layout(folder: Path, fix: str) -> _Layout:
    """Read a sentence-transformers (or plain transformers) folder's description.

    Raises :class:`ModelUnavailableError` naming the folder when pieces are missing, the
    JSON is damaged, or the folder uses a module Shoebox cannot run.
    """
    problems = text_folder_problems(folder)
    if problems:
        raise ModelUnavailableError(text_incomplete_message(folder, problems, fix))
    transformer = text_transformer_dir(folder)
    config = _read_json(transformer / "config.json", folder, fix)
    if config.get("auto_map"):
        raise ModelUnavailableError(
            f"The text model in {folder} needs program code from its publisher to run (its config.json has "
            f"an auto_map), and Shoebox does not run downloaded code. Choose another model with SHOEBOX_TEXT_MODEL."
        )
    st_config = _read_json(transformer / "sentence_bert_config.json", folder, fix)
    prompts_file = _read_json(folder / "config_sentence_transformers.json", folder, fix)
    modules = text_modules(folder)
    pooling: tuple[str, ...] = ()
    include_prompt = True
    dense: list[Path] = []
    pooled_width = None
    if modules is None:
        pooling = ("mean",)  # what sentence-transformers does with a plain transformers model
    else:
        for entry in modules:
            kind = module_kind(entry)
            sub = folder / str(entry.get("path") or "")
            if kind == "Pooling":
                cfg = _read_json(sub / "config.json", folder, fix)
                pooling = _pooling_modes(cfg)
                include_prompt = bool(cfg.get("include_prompt", True))
                pooled_width = cfg.get("word_embedding_dimension")
            elif kind == "Dense":
                dense.append(sub)
            elif kind not in ("Transformer", "Normalize"):
                raise ModelUnavailableError(
                    f"The text model in {folder} uses a sentence-transformers module Shoebox cannot run "
                    f"({entry.get('type')}). Choose another model with SHOEBOX_TEXT_MODEL."
                )
        if not pooling:
            raise ModelUnavailableError(
                f"The text model in {folder} does not say how to pool token vectors into one vector "
                f"(no pooling mode Shoebox knows in its modules.json / Pooling config.json). "
                f"Choose a sentence-embedding model with SHOEBOX_TEXT_MODEL."
            )
    hidden = pooled_width or config.get("hidden_size") or config.get("d_model") or config.get("dim")
    dim = int(hidden or 0) * len(pooling)
    if dense:
        dense_cfg = _read_json(dense[-1] / "config.json", folder, fix)
        dim = int(dense_cfg.get("out_features") or 0)
    if dim <= 0:
        raise ModelUnavailableError(f"Cannot tell the embedding width of the text model in {folder}. {fix}")
    prompts = prompts_file.get("prompts")
    if not isinstance(prompts, dict):
        prompts = {}
    max_seq = st_config.get("max_seq_length")
    return _Layout(
        folder=folder,
        transformer=transformer,
        config=config,
        pooling=pooling,
        include_prompt=include_prompt,
        dense=tuple(dense),
        max_seq_length=int(max_seq) if isinstance(max_seq, int) and max_seq > 0 else None,
        lowercase=bool(st_config.get("do_lower_case")),
        prompts=prompts,
        dim=dim,
    )


def _position_limit(config: dict) -> int | None:
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    if not isinstance(positions, int) or positions <= 0:
        return None
    if config.get("model_type") in _OFFSET_POSITIONS:
        positions -= int(config.get("pad_token_id") or 1) + 1
    return positions


class _Dense:
    """A sentence-transformers Dense module: activation(x @ W.T + b)."""

    def __init__(self, folder: Path, device: torch.device | str, fix: str) -> None:
        import torch

        cfg = _read_json(folder / "config.json", folder.parent, fix)
        name = str(cfg.get("activation_function") or "torch.nn.modules.linear.Identity").rsplit(".", 1)[-1]
        if name not in _ACTIVATIONS:
            raise ModelUnavailableError(
                f"The dense layer in {folder} uses the activation {name}, which Shoebox does not know. "
                f"Choose another model with SHOEBOX_TEXT_MODEL."
            )
        path = _dense_weights_file(folder)
        state = load_weights_file(path, what="dense layer weights", fix=fix)
        try:
            self.weight = state["linear.weight"].float().to(device)
            bias = state.get("linear.bias")
            self.bias = bias.float().to(device) if bias is not None else None
        except (KeyError, AttributeError) as exc:
            raise ModelUnavailableError(f"{path} does not hold a dense layer ({exc}). {fix}") from exc
        self.activation_name = name
        self.activation = getattr(torch.nn, name)()

    def as_numpy(self) -> NumpyDense:
        """The same layer in numpy, for the ONNX Runtime path."""
        bias = None if self.bias is None else self.bias.cpu().numpy()
        return NumpyDense(self.weight.cpu().numpy(), bias, self.activation_name)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return self.activation(F.linear(x, self.weight, self.bias))


def _dense_weights_file(folder: Path) -> Path:
    path = folder / "model.safetensors"
    return path if path.is_file() else folder / "pytorch_model.bin"


def _weights_file(layout: _Layout) -> Path:
    """The folder's main weights file, which :func:`read_layout` has checked is there."""
    weights = text_weights_file(layout.folder)
    assert weights is not None, f"{layout.folder} has no weights file"
    return weights


def _pool(hidden: torch.Tensor, mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """Pool (n, tokens, width) token vectors into (n, width * len(modes)); padding never counts."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[:, 0])
        elif mode == "max":
            out.append(hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min).max(dim=1).values)
        elif mode == "mean":
            out.append((hidden * weights).sum(dim=1) / counts)
        elif mode == "mean_sqrt_len":
            out.append((hidden * weights).sum(dim=1) / counts.sqrt())
        elif mode == "weightedmean":
            ramp = weights * (positions + 1).to(hidden.dtype).view(1, -1, 1)
            out.append((hidden * ramp).sum(dim=1) / ramp.sum(dim=1).clamp(min=1e-9))
        elif mode == "lasttoken":
            # The last position the mask keeps, whichever side was padded.
            last = (mask.to(torch.long) * (positions + 1)).argmax(dim=1)
            out.append(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
    return torch.cat(out, dim=-1)


class TextEncoder:
    """A sentence-embedding model that turns queries and passages into L2-normalised float32 vectors.

    Cheap to build: nothing is read until needed.  :attr:`identity` and :attr:`dim` need the
    model folder located (reading its JSON files, hashing its weights once), :meth:`count_tokens`
    its tokenizer, and encoding loads the weights (once, under a lock).  Build the configured
    one with :func:`build_text_encoder`; ``folder`` (with an optional ``name``) builds one for
    a given model folder, as ``shoebox models import`` does to check a folder.

    Raises :class:`UsageError` for a model name that cannot be one, and
    :class:`ModelUnavailableError` when SHOEBOX_TEXT_MODEL names a folder that is not there.
    """

    def __init__(self, settings: Settings, *, name: str | None = None, folder: str | Path | None = None) -> None:
        self.settings = settings
        # Checked now (a stat), so a wrong SHOEBOX_TEXT_MODEL folder is reported at start-up.
        explicit = Path(folder).resolve() if folder is not None else text_setting_folder(name or settings.text_model)
        self._explicit = explicit
        if explicit is None:
            self.name = canonical_text_name(name or settings.text_model)
            family = self.name
        else:
            known = canonical_text_name(name) if name and folder is not None else text_folder_name(explicit, settings)
            self.name = known or f"folder:{explicit.name}"
            family = known or explicit.name
        self._family = family
        self._folder: Path | None = None
        self._layout: _Layout | None = None
        self._identity: ModelIdentity | None = None
        self._counter: Tokenizer | None = None
        self._batcher: Tokenizer | None = None
        self._model: Any = None  # a transformers model once loaded, whichever class the folder names
        self._dense: list[_Dense] = []
        self._device: torch.device | str = "cpu"
        self._onnx: OnnxText | None = None
        self._runtime: str | None = None
        self.runtime_note = ""
        self._locate_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._count_cached = lru_cache(maxsize=1 << 16)(self._count)

    # -- where the model is

    @property
    def _fix(self) -> str:
        if self._explicit is not None:
            return "Point SHOEBOX_TEXT_MODEL at a complete sentence-transformers model folder."
        return (
            "Run `shoebox models download text` to fetch it again, "
            "or `shoebox models import FOLDER --kind text` with an intact copy."
        )

    def locate(self) -> Path:
        """The model folder :meth:`load` reads, without loading it.

        Follows the resolution order (SHOEBOX_TEXT_MODEL folder, Shoebox's cache, the
        Hugging Face cache, a download when allowed) and may therefore download, or generate
        test-tiny.  Raises :class:`ModelUnavailableError` saying what to do when the model
        is missing, or naming the folder and what it lacks when it is incomplete.
        """
        if self._folder is None:
            with self._locate_lock:
                if self._folder is None:
                    if self._explicit is not None:
                        problems = text_folder_problems(self._explicit)
                        if problems:
                            raise ModelUnavailableError(text_incomplete_message(self._explicit, problems, self._fix))
                        self._folder = self._explicit
                    else:
                        self._folder = locate_text_model(self.settings, self.name).path
        return self._folder

    def _get_layout(self) -> _Layout:
        if self._layout is None:
            layout = read_layout(self.locate(), self._fix)
            self._layout = layout
        return self._layout

    @property
    def _is_tiny(self) -> bool:
        return self._explicit is None and self.name == TEST_TINY

    @property
    def identity(self) -> ModelIdentity:
        """Name, weights (``sha256:<16 hex>`` of the weights file, ``seed0`` for test-tiny) and width.

        Locates the folder (see :meth:`locate`) and hashes the weights once; loads no torch.
        """
        if self._identity is None:
            if self._is_tiny:
                self._identity = ModelIdentity(TEST_TINY, "seed0", TINY_TEXT_DIM)
            else:
                layout = self._get_layout()
                sha = file_sha256(_weights_file(layout), self.settings)
                self._identity = ModelIdentity(self.name, f"sha256:{sha[:16]}", layout.dim)
        return self._identity

    @property
    def dim(self) -> int:
        """The embedding width."""
        return TINY_TEXT_DIM if self._is_tiny else self._get_layout().dim

    @property
    def loaded(self) -> bool:
        return self._model is not None or self._onnx is not None

    @property
    def runtime(self) -> str | None:
        """What runs the network once loaded: ``"onnx-int8"``, ``"onnx-fp32"`` or ``"torch"``; None before :meth:`load`."""
        return self._runtime

    # -- prefixes

    @property
    def query_prefix(self) -> str:
        """Text put before every query: the folder's ``query`` prompt, or its family's (``"query: "`` for e5)."""
        return self._prefixes()[0]

    @property
    def passage_prefix(self) -> str:
        """Text put before every passage: the folder's ``passage``/``document`` prompt, or its family's."""
        return self._prefixes()[1]

    def _prefixes(self) -> tuple[str, str]:
        prompts = self._get_layout().prompts
        if any(key in prompts for key in ("query", "passage", "document")):
            return str(prompts.get("query") or ""), str(prompts.get("passage") or prompts.get("document") or "")
        return family_prefixes(self._family)

    # -- tokens

    def _tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        if self._batcher is None:
            with self._tokenizer_lock:
                if self._batcher is None:
                    self._counter, self._batcher = self._build_tokenizers()
        # Set together (the counter first), so a batcher means a counter too.
        assert self._counter is not None
        return self._counter, self._batcher

    def _build_tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        from tokenizers import Tokenizer

        layout = self._get_layout()
        path = layout.transformer / "tokenizer.json"
        try:
            if path.is_file():
                counter = Tokenizer.from_file(str(path))
            else:
                counter = self._convert_slow_tokenizer(layout)
        except ModelUnavailableError:
            raise
        except Exception as exc:  # any reader error means the file is not a usable tokenizer
            raise ModelUnavailableError(
                f"The tokenizer of the text model in {layout.transformer} cannot be read ({exc}). {self._fix}"
            ) from exc
        # Two copies, each configured once and then only read, so threads can share them:
        # counting sees whole texts, batching truncates at the model's limit and pads.
        counter.no_truncation()
        counter.no_padding()
        batcher = Tokenizer.from_str(counter.to_str())
        batcher.enable_truncation(max_length=self._token_limit(layout, counter))
        pad_id, pad_token = self._pad(layout, counter)
        batcher.enable_padding(pad_id=pad_id, pad_token=pad_token)
        return counter, batcher

    def _convert_slow_tokenizer(self, layout: _Layout) -> Tokenizer:
        # Folders without tokenizer.json (vocab.txt or sentencepiece only) are converted by
        # transformers, which imports torch; `shoebox models import` stores the result.
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(
                str(layout.transformer), local_files_only=True, trust_remote_code=False, use_fast=True
            )
        except ImportError as exc:
            raise ModelUnavailableError(
                f"Reading the tokenizer in {layout.transformer} needs the Python package {exc.name!r} "
                f"(`pip install {exc.name}`), or a copy of the model that has a tokenizer.json."
            ) from exc
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ModelUnavailableError(
                f"The tokenizer in {layout.transformer} cannot be converted to a fast tokenizer; "
                f"use a copy of the model that has a tokenizer.json."
            )
        return backend

    def _token_limit(self, layout: _Layout, counter: Tokenizer) -> int:
        limits = [n for n in (layout.max_seq_length, _position_limit(layout.config)) if n]
        if not limits or layout.max_seq_length is None:
            # Without sentence_bert_config.json sentence-transformers also honours the tokenizer's limit.
            tok_cfg = _read_json(layout.transformer / "tokenizer_config.json", layout.folder, self._fix)
            model_max = tok_cfg.get("model_max_length")
            if isinstance(model_max, int) and 0 < model_max < 1_000_000:
                limits.append(model_max)
        return min(limits) if limits else 512

    def _pad(self, layout: _Layout, counter: Tokenizer) -> tuple[int, str]:
        tok_cfg = _read_json(layout.transformer / "tokenizer_config.json", layout.folder, self._fix)
        candidates = [tok_cfg.get("pad_token"), "[PAD]", "<pad>", "<|endoftext|>"]
        for token in candidates:
            if isinstance(token, dict):
                token = token.get("content")
            if isinstance(token, str):
                token_id = counter.token_to_id(token)
                if token_id is not None:
                    return token_id, token
        pad_id = layout.config.get("pad_token_id")
        return (int(pad_id) if isinstance(pad_id, int) else 0), "[PAD]"

    def _prepare(self, text: str) -> str:
        return text.lower() if self._get_layout().lowercase else text

    def _count(self, text: str) -> int:
        counter, _ = self._tokenizers()
        return len(counter.encode(self._prepare(text), add_special_tokens=False).ids)

    def count_tokens(self, text: str) -> int:
        """Tokens the model's tokenizer makes of ``text``, without special tokens or prefix.

        Counts beyond the model's limit too, so chunkers can tell how much would be cut.
        Thread-safe; does not import torch (except to generate test-tiny on its first use,
        or to convert a folder that has no tokenizer.json).  Raises
        :class:`ModelUnavailableError` when the model folder or its tokenizer is missing.
        """
        if len(text) <= _COUNT_CACHE_CHARS:
            return self._count_cached(text)
        return self._count(text)

    @property
    def max_tokens(self) -> int:
        """The most content tokens one passage may have before the model cuts it.

        min(max_seq_length, the model's positions), less the special tokens and the passage
        prefix.  Needs the tokenizer, as :meth:`count_tokens` does.
        """
        counter, batcher = self._tokenizers()
        truncation = batcher.truncation
        assert truncation is not None  # _build_tokenizers enables it on the batcher
        limit = truncation["max_length"]
        specials = counter.post_processor.num_special_tokens_to_add(False) if counter.post_processor else 0
        prefix = self.passage_prefix
        prefix_tokens = len(counter.encode(self._prepare(prefix), add_special_tokens=False).ids) if prefix else 0
        return max(1, limit - specials - prefix_tokens)

    # -- the model

    def load(self) -> None:
        """Load the model (once; later calls return at once).

        On a CPU (``SHOEBOX_TEXT_RUNTIME=auto`` or ``onnx``) the network runs on ONNX Runtime
        with int8 weights, exported once and cached (see :mod:`engine.models.text_onnx`); a
        cached export opens without importing torch or transformers.  Any failure of ONNX
        (onnxruntime missing, an export error, vectors that do not match PyTorch's) falls back
        to PyTorch on ``settings.device`` and is explained in :attr:`runtime_note`.

        Raises :class:`ModelUnavailableError` (model missing, incomplete, damaged, or
        carrying Python objects in pickled weights) or :class:`UsageError` (device not available).
        """
        if self.loaded:
            return
        with self._load_lock:
            if self.loaded:
                return
            layout = self._get_layout()
            self._tokenizers()  # a missing tokenizer is reported before the weights are read
            wanted, note = self._wanted_runtime()
            model, dense = None, None
            if wanted == "onnx":
                onnx, model, dense, note = self._load_onnx(layout)
                if onnx is not None:
                    self._onnx, self._runtime, self.runtime_note = onnx, onnx.label, note
                    if note:
                        log.warning("The text model on ONNX Runtime: %s", note)
                    return
            device = torch_device(self.settings)
            configure_torch_threads(self.settings)
            if model is None or dense is None:  # with ONNX tried, they are on the CPU: the only device it runs beside
                model = self._load_transformer(layout, device)
                dense = [_Dense(sub, device, self._fix) for sub in layout.dense]
            self._dense = dense
            self._device = device
            self._runtime, self.runtime_note = "torch", note
            self._model = model
            if note:
                log.warning("%s", note)

    def _wanted_runtime(self) -> tuple[str, str]:
        setting = self.settings.text_runtime
        if setting == "torch":
            return "torch", ""
        if self.settings.device != "cpu":
            if setting == "onnx":
                return "torch", (
                    f"The text model runs on PyTorch: SHOEBOX_TEXT_RUNTIME=onnx runs on the CPU only, "
                    f"and SHOEBOX_DEVICE is {self.settings.device}."
                )
            return "torch", ""
        return "onnx", ""

    def _weights_key(self, layout: _Layout) -> str:
        """The sha256 of the network's weights and of any Dense layer's (each hashed once per file version)."""
        shas = [file_sha256(_weights_file(layout), self.settings)]
        shas += [file_sha256(_dense_weights_file(sub), self.settings) for sub in layout.dense]
        return shas[0] if len(shas) == 1 else hashlib.sha256(" ".join(shas).encode()).hexdigest()

    def _load_onnx(self, layout: _Layout) -> tuple[OnnxText | None, Any, list[_Dense] | None, str]:
        """(the ONNX network or None, the PyTorch model and Dense layers when they had to be loaded, a note)."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None, None, None, "The text model runs on PyTorch: the Python package onnxruntime is not installed."
        from . import text_onnx

        folder = text_onnx.cache_dir(self.settings, self.name, self._weights_key(layout))  # weights errors propagate
        cached = text_onnx.open_cached(folder, self.settings)
        if cached is not None:
            return cached, None, None, text_onnx.read_note(folder)
        configure_torch_threads(self.settings)
        model = self._load_transformer(layout, "cpu")
        dense = [_Dense(sub, "cpu", self._fix) for sub in layout.dense]
        try:
            inputs = ("input_ids", "attention_mask") + (("token_type_ids",) if _takes_token_types(model) else ())
            texts, prefix = list(text_onnx.PROBE_TEXTS), self.passage_prefix
            reference = np.concatenate(
                [self._vectors_torch(model, dense, feeds, mask, "cpu") for feeds, mask in self._batches(texts, prefix)]
            )
            sample, _ = next(self._batches(texts[:2], prefix))
            onnx, note = text_onnx.build(
                model,
                folder,
                self.settings,
                inputs=inputs,
                sample=sample,
                dense=[layer.as_numpy() for layer in dense],
                reference=reference,
                embed=lambda candidate: self._encode_onnx(candidate, texts, prefix),
            )
        except text_onnx.OnnxUnavailable as exc:
            return None, model, dense, f"The text model runs on PyTorch: {exc}."
        except Exception as exc:  # ONNX is an optimisation: whatever breaks it, PyTorch still works
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            return (
                None,
                model,
                dense,
                f"The text model runs on PyTorch: preparing it for ONNX Runtime failed ({reason}).",
            )
        return onnx, None, None, note

    def _load_transformer(self, layout: _Layout, device: torch.device | str):
        from transformers import AutoModel, PreTrainedModel

        weights = _weights_file(layout)
        label = f"text model {self.name}"
        kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
        if weights.name.startswith("model.safetensors"):
            kwargs["use_safetensors"] = True
        elif "weights_only" in inspect.signature(PreTrainedModel.from_pretrained).parameters:
            kwargs.update(use_safetensors=False, weights_only=True)
        else:
            # This transformers cannot promise weights_only, and a pickle may run code when read.
            raise ModelUnavailableError(
                f"Refused to load {weights}: it is a pickled PyTorch file and this version of transformers "
                f"cannot load it safely. Use a copy of the model with model.safetensors, or upgrade transformers."
            )
        try:
            with _quiet_transformers():
                model, info = AutoModel.from_pretrained(str(layout.transformer), output_loading_info=True, **kwargs)
        except ImportError as exc:
            raise ModelUnavailableError(
                f"The {label} needs the Python package {exc.name!r}, which is not installed "
                f"(`pip install {exc.name}`), or choose another model with SHOEBOX_TEXT_MODEL."
            ) from exc
        except Exception as exc:  # any reader or shape error is "this model is not usable"
            raise weights_error(exc, weights, label, self._fix) from exc
        # The pooler head is not used for sentence embeddings; anything else missing would
        # leave random weights in the network and quietly wrong vectors.
        missing = [k for k in info.get("missing_keys", ()) if "pooler" not in k]
        if missing:
            raise ModelUnavailableError(
                f"{weights} does not hold all of the {label}'s weights (missing {', '.join(sorted(missing)[:3])}"
                f"{' ...' if len(missing) > 3 else ''}). {self._fix}"
            )
        return model.float().to(device).eval()

    # -- encoding

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Embed search queries (with the query prefix): an (n, dim) float32 array, rows L2-normalised."""
        return self._encode(texts, self.query_prefix if texts else "")

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """Embed passages (with the passage prefix): an (n, dim) float32 array, rows L2-normalised.

        Texts longer than the model's limit are cut there (see :attr:`max_tokens`).  Runs in
        chunks of ``settings.batch_size`` under ``torch.inference_mode()``; loads the model
        on first use (see :meth:`load` for what is raised).
        """
        return self._encode(texts, self.passage_prefix if texts else "")

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._tokenizers()  # a missing tokenizer is reported before the weights are read
        self.load()
        onnx = self._onnx
        if onnx is not None:
            return self._encode_onnx(onnx, texts, prefix)
        parts = [
            self._vectors_torch(self._model, self._dense, feeds, mask, self._device)
            for feeds, mask in self._batches(texts, prefix)
        ]
        return np.concatenate(parts)

    def _batches(self, texts: list[str], prefix: str) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """Chunks of ``settings.batch_size`` texts: (token arrays by input name, the mask pooling uses)."""
        layout = self._get_layout()
        counter, batcher = self._tokenizers()
        prompt_length = 0
        if prefix and not layout.include_prompt:
            # Pooling leaves the prompt out: the leading special tokens and the prefix's own.
            probe = counter.encode(self._prepare(prefix), add_special_tokens=True)
            prompt_length = len(probe.ids) - _trailing_specials(probe.special_tokens_mask)
        size = max(1, self.settings.batch_size)
        for start in range(0, len(texts), size):
            encodings = batcher.encode_batch([self._prepare(prefix + t) for t in texts[start : start + size]])
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": mask,
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            pool_mask = mask
            if prompt_length:
                pool_mask = mask.copy()
                pool_mask[:, :prompt_length] = 0
            yield feeds, pool_mask

    def _encode_onnx(self, onnx: OnnxText, texts: list[str], prefix: str) -> np.ndarray:
        from .text_onnx import pool

        layout = self._get_layout()
        out = []
        for feeds, pool_mask in self._batches(texts, prefix):
            vectors = pool(onnx.hidden(feeds), pool_mask, layout.pooling)
            for dense in onnx.dense:
                vectors = dense(vectors)
            out.append(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))
        return np.concatenate(out).astype(np.float32, copy=False)

    def _vectors_torch(
        self,
        model: Any,
        dense: list[_Dense],
        feeds: dict[str, np.ndarray],
        pool_mask: np.ndarray,
        device: torch.device | str,
    ) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if _takes_token_types(model) else [])
        with torch.inference_mode():
            output = model(**{name: torch.from_numpy(feeds[name]).to(device) for name in names})
            hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
            vectors = _pool(hidden.float(), torch.from_numpy(pool_mask).to(device), self._get_layout().pooling)
            for layer in dense:
                vectors = layer(vectors)
            return F.normalize(vectors, p=2, dim=-1).cpu().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        state = f"loaded, {self._runtime}" if self.loaded else "not loaded"
        return f"TextEncoder({self.name}, {state})"


@contextlib.contextmanager
def _quiet_transformers():
    # transformers draws a progress bar and prints a load report on stderr; a library must
    # not, and the one thing in them that matters (missing weights) is checked by the caller.
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _takes_token_types(model: Any) -> bool:
    return "token_type_ids" in inspect.signature(model.forward).parameters


def _trailing_specials(special_mask: list[int]) -> int:
    count = 0
    for flag in reversed(special_mask):
        if not flag:
            break
        count += 1
    return count


def build_text_encoder(settings: Settings) -> TextEncoder:
    """The text encoder the settings ask for (SHOEBOX_TEXT_MODEL: a model name or a folder).

    Cheap: imports nothing heavy and reads no weights.  Raises :class:`UsageError` for a
    name that cannot be a model, :class:`ModelUnavailableError` when SHOEBOX_TEXT_MODEL
    names a folder that is not there.
    """
    return TextEncoder(settings)
