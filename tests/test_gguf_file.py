"""GGUF loading: the header parser agrees with gguf.GGUFReader, loading maps without copying, and
every kind of bad file gets one clear GGUFError naming the file and the problem."""
from __future__ import annotations

import resource
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from engine.gguf_file import GGUFError, GGUFFile
from engine.model import load_model


def test_parser_matches_gguf_reader(smollm2_path):
    """gguf's own reader is the oracle for metadata and the tensor directory (SmolLM2: its reader
    is fast enough on a 49k vocabulary)."""
    ref = gguf.GGUFReader(smollm2_path)
    gf = GGUFFile(smollm2_path)
    ref_keys = [k for k in ref.fields if not k.startswith("GGUF.")]
    assert list(gf.metadata) == ref_keys
    for key in ref_keys:
        field = ref.fields[key]
        expected = field.contents()
        actual = gf.metadata[key]
        if isinstance(actual, np.ndarray):
            assert np.array_equal(actual, np.asarray(expected)), key
        else:
            assert actual == expected, key
    assert [t.name for t in ref.tensors] == list(gf.tensors)
    for t in ref.tensors:
        mine = gf.tensors[t.name]
        assert mine.ggml_type == int(t.tensor_type)
        assert mine.offset == t.data_offset
        assert mine.n_bytes == t.n_bytes
        assert tuple(int(x) for x in t.shape) == mine.ne


def test_load_maps_without_copying(any_model_path):
    """Weights stay in the page cache: loading adds far less private memory than the file size.
    (Load time is a benchmark figure, printed by `fireside run`, not asserted here.)"""
    load_model(any_model_path)  # warm the page cache and the tokenizer's one-time allocations
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model = load_model(any_model_path)
    # Weights are views into the mapping, not copies.
    t = model.gguf.tensor("blk.0.ffn_up.weight")
    assert not t.data.flags.owndata and not t.data.flags.writeable
    # Peak RSS growth stays far below the file size: nothing was read into private memory.
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert growth < 100 * 2**20, f"RSS grew by {growth / 2**20:.0f} MiB while loading"


# -- bad files ---------------------------------------------------------------------------------

def write_tiny_llama(path: Path, *, drop: str | None = None, q_type: gguf.GGMLQuantizationType | None = None,
                     q_shape: tuple[int, int] | None = None, arch: str = "llama") -> Path:
    """Write a one-layer llama-shaped GGUF with random F32 weights and no tokenizer."""
    n_embd, n_ff, n_vocab = 32, 64, 16
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    rng = np.random.default_rng(0)
    shapes = {
        "token_embd.weight": (n_vocab, n_embd), "output_norm.weight": (n_embd,),
        "blk.0.attn_norm.weight": (n_embd,), "blk.0.ffn_norm.weight": (n_embd,),
        "blk.0.attn_q.weight": q_shape or (n_embd, n_embd), "blk.0.attn_k.weight": (16, n_embd),
        "blk.0.attn_v.weight": (16, n_embd), "blk.0.attn_output.weight": (n_embd, n_embd),
        "blk.0.ffn_gate.weight": (n_ff, n_embd), "blk.0.ffn_up.weight": (n_ff, n_embd),
        "blk.0.ffn_down.weight": (n_embd, n_ff),
    }
    for name, shape in shapes.items():
        if name == drop:
            continue
        if name == "blk.0.attn_q.weight" and q_type is not None:
            block, size = gguf.GGML_QUANT_SIZES[q_type]
            raw = np.zeros((shape[0], shape[1] // block * size), np.uint8)
            w.add_tensor(name, raw, raw_dtype=q_type)
        else:
            w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def expect_error(path: Path, *fragments: str) -> GGUFError:
    with pytest.raises(GGUFError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_not_a_gguf(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("just some text, not a model\n")
    expect_error(path, "not a GGUF file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    expect_error(path, "not a GGUF file")


def test_truncated_header(tmp_path, smollm2_path):
    path = tmp_path / "cut-header.gguf"
    path.write_bytes(smollm2_path.read_bytes()[:5000])
    expect_error(path, "truncated")


def test_truncated_data(tmp_path, smollm2_path):
    path = tmp_path / "cut-data.gguf"
    data = smollm2_path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated", "tensor")


def test_unsupported_version(tmp_path, smollm2_path):
    path = tmp_path / "v99.gguf"
    data = bytearray(smollm2_path.read_bytes()[:4096])
    data[4:8] = struct.pack("<I", 99)
    path.write_bytes(bytes(data))
    expect_error(path, "unsupported GGUF version 99")


def test_unsupported_architecture(tmp_path):
    path = write_tiny_llama(tmp_path / "mamba.gguf", arch="mamba")
    expect_error(path, "unsupported architecture 'mamba'", "llama", "gemma3")


def test_unsupported_tensor_type(tmp_path):
    path = write_tiny_llama(tmp_path / "q8_1.gguf", q_type=gguf.GGMLQuantizationType.Q8_1)
    expect_error(path, "blk.0.attn_q.weight", "Q8_1", "not support")


@pytest.mark.parametrize("type_id, name", [(31, "Q4_0_4_4"), (33, "Q4_0_8_8"), (4, "Q4_2"), (36, "IQ4_NL_4_4")])
def test_removed_tensor_type_says_to_download_again(tmp_path, type_id, name):
    """Types llama.cpp removed get a message saying the file needs re-downloading in a current format (the
    tensor's type id is patched in a valid file: gguf's writer no longer knows these types)."""
    path = write_tiny_llama(tmp_path / "old.gguf", q_type=gguf.GGMLQuantizationType.Q4_0)
    data = bytearray(path.read_bytes())
    key = b"blk.0.attn_q.weight"
    at = data.index(key) + len(key)
    n_dims = struct.unpack_from("<I", data, at)[0]
    type_at = at + 4 + 8 * n_dims
    assert struct.unpack_from("<I", data, type_at)[0] == int(gguf.GGMLQuantizationType.Q4_0)
    struct.pack_into("<I", data, type_at, type_id)
    path.write_bytes(bytes(data))
    expect_error(path, "blk.0.attn_q.weight", name, "download the model again")


def test_missing_tensor(tmp_path):
    path = write_tiny_llama(tmp_path / "missing.gguf", drop="blk.0.ffn_up.weight")
    expect_error(path, "missing tensor blk.0.ffn_up.weight")


def test_inconsistent_shapes(tmp_path):
    path = write_tiny_llama(tmp_path / "shape.gguf", q_shape=(48, 32))
    expect_error(path, "inconsistent shapes", "blk.0.attn_q.weight")


def test_vocab_only_file_is_not_a_model(tmp_path, smollm2_path):
    src = GGUFFile(smollm2_path)
    w = gguf.GGUFWriter(str(tmp_path / "vocab.gguf"), "llama")
    w.add_string("tokenizer.ggml.model", src.metadata["tokenizer.ggml.model"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    expect_error(tmp_path / "vocab.gguf", "no tensors")
