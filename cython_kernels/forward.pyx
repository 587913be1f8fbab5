"""The transformer forward pass, compiled, run with the GIL released.

One generic decoder-only block covers every supported architecture; the architecture files in
``engine/models/`` only choose its switches (pre-norms or not, biases, QK-norm per head or over the
whole row, post-norms, activation, RoPE style and scaling per layer, soft-capping, residual, embedding
and logit scales, sliding windows). The layer order follows llama.cpp's graph builders
(``src/models/llama.cpp``, ``qwen2.cpp``, ``phi3.cpp``, ``gemma2.cpp``, ``gemma3.cpp``, ``granite.cpp``,
``olmo2.cpp``) and karpathy/llama2.c ``run.c``.

State is allocated once per :class:`ForwardContext` (activation buffers sized for ``n_batch`` tokens and
the KV cache sized for ``n_ctx``); nothing is allocated inside the token loop.
"""
import numpy as np

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.math cimport logf
from libc.stdlib cimport calloc, free

from cython_kernels.quants cimport fs_block_elems, fs_row_bytes, fs_type_supported

from cython_kernels.ops cimport (
    fs_team, fs_team_tid, fs_job_fn, fs_pool, fs_pool_new, fs_pool_free, fs_pool_size, fs_pool_run, fs_matmul_team, fs_matmul2_team, fs_matmul3_team, fs_attention_team,
    fs_get_rows_team, fs_rmsnorm_team, fs_rope_team, fs_kv_store_team, fs_attention_batch_team, fs_batch_seg,
    fs_gated_act_team, fs_add_team, fs_scale_team,
    fs_softcap_team, fs_weight, fs_matmul, fs_ops_init, fs_rope, FS_MATMUL_ACT_BYTES, FS_ATTN_WORK_FLOATS,
    fs_rope_params, fs_rope_yarn_corr_dims, fs_attn_temp_team, fs_add_rows_team, fs_read_sum_team,
    fs_moe, fs_moe_work, fs_moe_work_sizes, fs_moe_ffn_team, FS_MOE_SOFTMAX, FS_MOE_SOFTMAX_WEIGHT,
    FS_MOE_MAX_USED, FS_MOE_WORK_BUFFERS,
)

fs_ops_init()

# numpy's layout of the Segment struct (five C ints), for building segment arrays in Python.
_SEGMENT_DTYPE = np.dtype([("seq", np.intc), ("pos0", np.intc), ("start", np.intc), ("n", np.intc),
                           ("logits_from", np.intc)])

ACT_SILU = 0
ACT_GELU_TANH = 1
ACT_SWIGLU_OAI = 2   # gpt-oss: min(g, 7) * sigmoid(1.702 min(g, 7)) * (clamp(u, -7, 7) + 1)


cdef struct LayerWeights:
    fs_weight wq, wk, wv, wo, w_gate, w_up, w_down
    const float *bq               # biases of the seven matrices (NULL if absent)
    const float *bk
    const float *bv
    const float *bo
    const float *b_gate
    const float *b_up
    const float *b_down
    const float *attn_norm        # RMSNorm before attention (NULL: the block reads x itself, OLMo 2)
    const float *ffn_norm         # RMSNorm before the FFN (NULL likewise)
    const float *q_norm           # RMSNorm of Q per head or over the row (Config.q_norm_n; NULL if absent)
    const float *k_norm
    const float *post_attn_norm   # RMSNorm of the attention output before the residual (NULL if absent)
    const float *post_ffn_norm
    const float *attn_sinks       # (n_head,) gpt-oss attention sinks (NULL if absent)
    fs_rope_params rope           # n_rot 0 = no RoPE on this layer; freq_factors: the short/only factors
    const float *rope_factors_long  # Phi-3 LongRoPE factors for n_ctx > n_ctx_orig (NULL if absent)
    int64_t window                # sliding-window size in tokens, 0 = full causal attention
    bint has_moe                  # the FFN is a mixture of experts (moe) instead of w_gate / w_up / w_down
    fs_moe moe                    # router and experts (fs_moe.h), when has_moe


cdef struct Config:
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, act
    int attn_scale_on_q   # scale Q before attention (Gemma, Phi-3) instead of the scores
    int q_norm_n, k_norm_n  # width of one QK-norm row: head_dim (per head) or the whole Q / K row
    int n_ctx_orig        # rope.scaling.original_context_length: n_ctx above it takes the long factors
    float eps, embd_scale, attn_scale, attn_softcap, logit_softcap, residual_scale, logit_scale
    float attn_temp_scale, attn_temp_offset, attn_temp_floor   # Llama 4 / Mistral 3 temperature (0 = off)
    int n_expert, n_expert_used, n_ff_exp   # mixture-of-experts layers (0 = none)
    int n_ff_shexp              # width of a shared expert (0 = none)
    int moe_gating, moe_norm_w  # FS_MOE_SOFTMAX / FS_MOE_SOFTMAX_WEIGHT; renormalize the chosen weights
    float moe_w_scale           # expert_weights_scale (0 = none)


# One sequence's part of a batch: tokens start .. start + n - 1 of the batch, at positions pos0 ..
# of sequence seq (its own KV cache rows); logits of its tokens logits_from .. n - 1 (-1: none).
ctypedef fs_batch_seg Segment


cdef struct Pass:
    # One forward pass as plain C data, run by every thread of the context's pool (_forward_job).
    Config c
    const LayerWeights *layers
    const fs_weight *tok_embd
    const fs_weight *output
    const float *output_norm
    const float *output_bias
    uint16_t *k_cache             # (n_layer, n_seq * n_ctx, n_head_kv * head_dim) f16 bits
    uint16_t *v_cache
    float *x
    float *xb
    float *q
    float *k
    float *v
    float *att
    float *hg
    float *hu
    uint8_t *act
    float *attn_work
    float *moe_out                # (n, n_embd) mixture-of-experts output (NULL without MoE layers)
    fs_moe_work moe_work
    const int32_t *pos            # (n,) each token's position in its sequence
    int64_t n_ctx                 # cache rows per sequence
    int n_seq
    bint long_rope
    const int32_t *tokens         # the batch: n tokens, in segments
    int n
    const Segment *segs
    int n_seg
    const int32_t *part           # (n,) each token's segment: matmuls give each its bits alone (fs_matmul_tile)
    int n_logits                  # rows of logits: the segments' n - logits_from summed
    const int32_t *logit_part     # (n_logits,) each logits row's segment
    float *logits                 # (n_logits, n_vocab), the segments' rows in order, or NULL


cdef fs_weight _weight(object w, int64_t n_out, int64_t n_in, str what) except *:
    """Fill an fs_weight from a dict {data: uint8 (n_out, row_bytes), type, n_in, n_out}, checked against the
    shape the config expects: the kernels read ``n_out`` rows of ``fs_row_bytes(type, n_in)`` bytes."""
    cdef fs_weight out
    cdef const uint8_t[:, ::1] data = w["data"]
    wtype = w["type"]
    if not fs_type_supported(wtype):
        raise ValueError(f"{what}: unsupported GGML type {wtype}")
    if w["n_in"] != n_in or w["n_out"] != n_out or data.shape[0] != n_out:
        raise ValueError(f"{what}: shape ({w['n_out']}, {w['n_in']}) with {data.shape[0]} rows, expected "
                         f"({n_out}, {n_in})")
    if n_in % fs_block_elems(wtype) or <size_t>data.shape[1] != fs_row_bytes(wtype, n_in):
        raise ValueError(f"{what}: rows of {data.shape[1]} bytes do not hold {n_in} elements of type {wtype}")
    out.data = &data[0, 0]
    out.type = wtype
    out.n_in = n_in
    out.n_out = n_out
    out.row_bytes = data.shape[1]
    return out


cdef const float *_vec(object a, list keep, int64_t n=-1, str what="") except? NULL:
    """A float32 vector's data pointer (NULL for None), checked to hold ``n`` elements when n >= 0."""
    cdef const float[::1] view
    if a is None:
        return NULL
    view = a
    if n >= 0 and view.shape[0] != n:
        raise ValueError(f"{what}: {view.shape[0]} elements, expected {n}")
    keep.append(a)
    return &view[0]


_CONFIG_INT = ("n_layer", "n_embd", "n_head", "n_head_kv", "head_dim", "n_ff", "n_vocab", "act", "attn_scale_on_q",
               "q_norm_n", "k_norm_n", "n_ctx_orig")
_CONFIG_FLOAT = ("eps", "embd_scale", "attn_scale", "attn_softcap", "logit_softcap", "residual_scale", "logit_scale",
                 "attn_temp_scale", "attn_temp_offset", "attn_temp_floor")
# Mixture-of-experts settings, optional (a dense model leaves them out).
_CONFIG_MOE = {"n_expert": 0, "n_expert_used": 0, "n_ff_exp": 0, "moe_gating": FS_MOE_SOFTMAX, "moe_norm_w": 0,
               "moe_w_scale": 0.0, "n_ff_shexp": 0}


cdef fs_rope_params _rope(dict r, list keep) except *:
    """Fill fs_rope_params from {n_rot, neox, base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow,
    n_ctx_orig, factors (float32 (n_rot/2,) or None)}."""
    cdef fs_rope_params rp
    rp.n_rot = r["n_rot"]
    rp.neox = r["neox"]
    rp.base = r["base"]
    rp.freq_scale = r["freq_scale"]
    rp.ext_factor = r["ext_factor"]
    rp.attn_factor = r["attn_factor"]
    rp.corr_dims[0] = 0
    rp.corr_dims[1] = 0
    if rp.n_rot > 0:
        fs_rope_yarn_corr_dims(rp.n_rot, r["n_ctx_orig"], rp.base, r["beta_fast"], r["beta_slow"], rp.corr_dims)
    rp.freq_factors = _vec(r.get("factors"), keep, rp.n_rot // 2, "rope factors")
    return rp


cdef fs_moe _moe(dict L, int n_expert, int n_used, int64_t n_embd, int64_t n_ff, int64_t n_sh, int gating, int norm_w,
                 float w_scale, int act, list keep, str where) except *:
    """Fill an fs_moe from a layer dict: ``w_gate_inp`` (n_expert, n_embd), ``w_gate_exps`` / ``w_up_exps``
    (n_expert * n_ff, n_embd), ``w_down_exps`` (n_expert * n_embd, n_ff), optional biases ``b_gate_inp``
    ``b_gate_exps`` ``b_up_exps`` ``b_down_exps`` and an optional shared expert ``w_gate_shexp`` /
    ``w_up_shexp`` (n_sh, n_embd), ``w_down_shexp`` (n_embd, n_sh) with its gate ``shexp_gate_inp``."""
    cdef fs_moe m
    m.router = _weight(L["w_gate_inp"], n_expert, n_embd, where + "w_gate_inp")
    m.gate = _weight(L["w_gate_exps"], <int64_t>n_expert * n_ff, n_embd, where + "w_gate_exps")
    m.up = _weight(L["w_up_exps"], <int64_t>n_expert * n_ff, n_embd, where + "w_up_exps")
    m.down = _weight(L["w_down_exps"], <int64_t>n_expert * n_embd, n_ff, where + "w_down_exps")
    m.n_expert = n_expert
    m.n_used = n_used
    m.gating = gating
    m.norm_w = norm_w
    m.w_scale = w_scale
    m.act = act
    m.router_b = _vec(L.get("b_gate_inp"), keep, n_expert, where + "b_gate_inp")
    m.gate_b = _vec(L.get("b_gate_exps"), keep, <int64_t>n_expert * n_ff, where + "b_gate_exps")
    m.up_b = _vec(L.get("b_up_exps"), keep, <int64_t>n_expert * n_ff, where + "b_up_exps")
    m.down_b = _vec(L.get("b_down_exps"), keep, <int64_t>n_expert * n_embd, where + "b_down_exps")
    m.sh_gate.data = NULL
    m.sh_gate_inp = NULL
    if "w_gate_shexp" in L:   # a shared expert (Qwen2-MoE, Granite-MoE shared)
        if n_sh <= 0:
            raise ValueError(f"{where}a shared expert needs n_ff_shexp > 0")
        m.sh_gate = _weight(L["w_gate_shexp"], n_sh, n_embd, where + "w_gate_shexp")
        m.sh_up = _weight(L["w_up_shexp"], n_sh, n_embd, where + "w_up_shexp")
        m.sh_down = _weight(L["w_down_shexp"], n_embd, n_sh, where + "w_down_shexp")
        m.sh_gate_inp = _vec(L.get("shexp_gate_inp"), keep, n_embd, where + "shexp_gate_inp")
    return m


cdef fs_moe_work _moe_buffers(int64_t n_tok, int n_expert, int n_used, int64_t n_embd, int64_t n_ff, int64_t n_sh,
                              list keep) except *:
    """The experts' scratch (fs_moe_work) for batches of n_tok tokens, in arrays appended to ``keep`` (each
    buffer 64-byte aligned, as numpy's own 16-byte alignment may not suit the float kernels' loads)."""
    cdef size_t sizes[FS_MOE_WORK_BUFFERS]
    cdef void *ptrs[FS_MOE_WORK_BUFFERS]
    cdef uint8_t[::1] b
    cdef fs_moe_work w
    fs_moe_work_sizes(n_tok, n_expert, n_used, n_embd, n_ff, n_sh, sizes)
    for i in range(FS_MOE_WORK_BUFFERS):
        arr = np.zeros(max(<Py_ssize_t>sizes[i], 64) + 64, np.uint8)
        b = arr
        ptrs[i] = <void *>(&b[0] + ((64 - (<size_t>&b[0]) % 64) % 64))
        keep.append(arr)
    w.logits = <float *>ptrs[0]; w.ids = <int32_t *>ptrs[1]; w.weights = <float *>ptrs[2]
    w.offsets = <int32_t *>ptrs[3]; w.order = <int32_t *>ptrs[4]; w.row_of = <int32_t *>ptrs[5]
    w.active = <int32_t *>ptrs[6]; w.act = <uint8_t *>ptrs[7]; w.hg = <float *>ptrs[8]; w.hu = <float *>ptrs[9]
    w.y = <float *>ptrs[10]; w.sh_act = <uint8_t *>ptrs[11]; w.sh_hg = <float *>ptrs[12]; w.sh_hu = <float *>ptrs[13]
    w.sh_y = <float *>ptrs[14]; w.sh_w = <float *>ptrs[15]; w.pair_part = <int32_t *>ptrs[16]
    return w


cdef class CompiledModel:
    """Weights and hyper-parameters of one model, as raw pointers into the memory-mapped file.

    Args:
        config: dict with the :c:type:`Config` fields (ints and floats).
        layers: one dict per layer: weights ``wq wk wv wo w_gate w_up w_down`` as
            ``{data, type, n_in, n_out}`` dicts (``data`` uint8 (n_out, row_bytes), possibly a row view of a
            fused tensor), or for a mixture-of-experts layer ``w_gate_inp`` (n_expert, n_embd) and the
            stacked experts ``w_gate_exps w_up_exps`` (n_expert * n_ff_exp, n_embd) and ``w_down_exps``
            (n_expert * n_embd, n_ff_exp) instead of the three FFN matrices (config ``n_expert``,
            ``n_expert_used``, ``n_ff_exp``, ``moe_gating``, ``moe_norm_w``, ``moe_w_scale``); vectors (float32 1-D arrays or None) ``bq bk bv bo b_gate b_up b_down attn_norm
            ffn_norm q_norm k_norm post_attn_norm post_ffn_norm``; ``rope`` (see :func:`_rope`, plus
            ``factors_long``) and ``window``.
        tok_embd, output: weight dicts; output_norm: float32 (n_embd,); output_bias: float32 (n_vocab,) or None.

    The numpy arrays passed in are kept alive by this object, so the pointers stay valid.

    Raises:
        KeyError: a config field is missing. ValueError: layer count or RoPE settings inconsistent.
    """
    cdef Config cfg
    cdef LayerWeights *layers
    cdef fs_weight tok_embd
    cdef fs_weight output
    cdef const float *output_norm
    cdef const float *output_bias
    cdef list _keep
    cdef bint any_dense   # some layer has a dense FFN (the activation buffers need n_ff columns)
    cdef bint any_moe

    def __cinit__(self):
        self.layers = NULL

    def __init__(self, dict config, list layers, dict tok_embd, dict output, output_norm, output_bias=None):
        cdef int i
        cdef LayerWeights *Lw
        cdef Config *c = &self.cfg
        cdef int64_t qw, kvw
        self._keep = [config, layers, tok_embd, output, output_norm, output_bias]
        for key in (*_CONFIG_INT, *_CONFIG_FLOAT):
            if key not in config:
                raise KeyError(f"CompiledModel config lacks {key}")
        self.cfg.n_layer = config["n_layer"]; self.cfg.n_embd = config["n_embd"]
        self.cfg.n_head = config["n_head"]; self.cfg.n_head_kv = config["n_head_kv"]
        self.cfg.head_dim = config["head_dim"]; self.cfg.n_ff = config["n_ff"]
        self.cfg.n_vocab = config["n_vocab"]; self.cfg.act = config["act"]
        self.cfg.attn_scale_on_q = config["attn_scale_on_q"]
        self.cfg.q_norm_n = config["q_norm_n"]; self.cfg.k_norm_n = config["k_norm_n"]
        self.cfg.n_ctx_orig = config["n_ctx_orig"]
        self.cfg.eps = config["eps"]; self.cfg.embd_scale = config["embd_scale"]
        self.cfg.attn_scale = config["attn_scale"]; self.cfg.attn_softcap = config["attn_softcap"]
        self.cfg.logit_softcap = config["logit_softcap"]; self.cfg.residual_scale = config["residual_scale"]
        self.cfg.logit_scale = config["logit_scale"]
        self.cfg.attn_temp_scale = config["attn_temp_scale"]; self.cfg.attn_temp_offset = config["attn_temp_offset"]
        self.cfg.attn_temp_floor = config["attn_temp_floor"]
        moe_cfg = {key: config.get(key, default) for key, default in _CONFIG_MOE.items()}
        self.cfg.n_expert = moe_cfg["n_expert"]; self.cfg.n_expert_used = moe_cfg["n_expert_used"]
        self.cfg.n_ff_exp = moe_cfg["n_ff_exp"]; self.cfg.moe_gating = moe_cfg["moe_gating"]
        self.cfg.moe_norm_w = moe_cfg["moe_norm_w"]; self.cfg.moe_w_scale = moe_cfg["moe_w_scale"]
        self.cfg.n_ff_shexp = moe_cfg["n_ff_shexp"]
        for name, value in (("n_layer", c.n_layer), ("n_embd", c.n_embd), ("n_head", c.n_head),
                            ("n_head_kv", c.n_head_kv), ("head_dim", c.head_dim), ("n_ff", c.n_ff),
                            ("n_vocab", c.n_vocab), ("q_norm_n", c.q_norm_n), ("k_norm_n", c.k_norm_n)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if c.n_head % c.n_head_kv:
            raise ValueError(f"n_head {c.n_head} is not a multiple of n_head_kv {c.n_head_kv}")
        qw = <int64_t>c.n_head * c.head_dim
        kvw = <int64_t>c.n_head_kv * c.head_dim
        if qw % c.q_norm_n or kvw % c.k_norm_n:
            raise ValueError("q_norm_n / k_norm_n must divide the Q / K row widths")
        if c.act not in (ACT_SILU, ACT_GELU_TANH, ACT_SWIGLU_OAI):
            raise ValueError(f"unknown activation {c.act}")
        for key in _CONFIG_FLOAT:
            if not np.isfinite(config[key]):
                raise ValueError(f"{key} = {config[key]!r} is not finite")
        if len(layers) != c.n_layer:
            raise ValueError(f"expected {c.n_layer} layers, got {len(layers)}")
        if any("w_gate_inp" in L for L in layers):
            if not (1 <= c.n_expert_used <= min(c.n_expert, FS_MOE_MAX_USED)) or c.n_ff_exp <= 0:
                raise ValueError(f"mixture of experts: expert_used_count {c.n_expert_used} must be 1 .. "
                                 f"min(expert_count {c.n_expert}, {FS_MOE_MAX_USED}), n_ff_exp {c.n_ff_exp} positive")
            if c.moe_gating not in (FS_MOE_SOFTMAX, FS_MOE_SOFTMAX_WEIGHT):
                raise ValueError(f"unknown expert gating function {c.moe_gating}")
            if not np.isfinite(c.moe_w_scale):
                raise ValueError(f"moe_w_scale = {c.moe_w_scale!r} is not finite")
        self.layers = <LayerWeights *>calloc(c.n_layer, sizeof(LayerWeights))
        if self.layers == NULL:
            raise MemoryError()
        for i, L in enumerate(layers):
            Lw = &self.layers[i]
            Lw.wq = _weight(L["wq"], qw, c.n_embd, f"layer {i} wq")
            Lw.wk = _weight(L["wk"], kvw, c.n_embd, f"layer {i} wk")
            Lw.wv = _weight(L["wv"], kvw, c.n_embd, f"layer {i} wv")
            Lw.wo = _weight(L["wo"], c.n_embd, qw, f"layer {i} wo")
            if "w_gate_inp" in L:
                Lw.has_moe = True
                self.any_moe = True
                Lw.moe = _moe(L, c.n_expert, c.n_expert_used, c.n_embd, c.n_ff_exp, c.n_ff_shexp, c.moe_gating,
                              c.moe_norm_w, c.moe_w_scale, c.act, self._keep, f"layer {i} ")
            else:
                self.any_dense = True
                Lw.w_gate = _weight(L["w_gate"], c.n_ff, c.n_embd, f"layer {i} w_gate")
                Lw.w_up = _weight(L["w_up"], c.n_ff, c.n_embd, f"layer {i} w_up")
                Lw.w_down = _weight(L["w_down"], c.n_embd, c.n_ff, f"layer {i} w_down")
            Lw.bq = _vec(L.get("bq"), self._keep, qw, "bq"); Lw.bk = _vec(L.get("bk"), self._keep, kvw, "bk")
            Lw.bv = _vec(L.get("bv"), self._keep, kvw, "bv"); Lw.bo = _vec(L.get("bo"), self._keep, c.n_embd, "bo")
            Lw.b_gate = _vec(L.get("b_gate"), self._keep, c.n_ff, "b_gate")
            Lw.b_up = _vec(L.get("b_up"), self._keep, c.n_ff, "b_up")
            Lw.b_down = _vec(L.get("b_down"), self._keep, c.n_embd, "b_down")
            Lw.attn_norm = _vec(L.get("attn_norm"), self._keep, c.n_embd, "attn_norm")
            Lw.ffn_norm = _vec(L.get("ffn_norm"), self._keep, c.n_embd, "ffn_norm")
            Lw.q_norm = _vec(L.get("q_norm"), self._keep, c.q_norm_n, "q_norm")
            Lw.k_norm = _vec(L.get("k_norm"), self._keep, c.k_norm_n, "k_norm")
            Lw.post_attn_norm = _vec(L.get("post_attn_norm"), self._keep, c.n_embd, "post_attn_norm")
            Lw.post_ffn_norm = _vec(L.get("post_ffn_norm"), self._keep, c.n_embd, "post_ffn_norm")
            Lw.attn_sinks = _vec(L.get("attn_sinks"), self._keep, c.n_head, "attn_sinks")
            n_rot = L["rope"]["n_rot"]
            if n_rot < 0 or n_rot % 2 or n_rot > c.head_dim:
                raise ValueError(f"layer {i}: n_rot {n_rot} must be even and at most head_dim {c.head_dim}")
            Lw.rope = _rope(L["rope"], self._keep)
            Lw.rope_factors_long = _vec(L["rope"].get("factors_long"), self._keep, n_rot // 2, "rope factors_long")
            if L["window"] < 0:
                raise ValueError(f"layer {i}: negative sliding window {L['window']}")
            Lw.window = L["window"]
        self.tok_embd = _weight(tok_embd, c.n_vocab, c.n_embd, "token_embd")
        self.output = _weight(output, c.n_vocab, c.n_embd, "output")
        self.output_norm = _vec(output_norm, self._keep, c.n_embd, "output_norm")
        if self.output_norm == NULL:
            raise ValueError("output_norm is required")
        self.output_bias = _vec(output_bias, self._keep, c.n_vocab, "output_bias")

    def __dealloc__(self):
        free(self.layers)

    @property
    def n_vocab(self):
        return self.cfg.n_vocab


cdef void _forward_job(void *arg, fs_team *team) noexcept nogil:
    """One forward pass (a :c:type:`Pass`), called by every member of the pool's team."""
    cdef Pass *pp = <Pass *>arg
    cdef Pass P = pp[0]
    cdef Config c = P.c
    cdef const LayerWeights *L
    cdef int l
    cdef int64_t kv = c.n_head_kv * c.head_dim
    cdef const int32_t *tokens = P.tokens
    cdef int n = P.n
    cdef int si, r
    cdef const Segment *sg
    cdef float *logits = P.logits
    cdef float *x = P.x
    cdef float *xb = P.xb
    cdef float *q = P.q
    cdef float *k = P.k
    cdef float *v = P.v
    cdef float *att = P.att
    cdef float *hg = P.hg
    cdef float *hu = P.hu
    cdef uint8_t *act = P.act
    cdef uint16_t *kc
    cdef uint16_t *vc
    cdef float kq_scale = 1.0 if c.attn_scale_on_q else c.attn_scale
    cdef const int32_t *pos = P.pos
    cdef int rows
    cdef int64_t qw = c.n_head * c.head_dim
    cdef const float *h
    cdef float *f
    cdef fs_rope_params rp
    fs_get_rows_team(P.tok_embd, tokens, n, c.embd_scale, x, team)   # x (n, n_embd)
    for l in range(c.n_layer):
        L = &P.layers[l]
        kc = P.k_cache + l * P.n_seq * P.n_ctx * kv
        vc = P.v_cache + l * P.n_seq * P.n_ctx * kv
        rp = L.rope
        if P.long_rope and L.rope_factors_long != NULL:
            rp.freq_factors = L.rope_factors_long
        # -- attention --
        h = x
        if L.attn_norm != NULL:
            fs_rmsnorm_team(x, L.attn_norm, xb, n, c.n_embd, c.eps, team)
            h = xb
        # Wq (n_head*hd, n_embd), Wk, Wv (n_head_kv*hd, n_embd) @ h -> q, k, v in one pass
        fs_matmul3_team(&L.wq, &L.wk, &L.wv, h, n, P.part, q, k, v, act, team)
        if L.bq != NULL:
            fs_add_rows_team(q, L.bq, n, qw, team)
        if L.bk != NULL:
            fs_add_rows_team(k, L.bk, n, kv, team)
        if L.bv != NULL:
            fs_add_rows_team(v, L.bv, n, kv, team)
        if L.q_norm != NULL:   # per head (rows of head_dim) or the whole row (OLMo 2)
            fs_rmsnorm_team(q, L.q_norm, q, n * qw // c.q_norm_n, c.q_norm_n, c.eps, team)
        if L.k_norm != NULL:
            fs_rmsnorm_team(k, L.k_norm, k, n * kv // c.k_norm_n, c.k_norm_n, c.eps, team)
        if rp.n_rot > 0:
            fs_rope_team(q, n, c.n_head, c.head_dim, pos, &rp, team)
            fs_rope_team(k, n, c.n_head_kv, c.head_dim, pos, &rp, team)
        if c.attn_temp_scale != 0:
            fs_attn_temp_team(q, n, qw, pos, c.attn_temp_scale, c.attn_temp_offset, c.attn_temp_floor, team)
        if c.attn_scale_on_q:
            fs_scale_team(q, c.attn_scale, n * qw, team)
        # each sequence's K, V rows into its part of the f16 cache, then its queries over its own rows
        # (per segment the same computation as a batch of that sequence alone; all segments' work shared
        # out at once)
        fs_kv_store_team(k, v, kv, P.segs, P.n_seg, kc, vc, P.n_ctx, team)
        fs_attention_batch_team(q, P.segs, P.n_seg, kc, vc, c.n_head, c.n_head_kv, c.head_dim, kq_scale,
                                c.attn_softcap, L.attn_sinks, L.window, att, P.attn_work, P.n_ctx, team)
        fs_matmul_team(&L.wo, att, n, P.part, xb, act, team)  # Wo (n_embd, n_head*hd) @ att -> (n, n_embd)
        if L.bo != NULL:
            fs_add_rows_team(xb, L.bo, n, c.n_embd, team)
        if L.post_attn_norm != NULL:
            fs_rmsnorm_team(xb, L.post_attn_norm, xb, n, c.n_embd, c.eps, team)
        if c.residual_scale != 0:
            fs_scale_team(xb, c.residual_scale, n * c.n_embd, team)
        fs_add_team(x, xb, n * c.n_embd, team)
        # -- feed-forward: down(act(gate(h)) * up(h)) --
        h = x
        if L.ffn_norm != NULL:
            fs_rmsnorm_team(x, L.ffn_norm, xb, n, c.n_embd, c.eps, team)
            h = xb
        if L.has_moe:
            # the chosen experts' FFNs, weighted (fs_moe.h); h may be xb, so the mixture goes to moe_out
            fs_moe_ffn_team(&L.moe, h, n, P.part, P.moe_out, &P.moe_work, act, team)
            f = P.moe_out
        else:
            # gate, up (n_ff, n_embd) @ h -> hg, hu (n, n_ff)
            fs_matmul2_team(&L.w_gate, &L.w_up, h, n, P.part, hg, hu, act, team)
            if L.b_gate != NULL:
                fs_add_rows_team(hg, L.b_gate, n, c.n_ff, team)
            if L.b_up != NULL:
                fs_add_rows_team(hu, L.b_up, n, c.n_ff, team)
            fs_gated_act_team(hg, hu, n * c.n_ff, c.act, team)
            # Wdown (n_embd, n_ff) @ hg -> (n, n_embd); h may be xb, whose reads ended with the barrier above
            fs_matmul_team(&L.w_down, hg, n, P.part, xb, act, team)
            if L.b_down != NULL:
                fs_add_rows_team(xb, L.b_down, n, c.n_embd, team)
            f = xb
        if L.post_ffn_norm != NULL:
            fs_rmsnorm_team(f, L.post_ffn_norm, f, n, c.n_embd, c.eps, team)
        if c.residual_scale != 0:
            fs_scale_team(f, c.residual_scale, n * c.n_embd, team)
        fs_add_team(x, f, n * c.n_embd, team)
    if logits != NULL:
        rows = P.n_logits
        r = 0
        for si in range(P.n_seg):   # the wanted rows of every segment, normed into consecutive rows of xb
            sg = &P.segs[si]
            if sg.logits_from >= 0:
                fs_rmsnorm_team(x + (sg.start + sg.logits_from) * c.n_embd, P.output_norm, xb + r * c.n_embd,
                                sg.n - sg.logits_from, c.n_embd, c.eps, team)
                r += sg.n - sg.logits_from
        fs_matmul_team(P.output, xb, rows, P.logit_part, logits, act, team)  # (rows, n_vocab)
        if P.output_bias != NULL:
            fs_add_rows_team(logits, P.output_bias, rows, c.n_vocab, team)
        if c.logit_scale != 1:
            fs_scale_team(logits, c.logit_scale, rows * c.n_vocab, team)
        if c.logit_softcap > 0:
            fs_softcap_team(logits, c.logit_softcap, rows * c.n_vocab, team)


cdef class ForwardContext:
    """Run state for ``n_seq`` sequences: activation buffers for ``n_batch`` tokens and a KV cache.

    Args:
        model: the :class:`CompiledModel`.
        n_ctx: KV cache length in tokens, per sequence.
        n_batch: largest number of tokens one :meth:`eval` / :meth:`eval_batch` call takes (all
            sequences together).
        n_threads: threads used by the kernels.
        n_seq: independent sequences (the server's parallel slots); each owns ``n_ctx`` rows of the
            cache, so a batch can mix tokens of several sequences (:meth:`eval_batch`).

    Memory: KV cache ``2 * n_layer * n_seq * n_ctx * n_head_kv * head_dim * 2`` bytes (f16, as
    llama.cpp's default cache type), allocated zeroed by the OS on first touch (numpy's zeros is
    calloc), so a sequence's rows take memory only once it has held that many tokens; a mixture-of-experts model adds the experts' scratch for n_batch tokens
    (``fs_moe_work_sizes``: about ``n_batch * n_expert_used * (2 * n_ff_exp + n_embd) * 4`` bytes of
    activations plus their quantized copies).
    """
    cdef CompiledModel model
    cdef readonly int n_ctx, n_batch, n_threads, n_seq
    cdef uint16_t[:, :, ::1] k_cache   # (n_layer, n_seq * n_ctx, n_head_kv * head_dim) f16 bits
    cdef uint16_t[:, :, ::1] v_cache   # (n_layer, n_seq * n_ctx, n_head_kv * head_dim) f16 bits
    cdef float[:, ::1] x            # (n_batch, n_embd) residual stream
    cdef float[:, ::1] xb           # (n_batch, n_embd) normed input / block output
    cdef float[:, ::1] q            # (n_batch, n_head * head_dim)
    cdef float[:, ::1] k            # (n_batch, n_head_kv * head_dim)
    cdef float[:, ::1] v            # (n_batch, n_head_kv * head_dim)
    cdef float[:, ::1] att          # (n_batch, n_head * head_dim)
    cdef float[:, ::1] hg           # (n_batch, n_ff) gate, then act(gate) * up
    cdef float[:, ::1] hu           # (n_batch, n_ff)
    cdef uint8_t[::1] act           # n_batch * FS_MATMUL_ACT_BYTES(max n_in): quantized activations
    cdef float[::1] attn_work       # n_threads * FS_ATTN_WORK_FLOATS(head_dim, n_ctx, group) attention scratch
    cdef float[:, ::1] moe_out      # (n_batch, n_embd) mixture-of-experts output (MoE models only)
    cdef list _moe_buffers          # the arrays behind moe_work (fs_moe_work_sizes)
    cdef fs_moe_work moe_work
    cdef int32_t[::1] pos           # (n_batch,) positions of the batch
    cdef int32_t[::1] part          # (n_batch,) each token's segment in the batch
    cdef int32_t[::1] logit_part    # (n_batch,) each logits row's segment
    cdef Segment[::1] segs          # (n_seq,) the batch's segments (a structured numpy array)
    cdef bint long_rope             # n_ctx > n_ctx_orig: layers take their long RoPE factors (Phi-3 LongRoPE)
    cdef fs_pool *pool              # n_threads members (fs_pool.h), for this context's whole life

    def __cinit__(self):
        self.pool = NULL

    def __dealloc__(self):
        fs_pool_free(self.pool)

    def __init__(self, CompiledModel model, int n_ctx, int n_batch, int n_threads, int n_seq=1):
        if n_ctx <= 0 or n_batch <= 0 or n_threads <= 0 or n_seq <= 0:
            raise ValueError("n_ctx, n_batch, n_threads and n_seq must be positive")
        self.model = model
        self.n_ctx, self.n_batch, self.n_threads, self.n_seq = n_ctx, n_batch, n_threads, n_seq
        c = model.cfg
        kv = c.n_head_kv * c.head_dim
        self.k_cache = np.zeros((c.n_layer, <int64_t>n_seq * n_ctx, kv), np.uint16)
        self.v_cache = np.zeros((c.n_layer, <int64_t>n_seq * n_ctx, kv), np.uint16)
        self.segs = np.zeros(n_seq, _SEGMENT_DTYPE)
        self.x = np.zeros((n_batch, c.n_embd), np.float32)
        self.xb = np.zeros((n_batch, c.n_embd), np.float32)
        self.q = np.zeros((n_batch, c.n_head * c.head_dim), np.float32)
        self.k = np.zeros((n_batch, kv), np.float32)
        self.v = np.zeros((n_batch, kv), np.float32)
        self.att = np.zeros((n_batch, c.n_head * c.head_dim), np.float32)
        n_ff = c.n_ff if model.any_dense else 1   # an all-MoE model keeps its FFN buffers in moe_work
        self.hg = np.zeros((n_batch, n_ff), np.float32)
        self.hu = np.zeros((n_batch, n_ff), np.float32)
        max_in = max(c.n_embd, n_ff, c.n_head * c.head_dim)
        self._moe_buffers = []
        if model.any_moe:
            self._moe_work(n_batch, c)
        self.act = np.zeros(n_batch * FS_MATMUL_ACT_BYTES(max_in), np.uint8)
        self.attn_work = np.zeros(n_threads * FS_ATTN_WORK_FLOATS(c.head_dim, n_ctx, c.n_head // c.n_head_kv), np.float32)
        self.pos = np.zeros(n_batch, np.int32)
        self.part = np.zeros(n_batch, np.int32)
        self.logit_part = np.zeros(n_batch, np.int32)
        self.long_rope = n_ctx > c.n_ctx_orig   # llama.cpp llama_model::get_rope_factors (n_ctx_seq)
        self.pool = fs_pool_new(n_threads)
        if self.pool == NULL:
            raise MemoryError("no memory for the thread pool")

    cdef _moe_work(self, int n_batch, Config c):
        """Allocate the experts' scratch (fs_moe_work) for batches of n_batch tokens."""
        self.moe_work = _moe_buffers(n_batch, c.n_expert, c.n_expert_used, c.n_embd, c.n_ff_exp, c.n_ff_shexp,
                                     self._moe_buffers)
        self.moe_out = np.zeros((n_batch, c.n_embd), np.float32)

    def eval(self, const int32_t[::1] tokens, int pos0, float[:, ::1] logits=None, int logits_from=-1, int seq=0):
        """Run ``len(tokens)`` tokens of sequence ``seq`` at positions ``pos0 ..``, filling its KV cache rows.

        Args:
            tokens: int32 (n_tok,), 1 <= n_tok <= n_batch, ids < n_vocab.
            pos0: position of the first token; the sequence's cache rows ``0 .. pos0-1`` must hold the
                earlier tokens.
            logits: float32 (n_tok - logits_from, n_vocab) output, or None to skip the output layer.
            logits_from: first token whose logits are wanted (default: the last one only).
            seq: the sequence, 0 .. n_seq - 1.

        Raises:
            ValueError: empty or oversized batch, context overflow, bad token id, sequence or logits shape.
        """
        cdef int n = tokens.shape[0]
        if logits_from < 0:
            logits_from = n - 1
        seg = np.array([(seq, pos0, 0, n, logits_from if logits is not None else -1)], _SEGMENT_DTYPE)
        self.eval_batch(tokens, seg, logits)

    def eval_batch(self, const int32_t[::1] tokens, segments, float[:, ::1] logits=None):
        """Run one batch that mixes tokens of several sequences (continuous batching) through the model.

        Each segment is the same computation as an :meth:`eval` of its tokens alone, bit for bit (row-wise
        kernels on the whole batch, attention and the cache per segment, and for the types llama.cpp
        repacks the gemm-or-gemv choice per segment: ``fs_matmul_tile``'s parts); the matmuls read each
        weight once for the whole batch, which is what makes decoding several sequences together cheap.

        Args:
            tokens: int32 (n_tok,), 1 <= n_tok <= n_batch: the segments' tokens, one after another.
            segments: a sequence of ``(seq, pos0, start, n, logits_from)`` tuples (or a structured array
                of that dtype), at most n_seq, each sequence at most once: tokens ``start .. start + n - 1``
                of the batch go to sequence ``seq`` at positions ``pos0 ..`` (its cache rows
                ``0 .. pos0 - 1`` must hold its earlier tokens); ``logits_from`` is the first of its
                tokens whose logits are wanted, or -1 for none. Together the segments cover the tokens
                in order.
            logits: float32 (rows, n_vocab): the wanted rows of every segment, in segment order; None
                (and every logits_from -1) to skip the output layer.

        Raises:
            ValueError: an empty or oversized batch, segments that do not tile it, a repeated or unknown
                sequence, a context overflow, a bad token id or logits shape.
        """
        cdef int n = tokens.shape[0]
        cdef int i, j, si, n_seg, n_logits = 0
        cdef Config c = self.model.cfg
        if n < 1 or n > self.n_batch:
            raise ValueError(f"batch of {n} tokens; n_batch is {self.n_batch}")
        segs = np.asarray(segments, _SEGMENT_DTYPE).reshape(-1)
        n_seg = segs.shape[0]
        if n_seg < 1 or n_seg > self.n_seq:
            raise ValueError(f"{n_seg} segments; n_seq is {self.n_seq}")
        seen = set()
        j = 0
        for si in range(n_seg):
            sq, p0, st, ns, lf = (int(v) for v in segs[si])
            if not 0 <= sq < self.n_seq or sq in seen:
                raise ValueError(f"segment {si}: sequence {sq} is repeated or outside 0 .. {self.n_seq - 1}")
            seen.add(sq)
            if st != j or ns < 1 or st + ns > n:
                raise ValueError(f"segment {si}: tokens {st} .. {st + ns - 1} do not follow on at {j} within {n}")
            if p0 < 0 or p0 + ns > self.n_ctx:
                raise ValueError(f"positions {p0}..{p0 + ns - 1} exceed n_ctx = {self.n_ctx}")
            if lf >= ns or lf < -1:
                raise ValueError(f"segment {si}: logits_from {lf} outside -1 .. {ns - 1}")
            if lf >= 0:
                for i in range(ns - lf):
                    self.logit_part[n_logits + i] = si
                n_logits += ns - lf
            for i in range(ns):
                self.pos[st + i] = p0 + i
                self.part[st + i] = si
            self.segs[si].seq = sq
            self.segs[si].pos0 = p0
            self.segs[si].start = st
            self.segs[si].n = ns
            self.segs[si].logits_from = lf
            j = st + ns
        if j != n:
            raise ValueError(f"segments cover {j} of the batch's {n} tokens")
        for i in range(n):
            if tokens[i] < 0 or tokens[i] >= c.n_vocab:
                raise ValueError(f"token id {tokens[i]} out of range [0, {c.n_vocab})")
        if (logits is None) != (n_logits == 0):
            raise ValueError("logits must be given exactly when some segment wants logits")
        if logits is not None:
            if logits.shape[0] != n_logits or logits.shape[1] != c.n_vocab:
                raise ValueError(f"logits must have shape ({n_logits}, {c.n_vocab})")
        cdef float *lp = &logits[0, 0] if logits is not None else NULL
        with nogil:
            self._forward(&tokens[0], n, n_seg, n_logits, lp)

    cdef void _forward(self, const int32_t *tokens, int n, int n_seg, int n_logits, float *logits) noexcept nogil:
        cdef Pass P
        P.c = self.model.cfg
        P.layers = self.model.layers
        P.tok_embd = &self.model.tok_embd
        P.output = &self.model.output
        P.output_norm = self.model.output_norm
        P.output_bias = self.model.output_bias
        P.k_cache = &self.k_cache[0, 0, 0]
        P.v_cache = &self.v_cache[0, 0, 0]
        P.x = &self.x[0, 0]
        P.xb = &self.xb[0, 0]
        P.q = &self.q[0, 0]
        P.k = &self.k[0, 0]
        P.v = &self.v[0, 0]
        P.att = &self.att[0, 0]
        P.hg = &self.hg[0, 0]
        P.hu = &self.hu[0, 0]
        P.act = &self.act[0]
        P.attn_work = &self.attn_work[0]
        P.moe_out = &self.moe_out[0, 0] if self.model.any_moe else NULL
        P.moe_work = self.moe_work
        P.pos = &self.pos[0]
        P.n_ctx = self.n_ctx
        P.n_seq = self.n_seq
        P.long_rope = self.long_rope
        P.tokens = tokens
        P.n = n
        P.segs = &self.segs[0]
        P.n_seg = n_seg
        P.n_logits = n_logits
        P.part = &self.part[0]
        P.logit_part = &self.logit_part[0]
        P.logits = logits
        # One job for the whole pass (llama.cpp's graph compute): every thread of the pool runs the
        # sequence in _forward_job; each op does its share and ends with a team barrier (fs_pool.h).
        fs_pool_run(self.pool, _forward_job, &P)

    def shift(self, int seq, int n_keep, int n_discard, int n_past):
        """Context shift: drop cache rows ``n_keep .. n_keep + n_discard - 1`` of sequence ``seq`` and move
        rows ``n_keep + n_discard .. n_past - 1`` down by ``n_discard``, rotating their keys by
        ``-n_discard`` positions (llama.cpp ``llama_memory_seq_rm`` + ``seq_add``, whose K-shift graph
        ``build_rope_shift`` re-ropes the cached keys). RoPE of position p then d is RoPE of p + d (the
        angles are linear in the position, YaRN's mix included); the rotation here leaves out the
        attention factor (mscale), which the keys already carry. Values are moved unchanged.

        Raises:
            ValueError: rows outside ``0 .. n_past - 1``, n_past above n_ctx, or an unknown sequence.
        """
        cdef Config c = self.model.cfg
        cdef int l, m = n_past - n_keep - n_discard
        cdef fs_rope_params rp
        cdef float[:, ::1] buf
        cdef int32_t[::1] pos
        if not 0 <= seq < self.n_seq:
            raise ValueError(f"sequence {seq} outside 0 .. {self.n_seq - 1}")
        if n_keep < 0 or n_discard < 1 or m < 0 or n_past > self.n_ctx:
            raise ValueError(f"cannot drop rows {n_keep} .. {n_keep + n_discard - 1} of {n_past} (n_ctx {self.n_ctx})")
        if m == 0:
            return
        k = np.asarray(self.k_cache).view(np.float16)
        v = np.asarray(self.v_cache).view(np.float16)
        base = <int64_t>seq * self.n_ctx
        src = slice(base + n_keep + n_discard, base + n_past)
        dst = slice(base + n_keep, base + n_keep + m)
        pos_arr = np.full(m, -n_discard, np.int32)
        pos = pos_arr
        for l in range(c.n_layer):
            rp = self.model.layers[l].rope
            rows = np.ascontiguousarray(k[l, src], dtype=np.float32)   # (m, n_head_kv * head_dim)
            if rp.n_rot > 0:
                if self.long_rope and self.model.layers[l].rope_factors_long != NULL:
                    rp.freq_factors = self.model.layers[l].rope_factors_long
                # a pure rotation: cancel the magnitude factor fs_rope applies (rope_yarn's mscale)
                rp.attn_factor = 1.0 / (1.0 + 0.1 * logf(1.0 / rp.freq_scale)) if rp.ext_factor != 0 else 1.0
                buf = rows
                with nogil:
                    fs_rope(&buf[0, 0], m, c.n_head_kv, c.head_dim, &pos[0], &rp)
            k[l, dst] = rows.astype(np.float16)   # round to nearest even, as fs_to_f16
            v[l, dst] = v[l, src].copy()

    def copy_rows(self, int src, int dst, int n0, int n1):
        """Copy cache rows ``n0 .. n1 - 1`` (keys and values, every layer) of sequence ``src`` into the same
        rows of sequence ``dst`` (llama.cpp ``llama_memory_seq_cp``). Rows are positions, and a key carries
        its position's rotation, so the copy is what ``dst`` would hold had it evaluated those tokens at
        those positions itself.

        Raises:
            ValueError: an unknown or identical sequence, or rows outside ``0 .. n_ctx - 1``.
        """
        if not (0 <= src < self.n_seq and 0 <= dst < self.n_seq) or src == dst:
            raise ValueError(f"cannot copy sequence {src} into {dst} (sequences 0 .. {self.n_seq - 1})")
        if not 0 <= n0 <= n1 <= self.n_ctx:
            raise ValueError(f"rows {n0} .. {n1 - 1} are outside 0 .. {self.n_ctx - 1}")
        k = np.asarray(self.k_cache)
        v = np.asarray(self.v_cache)
        s, d = <int64_t>src * self.n_ctx, <int64_t>dst * self.n_ctx
        k[:, d + n0 : d + n1] = k[:, s + n0 : s + n1]
        v[:, d + n0 : d + n1] = v[:, s + n0 : s + n1]

    @property
    def pool_threads(self):
        """Threads the pool runs a forward pass on: n_threads, or fewer if the OS refused some."""
        return fs_pool_size(self.pool)

    def kv_cache(self, int seq=0):
        """Return sequence ``seq``'s (k_cache, v_cache): numpy views (n_layer, n_ctx, n_head_kv * head_dim) float16."""
        if not 0 <= seq < self.n_seq:
            raise ValueError(f"sequence {seq} outside 0 .. {self.n_seq - 1}")
        k = np.asarray(self.k_cache).view(np.float16)[:, seq * self.n_ctx : (seq + 1) * self.n_ctx]
        v = np.asarray(self.v_cache).view(np.float16)[:, seq * self.n_ctx : (seq + 1) * self.n_ctx]
        return k, v


def matmul(int wtype, w, x, int n_threads=1, parts=None):
    """``y = x @ W^T`` with the engine's quantized matmul (``fs_matmul``), for tests and benchmarks.

    Args:
        wtype: GGML type id of the weights.
        w: uint8 (n_out, row_bytes) C-contiguous, each row ``n_in`` elements of ``wtype``.
        x: float32 (n_tok, n_in) activations.
        n_threads: threads (a pool started for this call).
        parts: None (the rows are one batch), or the lengths of consecutive parts of the rows (sequences
            of a continuous batch, summing to n_tok): each part's rows then get the bits they get alone.

    Returns:
        float32 (n_tok, n_out). Runs with the GIL released.

    Raises:
        ValueError: wrong dtypes or shapes, ``n_in`` not a multiple of the type's block size, or parts
            that do not add up to n_tok.
    """
    from cython_kernels.vecdot import act_row_bytes
    w = np.ascontiguousarray(w)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if w.dtype != np.uint8 or w.ndim != 2 or x.ndim != 2:
        raise ValueError("w must be uint8 (n_out, row_bytes) and x float32 (n_tok, n_in)")
    act_row_bytes(wtype, x.shape[1])  # validates the type and n_in
    if not fs_type_supported(wtype) or <size_t>w.shape[1] < fs_row_bytes(wtype, x.shape[1]):
        raise ValueError(f"rows of {w.shape[1]} bytes cannot hold {x.shape[1]} elements of type {wtype}")
    cdef const uint8_t[:, ::1] wv = w
    cdef const float[:, ::1] xv = x
    cdef fs_weight W
    W.data = &wv[0, 0]
    W.type = wtype
    W.n_in = x.shape[1]
    W.n_out = w.shape[0]
    W.row_bytes = w.shape[1]
    cdef int64_t n_tok = x.shape[0]
    y = np.zeros((n_tok, W.n_out), np.float32)
    cdef float[:, ::1] yv = y
    act = np.zeros(max(n_tok, 1) * FS_MATMUL_ACT_BYTES(W.n_in), np.uint8)
    cdef uint8_t[::1] av = act
    cdef const int32_t *pp = NULL
    cdef int32_t[::1] part_ids
    if parts is not None:
        lengths = [int(p) for p in parts]
        if any(p < 1 for p in lengths) or sum(lengths) != n_tok:
            raise ValueError(f"parts {lengths} do not split {n_tok} rows")
        part_ids = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
        if n_tok > 0:
            pp = &part_ids[0]
    if n_tok > 0:
        with nogil:
            fs_matmul(&W, &xv[0, 0], n_tok, pp, &yv[0, 0], &av[0], n_threads)
    return y


cdef int _run_once(fs_job_fn fn, void *arg, int n_threads) except -1:
    """Run one job on a pool of n_threads started (and joined) for this call, without the GIL."""
    cdef fs_pool *pool = fs_pool_new(n_threads)
    if pool == NULL:
        raise MemoryError("no memory for the thread pool")
    with nogil:
        fs_pool_run(pool, fn, arg)
        fs_pool_free(pool)
    return 0


cdef struct AttentionJob:
    const float *q
    int64_t n_tok, pos0, n_ctx, window
    const uint16_t *k_cache
    const uint16_t *v_cache
    int n_head, n_head_kv, head_dim
    float scale, softcap
    const float *sinks
    float *out
    float *work


cdef void _attention_job(void *arg, fs_team *team) noexcept nogil:
    cdef AttentionJob *j = <AttentionJob *>arg
    fs_attention_team(j.q, j.n_tok, j.pos0, j.k_cache, j.v_cache, j.n_head, j.n_head_kv, j.head_dim, j.scale,
                      j.softcap, j.sinks, j.window, j.out, j.work, j.n_ctx, team)


def attention(q, k_cache, v_cache, int pos0, int n_head, int n_head_kv, float scale, float softcap=0.0,
              int window=0, int n_threads=1, sinks=None):
    """Causal attention over an f16 KV cache with the forward pass's kernel (``fs_attention_team``), for tests.

    Args:
        q: float32 (n_tok, n_head * head_dim), queries of positions ``pos0 .. pos0 + n_tok - 1``.
        k_cache, v_cache: float16 (n_ctx, n_head_kv * head_dim), rows ``0 .. pos0 + n_tok - 1`` filled.
        scale: factor on q.k; softcap: Gemma 2's logit soft-cap (0 = off); window: sliding window in
            tokens (0 = full causal); n_threads: threads of a pool started for this call; sinks: None or
            float32 (n_head,) attention-sink logits (gpt-oss).

    Returns:
        float32 (n_tok, n_head * head_dim).

    Raises:
        ValueError: shapes or dtypes that do not fit together.
    """
    q = np.ascontiguousarray(q, dtype=np.float32)
    k_cache = np.ascontiguousarray(k_cache)
    v_cache = np.ascontiguousarray(v_cache)
    if q.ndim != 2 or k_cache.dtype != np.float16 or v_cache.dtype != np.float16 or k_cache.shape != v_cache.shape:
        raise ValueError("q must be float32 (n_tok, n_head * head_dim), the caches float16 of one shape")
    if n_head <= 0 or n_head_kv <= 0 or n_head % n_head_kv or q.shape[1] % n_head:
        raise ValueError("n_head must be a positive multiple of n_head_kv dividing q's width")
    cdef int head_dim = q.shape[1] // n_head
    cdef int64_t n_tok = q.shape[0], n_ctx = k_cache.shape[0]
    if k_cache.ndim != 2 or k_cache.shape[1] != n_head_kv * head_dim or n_tok < 1 or pos0 < 0 or pos0 + n_tok > n_ctx:
        raise ValueError("cache shape, positions and q do not fit together")
    if window < 0 or n_threads < 1:
        raise ValueError("window must be >= 0 and n_threads >= 1")
    out = np.zeros_like(q)
    work = np.zeros(n_threads * FS_ATTN_WORK_FLOATS(head_dim, n_ctx, n_head // n_head_kv), np.float32)
    cdef const float[:, ::1] qv = q
    cdef const uint16_t[:, ::1] kv = k_cache.view(np.uint16)
    cdef const uint16_t[:, ::1] vv = v_cache.view(np.uint16)
    cdef float[:, ::1] ov = out
    cdef float[::1] wv = work
    cdef AttentionJob j
    j.q = &qv[0, 0]
    j.n_tok = n_tok
    j.pos0 = pos0
    j.n_ctx = n_ctx
    j.window = window
    j.k_cache = &kv[0, 0]
    j.v_cache = &vv[0, 0]
    j.n_head = n_head
    j.n_head_kv = n_head_kv
    j.head_dim = head_dim
    j.scale = scale
    j.softcap = softcap
    keep = []
    j.sinks = _vec(None if sinks is None else np.ascontiguousarray(sinks, dtype=np.float32), keep, n_head, "sinks")
    j.out = &ov[0, 0]
    j.work = &wv[0]
    _run_once(_attention_job, &j, n_threads)
    return out


cdef struct ReadJob:
    const uint8_t *buf
    size_t n
    uint64_t sums[256]


cdef void _read_job(void *arg, fs_team *team) noexcept nogil:
    cdef ReadJob *j = <ReadJob *>arg
    cdef uint64_t s = fs_read_sum_team(j.buf, j.n, team)
    j.sums[fs_team_tid()] = s


def read_bandwidth(buf, int n_threads=1, int reps=5):
    """Bytes per second of a plain multi-threaded read loop over ``buf`` (the yardstick of decode speed).

    Args:
        buf: a C-contiguous uint8 array, 8-byte aligned (a memory-mapped model file, say); its pages
            should already be resident, or the first pass measures the disk.
        n_threads: threads of a pool started for this call; reps: passes, the fastest is kept.

    Returns:
        (bytes per second of the fastest pass, the wrapping 64-bit sum of the words read).

    Raises:
        ValueError: not uint8, not aligned, empty, or n_threads outside 1 .. 256.
    """
    import time
    cdef const uint8_t[::1] view = buf
    if view.shape[0] < 8 or (<size_t>&view[0]) % 8:
        raise ValueError("buf must hold at least one 8-byte aligned word")
    if n_threads < 1 or n_threads > 256 or reps < 1:
        raise ValueError("n_threads must be 1 .. 256 and reps >= 1")
    cdef ReadJob j
    cdef int i
    j.buf = &view[0]
    j.n = view.shape[0]
    cdef fs_pool *pool = fs_pool_new(n_threads)
    if pool == NULL:
        raise MemoryError("no memory for the thread pool")
    best = float("inf")
    cdef uint64_t total = 0
    try:
        for _ in range(reps):
            for i in range(256):
                j.sums[i] = 0
            t0 = time.perf_counter()
            with nogil:
                fs_pool_run(pool, _read_job, &j)
            best = min(best, time.perf_counter() - t0)
        for i in range(256):
            total += j.sums[i]
    finally:
        fs_pool_free(pool)
    return view.shape[0] / best, int(total)


cdef struct MoeJob:
    const fs_moe *m
    const float *h
    int64_t n_tok
    float *out
    const fs_moe_work *w
    uint8_t *act


cdef void _moe_job(void *arg, fs_team *team) noexcept nogil:
    cdef MoeJob *j = <MoeJob *>arg
    fs_moe_ffn_team(j.m, j.h, j.n_tok, NULL, j.out, j.w, j.act, team)


def moe_ffn(h, dict router, dict gate, dict up, dict down, int n_expert, int n_used, int gating=FS_MOE_SOFTMAX,
            bint norm_w=True, float w_scale=0.0, int act=ACT_SILU, int n_threads=1, dict biases=None,
            dict shared=None):
    """A mixture-of-experts FFN with the forward pass's kernel (``fs_moe_ffn_team``), for tests.

    Args:
        h: float32 (n_tok, n_embd) normed inputs.
        router: weight dict (see :class:`CompiledModel`) (n_expert, n_embd); gate, up: (n_expert *
            n_ff_exp, n_embd); down: (n_expert * n_embd, n_ff_exp).
        n_expert, n_used: experts, and experts per token; gating: FS_MOE_SOFTMAX (0) or
            FS_MOE_SOFTMAX_WEIGHT (1); norm_w, w_scale: as ``fs_moe``; act: 0 SiLU, 1 GELU;
        n_threads: threads of a pool started for this call; biases: None or float32 vectors under
        ``router`` (n_expert), ``gate`` / ``up`` (n_expert * n_ff_exp), ``down`` (n_expert * n_embd);
        shared: None or a shared expert's weight dicts ``gate`` / ``up`` (n_ff_sh, n_embd), ``down``
        (n_embd, n_ff_sh) and optionally ``gate_inp`` float32 (n_embd), its sigmoid gate.

    Returns:
        (out float32 (n_tok, n_embd), ids int32 (n_tok, n_used) best first, weights float32 (n_tok, n_used)).

    Raises:
        ValueError: shapes that do not fit together, or n_used outside 1 .. min(n_expert, 64).
    """
    h = np.ascontiguousarray(h, dtype=np.float32)
    if h.ndim != 2 or h.shape[0] < 1:
        raise ValueError("h must be float32 (n_tok, n_embd) with n_tok >= 1")
    if not (1 <= n_used <= min(n_expert, FS_MOE_MAX_USED)) or n_threads < 1:
        raise ValueError("n_used must be 1 .. min(n_expert, 64) and n_threads >= 1")
    cdef int64_t n_tok = h.shape[0], n_embd = h.shape[1]
    cdef int64_t n_ff = down["n_in"]
    biases = biases or {}
    L = {"w_gate_inp": router, "w_gate_exps": gate, "w_up_exps": up, "w_down_exps": down,
         "b_gate_inp": biases.get("router"), "b_gate_exps": biases.get("gate"), "b_up_exps": biases.get("up"),
         "b_down_exps": biases.get("down")}
    cdef int64_t n_sh = 0
    if shared is not None:
        n_sh = shared["down"]["n_in"]
        L.update(w_gate_shexp=shared["gate"], w_up_shexp=shared["up"], w_down_shexp=shared["down"],
                 shexp_gate_inp=shared.get("gate_inp"))
    keep = []
    cdef fs_moe m = _moe(L, n_expert, n_used, n_embd, n_ff, n_sh, gating, norm_w, w_scale, act, keep, "")
    cdef fs_moe_work w = _moe_buffers(n_tok, n_expert, n_used, n_embd, n_ff, n_sh, keep)
    out = np.zeros_like(h)
    act_buf = np.zeros(n_tok * FS_MATMUL_ACT_BYTES(n_embd), np.uint8)
    cdef const float[:, ::1] hv = h
    cdef float[:, ::1] ov = out
    cdef uint8_t[::1] av = act_buf
    cdef MoeJob j
    j.m = &m
    j.h = &hv[0, 0]
    j.n_tok = n_tok
    j.out = &ov[0, 0]
    j.w = &w
    j.act = &av[0]
    _run_once(_moe_job, &j, n_threads)
    ids = np.asarray(<int32_t[:n_tok * n_used]> w.ids).reshape(n_tok, n_used).copy()
    weights = np.asarray(<float[:n_tok * n_used]> w.weights).reshape(n_tok, n_used).copy()
    return out, ids, weights
