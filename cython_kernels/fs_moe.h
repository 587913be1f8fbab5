/* The mixture-of-experts feed-forward block: router, top-k expert choice and the chosen experts' gated
 * FFNs, as llama.cpp builds it (src/llama-graph.cpp llm_graph_context::build_moe_ffn; the expert
 * matmuls are ggml's mul_mat_id, ggml/src/ggml-cpu/ggml-cpu.c ggml_compute_forward_mul_mat_id).
 *
 * Per token: logits = router @ h (+ bias) (n_expert); probabilities by the gating function; the n_used experts
 * of highest probability (ties: the lower expert id first); their probabilities as weights, optionally
 * renormalized to sum 1 and scaled; out = sum over the chosen experts, best first, of
 * weight * down_e(act(gate_e(h)) * up_e(h)), plus, where the model has one, a shared expert every token
 * uses (Qwen2-MoE, Granite-MoE shared: ffn_{gate,up,down}_shexp, SiLU-gated), its output optionally
 * scaled by sigmoid(h . ffn_gate_inp_shexp) (Qwen2-MoE; llama.cpp src/models/qwen2moe.cpp, granite.cpp).
 *
 * Experts are stored as in GGUF's 3-D tensors ffn_{gate,up,down}_exps: expert e's matrix is the row
 * block e of one weight (gate / up: n_ff_exp rows of n_embd each; down: n_embd rows of n_ff_exp). The
 * tokens of a batch are grouped by expert, so each chosen expert's rows are read once per batch however
 * many tokens chose it; decode reads only the n_used chosen experts' rows.
 */
#ifndef FS_MOE_H
#define FS_MOE_H

#include "fs_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Gating functions (llama.cpp llama_expert_gating_func_type). */
enum {
    FS_MOE_SOFTMAX = 0,        /* softmax over all experts, then top-k (Mixtral, Qwen MoE, OLMoE) */
    FS_MOE_SOFTMAX_WEIGHT = 1, /* top-k of the logits, softmax over the chosen ones (gpt-oss) */
};

/* Most experts a token may use (llama.cpp LLAMA_MAX_EXPERTS is 512 experts in all). */
#define FS_MOE_MAX_USED 64

/* One layer's experts. */
typedef struct {
    fs_weight router;  /* ffn_gate_inp: (n_expert, n_embd) */
    fs_weight gate;    /* ffn_gate_exps: (n_expert * n_ff_exp, n_embd) */
    fs_weight up;      /* ffn_up_exps: (n_expert * n_ff_exp, n_embd) */
    fs_weight down;    /* ffn_down_exps: (n_expert * n_embd, n_ff_exp) */
    const float *router_b; /* biases (gpt-oss), NULL if absent: ffn_gate_inp.bias (n_expert), */
    const float *gate_b;   /* ffn_gate_exps.bias / ffn_up_exps.bias (n_expert * n_ff_exp), */
    const float *up_b;
    const float *down_b;   /* ffn_down_exps.bias (n_expert * n_embd), added to each expert's output */
    fs_weight sh_gate;     /* shared expert (data NULL: none): gate / up (n_ff_sh, n_embd), down (n_embd, n_ff_sh) */
    fs_weight sh_up;
    fs_weight sh_down;
    const float *sh_gate_inp; /* (n_embd) the shared expert's sigmoid gate (NULL: weight 1) */
    int n_expert;      /* experts (expert_count) */
    int n_used;        /* experts per token (expert_used_count), 1 .. min(n_expert, FS_MOE_MAX_USED) */
    int gating;        /* FS_MOE_SOFTMAX or FS_MOE_SOFTMAX_WEIGHT */
    int norm_w;        /* renormalize the chosen weights to sum 1 (the sum clamped to >= 2^-14, as ggml) */
    float w_scale;     /* factor on the weights (expert_weights_scale; 0 or 1 = none) */
    int act;           /* fs_gated_act's activation: 0 SiLU, 1 GELU, 2 gpt-oss's clamped SwiGLU */
} fs_moe;

/* Scratch of fs_moe_ffn_team for batches of up to n_tok tokens (P = n_tok * n_used (token, expert)
 * pairs); fs_moe_work_sizes gives each buffer's size. */
typedef struct {
    float *logits;     /* (n_tok, n_expert) router logits, then probabilities */
    int32_t *ids;      /* (n_tok, n_used) chosen experts, best first */
    float *weights;    /* (n_tok, n_used) their weights */
    int32_t *offsets;  /* (n_expert + 1) first pair of each expert in `order` */
    int32_t *order;    /* (P) pairs t * n_used + s grouped by expert, tokens ascending within each */
    int32_t *row_of;   /* (P) row of pair t * n_used + s in the grouped buffers */
    int32_t *active;   /* (n_expert) the experts chosen by at least one token, ascending; then their count */
    uint8_t *act;      /* quantized inputs of the grouped rows */
    float *hg;         /* (P, n_ff_exp) gate, then act(gate) * up */
    float *hu;         /* (P, n_ff_exp) */
    float *y;          /* (P, n_embd) each pair's expert output */
    uint8_t *sh_act;   /* the shared expert's quantized inputs, token order */
    float *sh_hg;      /* (n_tok, n_ff_sh) */
    float *sh_hu;      /* (n_tok, n_ff_sh) */
    float *sh_y;       /* (n_tok, n_embd) */
    float *sh_w;       /* (n_tok) its gate */
    int32_t *pair_part; /* (P) the part (fs_matmul_tile) of each grouped row's token */
} fs_moe_work;

/* Buffers of fs_moe_work. */
#define FS_MOE_WORK_BUFFERS 17

/* Sizes in bytes of fs_moe_work's buffers, in the struct's order, for batches of n_tok (n_ff_sh 0: no
 * shared expert; its buffers get size 0). */
void fs_moe_work_sizes(int64_t n_tok, int n_expert, int n_used, int64_t n_embd, int64_t n_ff_exp, int64_t n_ff_sh,
                       size_t sizes[FS_MOE_WORK_BUFFERS]);

/* out (n_tok, n_embd) = the experts' mixture for h (n_tok, n_embd); act: the matmul activation scratch
 * of the forward pass (FS_MATMUL_ACT_BYTES(n_embd) per token). part: NULL, or n_tok part ids (the
 * batch's sequences, rows of a part consecutive, as fs_matmul_tile's): each expert's matmul splits its
 * rows by part, so a part's tokens get the bits they get alone. A team op (fs_pool.h): every member
 * calls it; the result does not depend on the number of members. out must not alias h. */
void fs_moe_ffn_team(const fs_moe *m, const float *h, int64_t n_tok, const int32_t *part, float *out,
                     const fs_moe_work *w, uint8_t *act, fs_team *team);

#ifdef __cplusplus
}
#endif

#endif /* FS_MOE_H */
