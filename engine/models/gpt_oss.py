"""gpt-oss (``general.architecture = gpt-oss``): OpenAI's gpt-oss-20b and gpt-oss-120b.

A pre-norm block whose FFN is a mixture of experts, with what llama.cpp's ``src/models/openai-moe.cpp``
adds to the plain block:
- biases on Q, K, V (optional, as llama.cpp's create_tensor_qkv) and on the attention output;
- attention sinks: one learned logit per query head (``attn_sinks``) in the softmax's denominator;
- sliding-window attention (``attention.sliding_window``, 128 in the released models) on even layers
  (pattern 2, ``llama_hparams::set_swa_pattern``), full attention on odd ones, one RoPE base for both
  (``rope.freq_base_swa`` if present); NEOX RoPE with YaRN scaling (``rope.scaling.*``);
- the pre-FFN norm is stored as ``post_attention_norm``;
- experts: a router with a bias, the ``expert_used_count`` largest router logits chosen and their
  softmax taken as the weights (LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT, not renormalized), biased
  gate / up / down experts of width ``expert_feed_forward_length``, and the clamped SwiGLU
  (LLM_FFN_SWIGLU_OAI_MOE: alpha 1.702, limit 7); the released files store the experts in MXFP4;
- an untied ``output.weight``.
Sources: llama.cpp ``src/models/openai-moe.cpp`` (load_arch_hparams, load_arch_tensors, graph),
``src/llama-graph.cpp`` build_moe_ffn, ``src/llama-model.cpp`` llama_model_rope_type (NEOX).
"""
from __future__ import annotations

from ..gguf_file import GGUFError, GGUFFile
from .base import (ACT_SWIGLU_OAI, MAX_CTX, MOE_SOFTMAX_WEIGHT, HParams, Tensor, TensorTable, attn_output, moe_ffn,
                   norm, qkv, read_common, read_moe, swa_hparams, swa_layers)

ARCH = "gpt-oss"
MOE = True
TENSORS = TensorTable(
    layer=(
        norm("attn_norm", "attn_norm"),
        norm("post_attention_norm", "ffn_norm"),  # the norm before the experts
        *qkv(),
        *attn_output(bias=True),
        Tensor("blk.{i}.attn_sinks.weight", "attn_sinks", lambda h: (h.n_head,)),
        *moe_ffn(),
        Tensor("blk.{i}.ffn_gate_inp.bias", "b_gate_inp", lambda h: (h.n_expert,)),
        Tensor("blk.{i}.ffn_gate_exps.bias", "b_gate_exps", lambda h: (h.n_expert * h.n_ff_exp,)),
        Tensor("blk.{i}.ffn_up_exps.bias", "b_up_exps", lambda h: (h.n_expert * h.n_ff_exp,)),
        Tensor("blk.{i}.ffn_down_exps.bias", "b_down_exps", lambda h: (h.n_expert * h.n_embd,)),
    ),
    output="required",
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a gpt-oss model's :class:`HParams` from its GGUF metadata.

    Raises:
        GGUFError: missing or out-of-range keys (``expert_feed_forward_length`` and
            ``attention.sliding_window`` are required, as llama.cpp requires them).
    """
    common = read_common(gf, ARCH)
    window = gf.get_int(f"{ARCH}.attention.sliding_window", None, lo=1, hi=MAX_CTX)
    if window is None:
        raise GGUFError(gf.path, f"missing metadata key {ARCH}.attention.sliding_window")
    swa_base = gf.get_float(f"{ARCH}.rope.freq_base_swa", common["rope_base"], lo=1.0, hi=1e12)
    is_swa = swa_layers(gf, ARCH, common["n_layer"], 2)
    common.update(attn_scale=common["n_rot"] ** -0.5,  # 1 / sqrt(n_rot), as openai-moe.cpp
                  **swa_hparams(is_swa, window, swa_base, common["rope_base"]))
    return HParams(**common, rope_neox=True, act=ACT_SWIGLU_OAI, moe_gating=MOE_SOFTMAX_WEIGHT, moe_norm_w=False,
                   **read_moe(gf, ARCH, None))


def tensors(hp: HParams) -> TensorTable:
    """The gpt-oss tensor table."""
    return TENSORS
