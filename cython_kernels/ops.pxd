# Declarations of the C building blocks in fs_ops.h (see that header for shapes and sources).
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t


cdef extern from "fs_pool.h" nogil:
    ctypedef struct fs_team:
        int n
    ctypedef struct fs_pool:
        pass
    ctypedef void (*fs_job_fn)(void *arg, fs_team *team) noexcept nogil
    fs_pool *fs_pool_new(int n_threads) noexcept
    void fs_pool_free(fs_pool *p) noexcept
    int fs_pool_size(const fs_pool *p) noexcept
    void fs_pool_run(fs_pool *p, fs_job_fn fn, void *arg) noexcept
    int fs_team_tid() noexcept


cdef extern from "fs_ops.h" nogil:
    ctypedef struct fs_weight:
        const uint8_t *data
        int type
        int64_t n_in
        int64_t n_out
        size_t row_bytes

    ctypedef struct fs_rope_params:
        int n_rot
        int neox
        float base
        float freq_scale
        float ext_factor
        float attn_factor
        float corr_dims[2]
        const float *freq_factors
    void fs_rope_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow,
                                float dims[2]) noexcept
    void fs_matmul_multi_team(const fs_weight *const *ws, float *const *ys, int n_w, const float *x, int64_t n_tok,
                              const int32_t *part, uint8_t *act, fs_team *team) noexcept
    void fs_matmul_team(const fs_weight *w, const float *x, int64_t n_tok, const int32_t *part, float *y,
                        uint8_t *act, fs_team *team) noexcept
    void fs_matmul2_team(const fs_weight *w0, const fs_weight *w1, const float *x, int64_t n_tok,
                         const int32_t *part, float *y0, float *y1, uint8_t *act, fs_team *team) noexcept
    void fs_matmul3_team(const fs_weight *w0, const fs_weight *w1, const fs_weight *w2, const float *x,
                         int64_t n_tok, const int32_t *part, float *y0, float *y1, float *y2, uint8_t *act,
                         fs_team *team) noexcept
    ctypedef struct fs_batch_seg:
        int seq, pos0, start, n, logits_from
    void fs_kv_store_team(const float *k, const float *v, int64_t kv, const fs_batch_seg *segs, int n_seg,
                          uint16_t *k_cache, uint16_t *v_cache, int64_t n_ctx, fs_team *team) noexcept
    void fs_attention_batch_team(const float *q, const fs_batch_seg *segs, int n_seg, const uint16_t *k_cache,
                                 const uint16_t *v_cache, int n_head, int n_head_kv, int head_dim, float scale,
                                 float softcap, const float *sinks, int64_t window, float *out, float *work,
                                 int64_t n_ctx, fs_team *team) noexcept
    void fs_attention_team(const float *q, int64_t n_tok, int64_t pos0, const uint16_t *k_cache,
                           const uint16_t *v_cache, int n_head, int n_head_kv, int head_dim, float scale,
                           float softcap, const float *sinks, int64_t window, float *out, float *work, int64_t n_ctx,
                           fs_team *team) noexcept
    int fs_get_rows_team(const fs_weight *emb, const int32_t *tokens, int64_t n_tok, float scale, float *out,
                         fs_team *team) noexcept
    void fs_rmsnorm_team(const float *x, const float *w, float *out, int64_t n_rows, int64_t n, float eps,
                         fs_team *team) noexcept
    void fs_rope_team(float *x, int64_t n_tok, int n_head, int head_dim, const int32_t *pos,
                      const fs_rope_params *rp, fs_team *team) noexcept
    void fs_attn_temp_team(float *q, int64_t n_tok, int64_t width, const int32_t *pos, float scale, float offset,
                           float floor_scale, fs_team *team) noexcept
    void fs_add_rows_team(float *y, const float *b, int64_t n_tok, int64_t n, fs_team *team) noexcept
    void fs_to_f16_team(const float *x, uint16_t *y, int64_t n, fs_team *team) noexcept
    void fs_gated_act_team(float *gate, const float *up, int64_t n, int act, fs_team *team) noexcept
    void fs_add_team(float *dst, const float *src, int64_t n, fs_team *team) noexcept
    void fs_scale_team(float *x, float s, int64_t n, fs_team *team) noexcept
    void fs_softcap_team(float *x, float cap, int64_t n, fs_team *team) noexcept

    size_t FS_MATMUL_ACT_BYTES(int64_t n_in)
    int64_t FS_ATTN_WORK_FLOATS(int head_dim, int64_t n_ctx, int group)

    void fs_matmul(const fs_weight *w, const float *x, int64_t n_tok, const int32_t *part, float *y, uint8_t *act,
                   int n_threads) noexcept
    int fs_get_rows(const fs_weight *emb, const int32_t *tokens, int64_t n_tok, float scale, float *out) noexcept
    void fs_rmsnorm(const float *x, const float *w, float *out, int64_t n_rows, int64_t n, float eps) noexcept
    void fs_rope(float *x, int64_t n_tok, int n_head, int head_dim, const int32_t *pos,
                 const fs_rope_params *rp) noexcept
    void fs_to_f16(const float *x, uint16_t *y, int64_t n) noexcept
    void fs_ops_init() noexcept
    uint64_t fs_read_sum_team(const uint8_t *buf, size_t n, fs_team *team) noexcept
    void fs_gated_act(float *gate, const float *up, int64_t n, int act) noexcept
    void fs_add(float *dst, const float *src, int64_t n) noexcept
    void fs_scale(float *x, float s, int64_t n) noexcept
    void fs_softcap(float *x, float cap, int64_t n) noexcept


cdef extern from "fs_moe.h" nogil:
    enum:
        FS_MOE_SOFTMAX
        FS_MOE_SOFTMAX_WEIGHT
        FS_MOE_MAX_USED
    ctypedef struct fs_moe:
        fs_weight router
        fs_weight gate
        fs_weight up
        fs_weight down
        const float *router_b
        const float *gate_b
        const float *up_b
        const float *down_b
        fs_weight sh_gate
        fs_weight sh_up
        fs_weight sh_down
        const float *sh_gate_inp
        int n_expert
        int n_used
        int gating
        int norm_w
        float w_scale
        int act
    ctypedef struct fs_moe_work:
        float *logits
        int32_t *ids
        float *weights
        int32_t *offsets
        int32_t *order
        int32_t *row_of
        int32_t *active
        uint8_t *act
        float *hg
        float *hu
        float *y
        uint8_t *sh_act
        float *sh_hg
        float *sh_hu
        float *sh_y
        float *sh_w
        int32_t *pair_part
    enum:
        FS_MOE_WORK_BUFFERS
    void fs_moe_work_sizes(int64_t n_tok, int n_expert, int n_used, int64_t n_embd, int64_t n_ff_exp, int64_t n_ff_sh,
                           size_t *sizes) noexcept
    void fs_moe_ffn_team(const fs_moe *m, const float *h, int64_t n_tok, const int32_t *part, float *out,
                         const fs_moe_work *w, uint8_t *act, fs_team *team) noexcept
