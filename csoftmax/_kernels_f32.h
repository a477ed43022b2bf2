/* float32 arithmetic for float32 X: twice the lanes of the float64 kernels.
 *
 * Included by _kernels.h when vector extensions are available.  The dot
 * products of the logits run in float32 lanes over the features and are
 * widened to float64 before the lanes are summed (in AVX-512 builds short
 * rows sum all their features in float32, in runs, see the row tile); the gradient's
 * rank update accumulates one chunk of rows (at most CSM_CHUNK) in float32 registers and
 * adds that into the float64 gradient, so sums across chunks, partitions and
 * threads are float64.  W is used as a float32 copy.
 */

typedef float csm_vs __attribute__((vector_size(CSM_VL * 8)));   /* 2 * CSM_VL floats */
#define CSM_VS_LANES (2 * CSM_VL)
#define CSM_SET1S(x) ((float)(x) - (csm_vs){0})   /* as CSM_SET1 */

CSM_INLINE csm_vs csm_load_s(const float* p) { csm_vs v; memcpy(&v, p, sizeof v); return v; }

/* The first n < CSM_VS_LANES floats at p, zeros after them. */
CSM_INLINE csm_vs csm_load_part_s(const float* p, ptrdiff_t n) {
#if defined(__AVX512F__) && CSM_VL == 8
    return (csm_vs)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
#elif defined(__AVX2__) && CSM_VL == 4
    return (csm_vs)_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n),
                                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
#elif defined(__SSE2__) && CSM_VL == 2
    /* loads of 1 and 2 floats, never past p[n - 1]: built lane by lane
     * (through memory), the partial vector cost more than the tile saved */
    if (n == 1) return (csm_vs)_mm_load_ss(p);
    const __m128 two = _mm_loadl_pi(_mm_setzero_ps(), (const __m64*)p);
    return (csm_vs)(n == 2 ? two : _mm_movelh_ps(two, _mm_load_ss(p + 2)));
#else
    csm_vs v = CSM_SET1S(0.0f);
    for (ptrdiff_t l = 0; l < n; l++) v[l] = p[l];
    return v;
#endif
}

/* The two halves of a float vector, widened to float64.  With AVX-512 and
 * AVX2, intrinsics: GCC lowers the generic form to one conversion per
 * quarter and reassembles the halves (measured: the float32 digits-like
 * logits 8.7 ms with it, 6.0 ms with these). */
#if CSM_VL == 8 && defined(__AVX512F__)
#define CSM_LO_HALF(v) ((csm_vd)_mm512_cvtps_pd(_mm512_castps512_ps256((__m512)(v))))
#define CSM_HI_HALF(v) ((csm_vd)_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd((__m512d)(v), 1))))
#elif CSM_VL == 4 && defined(__AVX2__)
#define CSM_LO_HALF(v) ((csm_vd)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)(v))))
#define CSM_HI_HALF(v) ((csm_vd)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)(v), 1)))
#elif CSM_VL == 8
#define CSM_LO_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 0, 1, 2, 3, 4, 5, 6, 7), csm_vd)
#define CSM_HI_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 8, 9, 10, 11, 12, 13, 14, 15), csm_vd)
#elif CSM_VL == 4
#define CSM_LO_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 0, 1, 2, 3), csm_vd)
#define CSM_HI_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 4, 5, 6, 7), csm_vd)
#else
#define CSM_LO_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 0, 1), csm_vd)
#define CSM_HI_HALF(v) __builtin_convertvector(CSM_SHUFFLE(v, v, 2, 3), csm_vd)
#endif

#if CSM_VL == 8 && defined(__AVX512F__) && defined(__AVX512VL__)
/* The row tile for short float32 rows (AVX-512 builds): 8 rows in the lanes
 * of a float vector, so every FMA does 8 useful multiply-adds for any number
 * of classes, where the broadcast tile covers 8 classes and leaves the rest
 * (two of the digits' ten) to the pair tile and its lane sums.  Each group of
 * 4 features of the 8 rows is transposed in registers, then every class of
 * the block takes 4 FMAs with its weights broadcast from the short-row
 * layout (csm_short_layout_s).  Runs of CSM_ROWS_RUN features are summed in
 * float32, in order, and the runs' sums added in float32 too, the total then
 * widened: for rows of at most 256 features (the tile's), the rounding of at
 * most 15 + 15 additions, where a plain float32 dot product (the peers'
 * GEMMs) has one per feature.  Widening each run's sum into float64
 * accumulators instead (the conversion crosses the register halves) took 52
 * cycles per row in L1 for the digits' 64 features and 9 classes against 43
 * (a C harness; the digits-like float32 loss and gradient at 1 thread 7.6 ->
 * 7.3 ms), and where the float32 L-BFGS digits fit of the tests stopped was
 * the same to its rounding (objective 2e-8 to 3e-7 above the optimum's over
 * six perturbations of the sample weights, either way).
 *
 * Measured on the digits-like float32 logits (D = 64, K = 10, 1 thread, one
 * run): 2048 rows in L1 0.057 -> 0.047 ms against the broadcast and pair
 * tiles, 200000 rows from memory 5.4 -> 4.2 ms.  The run length is a matter
 * of rounding only: one run of 64 features takes as long as four of 16. */
#define CSM_ROWS_TILE 1
#define CSM_ROWS_RUN 16
/* Classes per block: the 4 transposed features, the partial sums and the
 * sums of the runs of 10 classes leave 8 of the 32 vector registers for the
 * shuffles. */
#define CSM_ROWS_KB 10

CSM_INLINE ptrdiff_t csm_rows_padded(ptrdiff_t D) { return (D + 3) / 4 * 4; }

/* W's short-row layout for float32 X: for each class block of kb classes
 * (csm_even_block(K, CSM_ROWS_KB)) starting at k0, its weights feature by
 * feature, WR[k0 * D4 + i * kb + c] = W[(k0 + c) * ldw + i] as float32, with
 * zeros for the features D <= i < D4 = D rounded up to 4.
 *
 * Its size in elements, 0 where the row tile is not used: rows of more than
 * 256 features take the blocked pair tiles, and with fewer than 8 classes so
 * do rows of 32 K features or more.  The row tile's transposes cost per
 * feature, the pair tile's lane sums per class, so with few classes the pair
 * tile wins on long rows and loses by far on short ones, where it sums the
 * features past its last whole vector one by one.  Measured, 200000 rows
 * from memory, pair tile / row tile (ms): D = 64, K = 2: 2.0 / 2.3; D = 256,
 * K = 3: 14.6 / 16.9; D = 256, K = 5: 17.7 / 18.4; D = 128, K = 3: 5.6 / 5.4;
 * D = 64, K = 5: 4.0 / 2.8; D = 13, K = 5: 10.4 / 0.8; D = 4, K = 3: 4.0 / 0.4. */
static ptrdiff_t csm_short_layout_size_s(ptrdiff_t K, ptrdiff_t D)
{
    if (K < 1 || D < 1 || D * (ptrdiff_t)sizeof(double) > CSM_LOGITS_BLOCK_BYTES) return 0;
    if (K < CSM_LOGITS_STREAM_CLASSES && D >= 32 * K) return 0;
    return K * csm_rows_padded(D);
}

/* Built on every call: classes 8 at a time through a register transpose
 * (for a 32-row batch, D = 64 and K = 10, a scalar loop took 540 ns, about a
 * sixth of the call; this takes 120 ns). */
static void csm_short_layout_s(const double* W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t D, float* WR)
{
    const ptrdiff_t kb_max = csm_even_block(K, CSM_ROWS_KB), D4 = csm_rows_padded(D);
    for (ptrdiff_t k0 = 0; k0 < K; k0 += kb_max) {
        const ptrdiff_t kb = K - k0 < kb_max ? K - k0 : kb_max;
        const double* w = W + k0 * ldw;
        float* wr = WR + k0 * D4;
        for (ptrdiff_t c0 = 0; c0 < kb; c0 += 8) {
            const int n_classes = (int)(kb - c0 < 8 ? kb - c0 : 8);
            const __mmask8 store = (__mmask8)((1u << n_classes) - 1u);
            ptrdiff_t i = 0;
            for (; i + 8 <= D; i += 8) {
                csm_vd m[8];
                for (int c = 0; c < 8; c++) m[c] = c < n_classes ? csm_load_d(w + (c0 + c) * ldw + i) : CSM_SET1(0.0);
                csm_transpose(m);
                for (int f = 0; f < 8; f++)
                    _mm256_mask_storeu_ps(wr + (i + f) * kb + c0, store, _mm512_cvtpd_ps((__m512d)m[f]));
            }
            for (; i < D; i++)
                for (ptrdiff_t c = c0; c < c0 + n_classes; c++) wr[i * kb + c] = (float)w[c * ldw + i];
        }
        for (ptrdiff_t i = D * kb; i < D4 * kb; i++) wr[i] = 0.0f;
    }
}

/* Features [i, i + 4) of the 8 rows as 4 vectors of rows, feature by
 * feature: rows r and r + 4 share a vector's halves as loaded, then two
 * rounds of in-lane shuffles (12 instructions, as many per feature as a
 * full 8 x 8 transpose, with half the vectors live).  With n < 4 (the last
 * group of a row only), masked loads read features [i, i + n) and zeros. */
CSM_INLINE void csm_rows_group_s(const float* const* x, ptrdiff_t i, const int n, __m256* f)
{
    __m256 a[4];
    if (n == 4) {
        for (int r = 0; r < 4; r++)
            a[r] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(x[r] + i)), _mm_loadu_ps(x[r + 4] + i), 1);
    } else {
        const __mmask8 valid = (__mmask8)((1u << n) - 1u);
        for (int r = 0; r < 4; r++)
            a[r] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_maskz_loadu_ps(valid, x[r] + i)),
                                        _mm_maskz_loadu_ps(valid, x[r + 4] + i), 1);
    }
    const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
    const __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
    f[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    f[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    f[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    f[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* The 4 features of a group into the kb partial sums, weights from w (the
 * layout at the group's first feature), feature by feature. */
CSM_INLINE void csm_rows_fma_s(const __m256* f, const float* w, const int kb, __m256* part)
{
    /* Unrolled, so the partial sums stay in registers. */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 10
        for (int c = 0; c < kb; c++) part[c] = _mm256_fmadd_ps(f[j], _mm256_set1_ps(w[j * kb + c]), part[c]);
}

/* kb classes (a compile-time constant where inlined) of 8 rows x[r]:
 * out[c] lane r = x_r . w_c over the D features, wr the block's layout.  When
 * next is not NULL, the rows next[r] are prefetched a cache line at a time. */
CSM_INLINE void csm_logits_rows_tile_s(const float* const* x, const float* wr, ptrdiff_t D, const int kb,
                                       const float* const* next, csm_vd* out)
{
    __m256 runs[CSM_ROWS_KB];
    for (int c = 0; c < kb; c++) runs[c] = _mm256_setzero_ps();
    for (ptrdiff_t i0 = 0; i0 < D; i0 += CSM_ROWS_RUN) {
        const ptrdiff_t i1 = D - i0 < CSM_ROWS_RUN ? D : i0 + CSM_ROWS_RUN;
        __m256 part[CSM_ROWS_KB], f[4];
        for (int c = 0; c < kb; c++) part[c] = _mm256_setzero_ps();
        for (ptrdiff_t i = i0; i < i1; i += 4) {
            if (next != NULL && i % 16 == 0)
                for (int r = 0; r < 8; r++) CSM_PREFETCH((const void*)(next[r] + i));
            /* the layout holds zeros past D: masked features add 0 */
            csm_rows_group_s(x, i, i1 - i < 4 ? (int)(i1 - i) : 4, f);
            csm_rows_fma_s(f, wr + i * kb, kb, part);
        }
        for (int c = 0; c < kb; c++) runs[c] = _mm256_add_ps(runs[c], part[c]);
    }
    for (int c = 0; c < kb; c++) out[c] = (csm_vd)_mm512_cvtps_pd(runs[c]);
}

/* kb classes of the rows of a chunk (X, n_rows rows rounded up to 8, the
 * last row repeated) into Z[c * ldc + r] (+ bias[c]), wr the block's layout.
 * prefetch: 0 none (the rows are in cache), 1 each tile streams the rows
 * CSM_LOGITS_AHEAD tiles on a cache line at a time, 2 each tile asks for
 * rows further on in bulk (csm_prefetch_tile), as csm_logits_ws does. */
CSM_INLINE void csm_logits_rows_block_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                                        const float* wr, const int kb, int prefetch, const double* bias,
                                        double* Z, ptrdiff_t ldc)
{
    const ptrdiff_t row_bytes = D * (ptrdiff_t)sizeof(float);
    const ptrdiff_t l2_ahead = csm_prefetch_rows(row_bytes), l1_ahead = CSM_PREFETCH_L1_BYTES / row_bytes;
    const float* x[8];
    const float* next[8];
    csm_vd out[CSM_ROWS_KB];
    for (ptrdiff_t r = 0; r < n_rows; r += 8) {
        for (int j = 0; j < 8; j++) {
            x[j] = X + (r + j < n_rows ? r + j : n_rows - 1) * ldx;
            /* any address: prefetches never fault */
            next[j] = (const float*)((uintptr_t)X + (uintptr_t)((r + j + CSM_LOGITS_AHEAD * 8) * ldx
                                                                * (ptrdiff_t)sizeof(float)));
        }
        if (prefetch == 2) csm_prefetch_tile(X, r, ldx * (ptrdiff_t)sizeof(float), row_bytes, l2_ahead, l1_ahead);
        csm_logits_rows_tile_s(x, wr, D, kb, prefetch == 1 ? next : NULL, out);
        for (int c = 0; c < kb; c++) csm_store_d(Z + c * ldc + r, out[c] + CSM_SET1(bias[c]));
    }
}

#define CSM_ROWS_CASE(KB_)                                                                          \
    case KB_:                                                                                       \
        csm_logits_rows_block_s(X, ldx, n_rows, D, wr, KB_, k0 > 0 ? 0 : bulk ? 2 : 1, bias + k0, \
                                Z + k0 * ldc, ldc);                                                 \
        break;

/* Class-major logits of a chunk of short rows through the row tile, as
 * csm_logits_ws (whose contract this keeps), WR the short-row layout.  The
 * class blocks are the outer loop, so each runs its rows with its size
 * known to the compiler (a switch per tile cost 7 cycles per row of 55);
 * the chunk's rows stay in L1 for the blocks after the first, which alone
 * prefetches X: in bulk when bulk (few classes, see csm_logits_ws), else
 * streaming. */
static int csm_logits_rows_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D, const float* WR,
                             ptrdiff_t K, int bulk, const double* bias, double* Z, ptrdiff_t ldc)
{
    const ptrdiff_t kb_max = csm_even_block(K, CSM_ROWS_KB), D4 = csm_rows_padded(D);
    for (ptrdiff_t k0 = 0; k0 < K; k0 += kb_max) {
        const int kb = (int)(K - k0 < kb_max ? K - k0 : kb_max);
        const float* wr = WR + k0 * D4;
        switch (kb) {
            CSM_ROWS_CASE(1)
            CSM_ROWS_CASE(2)
            CSM_ROWS_CASE(3)
            CSM_ROWS_CASE(4)
            CSM_ROWS_CASE(5)
            CSM_ROWS_CASE(6)
            CSM_ROWS_CASE(7)
            CSM_ROWS_CASE(8)
            CSM_ROWS_CASE(9)
            CSM_ROWS_CASE(10)
            default: break;
        }
    }
    return 1;
}
#undef CSM_ROWS_CASE
#define CSM_LOGITS_ROWS csm_logits_rows_s

/* The logits relative to class 0, for the loss (softmax and cross-entropy
 * do not change when every logit of a row moves by the same amount):
 * Z[0] = 0 and Z[k] = bias0[k - 1] + X[r] . (w_k - w_0) through the row
 * tile, WR0 the short-row layout of the K - 1 differences.  One class
 * fewer in the tile: 10 -> 9 for the digits, whose float32 logits are
 * bound by the tile's FMAs and transposes. */
static void csm_logits_rows_shifted_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                                      const float* WR0, ptrdiff_t K, const double* bias0, double* Z, ptrdiff_t ldc)
{
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) csm_store_d(Z + r, CSM_SET1(0.0));
    /* prefetching as for the K classes (csm_logits_ws) */
    csm_logits_rows_s(X, ldx, n_rows, D, WR0, K - 1, K < CSM_LOGITS_STREAM_CLASSES, bias0, Z + ldc, ldc);
}

/* exp(x) for x <= 0 (and -inf, NaN) in 16 float32 lanes, within 2 float32
 * ulps (measured against exp on 18 million points over [-104, 0]): the
 * float64 csm_exp_nonpositive's reduction to sixteenths of ln2, its 16
 * table values 2^(j / 16) in one register (one permute), and exp(r) =
 * 1 + r g(r) with g of degree 2 (|r| <= ln2 / 32).  8 cycles per vector of
 * 16 values in a C harness, against 12 for 8 values in float64.
 * x < -104 gives +0; exp(0) is exactly 1. */
CSM_INLINE __m512 csm_exp_nonpositive_s(__m512 x)
{
    const __m512 pow_j = _mm512_setr_ps(
        1.0f, 1.0442737340927124f, 1.0905077457427979f, 1.1387885808944702f,
        1.1892070770263672f, 1.2418577671051025f, 1.2968395948410034f, 1.3542555570602417f,
        1.4142135381698608f, 1.4768261909484863f, 1.5422108173370361f, 1.610490322113037f,
        1.6817928552627563f, 1.7562521696090698f, 1.8340080976486206f, 1.9152065515518188f);
    const __m512 shifter = _mm512_set1_ps(786432.0f);  /* 1.5 * 2^19: t rounds x / ln2 to sixteenths */
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);     /* NaN (the second operand) is kept */
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.4426950216293335f), shifter);
    const __m512 n16 = _mm512_sub_ps(t, shifter);
    __m512 r = _mm512_fnmadd_ps(n16, _mm512_set1_ps(0.693359375f), x);   /* ln2 in two parts */
    r = _mm512_fnmadd_ps(n16, _mm512_set1_ps(-2.12194440e-4f), r);
    const __m512 pj = _mm512_permutexvar_ps(_mm512_castps_si512(t), pow_j);
    __m512 g = _mm512_fmadd_ps(r, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
    g = _mm512_fmadd_ps(g, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(_mm512_fmadd_ps(_mm512_mul_ps(pj, r), g, pj), n16);
}

/* 16 float32 lanes from their two float64 halves (the inverse of
 * CSM_LO_HALF and CSM_HI_HALF). */
CSM_INLINE __m512 csm_s_of(csm_vd lo, csm_vd hi)
{
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps((__m512d)lo))),
                                               _mm256_castps_pd(_mm512_cvtpd_ps((__m512d)hi)), 1));
}

/* csm_cm_label_loss for float32 X (whose logits come from float32 products),
 * 16 rows at a time: the maximum, the shifted logits, the sums of the
 * exponentials and the loss terms in float64, the exponentials and the
 * residuals in float32 lanes.  The residuals go to Rs (Rs[k * ldr + r],
 * float32, as the float32 rank update takes them: it multiplies in float32
 * either way), not to Z; n_rows is a multiple of 8.  In float64 lanes the
 * exponentials were half of the loss, and the loss a sixth of the
 * digits-like float32 loss and gradient; this takes 4% off the whole (1
 * thread, 8.3-8.5 -> 7.9-8.2 ms).  Rounding the logits to float32, or
 * summing the exponentials in float32, moves the loss by an ulp of the
 * logit or of the sum, which float32 L-BFGS fits feel where they stop:
 * with float32 sums (1.5-2% faster over the call) the fit of the wine data
 * in the tests ended 1.9e-7 above the optimum's objective, against 6.8e-9
 * as here. */
#define CSM_LABEL_LOSS_S 1
static void csm_cm_label_loss_s(const double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K,
                                const double* label, const double* weight, int residual, int unit,
                                double* loss, double* col, float* Rs, ptrdiff_t ldr)
{
    csm_vd loss_v = csm_load_d(loss);
    csm_vd product = CSM_SET1(1.0);
    if (unit && log2((double)K) * (double)((n_rows + CSM_VL - 1) / CSM_VL) >= 1000.0) unit = 0;
    for (ptrdiff_t r = 0; r < n_rows; r += 16) {
        const int full = n_rows - r >= 16;   /* else 8 rows: the upper lanes are padding */
        const csm_vd lab_lo = csm_load_d(label + r), w_lo = csm_load_d(weight + r);
        const csm_vd lab_hi = full ? csm_load_d(label + r + 8) : CSM_SET1(-1.0);
        const csm_vd w_hi = full ? csm_load_d(weight + r + 8) : CSM_SET1(0.0);
        const __m512 lab = csm_s_of(lab_lo, lab_hi);   /* small integers: exact */
        const __mmask16 valid = _mm512_cmp_ps_mask(lab, _mm512_set1_ps(-0.5f), _CMP_GT_OQ);
        float* rs = Rs + r;
        const double* z = Z + r;
        csm_vd m_lo = csm_load_d(z), m_hi = full ? csm_load_d(z + 8) : CSM_SET1(0.0);
        for (ptrdiff_t k = 1; k < K; k++) {
            m_lo = csm_max_keep(m_lo, csm_load_d(z + k * ldc));
            if (full) m_hi = csm_max_keep(m_hi, csm_load_d(z + k * ldc + 8));
        }
        __m512 kv = _mm512_setzero_ps();
        csm_vd sum_lo = CSM_SET1(0.0), sum_hi = CSM_SET1(0.0);
        csm_vd picked_lo = CSM_SET1(0.0), picked_hi = CSM_SET1(0.0);
        for (ptrdiff_t k = 0; k < K; k++, kv = _mm512_add_ps(kv, _mm512_set1_ps(1.0f))) {
            const csm_vd v_lo = csm_load_d(z + k * ldc) - m_lo;
            const csm_vd v_hi = full ? csm_load_d(z + k * ldc + 8) - m_hi : CSM_SET1(0.0);
            const __mmask16 hit = _mm512_cmp_ps_mask(lab, kv, _CMP_EQ_OQ);
            picked_lo = (csm_vd)_mm512_mask_mov_pd((__m512d)picked_lo, (__mmask8)hit, (__m512d)v_lo);
            picked_hi = (csm_vd)_mm512_mask_mov_pd((__m512d)picked_hi, (__mmask8)(hit >> 8), (__m512d)v_hi);
            const __m512 e = csm_exp_nonpositive_s(csm_s_of(v_lo, v_hi));
            _mm512_storeu_ps(rs + k * ldr, e);
            sum_lo += CSM_LO_HALF(e);
            sum_hi += CSM_HI_HALF(e);
        }
        const csm_vi valid_lo = CSM_LT(CSM_SET1(-0.5), lab_lo), valid_hi = CSM_LT(CSM_SET1(-0.5), lab_hi);
        if (unit) {
            product *= csm_select(valid_lo, sum_lo, CSM_SET1(1.0));
            product *= csm_select(valid_hi, sum_hi, CSM_SET1(1.0));
            loss_v -= csm_select(valid_lo, picked_lo, CSM_SET1(0.0));
            loss_v -= csm_select(valid_hi, picked_hi, CSM_SET1(0.0));
        } else {
            loss_v += csm_select(valid_lo, w_lo * (csm_log_positive(sum_lo) - picked_lo), CSM_SET1(0.0));
            loss_v += csm_select(valid_hi, w_hi * (csm_log_positive(sum_hi) - picked_hi), CSM_SET1(0.0));
        }
        if (residual) {
            /* skipped rows get scale 0 and never match a class: residual 0 */
            const __m512 scale = _mm512_maskz_mov_ps(valid, csm_s_of(w_lo / sum_lo, w_hi / sum_hi));
            const __m512 w = csm_s_of(w_lo, w_hi);
            kv = _mm512_setzero_ps();
            for (ptrdiff_t k = 0; k < K; k++, kv = _mm512_add_ps(kv, _mm512_set1_ps(1.0f))) {
                __m512 res = _mm512_mul_ps(_mm512_loadu_ps(rs + k * ldr), scale);
                res = _mm512_mask_sub_ps(res, _mm512_cmp_ps_mask(lab, kv, _CMP_EQ_OQ), res, w);
                _mm512_storeu_ps(rs + k * ldr, res);
                /* lane sums in float64, as the float64 kernel keeps them */
                csm_store_d(col + k * CSM_VL, csm_load_d(col + k * CSM_VL) + CSM_LO_HALF(res) + CSM_HI_HALF(res));
            }
        }
    }
    if (unit) loss_v += csm_log_positive(product);
    csm_store_d(loss, loss_v);
}
#else
/* Builds without the row tile (AVX2): the broadcast tile for float32. */

/* Features summed in float32 before the float64 accumulators take them in
 * the float32 broadcast tile. */
#define CSM_BCAST_RUN_S 8

/* The broadcast tile (csm_logits_bcast_tile_d) for float32: CSM_VL classes
 * are half a float vector, whose FMAs run at twice the rate of full ones on
 * cores that split wide vectors, so the tile costs what a full float vector
 * would.  Runs of CSM_BCAST_RUN_S features are summed in float32, in order,
 * then added to float64 accumulators: rounding stays near the pair tile's
 * (four float32 terms, then float64), which the optimum of an L-BFGS fit on
 * float32 data is sensitive to. */
CSM_INLINE void csm_logits_bcast_tile_s(const float* const* x, const float* WBs, ptrdiff_t D,
                                        const float* const* next, csm_vd* out)
{
    csm_vd acc[CSM_VL];
    for (int r = 0; r < CSM_VL; r++) acc[r] = CSM_SET1(0.0);
    for (ptrdiff_t i0 = 0; i0 < D; i0 += CSM_BCAST_RUN_S) {
        const ptrdiff_t i1 = D - i0 < CSM_BCAST_RUN_S ? D : i0 + CSM_BCAST_RUN_S;
        /* a run is half a cache line of each row: ask for the line once */
        if (next != NULL && i0 % (2 * CSM_BCAST_RUN_S) == 0)
            for (int r = 0; r < CSM_VL; r++) CSM_PREFETCH((const void*)(next[r] + i0));
        csm_vf part[CSM_VL];
        for (int r = 0; r < CSM_VL; r++) part[r] = (csm_vf){0};
        for (ptrdiff_t i = i0; i < i1; i++) {
            csm_vf wv;
            memcpy(&wv, WBs + i * CSM_VL, sizeof wv);
            for (int r = 0; r < CSM_VL; r++) part[r] += (x[r][i] - (csm_vf){0}) * wv;
        }
        for (int r = 0; r < CSM_VL; r++) acc[r] += csm_widen_f(part[r]);
    }
    csm_transpose(acc);
    for (int c = 0; c < CSM_VL; c++) out[c] = acc[c];
}

#define CSM_LOGITS_BCAST csm_logits_bcast_tile_s
#endif
#define CSM_XT float
#define CSM_WT float
#define CSM_LOGITS csm_logits_ws
#define CSM_LOGITS_TILE csm_logits_tile_s
#define CSM_LOGITS_ACC csm_vs
#define CSM_LOGITS_LANES CSM_VS_LANES
#define CSM_LOGITS_ZERO CSM_SET1S(0.0f)
#define CSM_LOGITS_LOADX csm_load_s
#define CSM_LOGITS_LOADW csm_load_s
#define CSM_LOGITS_LOADX_PART csm_load_part_s
#define CSM_LOGITS_LOADW_PART csm_load_part_s
/* Each float accumulator is widened to float64 before the lanes are summed:
 * summing them in float32 is cheaper, but its rounding measurably moves the
 * optimum an L-BFGS fit on float32 data reaches. */
#define CSM_LOGITS_WIDE(v) (CSM_LO_HALF(v) + CSM_HI_HALF(v))
#include "_kernels_logits.h"
#undef CSM_XT
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
#undef CSM_LOGITS_BCAST
#undef CSM_LOGITS_ROWS

/* As csm_logits_d, for float32 X and a float32 copy Ws of W and WBs of its
 * short-row layout (csm_short_layout_s; W itself is used where vectors are
 * unavailable, see _kernels.h). */
static void csm_logits_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                         const float* Ws, const double* W, ptrdiff_t ldw, const float* WBs, ptrdiff_t K,
                         const double* bias, double* Z, ptrdiff_t ldc)
{
    (void)W;
    csm_logits_ws(X, ldx, n_rows, D, Ws, ldw, WBs, K, bias, Z, ldc);
}

/* kb classes x nv float vectors of the chunk's gradient, summed in float32
 * over the chunk's rows and then added to the float64 G.  Rs holds the
 * residuals of the kb classes as float32, class-major (Rs[kk * CSM_CHUNK + r]),
 * so each one is a single broadcast load. */
CSM_INLINE void csm_rank_tile_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t i,
                                const float* Rs, const int kb, const int nv, double* G, ptrdiff_t ldg)
{
    csm_vs g0[CSM_KB], g1[CSM_KB];
    for (int kk = 0; kk < kb; kk++) { g0[kk] = CSM_SET1S(0.0f); g1[kk] = CSM_SET1S(0.0f); }
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const float* x = X + r * ldx + i;
        const csm_vs xv0 = csm_load_s(x);
        const csm_vs xv1 = nv == 2 ? csm_load_s(x + CSM_VS_LANES) : xv0;
        const float* rrow = Rs + r;
        for (int kk = 0; kk < kb; kk++) {
            const csm_vs c = CSM_SET1S(rrow[kk * CSM_CHUNK]);
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

/* As csm_rank_tile_s with one vector, for the last rem < CSM_VS_LANES
 * features (partial loads and stores, masked where the instruction set has
 * them).  The features after the whole vectors had been summed one by one,
 * in float64, a chain of dependent additions per class and feature: 200000
 * x 13 x 3 float32 rows, loss and gradient at 1 thread 6.6 -> 1.9 ms with
 * AVX-512; 200000 x 15 x 3, 9.1 -> 6.1 ms with AVX2, and 200000 x 13 x 10,
 * 20.3 -> 19.4 ms in baseline builds. */
CSM_INLINE void csm_rank_tile_tail_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t i, int rem,
                                     const float* Rs, const int kb, double* G, ptrdiff_t ldg)
{
    const ptrdiff_t n_lo = rem < CSM_VL ? rem : CSM_VL, n_hi = rem - n_lo;
    csm_vs g[CSM_KB];
    for (int kk = 0; kk < kb; kk++) g[kk] = CSM_SET1S(0.0f);
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const csm_vs xv = csm_load_part_s(X + r * ldx + i, rem);
        for (int kk = 0; kk < kb; kk++) g[kk] += CSM_SET1S(Rs[kk * CSM_CHUNK + r]) * xv;
    }
    for (int kk = 0; kk < kb; kk++) {
        double* gg = G + kk * ldg + i;
        csm_store_part_d(gg, n_lo, csm_load_part_d(gg, n_lo) + CSM_LO_HALF(g[kk]));
        if (n_hi > 0) csm_store_part_d(gg + CSM_VL, n_hi, csm_load_part_d(gg + CSM_VL, n_hi) + CSM_HI_HALF(g[kk]));
    }
}
#define CSM_RANK_TAIL_S(KB_) \
    if (i < D) csm_rank_tile_tail_s(Xb, ldx, nb, i, (int)(D - i), Rs, KB_, Gk, ldg);

#define CSM_RANK_CASE_S(KB_)                                                              \
    case KB_:                                                                             \
        for (i = 0; i + 2 * CSM_VS_LANES <= D; i += 2 * CSM_VS_LANES)                     \
            csm_rank_tile_s(Xb, ldx, nb, i, Rs, KB_, 2, Gk, ldg);                         \
        for (; i + CSM_VS_LANES <= D; i += CSM_VS_LANES)                                  \
            csm_rank_tile_s(Xb, ldx, nb, i, Rs, KB_, 1, Gk, ldg);                         \
        CSM_RANK_TAIL_S(KB_)                                                              \
        break;

/* The features of a block of kb classes and nb <= CSM_CHUNK rows, in whole
 * float32 vectors and the rest as one partial vector, Rs the block's float32
 * residuals (Rs[kk * CSM_CHUNK + r]). */
CSM_INLINE void csm_rank_block_s(const float* Xb, ptrdiff_t ldx, ptrdiff_t nb, ptrdiff_t D,
                                 const float* Rs, int kb, double* Gk, ptrdiff_t ldg)
{
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
}

/* G (K x D) += R^T X as csm_rank_update_d does it, for float32 X, with
 * float32 arithmetic inside blocks of at most CSM_CHUNK rows.  The residuals
 * of each class block are rounded to float32 once per block (the tile
 * multiplies in float32 either way). */
static void csm_rank_update_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                              const double* R, ptrdiff_t rr, ptrdiff_t rk, ptrdiff_t K, double* G, ptrdiff_t ldg)
{
    float Rs[CSM_KB * CSM_CHUNK];
    const int kb_max = csm_class_block_d(K);
    for (ptrdiff_t r0 = 0; r0 < n_rows; r0 += CSM_CHUNK) {
        const ptrdiff_t nb = n_rows - r0 < CSM_CHUNK ? n_rows - r0 : CSM_CHUNK;
        const float* Xb = X + r0 * ldx;
        const double* Rb = R + r0 * rr;
        for (ptrdiff_t k0 = 0; k0 < K; k0 += kb_max) {
            const int kb = (int)(K - k0 < kb_max ? K - k0 : kb_max);
            const double* Rk = Rb + k0 * rk;
            double* Gk = G + k0 * ldg;
            for (int kk = 0; kk < kb; kk++)
                for (ptrdiff_t r = 0; r < nb; r++) Rs[kk * CSM_CHUNK + r] = (float)Rk[r * rr + kk * rk];
            csm_rank_block_s(Xb, ldx, nb, D, Rs, kb, Gk, ldg);
        }
    }
}

#ifdef CSM_LABEL_LOSS_S
/* G (K x D) += R^T X for one chunk of n_rows <= CSM_CHUNK rows whose
 * residuals are float32 already (csm_cm_label_loss_s): Rs[k * CSM_CHUNK + r]. */
static void csm_rank_update_rs(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                               const float* Rs, ptrdiff_t K, double* G, ptrdiff_t ldg)
{
    const int kb_max = csm_class_block_d(K);
    for (ptrdiff_t k0 = 0; k0 < K; k0 += kb_max) {
        const int kb = (int)(K - k0 < kb_max ? K - k0 : kb_max);
        csm_rank_block_s(X, ldx, n_rows, D, Rs + k0 * CSM_CHUNK, kb, G + k0 * ldg, ldg);
    }
}
#endif
#undef CSM_RANK_CASE_S
#undef CSM_RANK_TAIL_S
