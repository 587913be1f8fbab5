"""The transformer forward pass, compiled, run with the GIL released.

One generic decoder-only block covers every supported architecture; the architecture files in
``engine/models/`` only choose its switches (QK-norm, post-norms, activation, RoPE style, embedding
scale, sliding windows). The layer order follows llama.cpp's graph builders (``src/models/llama.cpp``,
``src/models/gemma3.cpp``) and karpathy/llama2.c ``run.c``.

State is allocated once per :class:`ForwardContext` (activation buffers sized for ``n_batch`` tokens and
the KV cache sized for ``n_ctx``); nothing is allocated inside the token loop.
"""
import numpy as np

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.stdlib cimport calloc, free
from cython.parallel cimport parallel

from cython_kernels.ops cimport (
    fs_team, fs_team_init, fs_team_start, fs_matmul_team, fs_matmul2_team, fs_matmul3_team, fs_attention_team,
    fs_get_rows_team, fs_rmsnorm_team, fs_rope_team, fs_to_f16_team, fs_gated_act_team, fs_add_team, fs_scale_team,
    fs_softcap_team, fs_weight, fs_matmul, fs_ops_init, FS_MATMUL_ACT_BYTES, FS_ATTN_WORK_FLOATS,
)

fs_ops_init()

ACT_SILU = 0
ACT_GELU_TANH = 1


cdef struct LayerWeights:
    fs_weight wq, wk, wv, wo, w_gate, w_up, w_down
    const float *attn_norm
    const float *ffn_norm
    const float *q_norm           # per-head RMSNorm of Q (NULL if absent)
    const float *k_norm
    const float *post_attn_norm   # RMSNorm of the attention output before the residual (NULL if absent)
    const float *post_ffn_norm
    float rope_base
    float rope_freq_scale
    int64_t window                # sliding-window size in tokens, 0 = full causal attention


cdef struct Config:
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_rot, rope_neox, act
    int attn_scale_on_q   # scale Q before attention (Gemma) instead of the scores
    float eps, embd_scale, attn_scale, logit_softcap


cdef fs_weight _weight(object w) except *:
    """Fill an fs_weight from a dict {data: uint8 (n_out, row_bytes), type, n_in, n_out}."""
    cdef fs_weight out
    cdef const uint8_t[:, ::1] data = w["data"]
    out.data = &data[0, 0]
    out.type = w["type"]
    out.n_in = w["n_in"]
    out.n_out = w["n_out"]
    out.row_bytes = data.shape[1]
    return out


cdef const float *_vec(object a, list keep) except? NULL:
    cdef const float[::1] view
    if a is None:
        return NULL
    view = a
    keep.append(a)
    return &view[0]


cdef class CompiledModel:
    """Weights and hyper-parameters of one model, as raw pointers into the memory-mapped file.

    Args:
        config: dict with the :c:type:`Config` fields (ints and floats).
        layers: one dict per layer: weights ``wq wk wv wo w_gate w_up w_down`` as
            ``{data, type, n_in, n_out}`` dicts, norm vectors (float32 1-D arrays or None)
            ``attn_norm ffn_norm q_norm k_norm post_attn_norm post_ffn_norm``, and ``rope_base``,
            ``rope_freq_scale``, ``window``.
        tok_embd, output: weight dicts; output_norm: float32 (n_embd,).

    The numpy arrays passed in are kept alive by this object, so the pointers stay valid.
    """
    cdef Config cfg
    cdef LayerWeights *layers
    cdef fs_weight tok_embd
    cdef fs_weight output
    cdef const float *output_norm
    cdef list _keep

    def __cinit__(self):
        self.layers = NULL

    def __init__(self, dict config, list layers, dict tok_embd, dict output, output_norm):
        cdef int i
        self._keep = [config, layers, tok_embd, output, output_norm]
        c = self.cfg
        for key in ("n_layer", "n_embd", "n_head", "n_head_kv", "head_dim", "n_ff", "n_vocab", "n_rot",
                    "rope_neox", "act", "eps", "embd_scale", "attn_scale", "attn_scale_on_q", "logit_softcap"):
            if key not in config:
                raise KeyError(f"CompiledModel config lacks {key}")
        self.cfg.n_layer = config["n_layer"]; self.cfg.n_embd = config["n_embd"]
        self.cfg.n_head = config["n_head"]; self.cfg.n_head_kv = config["n_head_kv"]
        self.cfg.head_dim = config["head_dim"]; self.cfg.n_ff = config["n_ff"]
        self.cfg.n_vocab = config["n_vocab"]; self.cfg.n_rot = config["n_rot"]
        self.cfg.rope_neox = config["rope_neox"]; self.cfg.act = config["act"]
        self.cfg.eps = config["eps"]; self.cfg.embd_scale = config["embd_scale"]
        self.cfg.attn_scale = config["attn_scale"]; self.cfg.logit_softcap = config["logit_softcap"]
        self.cfg.attn_scale_on_q = config["attn_scale_on_q"]
        if len(layers) != self.cfg.n_layer:
            raise ValueError(f"expected {self.cfg.n_layer} layers, got {len(layers)}")
        self.layers = <LayerWeights *>calloc(self.cfg.n_layer, sizeof(LayerWeights))
        if self.layers == NULL:
            raise MemoryError()
        for i, L in enumerate(layers):
            self.layers[i].wq = _weight(L["wq"]); self.layers[i].wk = _weight(L["wk"])
            self.layers[i].wv = _weight(L["wv"]); self.layers[i].wo = _weight(L["wo"])
            self.layers[i].w_gate = _weight(L["w_gate"]); self.layers[i].w_up = _weight(L["w_up"])
            self.layers[i].w_down = _weight(L["w_down"])
            self.layers[i].attn_norm = _vec(L["attn_norm"], self._keep)
            self.layers[i].ffn_norm = _vec(L["ffn_norm"], self._keep)
            self.layers[i].q_norm = _vec(L.get("q_norm"), self._keep)
            self.layers[i].k_norm = _vec(L.get("k_norm"), self._keep)
            self.layers[i].post_attn_norm = _vec(L.get("post_attn_norm"), self._keep)
            self.layers[i].post_ffn_norm = _vec(L.get("post_ffn_norm"), self._keep)
            self.layers[i].rope_base = L["rope_base"]
            self.layers[i].rope_freq_scale = L["rope_freq_scale"]
            self.layers[i].window = L["window"]
        self.tok_embd = _weight(tok_embd)
        self.output = _weight(output)
        self.output_norm = _vec(output_norm, self._keep)

    def __dealloc__(self):
        free(self.layers)

    @property
    def n_vocab(self):
        return self.cfg.n_vocab


cdef class ForwardContext:
    """Run state for one sequence: activation buffers for ``n_batch`` tokens and the KV cache.

    Args:
        model: the :class:`CompiledModel`.
        n_ctx: KV cache length in tokens.
        n_batch: largest number of tokens one :meth:`eval` call takes.
        n_threads: threads used by the kernels.

    Memory: KV cache ``2 * n_layer * n_ctx * n_head_kv * head_dim * 2`` bytes (f16, as llama.cpp's
    default cache type).
    """
    cdef CompiledModel model
    cdef readonly int n_ctx, n_batch, n_threads
    cdef uint16_t[:, :, ::1] k_cache   # (n_layer, n_ctx, n_head_kv * head_dim) f16 bits
    cdef uint16_t[:, :, ::1] v_cache   # (n_layer, n_ctx, n_head_kv * head_dim) f16 bits
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
    cdef int32_t[::1] pos           # (n_batch,) positions of the batch

    def __init__(self, CompiledModel model, int n_ctx, int n_batch, int n_threads):
        if n_ctx <= 0 or n_batch <= 0 or n_threads <= 0:
            raise ValueError("n_ctx, n_batch and n_threads must be positive")
        self.model = model
        self.n_ctx, self.n_batch, self.n_threads = n_ctx, n_batch, n_threads
        c = model.cfg
        kv = c.n_head_kv * c.head_dim
        self.k_cache = np.zeros((c.n_layer, n_ctx, kv), np.uint16)
        self.v_cache = np.zeros((c.n_layer, n_ctx, kv), np.uint16)
        self.x = np.zeros((n_batch, c.n_embd), np.float32)
        self.xb = np.zeros((n_batch, c.n_embd), np.float32)
        self.q = np.zeros((n_batch, c.n_head * c.head_dim), np.float32)
        self.k = np.zeros((n_batch, kv), np.float32)
        self.v = np.zeros((n_batch, kv), np.float32)
        self.att = np.zeros((n_batch, c.n_head * c.head_dim), np.float32)
        self.hg = np.zeros((n_batch, c.n_ff), np.float32)
        self.hu = np.zeros((n_batch, c.n_ff), np.float32)
        max_in = max(c.n_embd, c.n_ff, c.n_head * c.head_dim)
        self.act = np.zeros(n_batch * FS_MATMUL_ACT_BYTES(max_in), np.uint8)
        self.attn_work = np.zeros(n_threads * FS_ATTN_WORK_FLOATS(c.head_dim, n_ctx, c.n_head // c.n_head_kv), np.float32)
        self.pos = np.zeros(n_batch, np.int32)

    def eval(self, const int32_t[::1] tokens, int pos0, float[:, ::1] logits=None, int logits_from=-1):
        """Run ``len(tokens)`` tokens at positions ``pos0 ..`` through the model, filling the KV cache.

        Args:
            tokens: int32 (n_tok,), 1 <= n_tok <= n_batch, ids < n_vocab.
            pos0: position of the first token; cache rows ``0 .. pos0-1`` must hold the earlier tokens.
            logits: float32 (n_tok - logits_from, n_vocab) output, or None to skip the output layer.
            logits_from: first token whose logits are wanted (default: the last one only).

        Raises:
            ValueError: empty or oversized batch, context overflow, bad token id or logits shape.
        """
        cdef int n = tokens.shape[0]
        cdef int i
        cdef Config c = self.model.cfg
        if n < 1 or n > self.n_batch:
            raise ValueError(f"batch of {n} tokens; n_batch is {self.n_batch}")
        if pos0 < 0 or pos0 + n > self.n_ctx:
            raise ValueError(f"positions {pos0}..{pos0 + n - 1} exceed n_ctx = {self.n_ctx}")
        for i in range(n):
            if tokens[i] < 0 or tokens[i] >= c.n_vocab:
                raise ValueError(f"token id {tokens[i]} out of range [0, {c.n_vocab})")
        if logits_from < 0:
            logits_from = n - 1
        if logits is not None:
            if logits.shape[0] != n - logits_from or logits.shape[1] != c.n_vocab:
                raise ValueError(f"logits must have shape ({n - logits_from}, {c.n_vocab})")
        for i in range(n):
            self.pos[i] = pos0 + i
        cdef float *lp = &logits[0, 0] if logits is not None else NULL
        with nogil:
            self._forward(&tokens[0], n, pos0, lp, logits_from)

    cdef void _forward(self, const int32_t *tokens, int n, int pos0, float *logits, int logits_from) noexcept nogil:
        cdef Config c = self.model.cfg
        cdef LayerWeights *L
        cdef int l, nth = self.n_threads
        cdef int64_t kv = c.n_head_kv * c.head_dim
        cdef float *x = &self.x[0, 0]
        cdef float *xb = &self.xb[0, 0]
        cdef float *q = &self.q[0, 0]
        cdef float *k = &self.k[0, 0]
        cdef float *v = &self.v[0, 0]
        cdef float *att = &self.att[0, 0]
        cdef float *hg = &self.hg[0, 0]
        cdef float *hu = &self.hu[0, 0]
        cdef uint8_t *act = &self.act[0]
        cdef uint16_t *kc
        cdef uint16_t *vc
        cdef float kq_scale = 1.0 if c.attn_scale_on_q else c.attn_scale
        cdef int32_t *pos = &self.pos[0]
        cdef int rows
        cdef fs_team team

        fs_team_init(&team, nth)
        # One parallel region for the whole pass (llama.cpp's graph compute): every thread runs this
        # sequence; each op does its share and ends with a team barrier (fs_team in fs_ops.h).
        with parallel(num_threads=nth):
            fs_team_start(&team)
            fs_get_rows_team(&self.model.tok_embd, tokens, n, c.embd_scale, x, &team)   # x (n, n_embd)
            for l in range(c.n_layer):
                L = &self.model.layers[l]
                kc = &self.k_cache[l, 0, 0]
                vc = &self.v_cache[l, 0, 0]
                # -- attention --
                fs_rmsnorm_team(x, L.attn_norm, xb, n, c.n_embd, c.eps, &team)
                # Wq (n_head*hd, n_embd), Wk, Wv (n_head_kv*hd, n_embd) @ xb -> q, k, v in one pass
                fs_matmul3_team(&L.wq, &L.wk, &L.wv, xb, n, q, k, v, act, &team)
                if L.q_norm != NULL:
                    fs_rmsnorm_team(q, L.q_norm, q, n * c.n_head, c.head_dim, c.eps, &team)
                if L.k_norm != NULL:
                    fs_rmsnorm_team(k, L.k_norm, k, n * c.n_head_kv, c.head_dim, c.eps, &team)
                fs_rope_team(q, n, c.n_head, c.head_dim, c.n_rot, pos, L.rope_base, L.rope_freq_scale, c.rope_neox,
                             &team)
                fs_rope_team(k, n, c.n_head_kv, c.head_dim, c.n_rot, pos, L.rope_base, L.rope_freq_scale,
                             c.rope_neox, &team)
                if c.attn_scale_on_q:
                    fs_scale_team(q, c.attn_scale, n * c.n_head * c.head_dim, &team)
                fs_to_f16_team(k, kc + pos0 * kv, n * kv, &team)   # K, V rows of this batch into the f16 cache
                fs_to_f16_team(v, vc + pos0 * kv, n * kv, &team)
                fs_attention_team(q, n, pos0, kc, vc, c.n_head, c.n_head_kv, c.head_dim, kq_scale, L.window,
                                  att, &self.attn_work[0], self.n_ctx, &team)
                fs_matmul_team(&L.wo, att, n, xb, act, &team)  # Wo (n_embd, n_head*hd) @ att -> (n, n_embd)
                if L.post_attn_norm != NULL:
                    fs_rmsnorm_team(xb, L.post_attn_norm, xb, n, c.n_embd, c.eps, &team)
                fs_add_team(x, xb, n * c.n_embd, &team)
                # -- feed-forward: down(act(gate(h)) * up(h)) --
                fs_rmsnorm_team(x, L.ffn_norm, xb, n, c.n_embd, c.eps, &team)
                # gate, up (n_ff, n_embd) @ xb -> hg, hu (n, n_ff)
                fs_matmul2_team(&L.w_gate, &L.w_up, xb, n, hg, hu, act, &team)
                fs_gated_act_team(hg, hu, n * c.n_ff, c.act, &team)
                fs_matmul_team(&L.w_down, hg, n, xb, act, &team)  # Wdown (n_embd, n_ff) -> (n, n_embd)
                if L.post_ffn_norm != NULL:
                    fs_rmsnorm_team(xb, L.post_ffn_norm, xb, n, c.n_embd, c.eps, &team)
                fs_add_team(x, xb, n * c.n_embd, &team)
            if logits != NULL:
                rows = n - logits_from
                fs_rmsnorm_team(x + logits_from * c.n_embd, self.model.output_norm, xb, rows, c.n_embd, c.eps,
                                &team)
                fs_matmul_team(&self.model.output, xb, rows, logits, act, &team)  # (rows, n_vocab)
                if c.logit_softcap > 0:
                    fs_softcap_team(logits, c.logit_softcap, rows * c.n_vocab, &team)

    def kv_cache(self):
        """Return (k_cache, v_cache) as numpy arrays (n_layer, n_ctx, n_head_kv * head_dim) float16."""
        return np.asarray(self.k_cache).view(np.float16), np.asarray(self.v_cache).view(np.float16)


def matmul(int wtype, w, x, int n_threads=1):
    """``y = x @ W^T`` with the engine's quantized matmul (``fs_matmul``), for tests and benchmarks.

    Args:
        wtype: GGML type id of the weights.
        w: uint8 (n_out, row_bytes) C-contiguous, each row ``n_in`` elements of ``wtype``.
        x: float32 (n_tok, n_in) activations.
        n_threads: OpenMP threads.

    Returns:
        float32 (n_tok, n_out). Runs with the GIL released.

    Raises:
        ValueError: wrong dtypes or shapes, or ``n_in`` not a multiple of the type's block size.
    """
    from cython_kernels.vecdot import act_row_bytes
    w = np.ascontiguousarray(w)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if w.dtype != np.uint8 or w.ndim != 2 or x.ndim != 2:
        raise ValueError("w must be uint8 (n_out, row_bytes) and x float32 (n_tok, n_in)")
    act_row_bytes(wtype, x.shape[1])  # validates the type and n_in
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
    if n_tok > 0:
        with nogil:
            fs_matmul(&W, &xv[0, 0], n_tok, &yv[0, 0], &av[0], n_threads)
    return y
