/* Class-major logits of a chunk, the loop around a logits tile kernel.
 *
 * Included by _kernels_typed.h and _kernels_f32.h with CSM_XT (the element
 * type of X), CSM_WT (that of W), CSM_LOGITS (the function's name) and
 * CSM_LOGITS_TILE (a tile kernel computing CSM_VL rows x 2 classes into
 * out[c * CSM_VL + r]).
 */

/* Class-major logits: Z[k * ldc + r] = bias[k] + X[r] . W[k] for r < n_rows
 * rounded up to whole vectors, k < K.  W is (K, D) with leading dimension
 * ldw.  Rows beyond n_rows repeat the last row (the caller overwrites them)
 * and an odd K repeats the last class in its tile, unstored. */
static void CSM_LOGITS(
        const CSM_XT* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
        const CSM_WT* W, ptrdiff_t ldw, ptrdiff_t K, const double* bias,
        double* Z, ptrdiff_t ldc)
{
    double out[2 * CSM_VL];
    const CSM_XT* x[CSM_VL];
    const CSM_WT* w[2];
    const ptrdiff_t row_bytes = D * (ptrdiff_t)sizeof(CSM_XT);
    const ptrdiff_t l2_ahead = csm_prefetch_rows(row_bytes);
    const ptrdiff_t l1_ahead = CSM_PREFETCH_L1_BYTES / (row_bytes > 0 ? row_bytes : 1);
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        for (int j = 0; j < CSM_VL; j++) x[j] = X + (r + j < n_rows ? r + j : n_rows - 1) * ldx;
        /* X streams from memory once: ask for the rows ahead now, so they
         * arrive while this tile computes. */
        csm_prefetch_tile(X, r, ldx * (ptrdiff_t)sizeof(CSM_XT), row_bytes, l2_ahead, l1_ahead);
        for (ptrdiff_t k = 0; k < K; k += 2) {
            w[0] = W + k * ldw;
            w[1] = W + (k + 1 < K ? k + 1 : k) * ldw;
            CSM_LOGITS_TILE(x, w, D, out);
            for (int c = 0; c < 2 && k + c < K; c++)
                csm_store_d(Z + (k + c) * ldc + r, csm_load_d(out + c * CSM_VL) + CSM_SET1(bias[k + c]));
        }
    }
}
