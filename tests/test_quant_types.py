"""Every GGML type through the whole model. SmolLM2's layer matrices are re-quantized, layer by
layer, into F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and MXFP4 (with gguf's own quantize functions);
a twin file stores exactly the same weight values as F32. Both must give the same logits up to
the 8-bit activation rounding of the quantized kernels, so a wrong type path cannot hide behind
re-quantization noise. Q4_K and Q6_K run end to end in the Gemma starter model; Q5_K, which
gguf-py cannot produce, is covered by the kernel tests (test_dequant.py, test_vecdot.py)."""
from __future__ import annotations

import gguf
import numpy as np
import pytest

from engine.context import Context
from engine.gguf_file import GGUFFile
from engine.model import load_model

T = gguf.GGMLQuantizationType
CYCLE = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.MXFP4]
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def _value_type(value):
    if isinstance(value, str):
        return gguf.GGUFValueType.STRING
    if isinstance(value, bool):
        return gguf.GGUFValueType.BOOL
    if isinstance(value, int):
        return gguf.GGUFValueType.UINT32 if value >= 0 else gguf.GGUFValueType.INT32
    if isinstance(value, float):
        return gguf.GGUFValueType.FLOAT32
    return gguf.GGUFValueType.ARRAY


def _writer(path, src: GGUFFile) -> gguf.GGUFWriter:
    writer = gguf.GGUFWriter(str(path), arch=None)
    for key, value in src.metadata.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        writer.add_key_value(key, value, _value_type(value))
    return writer


def _close(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def twin_paths(smollm2_path, tmp_path_factory):
    """(mixed-type file, F32 file with the same values)."""
    src = GGUFFile(smollm2_path)
    folder = tmp_path_factory.mktemp("types")
    mixed, exact = _writer(folder / "mixed.gguf", src), _writer(folder / "f32.gguf", src)
    for name, t in src.tensors.items():
        qtype = T(t.ggml_type)
        suffix = name.split(".")[-2] if name.startswith("blk.") else ""
        if suffix in MATRICES:
            layer = int(name.split(".")[1])
            new_type = CYCLE[(layer + MATRICES.index(suffix)) % len(CYCLE)]
            raw = gguf.quants.quantize(gguf.quants.dequantize(t.data, qtype), new_type)
            mixed.add_tensor(name, raw, raw_dtype=new_type)
            exact.add_tensor(name, gguf.quants.dequantize(raw, new_type).astype(np.float32))
        else:
            mixed.add_tensor(name, t.data, raw_dtype=qtype)
            exact.add_tensor(name, t.data, raw_dtype=qtype)
    _close(mixed)
    _close(exact)
    return folder / "mixed.gguf", folder / "f32.gguf"


def test_every_type_computes_what_its_float_values_give(twin_paths, smollm2):
    mixed, exact = (load_model(p) for p in twin_paths)
    types = {t.type_name for t in mixed.gguf.tensors.values()}
    assert {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "MXFP4"} <= types
    tokens = smollm2.tokenizer.encode("The capital of France is Paris, and the capital of Italy is", add_special=True)
    ref = Context(exact, n_ctx=64).eval_logits(tokens, 0)
    got = Context(mixed, n_ctx=64).eval_logits(tokens, 0)
    for i in range(len(tokens)):
        corr = np.corrcoef(ref[i], got[i])[0, 1]
        assert corr > 0.998, (i, corr)
        assert np.argmax(ref[i]) == np.argmax(got[i]) or np.sort(ref[i])[-1] - np.sort(ref[i])[-2] < 0.5
