/* Row-major <-> class-major copies of a chunk, for one element type of the
 * row-major side.
 *
 * Included twice by _kernels.h, with CSM_RT = double and float; CSM_SFX adds
 * the _d / _f suffix.  The class-major side is always float64 (float32 rows
 * are widened as they are read and rounded as they are written).
 *
 * Blocks of CSM_VL rows x CSM_VL classes are moved with vector loads and
 * stores and transposed in registers; the last block of a row, when K is not
 * a multiple of CSM_VL, with partial loads and stores.  The scalar loops they
 * replace moved one value per load and store: for softmax of a (200000, 10)
 * array, the two copies cost as much as all the exponentials.
 */

/* Z[k * ldc + r] = T[r * ldt + k] for r < n_rows, k < K. */
static void CSM_SFX(csm_rows_to_classes)(const CSM_RT* T, ptrdiff_t ldt, ptrdiff_t n_rows, ptrdiff_t K,
                                         double* Z, ptrdiff_t ldc)
{
    ptrdiff_t r = 0;
    for (; r + CSM_VL <= n_rows; r += CSM_VL) {
        for (ptrdiff_t kb = 0; kb < K; kb += CSM_VL) {
            const ptrdiff_t nk = K - kb < CSM_VL ? K - kb : CSM_VL;
            csm_vd m[CSM_VL];
            for (int j = 0; j < CSM_VL; j++) m[j] = CSM_SFX(csm_load_part)(T + (r + j) * ldt + kb, nk);
            csm_transpose(m);
            for (ptrdiff_t j = 0; j < nk; j++) csm_store_d(Z + (kb + j) * ldc + r, m[j]);
        }
    }
    for (; r < n_rows; r++)
        for (ptrdiff_t k = 0; k < K; k++) Z[k * ldc + r] = (double)T[r * ldt + k];
}

/* T[r * ldt + k] = Z[k * ldc + r] for r < n_rows, k < K. */
static void CSM_SFX(csm_classes_to_rows)(const double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K,
                                         CSM_RT* T, ptrdiff_t ldt)
{
    ptrdiff_t r = 0;
    for (; r + CSM_VL <= n_rows; r += CSM_VL) {
        for (ptrdiff_t kb = 0; kb < K; kb += CSM_VL) {
            const ptrdiff_t nk = K - kb < CSM_VL ? K - kb : CSM_VL;
            csm_vd m[CSM_VL];
            for (int j = 0; j < CSM_VL; j++) m[j] = j < nk ? csm_load_d(Z + (kb + j) * ldc + r) : CSM_SET1(0.0);
            csm_transpose(m);
            for (int j = 0; j < CSM_VL; j++) CSM_SFX(csm_store_part)(T + (r + j) * ldt + kb, nk, m[j]);
        }
    }
    for (; r < n_rows; r++)
        for (ptrdiff_t k = 0; k < K; k++) T[r * ldt + k] = (CSM_RT)Z[k * ldc + r];
}
