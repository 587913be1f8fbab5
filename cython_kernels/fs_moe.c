/* Implementation of fs_moe.h. See the header for shapes and sources. */
#include "fs_moe.h"
#include "fs_vecdot.h"

#include <math.h>
#include <string.h>

void fs_moe_work_sizes(int64_t n_tok, int n_expert, int n_used, int64_t n_embd, int64_t n_ff_exp, int64_t n_ff_sh,
                       size_t sizes[FS_MOE_WORK_BUFFERS]) {
    const size_t pairs = (size_t)n_tok * (size_t)n_used;
    const int64_t widest = n_embd > n_ff_exp ? n_embd : n_ff_exp;
    sizes[0] = (size_t)n_tok * n_expert * sizeof(float);
    sizes[1] = pairs * sizeof(int32_t);
    sizes[2] = pairs * sizeof(float);
    sizes[3] = ((size_t)n_expert + 1) * sizeof(int32_t);
    sizes[4] = pairs * sizeof(int32_t);
    sizes[5] = pairs * sizeof(int32_t);
    sizes[6] = ((size_t)n_expert + 1) * sizeof(int32_t);
    sizes[7] = 2 * pairs * FS_MATMUL_ACT_BYTES(widest); /* gate's and up's formats may differ */
    sizes[8] = pairs * (size_t)n_ff_exp * sizeof(float);
    sizes[9] = pairs * (size_t)n_ff_exp * sizeof(float);
    sizes[10] = pairs * (size_t)n_embd * sizeof(float);
    const size_t sh_tok = n_ff_sh > 0 ? (size_t)n_tok : 0;
    const int64_t sh_widest = n_embd > n_ff_sh ? n_embd : n_ff_sh;
    sizes[11] = 2 * sh_tok * FS_MATMUL_ACT_BYTES(sh_widest);
    sizes[12] = sh_tok * (size_t)n_ff_sh * sizeof(float);
    sizes[13] = sh_tok * (size_t)n_ff_sh * sizeof(float);
    sizes[14] = sh_tok * (size_t)n_embd * sizeof(float);
    sizes[15] = sh_tok * sizeof(float);
    sizes[16] = pairs * sizeof(int32_t);
}

/* ggml's soft_max over n values in place (ggml-cpu/ops.cpp ggml_compute_forward_soft_max_f32): the
 * maximum subtracted, the sum of the exponentials in double, one reciprocal as the factor. */
static void softmax(float *x, int n) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] = expf(x[i] - max));
    const float scale = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= scale;
}

/* The k largest of v[0 .. n) into ids, largest first; ties: the lower index first (a stable
 * descending argsort, ggml_argsort_top_k). Insertion into a sorted list of k: n * k at worst, and
 * k is small (2 .. 16 in released models). NaNs count as smallest. */
static void top_k(const float *v, int n, int k, int32_t *ids) {
    int have = 0;
    for (int i = 0; i < n; i++) {
        const float x = v[i];
        if (have == k && !(x > v[ids[k - 1]])) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && (x > v[ids[j - 1]] || isnan(v[ids[j - 1]]))) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
}

/* The routing of one token: probabilities over logits[0 .. n_expert) in place, then ids[0 .. n_used)
 * and weights[0 .. n_used). */
static void route(const fs_moe *m, float *logits, int32_t *ids, float *weights) {
    const int k = m->n_used;
    if (m->gating == FS_MOE_SOFTMAX_WEIGHT) {
        top_k(logits, m->n_expert, k, ids);
        for (int s = 0; s < k; s++) weights[s] = logits[ids[s]];
        softmax(weights, k);
    } else {
        softmax(logits, m->n_expert);
        top_k(logits, m->n_expert, k, ids);
        for (int s = 0; s < k; s++) weights[s] = logits[ids[s]];
    }
    if (m->norm_w) { /* ggml_sum_rows (double sum), ggml_clamp at f16's smallest normal, ggml_div */
        double sum = 0.0;
        for (int s = 0; s < k; s++) sum += weights[s];
        float d = (float)sum;
        if (!(d >= 6.103515625e-5f)) d = 6.103515625e-5f;
        for (int s = 0; s < k; s++) weights[s] /= d;
    }
    if (m->w_scale != 0.0f && m->w_scale != 1.0f)
        for (int s = 0; s < k; s++) weights[s] *= m->w_scale;
}

/* Expert e's matrix: row block e of the stacked weight, rows_per_expert rows. */
static inline fs_weight expert(const fs_weight *all, int e, int64_t rows_per_expert) {
    fs_weight w = *all;
    w.data = all->data + (size_t)e * (size_t)rows_per_expert * all->row_bytes;
    w.n_out = rows_per_expert;
    return w;
}

/* Counting sort of the (token, slot) pairs by expert, tokens ascending within an expert (one member);
 * each grouped row's part is its token's (0 for all when part is NULL). */
static void group_pairs(const fs_moe *m, int64_t n_tok, const int32_t *part, const fs_moe_work *w) {
    const int E = m->n_expert, K = m->n_used;
    const int64_t pairs = n_tok * K;
    memset(w->offsets, 0, ((size_t)E + 1) * sizeof(int32_t));
    for (int64_t p = 0; p < pairs; p++) w->offsets[w->ids[p] + 1]++;
    int n_active = 0;
    for (int e = 0; e < E; e++) {
        if (w->offsets[e + 1] > 0) w->active[1 + n_active++] = e;
        w->offsets[e + 1] += w->offsets[e];
    }
    w->active[0] = n_active;
    /* offsets[e] now counts up as pairs are placed; restored below */
    for (int64_t p = 0; p < pairs; p++) {
        const int32_t row = w->offsets[w->ids[p]]++;
        w->order[row] = (int32_t)p;
        w->row_of[p] = row;
        w->pair_part[row] = part != NULL ? part[p / K] : 0;
    }
    for (int e = E; e > 0; e--) w->offsets[e] = w->offsets[e - 1];
    w->offsets[0] = 0;
}

void fs_moe_ffn_team(const fs_moe *m, const float *h, int64_t n_tok, const int32_t *part, float *out,
                     const fs_moe_work *w, uint8_t *act, fs_team *team) {
    const int E = m->n_expert, K = m->n_used;
    const int64_t n_embd = m->gate.n_in, n_ff = m->down.n_in, pairs = n_tok * K;
    int64_t lo, hi;
#ifdef FS_DEBUG
    FS_ASSERT(K >= 1 && K <= E && K <= FS_MOE_MAX_USED && m->router.n_out == E && m->router.n_in == n_embd);
    FS_ASSERT(m->gate.n_out == E * n_ff && m->up.n_out == E * n_ff && m->up.n_in == n_embd);
    FS_ASSERT(m->down.n_out == E * n_embd && out != h);
#endif
    /* router logits (n_tok, E), then each token's experts and weights */
    fs_matmul_team(&m->router, h, n_tok, part, w->logits, act, team);
    fs_team_range(team, n_tok, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        if (m->router_b != NULL) fs_add(w->logits + t * E, m->router_b, E);
        route(m, w->logits + t * E, w->ids + t * K, w->weights + t * K);
    }
    fs_team_sync(team);
    if (fs_team_tid() == 0) group_pairs(m, n_tok, part, w);
    fs_team_sync(team);

    /* each pair's input row, quantized for gate (and for up where its format differs), in expert order */
    const size_t ab_g = fs_act_row_bytes(m->gate.type, n_embd), ab_u = fs_act_row_bytes(m->up.type, n_embd);
    const int split = fs_act_format(m->gate.type) != fs_act_format(m->up.type);
    uint8_t *act_g = w->act, *act_u = split ? w->act + pairs * ab_g : w->act;
    fs_team_range(team, pairs, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = h + (w->order[r] / K) * n_embd;
        fs_quantize_act(m->gate.type, x, act_g + r * ab_g, n_embd);
        if (split) fs_quantize_act(m->up.type, x, act_u + r * ab_u, n_embd);
    }
    /* the shared expert's inputs in token order, and its gate sigmoid(h . gate_inp) */
    const int shared = m->sh_gate.data != NULL;
    const int64_t n_sh = shared ? m->sh_down.n_in : 0;
    const size_t sab_g = shared ? fs_act_row_bytes(m->sh_gate.type, n_embd) : 0;
    const size_t sab_u = shared ? fs_act_row_bytes(m->sh_up.type, n_embd) : 0;
    const int sh_split = shared && fs_act_format(m->sh_gate.type) != fs_act_format(m->sh_up.type);
    uint8_t *sact_g = w->sh_act, *sact_u = sh_split ? w->sh_act + n_tok * sab_g : w->sh_act;
    if (shared) {
        fs_team_range(team, n_tok, &lo, &hi);
        for (int64_t t = lo; t < hi; t++) {
            const float *x = h + t * n_embd;
            fs_quantize_act(m->sh_gate.type, x, sact_g + t * sab_g, n_embd);
            if (sh_split) fs_quantize_act(m->sh_up.type, x, sact_u + t * sab_u, n_embd);
            float g = 1.0f;
            if (m->sh_gate_inp != NULL) {
                double dot = 0.0; /* ggml's F32 mul_mat of one row, in double (ggml_vec_dot_f32) */
                for (int64_t i = 0; i < n_embd; i++) dot += (double)(x[i] * m->sh_gate_inp[i]);
                g = 1.0f / (1.0f + expf(-(float)dot));
            }
            w->sh_w[t] = g;
        }
    }
    fs_team_sync(team);

    /* gate and up of every chosen expert, a tile of rows at a time, the activation right after */
    const int n_active = w->active[0];
    const int64_t tiles_ff = (n_ff + FS_MATMUL_TILE_ROWS - 1) / FS_MATMUL_TILE_ROWS;
    const int64_t tiles_sh = (n_sh + FS_MATMUL_TILE_ROWS - 1) / FS_MATMUL_TILE_ROWS;
    fs_team_range(team, n_active * tiles_ff + tiles_sh, &lo, &hi);
    for (int64_t item = lo; item < hi; item++) {
        if (item >= n_active * tiles_ff) { /* a tile of the shared expert, every token */
            const int64_t r0 = (item - n_active * tiles_ff) * FS_MATMUL_TILE_ROWS;
            const int64_t nr = n_sh - r0 < FS_MATMUL_TILE_ROWS ? n_sh - r0 : FS_MATMUL_TILE_ROWS;
            fs_matmul_tile(&m->sh_gate, r0, sact_g, sab_g, n_tok, part, w->sh_hg);
            fs_matmul_tile(&m->sh_up, r0, sact_u, sab_u, n_tok, part, w->sh_hu);
            for (int64_t t = 0; t < n_tok; t++) fs_gated_act(w->sh_hg + t * n_sh + r0, w->sh_hu + t * n_sh + r0, nr, 0);
            continue;
        }
        const int e = w->active[1 + item / tiles_ff];
        const int64_t r0 = (item % tiles_ff) * FS_MATMUL_TILE_ROWS;
        const int64_t nr = n_ff - r0 < FS_MATMUL_TILE_ROWS ? n_ff - r0 : FS_MATMUL_TILE_ROWS;
        const int64_t off = w->offsets[e], cnt = w->offsets[e + 1] - off;
        const fs_weight g = expert(&m->gate, e, n_ff), u = expert(&m->up, e, n_ff);
        fs_matmul_tile(&g, r0, act_g + off * ab_g, ab_g, cnt, w->pair_part + off, w->hg + off * n_ff);
        fs_matmul_tile(&u, r0, act_u + off * ab_u, ab_u, cnt, w->pair_part + off, w->hu + off * n_ff);
        for (int64_t i = off; i < off + cnt; i++) {
            float *g_i = w->hg + i * n_ff + r0, *u_i = w->hu + i * n_ff + r0;
            if (m->gate_b != NULL) fs_add(g_i, m->gate_b + (int64_t)e * n_ff + r0, nr);
            if (m->up_b != NULL) fs_add(u_i, m->up_b + (int64_t)e * n_ff + r0, nr);
            fs_gated_act(g_i, u_i, nr, m->act);
        }
    }
    fs_team_sync(team);

    /* down's inputs, quantized (the gate/up inputs are no longer needed) */
    const size_t ab_d = fs_act_row_bytes(m->down.type, n_ff);
    fs_team_range(team, pairs, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) fs_quantize_act(m->down.type, w->hg + r * n_ff, w->act + r * ab_d, n_ff);
    const size_t sab_d = shared ? fs_act_row_bytes(m->sh_down.type, n_sh) : 0;
    if (shared) {
        fs_team_range(team, n_tok, &lo, &hi);
        for (int64_t t = lo; t < hi; t++)
            fs_quantize_act(m->sh_down.type, w->sh_hg + t * n_sh, w->sh_act + t * sab_d, n_sh);
    }
    fs_team_sync(team);

    const int64_t tiles_embd = (n_embd + FS_MATMUL_TILE_ROWS - 1) / FS_MATMUL_TILE_ROWS;
    fs_team_range(team, n_active * tiles_embd + (shared ? tiles_embd : 0), &lo, &hi);
    for (int64_t item = lo; item < hi; item++) {
        if (item >= n_active * tiles_embd) {
            const int64_t r0 = (item - n_active * tiles_embd) * FS_MATMUL_TILE_ROWS;
            fs_matmul_tile(&m->sh_down, r0, w->sh_act, sab_d, n_tok, part, w->sh_y);
            continue;
        }
        const int e = w->active[1 + item / tiles_embd];
        const int64_t r0 = (item % tiles_embd) * FS_MATMUL_TILE_ROWS;
        const int64_t off = w->offsets[e], cnt = w->offsets[e + 1] - off;
        const fs_weight d = expert(&m->down, e, n_embd);
        fs_matmul_tile(&d, r0, w->act + off * ab_d, ab_d, cnt, w->pair_part + off, w->y + off * n_embd);
        if (m->down_b != NULL) {
            const int64_t nr = n_embd - r0 < FS_MATMUL_TILE_ROWS ? n_embd - r0 : FS_MATMUL_TILE_ROWS;
            for (int64_t i = off; i < off + cnt; i++)
                fs_add(w->y + i * n_embd + r0, m->down_b + (int64_t)e * n_embd + r0, nr);
        }
    }
    fs_team_sync(team);

    /* out = w_0 y_0 + w_1 y_1 + ..., best expert first (ggml_mul by the weights, then ggml_add in slot order) */
    fs_team_range(team, n_tok, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        float *o = out + t * n_embd;
        const float *wt = w->weights + t * K;
        const float *y0 = w->y + (int64_t)w->row_of[t * K] * n_embd;
        for (int64_t i = 0; i < n_embd; i++) o[i] = wt[0] * y0[i];
        for (int s = 1; s < K; s++) {
            const float *ys = w->y + (int64_t)w->row_of[t * K + s] * n_embd;
            for (int64_t i = 0; i < n_embd; i++) o[i] += wt[s] * ys[i];
        }
        if (shared) { /* ggml_mul by the gate, then ggml_add to the experts' sum */
            const float *ys = w->sh_y + t * n_embd, g = w->sh_w[t];
            for (int64_t i = 0; i < n_embd; i++) o[i] += ys[i] * g;
        }
    }
    fs_team_sync(team);
}
