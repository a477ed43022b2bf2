/* Class-major logits of a chunk: the pair tile and the loop around it.
 *
 * Included by _kernels_typed.h and _kernels_f32.h with CSM_XT (the element
 * type of X), CSM_WT (that of W), CSM_LOGITS and CSM_LOGITS_TILE (the names
 * of the loop and of the pair tile), CSM_LOGITS_ACC (the tile's accumulator
 * vector type, CSM_LOGITS_LANES features wide), CSM_LOGITS_ZERO, loads of X
 * and W into it (CSM_LOGITS_LOADX, CSM_LOGITS_LOADW; of their first n values,
 * zeros after them, CSM_LOGITS_LOADX_PART, CSM_LOGITS_LOADW_PART) and
 * CSM_LOGITS_WIDE (an accumulator as CSM_VL float64 lanes); with
 * CSM_LOGITS_BCAST also the tile of that name (CSM_VL rows x CSM_VL classes
 * into class vectors), used for short rows when the caller gives W's
 * broadcast layout; with
 * CSM_LOGITS_ROWS a function that takes a chunk of short rows through a row
 * tile (rows in the lanes) when it can, returning 1, WB then being that
 * tile's layout.
 */


/* Logit tile: CSM_VL rows x 2 classes of dot products over the features
 * [i0, i1), with lane-wise partial sums.  The accumulators start from zero
 * (first) or from acc (an earlier block of features); unless last, they are
 * left in acc.  With last, csm_hsum_many reduces the CSM_VL accumulators of
 * one class into one vector whose lane r is row r, so the tile comes out
 * class-major, as the pipeline wants it, with no scalar stores.  The
 * features left over after whole vectors (only in the last block) are one
 * more partial vector (CSM_LOGITS_LOADX_PART, CSM_LOGITS_LOADW_PART): added
 * one by one after the lane sums, they had taken half of an AVX2 float32
 * loss and gradient of 200000 x 15 x 3 rows (6.1 -> 3.3 ms; AVX-512
 * float64, 200000 x 13 x 10: 5.9 -> 5.0 ms).
 * out[c * CSM_VL + r] = x_r . w_c.  Blocks are whole accumulators but the
 * last, so the partial sums are the same for any blocking.  When next is not
 * NULL, the same features of the rows next[r], r < n_next, are prefetched
 * into L2. */
CSM_INLINE void CSM_LOGITS_TILE(
        const CSM_XT* const* x, const CSM_WT* const* w, ptrdiff_t i0, ptrdiff_t i1,
        CSM_LOGITS_ACC* acc_mem, int first, int last, const CSM_XT* const* next, int n_next, double* out)
{
    CSM_LOGITS_ACC acc[2 * CSM_VL];
    for (int j = 0; j < 2 * CSM_VL; j++) acc[j] = first ? CSM_LOGITS_ZERO : acc_mem[j];
    ptrdiff_t i = i0;
    for (; i + CSM_LOGITS_LANES <= i1; i += CSM_LOGITS_LANES) {
        const CSM_LOGITS_ACC w0 = CSM_LOGITS_LOADW(w[0] + i), w1 = CSM_LOGITS_LOADW(w[1] + i);
        /* once per cache line of each row (a vector of uint8 is an eighth of one) */
        if (next != NULL && (sizeof(CSM_XT) * CSM_LOGITS_LANES >= 64 || (i * (ptrdiff_t)sizeof(CSM_XT)) % 64 == 0))
            for (int r = 0; r < n_next; r++) CSM_PREFETCH((const void*)(next[r] + i));
        for (int r = 0; r < CSM_VL; r++) {
            CSM_LOGITS_ACC xv = CSM_LOGITS_LOADX(x[r] + i);
            CSM_IN_REGISTER(xv);
            acc[r] += xv * w0;
            acc[CSM_VL + r] += xv * w1;
        }
    }
    if (i < i1) {
        /* the last block's features after its whole vectors, as one partial vector */
        const ptrdiff_t n = i1 - i;
        const CSM_LOGITS_ACC w0 = CSM_LOGITS_LOADW_PART(w[0] + i, n), w1 = CSM_LOGITS_LOADW_PART(w[1] + i, n);
        for (int r = 0; r < CSM_VL; r++) {
            const CSM_LOGITS_ACC xv = CSM_LOGITS_LOADX_PART(x[r] + i, n);
            acc[r] += xv * w0;
            acc[CSM_VL + r] += xv * w1;
        }
    }
    if (!last) {
        for (int j = 0; j < 2 * CSM_VL; j++) acc_mem[j] = acc[j];
        return;
    }
    csm_vd wide[2 * CSM_VL];
    for (int j = 0; j < 2 * CSM_VL; j++) wide[j] = CSM_LOGITS_WIDE(acc[j]);
    csm_store_d(out, csm_hsum_many(wide));
    csm_store_d(out + CSM_VL, csm_hsum_many(wide + CSM_VL));
}

/* Class-major logits: Z[k * ldc + r] = bias[k] + X[r] . W[k] for r < n_rows
 * rounded up to whole vectors, k < K.  W is (K, D) with leading dimension
 * ldw.  Rows beyond n_rows repeat the last row (the caller overwrites them)
 * and an odd K repeats the last class in its tile, unstored.  WB, when not
 * NULL, is W's layout for short rows: they then go through CSM_LOGITS_ROWS
 * where it takes them, else through the broadcast tile (csm_broadcast_layout)
 * for the first K / CSM_VL * CSM_VL classes.
 *
 * X streams from memory once.  Each tile asks for rows ahead in bulk as it
 * starts (csm_prefetch_tile).  When that reaches fewer rows than the next
 * CSM_LOGITS_AHEAD tiles (long rows), the first class block of each tile
 * (the broadcast tile, else the first pair) also asks for the rows
 * CSM_LOGITS_AHEAD tiles on, a cache line at a time as it goes (for rows
 * longer than a block, the pairs of the first group share that out; measured on
 * MNIST-like rows: the logits 10.4 -> 7.6 ms; X had arrived only when it
 * was read).  Short rows with at least CSM_LOGITS_STREAM_CLASSES classes,
 * whose tiles are long in arithmetic, only stream: there the bulk requests
 * made the rows arrive later (measured, 200000 x 64 x 10: predict 8.3 -> 6.3
 * ms; 100000 x 200 x 16: 20 -> 12.4 ms). */
static void CSM_LOGITS(
        const CSM_XT* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
        const CSM_WT* W, ptrdiff_t ldw, const CSM_WT* WB, ptrdiff_t K, const double* bias,
        double* Z, ptrdiff_t ldc)
{
    double out[2 * CSM_VL];
    CSM_LOGITS_ACC acc[CSM_LOGITS_GROUP * 2 * CSM_VL];
    const CSM_XT* x[CSM_VL];
    const CSM_XT* ahead[CSM_VL];
    const CSM_WT* w[2];
    /* Whole vectors of features per block, at least one. */
    ptrdiff_t block = CSM_LOGITS_BLOCK_BYTES / (ptrdiff_t)sizeof(CSM_XT) / CSM_LOGITS_LANES * CSM_LOGITS_LANES;
    if (block < CSM_LOGITS_LANES) block = CSM_LOGITS_LANES;
    const ptrdiff_t row_bytes = D * (ptrdiff_t)sizeof(CSM_XT);
    const ptrdiff_t l2_ahead = csm_prefetch_rows(row_bytes);
    const ptrdiff_t l1_ahead = CSM_PREFETCH_L1_BYTES / (row_bytes > 0 ? row_bytes : 1);
    const int bulk = D > block || K < CSM_LOGITS_STREAM_CLASSES;
    const int stream = !bulk || l2_ahead < (CSM_LOGITS_AHEAD + 1) * CSM_VL;
    /* Long rows: the class pairs of the first group take a share each of the
     * rows to prefetch, instead of the first pair all of them (which then
     * took 35% of the logits' time for a fifth of their arithmetic, its
     * prefetches waiting on each other).  Measured, MNIST-like loss and
     * gradient at one thread: float64 16.7 -> 15.1 ms, float32 8.4 -> 8.0. */
    const int ahead_pairs = (int)((K + 1) / 2 < CSM_LOGITS_GROUP ? (K + 1) / 2 : CSM_LOGITS_GROUP);
#ifdef CSM_LOGITS_ROWS
    /* a row tile, where WB is its layout (made for short rows only) */
    if (WB != NULL && D <= block && CSM_LOGITS_ROWS(X, ldx, n_rows, D, WB, K, bulk, bias, Z, ldc)) return;
#endif
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        for (int j = 0; j < CSM_VL; j++) {
            x[j] = X + (r + j < n_rows ? r + j : n_rows - 1) * ldx;
            /* any address: prefetches never fault */
            ahead[j] = (const CSM_XT*)((uintptr_t)X + (uintptr_t)((r + j + CSM_LOGITS_AHEAD * CSM_VL) * ldx
                                                                  * (ptrdiff_t)sizeof(CSM_XT)));
        }
        if (bulk)
            csm_prefetch_tile(X, r, ldx * (ptrdiff_t)sizeof(CSM_XT), row_bytes, l2_ahead, l1_ahead);
        if (D <= block) {
            /* One block: the accumulators never leave the registers. */
            ptrdiff_t k_pairs = 0;
#ifdef CSM_LOGITS_BCAST
            if (WB != NULL) {
                csm_vd classes[CSM_VL];
                for (; k_pairs + CSM_VL <= K; k_pairs += CSM_VL) {
                    CSM_LOGITS_BCAST(x, WB + k_pairs * D, D, stream && k_pairs == 0 ? ahead : NULL, classes);
                    for (int c = 0; c < CSM_VL; c++)
                        csm_store_d(Z + (k_pairs + c) * ldc + r, classes[c] + CSM_SET1(bias[k_pairs + c]));
                }
            }
#else
            (void)WB;
#endif
            for (ptrdiff_t k = k_pairs; k < K; k += 2) {
                w[0] = W + k * ldw;
                w[1] = W + (k + 1 < K ? k + 1 : k) * ldw;
                /* Constant arguments, so each call inlines without the unused paths. */
                if (stream && k == 0)
                    CSM_LOGITS_TILE(x, w, 0, D, acc, 1, 1, ahead, CSM_VL, out);
                else
                    CSM_LOGITS_TILE(x, w, 0, D, acc, 1, 1, NULL, 0, out);
                for (int c = 0; c < 2 && k + c < K; c++)
                    csm_store_d(Z + (k + c) * ldc + r, csm_load_d(out + c * CSM_VL) + CSM_SET1(bias[k + c]));
            }
            continue;
        }
        for (ptrdiff_t k0 = 0; k0 < K; k0 += 2 * CSM_LOGITS_GROUP) {
            const ptrdiff_t k1 = K - k0 < 2 * CSM_LOGITS_GROUP ? K : k0 + 2 * CSM_LOGITS_GROUP;
            for (ptrdiff_t i0 = 0; i0 < D; i0 += block) {
                const ptrdiff_t i1 = D - i0 <= block ? D : i0 + block;
                for (ptrdiff_t k = k0; k < k1; k += 2) {
                    w[0] = W + k * ldw;
                    w[1] = W + (k + 1 < K ? k + 1 : k) * ldw;
                    /* the pairs of the first group share the rows to prefetch */
                    const int p = (int)(k / 2), a0 = p * CSM_VL / ahead_pairs, a1 = (p + 1) * CSM_VL / ahead_pairs;
                    if (stream && k0 == 0 && a1 > a0)
                        CSM_LOGITS_TILE(x, w, i0, i1, acc + (k - k0) * CSM_VL, i0 == 0, i1 == D, ahead + a0, a1 - a0, out);
                    else
                        CSM_LOGITS_TILE(x, w, i0, i1, acc + (k - k0) * CSM_VL, i0 == 0, i1 == D, NULL, 0, out);
                    if (i1 == D)
                        for (int c = 0; c < 2 && k + c < K; c++)
                            csm_store_d(Z + (k + c) * ldc + r, csm_load_d(out + c * CSM_VL) + CSM_SET1(bias[k + c]));
                }
            }
        }
    }
}
