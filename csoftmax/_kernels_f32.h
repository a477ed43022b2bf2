/* float32 arithmetic for float32 X: twice the lanes of the float64 kernels.
 *
 * Included by _kernels.h when vector extensions are available.  The dot
 * products of the logits run in float32 lanes over the features and are
 * widened to float64 before the lanes are summed; the gradient's rank update
 * accumulates one chunk of rows (at most CSM_CHUNK) in float32 registers and
 * adds that into the float64 gradient, so sums across chunks, partitions and
 * threads are float64.  W is used as a float32 copy.
 */

typedef float csm_vs __attribute__((vector_size(CSM_VL * 8), aligned(4)));   /* 2 * CSM_VL floats */
#define CSM_VS_LANES (2 * CSM_VL)
#define CSM_SET1S(x) ((csm_vs){0} + (float)(x))

CSM_INLINE csm_vs csm_load_s(const float* p) { csm_vs v; memcpy(&v, p, sizeof v); return v; }

/* The two halves of a float vector, widened to float64. */
#if CSM_VL == 8
#define CSM_LO_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 0, 1, 2, 3, 4, 5, 6, 7), csm_vd)
#define CSM_HI_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 8, 9, 10, 11, 12, 13, 14, 15), csm_vd)
#elif CSM_VL == 4
#define CSM_LO_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 0, 1, 2, 3), csm_vd)
#define CSM_HI_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 4, 5, 6, 7), csm_vd)
#else
#define CSM_LO_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 0, 1), csm_vd)
#define CSM_HI_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 2, 3), csm_vd)
#endif

CSM_INLINE void csm_logits_tile_s(const float* const* x, const float* const* w, ptrdiff_t D, double* out)
{
    csm_vs acc[CSM_TR * CSM_TC];
    csm_vd wide[CSM_TR * CSM_TC];
    for (int j = 0; j < CSM_TR * CSM_TC; j++) acc[j] = CSM_SET1S(0.0f);
    ptrdiff_t i = 0;
    for (; i + CSM_VS_LANES <= D; i += CSM_VS_LANES) {
        csm_vs wv[CSM_TC];
        for (int c = 0; c < CSM_TC; c++) wv[c] = csm_load_s(w[c] + i);
        for (int r = 0; r < CSM_TR; r++) {
            const csm_vs xv = csm_load_s(x[r] + i);
            for (int c = 0; c < CSM_TC; c++) acc[r * CSM_TC + c] += xv * wv[c];
        }
    }
    for (int j = 0; j < CSM_TR * CSM_TC; j++) wide[j] = CSM_LO_HALF(acc[j]) + CSM_HI_HALF(acc[j]);
    for (int g = 0; g < CSM_TR * CSM_TC; g += CSM_VL) {
        const csm_vd sums = csm_hsum_many(wide + g);
        for (int l = 0; l < CSM_VL; l++) out[g + l] = sums[l];
    }
    if (i < D) {
        for (int j = 0; j < CSM_TR * CSM_TC; j++) {
            const float* xr = x[j / CSM_TC];
            const float* wc = w[j % CSM_TC];
            double t = out[j];
            for (ptrdiff_t jj = i; jj < D; jj++) t += (double)xr[jj] * (double)wc[jj];
            out[j] = t;
        }
    }
}

/* As csm_logits_d, for float32 X and a float32 copy Ws of W. */
static void csm_logits_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                         const float* Ws, const double* W, ptrdiff_t ldw, ptrdiff_t K, const double* bias,
                         double* Z, ptrdiff_t zr, ptrdiff_t zk)
{
    (void)W;
    double out[CSM_TR * CSM_TC];
    const float* x[CSM_TR];
    const float* w[CSM_TC];
    const ptrdiff_t row_bytes = D * (ptrdiff_t)sizeof(float);
    const ptrdiff_t ahead_rows = csm_prefetch_rows(row_bytes);
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_TR) {
        for (int j = 0; j < CSM_TR; j++) x[j] = X + (r + j < n_rows ? r + j : n_rows - 1) * ldx;
        for (int j = 0; j < CSM_TR; j++) {
            const uintptr_t ahead = (uintptr_t)X + (uintptr_t)((r + j + ahead_rows) * ldx * (ptrdiff_t)sizeof(float));
            for (ptrdiff_t off = 0; off < row_bytes; off += 64) CSM_PREFETCH((const void*)(ahead + (uintptr_t)off));
        }
        for (ptrdiff_t k = 0; k < K; k += CSM_TC) {
            for (int c = 0; c < CSM_TC; c++) w[c] = Ws + (k + c < K ? k + c : K - 1) * ldw;
            csm_logits_tile_s(x, w, D, out);
            for (int j = 0; j < CSM_TR && r + j < n_rows; j++) {
                double* z = Z + (r + j) * zr;
                for (int c = 0; c < CSM_TC && k + c < K; c++) z[(k + c) * zk] = bias[k + c] + out[j * CSM_TC + c];
            }
        }
    }
}

/* kb classes x nv float vectors of the chunk's gradient, summed in float32
 * over the chunk's rows and then added to the float64 G. */
CSM_INLINE void csm_rank_tile_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t i,
                                const double* R, ptrdiff_t rr, ptrdiff_t rk, const int kb, const int nv,
                                double* G, ptrdiff_t ldg)
{
    csm_vs g0[CSM_KB], g1[CSM_KB];
    for (int kk = 0; kk < kb; kk++) { g0[kk] = CSM_SET1S(0.0f); g1[kk] = CSM_SET1S(0.0f); }
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const float* x = X + r * ldx + i;
        const csm_vs xv0 = csm_load_s(x);
        const csm_vs xv1 = nv == 2 ? csm_load_s(x + CSM_VS_LANES) : xv0;
        const double* rrow = R + r * rr;
        for (int kk = 0; kk < kb; kk++) {
            const csm_vs c = CSM_SET1S(rrow[kk * rk]);
            g0[kk] += c * xv0;
            if (nv == 2) g1[kk] += c * xv1;
        }
    }
    for (int kk = 0; kk < kb; kk++) {
        double* g = G + kk * ldg + i;
        csm_store_d(g, csm_load_d(g) + CSM_LO_HALF(g0[kk]));
        csm_store_d(g + CSM_VL, csm_load_d(g + CSM_VL) + CSM_HI_HALF(g0[kk]));
        if (nv == 2) {
            csm_store_d(g + 2 * CSM_VL, csm_load_d(g + 2 * CSM_VL) + CSM_LO_HALF(g1[kk]));
            csm_store_d(g + 3 * CSM_VL, csm_load_d(g + 3 * CSM_VL) + CSM_HI_HALF(g1[kk]));
        }
    }
}

#define CSM_RANK_CASE_S(KB_)                                                              \
    case KB_:                                                                             \
        for (i = 0; i + 2 * CSM_VS_LANES <= D; i += 2 * CSM_VS_LANES)                     \
            csm_rank_tile_s(X, ldx, n_rows, i, Rk, rr, rk, KB_, 2, Gk, ldg);                 \
        for (; i + CSM_VS_LANES <= D; i += CSM_VS_LANES)                                  \
            csm_rank_tile_s(X, ldx, n_rows, i, Rk, rr, rk, KB_, 1, Gk, ldg);                 \
        break;

/* As csm_rank_update_f, with float32 arithmetic inside the chunk. */
static void csm_rank_update_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                              const double* R, ptrdiff_t rr, ptrdiff_t rk, ptrdiff_t K, double* G, ptrdiff_t ldg)
{
    const int kb_max = csm_class_block_d(K);
    for (ptrdiff_t k0 = 0; k0 < K; k0 += kb_max) {
        const int kb = (int)(K - k0 < kb_max ? K - k0 : kb_max);
        const double* Rk = R + k0 * rk;
        double* Gk = G + k0 * ldg;
        ptrdiff_t i = 0;
        switch (kb) {
            CSM_RANK_CASE_S(1)
            CSM_RANK_CASE_S(2)
            CSM_RANK_CASE_S(3)
            CSM_RANK_CASE_S(4)
#if CSM_KB > 4
            CSM_RANK_CASE_S(5)
            CSM_RANK_CASE_S(6)
            CSM_RANK_CASE_S(7)
            CSM_RANK_CASE_S(8)
#endif
            default: break;
        }
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
#undef CSM_RANK_CASE_S
