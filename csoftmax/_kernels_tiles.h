/* Row-major <-> class-major copies of a chunk, for one element type of the
 * row-major side.
 *
 * Included twice by _kernels.h, with CSM_RT = double and float; CSM_SFX adds
 * the _d / _f suffix.  The class-major side is always float64 (float32 rows
 * are widened as they are read and rounded as they are written).
 *
 * Blocks of CSM_VL rows x CSM_VL classes are moved with vector loads and
 * stores and transposed in registers; the last block of a row, when K is not
 * a multiple of CSM_VL, with partial loads and stores, or as one pair of
 * values per row when it has two classes.  The scalar loops they
 * replace moved one value per load and store: for softmax of a (200000, 10)
 * array, the two copies cost as much as all the exponentials.
 */

#if CSM_VECTOR_EXT && CSM_VL > 2
/* The inverse of csm_store_pairs: row 2i of T to pair i of even, row 2i + 1
 * to pair i of odd. */
CSM_INLINE void CSM_SFX(csm_load_pairs)(const CSM_RT* T, ptrdiff_t ldt, csm_vd* even, csm_vd* odd)
{
#if defined(__AVX512F__) && CSM_VL == 8 && CSM_RT_IS_DOUBLE
#define CSM_LOAD_PAIRS(v, first)                                                                         \
    *(v) = (csm_vd)_mm512_insertf64x2(                                                                 \
        _mm512_insertf64x2(                                                                            \
            _mm512_insertf64x2(_mm512_castpd128_pd512(_mm_loadu_pd(T + (first) * ldt)),                \
                               _mm_loadu_pd(T + ((first) + 2) * ldt), 1),                              \
            _mm_loadu_pd(T + ((first) + 4) * ldt), 2),                                                 \
        _mm_loadu_pd(T + ((first) + 6) * ldt), 3);
    CSM_LOAD_PAIRS(even, 0)
    CSM_LOAD_PAIRS(odd, 1)
#undef CSM_LOAD_PAIRS
#else
    for (int i = 0; i < CSM_VL / 2; i++) {
        const CSM_RT* row = T + 2 * i * ldt;
        (*even)[2 * i] = (double)row[0];
        (*even)[2 * i + 1] = (double)row[1];
        (*odd)[2 * i] = (double)row[ldt];
        (*odd)[2 * i + 1] = (double)row[ldt + 1];
    }
#endif
}
#endif

/* Z[k * ldc + r] = T[r * ldt + k] for r < n_rows, k < K. */
static void CSM_SFX(csm_rows_to_classes)(const CSM_RT* T, ptrdiff_t ldt, ptrdiff_t n_rows, ptrdiff_t K,
                                         double* Z, ptrdiff_t ldc)
{
    ptrdiff_t r = 0;
    for (; r + CSM_VL <= n_rows; r += CSM_VL) {
        for (ptrdiff_t kb = 0; kb < K; kb += CSM_VL) {
            const ptrdiff_t nk = K - kb < CSM_VL ? K - kb : CSM_VL;
#if CSM_VECTOR_EXT && CSM_VL > 2
            if (nk == 2) {
                /* two classes left: each row's pair of values loaded whole (see
                 * csm_classes_to_rows) */
                csm_vd even, odd;
                CSM_SFX(csm_load_pairs)(T + r * ldt + kb, ldt, &even, &odd);
                csm_pair_lanes(even, odd, &even, &odd);
                csm_store_d(Z + kb * ldc + r, even);
                csm_store_d(Z + (kb + 1) * ldc + r, odd);
                continue;
            }
#endif
            csm_vd m[CSM_VL];
            for (int j = 0; j < CSM_VL; j++) m[j] = CSM_SFX(csm_load_part)(T + (r + j) * ldt + kb, nk);
            csm_transpose(m);
            for (ptrdiff_t j = 0; j < nk; j++) csm_store_d(Z + (kb + j) * ldc + r, m[j]);
        }
    }
    for (; r < n_rows; r++)
        for (ptrdiff_t k = 0; k < K; k++) Z[k * ldc + r] = (double)T[r * ldt + k];
}

#if CSM_VECTOR_EXT && CSM_VL > 2
/* Pair i of even to row 2i of T, pair i of odd to row 2i + 1 (csm_pair_lanes). */
CSM_INLINE void CSM_SFX(csm_store_pairs)(CSM_RT* T, ptrdiff_t ldt, csm_vd even, csm_vd odd)
{
#if defined(__AVX512F__) && CSM_VL == 8 && CSM_RT_IS_DOUBLE
#define CSM_STORE_PAIR(i) \
    _mm_storeu_pd(T + 2 * (i) * ldt, _mm512_extractf64x2_pd((__m512d)even, i)); \
    _mm_storeu_pd(T + (2 * (i) + 1) * ldt, _mm512_extractf64x2_pd((__m512d)odd, i));
    CSM_STORE_PAIR(0) CSM_STORE_PAIR(1) CSM_STORE_PAIR(2) CSM_STORE_PAIR(3)
#undef CSM_STORE_PAIR
#else
    for (int i = 0; i < CSM_VL / 2; i++) {
        CSM_RT* row = T + 2 * i * ldt;
        row[0] = (CSM_RT)even[2 * i];
        row[1] = (CSM_RT)even[2 * i + 1];
        row[ldt] = (CSM_RT)odd[2 * i];
        row[ldt + 1] = (CSM_RT)odd[2 * i + 1];
    }
#endif
}
#endif

/* T[r * ldt + k] = Z[k * ldc + r] for r < n_rows, k < K. */
static void CSM_SFX(csm_classes_to_rows)(const double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K,
                                         CSM_RT* T, ptrdiff_t ldt)
{
    ptrdiff_t r = 0;
    for (; r + CSM_VL <= n_rows; r += CSM_VL) {
        for (ptrdiff_t kb = 0; kb < K; kb += CSM_VL) {
            const ptrdiff_t nk = K - kb < CSM_VL ? K - kb : CSM_VL;
#if CSM_VECTOR_EXT && CSM_VL > 2
            if (nk == 2) {
                /* Two classes left (K = 2, 10, 18, ...: binary and ten-class
                 * models): one shuffle per vector of rows pairs each row's two
                 * values, stored whole, instead of a full transpose and masked
                 * stores (with the same for loads in csm_rows_to_classes,
                 * measured at one thread: softmax of a (200000, 10) array
                 * 4-7% faster, of a (200000, 2) array 14%). */
                csm_vd even, odd;
                csm_pair_lanes(csm_load_d(Z + kb * ldc + r), csm_load_d(Z + (kb + 1) * ldc + r), &even, &odd);
                CSM_SFX(csm_store_pairs)(T + r * ldt + kb, ldt, even, odd);
                continue;
            }
#endif
            csm_vd m[CSM_VL];
            for (int j = 0; j < CSM_VL; j++) m[j] = j < nk ? csm_load_d(Z + (kb + j) * ldc + r) : CSM_SET1(0.0);
            csm_transpose(m);
            for (int j = 0; j < CSM_VL; j++) CSM_SFX(csm_store_part)(T + (r + j) * ldt + kb, nk, m[j]);
        }
    }
    for (; r < n_rows; r++)
        for (ptrdiff_t k = 0; k < K; k++) T[r * ldt + k] = (CSM_RT)Z[k * ldc + r];
}
