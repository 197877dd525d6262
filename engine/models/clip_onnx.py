"""CLIP on ONNX Runtime: the loaded open_clip model, exported once, quantised to int8, cached.

On a CPU, ONNX Runtime with dynamically quantised int8 weights runs CLIP's image tower about
2.6 times and a text query over twice as fast as PyTorch, with embeddings whose cosine to
PyTorch's is above 0.999 (``benchmarks/models.py``).  int8 vectors depend slightly on the
other inputs of their batch (the activations are quantised per batch), at a cosine above 0.999.  The vectors stay those of the same model
(same :class:`~engine.models.clip.ModelIdentity`): a library indexed with one runtime is
searched with the other.

The exported towers are cached under ``models/clip-onnx/<name>/<key>/``, the key hashing the
weights' sha256, the model name and the versions of torch, open_clip and onnxruntime, so
they are built once per weights file.  Before the int8 towers are used they are checked
against PyTorch on a fixed probe set (synthetic pictures and a few phrases): a tower whose
cosine to PyTorch is below :data:`MIN_COSINE` is used in fp32 instead, and the encoder says
so.  The outcome is kept in the cache's ``manifest.json``, written last, so a half-written
cache is never read.

Nothing here imports torch, onnx or onnxruntime at module level.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..settings import Settings
from .runtime import available_cores
from .weights import _write_text_atomic, file_sha256

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Cosine (each probe against PyTorch's vector for it) every int8 probe must reach.
MIN_COSINE = 0.99
# Bumped when the export or the manifest changes, so older caches are rebuilt.
# 3: the text tower takes tokens only up to the longest text's end (see _trim_tokens).
CACHE_FORMAT = 3
TOWERS = ("image", "text")
PROBE_TEXTS = (
    "a photo of a dog on a beach",
    "a red car parked in the snow",
    "birthday cake with candles",
    "해질녘의 도시 풍경",
    "receipt",
)


class OnnxUnavailable(Exception):
    """ONNX Runtime cannot run this CLIP; the message is a plain sentence saying why."""


def package_version(*distributions: str) -> str:
    """The installed version of the first of ``distributions`` found, read from its metadata ("?" when none is).

    Reading the metadata does not import the package: finding a cached export must not
    import torch, which alone takes seconds.
    """
    from importlib.metadata import PackageNotFoundError, version

    for distribution in distributions:
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return "?"


def onnxruntime_version() -> str:
    """ONNX Runtime's version (imported: the sessions need it anyway, and it ships under several names)."""
    import onnxruntime

    return str(onnxruntime.__version__)


def runtime_versions() -> dict[str, str]:
    """Versions that shape the exported graph and how it runs (part of the cache key)."""
    return {
        "torch": package_version("torch"),
        "open_clip": package_version("open_clip_torch", "open-clip-torch"),
        "onnxruntime": onnxruntime_version(),
        "format": str(CACHE_FORMAT),
    }


def cache_dir(settings: Settings, name: str, weights_key: str) -> Path:
    """Folder of the exported towers for CLIP ``name`` with weights ``weights_key`` (a sha256 or a seeded tag).

    Imports neither torch nor open_clip.
    """
    material = json.dumps({"name": name, "weights": weights_key, **runtime_versions()}, sort_keys=True)
    key = hashlib.sha256(material.encode()).hexdigest()[:16]
    return settings.models_dir / "clip-onnx" / name.replace("/", "--") / key


def probe_images(size: int, count: int = 4) -> list:
    """Deterministic photo-like PIL images (gradients, discs, noise) for the verification."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(1234)
    side = max(size, 96)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    images = []
    for _ in range(count):
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (xx * rng.uniform(0.2, 1) + yy * rng.uniform(0.2, 1)) / (2 * side)
        pixels = c0 + (c1 - c0) * t[..., None] + rng.normal(0, 6, (side, side, 3))
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = (int(v) for v in rng.integers(0, side // 2, 2))
            x1, y1 = x0 + int(rng.integers(8, side // 2)), y0 + int(rng.integers(8, side // 2))
            draw.ellipse((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        images.append(image)
    return images


class OnnxClip:
    """The two towers as ONNX Runtime sessions; ``precision`` is ``{"image": "int8", "text": "fp32"}`` or so.

    A tower's session is made when it is first used: a search needs only the text tower,
    and making the image tower's session would cost it a few tenths of a second.
    """

    def __init__(
        self, files: dict[str, Path], precision: dict[str, str], folder: Path, settings: Settings, **sessions: Any
    ) -> None:
        self.files = files
        self.precision = precision
        self.folder = folder
        self._settings = settings
        self._sessions: dict[str, Any] = dict(sessions)  # onnxruntime.InferenceSession by tower
        self._lock = threading.Lock()
        # The text tower was exported to take any length up to the context (see _trim_tokens).
        self.short_text = False

    def session(self, tower: str) -> Any:
        """The ONNX Runtime session of ``tower`` ("image" or "text"), made on first use."""
        made = self._sessions.get(tower)
        if made is None:
            with self._lock:
                made = self._sessions.get(tower)
                if made is None:
                    made = self._sessions[tower] = _session(self.files[tower], self._settings)
        return made

    @property
    def label(self) -> str:
        kinds = set(self.precision.values())
        return f"onnx-{kinds.pop()}" if len(kinds) == 1 else "onnx-" + "/".join(self.precision[t] for t in TOWERS)

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        return _run(self.session("image"), np.ascontiguousarray(pixels, dtype=np.float32))

    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        if self.short_text:
            tokens = _trim_tokens(tokens)
        return _run(self.session("text"), np.ascontiguousarray(tokens, dtype=np.int64))


def _trim_tokens(tokens: np.ndarray) -> np.ndarray:
    """The tokens up to the end token of the longest text, the padding after it cut off.

    CLIP's text transformer is causal and its vector is read at the end token (the
    highest id of each row), so the positions after it change nothing: a query of
    eight tokens then costs a tenth of the full context of 77.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] == 0:
        return tokens
    length = int(tokens.argmax(axis=1).max()) + 1
    return tokens[:, :length]


def short_text_tower(model: Any) -> bool:
    """Whether ``model``'s text tower is an open_clip causal transformer read at its end token (argmax).

    Only then may its input be cut after the end token (:func:`_trim_tokens`).
    """
    try:
        from open_clip.model import CLIP
    except ImportError:
        return False
    mask = getattr(model, "attn_mask", None)
    if not (isinstance(model, CLIP) and getattr(model, "text_pool_type", None) == "argmax"):
        return False
    if mask is None or getattr(mask, "ndim", 0) != 2 or mask.shape[0] != mask.shape[1]:
        return False
    import torch

    later = torch.triu(torch.ones(mask.shape, dtype=torch.bool), 1)
    # Causal: each position sees itself and those before it, never one after.
    return bool((mask[later] < 0).all().item() and (mask[~later] == 0).all().item())


def _run(session: Any, array: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: array})[0], dtype=np.float32)


def _session(path: Path, settings: Settings) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads if settings.threads > 0 else available_cores()
    options.inter_op_num_threads = 1
    # Idle worker threads would otherwise spin for a while after each run, taking the cores
    # the indexer's decoding threads (and PyTorch's, for the other models) need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers mean nothing to a person
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def open_cached(folder: Path, settings: Settings) -> OnnxClip | None:
    """The cached towers in ``folder``, or None when the cache is missing, incomplete or damaged."""
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        return None
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        precision = {tower: manifest["towers"][tower]["precision"] for tower in TOWERS}
        files = {}
        for tower in TOWERS:
            entry = manifest["towers"][tower]
            files[tower] = folder / entry["file"]
            # The checksum is remembered by path, size and modification time (models/hashes.json),
            # so a start does not read the towers twice; a file written since is hashed again.
            if file_sha256(files[tower], settings) != entry["sha256"]:
                raise ValueError(f"{files[tower].name} does not match its recorded checksum")
        # Made here, not on first use: damage the checksum cannot see (a file written as it
        # was recorded, by a newer ONNX Runtime) is found while a rebuild is still possible.
        text = _session(files["text"], settings)
    except Exception as exc:  # any unreadable, missing or damaged piece means "build again"
        log.warning("The ONNX copy of CLIP in %s is damaged (%s); it is built again.", folder, exc)
        return None
    onnx = OnnxClip(files, precision, folder, settings, text=text)
    onnx.short_text = bool(manifest.get("short_text", False))
    return onnx


def _tower_module(model: Any, tower: str, short: bool = False) -> torch.nn.Module:
    """One tower of an open_clip model as a module with one input, for the exporter."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if tower == "image":
                return self.model.encode_image(x, normalize=True)
            if short:
                return _encode_short_text(self.model, x)
            return self.model.encode_text(x, normalize=True)

    return Tower().eval()


def _encode_short_text(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``CLIP.encode_text`` for inputs shorter than the context: positions and mask cut to fit."""
    import torch
    import torch.nn.functional as F
    from open_clip.transformer import text_global_pool

    length = tokens.shape[1]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
    mask = model.attn_mask[:length, :length].to(cast)
    for block in model.transformer.resblocks:  # batch first: (batch, length, width)
        x = _short_block(block, x, mask)
    x = text_global_pool(model.ln_final(x), tokens, "argmax")
    if model.text_projection is not None:
        x = (
            model.text_projection(x)
            if isinstance(model.text_projection, torch.nn.Linear)
            else x @ model.text_projection
        )
    return F.normalize(x, dim=-1)


def _short_block(block: Any, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One residual attention block of open_clip, its attention written out so that every
    reshape keeps the length free (nn.MultiheadAttention's trace fixes it to the sample's)."""
    import torch.nn.functional as F

    attn = block.attn
    heads, width = attn.num_heads, attn.embed_dim
    h = block.ln_1(x)
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)
    qkv = qkv.reshape(x.shape[0], -1, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = (q @ k.transpose(-2, -1)) * (width // heads) ** -0.5 + mask
    out = (weights.softmax(dim=-1) @ v).transpose(1, 2).reshape(x.shape[0], -1, width)
    x = x + block.ls_1(F.linear(out, attn.out_proj.weight, attn.out_proj.bias))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _short_export_possible(model: Any) -> bool:
    """Whether :func:`_encode_short_text` can stand in for ``model.encode_text`` (checked against it after export)."""
    import torch

    if not short_text_tower(model):
        return False
    transformer = model.transformer
    if not getattr(transformer, "batch_first", False):
        return False
    for block in transformer.resblocks:
        attn = getattr(block, "attn", None)
        if (
            not isinstance(attn, torch.nn.MultiheadAttention)
            or not attn._qkv_same_embed_dim
            or attn.in_proj_bias is None
        ):
            return False
        if hasattr(block, "ln_1_kv"):
            return False
    return True


def _export(model: Any, tower: str, sample: torch.Tensor, path: Path, short: bool = False) -> None:
    import torch

    input_name = "pixels" if tower == "image" else "tokens"
    axes = {0: "batch"}
    if short:
        axes = {0: "batch", 1: "length"}
        sample = torch.from_numpy(_trim_tokens(sample.numpy()))
    # With gradients off, nn.MultiheadAttention takes a fused fast path the exporter cannot
    # translate, so the trace runs with them on.  The TorchScript exporter works offline and
    # without onnxscript; it warns that it is deprecated and about traced control flow that
    # does not change with the batch.
    with warnings.catch_warnings(), torch.inference_mode(False), torch.enable_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _tower_module(model, tower, short),
            (sample,),
            str(path),
            dynamo=False,
            input_names=[input_name],
            output_names=["embedding"],
            dynamic_axes={input_name: axes, "embedding": {0: "batch"}},
            opset_version=17,
        )


def _quantize(source: Path, target: Path, keep_fp32: Callable[[Path], list[str]] | None = None) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Per-channel signed int8 weights keep CLIP's cosine to fp32 near 0.9999; the
    # activations are quantised on the fly (dynamic), so no calibration data is needed.
    # Optimising the graph first (fused attention, layer norms, GELU) lets the quantiser
    # see whole matrix products: on two cores the image tower runs about twice as fast.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs hints that do not apply here
    optimised = target.with_name(target.name + ".pre")
    try:
        try:
            quant_pre_process(str(source), str(optimised), skip_symbolic_shape=True)
            quantize_from = optimised
        except Exception as exc:  # the plain graph quantises too, only slower
            log.warning("Optimising the ONNX graph before quantising failed (%s); quantising it as exported.", exc)
            quantize_from = source
        # keep_fp32 names the nodes of the graph (as it will be quantised) to leave unquantised.
        excluded = keep_fp32(quantize_from) if keep_fp32 is not None else []
        quantize_dynamic(
            str(quantize_from), str(target), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=excluded
        )
    finally:
        root.setLevel(level)
        with suppress(FileNotFoundError):
            optimised.unlink()


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float(np.min(np.sum(a * b, axis=1)))


def build(
    model: Any, folder: Path, settings: Settings, pixels: torch.Tensor, tokens: torch.Tensor
) -> tuple[OnnxClip, str]:
    """Export, quantise and verify both towers of ``model`` (an open_clip CLIP on the CPU) into ``folder``.

    ``pixels`` and ``tokens`` are the probe set, already preprocessed and tokenised.  Returns
    the sessions and a note ("" when int8 passed for both towers).  Raises
    :class:`OnnxUnavailable` when a tower cannot be exported or does not match PyTorch even in fp32.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        reference = {
            "image": model.encode_image(pixels, normalize=True).float().numpy(),
            "text": model.encode_text(tokens, normalize=True).float().numpy(),
        }
    # The text tower is tried first in the form that takes any length (a query's few
    # tokens instead of the whole context), then, should that not reproduce PyTorch, as is.
    variants = [("image", False)] + [("text", True)] * _short_export_possible(model) + [("text", False)]
    towers: dict[str, dict[str, Any]] = {}
    sessions: dict[str, Any] = {}
    notes: list[str] = []
    staged: list[Path] = []
    short = False
    try:
        for n, (tower, trimmed) in enumerate(variants):
            if tower in towers:
                continue
            fallback = n + 1 < len(variants) and variants[n + 1][0] == tower
            probes = pixels.numpy() if tower == "image" else tokens.numpy()
            if trimmed:
                probes = _trim_tokens(probes)
            fp32 = _staging(folder, f"{tower}-fp32")
            int8 = _staging(folder, f"{tower}-int8")
            staged += [fp32, int8]
            try:
                _export(model, tower, (pixels if tower == "image" else tokens)[:2], fp32, trimmed)
            except Exception as exc:
                if fallback:
                    log.info("Exporting the %s tower for any length failed (%s); exporting it as is.", tower, exc)
                    continue
                raise OnnxUnavailable(f"the {tower} tower could not be exported to ONNX ({_short(exc)})") from exc
            chosen, cosine = None, {}
            tried: list[str] = []
            for precision, path in (("int8", int8), ("fp32", fp32)):
                if precision == "int8":
                    try:
                        _quantize(fp32, int8)
                    except Exception as exc:
                        tried.append(f"the {tower} tower could not be quantised ({_short(exc)}), so it runs in fp32")
                        continue
                session = _session(path, settings)
                cosine[precision] = _min_cosine(_run(session, probes), reference[tower])
                if cosine[precision] >= MIN_COSINE:
                    chosen = (precision, path, session)
                    break
                if precision == "int8":
                    tried.append(
                        f"int8 {tower} vectors differed from PyTorch's (cosine {cosine[precision]:.4f}, "
                        f"below {MIN_COSINE}), so the {tower} tower runs in fp32"
                    )
            if chosen is None and fallback:
                log.info("The %s tower exported for any length does not reproduce PyTorch's vectors.", tower)
                continue
            if chosen is None:
                raise OnnxUnavailable(
                    f"the ONNX {tower} tower does not reproduce PyTorch's vectors (cosine {cosine.get('fp32', 0):.4f})"
                )
            if tried and chosen[0] == "fp32" and fallback and trimmed:
                continue  # the tower as is may still quantise: prefer int8 over the shorter input
            notes += tried
            short = short or trimmed
            precision, path, session = chosen
            final = folder / f"{tower}-{precision}.onnx"
            os.replace(path, final)
            sessions[tower] = _session(final, settings)
            del session
            sha = file_sha256(final, settings)  # remembered, so the first open does not hash it again
            towers[tower] = {"file": final.name, "precision": precision, "sha256": sha, "cosine": cosine}
    finally:
        for path in staged:
            with suppress(FileNotFoundError):
                path.unlink()
    note = "; ".join(notes)
    manifest = {"towers": towers, "min_cosine": MIN_COSINE, "note": note, "short_text": short, **runtime_versions()}
    _write_text_atomic(folder / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    files = {t: folder / towers[t]["file"] for t in TOWERS}
    onnx = OnnxClip(files, {t: towers[t]["precision"] for t in TOWERS}, folder, settings, **sessions)
    onnx.short_text = short
    return onnx, note


def read_note(folder: Path) -> str:
    """The note the build left in ``folder``'s manifest ("" when there is none)."""
    try:
        return str(json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("note", ""))
    except (OSError, ValueError):
        return ""


def _staging(folder: Path, stem: str) -> Path:
    # Hidden, unique names: a concurrent build or a crash never leaves a file the manifest names.
    fd, name = tempfile.mkstemp(prefix=f".{stem}-", suffix=".onnx.part", dir=folder)
    os.close(fd)
    return Path(name)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
