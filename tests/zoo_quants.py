"""The quant zoo: the starter models in the llama.cpp file types (ftypes) that use the newer GGML quant types,
made by llama.cpp's own quantizer (``llama_model_quantize`` in llama-cpp-python, ``allow_requantize``:
the starter models' Q4_1 / Q4_K_M weights are dequantized and quantized again).

Two starter-model facts shape the mixes: their widths (576, 640) are not multiples of 256, so llama.cpp's
quantizer falls back (llama-quant.cpp) to IQ4_NL or Q4_0 / Q5_0 for every tensor whose rows are
576 / 640 long, and only ffn_down (rows of n_ff = 1536 / 2048) gets the ftype's 256-block type. That is
what such files look like for every model whose width is not a multiple of 256.

- Q2_K: its ftype puts Q3_K into ffn_down of models this small, so this case is quantized ``pure``
  (every tensor the ftype's base type, with the same fallbacks).
- IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M: the quantizer refuses them without an importance
  matrix (IQ3_XXS: its ftype puts Q3_K / IQ3_S into these models, and pure IQ3_XXS is refused), which
  the C API only takes as a C++ object. Those cases are written here instead: ffn_down becomes random
  blocks of the type (every bit pattern is a valid block) whose f16 scales give each row 0.3 times the
  RMS of the original row (at the full RMS, 30 layers of random weights make a chaotic model in which
  float rounding differences grow: median relative logit difference 0.39 against 0.035 at 0.3, on
  IQ2_XXS), the other tensors stay as they are. Such a model no longer predicts text, so it is compared
  with llama.cpp by logits, not perplexity.
- TQ1_0, TQ2_0 (ternary): the quantizer makes them, but rounding trained weights to {-1, 0, 1} in every
  ffn_down leaves a chaotic model (PPL 1e6 .. 1e12, median relative logit difference 0.34 .. 0.64 from
  float rounding alone); they are written as random blocks as above.
- MXFP4: llama.cpp's MXFP4_MOE ftype (gpt-oss's) gives MXFP4 to the mixture-of-experts tensors (3-D) and Q8_0
  to every other tensor. So it is made from the zoo's gpt-oss (tests/zoo.py: SmolLM2 as gpt-oss, its FFN as
  4 experts), as the released gpt-oss files are: gpt-oss-MXFP4_MOE, the experts' MXFP4 blocks from
  llama.cpp's own quantizer. A dense model in that ftype has
  no MXFP4 at all, so smollm2-MXFP4 is converted instead: every FFN weight (ffn_gate, ffn_up, ffn_down)
  dequantized and quantized to MXFP4 by gguf-py's quantizer (gguf.quants.quantize, the port of
  quantize_row_mxfp4_ref). Both still predict text.

Files go to ``.cache/zoo`` (git ignored), named with a hash of this file, so they are rebuilt when it changes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from quant_reference.common import random_blocks, set_scales
from zoo import CASES as ZOO_CASES
from zoo import ZOO_DIR, Tensor, _write, build_case, read_source


@dataclass(frozen=True)
class QuantCase:
    """One quant-zoo file: ``source`` starter model ("smollm2" or "gemma3") in llama.cpp ftype ``ftype``
    (``LLAMA_FTYPE_MOSTLY_<ftype>``), or, with ``written`` set, ffn_down rewritten as random blocks of that
    GGML type, or, with ``converted`` set, the FFN weights quantized to that GGML type by gguf-py. With ``zoo``
    set, the file quantized is that tests/zoo.py case built from the starter, not the starter itself.
    ``types``: the GGML types the case is there to exercise (they must occur in the file). ``predicts_text``:
    compared by perplexity (else by logits)."""

    source: str
    ftype: str
    types: tuple[str, ...]
    pure: bool = False
    written: str | None = None
    predicts_text: bool = True
    converted: str | None = None
    zoo: str | None = None
    ppl_tolerance: float | None = None  # tighter than PPL_TOLERANCE where an issue asks (MoE: 1%)

    @property
    def name(self) -> str:
        return f"{self.zoo or self.source}-{self.ftype}"


BOTH = ("smollm2", "gemma3")
# ftype, the types it is there for, quantized pure, sources. Gemma 3 (a 262k vocabulary: each comparison
# costs a minute) takes the two files that hold all four of the Must types and Q4_0 / Q5_0 fallbacks;
# Q3_K_M / Q3_K_L put Q4_K / Q5_K (not Q3_K) into ffn_down of models this small.
_MADE = [
    ("Q2_K", ("Q2_K",), True, BOTH),
    ("Q3_K_S", ("Q3_K",), False, ("smollm2",)),
    ("Q3_K_M", ("Q4_K",), False, ("smollm2",)),
    ("Q3_K_L", ("Q5_K",), False, ("smollm2",)),
    ("IQ4_NL", ("IQ4_NL",), False, ("smollm2",)),
    ("IQ4_XS", ("IQ4_XS", "IQ4_NL"), False, BOTH),
    ("IQ3_S", ("IQ3_S",), False, ("smollm2",)),
]
_WRITTEN = ("IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0")

CASES = [QuantCase(src, ft, types, pure) for ft, types, pure, sources in _MADE for src in sources]
CASES += [QuantCase("smollm2", t, (t,), written=t, predicts_text=False) for t in _WRITTEN]
CASES += [QuantCase("smollm2", "MXFP4_MOE", ("MXFP4", "Q8_0"), zoo="gpt-oss", ppl_tolerance=0.01),
          QuantCase("smollm2", "MXFP4", ("MXFP4",), converted="MXFP4")]

#: RMS of the written random ffn_down rows relative to the original rows
RANDOM_RMS = 0.3

_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _quantize(case: QuantCase, src: Path, out: Path) -> None:
    import ctypes

    import llama_cpp

    log: list[str] = []  # the quantizer's per-tensor log, kept for the error message instead of stderr
    callback = llama_cpp.llama_log_callback(lambda level, text, user: log.append(text.decode("utf-8", "replace")))
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{case.ftype}")
    params.allow_requantize = True
    params.pure = case.pure
    params.nthread = 2
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), params)
    finally:
        llama_cpp.llama_log_set(llama_cpp.llama_log_callback(), ctypes.c_void_p(0))  # NULL: the default logger
    if rc != 0:
        tail = " | ".join(line.strip() for line in "".join(log).splitlines()[-8:] if line.strip())
        raise RuntimeError(f"llama_model_quantize failed for {case.name} ({rc}): {tail}")


def _write_random(case: QuantCase, src_path: Path, out: Path) -> None:
    """ffn_down of every block as random blocks of GGML type case.written, each block scaled so that its
    rows have RANDOM_RMS times the RMS of the original rows (the values of these types are d times a function of the
    quants, so a block is made with d = 1, measured with gguf.quants.dequantize, and d set after)."""
    t = T[case.written]
    src = read_source(src_path)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(case.name.encode()).digest()[:4], "little"))
    tensors = dict(src.tensors)
    for name, tensor in src.tensors.items():
        if not name.endswith("ffn_down.weight"):
            continue
        values = dequantize(tensor.data, tensor.ggml_type).astype(np.float64)
        n_rows, n = values.shape
        nb = n // 256
        blocks = random_blocks(t, n_rows, n, rng, scale=np.ones(n_rows * nb)).reshape(n_rows * nb, -1)
        rms_unit = np.sqrt(np.mean(dequantize(blocks, t).reshape(n_rows, nb, 256).astype(np.float64) ** 2, axis=2))
        rms_want = np.sqrt(np.mean(values**2, axis=1))[:, None]
        set_scales(t, blocks, (RANDOM_RMS * rms_want / np.maximum(rms_unit, 1e-30)).reshape(-1))
        tensors[name] = Tensor(blocks.reshape(n_rows, -1), t)
    _write(out, src.arch, dict(src.kv), tensors)


def _write_converted(case: QuantCase, src_path: Path, out: Path) -> None:
    """ffn_gate, ffn_up and ffn_down of every block quantized to GGML type case.converted by gguf-py."""
    t = T[case.converted]
    src = read_source(src_path)
    tensors = dict(src.tensors)
    for name, tensor in src.tensors.items():
        if name.endswith(("ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")):
            values = dequantize(tensor.data, tensor.ggml_type).astype(np.float32)
            tensors[name] = Tensor(np.ascontiguousarray(quantize(values, t)).reshape(values.shape[0], -1), t)
    _write(out, src.arch, dict(src.kv), tensors)


def build_quant_case(case: QuantCase, source_path: Path) -> Path:
    """Build (once per version of this file) and return the file of one case."""
    ZOO_DIR.mkdir(parents=True, exist_ok=True)
    path = ZOO_DIR / f"q-{case.name}-{_HASH}.gguf"
    if path.is_file():
        return path
    for stale in ZOO_DIR.glob(f"q-{case.name}-*"):  # older versions, and parts of interrupted builds
        stale.unlink()
    tmp = path.with_suffix(".part")
    if case.zoo:
        source_path = build_case(next(c for c in ZOO_CASES if c.name == case.zoo), source_path)
    if case.written:
        _write_random(case, source_path, tmp)
    elif case.converted:
        _write_converted(case, source_path, tmp)
    else:
        _quantize(case, source_path, tmp)
    tmp.replace(path)
    return path
