/* Logits and gradient rank-update kernels for one element type of X.
 *
 * Included twice by _kernels.h, with CSM_XT = double and float; CSM_SFX adds
 * the _d / _f suffix and CSM_LOADX loads CSM_VL values of X as float64 lanes
 * (float32 data is widened as it is read, so all arithmetic is float64).
 */

/* Class blocks of near-equal size, each at most CSM_KB classes: 10 classes
 * become 5 + 5 rather than 8 + 2, keeping every block's register tile full. */
static inline int CSM_SFX(csm_class_block)(ptrdiff_t K) {
    ptrdiff_t n_blocks = (K + CSM_KB - 1) / CSM_KB;
    return (int)((K + n_blocks - 1) / n_blocks);
}

/* Logit tile: CSM_TR rows x CSM_TC classes of dot products over the features,
 * with lane-wise partial sums; the accumulators are then reduced CSM_VL at a
 * time (csm_hsum_many) and the features left over after whole vectors are
 * added in order.  out[r * CSM_TC + c] = x_r . w_c. */
CSM_INLINE void CSM_SFX(csm_logits_tile)(
        const CSM_XT* const* x, const double* const* w, ptrdiff_t D, double* out)
{
    csm_vd acc[CSM_TR * CSM_TC];
    for (int j = 0; j < CSM_TR * CSM_TC; j++) acc[j] = CSM_SET1(0.0);
    ptrdiff_t i = 0;
    for (; i + CSM_VL <= D; i += CSM_VL) {
        csm_vd wv[CSM_TC];
        for (int c = 0; c < CSM_TC; c++) wv[c] = csm_load_d(w[c] + i);
        for (int r = 0; r < CSM_TR; r++) {
            const csm_vd xv = CSM_LOADX(x[r] + i);
            for (int c = 0; c < CSM_TC; c++) acc[r * CSM_TC + c] += xv * wv[c];
        }
    }
    for (int g = 0; g < CSM_TR * CSM_TC; g += CSM_VL) {
        const csm_vd sums = csm_hsum_many(acc + g);
        for (int l = 0; l < CSM_VL; l++) out[g + l] = CSM_LANE(sums, l);
    }
    if (i < D) {
        for (int j = 0; j < CSM_TR * CSM_TC; j++) {
            const CSM_XT* xr = x[j / CSM_TC];
            const double* wc = w[j % CSM_TC];
            double t = out[j];
            for (ptrdiff_t jj = i; jj < D; jj++) t += (double)xr[jj] * wc[jj];
            out[j] = t;
        }
    }
}

/* Z[r * zr + k * zk] = bias[k] + X[r] . W[k] for r < n_rows, k < K (zr = 1,
 * zk = the chunk length for the class-major chunks of the pipeline).  W is
 * (K, D) with leading dimension ldw.  Rows and classes beyond the ends of the
 * last tiles repeat the last row or class and are discarded. */
static void CSM_SFX(csm_logits)(
        const CSM_XT* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
        const double* W, ptrdiff_t ldw, ptrdiff_t K, const double* bias,
        double* Z, ptrdiff_t zr, ptrdiff_t zk)
{
    double out[CSM_TR * CSM_TC];
    const CSM_XT* x[CSM_TR];
    const double* w[CSM_TC];
    const ptrdiff_t row_bytes = D * (ptrdiff_t)sizeof(CSM_XT);
    const ptrdiff_t ahead_rows = csm_prefetch_rows(row_bytes);
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_TR) {
        for (int j = 0; j < CSM_TR; j++) x[j] = X + (r + j < n_rows ? r + j : n_rows - 1) * ldx;
        /* X streams from memory once: ask for the rows CSM_PREFETCH_BYTES ahead
         * now, so they arrive while this tile computes (a prefetch past the
         * end of the data is harmless). */
        for (int j = 0; j < CSM_TR; j++) {
            /* integer arithmetic: the address may lie past the end of X */
            const uintptr_t ahead = (uintptr_t)X + (uintptr_t)((r + j + ahead_rows) * ldx * (ptrdiff_t)sizeof(CSM_XT));
            for (ptrdiff_t off = 0; off < row_bytes; off += 64) CSM_PREFETCH((const void*)(ahead + (uintptr_t)off));
        }
        for (ptrdiff_t k = 0; k < K; k += CSM_TC) {
            for (int c = 0; c < CSM_TC; c++) w[c] = W + (k + c < K ? k + c : K - 1) * ldw;
            CSM_SFX(csm_logits_tile)(x, w, D, out);
            for (int j = 0; j < CSM_TR && r + j < n_rows; j++) {
                double* z = Z + (r + j) * zr;
                for (int c = 0; c < CSM_TC && k + c < K; c++) z[(k + c) * zk] = bias[k + c] + out[j * CSM_TC + c];
            }
        }
    }
}

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

#define CSM_RANK_CASE(KB_)                                                                  \
    case KB_:                                                                               \
        for (i = 0; i + 2 * CSM_VL <= D; i += 2 * CSM_VL)                                   \
            CSM_SFX(csm_rank_tile)(X, ldx, n_rows, i, Rk, rr, rk, KB_, 2, Gk, ldg);            \
        for (; i + CSM_VL <= D; i += CSM_VL)                                                \
            CSM_SFX(csm_rank_tile)(X, ldx, n_rows, i, Rk, rr, rk, KB_, 1, Gk, ldg);            \
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
            default: break;
        }
        /* Features left over after whole vectors. */
        for (int kk = 0; kk < kb; kk++) {
            double* g = Gk + kk * ldg;
            for (ptrdiff_t j = i; j < D; j++) {
                double acc = g[j];
                for (ptrdiff_t r = 0; r < n_rows; r++) acc += Rk[r * rr + kk * rk] * (double)X[r * ldx + j];
                g[j] = acc;
            }
        }
    }
}
#undef CSM_RANK_CASE
