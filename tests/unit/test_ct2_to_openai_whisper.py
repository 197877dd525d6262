"""The CTranslate2 -> openai-whisper converter, on a tiny Whisper written by CTranslate2's own converter.

A small Whisper (Hugging Face's implementation, seeded random weights, biases and norms made
non-trivial) is written as a CTranslate2 model.bin by ctranslate2's own Whisper loader and
writer, an independent path from names to bytes.  Converted back, openai-whisper's model must
give the same logits as the original for the same mel frames and tokens: every tensor has to
land in its place, the right way round, for that to hold.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from scripts.ct2_to_openai_whisper import ConversionError, convert, openai_checkpoint, read_ct2_model

STATE, HEADS, LAYERS, VOCAB, AUDIO_CTX, TEXT_CTX = 64, 4, 2, 96, 16, 12


@pytest.fixture(scope="module")
def original():
    """A tiny Hugging Face Whisper, its logits for fixed inputs, and those inputs."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        vocab_size=VOCAB,
        num_mel_bins=80,
        d_model=STATE,
        encoder_layers=LAYERS,
        decoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS,
        encoder_ffn_dim=4 * STATE,
        decoder_ffn_dim=4 * STATE,
        max_source_positions=AUDIO_CTX,
        max_target_positions=TEXT_CTX,
        decoder_start_token_id=1,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        # Initialised at zero and one, biases and norms would hide a swapped or dropped tensor.
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                parameter.normal_(0.0, 0.2)
    mel = torch.randn(1, 80, 2 * AUDIO_CTX)
    tokens = torch.tensor([[1, 5, 7, 9, 30, 64]])
    with torch.no_grad():
        logits = model(input_features=mel, decoder_input_ids=tokens).logits
    return model, mel, tokens, logits


def write_ct2(model, folder: Path, quantization: str) -> Path:
    """``model`` as a CTranslate2 Whisper folder, written by ctranslate2's converter code."""
    import copy

    from ctranslate2.converters.transformers import WhisperLoader  # type: ignore[import-untyped]

    # Quantising works in place on the tensors the spec shares with the model.
    spec = WhisperLoader().get_model_spec(copy.deepcopy(model))
    spec.register_vocabulary([f"token{i}" for i in range(VOCAB)])
    spec.validate()
    spec.optimize(quantization=quantization)
    folder.mkdir(parents=True)
    spec.save(str(folder))
    return folder


@pytest.mark.parametrize(("quantization", "tolerance"), [("float32", 1e-5), ("float16", 1e-3), ("int8", 1e-2)])
def test_converted_model_gives_the_original_logits(original, tmp_path, quantization, tolerance):
    from whisper.model import ModelDimensions, Whisper

    model, mel, tokens, expected = original
    folder = write_ct2(model, tmp_path / "ct2", quantization)
    checkpoint = openai_checkpoint(folder)
    assert checkpoint["dims"] == {
        "n_mels": 80,
        "n_audio_ctx": AUDIO_CTX,
        "n_audio_state": STATE,
        "n_audio_head": HEADS,
        "n_audio_layer": LAYERS,
        "n_vocab": VOCAB,
        "n_text_ctx": TEXT_CTX,
        "n_text_state": STATE,
        "n_text_head": HEADS,
        "n_text_layer": LAYERS,
    }
    whisper = Whisper(ModelDimensions(**checkpoint["dims"])).eval()
    keys = whisper.load_state_dict(checkpoint["model_state_dict"], strict=True)
    assert keys.missing_keys == [] and keys.unexpected_keys == []
    with torch.no_grad():
        logits = whisper(mel, tokens)
    scale = float(expected.abs().max())
    assert float((logits - expected).abs().max()) <= tolerance * scale
    # Float weights keep their type (half for half); quantised ones come back as floats.
    wanted = torch.float16 if quantization == "float16" else torch.float32
    assert checkpoint["model_state_dict"]["decoder.blocks.0.attn.query.weight"].dtype == wanted


def test_fused_projections_are_split_back_by_rows(original, tmp_path):
    model, *_ = original
    folder = write_ct2(model, tmp_path / "ct2", "float32")
    state = openai_checkpoint(folder)["model_state_dict"]
    attention = model.model.decoder.layers[1].encoder_attn
    assert torch.equal(state["decoder.blocks.1.cross_attn.key.weight"], attention.k_proj.weight)
    assert torch.equal(state["decoder.blocks.1.cross_attn.value.weight"], attention.v_proj.weight)
    assert torch.equal(state["decoder.blocks.1.cross_attn.value.bias"], attention.v_proj.bias)
    assert "decoder.blocks.1.cross_attn.key.bias" not in state
    layer = model.model.encoder.layers[0]
    assert torch.equal(state["encoder.blocks.0.attn.query.bias"], layer.self_attn.q_proj.bias)
    assert torch.equal(state["encoder.blocks.0.attn_ln.weight"], layer.self_attn_layer_norm.weight)
    assert torch.equal(state["encoder.blocks.0.mlp_ln.bias"], layer.final_layer_norm.bias)


def test_convert_writes_a_checkpoint_shoebox_loads(original, tmp_path):
    from engine.models.whisper import load_whisper_checkpoint

    model, mel, tokens, expected = original
    out = convert(write_ct2(model, tmp_path / "ct2", "float16"), tmp_path / "tiny.pt")
    loaded = load_whisper_checkpoint(out, "cpu", label="Whisper tiny", fix="")
    with torch.no_grad():
        assert float((loaded(mel, tokens) - expected).abs().max()) <= 1e-3 * float(expected.abs().max())


def test_reader_reads_names_shapes_and_aliases(original, tmp_path):
    model, *_ = original
    folder = write_ct2(model, tmp_path / "ct2", "float32")
    read = read_ct2_model(folder / "model.bin")
    assert (read.spec, read.revision) == ("WhisperSpec", 3)
    assert read.variables["encoder/conv1/weight"].shape == (STATE, 80, 3)
    assert read.variables["decoder/layer_0/self_attention/linear_0/weight"].shape == (3 * STATE, STATE)
    assert read.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert np.array_equal(read.variables["encoder/conv2/bias"], model.model.encoder.conv2.bias.detach().numpy())


def test_a_truncated_or_foreign_file_is_refused_in_words(original, tmp_path):
    model, *_ = original
    folder = write_ct2(model, tmp_path / "ct2", "float32")
    data = (folder / "model.bin").read_bytes()
    (folder / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="truncated"):
        convert(folder, tmp_path / "out.pt")
    (folder / "model.bin").write_bytes(struct.pack("<I", 3) + data[4:])
    with pytest.raises(ConversionError, match="format 3"):
        convert(folder, tmp_path / "out.pt")
    with pytest.raises(ConversionError, match=r"no model\.bin"):
        convert(tmp_path, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_the_same_model_converts_to_the_same_bytes(original, tmp_path):
    model, *_ = original
    folder = write_ct2(model, tmp_path / "ct2", "float16")
    first = convert(folder, tmp_path / "first.pt").read_bytes()
    assert convert(folder, tmp_path / "second.pt").read_bytes() == first
