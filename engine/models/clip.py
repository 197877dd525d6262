"""CLIP: one encoder for photos and for text, so both land in one embedding space.

Nothing here imports torch or open_clip at module level: the desktop app imports the
engine before its window appears and loads the models afterwards.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import json
import logging
import threading
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ModelUnavailableError, UsageError
from ..settings import Settings
from .clip_tokenizer import ClipTokenizer, TokenizerUnavailable, clip_tokenizer, plain_bpe_model
from .runtime import configure_torch_threads, torch_device
from .tiny import (
    DEFAULT_TINY_TAG,
    LOCAL_CLIP_CONFIGS,
    TEST_TINY,
    quiet_random_init_warning,
    register_tiny_clip_config,
    tiny_seed,
)
from .weights import (
    explicit_weights_file,
    file_sha256,
    locate_clip_weights,
    weights_error,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from .clip_onnx import OnnxClip

log = logging.getLogger(__name__)

# Shown when a model name is wrong; the registry has ~150 names, most of them exotic.
_SUGGESTED = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "xlm-roberta-base-ViT-B-32", TEST_TINY)


@dataclass(frozen=True)
class ModelIdentity:
    """What produced a library's vectors.  A library opened with a different identity is refused.

    ``name`` is the open_clip architecture (``"ViT-B-32"``, ``"test-tiny"``); ``weights`` the
    pretrained tag (``"laion2b_s34b_b79k"``), ``"seed<N>"`` for test-tiny,
    ``"file:<sha256[:12]>"`` for a file of unknown provenance, or ``"random-seed<N>"`` for
    benchmark-only random weights; ``dim`` the embedding width.
    """

    name: str
    weights: str
    dim: int

    def __str__(self) -> str:
        return f"{self.name} ({self.weights}, {self.dim}-d)"


# ---------------------------------------------------------------------------- registry


@lru_cache(maxsize=1)
def _config_files() -> dict[str, Path]:
    # open_clip's architecture configs are JSON files shipped inside the package; reading
    # them directly answers "is this a model?" and "how wide is it?" without importing
    # torch.  find_spec locates the package without executing it.
    files: dict[str, Path] = {}
    spec = importlib.util.find_spec("open_clip")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for path in Path(location, "model_configs").glob("*.json"):
            files[path.stem] = path
    files.update(LOCAL_CLIP_CONFIGS)  # test-tiny and shapes-clip
    return files


@cache
def _read_config(name: str) -> dict | None:
    try:
        cfg = json.loads(_config_files()[name].read_text(encoding="utf-8"))
    except (KeyError, OSError, ValueError):
        return None
    # open_clip registers only files that hold all three (the same filter as its _rescan).
    return cfg if all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")) else None


def clip_model_names() -> list[str]:
    """Every CLIP architecture open_clip can build, plus ``test-tiny`` and ``shapes-clip``.  Does not import torch."""
    return sorted(n for n in _config_files() if _read_config(n) is not None)


def check_clip_name(name: str) -> None:
    """Raise :class:`UsageError` listing valid names when ``name`` is not a CLIP architecture."""
    if _read_config(name) is not None:
        return
    close = difflib.get_close_matches(name, clip_model_names(), n=3, cutoff=0.6)
    hint = f"Did you mean {', '.join(close)}? " if close else ""
    raise UsageError(
        f"There is no CLIP model called {name!r}. {hint}Common choices: {', '.join(_SUGGESTED)} "
        f"(SHOEBOX_CLIP_MODEL; all {len(clip_model_names())} names are open_clip's model configs).",
        plain=f"There is no CLIP model called {name!r}. {hint}Common choices: {', '.join(_SUGGESTED)}.",
    )


def clip_model_config(name: str) -> dict:
    """open_clip's architecture config of ``name`` (a copy).  Raises :class:`UsageError` for unknown names."""
    check_clip_name(name)
    config = _read_config(name)
    assert config is not None  # check_clip_name has just read it
    return copy.deepcopy(config)


def default_tag(name: str, configured: str) -> str:
    """The weights tag used for ``name`` when ``configured`` is the SHOEBOX_CLIP_PRETRAINED value.

    test-tiny has only seeded weights, so the (laion) default tag means ``seed0`` there.
    """
    if name == TEST_TINY and tiny_seed(configured) is None and not configured.startswith("file:"):
        return DEFAULT_TINY_TAG
    return configured


def _is_published_tag(name: str, tag: str) -> bool:
    return name != TEST_TINY and not tag.startswith(("file:", "random"))


def quick_gelu_for(name: str, tag: str) -> bool:
    """Whether weights ``tag`` were trained with QuickGELU (OpenAI-style) activations."""
    if not _is_published_tag(name, tag):
        return False
    import open_clip

    # open_clip only warns when a QuickGELU-trained tag meets a GELU config; the
    # embeddings would then be quietly wrong, so we follow the tag instead.
    return bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))


# ---------------------------------------------------------------------------- loading


def _missing_package(name: str, exc: ImportError) -> ModelUnavailableError:
    package = exc.name or "a package"
    return ModelUnavailableError(
        f"The CLIP model {name} needs the Python package {package!r}, which is not installed "
        f"(`pip install {package}`), or choose another model with SHOEBOX_CLIP_MODEL."
    )


def load_clip_checkpoint(
    name: str,
    path: Path,
    device: torch.device | str,
    *,
    quick_gelu: bool,
    label: str,
    fix: str,
    shown_as: Path | None = None,
) -> torch.nn.Module:
    """Build CLIP ``name`` and load the weights file ``path`` into it (strictly), in eval mode.

    This is the one loader for every weights file: downloaded, imported, explicit, and
    the generated test-tiny.  open_clip reads ``.safetensors`` with safetensors and
    anything else with ``torch.load(weights_only=True)``.  Raises
    :class:`ModelUnavailableError` naming the file when it is damaged, carries Python
    objects, or does not fit the architecture (naming ``shown_as`` instead, when given: the
    person's own file rather than a staged copy of it).
    """
    import open_clip

    register_tiny_clip_config()
    try:
        model = open_clip.create_model(
            name,
            pretrained=str(path),
            device="cpu",
            precision="fp32",
            force_quick_gelu=quick_gelu,
            # Never let open_clip fetch base tower weights: the checkpoint has all of them.
            pretrained_image=False,
            pretrained_text=False,
            weights_only=True,
        )
    except ImportError as exc:
        raise _missing_package(name, exc) from exc
    except Exception as exc:  # any reader or shape error is "this file is not usable"
        raise weights_error(exc, Path(shown_as or path), label, fix) from exc
    return model.to(device).eval()


def _random_clip(name: str, seed: int, device: torch.device | str) -> torch.nn.Module:
    import open_clip
    import torch

    register_tiny_clip_config()
    with torch.random.fork_rng(devices=[]), quiet_random_init_warning():
        torch.manual_seed(seed)
        try:
            model = open_clip.create_model(
                name, pretrained=None, device="cpu", pretrained_image=False, pretrained_text=False
            )
        except ImportError as exc:
            raise _missing_package(name, exc) from exc
    return model.to(device).eval()


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        from PIL import Image

        # Transparent pixels often hold black; on white they look as the person sees them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")


class ClipEncoder:
    """A CLIP model that turns images and texts into L2-normalised float32 vectors.

    Cheap to build: weights load on first use (or :meth:`load`), once, under a lock.
    On the CPU the model runs on ONNX Runtime with int8 weights (exported once and cached
    beside the weights, see :mod:`engine.models.clip_onnx`), elsewhere or with
    ``SHOEBOX_CLIP_RUNTIME=torch`` on PyTorch; both give vectors of the same model.
    :attr:`runtime` says which runs, :attr:`runtime_note` why it is not the one asked for.
    Build the configured one with :func:`build_clip`.  ``random_init=True`` builds the
    architecture with seeded random weights and never reads a file; it exists for
    benchmarks (same arithmetic as the real model) and is not reachable from settings.

    Raises :class:`UsageError` for an unknown model name.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        name: str | None = None,
        pretrained: str | None = None,
        random_init: bool = False,
        seed: int = 0,
    ) -> None:
        self.settings = settings
        self.name = name or settings.clip_model
        self._config = clip_model_config(self.name)  # UsageError for a bad name, before any import
        self._random_init = random_init
        configured = pretrained or settings.clip_pretrained
        if random_init:
            self._tag = f"random-seed{seed}"
        else:
            if configured.startswith("random"):
                raise UsageError(
                    "Random CLIP weights are for benchmarks only; set SHOEBOX_CLIP_PRETRAINED to a real tag."
                )
            self._tag = default_tag(self.name, configured)
        self._seed = seed
        # Checked now (a stat), so a wrong SHOEBOX_CLIP_WEIGHTS is reported at start-up.
        self._explicit = None if random_init else explicit_weights_file(settings, "clip")
        self._identity: ModelIdentity | None = None
        self._model: Any = None  # an open_clip CLIP once loaded (open_clip has no type information)
        self._device: torch.device | None = None
        self._onnx: OnnxClip | None = None
        self._runtime: str | None = None
        self.runtime_note = ""
        self._tokenizer = None
        self._bpe: ClipTokenizer | Literal[False] | None = None  # False: this model does not use it
        self._transform = None
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._transform_lock = threading.Lock()

    # -- identity and weights

    @property
    def identity(self) -> ModelIdentity:
        """Name, weights and dimension; needs no weights loaded (an explicit file is hashed once)."""
        if self._identity is None:
            weights = self._tag
            if self._explicit is not None:
                weights = f"file:{file_sha256(self._explicit, self.settings)[:12]}"
            self._identity = ModelIdentity(self.name, weights, int(self._config["embed_dim"]))
        return self._identity

    @property
    def dim(self) -> int:
        return int(self._config["embed_dim"])

    @property
    def loaded(self) -> bool:
        return self._model is not None or self._onnx is not None

    @property
    def runtime(self) -> str | None:
        """What runs the model once loaded: ``"onnx-int8"``, ``"onnx-fp32"``, ``"onnx-int8/fp32"``
        (image/text towers) or ``"torch"``; None before :meth:`load`."""
        return self._runtime

    def locate_weights(self) -> Path | None:
        """The weights file :meth:`load` will read (None for random weights), without loading it.

        Follows the resolution order (explicit file, caches, download when allowed) and
        may therefore download or generate test-tiny weights.  Raises
        :class:`ModelUnavailableError` saying what to run when the weights are missing,
        :class:`UsageError` for a tag open_clip does not know.
        """
        if self._random_init:
            return None
        explicit = explicit_weights_file(self.settings, "clip")
        if explicit is not None:
            return explicit
        return locate_clip_weights(self.settings, self.name, self._tag).path

    def load(self) -> None:
        """Load the weights onto ``settings.device`` (once; later calls return at once).

        With the ONNX runtime (the default on a CPU) the cached ONNX towers are loaded, or
        built from the weights the first time.  Any failure of ONNX (onnxruntime missing, an
        export error, vectors that do not match PyTorch's) falls back to PyTorch and is
        explained in :attr:`runtime_note`; it never stops the model from loading.

        Raises :class:`ModelUnavailableError` (weights missing, damaged or refused) or
        :class:`UsageError` (device not available, unknown tag).
        """
        if self.loaded:
            return
        with self._load_lock:
            if self.loaded:
                return
            wanted, note = self._wanted_runtime()
            model = None
            if wanted == "onnx":
                # A cached export opens without torch (whose import alone takes seconds).
                onnx, model, note = self._load_onnx()
                if onnx is not None:
                    self._onnx, self._runtime, self.runtime_note = onnx, onnx.label, note
                    if note:
                        log.warning("CLIP on ONNX Runtime: %s", note)
                    return
            device = torch_device(self.settings)
            configure_torch_threads(self.settings)
            self._model = (model if model is not None else self._load_torch_model("cpu")).to(device)
            self._device = device
            self._runtime, self.runtime_note = "torch", note
            if note:
                log.warning("%s", note)

    def _wanted_runtime(self) -> tuple[str, str]:
        setting = self.settings.clip_runtime
        if setting == "torch":
            return "torch", ""
        if self.settings.device != "cpu":
            if setting == "onnx":
                return "torch", (
                    f"CLIP runs on PyTorch: SHOEBOX_CLIP_RUNTIME=onnx runs on the CPU only, "
                    f"and SHOEBOX_DEVICE is {self.settings.device}."
                )
            return "torch", ""
        return "onnx", ""

    def _load_torch_model(self, device: torch.device | str) -> Any:
        if self._random_init:
            return _random_clip(self.name, self._seed, device)
        path = self.locate_weights()
        assert path is not None  # None only for random weights
        if self._explicit is not None:
            fix = f"Point SHOEBOX_CLIP_WEIGHTS at an intact {self.name} weights file."
        else:
            fix = (
                "Run `shoebox models download clip` to fetch it again, "
                "or import an intact copy with `shoebox models import FILE`."
            )
        return load_clip_checkpoint(
            self.name,
            path,
            device,
            quick_gelu=quick_gelu_for(self.name, self._tag),
            label=f"CLIP {self.name}",
            fix=fix,
        )

    def _weights_key(self) -> str:
        if self._random_init:
            return self._tag  # seeded: the same weights for the same torch and open_clip (both in the key)
        path = self.locate_weights()
        assert path is not None
        return file_sha256(path, self.settings)

    def _load_onnx(self) -> tuple[OnnxClip | None, Any, str]:
        """(the ONNX towers or None, the PyTorch model when it had to be loaded, a note)."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None, None, "CLIP runs on PyTorch: the Python package onnxruntime is not installed."
        from . import clip_onnx

        folder = clip_onnx.cache_dir(self.settings, self.name, self._weights_key())  # weights errors propagate
        cached = clip_onnx.open_cached(folder, self.settings)
        if cached is not None:
            return cached, None, clip_onnx.read_note(folder)
        configure_torch_threads(self.settings)
        model = self._load_torch_model("cpu")
        try:
            import torch

            size = int(self._config["vision_cfg"].get("image_size", 224))
            pixels = torch.stack([self.preprocess(image) for image in clip_onnx.probe_images(size)])
            tokens = torch.from_numpy(self._onnx_tokens(list(clip_onnx.PROBE_TEXTS)))
            onnx, note = clip_onnx.build(model, folder, self.settings, pixels, tokens)
        except clip_onnx.OnnxUnavailable as exc:
            return None, model, f"CLIP runs on PyTorch: {exc}."
        except Exception as exc:  # ONNX is an optimisation: whatever breaks it, PyTorch still works
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            return None, model, f"CLIP runs on PyTorch: preparing it for ONNX Runtime failed ({reason})."
        return onnx, None, note

    # -- images

    def _get_transform(self):
        if self._transform is None:
            with self._transform_lock:
                if self._transform is None:
                    self._transform = self._build_transform()
        return self._transform

    def _build_transform(self):
        import open_clip  # registers the package before its submodules are used
        from open_clip.transform import (
            PreprocessCfg,
            image_transform_v2,
            merge_preprocess_dict,
        )

        # The same inference transform open_clip.create_model_and_transforms would give:
        # its defaults, overlaid with the tag's mean/std/interpolation, at the tower's size.
        # Built from the configs so workers can preprocess while the weights still load.
        cfg = asdict(PreprocessCfg())
        if _is_published_tag(self.name, self._tag):
            cfg = merge_preprocess_dict(cfg, open_clip.get_pretrained_cfg(self.name, self._tag))
        cfg["size"] = self._config["vision_cfg"].get("image_size", 224)
        return image_transform_v2(PreprocessCfg(**cfg), is_train=False)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The model's own transform of one PIL image: a (3, H, W) float tensor.

        Thread-safe and independent of :meth:`load`, so a pool of workers can decode and
        preprocess while the model runs.  Transparent areas are composited onto white.
        """
        return self._get_transform()(_to_rgb(image))

    def encode_image_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """Embed preprocessed images, (n, 3, H, W) or one (3, H, W), as an (n, dim) float32 array.

        Rows are L2-normalised.  Runs in chunks of ``settings.batch_size`` under
        ``torch.inference_mode()``.  Loads the weights on first use (see :meth:`load`).
        """
        import torch

        self.load()
        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = max(1, self.settings.batch_size)
        if self._onnx is not None:
            pixels = batch.detach().cpu().float().numpy()
            return np.concatenate([self._onnx.encode_image(pixels[i : i + size]) for i in range(0, len(pixels), size)])
        out = []
        with torch.inference_mode():
            for chunk in torch.split(batch, size):
                vectors = self._model.encode_image(chunk.to(self._device), normalize=True)
                out.append(vectors.float().cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Preprocess and embed PIL images: an (n, dim) float32 array, rows L2-normalised."""
        import torch

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = max(1, self.settings.batch_size)
        parts = [
            self.encode_image_tensors(torch.stack([self.preprocess(im) for im in images[i : i + size]]))
            for i in range(0, len(images), size)
        ]
        return np.concatenate(parts)

    # -- text

    def _get_tokenizer(self):
        if self._tokenizer is None:
            with self._tokenizer_lock:
                if self._tokenizer is None:
                    self._tokenizer = self._build_tokenizer()
        return self._tokenizer

    def _build_tokenizer(self):
        import open_clip  # the package itself, before its submodules: importing it registers the model configs

        register_tiny_clip_config()
        hf_name = self._config["text_cfg"].get("hf_tokenizer_name")
        if hf_name and not self.settings.allow_download and not _hf_files_cached(hf_name):
            # Without this check transformers would reach for the network on an offline machine.
            raise ModelUnavailableError(
                f"The text tokenizer of {self.name} ({hf_name}, from the Hugging Face hub) is not on this computer. "
                f"Copy a Hugging Face cache that holds it (HF_HOME), or set SHOEBOX_ALLOW_DOWNLOAD=1 once."
            )
        try:
            return open_clip.get_tokenizer(self.name)
        except ImportError as exc:
            raise _missing_package(self.name, exc) from exc
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(
                f"The text tokenizer of {self.name} could not be loaded ({exc}). "
                f"Set SHOEBOX_ALLOW_DOWNLOAD=1 once, or copy a Hugging Face cache that holds {hf_name or 'it'}."
            ) from exc

    def _get_bpe(self) -> ClipTokenizer | None:
        """The torch-free tokenizer when this model uses CLIP's plain BPE tokenizer (None otherwise)."""
        if self._bpe is None:
            with self._tokenizer_lock:
                if self._bpe is None:
                    self._bpe = False
                    if plain_bpe_model(self.name, self._config):
                        try:
                            self._bpe = clip_tokenizer(int(self._config["text_cfg"].get("context_length", 77)))
                        except TokenizerUnavailable as exc:
                            log.warning("%s; CLIP texts are tokenized by open_clip.", exc)
        return self._bpe or None

    def _onnx_tokens(self, texts: list[str]) -> np.ndarray:
        """Token ids of ``texts`` for the ONNX text tower: the torch-free tokenizer's where it applies."""
        bpe = self._get_bpe()
        if bpe is not None:
            return bpe(texts)
        return self._get_tokenizer()(texts).numpy()

    def count_tokens(self, text: str) -> int:
        """Tokens the model's tokenizer makes of ``text``, without the start and end tokens.

        Counts beyond the context length too, so chunkers can tell how much is cut.
        Raises :class:`ModelUnavailableError` when the tokenizer's files are missing.
        """
        bpe = self._get_bpe()
        if bpe is not None:  # the same ids as open_clip's, without importing torch
            return len(bpe.encode(text))
        tokenizer = self._get_tokenizer()
        inner = getattr(tokenizer, "tokenizer", None)
        if inner is not None:  # Hugging Face tokenizers (xlm-roberta, SigLIP) wrap their own
            return len(inner(text, add_special_tokens=False)["input_ids"])
        return len(tokenizer.encode(text))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts: an (n, dim) float32 array, rows L2-normalised.

        Texts longer than the context (77 tokens for CLIP) are truncated by the tokenizer.
        Runs in chunks of ``settings.batch_size``; loads the weights on first use.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        size = max(1, self.settings.batch_size)
        onnx = self._onnx
        if onnx is not None:
            return np.concatenate(
                [onnx.encode_text(self._onnx_tokens(list(texts[i : i + size]))) for i in range(0, len(texts), size)]
            )
        import torch

        tokenizer = self._get_tokenizer()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), size):
                tokens = tokenizer(list(texts[i : i + size])).to(self._device)
                out.append(self._model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        state = f"loaded, {self._runtime}" if self.loaded else "not loaded"
        return f"ClipEncoder({self.name}, {self._tag}, {state})"


def _hf_files_cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    from .weights import _hf_hub_cache_dir

    cache = str(_hf_hub_cache_dir())
    return any(
        isinstance(try_to_load_from_cache(repo, f, cache_dir=cache), str)
        for f in ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model")
    )


def build_clip(settings: Settings) -> ClipEncoder:
    """The CLIP encoder the settings ask for (SHOEBOX_CLIP_MODEL / _PRETRAINED / _WEIGHTS).

    Cheap: imports nothing heavy and loads no weights.  Raises :class:`UsageError` for an
    unknown model name, :class:`ModelUnavailableError` when SHOEBOX_CLIP_WEIGHTS names no file.
    """
    return ClipEncoder(settings)
