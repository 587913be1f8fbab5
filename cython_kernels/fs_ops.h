/* Transformer building blocks on float32 activations: quantized matmul, RMSNorm, RoPE, attention,
 * gated activations. Plain C, threads from fs_pool.h; every function is safe to call without the GIL.
 *
 * Shapes are row-major: an activation batch is (n_tok, n) with rows contiguous.
 */
#ifndef FS_OPS_H
#define FS_OPS_H

#include "fs_common.h"

#include "fs_pool.h"

/* A weight matrix as stored in the GGUF file: n_out rows of n_in elements, each row row_bytes long
 * in GGML type `type` (ggml ne[0] = n_in, ne[1] = n_out). */
typedef struct {
    const uint8_t *data;
    int type;
    int64_t n_in;
    int64_t n_out;
    size_t row_bytes;
} fs_weight;

/* Bytes of activation scratch fs_matmul needs per token: enough for any weight type's 8-bit (or
 * F32) quantized activation row of n_in values. */
#define FS_MATMUL_ACT_BYTES(n_in) ((size_t)(n_in) * 4 + 64)

/* Weight rows per work item of the matmuls: 16 rows of a few hundred bytes stay in L1 while every
 * token of the batch is dotted with them. */
#define FS_MATMUL_TILE_ROWS 16

/* One work item of a matmul: rows r0 .. r0 + FS_MATMUL_TILE_ROWS (fewer at the end) of w times n_tok
 * activation rows already quantized by fs_quantize_act (act_bytes apart), written into y (n_tok,
 * w->n_out) at column r0. The building block of fs_matmul_multi_team and of the experts (fs_moe.h).
 *
 * part: NULL (the rows are one part), or n_tok ids, one per activation row, the rows of a part
 * consecutive (continuous batching: the part is a sequence of the batch). Each part gets the bits a
 * call with its rows alone would: this matters where llama.cpp repacks the type (fs_vec_dot_repacked),
 * whose gemm takes a part's first L - L % 4 of its L rows and its gemv the rest
 * (ggml-cpu/repack.cpp forward_mul_mat), so a part's rows round the same beside any others. */
void fs_matmul_tile(const fs_weight *w, int64_t r0, const uint8_t *act, size_t act_bytes, int64_t n_tok,
                    const int32_t *part, float *y);

/* y (n_tok, n_out) = x (n_tok, n_in) @ W^T, W (n_out, n_in).
 * As llama.cpp's CPU backend: each activation row is quantized once to the weight type's
 * vec_dot_type (Q8_0, Q8_1, Q8_K, F16 ...), then integer dot products run per block
 * (fs_vecdot.h). Rows of W are split across threads; each output element is summed in a fixed
 * order, so results do not depend on n_threads. act: n_tok * FS_MATMUL_ACT_BYTES(n_in) bytes.
 * part: NULL, or n_tok part ids as fs_matmul_tile's (each part's rows get the bits of a call with them
 * alone). Runs on a pool of n_threads started for the call (a forward pass uses its context's pool
 * instead). */
void fs_matmul(const fs_weight *w, const float *x, int64_t n_tok, const int32_t *part, float *y, uint8_t *act,
               int n_threads);

/* The *_team functions are called by every member of a team (fs_pool.h) in the same order: each does
 * its share and ends with fs_team_sync, so one job can run a whole forward pass (llama.cpp's graph
 * compute). */

/* Most weights fs_matmul_multi_team multiplies in one pass. */
#define FS_MATMUL_MAX_MULTI 4

/* ys[k] (n_tok, ws[k]->n_out) = x @ ws[k]^T for k < n_w <= FS_MATMUL_MAX_MULTI weights with the same
 * n_in (Q, K and V; gate and up), called by every thread of a team: the activation rows are quantized
 * once when the weights share an activation format (fs_act_format), else once per weight. Same bits
 * as separate fs_matmul calls. part: NULL or n_tok part ids, as fs_matmul_tile's (each part's rows get
 * the bits of a call with those rows alone). */
void fs_matmul_multi_team(const fs_weight *const *ws, float *const *ys, int n_w, const float *x, int64_t n_tok,
                          const int32_t *part, uint8_t *act, fs_team *team);

/* out[i] = emb[tokens[i]] * scale, out (n_tok, n_in). Returns -1 on an unsupported type. */
int fs_get_rows(const fs_weight *emb, const int32_t *tokens, int64_t n_tok, float scale, float *out);

/* RMSNorm of each of n_rows rows of length n (Zhang & Sennrich 2019, as ggml_rms_norm):
 * out = x / sqrt(mean(x^2) + eps) * w. w may be NULL (no weight). In place allowed. */
void fs_rmsnorm(const float *x, const float *w, float *out, int64_t n_rows, int64_t n, float eps);

/* RoPE settings of one layer, as ggml_rope_ext's arguments (llama.cpp ggml/src/ggml-cpu/ops.cpp
 * ggml_rope_cache_init / rope_yarn): n_rot dims of each head rotate (0 = no RoPE on this layer), in
 * adjacent pairs (neox 0, GGML_ROPE_TYPE_NORM) or (i, i + n_rot/2) pairs (neox 1, GGML_ROPE_TYPE_NEOX);
 * theta_i = pos * base^(-2i/n_rot) / freq_factors[i] (llama3 rope_freqs, Phi-3 LongRoPE factors; NULL =
 * all 1); linear scaling by freq_scale, blended with the unscaled angle by YaRN's ramp over corr_dims
 * when ext_factor != 0; cos and sin multiplied by attn_factor (and YaRN's 1 + 0.1 ln(1/freq_scale)). */
typedef struct {
    int n_rot;
    int neox;
    float base;
    float freq_scale;
    float ext_factor;
    float attn_factor;
    float corr_dims[2];
    const float *freq_factors;
} fs_rope_params;

/* corr_dims of YaRN for n_rot dims, trained context n_ctx_orig (ggml.c ggml_rope_yarn_corr_dims). */
void fs_rope_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow, float dims[2]);

/* Rotary position embedding (Su et al. 2021) applied in place to x (n_tok, n_head, head_dim) on the
 * first n_rot dims of each head, position pos[t] for token t, with the settings in *rp. The angles are
 * computed as ggml_rope_cache_init does (repeated float multiplication), so positions rotate by exactly
 * the angles llama.cpp uses. Requires rp->n_rot even and <= head_dim. */
void fs_rope(float *x, int64_t n_tok, int n_head, int head_dim, const int32_t *pos, const fs_rope_params *rp);

/* Llama 4 / Mistral 3 attention temperature (llama.cpp llama-graph.cpp llm_graph_input_attn_temp):
 * each token's q row (width values) times log(floor((pos + offset) / floor_scale) + 1) * scale + 1. */
void fs_attn_temp(float *q, int64_t n_tok, int64_t width, const int32_t *pos, float scale, float offset,
                  float floor_scale);

/* y[t, :] += b over n_tok rows of n values (a bias on a matmul's output rows). */
void fs_add_rows(float *y, const float *b, int64_t n_tok, int64_t n);

/* Batches of at least this many queries take the float-accumulating path (llama.cpp's
 * GGML_FA_TILE_Q, ggml-cpu/common.h). */
#define FS_FA_TILE_Q 64

/* The tiled attention (batches of FS_FA_TILE_Q and more) takes its queries in tiles of this many
 * tokens x the `group` query heads sharing a KV head (about 16 queries), and keys FS_ATTN_KEY_CHUNK at
 * a time. */
#define FS_ATTN_TILE_TOKENS(group) ((group) >= 16 ? 1 : 16 / (group))
#define FS_ATTN_TILE_MAX_Q(group) ((int64_t)FS_ATTN_TILE_TOKENS(group) * (group))
#define FS_ATTN_TILE_MAX_Q_ALL 64 /* largest group the tiled path takes (llama.cpp models: 1 .. 16) */
#define FS_ATTN_KEY_CHUNK 16

/* Scratch floats fs_attention_team needs per thread, for query heads sharing a KV head in groups of
 * `group` (n_head / n_head_kv): a tile's scores (rows of n_ctx + 8), a key chunk and a tile's outputs;
 * also enough for one head's output and scores (the other paths). */
#define FS_ATTN_WORK_FLOATS(head_dim, n_ctx, group) \
    (FS_ATTN_TILE_MAX_Q(group) * ((int64_t)(n_ctx) + 8) + \
     ((int64_t)FS_ATTN_KEY_CHUNK + FS_ATTN_TILE_MAX_Q(group)) * (int64_t)(head_dim) + 64)

/* Causal multi-head attention with grouped KV heads over an f16 KV cache, with llama.cpp's CPU
 * flash-attention numerics: under FS_FA_TILE_Q queries, q rounded to f16, f16 dot products, online
 * softmax and an f16 accumulator (..._f16_one_chunk); from FS_FA_TILE_Q queries on, f32 q, scores
 * and output (the tiled path; our summation order there is our own: with AVX2 the query heads of a
 * GQA group are done together, each f16 K/V row converted once, and exp is a polynomial).
 * q (n_tok, n_head * head_dim) for positions pos0 .. pos0 + n_tok - 1;
 * k_cache, v_cache (n_ctx, n_head_kv * head_dim) f16, rows 0 .. pos0 + n_tok - 1 filled;
 * out (n_tok, n_head * head_dim). Token at position p sees cache rows j <= p, and with window > 0
 * only those with p - j < window (sliding-window attention, llama.cpp LLAMA_SWA_TYPE_STANDARD).
 * softcap > 0: each score s = q.k * scale becomes softcap * tanh(s / softcap) before the softmax
 * (Gemma 2's attention-logit soft-capping, as ggml_compute_forward_flash_attn_ext's logit_softcap).
 * sinks: NULL, or n_head logits (gpt-oss's attention sinks, ``attn_sinks``) that join each head's
 * softmax denominator and weigh no V row (ggml_flash_attn_ext's sinks).
 * work: team->n * FS_ATTN_WORK_FLOATS(head_dim, n_ctx, n_head / n_head_kv) floats of scratch.
 * Called by every member of a team; (token, head) items are handed out dynamically (fs_team_next). */
void fs_attention_team(const float *q, int64_t n_tok, int64_t pos0, const uint16_t *k_cache, const uint16_t *v_cache,
                       int n_head, int n_head_kv, int head_dim, float scale, float softcap, const float *sinks,
                       int64_t window, float *out, float *work, int64_t n_ctx, fs_team *team);

/* One sequence's part of a batch (continuous batching): tokens start .. start + n - 1 of the batch at
 * positions pos0 .. of sequence seq, whose cache rows are seq * n_ctx .. seq * n_ctx + n_ctx - 1 of the
 * layer's cache; logits of its tokens logits_from .. n - 1 (-1: none; read by the caller only). The
 * layout of forward.pyx's Segment and its numpy dtype (five C ints). */
typedef struct {
    int seq, pos0, start, n, logits_from;
} fs_batch_seg;

/* Every segment's K and V rows (k, v: (n_tok, kv) floats, the batch's rows) rounded to f16 into its own
 * sequence's rows pos0 .. of k_cache / v_cache ((n_seq * n_ctx, kv) f16): the work of one
 * fs_to_f16_team per segment and matrix, shared by the team in 16-value chunks of all of them, with
 * one synchronization in all. */
void fs_kv_store_team(const float *k, const float *v, int64_t kv, const fs_batch_seg *segs, int n_seg,
                      uint16_t *k_cache, uint16_t *v_cache, int64_t n_ctx, fs_team *team);

/* fs_attention_team for every segment of a batch, each over its own sequence's cache rows (q, out:
 * (n_tok, n_head * head_dim) batch rows; k_cache, v_cache: (n_seq * n_ctx, n_head_kv * head_dim) f16):
 * each segment gets exactly the computation of fs_attention_team on its rows alone (so the same
 * bits), but the items of all the segments are handed out together and the team synchronizes once, so
 * 4 decoding slots of 9 heads are 36 items on the threads instead of 4 rounds of 9. */
void fs_attention_batch_team(const float *q, const fs_batch_seg *segs, int n_seg, const uint16_t *k_cache,
                             const uint16_t *v_cache, int n_head, int n_head_kv, int head_dim, float scale,
                             float softcap, const float *sinks, int64_t window, float *out, float *work,
                             int64_t n_ctx, fs_team *team);

/* Team versions (see fs_team): the same results as the functions above. */
/* One, two or three weights sharing an input (fs_matmul_multi_team without arrays to share). */
void fs_matmul_team(const fs_weight *w, const float *x, int64_t n_tok, const int32_t *part, float *y, uint8_t *act,
                    fs_team *team);
void fs_matmul2_team(const fs_weight *w0, const fs_weight *w1, const float *x, int64_t n_tok, const int32_t *part,
                     float *y0, float *y1, uint8_t *act, fs_team *team);
void fs_matmul3_team(const fs_weight *w0, const fs_weight *w1, const fs_weight *w2, const float *x, int64_t n_tok,
                     const int32_t *part, float *y0, float *y1, float *y2, uint8_t *act, fs_team *team);
int fs_get_rows_team(const fs_weight *emb, const int32_t *tokens, int64_t n_tok, float scale, float *out, fs_team *team);
void fs_rmsnorm_team(const float *x, const float *w, float *out, int64_t n_rows, int64_t n, float eps, fs_team *team);
void fs_rope_team(float *x, int64_t n_tok, int n_head, int head_dim, const int32_t *pos, const fs_rope_params *rp,
                  fs_team *team);
void fs_attn_temp_team(float *q, int64_t n_tok, int64_t width, const int32_t *pos, float scale, float offset,
                       float floor_scale, fs_team *team);
void fs_add_rows_team(float *y, const float *b, int64_t n_tok, int64_t n, fs_team *team);
void fs_to_f16_team(const float *x, uint16_t *y, int64_t n, fs_team *team);
void fs_gated_act_team(float *gate, const float *up, int64_t n, int act, fs_team *team);
void fs_add_team(float *dst, const float *src, int64_t n, fs_team *team);
void fs_scale_team(float *x, float s, int64_t n, fs_team *team);
void fs_softcap_team(float *x, float cap, int64_t n, fs_team *team);

/* y = f16(x) over n values, round to nearest even. */
void fs_to_f16(const float *x, uint16_t *y, int64_t n);

/* Fill the f16 -> f32 table; call once before any other function here. */
void fs_ops_init(void);

/* The bandwidth yardstick of `fireside bench`: reads n bytes (this member's share of the team's split
 * of them, buf 8-byte aligned; a last partial word is skipped) as 64-bit words and returns their
 * wrapping sum, so the reads cannot be optimized away. A
 * plain read loop, vectorized by the compiler (FS_DISPATCH), with no work per byte besides the add. */
uint64_t fs_read_sum_team(const uint8_t *buf, size_t n, fs_team *team);

/* gate = act(gate) * up, elementwise over n values; act 0 = SiLU, 1 = GELU (tanh approximation),
 * 2 = gpt-oss's clamped SwiGLU: min(gate, 7) * sigmoid(1.702 * min(gate, 7)) * (clamp(up, -7, 7) + 1).
 * SiLU with AVX2 (and AVX-512) takes exp from llama.cpp's AVX2 polynomial (ggml_v_expf) for each whole
 * 8 values, expf for the rest, as ggml_vec_swiglu_f32 in an AVX2 build; the portable variant uses expf
 * throughout, as a build without SIMD does. */
void fs_gated_act(float *gate, const float *up, int64_t n, int act);

/* dst += src over n values. */
void fs_add(float *dst, const float *src, int64_t n);

/* x *= s over n values. */
void fs_scale(float *x, float s, int64_t n);

/* x = tanh(x / cap) * cap over n values (Gemma 2 logit soft-capping). */
void fs_softcap(float *x, float cap, int64_t n);

#endif
