/* Logits and gradient rank-update kernels for one element type of X.
 *
 * Included by _kernels.h with CSM_XT = double and, in builds without vectors
 * (which have no float32 kernels of their own), float; CSM_SFX adds the _d /
 * _f suffix and CSM_LOADX loads CSM_VL values of X as float64 lanes (float32
 * data is widened as it is read, so all arithmetic is float64).
 */

/* Class blocks of near-equal size, each at most CSM_KB classes. */
static inline int CSM_SFX(csm_class_block)(ptrdiff_t K) { return (int)csm_even_block(K, CSM_KB); }

#ifdef CSM_LOGITS_BCAST
/* Logits of CSM_VL rows x CSM_VL classes vectorised over the classes: WB
 * holds the block's weights feature by feature (WB[i * CSM_VL + c]), so each
 * feature costs one vector of weights and, per row, one broadcast of x_ri
 * (an FMA memory operand).  Each logit is summed over the features in order;
 * one transpose turns the rows' vectors into class vectors, out[c] holding
 * class c of the CSM_VL rows.  No horizontal sums: for short rows these cost
 * the pair tile a quarter of its time.  When next is not NULL, the rows
 * next[r] are prefetched a cache line at a time as the features go by. */
CSM_INLINE void CSM_SFX(csm_logits_bcast_tile)(const CSM_XT* const* x, const double* WB, ptrdiff_t D,
                                               const CSM_XT* const* next, csm_vd* out)
{
    const ptrdiff_t line = 64 / (ptrdiff_t)sizeof(CSM_XT);
    csm_vd acc[CSM_VL];
    for (int r = 0; r < CSM_VL; r++) acc[r] = CSM_SET1(0.0);
    for (ptrdiff_t i0 = 0; i0 < D; i0 += line) {
        const ptrdiff_t i1 = D - i0 < line ? D : i0 + line;
        if (next != NULL)
            for (int r = 0; r < CSM_VL; r++) CSM_PREFETCH((const void*)(next[r] + i0));
        for (ptrdiff_t i = i0; i < i1; i++) {
            const csm_vd wv = csm_load_d(WB + i * CSM_VL);
            for (int r = 0; r < CSM_VL; r++) acc[r] += CSM_SET1(x[r][i]) * wv;
        }
    }
    csm_transpose(acc);
    for (int c = 0; c < CSM_VL; c++) out[c] = acc[c];
}

/* Logits of CSM_VL rows x kb < CSM_VL classes vectorised over the rows (the
 * float32 row tile of _kernels_f32.h in float64): each group of CSM_VL
 * features of the rows is transposed in registers, then every class takes
 * one FMA per feature, its weight broadcast from WB[i * kb + c] (the
 * broadcast layout of fewer than CSM_VL classes).  Each logit is summed over
 * the features in order, as in the broadcast tile; the features past the
 * last whole group are gathered one by one. */
CSM_INLINE void CSM_SFX(csm_logits_few_tile)(const CSM_XT* const* x, const double* WB, ptrdiff_t D, const int kb,
                                             csm_vd* out)
{
    csm_vd acc[CSM_VL];
    for (int c = 0; c < kb; c++) acc[c] = CSM_SET1(0.0);
    ptrdiff_t i = 0;
    for (; i + CSM_VL <= D; i += CSM_VL) {
        csm_vd t[CSM_VL];
        for (int r = 0; r < CSM_VL; r++) t[r] = CSM_LOADX(x[r] + i);
        csm_transpose(t);
        for (int f = 0; f < CSM_VL; f++)
            for (int c = 0; c < kb; c++) acc[c] += t[f] * CSM_SET1(WB[(i + f) * kb + c]);
    }
    for (; i < D; i++) {
        double lanes[CSM_VL];
        for (int r = 0; r < CSM_VL; r++) lanes[r] = (double)x[r][i];
        const csm_vd t = csm_load_d(lanes);
        for (int c = 0; c < kb; c++) acc[c] += t * CSM_SET1(WB[i * kb + c]);
    }
    for (int c = 0; c < kb; c++) out[c] = acc[c];
}

/* kb classes of the rows of a chunk through the tile above, prefetching in
 * bulk as csm_logits_d does for so few classes. */
CSM_INLINE void CSM_SFX(csm_logits_few_rows)(const CSM_XT* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                                             const double* WB, const int kb, const double* bias, double* Z,
                                             ptrdiff_t ldc)
{
    const ptrdiff_t row_bytes = D * (ptrdiff_t)sizeof(CSM_XT);
    const ptrdiff_t l2_ahead = csm_prefetch_rows(row_bytes), l1_ahead = CSM_PREFETCH_L1_BYTES / row_bytes;
    const CSM_XT* x[CSM_VL];
    csm_vd out[CSM_VL];
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        for (int j = 0; j < CSM_VL; j++) x[j] = X + (r + j < n_rows ? r + j : n_rows - 1) * ldx;
        csm_prefetch_tile(X, r, ldx * (ptrdiff_t)sizeof(CSM_XT), row_bytes, l2_ahead, l1_ahead);
        CSM_SFX(csm_logits_few_tile)(x, WB, D, kb, out);
        for (int c = 0; c < kb; c++) csm_store_d(Z + c * ldc + r, out[c] + CSM_SET1(bias[c]));
    }
}

#define CSM_FEW_CASE(KB_)                                                              \
    case KB_:                                                                          \
        CSM_SFX(csm_logits_few_rows)(X, ldx, n_rows, D, WB, KB_, bias, Z, ldc); \
        return 1;

/* The logits of a chunk of short rows with fewer than CSM_VL classes (the
 * hook CSM_LOGITS_ROWS of _kernels_logits.h): 1 when done, 0 for more
 * classes (the broadcast layout then holds whole blocks of CSM_VL). */
static int CSM_SFX(csm_logits_few)(const CSM_XT* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                                   const double* WB, ptrdiff_t K, int bulk, const double* bias, double* Z,
                                   ptrdiff_t ldc)
{
    (void)bulk;
    switch (K) {
        CSM_FEW_CASE(1)
#if CSM_VL > 2
        CSM_FEW_CASE(2)
        CSM_FEW_CASE(3)
#endif
#if CSM_VL > 4
        CSM_FEW_CASE(4)
        CSM_FEW_CASE(5)
        CSM_FEW_CASE(6)
        CSM_FEW_CASE(7)
#endif
        default: return 0;
    }
}
#undef CSM_FEW_CASE
#define CSM_LOGITS_ROWS CSM_SFX(csm_logits_few)
#endif

#define CSM_WT double
#define CSM_LOGITS CSM_SFX(csm_logits)
#define CSM_LOGITS_TILE CSM_SFX(csm_logits_tile)
#define CSM_LOGITS_ACC csm_vd
#define CSM_LOGITS_LANES CSM_VL
#define CSM_LOGITS_ZERO CSM_SET1(0.0)
#define CSM_LOGITS_LOADX CSM_LOADX
#define CSM_LOGITS_LOADW csm_load_d
#define CSM_LOGITS_LOADX_PART CSM_SFX(csm_load_part)
#define CSM_LOGITS_LOADW_PART csm_load_part_d
#define CSM_LOGITS_WIDE(v) (v)
#include "_kernels_logits.h"
#undef CSM_WT
#undef CSM_LOGITS
#undef CSM_LOGITS_TILE
#undef CSM_LOGITS_ACC
#undef CSM_LOGITS_LANES
#undef CSM_LOGITS_ZERO
#undef CSM_LOGITS_LOADX
#undef CSM_LOGITS_LOADW
#undef CSM_LOGITS_LOADX_PART
#undef CSM_LOGITS_LOADW_PART
#undef CSM_LOGITS_WIDE
#undef CSM_LOGITS_ROWS

/* G[k, i:i+nv*VL] += sum_r R[r * rr + k * rk] X[r, i:i+nv*VL] for k < kb: a register tile
 * of kb x nv vectors of G stays in registers over all rows of the chunk. */
CSM_INLINE void CSM_SFX(csm_rank_tile)(
        const CSM_XT* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t i,
        const double* R, ptrdiff_t rr, ptrdiff_t rk, const int kb, const int nv,
        double* G, ptrdiff_t ldg)
{
    csm_vd g0[CSM_KB], g1[CSM_KB];
    for (int kk = 0; kk < kb; kk++) {
        g0[kk] = csm_load_d(G + kk * ldg + i);
        g1[kk] = nv == 2 ? csm_load_d(G + kk * ldg + i + CSM_VL) : g0[kk];
    }
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const CSM_XT* x = X + r * ldx + i;
        const csm_vd xv0 = CSM_LOADX(x);
        const csm_vd xv1 = nv == 2 ? CSM_LOADX(x + CSM_VL) : xv0;
        const double* rrow = R + r * rr;
        for (int kk = 0; kk < kb; kk++) {
            const csm_vd c = CSM_SET1(rrow[kk * rk]);
            g0[kk] += c * xv0;
            if (nv == 2) g1[kk] += c * xv1;
        }
    }
    for (int kk = 0; kk < kb; kk++) {
        csm_store_d(G + kk * ldg + i, g0[kk]);
        if (nv == 2) csm_store_d(G + kk * ldg + i + CSM_VL, g1[kk]);
    }
}

#if CSM_VL > 1
/* As the tile with one vector, for the last rem < CSM_VL features (partial
 * loads and stores, masked where the instruction set has them), the rows in
 * order.  Summed one by one instead, a chain of dependent additions per
 * class and feature, they took most of the rank update of short rows
 * (200000 x 13 x 3 float64 rows, 5 features left over: loss and gradient at
 * 1 thread 3.8 -> 2.4 ms with AVX-512; with AVX2, 200000 x 15 x 3, 3
 * features left over: 4.0 -> 3.2 ms).  Without vectors (one lane) no
 * feature is left over. */
CSM_INLINE void CSM_SFX(csm_rank_tile_tail)(
        const CSM_XT* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t i, int rem,
        const double* R, ptrdiff_t rr, ptrdiff_t rk, const int kb, double* G, ptrdiff_t ldg)
{
    csm_vd g[CSM_KB];
    for (int kk = 0; kk < kb; kk++) g[kk] = csm_load_part_d(G + kk * ldg + i, rem);
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const csm_vd xv = CSM_SFX(csm_load_part)(X + r * ldx + i, rem);
        for (int kk = 0; kk < kb; kk++) g[kk] += CSM_SET1(R[r * rr + kk * rk]) * xv;
    }
    for (int kk = 0; kk < kb; kk++) csm_store_part_d(G + kk * ldg + i, rem, g[kk]);
}
#define CSM_RANK_TILE_TAIL(KB_)                                                                      \
    if (i < D) CSM_SFX(csm_rank_tile_tail)(X, ldx, n_rows, i, (int)(D - i), Rk, rr, rk, KB_, Gk, ldg);
#else
#define CSM_RANK_TILE_TAIL(KB_)
#endif

#define CSM_RANK_CASE(KB_)                                                                  \
    case KB_:                                                                               \
        for (i = 0; i + 2 * CSM_VL <= D; i += 2 * CSM_VL)                                   \
            CSM_SFX(csm_rank_tile)(X, ldx, n_rows, i, Rk, rr, rk, KB_, 2, Gk, ldg);            \
        for (; i + CSM_VL <= D; i += CSM_VL)                                                \
            CSM_SFX(csm_rank_tile)(X, ldx, n_rows, i, Rk, rr, rk, KB_, 1, Gk, ldg);            \
        CSM_RANK_TILE_TAIL(KB_)                                                             \
        break;

/* G[k, i] += sum_{r < n_rows} R[r * rr + k * rk] X[r, i] for k < K, i < D: the chunk's
 * contribution to the gradient, vectorised along the features.  Each element
 * of G receives the rows in order, so the sum is deterministic. */
static void CSM_SFX(csm_rank_update)(
        const CSM_XT* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
        const double* R, ptrdiff_t rr, ptrdiff_t rk, ptrdiff_t K,
        double* G, ptrdiff_t ldg)
{
    const int kb_max = CSM_SFX(csm_class_block)(K);
    for (ptrdiff_t k0 = 0; k0 < K; k0 += kb_max) {
        const int kb = (int)(K - k0 < kb_max ? K - k0 : kb_max);
        const double* Rk = R + k0 * rk;
        double* Gk = G + k0 * ldg;
        ptrdiff_t i = 0;
        switch (kb) {
            CSM_RANK_CASE(1)
            CSM_RANK_CASE(2)
            CSM_RANK_CASE(3)
            CSM_RANK_CASE(4)
#if CSM_KB > 4
            CSM_RANK_CASE(5)
            CSM_RANK_CASE(6)
            CSM_RANK_CASE(7)
            CSM_RANK_CASE(8)
#endif
            default: break;   /* kb <= CSM_KB: never */
        }
    }
}
#undef CSM_RANK_CASE
#undef CSM_RANK_TILE_TAIL
