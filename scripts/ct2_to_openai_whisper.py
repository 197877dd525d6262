"""Whisper weights in CTranslate2 format (faster-whisper's model folders) as an openai-whisper checkpoint.

openai-whisper reads ``.pt`` files holding ``{"dims": ..., "model_state_dict": ...}``; faster-whisper
reads a folder whose ``model.bin`` CTranslate2 wrote.  Both hold the same network, so the one can be
rewritten as the other without loss: this reads ``model.bin`` (CTranslate2's binary layout, version 6:
a format version, the spec's name and revision, then every variable with its name, shape, type and
bytes, then aliases between names) and renames the tensors to openai-whisper's.

What differs besides names:

* CTranslate2 fuses the self-attention's query, key and value projections into one linear layer
  (and the cross-attention's key and value into another); they are split back along the output
  rows.  The key projection has no bias in openai-whisper; CTranslate2 stores zeros there, and
  even a non-zero key bias would add the same number to every score a query gives, which the
  softmax cancels, so it is dropped.
* Layer norms' ``gamma``/``beta`` become ``weight``/``bias``; the output projection is an alias of
  the token embedding, as openai-whisper's decoder ties them too.
* Weights quantised to int8 (``weight`` with a per-row ``weight_scale``) are scaled back to floats.
  float16 weights stay float16 (as openai's published checkpoints are); other types become float32.

The word-alignment heads (config.json) are not written: openai-whisper keeps them outside its
checkpoints, and segment timestamps do not use them.

    python scripts/ct2_to_openai_whisper.py FASTER_WHISPER_FOLDER OUT.pt
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The binary layout this reader knows: what ctranslate2's model_spec writes as CURRENT_BINARY_VERSION 6.
CT2_BINARY_VERSION = 6
WHISPER_SPEC = "WhisperSpec"
# Revisions of WhisperSpec whose variables are named as below.
WHISPER_SPEC_REVISIONS = (3,)
# Bumped when the tensors written for the same model.bin change (part of the cached file's identity).
CONVERTER_REVISION = 2

# Type ids in model.bin (include/ctranslate2/types.h).
_DTYPES: dict[int, str] = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
_ACTIVATION_GELU = 3  # ctranslate2.specs.common_spec.Activation.GELU


class ConversionError(Exception):
    """The folder does not hold a CTranslate2 Whisper model this converter can read."""


@dataclass
class Ct2Model:
    """The contents of a CTranslate2 ``model.bin``: variables by name (aliases resolved to the same array)."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = memoryview(data)  # slices share the bytes
        self.pos = 0
        self.path = path

    def take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise ConversionError(f"{self.path} ends early: it is truncated or not a CTranslate2 model.bin")
        piece = self.data[self.pos : self.pos + size]
        self.pos += size
        return piece

    def number(self, fmt: str) -> int:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return int(value)

    def string(self) -> str:
        size = self.number("<H")  # length including the closing zero byte
        raw = bytes(self.take(size))
        if size == 0 or raw[-1] != 0:
            raise ConversionError(f"{self.path} is not a CTranslate2 model.bin (a name is not zero-terminated)")
        return raw[:-1].decode("utf-8")


def _array(raw: memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: its bits are the upper half of a float32's
        half = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return half.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def read_ct2_model(path: Path) -> Ct2Model:
    """Every variable and alias in a CTranslate2 ``model.bin``; raises :class:`ConversionError` for other files."""
    path = Path(path)
    # Read whole (a few hundred MB at most): the arrays are views into these bytes.
    reader = _Reader(path.read_bytes(), path)
    version = reader.number("<I")
    if version != CT2_BINARY_VERSION:
        raise ConversionError(
            f"{path} is CTranslate2 model format {version}; this converter reads format {CT2_BINARY_VERSION} "
            "(re-convert the model with a recent ctranslate2)."
        )
    spec = reader.string()
    revision = reader.number("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.number("<I")):
        name = reader.string()
        shape = tuple(reader.number("<I") for _ in range(reader.number("<B")))
        type_id = reader.number("<B")
        if type_id not in _DTYPES:
            raise ConversionError(f"{path}: the variable {name} has an unknown type ({type_id})")
        size = reader.number("<I")
        dtype = _DTYPES[type_id]
        expected = int(np.prod(shape, dtype=np.int64)) * (2 if dtype == "bfloat16" else np.dtype(dtype).itemsize)
        if size != expected:
            raise ConversionError(f"{path}: the variable {name} holds {size} bytes, not {expected}")
        variables[name] = _array(reader.take(size), dtype, shape)
    aliases: dict[str, str] = {}
    for _ in range(reader.number("<I")):
        alias, target = reader.string(), reader.string()
        aliases[alias] = target
    if reader.pos != len(reader.data):
        raise ConversionError(f"{path} has {len(reader.data) - reader.pos} bytes after its last entry")
    for alias, target in aliases.items():
        if target not in variables:
            raise ConversionError(f"{path}: {alias} is an alias of {target}, which is not in the file")
        variables[alias] = variables[target]
    return Ct2Model(spec, revision, variables, aliases)


def _layer_count(variables: dict[str, np.ndarray], prefix: str) -> int:
    count = 0
    while any(name.startswith(f"{prefix}/layer_{count}/") for name in variables):
        count += 1
    return count


def _scalar(variables: dict[str, np.ndarray], name: str) -> int:
    return int(variables[name].reshape(-1)[0])


def whisper_dims(model: Ct2Model) -> dict[str, int]:
    """openai-whisper's ``ModelDimensions`` (as a dict of ints) for a CTranslate2 Whisper model."""
    v = model.variables
    try:
        return {
            "n_mels": int(v["encoder/conv1/weight"].shape[1]),
            "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
            "n_audio_state": int(v["encoder/conv1/weight"].shape[0]),
            "n_audio_head": _scalar(v, "encoder/num_heads"),
            "n_audio_layer": _layer_count(v, "encoder"),
            "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
            "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
            "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
            "n_text_head": _scalar(v, "decoder/num_heads"),
            "n_text_layer": _layer_count(v, "decoder"),
        }
    except KeyError as exc:
        raise ConversionError(f"the model lacks the variable {exc.args[0]}, which every Whisper model has") from exc


def _check_whisper(model: Ct2Model, path: Path) -> None:
    if model.spec != WHISPER_SPEC:
        raise ConversionError(f"{path} holds a CTranslate2 {model.spec}, not a Whisper model")
    if model.revision not in WHISPER_SPEC_REVISIONS:
        raise ConversionError(
            f"{path} is a WhisperSpec of revision {model.revision}; this converter knows revision(s) "
            f"{', '.join(map(str, WHISPER_SPEC_REVISIONS))}"
        )
    v = model.variables
    # The decoder options openai-whisper's architecture fixes: pre-norm, GELU, no ALiBi, unscaled embeddings.
    expected = {"decoder/pre_norm": 1, "decoder/activation": _ACTIVATION_GELU, "decoder/alibi": 0}
    for name, value in expected.items():
        if name in v and _scalar(v, name) != value:
            raise ConversionError(
                f"{path}: {name} is {_scalar(v, name)}, where openai-whisper's architecture has {value}"
            )
    if "decoder/scale_embeddings" in v and float(v["decoder/scale_embeddings"].reshape(-1)[0]) not in (0.0, 1.0):
        raise ConversionError(f"{path}: the decoder scales its embeddings, which openai-whisper's does not")


class _Mapper:
    """Takes variables from the CTranslate2 model by name, remembering which were used."""

    def __init__(self, variables: dict[str, np.ndarray]) -> None:
        self.variables = variables
        self.used: set[str] = set()

    def get(self, name: str) -> np.ndarray:
        if name not in self.variables:
            raise ConversionError(f"the model lacks the variable {name}, which every Whisper model has")
        self.used.add(name)
        return self.variables[name]

    def floats(self, name: str) -> np.ndarray:
        """A weight as floats: int8/int16 ones are scaled back by their ``<name>_scale`` (per row, or one number)."""
        value = self.get(name)
        if f"{name}_scale" in self.variables:
            scale = self.get(f"{name}_scale").astype(np.float32)
            return value.astype(np.float32) / scale.reshape(-1, *([1] * (value.ndim - 1)))
        if value.dtype.kind != "f":
            raise ConversionError(f"{name} is {value.dtype} without a {name}_scale to turn it into floats")
        return value

    def linear(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """A linear (or convolution) layer's float weight and its bias (None when absent)."""
        weight = self.floats(f"{name}/weight")
        bias = self.get(f"{name}/bias") if f"{name}/bias" in self.variables else None
        return weight, bias


def _floats(array: np.ndarray) -> np.ndarray:
    return array if array.dtype in (np.float16, np.float32) else array.astype(np.float32)


def openai_state_dict(model: Ct2Model, dims: dict[str, int]) -> dict[str, np.ndarray]:
    """The tensors of openai-whisper's ``Whisper`` state_dict, as numpy arrays, from a CTranslate2 model."""
    m = _Mapper(model.variables)
    out: dict[str, np.ndarray] = {}

    def put_linear(target: str, source: str) -> None:
        weight, bias = m.linear(source)
        out[f"{target}.weight"] = weight
        if bias is None:
            raise ConversionError(f"{source} has no bias, which openai-whisper's layer has")
        out[f"{target}.bias"] = bias

    def put_norm(target: str, source: str) -> None:
        out[f"{target}.weight"] = m.get(f"{source}/gamma")
        out[f"{target}.bias"] = m.get(f"{source}/beta")

    def put_split(target: str, source: str, parts: tuple[str, ...], state: int) -> None:
        weight, bias = m.linear(source)
        if weight.shape != (state * len(parts), state) or bias is None or bias.shape != (state * len(parts),):
            raise ConversionError(
                f"{source} has shape {weight.shape}, not the fused {len(parts)} x {state} rows of {state} expected"
            )
        for i, part in enumerate(parts):
            out[f"{target}.{part}.weight"] = weight[i * state : (i + 1) * state]
            if part != "key":  # openai-whisper's key projection has no bias (see the module's notes)
                out[f"{target}.{part}.bias"] = bias[i * state : (i + 1) * state]

    for side, state, layers in (
        ("encoder", dims["n_audio_state"], dims["n_audio_layer"]),
        ("decoder", dims["n_text_state"], dims["n_text_layer"]),
    ):
        for i in range(layers):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            put_norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
            put_split(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"), state)
            put_linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
            if side == "decoder":
                put_norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
                put_linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
                put_split(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"), state)
                put_linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
            put_norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
            put_linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
            if out[f"{dst}.mlp.0.weight"].shape != (4 * state, state):
                raise ConversionError(
                    f"{src}/ffn/linear_0 has shape {out[f'{dst}.mlp.0.weight'].shape}; openai-whisper's MLP "
                    f"has {4 * state} x {state}"
                )
            put_linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    for conv in ("conv1", "conv2"):
        weight, bias = m.linear(f"encoder/{conv}")
        if bias is None:
            raise ConversionError(f"encoder/{conv} has no bias, which openai-whisper's layer has")
        out[f"encoder.{conv}.weight"], out[f"encoder.{conv}.bias"] = weight, bias
    out["encoder.positional_embedding"] = m.get("encoder/position_encodings/encodings")
    put_norm("encoder.ln_post", "encoder/layer_norm")
    embedding = m.floats("decoder/embeddings/weight")
    out["decoder.token_embedding.weight"] = embedding
    out["decoder.positional_embedding"] = m.get("decoder/position_encodings/encodings")
    put_norm("decoder.ln", "decoder/layer_norm")

    # The output projection must be the token embedding: openai-whisper has no separate one.
    if "decoder/projection/weight" in model.variables:
        tied = model.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight"
        if not tied and not np.array_equal(m.floats("decoder/projection/weight"), embedding):
            raise ConversionError("the decoder's output projection differs from its token embedding")
        m.used.update(("decoder/projection/weight", "decoder/projection/weight_scale"))
    if "decoder/projection/bias" in model.variables and np.any(m.get("decoder/projection/bias")):
        raise ConversionError("the decoder's output projection has a bias, which openai-whisper's has not")

    # Options (scalars) were checked by _check_whisper; any other tensor left over would be lost.
    left = sorted(
        name for name, value in model.variables.items() if name not in m.used and value.ndim > 0 and value.size > 1
    )
    if left:
        raise ConversionError(f"the model has variables openai-whisper has no place for: {', '.join(left[:5])}")
    return {name: _floats(array) for name, array in out.items()}


def openai_checkpoint(folder: Path) -> dict[str, Any]:
    """``{"dims": ..., "model_state_dict": ...}`` (torch tensors) for the CTranslate2 Whisper model in ``folder``."""
    import torch

    path = Path(folder) / "model.bin"
    if not path.is_file():
        raise ConversionError(f"{folder} has no model.bin: it is not a CTranslate2 model folder")
    model = read_ct2_model(path)
    _check_whisper(model, path)
    dims = whisper_dims(model)
    state = openai_state_dict(model, dims)
    return {
        "dims": dims,
        "model_state_dict": {
            name: torch.from_numpy(np.array(array, copy=True, order="C")) for name, array in state.items()
        },
    }


def convert(folder: Path, out_path: Path) -> Path:
    """Write the CTranslate2 Whisper model in ``folder`` as an openai-whisper checkpoint at ``out_path``.

    The file loads with ``whisper.load_model(out_path)`` and with ``torch.load(weights_only=True)``.
    Raises :class:`ConversionError` when ``folder`` is not a CTranslate2 Whisper model this can read.
    """
    import torch

    checkpoint = openai_checkpoint(folder)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Through a file object, torch names the archive inside "archive" rather than after the
    # file, so the same model.bin always gives the same bytes.
    with open(out_path, "wb") as f:
        torch.save(checkpoint, f)
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("folder", type=Path, help="a faster-whisper (CTranslate2) model folder")
    parser.add_argument("out", type=Path, help="the .pt file to write")
    args = parser.parse_args(argv)
    try:
        convert(args.folder, args.out)
    except (ConversionError, OSError) as exc:
        print(f"Could not convert {args.folder}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
