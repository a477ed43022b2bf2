# Dense kernels of csoftmax.
#
# This file is the one source of the modules ``_dense`` (baseline
# instruction set), ``_dense_avx2`` and ``_dense_avx512``: setup.py compiles
# it three times with different compiler flags and ``csoftmax._dispatch``
# imports the best one the CPU supports.  Nothing here knows which it is.
#
# Layers (see the README's design notes):
#
# (a) ``noexcept nogil`` C-level kernels for a row or a chunk of rows.  They
#     take raw pointers and element strides, never raise, and report problems
#     through status bits.
# (b) ``def`` loops that take typed memoryviews, split the rows into a fixed
#     partition and run (a) under ``prange``.
# (c) The Python wrappers in ``csoftmax._functions`` validate, allocate
#     outputs and call (b).  Nothing in this file validates user input beyond
#     what is needed to stay memory-safe (labels are range-checked here so that
#     the check costs no extra pass over ``y``).
#
# Determinism: every reduction over rows (loss, gradient) is done per
# *partition* of rows whose boundaries depend only on (N, K, D), never on the
# thread count.  Each partition is processed sequentially by one thread and the
# partial results are summed in partition order, so results are bitwise
# identical for any ``n_threads``.
#
# Precision: arithmetic is done in float64 for both float32 and float64 inputs
# (float32 values are widened as they are read), so float32 work is
# accumulated in float64.

from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.math cimport exp, log, INFINITY, isfinite
from libc.stdint cimport int64_t

cdef extern from "_omp_shim.h" nogil:
    int CSM_OPENMP_ENABLED

# Status bits returned by the kernels (mirrored in csoftmax._functions).
cdef enum:
    STATUS_OK = 0
    STATUS_NO_MEMORY = 1
    STATUS_BAD_LABEL = 2
    STATUS_NONFINITE = 4

# Rows processed together: their logits (ROWS_PER_CHUNK x K doubles) and, for
# strided X, a packed copy of the rows stay in L1/L2 while they are reused.
cdef enum:
    ROWS_PER_CHUNK = 64
    # A partition (the unit of deterministic reduction) has at least this many
    # rows, so that tiny inputs are one partition and never start a team.
    MIN_ROWS_PER_PART = 2048
    MAX_PARTS = 64
    # Cap on the doubles held by all partial gradients together (8 MiB).
    PARTIAL_BUDGET = 1 << 20
    # Row-wise functions of Z go parallel only above this many elements.
    MIN_ELEMENTS_PARALLEL = 1 << 15

ISA_LEVEL = ISA_NAME  # defined by the including module


# ---------------------------------------------------------------------------
# (a) nogil kernels for one row / one chunk of rows
# ---------------------------------------------------------------------------

cdef inline const floating* chunk_rows(
        const floating* X, Py_ssize_t sx0, Py_ssize_t sx1,  # IN  X and its element strides
        Py_ssize_t first_row, Py_ssize_t n_rows, Py_ssize_t D,
        floating* pack,                                     # OUT scratch, n_rows x D
        Py_ssize_t* ld) noexcept nogil:                     # OUT leading dimension of the result
    """Return a pointer to ``n_rows`` rows of X whose features are contiguous.

    Rows with contiguous features are used in place (any row stride, including
    zero and negative ones); other layouts are packed into ``pack``.
    """
    cdef Py_ssize_t r, i
    cdef const floating* src
    if sx1 == 1:
        ld[0] = sx0
        return X + first_row * sx0
    for r in range(n_rows):
        src = X + (first_row + r) * sx0
        for i in range(D):
            pack[r * D + i] = src[i * sx1]
    ld[0] = D
    return pack


cdef inline void chunk_logits(
        const floating* Xc, Py_ssize_t ld, Py_ssize_t n_rows, Py_ssize_t D,  # IN  rows of X
        const double* WT, Py_ssize_t K,                                      # IN  W transposed, D x K
        const double* bias,                                                  # IN  K (zeros if no b)
        double* Z) noexcept nogil:                                           # OUT n_rows x K logits
    """Z = Xc @ W.T + b, vectorised along the classes (W is stored transposed)."""
    cdef Py_ssize_t r, i, k
    cdef double xi
    cdef double* z
    cdef const double* wt
    cdef const floating* x
    for r in range(n_rows):
        z = Z + r * K
        x = Xc + r * ld
        for k in range(K):
            z[k] = bias[k]
        for i in range(D):
            xi = x[i]
            wt = WT + i * K
            for k in range(K):
                z[k] += xi * wt[k]


cdef inline double row_max(const double* z, Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t k
    cdef double m = -INFINITY
    for k in range(K):
        if z[k] > m:
            m = z[k]
    return m


cdef inline void chunk_gradient(
        const floating* Xc, Py_ssize_t ld, Py_ssize_t n_rows, Py_ssize_t D,  # IN  rows of X
        const double* R, Py_ssize_t K,                                       # IN  n_rows x K residuals
        double* G, double* gb) noexcept nogil:                               # INOUT K x D, K
    """G += R.T @ Xc and gb += column sums of R: a rank-n_rows update, vectorised along D."""
    cdef Py_ssize_t r, k, i
    cdef double c
    cdef double* g
    cdef const floating* x
    for r in range(n_rows):
        x = Xc + r * ld
        for k in range(K):
            c = R[r * K + k]
            gb[k] += c
            g = G + k * D
            for i in range(D):
                g[i] += c * x[i]


cdef int partition_loss_gradient(
        const floating* X, Py_ssize_t sx0, Py_ssize_t sx1,   # IN  X (N, D) and element strides
        Py_ssize_t row_begin, Py_ssize_t row_end, Py_ssize_t D, Py_ssize_t K,
        const double* WT, const double* bias,                # IN  D x K, K
        const int64_t* labels,                               # IN  (N,) or NULL
        const double* Y, Py_ssize_t sy0, Py_ssize_t sy1,     # IN  (N, K) targets or NULL
        const double* weights,                               # IN  (N,) or NULL
        bint want_gradient,
        floating* pack, double* Z,                           # scratch: ROWS_PER_CHUNK x (D, K)
        double* partial) noexcept nogil:                     # OUT [loss, G (K x D), gb (K)]
    """Loss sum and gradient sum of rows [row_begin, row_end), in the minimisation sign.

    ``partial[0]`` = sum_n w_n sum_k y_nk (lse_n - z_nk); ``G`` = sum_n r_n x_n^T
    and ``gb`` = sum_n r_n with residuals r_nk = w_n ((sum_j y_nj) p_nk - y_nk).
    """
    cdef int status = STATUS_OK
    cdef double loss = 0.0
    cdef double* G = partial + 1
    cdef double* gb = partial + 1 + K * D
    cdef Py_ssize_t r0 = row_begin, n_rows, r, k, n, ld
    cdef int64_t label
    cdef double w, m, s, e, log_s, y_k, scale
    cdef double z_label = 0.0, y_sum = 0.0, yz_sum = 0.0
    cdef double* z
    cdef const floating* Xc

    if want_gradient:
        memset(G, 0, (K * D + K) * sizeof(double))
    while r0 < row_end:
        n_rows = min(<Py_ssize_t> ROWS_PER_CHUNK, row_end - r0)
        Xc = chunk_rows(X, sx0, sx1, r0, n_rows, D, pack, &ld)
        chunk_logits(Xc, ld, n_rows, D, WT, K, bias, Z)
        for r in range(n_rows):
            n = r0 + r
            z = Z + r * K
            w = weights[n] if weights != NULL else 1.0
            m = row_max(z, K)
            if labels != NULL:
                label = labels[n]
                if label < 0 or label >= K:
                    # Out-of-range label: flag it and keep memory safe.
                    status |= STATUS_BAD_LABEL
                    memset(z, 0, K * sizeof(double))
                    continue
                z_label = z[label]
            else:
                y_sum = 0.0
                yz_sum = 0.0
                for k in range(K):
                    y_k = Y[n * sy0 + k * sy1]
                    y_sum += y_k
                    yz_sum += y_k * (z[k] - m)
            s = 0.0
            for k in range(K):
                e = exp(z[k] - m)
                z[k] = e
                s += e
            log_s = log(s)
            if labels != NULL:
                # lse - z_y written as (m - z_y) + log(s): both terms >= 0, no cancellation.
                loss += w * ((m - z_label) + log_s)
                if want_gradient:
                    scale = w / s
                    for k in range(K):
                        z[k] *= scale
                    z[label] -= w
            else:
                loss += w * (y_sum * log_s - yz_sum)
                if want_gradient:
                    scale = w * y_sum / s
                    for k in range(K):
                        z[k] = z[k] * scale - w * Y[n * sy0 + k * sy1]
        if want_gradient:
            chunk_gradient(Xc, ld, n_rows, D, Z, K, G, gb)
        r0 += n_rows
    partial[0] = loss
    return status


cdef inline int softmax_row(
        const double* z, Py_ssize_t K,       # IN  one row of logits (contiguous doubles)
        floating* out, Py_ssize_t so,        # OUT the row's softmax (or log-softmax), stride so
        double* e_scratch,                   # scratch: K doubles
        bint log_mode) noexcept nogil:
    """One row of softmax / log_softmax; returns 1 when the row is not finite."""
    cdef Py_ssize_t k
    cdef double m = row_max(z, K), s = 0.0, e, inv, lse
    for k in range(K):
        e = exp(z[k] - m)
        e_scratch[k] = e
        s += e
    if not (isfinite(m) and isfinite(s)):
        for k in range(K):
            out[k * so] = <floating> (m - m)  # NaN, never a plausible number
        return 1
    if log_mode:
        lse = log(s)
        for k in range(K):
            out[k * so] = <floating> ((z[k] - m) - lse)
    else:
        inv = 1.0 / s
        for k in range(K):
            out[k * so] = <floating> (e_scratch[k] * inv)
    return 0


cdef inline void load_row(const floating* src, Py_ssize_t stride, Py_ssize_t K,
                          double* dst) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(K):
        dst[k] = src[k * stride]


# ---------------------------------------------------------------------------
# Helpers of the def layer
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t element_stride(Py_ssize_t byte_stride, Py_ssize_t itemsize) noexcept nogil:
    # The wrappers guarantee strides are multiples of the itemsize.
    return byte_stride // itemsize


cdef inline Py_ssize_t n_partitions(Py_ssize_t N, Py_ssize_t per_partition_doubles) noexcept nogil:
    """Number of row partitions: a function of the problem size only, never of threads."""
    cdef Py_ssize_t n_parts = (N + MIN_ROWS_PER_PART - 1) // MIN_ROWS_PER_PART
    cdef Py_ssize_t by_memory = PARTIAL_BUDGET // per_partition_doubles
    if n_parts > MAX_PARTS:
        n_parts = MAX_PARTS
    if n_parts > by_memory:
        n_parts = by_memory
    if n_parts < 1:
        n_parts = 1
    return n_parts


cdef double* transposed_weights(const floating[:, :] W) noexcept nogil:
    """W (K, D) as a contiguous float64 D x K block followed by a zeroed K-vector."""
    cdef Py_ssize_t K = W.shape[0], D = W.shape[1], k, i
    cdef double* WT = <double*> malloc((D * K + K + 1) * sizeof(double))
    if WT == NULL:
        return NULL
    for k in range(K):
        for i in range(D):
            WT[i * K + k] = W[k, i]
    return WT


cdef inline double* bias_of(const floating[::1] b, double* storage, Py_ssize_t K) noexcept nogil:
    """Bias as float64 in ``storage`` (zeros when b is None)."""
    cdef Py_ssize_t k
    if b is None:
        memset(storage, 0, K * sizeof(double))
    else:
        for k in range(K):
            storage[k] = b[k]
    return storage


# ---------------------------------------------------------------------------
# (b) def loops
# ---------------------------------------------------------------------------

def loss_gradient(
        const floating[:, :] X,            # IN  (N, D)
        const floating[:, :] W,            # IN  (K, D)
        const floating[::1] b,             # IN  (K,) or None
        const int64_t[::1] labels,         # IN  (N,) or None
        const double[:, :] Y,              # IN  (N, K) or None
        const double[::1] weights,         # IN  (N,) or None
        double scale, double l2,
        floating[:, ::1] grad_W_out,       # OUT (K, D) or None
        floating[::1] grad_b_out,          # OUT (K,) or None
        int n_threads):
    """Fused loss + gradient over the rows of X.

    Returns ``(loss_sum, status, n_nonfinite_gradient, sum_sq_W)``, where
    ``loss_sum`` = sum_n w_n sum_k y_nk (lse_n - z_nk) >= 0 and, when
    ``grad_W_out`` is given, ``grad_W_out = scale * sum_n r_n x_n^T + l2 * W`` and
    ``grad_b_out = scale * sum_n r_n``.
    """
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], K = W.shape[0]
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef Py_ssize_t sx0 = element_stride(X.strides[0], itemsize)
    cdef Py_ssize_t sx1 = element_stride(X.strides[1], itemsize)
    cdef Py_ssize_t sy0 = 0, sy1 = 0
    cdef bint want_gradient = grad_W_out is not None
    cdef Py_ssize_t part_size = 1 + K * D + K
    cdef Py_ssize_t n_parts = n_partitions(N, part_size)
    cdef Py_ssize_t rows_per_part = (N + n_parts - 1) // n_parts
    cdef Py_ssize_t p, j, k, i, nt
    cdef const floating* X_ptr = &X[0, 0] if (N > 0 and D > 0) else NULL
    cdef const int64_t* labels_ptr = NULL
    cdef const double* Y_ptr = NULL
    cdef const double* weights_ptr = NULL
    cdef double* WT = NULL
    cdef double* bias = NULL
    cdef double* partials = NULL
    cdef int* statuses = NULL
    cdef floating* pack = NULL
    cdef double* Z = NULL
    cdef int status = STATUS_OK
    cdef double loss = 0.0, acc, wsq = 0.0, value
    cdef Py_ssize_t n_nonfinite = 0

    if labels is not None:
        labels_ptr = &labels[0] if N > 0 else NULL
    if Y is not None:
        Y_ptr = &Y[0, 0] if (N > 0 and K > 0) else NULL
        sy0 = Y.strides[0] // sizeof(double)
        sy1 = Y.strides[1] // sizeof(double)
    if weights is not None:
        weights_ptr = &weights[0] if N > 0 else NULL
    # Round partitions up to whole chunks so chunk boundaries are fixed too.
    rows_per_part = ((rows_per_part + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK) * ROWS_PER_CHUNK
    if rows_per_part < 1:
        rows_per_part = 1
    n_parts = max(1, (N + rows_per_part - 1) // rows_per_part)
    nt = min(<Py_ssize_t> n_threads, n_parts)

    with nogil:
        WT = transposed_weights(W)
        partials = <double*> malloc(n_parts * part_size * sizeof(double))
        statuses = <int*> malloc(n_parts * sizeof(int))
        if WT == NULL or partials == NULL or statuses == NULL:
            status = STATUS_NO_MEMORY
        else:
            bias = bias_of(b, WT + D * K, K)
            if nt <= 1:
                pack = <floating*> malloc((ROWS_PER_CHUNK * D + 1) * sizeof(floating))
                Z = <double*> malloc((ROWS_PER_CHUNK * K + 1) * sizeof(double))
                for p in range(n_parts):
                    if pack == NULL or Z == NULL:
                        statuses[p] = STATUS_NO_MEMORY
                    else:
                        statuses[p] = partition_loss_gradient(
                            X_ptr, sx0, sx1, p * rows_per_part, min(N, (p + 1) * rows_per_part),
                            D, K, WT, bias, labels_ptr, Y_ptr, sy0, sy1, weights_ptr,
                            want_gradient, pack, Z, partials + p * part_size)
                free(pack)
                free(Z)
            else:
                with parallel(num_threads=nt):
                    # Per-thread scratch, first touched by the thread that uses it.
                    pack = <floating*> malloc((ROWS_PER_CHUNK * D + 1) * sizeof(floating))
                    Z = <double*> malloc((ROWS_PER_CHUNK * K + 1) * sizeof(double))
                    for p in prange(n_parts, schedule="dynamic"):
                        if pack == NULL or Z == NULL:
                            statuses[p] = STATUS_NO_MEMORY
                        else:
                            statuses[p] = partition_loss_gradient(
                                X_ptr, sx0, sx1, p * rows_per_part, min(N, (p + 1) * rows_per_part),
                                D, K, WT, bias, labels_ptr, Y_ptr, sy0, sy1, weights_ptr,
                                want_gradient, pack, Z, partials + p * part_size)
                    free(pack)
                    free(Z)
            # Fixed-order reduction over partitions.
            for p in range(n_parts):
                status |= statuses[p]
                loss += partials[p * part_size]
            for k in range(K):
                for i in range(D):
                    wsq += (<double> W[k, i]) * W[k, i]
            if want_gradient and not (status & (STATUS_NO_MEMORY | STATUS_BAD_LABEL)):
                for k in range(K):
                    for i in range(D):
                        acc = 0.0
                        for p in range(n_parts):
                            acc += partials[p * part_size + 1 + k * D + i]
                        value = scale * acc + l2 * W[k, i]
                        grad_W_out[k, i] = <floating> value
                        if not isfinite(grad_W_out[k, i]):
                            n_nonfinite += 1
                    if grad_b_out is not None:
                        acc = 0.0
                        for p in range(n_parts):
                            acc += partials[p * part_size + 1 + K * D + k]
                        grad_b_out[k] = <floating> (scale * acc)
                        if not isfinite(grad_b_out[k]):
                            n_nonfinite += 1
        free(WT)
        free(partials)
        free(statuses)
    return loss, status, n_nonfinite, wsq


def predict_rows(
        const floating[:, :] X,            # IN  (N, D)
        const floating[:, :] W,            # IN  (K, D)
        const floating[::1] b,             # IN  (K,) or None
        floating[:, ::1] proba_out,        # OUT (N, K) probabilities, or None
        int64_t[::1] labels_out,           # OUT (N,) argmax, or None
        int n_threads):
    """Probabilities and/or argmax classes of every row; returns (status, n_bad_rows)."""
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], K = W.shape[0]
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef Py_ssize_t sx0 = element_stride(X.strides[0], itemsize)
    cdef Py_ssize_t sx1 = element_stride(X.strides[1], itemsize)
    cdef Py_ssize_t n_chunks = (N + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    cdef Py_ssize_t nt = min(<Py_ssize_t> n_threads, n_chunks)
    cdef const floating* X_ptr = &X[0, 0] if (N > 0 and D > 0) else NULL
    cdef floating* P_ptr = NULL
    cdef int64_t* L_ptr = NULL
    cdef double* WT = NULL
    cdef double* bias
    cdef floating* pack = NULL
    cdef double* Z = NULL
    cdef Py_ssize_t c, n_bad = 0
    cdef int status = STATUS_OK

    if proba_out is not None and N > 0:
        P_ptr = &proba_out[0, 0]
    if labels_out is not None and N > 0:
        L_ptr = &labels_out[0]
    if N * (D + K) < MIN_ELEMENTS_PARALLEL:
        nt = 1
    with nogil:
        WT = transposed_weights(W)
        if WT == NULL:
            status = STATUS_NO_MEMORY
        else:
            bias = bias_of(b, WT + D * K, K)
            if nt <= 1:
                pack = <floating*> malloc((ROWS_PER_CHUNK * D + 1) * sizeof(floating))
                Z = <double*> malloc((ROWS_PER_CHUNK * K + K + 1) * sizeof(double))
                if pack == NULL or Z == NULL:
                    status = STATUS_NO_MEMORY
                else:
                    for c in range(n_chunks):
                        n_bad += predict_chunk(X_ptr, sx0, sx1, c * ROWS_PER_CHUNK,
                                               min(<Py_ssize_t> ROWS_PER_CHUNK, N - c * ROWS_PER_CHUNK),
                                               D, K, WT, bias, pack, Z, P_ptr, L_ptr)
                free(pack)
                free(Z)
            else:
                with parallel(num_threads=nt):
                    pack = <floating*> malloc((ROWS_PER_CHUNK * D + 1) * sizeof(floating))
                    Z = <double*> malloc((ROWS_PER_CHUNK * K + K + 1) * sizeof(double))
                    for c in prange(n_chunks, schedule="static"):
                        if pack == NULL or Z == NULL:
                            n_bad += N + 1   # impossible count: signals no memory
                        else:
                            n_bad += predict_chunk(X_ptr, sx0, sx1, c * ROWS_PER_CHUNK,
                                                   min(<Py_ssize_t> ROWS_PER_CHUNK, N - c * ROWS_PER_CHUNK),
                                                   D, K, WT, bias, pack, Z, P_ptr, L_ptr)
                    free(pack)
                    free(Z)
        free(WT)
    if n_bad > N:
        status = STATUS_NO_MEMORY
    return status, n_bad


cdef Py_ssize_t predict_chunk(
        const floating* X, Py_ssize_t sx0, Py_ssize_t sx1, Py_ssize_t first_row, Py_ssize_t n_rows,
        Py_ssize_t D, Py_ssize_t K, const double* WT, const double* bias,
        floating* pack, double* Z,              # scratch
        floating* P, int64_t* L) noexcept nogil:  # OUT (N, K) / (N,) or NULL
    cdef Py_ssize_t ld, r, k, best, n_bad = 0
    cdef const floating* Xc = chunk_rows(X, sx0, sx1, first_row, n_rows, D, pack, &ld)
    cdef double* z
    cdef double* e_scratch = Z + ROWS_PER_CHUNK * K
    cdef double check
    chunk_logits(Xc, ld, n_rows, D, WT, K, bias, Z)
    for r in range(n_rows):
        z = Z + r * K
        if L != NULL:
            best = 0
            check = 0.0
            for k in range(K):
                check += z[k] - z[k]   # NaN for NaN or inf logits
                if z[k] > z[best]:
                    best = k
            L[first_row + r] = best
            if check != 0.0:
                n_bad += 1
                continue
        if P != NULL:
            n_bad += softmax_row(z, K, P + (first_row + r) * K, 1, e_scratch, False)
    return n_bad


def rowwise(
        const floating[:, :] Z,            # IN  (N, K)
        floating[:, ::1] out,              # OUT (N, K) for softmax / log_softmax
        floating[::1] out_lse,             # OUT (N,) for logsumexp
        int mode,                          # 0 softmax, 1 log_softmax, 2 logsumexp
        int n_threads):
    """Row-wise softmax, log_softmax or logsumexp of Z; returns (status, n_bad_rows)."""
    cdef Py_ssize_t N = Z.shape[0], K = Z.shape[1]
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef Py_ssize_t sz0 = element_stride(Z.strides[0], itemsize)
    cdef Py_ssize_t sz1 = element_stride(Z.strides[1], itemsize)
    cdef Py_ssize_t rows_per_block = max(1, MIN_ELEMENTS_PARALLEL // (8 * max(K, 1)))
    cdef Py_ssize_t n_blocks = (N + rows_per_block - 1) // rows_per_block
    cdef Py_ssize_t nt = min(<Py_ssize_t> n_threads, n_blocks)
    cdef const floating* Z_ptr = &Z[0, 0] if (N > 0 and K > 0) else NULL
    cdef floating* out_ptr = NULL
    cdef floating* lse_ptr = NULL
    cdef double* scratch = NULL
    cdef Py_ssize_t blk, n_bad = 0
    cdef int status = STATUS_OK

    if out is not None and N > 0:
        out_ptr = &out[0, 0]
    if out_lse is not None and N > 0:
        lse_ptr = &out_lse[0]
    if N * K < MIN_ELEMENTS_PARALLEL:
        nt = 1
    with nogil:
        if nt <= 1:
            scratch = <double*> malloc((2 * K + 1) * sizeof(double))
            if scratch == NULL:
                status = STATUS_NO_MEMORY
            else:
                for blk in range(n_blocks):
                    n_bad += rowwise_block(Z_ptr, sz0, sz1, blk * rows_per_block,
                                           min(rows_per_block, N - blk * rows_per_block),
                                           K, mode, scratch, out_ptr, lse_ptr)
            free(scratch)
        else:
            with parallel(num_threads=nt):
                scratch = <double*> malloc((2 * K + 1) * sizeof(double))
                for blk in prange(n_blocks, schedule="static"):
                    if scratch == NULL:
                        n_bad += N + 1
                    else:
                        n_bad += rowwise_block(Z_ptr, sz0, sz1, blk * rows_per_block,
                                               min(rows_per_block, N - blk * rows_per_block),
                                               K, mode, scratch, out_ptr, lse_ptr)
                free(scratch)
    if n_bad > N:
        status = STATUS_NO_MEMORY
    return status, n_bad


cdef Py_ssize_t rowwise_block(
        const floating* Z, Py_ssize_t sz0, Py_ssize_t sz1, Py_ssize_t first_row, Py_ssize_t n_rows,
        Py_ssize_t K, int mode, double* scratch,
        floating* out, floating* out_lse) noexcept nogil:
    cdef Py_ssize_t r, k, n, n_bad = 0
    cdef double m, s
    cdef double* z = scratch
    for r in range(n_rows):
        n = first_row + r
        load_row(Z + n * sz0, sz1, K, z)
        if mode == 2:
            m = row_max(z, K)
            s = 0.0
            for k in range(K):
                s += exp(z[k] - m)
            if isfinite(m) and isfinite(s):
                out_lse[n] = <floating> (m + log(s))
            else:
                out_lse[n] = <floating> (m - m)
                n_bad += 1
        else:
            n_bad += softmax_row(z, K, out + n * K, 1, scratch + K, mode == 1)
    return n_bad
