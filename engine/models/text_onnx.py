"""The sentence-embedding model on ONNX Runtime: exported once, quantised to int8, cached.

The transformer network of a text model folder is exported with its batch and sequence
axes free, quantised dynamically to int8 and kept under
``models/text-onnx/<name>/<key>/``, the key hashing the weights' sha256 (the network's and
any Dense layer's), the model name and the versions of torch, transformers and onnxruntime.
What follows the network (pooling, Dense layers, normalising) runs in numpy, as the folder's
modules say; the Dense layers' weights are copied into the cache as ``.npz`` files, so a
cached model opens without torch or transformers, whatever format the folder's weights have.

Before the int8 network is used, its sentence vectors are checked against PyTorch's on a
fixed set of sentences: when one has a cosine below :data:`MIN_COSINE` the fp32 export is
used instead, and the encoder says so.  The outcome is kept in the cache's
``manifest.json``, written last, so a half-written cache is never read.  The vectors are
those of the same model (same identity): a library indexed with one runtime is searched
with the other.

Nothing here imports torch, transformers, onnx or onnxruntime at module level.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..settings import Settings
from .clip_onnx import (
    OnnxUnavailable,
    _min_cosine,
    _quantize,
    _session,
    _short,
    _staging,
    onnxruntime_version,
    package_version,
)
from .weights import _write_text_atomic, file_sha256

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Cosine (each probe sentence against PyTorch's vector for it) the int8 network must reach.
MIN_COSINE = 0.99
# Bumped when the export or the manifest changes, so older caches are rebuilt.
CACHE_FORMAT = 1
PROBE_TEXTS = (
    "The receipt for the new boiler is in the blue folder.",
    "how do I stop my dog from barking at night",
    "Quarterly results: revenue grew 12% while costs stayed flat, says the report of 3 March 2021.",
    "여권 만료일은 언제인가요?",
    "Le rendez-vous chez le dentiste est reporté à jeudi.",
    "ok",
    (
        "A longer passage about the beach holiday last summer, the children built sandcastles, "
        "we ate ice cream every afternoon and the weather stayed warm and sunny for the whole two weeks."
    ),
)

__all__ = ["MIN_COSINE", "OnnxText", "OnnxUnavailable", "build", "cache_dir", "open_cached", "pool", "read_note"]


def runtime_versions() -> dict[str, str]:
    """Versions that shape the exported graph and how it runs (part of the cache key); imports neither torch nor transformers."""
    return {
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "onnxruntime": onnxruntime_version(),
        "format": str(CACHE_FORMAT),
    }


def cache_dir(settings: Settings, name: str, weights_key: str) -> Path:
    """Folder of the exported network of text model ``name`` whose weights hash to ``weights_key``."""
    material = json.dumps({"name": name, "weights": weights_key, **runtime_versions()}, sort_keys=True)
    key = hashlib.sha256(material.encode()).hexdigest()[:16]
    safe = name.replace("/", "--").replace(":", "-").replace("\\", "--")
    return settings.models_dir / "text-onnx" / safe / key


# ---------------------------------------------------------------------------- numpy half


def pool(hidden: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Pool (n, tokens, width) token vectors into (n, width * len(modes)), as sentence-transformers does; padding never counts."""
    weights = mask[..., None].astype(hidden.dtype)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    positions = np.arange(hidden.shape[1])
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[:, 0])
        elif mode == "max":
            out.append(np.where(weights == 0, np.finfo(hidden.dtype).min, hidden).max(axis=1))
        elif mode == "mean":
            out.append((hidden * weights).sum(axis=1) / counts)
        elif mode == "mean_sqrt_len":
            out.append((hidden * weights).sum(axis=1) / np.sqrt(counts))
        elif mode == "weightedmean":
            ramp = weights * (positions + 1).astype(hidden.dtype)[None, :, None]
            out.append((hidden * ramp).sum(axis=1) / np.maximum(ramp.sum(axis=1), 1e-9))
        elif mode == "lasttoken":
            last = (mask.astype(np.int64) * (positions + 1)).argmax(axis=1)
            out.append(hidden[np.arange(hidden.shape[0]), last])
        else:
            raise ValueError(f"unknown pooling mode {mode!r}")
    return np.concatenate(out, axis=-1)


_erf = np.frompyfunc(math.erf, 1, 1)

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Identity": lambda x: x,
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0),
    "GELU": lambda x: 0.5 * x * (1.0 + np.asarray(_erf(x / math.sqrt(2.0)), dtype=x.dtype)),
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "SiLU": lambda x: x / (1.0 + np.exp(-x)),
}


class NumpyDense:
    """A sentence-transformers Dense module in numpy: activation(x @ W.T + b)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, activation: str) -> None:
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)
        self.activation = activation

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return _ACTIVATIONS[self.activation](y).astype(np.float32, copy=False)


class OnnxText:
    """The exported network as an ONNX Runtime session, with the numpy Dense layers that follow it."""

    def __init__(self, session: Any, inputs: tuple[str, ...], precision: str, folder: Path, dense: list[NumpyDense]):
        self.session = session  # onnxruntime.InferenceSession
        self.inputs = inputs  # the model's input names: input_ids, attention_mask, perhaps token_type_ids
        self.precision = precision
        self.folder = folder
        self.dense = dense

    @property
    def label(self) -> str:
        return f"onnx-{self.precision}"

    def hidden(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The last hidden state (n, tokens, width) for the token arrays named by :attr:`inputs`."""
        arrays = {name: np.ascontiguousarray(feeds[name], dtype=np.int64) for name in self.inputs}
        return np.asarray(self.session.run(None, arrays)[0], dtype=np.float32)


def _load_dense(folder: Path, entries: list[dict]) -> list[NumpyDense]:
    layers = []
    for entry in entries:
        path = folder / entry["file"]
        with np.load(path, allow_pickle=False) as arrays:
            bias = arrays["bias"] if "bias" in arrays.files else None
            layers.append(NumpyDense(arrays["weight"], bias, entry["activation"]))
    return layers


def open_cached(folder: Path, settings: Settings) -> OnnxText | None:
    """The cached network in ``folder``, or None when the cache is missing, incomplete or damaged."""
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        return None
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        network = manifest["network"]
        for entry in [network, *manifest["dense"]]:
            path = folder / entry["file"]
            # Remembered by path, size and modification time (models/hashes.json): not read twice per start.
            if file_sha256(path, settings) != entry["sha256"]:
                raise ValueError(f"{path.name} does not match its recorded checksum")
        dense = _load_dense(folder, manifest["dense"])
        session = _session(folder / network["file"], settings)
        inputs = tuple(str(name) for name in network["inputs"])
    except Exception as exc:  # any unreadable, missing or damaged piece means "build again"
        log.warning("The ONNX copy of the text model in %s is damaged (%s); it is built again.", folder, exc)
        return None
    return OnnxText(session, inputs, str(network["precision"]), folder, dense)


def read_note(folder: Path) -> str:
    """The note the build left in ``folder``'s manifest ("" when there is none)."""
    try:
        return str(json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("note", ""))
    except (OSError, ValueError):
        return ""


# ---------------------------------------------------------------------------- building (needs torch)


def _network_module(model: Any, inputs: tuple[str, ...]) -> torch.nn.Module:
    """The transformers model as a module of positional token arrays returning its last hidden state."""
    import torch

    class Network(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *arrays: torch.Tensor) -> torch.Tensor:
            output = self.model(**dict(zip(inputs, arrays, strict=True)))
            return output[0] if isinstance(output, tuple) else output.last_hidden_state

    return Network().eval()


def _export(model: Any, inputs: tuple[str, ...], sample: dict[str, np.ndarray], path: Path) -> None:
    import torch

    axes = {name: {0: "batch", 1: "tokens"} for name in (*inputs, "hidden")}
    arrays = tuple(torch.from_numpy(np.ascontiguousarray(sample[name], dtype=np.int64)) for name in inputs)
    # The TorchScript exporter works offline and without onnxscript; it warns that it is
    # deprecated and about traced branches that do not depend on the batch.
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _network_module(model, inputs),
            arrays,
            str(path),
            dynamo=False,
            input_names=list(inputs),
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=17,
        )


def _feed_forward_nodes(graph: Path) -> list[str]:
    """The matrix products of ``graph`` outside its attention layers (by their exported names); [] when none is named so."""
    import onnx

    names = [
        node.name for node in onnx.load(str(graph), load_external_data=False).graph.node if node.op_type == "MatMul"
    ]
    attention = [name for name in names if "attention" in name.lower() or "attn" in name.lower()]
    return [name for name in names if name not in attention] if attention else []


def build(
    model: Any,
    folder: Path,
    settings: Settings,
    *,
    inputs: tuple[str, ...],
    sample: dict[str, np.ndarray],
    dense: list[NumpyDense],
    reference: np.ndarray,
    embed: Callable[[OnnxText], np.ndarray],
) -> tuple[OnnxText, str]:
    """Export, quantise and verify the network of ``model`` (a transformers model on the CPU) into ``folder``.

    ``inputs`` are the model's input names, ``sample`` a padded batch of them for the trace,
    ``dense`` the Dense layers that follow pooling (saved into the cache), ``reference``
    PyTorch's vectors of :data:`PROBE_TEXTS`, and ``embed`` turns a candidate into its vectors
    of the same texts.  Returns the network and a note ("" when int8 passed).  Raises
    :class:`OnnxUnavailable` when the network cannot be exported or does not match PyTorch even in fp32.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fp32, int8 = _staging(folder, "network-fp32"), _staging(folder, "network-int8")
    notes = []
    try:
        try:
            _export(model, inputs, sample, fp32)
        except Exception as exc:
            raise OnnxUnavailable(f"the network could not be exported to ONNX ({_short(exc)})") from exc
        chosen, cosine = None, {}
        quantised = ""
        # Small models (MiniLM) lose most in the feed-forward layers, whose activations after
        # GELU quantise badly; the attention layers alone still halve the time of a query.
        attempts = (("int8", "all", None), ("int8", "attention", _feed_forward_nodes), ("fp32", "", None))
        quantisable = True
        for precision, layers, keep_fp32 in attempts:
            path = int8 if precision == "int8" else fp32
            key = precision if layers in ("all", "") else f"{precision}-{layers}"
            if precision == "int8":
                if not quantisable:
                    continue
                try:
                    if keep_fp32 is not None and not keep_fp32(fp32):
                        continue  # nothing tells the feed-forward layers apart: the same graph as before
                    _quantize(fp32, int8, keep_fp32)
                except Exception as exc:
                    notes.append(f"the network could not be quantised ({_short(exc)}), so it runs in fp32")
                    quantisable = False
                    continue
            candidate = OnnxText(_session(path, settings), inputs, precision, folder, dense)
            cosine[key] = _min_cosine(embed(candidate), reference)
            if cosine[key] >= MIN_COSINE:
                chosen, quantised = (precision, path, candidate), layers
                break
        if chosen is not None and chosen[0] == "fp32" and "int8" in cosine:
            notes.append(
                f"int8 vectors differed from PyTorch's (cosine {max(v for k, v in cosine.items() if k != 'fp32'):.4f}, "
                f"below {MIN_COSINE}), so the network runs in fp32"
            )
        if chosen is None:
            raise OnnxUnavailable(
                f"the ONNX network does not reproduce PyTorch's vectors (cosine {cosine.get('fp32', 0):.4f})"
            )
        precision, path, candidate = chosen
        final = folder / f"network-{precision}.onnx"
        os.replace(path, final)
        dense_entries = []
        for i, layer in enumerate(dense):
            dense_file = folder / f"dense-{i}.npz"
            staged = _staging(folder, f"dense-{i}")
            with open(staged, "wb") as f:
                if layer.bias is None:
                    np.savez(f, weight=layer.weight)
                else:
                    np.savez(f, weight=layer.weight, bias=layer.bias)
            os.replace(staged, dense_file)
            dense_entries.append(
                {"file": dense_file.name, "activation": layer.activation, "sha256": file_sha256(dense_file, settings)}
            )
    finally:
        for staged_path in (fp32, int8):
            with suppress(FileNotFoundError):
                staged_path.unlink()
    note = "; ".join(notes)
    manifest = {
        "network": {
            "file": final.name,
            "precision": precision,
            "inputs": list(inputs),
            "sha256": file_sha256(final, settings),
            "cosine": cosine,
            "quantised": quantised,
        },
        "dense": dense_entries,
        "min_cosine": MIN_COSINE,
        "note": note,
        **runtime_versions(),
    }
    _write_text_atomic(folder / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    del candidate  # its session read the staged file; the one kept reads the file the manifest names
    return OnnxText(_session(final, settings), inputs, precision, folder, dense), note
