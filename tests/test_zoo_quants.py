"""Both starter models in the llama.cpp file types of the newer quant types (tests/zoo_quants.py), compared
live with llama.cpp: perplexity within 2% (test_zoo.PPL_TOLERANCE) where the file still predicts text, logits otherwise, and greedy
decoding (test_zoo.compare_with_llama_cpp). The first tensor of each newer type in these files (real
blocks made by llama.cpp's quantizer) dequantizes bit-identically to gguf.quants.dequantize."""
from __future__ import annotations

import numpy as np
import pytest
from gguf.quants import dequantize

from conftest import model_path, reference_file
from quant_reference import NEWER
from test_zoo import PPL_TOLERANCE, SOURCES, compare_with_llama_cpp
from zoo_quants import CASES, build_quant_case


@pytest.fixture(scope="module")
def text() -> str:
    return reference_file("texts/apache-2.0.txt").read_text()


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def quant_file(request):
    case = request.param
    return case, build_quant_case(case, model_path(SOURCES[case.source]))


def test_quant_zoo_matches_llama_cpp(quant_file, text):
    from cython_kernels import quants
    from engine.gguf_file import GGUFFile

    case, path = quant_file
    gf = GGUFFile(path)
    try:
        present = {t.type_name for t in gf.tensors.values()}
        for name in case.types:
            assert name in present, f"{case.name}: no {name} tensor in the file (types: {sorted(present)})"
        newer = {t.name for t in NEWER} & present
        first = {}
        for t in gf.tensors.values():
            first.setdefault(t.type_name, t)
        for name, t in first.items():
            if name in newer:
                got = quants.dequantize(t.data, t.ggml_type, t.data.shape[:-1] + (t.ne[0],))
                want = dequantize(np.asarray(t.data), t.ggml_type).reshape(got.shape).astype(np.float32)
                assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"{case.name}: {t.name}"
    finally:
        gf.close()
    compare_with_llama_cpp(case.name, path, text, case.predicts_text, case.ppl_tolerance or PPL_TOLERANCE)
