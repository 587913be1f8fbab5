/* Implementation of fs_ops.h. See the header for shapes and sources. */
#include "fs_ops.h"
#include "fs_quants.h"
#include "fs_vecdot.h"
#include "fs_half.h"
#include "fs_avx2.h"

#include <math.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#define TILE_ROWS FS_MATMUL_TILE_ROWS

/* Consecutive activation rows a .. b - 1 of one repacked matmul tile that go to one kernel call. */
typedef struct {
    int64_t a, b;
    int gemm; /* 1: llama.cpp's gemm, 0: its gemv */
} repacked_run;

/* Run the pending rows of *run (rows r0 .. r0 + nr - 1 of w, the activations at act). */
static void repacked_flush(const fs_weight *w, int64_t r0, int64_t nr, const uint8_t *act, size_t act_bytes,
                           const repacked_run *run, float *y) {
    if (run->b <= run->a) return;
    const uint8_t *rows = w->data + r0 * w->row_bytes;
    const uint8_t *x = act + run->a * act_bytes;
    float *out = y + run->a * w->n_out + r0;
    if (run->gemm)
        fs_vec_dot_tile_gemm(w->type, rows, w->row_bytes, nr, x, act_bytes, run->b - run->a, w->n_in, out, w->n_out);
    else
        fs_vec_dot_tile_gemv(w->type, rows, w->row_bytes, nr, x, act_bytes, run->b - run->a, w->n_in, out, w->n_out);
}

/* Rows a .. b - 1 by the gemm or the gemv: appended to *run when they follow it with the same kernel,
 * else *run is flushed and restarted with them. */
static void repacked_add(const fs_weight *w, int64_t r0, int64_t nr, const uint8_t *act, size_t act_bytes,
                         repacked_run *run, int64_t a, int64_t b, int gemm, float *y) {
    if (b <= a) return;
    if (run->b == a && run->gemm == gemm) {
        run->b = b;
        return;
    }
    repacked_flush(w, r0, nr, act, act_bytes, run, y);
    *run = (repacked_run){a, b, gemm};
}

void fs_matmul_tile(const fs_weight *w, int64_t r0, const uint8_t *act, size_t act_bytes, int64_t n_tok,
                    const int32_t *part, float *y) {
    const int64_t n_in = w->n_in, n_out = w->n_out;
    const int64_t nr = n_out - r0 < TILE_ROWS ? n_out - r0 : TILE_ROWS;
    if (!fs_vec_dot_repacked(w->type, n_out)) {
        const uint8_t *rows = w->data + r0 * w->row_bytes;
        if (fs_vec_dot_tiled(w->type)) {
            /* register-tiled kernels, same bits as the row-by-row ones */
            fs_vec_dot_tile(w->type, rows, w->row_bytes, nr, act, act_bytes, n_tok, n_in, y + r0, n_out);
            return;
        }
        for (int64_t t = 0; t < n_tok; t++)
            fs_vec_dot_rows_norepack(w->type, rows, w->row_bytes, nr, act + t * act_bytes, n_in, y + t * n_out + r0);
        return;
    }
    /* llama.cpp on x86 repacks some types (Q4_0, Q4_K, IQ4_NL, MXFP4 with a multiple of 8 rows: the traits
     * table) and multiplies them with a GEMM over groups of 4 activation rows and a GEMV for the rest
     * (ggml-cpu/repack.cpp forward_mul_mat); the same split, per part, gives each part the float rounding
     * it gets alone. Each row's result depends only on which of the two computes it (and the gemm's groups
     * of 4 start at a part's first row), so consecutive rows of one kind, across parts, go in one call. */
    repacked_run run = {0, 0, 0};
    for (int64_t s = 0, e; s < n_tok; s = e) {
        e = s + 1;
        if (part == NULL) e = n_tok;
        else while (e < n_tok && part[e] == part[s]) e++;
        const int64_t g = e - (e - s) % 4; /* rows s .. g - 1 gemm, g .. e - 1 gemv */
        repacked_add(w, r0, nr, act, act_bytes, &run, s, g, 1, y);
        repacked_add(w, r0, nr, act, act_bytes, &run, g, e, 0, y);
    }
    repacked_flush(w, r0, nr, act, act_bytes, &run, y);
}

/* From this many tokens a matmul hands its tiles out dynamically, MATMUL_CHUNKS_PER_MEMBER chunks per
 * member of the team; under it (decode, small batches) each member takes one contiguous range. Which
 * member computes a tile never changes its bits. */
#define MATMUL_DYNAMIC_MIN_TOK 16
#define MATMUL_CHUNKS_PER_MEMBER 8

/* Tiles lo .. hi - 1 of the weights ws (weight k's tiles are first_tile[k] .. first_tile[k + 1] - 1). */
static void run_tiles(const fs_weight *const *ws, float *const *ys, const int64_t *first_tile, int64_t lo, int64_t hi,
                      const uint8_t *act, size_t act_bytes, int64_t n_tok, const int32_t *part) {
    for (int64_t tile = lo; tile < hi; tile++) {
        int k = 0;
        while (tile >= first_tile[k + 1]) k++;
        fs_matmul_tile(ws[k], (tile - first_tile[k]) * TILE_ROWS, act, act_bytes, n_tok, part, ys[k]);
    }
}

/* Quantize the activations once, then every tile of every weight; called by each thread of a team. */
static void matmul_multi_body(const fs_weight *const *ws, float *const *ys, int nw, const float *x, int64_t n_tok,
                              const int32_t *part, uint8_t *act, fs_team *team) {
    const int64_t n_in = ws[0]->n_in;
    const size_t act_bytes = fs_act_row_bytes(ws[0]->type, n_in);
    int64_t first_tile[FS_MATMUL_MAX_MULTI + 1] = {0}; /* zeroed: GCC cannot see that nw <= FS_MATMUL_MAX_MULTI */
    for (int k = 0; k < nw; k++) first_tile[k + 1] = first_tile[k] + (ws[k]->n_out + TILE_ROWS - 1) / TILE_ROWS;
    const int64_t n_tiles = first_tile[nw];
    int64_t lo, hi;
    fs_team_range(team, n_tok, &lo, &hi);
    for (int64_t t = lo; t < hi; t++)
        fs_quantize_act(ws[0]->type, x + t * n_in, act + t * act_bytes, n_in);
    fs_team_sync(team); /* every activation row is quantized before any dot product */
    if (n_tok < MATMUL_DYNAMIC_MIN_TOK || team->n <= 1) {
        /* decode-sized: each member streams one contiguous range of the weights */
        fs_team_range(team, n_tiles, &lo, &hi);
        run_tiles(ws, ys, first_tile, lo, hi, act, act_bytes, n_tok, part);
    } else {
        /* prefill-sized: chunks of tiles handed out as members come for them, so a member slowed by
         * the machine's other work does not hold the others back (llama.cpp's mul_mat chunking) */
        const int64_t chunk = n_tiles / ((int64_t)team->n * MATMUL_CHUNKS_PER_MEMBER) > 0
                                  ? n_tiles / ((int64_t)team->n * MATMUL_CHUNKS_PER_MEMBER) : 1;
        for (int64_t c; (c = fs_team_next(team) * chunk) < n_tiles;) {
            run_tiles(ws, ys, first_tile, c, c + chunk < n_tiles ? c + chunk : n_tiles, act, act_bytes, n_tok, part);
        }
    }
    fs_team_sync(team);
}

/* 1 if the weights can share one quantized activation (same n_in and activation format). */
static int shareable(const fs_weight *const *ws, int n_w) {
    if (n_w < 1 || n_w > FS_MATMUL_MAX_MULTI) return 0;
    for (int k = 1; k < n_w; k++)
        if (ws[k]->n_in != ws[0]->n_in || fs_act_format(ws[k]->type) != fs_act_format(ws[0]->type)) return 0;
    return 1;
}

void fs_matmul_multi_team(const fs_weight *const *ws, float *const *ys, int n_w, const float *x, int64_t n_tok,
                          const int32_t *part, uint8_t *act, fs_team *team) {
#ifdef FS_DEBUG
    for (int k = 0; k < n_w; k++)
        FS_ASSERT(fs_type_supported(ws[k]->type) && ws[k]->n_in % fs_block_elems(ws[k]->type) == 0 &&
                  ws[k]->row_bytes == fs_row_bytes(ws[k]->type, ws[k]->n_in) && ws[k]->n_out > 0);
    FS_ASSERT(n_tok >= 0);
#endif
    if (shareable(ws, n_w)) {
        matmul_multi_body(ws, ys, n_w, x, n_tok, part, act, team);
        return;
    }
    for (int k = 0; k < n_w; k++) matmul_multi_body(&ws[k], &ys[k], 1, x, n_tok, part, act, team);
}

void fs_matmul_team(const fs_weight *w, const float *x, int64_t n_tok, const int32_t *part, float *y, uint8_t *act,
                    fs_team *team) {
    fs_matmul_multi_team(&w, &y, 1, x, n_tok, part, act, team);
}

void fs_matmul2_team(const fs_weight *w0, const fs_weight *w1, const float *x, int64_t n_tok, const int32_t *part,
                     float *y0, float *y1, uint8_t *act, fs_team *team) {
    const fs_weight *ws[2] = {w0, w1};
    float *ys[2] = {y0, y1};
    fs_matmul_multi_team(ws, ys, 2, x, n_tok, part, act, team);
}

void fs_matmul3_team(const fs_weight *w0, const fs_weight *w1, const fs_weight *w2, const float *x, int64_t n_tok,
                     const int32_t *part, float *y0, float *y1, float *y2, uint8_t *act, fs_team *team) {
    const fs_weight *ws[3] = {w0, w1, w2};
    float *ys[3] = {y0, y1, y2};
    fs_matmul_multi_team(ws, ys, 3, x, n_tok, part, act, team);
}

struct matmul_job {
    const fs_weight *w;
    const float *x;
    int64_t n_tok;
    const int32_t *part;
    float *y;
    uint8_t *act;
};

static void matmul_job_run(void *arg, fs_team *team) {
    const struct matmul_job *j = arg;
    fs_matmul_team(j->w, j->x, j->n_tok, j->part, j->y, j->act, team);
}

void fs_matmul(const fs_weight *w, const float *x, int64_t n_tok, const int32_t *part, float *y, uint8_t *act,
               int n_threads) {
    struct matmul_job job = {w, x, n_tok, part, y, act};
    fs_pool *pool = n_threads > 1 ? fs_pool_new(n_threads) : NULL;
    if (pool != NULL) {
        fs_pool_run(pool, matmul_job_run, &job);
        fs_pool_free(pool);
        return;
    }
    fs_team alone;
    fs_team_init(&alone, 1);
    matmul_job_run(&job, &alone);
}

int fs_get_rows(const fs_weight *emb, const int32_t *tokens, int64_t n_tok, float scale, float *out) {
    FS_ASSERT(emb->row_bytes == fs_row_bytes(emb->type, emb->n_in));
#ifdef FS_DEBUG
    for (int64_t t = 0; t < n_tok; t++) FS_ASSERT(tokens[t] >= 0 && tokens[t] < emb->n_out);
#endif
    for (int64_t t = 0; t < n_tok; t++) {
        float *row = out + t * emb->n_in;
        if (fs_dequantize_row(emb->type, emb->data + (int64_t)tokens[t] * emb->row_bytes, row, emb->n_in) != 0)
            return -1;
        if (scale != 1.0f)
            for (int64_t i = 0; i < emb->n_in; i++) row[i] *= scale;
    }
    return 0;
}

void fs_rmsnorm(const float *x, const float *w, float *out, int64_t n_rows, int64_t n, float eps) {
    FS_ASSERT(n > 0 && n_rows >= 0);
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        float *o = out + r * n;
        /* Sum of squares in double (ggml_float), as ggml_compute_forward_rms_norm_f32. Squaring in double
         * too reproduced the reference llama.cpp build's greedy output on SmolLM2 exactly, squaring in
         * float did not (its build contracts or widens the product). */
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += (double)xr[i] * xr[i];
        const float s = 1.0f / sqrtf((float)(sum / n) + eps);
        if (w)
            for (int64_t i = 0; i < n; i++) o[i] = (xr[i] * s) * w[i];
        else
            for (int64_t i = 0; i < n; i++) o[i] = xr[i] * s;
    }
}

/* YaRN's correction dimension for a rotation count (ggml.c ggml_rope_yarn_corr_dim). */
static float rope_yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * logf(n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 * logf(base));
}

void fs_rope_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow, float dims[2]) {
    const float start = floorf(rope_yarn_corr_dim(n_rot, n_ctx_orig, beta_fast, base));
    const float end = ceilf(rope_yarn_corr_dim(n_rot, n_ctx_orig, beta_slow, base));
    dims[0] = start > 0 ? start : 0;
    dims[1] = end < n_rot - 1 ? end : (float)(n_rot - 1);
}

/* cos and sin of one rotation, as ggml-cpu/ops.cpp rope_yarn with rope_yarn_ramp. */
static void rope_yarn(float theta_extrap, const fs_rope_params *rp, int i0, float *c, float *s) {
    const float theta_interp = rp->freq_scale * theta_extrap;
    float theta = theta_interp, mscale = rp->attn_factor;
    if (rp->ext_factor != 0.0f) {
        const float lo = rp->corr_dims[0], hi = rp->corr_dims[1];
        float y = (i0 / 2 - lo) / (hi - lo > 0.001f ? hi - lo : 0.001f);
        y = y < 0 ? 0 : (y > 1 ? 1 : y);
        const float ramp_mix = (1 - y) * rp->ext_factor;
        theta = theta_interp * (1 - ramp_mix) + theta_extrap * ramp_mix;
        mscale *= 1.0f + 0.1f * logf(1.0f / rp->freq_scale);
    }
    *c = cosf(theta) * mscale;
    *s = sinf(theta) * mscale;
}

void fs_rope(float *x, int64_t n_tok, int n_head, int head_dim, const int32_t *pos, const fs_rope_params *rp) {
    const int n_rot = rp->n_rot, half = n_rot / 2;
    FS_ASSERT(n_rot >= 0 && n_rot % 2 == 0 && n_rot <= head_dim && n_head > 0);
    if (n_rot <= 0 || n_rot > head_dim) return;
    /* theta_i = pos * base^(-2i/n_rot) by repeated float multiplication, as ggml_rope_cache_init. */
    const float theta_scale = powf(rp->base, -2.0f / (float)n_rot);
    for (int64_t t = 0; t < n_tok; t++) {
        float theta = (float)pos[t];
        for (int i = 0; i < half; i++) {
            const float ff = rp->freq_factors ? rp->freq_factors[i] : 1.0f;
            float c, s;
            rope_yarn(theta / ff, rp, 2 * i, &c, &s);
            theta *= theta_scale;
            for (int h = 0; h < n_head; h++) {
                float *v = x + (t * n_head + h) * (int64_t)head_dim;
                const int i0 = rp->neox ? i : 2 * i, i1 = rp->neox ? i + half : 2 * i + 1;
                const float x0 = v[i0], x1 = v[i1];
                v[i0] = x0 * c - x1 * s;
                v[i1] = x0 * s + x1 * c;
            }
        }
    }
}

void fs_attn_temp(float *q, int64_t n_tok, int64_t width, const int32_t *pos, float scale, float offset,
                  float floor_scale) {
    for (int64_t t = 0; t < n_tok; t++) {
        const float f = (float)(log(floor(((float)pos[t] + offset) / floor_scale) + 1.0) * scale + 1.0);
        for (int64_t i = 0; i < width; i++) q[t * width + i] *= f;
    }
}

void fs_add_rows(float *y, const float *b, int64_t n_tok, int64_t n) {
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < n; i++) y[t * n + i] += b[i];
}

/* f16 -> f32 through a table (256 KiB), filled once by fs_ops_init. */
static float f16_table[1 << 16];

static inline float h2f(uint16_t h) { return f16_table[h]; }

/* f16 GELU of every f16 input, as ggml's table_gelu_f16 (ggml-cpu.c ggml_cpu_init). */
static uint16_t gelu_table[1 << 16];

static float gelu_f32(float x) {
    const float k = 0.79788456080286535587989211986876f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

void fs_ops_init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) f16_table[i] = fp16_to_fp32((uint16_t)i);
    for (uint32_t i = 0; i < (1u << 16); i++) gelu_table[i] = fp32_to_fp16(gelu_f32(h2f((uint16_t)i)));
}

void fs_to_f16(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = fp32_to_fp16(x[i]);
}

/* dot of two f16 vectors with float accumulation, in the lane order of ggml_vec_dot_f16's AVX2
 * path (4 x 8 FMA accumulators over steps of 32, GGML_F32x8_REDUCE). n is a multiple of 32 for
 * every supported head size; a remainder is added at the end as ggml does. */
FS_DISPATCH
static float dot_f16(const uint16_t *x, const uint16_t *y, int n) {
    float acc[4][8] = {{0}};
    const int np = n & ~31;
    for (int i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++)
                acc[j][l] = fmaf(h2f(x[i + j * 8 + l]), h2f(y[i + j * 8 + l]), acc[j][l]);
    float t0[4];
    for (int l = 0; l < 8; l++) {
        acc[0][l] += acc[2][l];
        acc[1][l] += acc[3][l];
        acc[0][l] += acc[1][l];
    }
    for (int l = 0; l < 4; l++) t0[l] = acc[0][l] + acc[0][l + 4];
    double sum = (double)((t0[0] + t0[1]) + (t0[2] + t0[3]));
    for (int i = np; i < n; i++) sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

/* With an attention sink (gpt-oss: a per-head logit that takes part in the softmax's denominator
 * only), the factor on a head's unnormalized output (the V rows weighted by exp(score - M), summing to
 * S), as ggml_compute_forward_flash_attn_ext_f16 corrects for `sinks`: the larger of M and the sink is
 * the new maximum, the output scaled by ms, S * ms + vs the sum. Without a sink each path keeps its own
 * 1 / S (its rounding is the path's). */
static inline float sink_norm(float M, double S, float sink) {
    float ms = 1.0f, vs = 1.0f;
    if (sink > M)
        ms = expf(M - sink);
    else
        vs = expf(sink - M);
    const float s = (float)(S * ms + vs);
    return ms * (1.0f / s);
}

/* One query head over cache rows first..p, as ggml_compute_forward_flash_attn_ext_f16_one_chunk does
 * for an F16 cache (the path llama.cpp takes for batches under GGML_FA_TILE_Q = 64 queries): q
 * rounded to f16, f16 dot products, online softmax, the output accumulated in f16. */
FS_DISPATCH
static void attend_f16_acc(const float *q, const uint16_t *k_cache, const uint16_t *v_cache, int64_t kv_stride,
                           int head_dim, float scale, float softcap, const float *sink, int64_t first, int64_t p,
                           uint16_t *q16, uint16_t *acc, float *out) {
    fs_to_f16(q, q16, head_dim);
    memset(acc, 0, sizeof(uint16_t) * head_dim);
    float M = -INFINITY, S = 0.0f;
    for (int64_t j = first; j <= p; j++) {
        float s = dot_f16(k_cache + j * kv_stride, q16, head_dim) * scale;
        if (softcap != 0.0f) s = softcap * tanhf(s);
        const uint16_t *vj = v_cache + j * kv_stride;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float m_old = M;
            M = s;
            ms = expf(m_old - M);
            for (int d = 0; d < head_dim; d++) acc[d] = fp32_to_fp16(h2f(acc[d]) * ms);
        } else {
            vs = expf(s - M);
        }
        for (int d = 0; d < head_dim; d++) acc[d] = fp32_to_fp16(fmaf(h2f(vj[d]), vs, h2f(acc[d])));
        S = S * ms + vs;
    }
    const float inv = sink == NULL ? (S == 0.0f ? 0.0f : 1.0f / S) : sink_norm(M, S, *sink);
    for (int d = 0; d < head_dim; d++) out[d] = h2f(acc[d]) * inv;
}

/* One query head with float accumulation, as llama.cpp's tiled flash attention (batches of at least
 * 64 queries) keeps q, the scores and the output in f32: scores, softmax, then the weighted sum of
 * V rows. scores: p + 1 floats of scratch. */
FS_DISPATCH
static void attend_f32_acc(const float *q, const uint16_t *k_cache, const uint16_t *v_cache, int64_t kv_stride,
                           int head_dim, float scale, float softcap, const float *sink, int64_t first, int64_t p,
                           float *scores, float *acc, float *out) {
    float M = -INFINITY;
    for (int64_t j = first; j <= p; j++) {
        const uint16_t *kj = k_cache + j * kv_stride;
        float s8[8] = {0};
        const int d8 = head_dim & ~7;
        for (int d = 0; d < d8; d += 8)
            for (int l = 0; l < 8; l++) s8[l] = fmaf(q[d + l], h2f(kj[d + l]), s8[l]);
        float dot = ((s8[0] + s8[4]) + (s8[1] + s8[5])) + ((s8[2] + s8[6]) + (s8[3] + s8[7]));
        for (int d = d8; d < head_dim; d++) dot = fmaf(q[d], h2f(kj[d]), dot); /* head sizes not a multiple of 8 */
        float s = dot * scale;
        if (softcap != 0.0f) s = softcap * tanhf(s);
        scores[j] = s;
        M = s > M ? s : M;
    }
    double S = 0.0;
    for (int64_t j = first; j <= p; j++) {
        scores[j] = expf(scores[j] - M);
        S += scores[j];
    }
    memset(acc, 0, sizeof(float) * head_dim);
    for (int64_t j = first; j <= p; j++) {
        const uint16_t *vj = v_cache + j * kv_stride;
        const float w = scores[j];
        for (int d = 0; d < head_dim; d++) acc[d] = fmaf(h2f(vj[d]), w, acc[d]);
    }
    const float inv = sink == NULL ? (float)(1.0 / S) : sink_norm(M, S, *sink);
    for (int d = 0; d < head_dim; d++) out[d] = acc[d] * inv;
}

#if FS_HAVE_AVX2_CODE

/* exp(x) for 8 floats, x <= 0 (softmax after subtracting the maximum): x = n ln2 + r with
 * |r| <= ln2 / 2, exp(r) by Cephes' expf polynomial (relative error about 1e-7), times 2^n built in
 * the exponent bits; x below -87 (2^n would be subnormal) gives 0. */
static inline FS_AVX2_FN __m256 exp_neg_f32x8(__m256 x) {
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), tiny);
}

/* SwiGLU of 8 floats, silu(g) * u with silu(g) = g / (1 + exp(-g)), in exactly the operations of
 * llama.cpp's AVX2 build (ggml-cpu/vec.h ggml_v_expf and ggml_v_silu, used by vec.cpp
 * ggml_vec_swiglu_f32 on every whole 8 floats of a row): exp by Arm's optimized-routines polynomial
 * (maximum error about 1.5 ulp), with its special cases: |n| > 126 scales in two steps, |n| > 192
 * gives 0 or inf. */
static inline FS_AVX2_FN __m256 swiglu_f32x8(__m256 g, __m256 u) {
    const __m256 x = _mm256_sub_ps(_mm256_setzero_ps(), g); /* exp(-g) */
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 c = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 bb = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), bb,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        bb, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    __m256 ex;
    if (!_mm256_movemask_ps(c)) {
        ex = _mm256_fmadd_ps(j, k, k);
    } else {
        const __m256i sg = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                            _mm256_set1_epi32((int)0x82000000u));
        const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(sg, _mm256_set1_epi32(0x7f000000)));
        const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, sg));
        const __m256 d = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
        ex = _mm256_or_ps(_mm256_and_ps(d, _mm256_mul_ps(s1, s1)),
                          _mm256_andnot_ps(d, _mm256_or_ps(_mm256_and_ps(c, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                                                           _mm256_andnot_ps(c, _mm256_fmadd_ps(k, j, k)))));
    }
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), ex)), u);
}

/* gate[i] = silu(gate[i]) * up[i]: whole groups of 8 by swiglu_f32x8, the rest with expf, as
 * ggml_vec_swiglu_f32 (so a row of a multiple of 8 values, split at multiples of 8, gets its bits). */
static FS_AVX2_FN void swiglu_avx2(float *gate, const float *up, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(gate + i, swiglu_f32x8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* attend_f16_acc with F16C: the same operations in the same order (ggml's AVX2 ggml_vec_dot_f16,
 * ggml_vec_scale_f16 and ggml_vec_mad_f16 convert with vcvtph2ps / vcvtps2ph, round to nearest
 * even, exactly as the scalar emulation does), so the bits are equal. head_dim % 32 == 0. */
static FS_AVX2_FN void attend_f16_acc_avx2(const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                                           int64_t kv_stride, int head_dim, float scale, float softcap,
                                           const float *sink, int64_t first, int64_t p, uint16_t *q16, uint16_t *acc,
                                           float *out) {
    for (int d = 0; d < head_dim; d += 8)
        _mm_storeu_si128((__m128i *)(q16 + d), _mm256_cvtps_ph(_mm256_loadu_ps(q + d), _MM_FROUND_TO_NEAREST_INT));
    memset(acc, 0, sizeof(uint16_t) * head_dim);
    float M = -INFINITY, S = 0.0f;
    for (int64_t j = first; j <= p; j++) {
        const uint16_t *kj = k_cache + j * kv_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < head_dim; i += 32) {
            a0 = _mm256_fmadd_ps(load_f16x8(kj + i), load_f16x8(q16 + i), a0);
            a1 = _mm256_fmadd_ps(load_f16x8(kj + i + 8), load_f16x8(q16 + i + 8), a1);
            a2 = _mm256_fmadd_ps(load_f16x8(kj + i + 16), load_f16x8(q16 + i + 16), a2);
            a3 = _mm256_fmadd_ps(load_f16x8(kj + i + 24), load_f16x8(q16 + i + 24), a3);
        }
        a0 = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
        float t0[8];
        _mm256_storeu_ps(t0, a0);
        float s = (float)(double)(((t0[0] + t0[4]) + (t0[1] + t0[5])) + ((t0[2] + t0[6]) + (t0[3] + t0[7]))) * scale;
        if (softcap != 0.0f) s = softcap * tanhf(s);
        const uint16_t *vj = v_cache + j * kv_stride;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float m_old = M;
            M = s;
            ms = expf(m_old - M);
            const __m256 m8 = _mm256_set1_ps(ms);
            for (int d = 0; d < head_dim; d += 8)
                _mm_storeu_si128((__m128i *)(acc + d),
                                 _mm256_cvtps_ph(_mm256_mul_ps(load_f16x8(acc + d), m8), _MM_FROUND_TO_NEAREST_INT));
        } else {
            vs = expf(s - M);
        }
        const __m256 v8 = _mm256_set1_ps(vs);
        for (int d = 0; d < head_dim; d += 8)
            _mm_storeu_si128((__m128i *)(acc + d),
                             _mm256_cvtps_ph(_mm256_fmadd_ps(load_f16x8(vj + d), v8, load_f16x8(acc + d)),
                                             _MM_FROUND_TO_NEAREST_INT));
        S = S * ms + vs;
    }
    const float inv = sink == NULL ? (S == 0.0f ? 0.0f : 1.0f / S) : sink_norm(M, S, *sink);
    for (int d = 0; d < head_dim; d += 8)
        _mm256_storeu_ps(out + d, _mm256_mul_ps(load_f16x8(acc + d), _mm256_set1_ps(inv)));
}

/* ---- tiled attention (batches of FS_FA_TILE_Q queries and more) ------------------------------
 * One tile: the nq = n_tok_tile * group query heads of n_tok_tile consecutive tokens that share one KV
 * head (a GQA group), over the union of their key ranges [first, p_last]. Keys are taken
 * FS_ATTN_KEY_CHUNK at a time: their K and V rows are converted from f16 once into a float chunk that
 * every query of the tile reads from L1; the scores of eight keys come from eight accumulators summed
 * together (one horizontal-sum tree, hsum_f32x8x8); the outputs of four queries stay in registers
 * while they take a chunk's V rows. Keys outside a query's own causal (and sliding-window) range score
 * -inf and weigh exactly 0. Softmax per query as attend_f32_acc (after the scores, before V).
 * Numerics, per score: lane l of an 8-lane accumulator sums q[d] k[d] over d = l, l + 8, ... by FMA in
 * order, then ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)); per output dim: fma over the keys in
 * order, then times 1 / (sum of the exps, as hsum_f32x8 of 8-lane partial sums). The AVX-512 kernel
 * does exactly these operations with wider registers, so both give the same bits.
 *   q: query of tile token u, head h of the group at q + u * q_tok_stride + h * head_dim; out likewise.
 *   p0: position of the tile's first token; window 0 = full causal; head_dim % 8 == 0.
 *   work: FS_ATTN_WORK_FLOATS floats: scores (nq rows of round_up(len, 8)), the K/V chunk, outputs. */
typedef struct {
    int nq, head_dim;
    int64_t first, len, row;
    float scale, softcap;
    const float *sinks; /* the group's query heads' sinks (NULL: none) */
    int group;
    float *scores, *chunk, *acc;
    const float *qi[FS_ATTN_TILE_MAX_Q_ALL];
    float *oi[FS_ATTN_TILE_MAX_Q_ALL];
    int64_t lo[FS_ATTN_TILE_MAX_Q_ALL], hi[FS_ATTN_TILE_MAX_Q_ALL]; /* own key range, tile-relative */
    __m256 vmax[FS_ATTN_TILE_MAX_Q_ALL];
    float inv[FS_ATTN_TILE_MAX_Q_ALL];
} attn_tile;

static inline FS_AVX2_FN void tile_begin(attn_tile *T, const float *q, int64_t q_tok_stride, int n_tok_tile, int group,
                                         int head_dim, float scale, float softcap, const float *sinks, int64_t window,
                                         int64_t p0, float *work, float *out) {
    T->nq = n_tok_tile * group;
    T->sinks = sinks;
    T->group = group;
    T->head_dim = head_dim;
    T->scale = scale;
    T->softcap = softcap;
    T->first = (window > 0 && p0 - window + 1 > 0) ? p0 - window + 1 : 0;
    T->len = p0 + n_tok_tile - T->first;
    T->row = (T->len + 7) & ~(int64_t)7; /* whole 8-key groups */
    T->scores = work;
    T->chunk = T->scores + (int64_t)T->nq * T->row;
    T->acc = T->chunk + (int64_t)FS_ATTN_KEY_CHUNK * head_dim;
    for (int i = 0; i < T->nq; i++) {
        const int u = i / group, h = i % group;
        const int64_t p = p0 + u;
        T->qi[i] = q + u * q_tok_stride + (int64_t)h * head_dim;
        T->oi[i] = out + u * q_tok_stride + (int64_t)h * head_dim;
        T->lo[i] = (window > 0 && p - window + 1 > 0 ? p - window + 1 : 0) - T->first;
        T->hi[i] = p - T->first;
        T->vmax[i] = _mm256_set1_ps(-INFINITY);
    }
}

/* Scores of query i at keys j .. j + 7 (sums of q.k): scaled, soft-capped, masked, stored. */
static inline FS_AVX2_FN void tile_store8(attn_tile *T, int i, int64_t j, __m256 dots) {
    __m256 sv = _mm256_mul_ps(dots, _mm256_set1_ps(T->scale));
    if (T->softcap != 0.0f) {
        float t[8];
        _mm256_storeu_ps(t, sv);
        for (int k = 0; k < 8; k++) t[k] = T->softcap * tanhf(t[k]);
        sv = _mm256_loadu_ps(t);
    }
    const __m256i idx = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)j));
    const __m256i outside = _mm256_or_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32((int)T->hi[i])),
                                            _mm256_cmpgt_epi32(_mm256_set1_epi32((int)T->lo[i]), idx));
    sv = _mm256_blendv_ps(sv, _mm256_set1_ps(-INFINITY), _mm256_castsi256_ps(outside));
    _mm256_storeu_ps(T->scores + (int64_t)i * T->row + j, sv);
    T->vmax[i] = _mm256_max_ps(T->vmax[i], sv);
}

/* Softmax numerators in place (exp(-inf) = 0), 1 / their sums, and the output accumulators zeroed. */
static inline FS_AVX2_FN void tile_softmax(attn_tile *T) {
    for (int i = 0; i < T->nq; i++) {
        float *si = T->scores + (int64_t)i * T->row;
        __m256 m = T->vmax[i];
        m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
        m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4e));
        m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xb1));
        __m256 s8 = _mm256_setzero_ps();
        for (int64_t j = 0; j < T->row; j += 8) {
            const __m256 e = exp_neg_f32x8(_mm256_sub_ps(_mm256_loadu_ps(si + j), m));
            _mm256_storeu_ps(si + j, e);
            s8 = _mm256_add_ps(s8, e);
        }
        T->inv[i] = T->sinks == NULL ? 1.0f / hsum_f32x8(s8)
                                     : sink_norm(_mm256_cvtss_f32(m), hsum_f32x8(s8), T->sinks[i % T->group]);
    }
    memset(T->acc, 0, sizeof(float) * (size_t)T->nq * T->head_dim);
}

/* Rows j0 .. j0 + nk - 1 of the tile's range of one cache as floats into the chunk, row after row
 * (nk_pad - nk zero rows after them). */
static inline FS_AVX2_FN void tile_load_rows(attn_tile *T, const uint16_t *cache, int64_t kv_stride, int64_t j0, int nk,
                                             int nk_pad) {
    const int hd = T->head_dim;
    for (int k = 0; k < nk; k++) {
        const uint16_t *src = cache + (T->first + j0 + k) * kv_stride;
        float *dst = T->chunk + (int64_t)k * hd;
        for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(dst + d, load_f16x8(src + d));
    }
    memset(T->chunk + (int64_t)nk * hd, 0, sizeof(float) * (size_t)(nk_pad - nk) * hd);
}

/* Softmax weights of queries i0 .. i0 + 3 from key j0 on (queries past the tile repeat i0, computed
 * and never stored); returns how many are real. */
static inline int tile_quad_weights(const attn_tile *T, int i0, int64_t j0, const float *w[4]) {
    const int n4 = T->nq - i0 < 4 ? T->nq - i0 : 4;
    for (int i = 0; i < 4; i++) w[i] = T->scores + (int64_t)(i0 + (i < n4 ? i : 0)) * T->row + j0;
    return n4;
}

static inline FS_AVX2_FN void tile_finish(const attn_tile *T) {
    for (int i = 0; i < T->nq; i++) {
        const __m256 s = _mm256_set1_ps(T->inv[i]);
        const float *ai = T->acc + (int64_t)i * T->head_dim;
        for (int d = 0; d < T->head_dim; d += 8)
            _mm256_storeu_ps(T->oi[i] + d, _mm256_mul_ps(_mm256_loadu_ps(ai + d), s));
    }
}

/* Lane k of the result: the sum of a[k]'s eight lanes, by the tree above. */
static inline FS_AVX2_FN __m256 hsum_f32x8x8(const __m256 a[8]) {
    const __m256 s0123 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 s4567 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    /* s0123: lanes 0-3 sum the low halves of a[0..3], lanes 4-7 their high halves (s4567 likewise) */
    return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

static FS_AVX2_FN void attend_tile_avx2(const float *q, int64_t q_tok_stride, int n_tok_tile, int group,
                                        const uint16_t *k_cache, const uint16_t *v_cache, int64_t kv_stride,
                                        int head_dim, float scale, float softcap, const float *sinks, int64_t window,
                                        int64_t p0, float *work, float *out) {
    attn_tile T;
    tile_begin(&T, q, q_tok_stride, n_tok_tile, group, head_dim, scale, softcap, sinks, window, p0, work, out);
    for (int64_t j0 = 0; j0 < T.row; j0 += FS_ATTN_KEY_CHUNK) {
        const int nk = T.row - j0 < FS_ATTN_KEY_CHUNK ? (int)(T.row - j0) : FS_ATTN_KEY_CHUNK; /* multiple of 8 */
        tile_load_rows(&T, k_cache, kv_stride, j0, T.len - j0 < nk ? (int)(T.len - j0) : nk, nk);
        for (int i = 0; i < T.nq; i++)
            for (int k8 = 0; k8 < nk; k8 += 8) {
                const float *kr = T.chunk + (int64_t)k8 * head_dim;
                __m256 a[8];
                for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
                for (int d = 0; d < head_dim; d += 8) {
                    const __m256 qd = _mm256_loadu_ps(T.qi[i] + d);
                    for (int k = 0; k < 8; k++)
                        a[k] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kr + (int64_t)k * head_dim + d), a[k]);
                }
                tile_store8(&T, i, j0 + k8, hsum_f32x8x8(a));
            }
    }
    tile_softmax(&T);
    for (int64_t j0 = 0; j0 < T.len; j0 += FS_ATTN_KEY_CHUNK) {
        const int nk = T.len - j0 < FS_ATTN_KEY_CHUNK ? (int)(T.len - j0) : FS_ATTN_KEY_CHUNK;
        tile_load_rows(&T, v_cache, kv_stride, j0, nk, nk);
        for (int i0 = 0; i0 < T.nq; i0 += 4) {
            const float *w[4];
            const int n4 = tile_quad_weights(&T, i0, j0, w);
            for (int d = 0; d < head_dim; d += 16) {
                const int two = d + 16 <= head_dim;
                __m256 o[4][2];
                for (int i = 0; i < 4; i++) {
                    const float *ai = T.acc + (int64_t)(i0 + (i < n4 ? i : 0)) * head_dim + d;
                    o[i][0] = _mm256_loadu_ps(ai);
                    o[i][1] = two ? _mm256_loadu_ps(ai + 8) : _mm256_setzero_ps();
                }
                for (int k = 0; k < nk; k++) {
                    const float *vk = T.chunk + (int64_t)k * head_dim + d;
                    const __m256 v0 = _mm256_loadu_ps(vk);
                    const __m256 v1 = two ? _mm256_loadu_ps(vk + 8) : _mm256_setzero_ps();
                    for (int i = 0; i < 4; i++) {
                        const __m256 wk = _mm256_broadcast_ss(w[i] + k);
                        o[i][0] = _mm256_fmadd_ps(wk, v0, o[i][0]);
                        o[i][1] = _mm256_fmadd_ps(wk, v1, o[i][1]);
                    }
                }
                for (int i = 0; i < n4; i++) {
                    float *ai = T.acc + (int64_t)(i0 + i) * head_dim + d;
                    _mm256_storeu_ps(ai, o[i][0]);
                    if (two) _mm256_storeu_ps(ai + 8, o[i][1]);
                }
            }
        }
    }
    tile_finish(&T);
}

#if FS_HAVE_AVX512_CODE
/* attend_tile_avx2 with 512-bit registers, the same operations lane for lane. Scores: a zmm holds the
 * 8-lane accumulators of two keys (the K chunk is stored with keys k, k + 1 interleaved by 8 dims), and
 * the horizontal sums take the tree of hsum_f32x8x8 through shuffles (hadd's pairs; a + b == b + a).
 * V: 4 queries x 32 dims in 8 zmm. */
static FS_AVX512_FN void attend_tile_avx512(const float *q, int64_t q_tok_stride, int n_tok_tile, int group,
                                            const uint16_t *k_cache, const uint16_t *v_cache, int64_t kv_stride,
                                            int head_dim, float scale, float softcap, const float *sinks,
                                            int64_t window, int64_t p0, float *work, float *out) {
    attn_tile T;
    tile_begin(&T, q, q_tok_stride, n_tok_tile, group, head_dim, scale, softcap, sinks, window, p0, work, out);
    /* lane order of the final 8 sums: even keys come out in lanes 0-3, odd ones in 4-7 */
    const __m256i unzip = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t j0 = 0; j0 < T.row; j0 += FS_ATTN_KEY_CHUNK) {
        const int nk = T.row - j0 < FS_ATTN_KEY_CHUNK ? (int)(T.row - j0) : FS_ATTN_KEY_CHUNK;
        const int have = T.len - j0 < nk ? (int)(T.len - j0) : nk;
        /* chunk[(k / 2) * 2 * head_dim + d * 2 + (k % 2) * 8 + l] = K[k][d + l] for d % 8 == 0 */
        for (int k = 0; k < nk; k += 2)
            for (int d = 0; d < head_dim; d += 8) {
                const __m256 r0 = k < have ? load_f16x8(k_cache + (T.first + j0 + k) * kv_stride + d) : _mm256_setzero_ps();
                const __m256 r1 = k + 1 < have ? load_f16x8(k_cache + (T.first + j0 + k + 1) * kv_stride + d)
                                               : _mm256_setzero_ps();
                float *dst = T.chunk + (int64_t)k * head_dim + 2 * d;
                _mm256_storeu_ps(dst, r0);
                _mm256_storeu_ps(dst + 8, r1);
            }
        for (int i = 0; i < T.nq; i++)
            for (int k8 = 0; k8 < nk; k8 += 8) {
                const float *kr = T.chunk + (int64_t)k8 * head_dim;
                __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; /* keys (0,1) (2,3) (4,5) (6,7) */
                for (int d = 0; d < head_dim; d += 8) {
                    const __m512 qd = _mm512_broadcast_f32x8(_mm256_loadu_ps(T.qi[i] + d));
                    a0 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kr + 2 * d), a0);
                    a1 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kr + 2 * head_dim + 2 * d), a1);
                    a2 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kr + 4 * head_dim + 2 * d), a2);
                    a3 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kr + 6 * head_dim + 2 * d), a3);
                }
                /* pairs (l0 + l1), (l2 + l3) per 128-bit lane: [k l0-3 | k l4-7 | k+1 l0-3 | k+1 l4-7] */
                const __m512 b0 = _mm512_add_ps(_mm512_shuffle_ps(a0, a1, 0x88), _mm512_shuffle_ps(a0, a1, 0xdd));
                const __m512 b1 = _mm512_add_ps(_mm512_shuffle_ps(a2, a3, 0x88), _mm512_shuffle_ps(a2, a3, 0xdd));
                /* (l0 + l1) + (l2 + l3): 128-bit lane 0 holds keys 0 2 4 6 (low halves), 1 their high halves,
                 * 2 and 3 the odd keys */
                const __m512 c = _mm512_add_ps(_mm512_shuffle_ps(b0, b1, 0x88), _mm512_shuffle_ps(b0, b1, 0xdd));
                const __m512 lo = _mm512_shuffle_f32x4(c, c, 0x88); /* 128-bit lanes 0 2 0 2 */
                const __m512 hi = _mm512_shuffle_f32x4(c, c, 0xdd); /* lanes 1 3 1 3 */
                const __m256 sums = _mm256_add_ps(_mm512_castps512_ps256(lo), _mm512_castps512_ps256(hi));
                tile_store8(&T, i, j0 + k8, _mm256_permutevar8x32_ps(sums, unzip));
            }
    }
    tile_softmax(&T);
    for (int64_t j0 = 0; j0 < T.len; j0 += FS_ATTN_KEY_CHUNK) {
        const int nk = T.len - j0 < FS_ATTN_KEY_CHUNK ? (int)(T.len - j0) : FS_ATTN_KEY_CHUNK;
        tile_load_rows(&T, v_cache, kv_stride, j0, nk, nk);
        for (int i0 = 0; i0 < T.nq; i0 += 4) {
            const float *w[4];
            const int n4 = tile_quad_weights(&T, i0, j0, w);
            for (int d = 0; d < head_dim; d += 32) {
                const int left = head_dim - d; /* multiple of 8 */
                const __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
                const __mmask16 m1 = left >= 32 ? 0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
                __m512 o[4][2];
                for (int i = 0; i < 4; i++) {
                    const float *ai = T.acc + (int64_t)(i0 + (i < n4 ? i : 0)) * head_dim + d;
                    o[i][0] = _mm512_maskz_loadu_ps(m0, ai);
                    o[i][1] = _mm512_maskz_loadu_ps(m1, ai + 16);
                }
                for (int k = 0; k < nk; k++) {
                    const float *vk = T.chunk + (int64_t)k * head_dim + d;
                    const __m512 v0 = _mm512_maskz_loadu_ps(m0, vk);
                    const __m512 v1 = _mm512_maskz_loadu_ps(m1, vk + 16);
                    for (int i = 0; i < 4; i++) {
                        const __m512 wk = _mm512_set1_ps(w[i][k]);
                        o[i][0] = _mm512_fmadd_ps(wk, v0, o[i][0]);
                        o[i][1] = _mm512_fmadd_ps(wk, v1, o[i][1]);
                    }
                }
                for (int i = 0; i < n4; i++) {
                    float *ai = T.acc + (int64_t)(i0 + i) * head_dim + d;
                    _mm512_mask_storeu_ps(ai, m0, o[i][0]);
                    _mm512_mask_storeu_ps(ai + 16, m1, o[i][1]);
                }
            }
        }
    }
    tile_finish(&T);
}
#endif
#endif

/* What fs_attention_team's items share: the heads' shape, the scores' options and the path chosen. */
typedef struct {
    int n_head, n_head_kv, head_dim, group;
    int64_t kv_stride, q_stride, work_per_thread, window;
    float scale, softcap;
    const float *sinks;
    int tile_ok;   /* the register-tiled path can take batches of FS_FA_TILE_Q queries and more */
    int f16_simd;  /* under FS_FA_TILE_Q queries the F16C kernel can take a head */
#if FS_HAVE_AVX2_CODE
    void (*attend_tile)(const float *, int64_t, int, int, const uint16_t *, const uint16_t *, int64_t, int, float,
                        float, const float *, int64_t, int64_t, float *, float *);
#endif
} attn_shape;

static attn_shape attn_shape_of(int n_head, int n_head_kv, int head_dim, float scale, float softcap,
                                const float *sinks, int64_t window, int64_t n_ctx) {
    FS_ASSERT(n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0 && head_dim > 0 && window >= 0);
    attn_shape A;
    A.n_head = n_head;
    A.n_head_kv = n_head_kv;
    A.head_dim = head_dim;
    A.group = n_head / n_head_kv;
    A.kv_stride = (int64_t)n_head_kv * head_dim;
    A.q_stride = (int64_t)n_head * head_dim;
    A.work_per_thread = FS_ATTN_WORK_FLOATS(head_dim, n_ctx, A.group);
    A.window = window;
    /* soft-capping divides the scale by the cap first, as ggml's flash attention does */
    A.scale = softcap != 0.0f ? scale / softcap : scale;
    A.softcap = softcap;
    A.sinks = sinks;
    A.tile_ok = 0;
    A.f16_simd = 0;
#if FS_HAVE_AVX2_CODE
    A.tile_ok = head_dim % 8 == 0 && A.group <= FS_ATTN_TILE_MAX_Q_ALL && fs_use_avx2();
    A.f16_simd = head_dim % 32 == 0 && fs_use_avx2();
    A.attend_tile = attend_tile_avx2;
#if FS_HAVE_AVX512_CODE
    if (strcmp(fs_vecdot_impl(), "avx512") == 0) A.attend_tile = attend_tile_avx512;
#endif
#endif
    return A;
}

/* Work items of n_tok queries: tiles of tokens x one KV head with its group (the tiled path), else
 * (token, head) pairs. */
static int64_t attn_items(const attn_shape *A, int64_t n_tok) {
    if (n_tok >= FS_FA_TILE_Q && A->tile_ok) {
        const int tile = FS_ATTN_TILE_TOKENS(A->group);
        return (n_tok + tile - 1) / tile * A->n_head_kv;
    }
    return n_tok * A->n_head;
}

/* Work item `item` (< attn_items) of the n_tok queries q at positions pos0 .. over one sequence's
 * cache, into out; w: this thread's A->work_per_thread floats. */
static void attn_item(const attn_shape *A, const float *q, int64_t n_tok, int64_t pos0, const uint16_t *k_cache,
                      const uint16_t *v_cache, float *out, int64_t item, float *w) {
    const int tiled = n_tok >= FS_FA_TILE_Q;
#if FS_HAVE_AVX2_CODE
    if (tiled && A->tile_ok) {
        const int tile = FS_ATTN_TILE_TOKENS(A->group);
        const int64_t t0 = (item / A->n_head_kv) * tile;
        const int g = (int)(item % A->n_head_kv);
        const int nt = n_tok - t0 < tile ? (int)(n_tok - t0) : tile;
        const int64_t h0 = (int64_t)g * A->group * A->head_dim;
        A->attend_tile(q + t0 * A->q_stride + h0, A->q_stride, nt, A->group, k_cache + (int64_t)g * A->head_dim,
                       v_cache + (int64_t)g * A->head_dim, A->kv_stride, A->head_dim, A->scale, A->softcap,
                       A->sinks == NULL ? NULL : A->sinks + (int64_t)g * A->group, A->window, pos0 + t0, w,
                       out + t0 * A->q_stride + h0);
        return;
    }
#endif
    const int64_t t = item / A->n_head;
    const int h = (int)(item % A->n_head);
    const int64_t p = pos0 + t;
    const int64_t first = (A->window > 0 && p - A->window + 1 > 0) ? p - A->window + 1 : 0;
    const int64_t kv_off = (int64_t)(h / A->group) * A->head_dim;
    const float *qh = q + t * A->q_stride + (int64_t)h * A->head_dim;
    float *o = out + t * A->q_stride + (int64_t)h * A->head_dim;
    const float *sink = A->sinks == NULL ? NULL : A->sinks + h;
    if (tiled)
        attend_f32_acc(qh, k_cache + kv_off, v_cache + kv_off, A->kv_stride, A->head_dim, A->scale, A->softcap, sink,
                       first, p, w + A->head_dim, w, o);
#if FS_HAVE_AVX2_CODE
    else if (A->f16_simd)
        attend_f16_acc_avx2(qh, k_cache + kv_off, v_cache + kv_off, A->kv_stride, A->head_dim, A->scale, A->softcap,
                            sink, first, p, (uint16_t *)w, (uint16_t *)w + A->head_dim, o);
#endif
    else
        attend_f16_acc(qh, k_cache + kv_off, v_cache + kv_off, A->kv_stride, A->head_dim, A->scale, A->softcap, sink,
                       first, p, (uint16_t *)w, (uint16_t *)w + A->head_dim, o);
}

void fs_attention_batch_team(const float *q, const fs_batch_seg *segs, int n_seg, const uint16_t *k_cache,
                             const uint16_t *v_cache, int n_head, int n_head_kv, int head_dim, float scale,
                             float softcap, const float *sinks, int64_t window, float *out, float *work,
                             int64_t n_ctx, fs_team *team) {
    const attn_shape A = attn_shape_of(n_head, n_head_kv, head_dim, scale, softcap, sinks, window, n_ctx);
    float *w = work + (int64_t)fs_team_tid() * A.work_per_thread;
    int64_t total = 0;
    for (int s = 0; s < n_seg; s++) {
        FS_ASSERT(segs[s].n >= 1 && segs[s].pos0 >= 0 && segs[s].pos0 + segs[s].n <= n_ctx);
        total += attn_items(&A, segs[s].n);
    }
    /* a member's items only grow, so its segment cursor only moves on */
    int s = 0;
    int64_t seg_first = 0, seg_end = n_seg > 0 ? attn_items(&A, segs[0].n) : 0;
    for (int64_t item; (item = fs_team_next(team)) < total;) {
        while (item >= seg_end) {
            seg_first = seg_end;
            seg_end += attn_items(&A, segs[++s].n);
        }
        const fs_batch_seg *sg = &segs[s];
        const int64_t rows = (int64_t)sg->seq * n_ctx * A.kv_stride;
        attn_item(&A, q + (int64_t)sg->start * A.q_stride, sg->n, sg->pos0, k_cache + rows, v_cache + rows,
                  out + (int64_t)sg->start * A.q_stride, item - seg_first, w);
    }
    fs_team_sync(team);
}

void fs_attention_team(const float *q, int64_t n_tok, int64_t pos0, const uint16_t *k_cache, const uint16_t *v_cache,
                       int n_head, int n_head_kv, int head_dim, float scale, float softcap, const float *sinks,
                       int64_t window, float *out, float *work, int64_t n_ctx, fs_team *team) {
    FS_ASSERT(n_tok >= 1 && pos0 >= 0 && pos0 + n_tok <= n_ctx && n_tok <= INT32_MAX && pos0 <= INT32_MAX);
    const fs_batch_seg seg = {0, (int)pos0, 0, (int)n_tok, -1};
    fs_attention_batch_team(q, &seg, 1, k_cache, v_cache, n_head, n_head_kv, head_dim, scale, softcap, sinks, window,
                            out, work, n_ctx, team);
}

void fs_gated_act(float *gate, const float *up, int64_t n, int act) {
#if FS_HAVE_AVX2_CODE
    if (act == 0 && fs_use_avx2()) {
        swiglu_avx2(gate, up, n);
        return;
    }
#endif
    if (act == 0) {
        for (int64_t i = 0; i < n; i++) {
            const float g = gate[i];
            gate[i] = g / (1.0f + expf(-g)) * up[i];
        }
    } else if (act == 2) {
        /* gpt-oss's clamped SwiGLU (ggml_swiglu_oai, ggml-cpu/ops.cpp, alpha 1.702, limit 7 as
         * llama-graph.cpp build_moe_ffn's LLM_FFN_SWIGLU_OAI_MOE) */
        const float alpha = 1.702f, limit = 7.0f;
        for (int64_t i = 0; i < n; i++) {
            const float x = gate[i] < limit ? gate[i] : limit;
            const float y = up[i] < -limit ? -limit : up[i] > limit ? limit : up[i];
            gate[i] = x / (1.0f + expf(alpha * (-x))) * (y + 1.0f);
        }
    } else {
        /* GELU, tanh approximation (Hendrycks & Gimpel 2016). ggml evaluates it through an f16
         * table (GGML_GELU_FP16 in ggml-cpu/vec.h): the input is rounded to f16 and the result
         * too. The same table is used here (filled by fs_ops_init), so Gemma follows llama.cpp's
         * greedy path; outside [-10, 10] ggml returns 0 or x unrounded. */
        for (int64_t i = 0; i < n; i++) {
            const float g = gate[i];
            float y;
            if (g <= -10.0f)
                y = 0.0f;
            else if (g >= 10.0f)
                y = g;
            else
                y = h2f(gelu_table[fp32_to_fp16(g)]);
            gate[i] = y * up[i];
        }
    }
}

void fs_add(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

void fs_scale(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void fs_softcap(float *x, float cap, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i] / cap) * cap;
}

/* ---- team versions of the small ops: each thread takes its share of rows / elements, then the
 * team synchronizes (the results are the same as the single-threaded functions': every row or
 * element is computed by exactly the same code). */

int fs_get_rows_team(const fs_weight *emb, const int32_t *tokens, int64_t n_tok, float scale, float *out, fs_team *team) {
    int64_t lo, hi;
    fs_team_range(team, n_tok, &lo, &hi);
    const int rc = hi > lo ? fs_get_rows(emb, tokens + lo, hi - lo, scale, out + lo * emb->n_in) : 0;
    fs_team_sync(team);
    return rc;
}

void fs_rmsnorm_team(const float *x, const float *w, float *out, int64_t n_rows, int64_t n, float eps, fs_team *team) {
    int64_t lo, hi;
    fs_team_range(team, n_rows, &lo, &hi);
    if (hi > lo) fs_rmsnorm(x + lo * n, w, out + lo * n, hi - lo, n, eps);
    fs_team_sync(team);
}

void fs_rope_team(float *x, int64_t n_tok, int n_head, int head_dim, const int32_t *pos, const fs_rope_params *rp,
                  fs_team *team) {
    int64_t lo, hi;
    fs_team_range(team, n_tok, &lo, &hi);
    if (hi > lo) fs_rope(x + lo * n_head * (int64_t)head_dim, hi - lo, n_head, head_dim, pos + lo, rp);
    fs_team_sync(team);
}

void fs_attn_temp_team(float *q, int64_t n_tok, int64_t width, const int32_t *pos, float scale, float offset,
                       float floor_scale, fs_team *team) {
    int64_t lo, hi;
    fs_team_range(team, n_tok, &lo, &hi);
    if (hi > lo) fs_attn_temp(q + lo * width, hi - lo, width, pos + lo, scale, offset, floor_scale);
    fs_team_sync(team);
}

void fs_add_rows_team(float *y, const float *b, int64_t n_tok, int64_t n, fs_team *team) {
    int64_t lo, hi;
    fs_team_range(team, n_tok, &lo, &hi);
    if (hi > lo) fs_add_rows(y + lo * n, b, hi - lo, n);
    fs_team_sync(team);
}

/* Elementwise ops split in chunks of whole cache lines (16 floats) so threads never share one. */
static inline void team_chunk(const fs_team *team, int64_t n, int64_t *lo, int64_t *hi) {
    const int64_t blocks = (n + 15) / 16;
    int64_t b0, b1;
    fs_team_range(team, blocks, &b0, &b1);
    *lo = b0 * 16 < n ? b0 * 16 : n;
    *hi = b1 * 16 < n ? b1 * 16 : n;
}

void fs_to_f16_team(const float *x, uint16_t *y, int64_t n, fs_team *team) {
    int64_t lo, hi;
    team_chunk(team, n, &lo, &hi);
    if (hi > lo) fs_to_f16(x + lo, y + lo, hi - lo);
    fs_team_sync(team);
}

void fs_kv_store_team(const float *k, const float *v, int64_t kv, const fs_batch_seg *segs, int n_seg,
                      uint16_t *k_cache, uint16_t *v_cache, int64_t n_ctx, fs_team *team) {
    /* the 2 * n_seg pieces (each segment's K rows, then its V rows) laid end to end, cut in 16-value
     * chunks; a member converts what of its chunks falls in each piece */
    int64_t total = 0;
    for (int s = 0; s < n_seg; s++) total += 2 * (int64_t)segs[s].n * kv;
    int64_t lo, hi;
    team_chunk(team, total, &lo, &hi);
    int64_t at = 0;
    for (int s = 0; s < n_seg && at < hi; s++) {
        const int64_t len = (int64_t)segs[s].n * kv, src = (int64_t)segs[s].start * kv;
        const int64_t dst = ((int64_t)segs[s].seq * n_ctx + segs[s].pos0) * kv;
        for (int part = 0; part < 2; part++, at += len) {
            const int64_t a = lo > at ? lo - at : 0, b = hi - at < len ? hi - at : len;
            if (b > a) fs_to_f16((part ? v : k) + src + a, (part ? v_cache : k_cache) + dst + a, b - a);
        }
    }
    fs_team_sync(team);
}

void fs_gated_act_team(float *gate, const float *up, int64_t n, int act, fs_team *team) {
    int64_t lo, hi;
    team_chunk(team, n, &lo, &hi);
    if (hi > lo) fs_gated_act(gate + lo, up + lo, hi - lo, act);
    fs_team_sync(team);
}

void fs_add_team(float *dst, const float *src, int64_t n, fs_team *team) {
    int64_t lo, hi;
    team_chunk(team, n, &lo, &hi);
    if (hi > lo) fs_add(dst + lo, src + lo, hi - lo);
    fs_team_sync(team);
}

void fs_scale_team(float *x, float s, int64_t n, fs_team *team) {
    int64_t lo, hi;
    team_chunk(team, n, &lo, &hi);
    if (hi > lo) fs_scale(x + lo, s, hi - lo);
    fs_team_sync(team);
}

void fs_softcap_team(float *x, float cap, int64_t n, fs_team *team) {
    int64_t lo, hi;
    team_chunk(team, n, &lo, &hi);
    if (hi > lo) fs_softcap(x + lo, cap, hi - lo);
    fs_team_sync(team);
}

FS_DISPATCH static uint64_t sum_words(const uint64_t *w, size_t n) {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0; /* four chains: the adds never wait on each other */
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += w[i];
        a1 += w[i + 1];
        a2 += w[i + 2];
        a3 += w[i + 3];
    }
    for (; i < n; i++) a0 += w[i];
    return (a0 + a1) + (a2 + a3);
}

uint64_t fs_read_sum_team(const uint8_t *buf, size_t n, fs_team *team) {
    const int64_t pages = (int64_t)(n / 4096);
    int64_t lo, hi;
    fs_team_range(team, pages, &lo, &hi); /* whole pages per member; the last one also takes the tail */
    const size_t end = hi == pages ? n : (size_t)hi * 4096;
    const uint8_t *p = buf + lo * 4096;
    FS_ASSERT(((uintptr_t)buf & 7) == 0);
    return sum_words((const uint64_t *)(const void *)p, (end - (size_t)lo * 4096) / 8);
}
