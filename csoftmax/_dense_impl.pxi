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
# Precision: arithmetic is done in float64 for every input kind (float32 values
# are widened as they are read), so float32 work is accumulated in float64.
#
# Input kinds: the chunk kernels read X through a ``Source``: dense float64 or
# float32 rows with any strides, or bit-packed binary rows (``PackedBits``).
# Everything after the logits (softmax, loss, residuals) is shared.

from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset, memcpy
from libc.math cimport exp, log, INFINITY, isfinite
from libc.stdint cimport int64_t, uint64_t, uint8_t
from cpython.exc cimport PyErr_CheckSignals

cdef extern from "_omp_shim.h" nogil:
    int CSM_OPENMP_ENABLED

# Status bits returned by the kernels (mirrored in csoftmax._functions).
cdef enum:
    STATUS_OK = 0
    STATUS_NO_MEMORY = 1
    STATUS_BAD_LABEL = 2
    STATUS_NONFINITE = 4
    STATUS_BAD_INDEX = 8

# Partitioning.  Chunks of CSM_CHUNK rows (in _kernels.h) keep their logits and,
# for strided X, a packed copy of the rows in L1/L2 while they are reused.
cdef enum:
    # A partition (the unit of deterministic reduction) has at least this many
    # rows, so that small inputs are one partition and never start a team.
    MIN_ROWS_PER_PART = 2048
    MAX_PARTS = 64
    # Partition counts are rounded up to a multiple of this, so that 2, 4 or 8
    # threads get equal shares (the partition may not depend on the thread
    # count).  5 partitions of 10000 rows had run 3 + 2 on 2 threads: 1.63x
    # the 1-thread speed instead of 1.9x.
    PART_MULTIPLE = 8
    # Cap on the doubles held by all partial gradients together (8 MiB).
    PARTIAL_BUDGET = 1 << 20
    # Long rows with at least this many (padded) classes are copied chunk by
    # chunk (copies_rows), or for float64 X transposed (logits_by_features).
    # Measured at 2 threads, D = 1000: 32 classes 4% slower with the copy, 50
    # classes 3% faster, 100 classes 6% faster.
    COPY_MIN_CLASSES = 48
    # Largest group table (doubles) for bit-packed rows: 264 KiB, which stays
    # in L2 next to its histogram (byte groups: D = 64 with up to 16 classes).
    GROUP_TABLE_MAX = 33792
    # Row-wise functions go parallel only above this many elements.
    MIN_ELEMENTS_PARALLEL = 1 << 15
    # ... and prefetch the rows of the chunk this many chunks on (csm_ahead).
    CSM_AHEAD_CHUNKS = 2
    # Rows transposed at a time for logits_by_features.
    XT_ROWS = 16

ISA_LEVEL = ISA_NAME  # defined by the including module


cdef extern from "_kernels.h" nogil:
    enum:
        CSM_VL
        CSM_CHUNK
        CSM_LABEL_LOSS_S
        CSM_LOGITS_BLOCK_BYTES
    Py_ssize_t csm_padded(Py_ssize_t K)
    void csm_logits_d(const double* X, Py_ssize_t ldx, Py_ssize_t n_rows, Py_ssize_t D,
                      const double* W, Py_ssize_t ldw, const double* WB, Py_ssize_t K, const double* bias,
                      double* Z, Py_ssize_t ldc)
    void csm_logits_s(const float* X, Py_ssize_t ldx, Py_ssize_t n_rows, Py_ssize_t D,
                      const float* Ws, const double* W, Py_ssize_t ldw, const float* WBs, Py_ssize_t K,
                      const double* bias,
                      double* Z, Py_ssize_t ldc)
    void csm_rank_update_d(const double* X, Py_ssize_t ldx, Py_ssize_t n_rows, Py_ssize_t D,
                           const double* R, Py_ssize_t rr, Py_ssize_t rk, Py_ssize_t K,
                           double* G, Py_ssize_t ldg)
    void csm_rank_update_s(const float* X, Py_ssize_t ldx, Py_ssize_t n_rows, Py_ssize_t D,
                           const double* R, Py_ssize_t rr, Py_ssize_t rk, Py_ssize_t K,
                           double* G, Py_ssize_t ldg)
    void csm_widen_u8_d(const uint8_t* X, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t n_rows, Py_ssize_t D,
                        double* dst)
    void csm_widen_u8_f(const uint8_t* X, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t n_rows, Py_ssize_t D,
                        float* dst)
    void csm_cm_label_loss(double* Z, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K,
                           const double* label, const double* weight, int residual, int unit,
                           double* loss, double* col)
    void csm_cm_label_loss_s(const double* Z, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K,
                             const double* label, const double* weight, int residual, int unit,
                             double* loss, double* col, float* Rs, Py_ssize_t ldr)
    void csm_rank_update_rs(const float* X, Py_ssize_t ldx, Py_ssize_t n_rows, Py_ssize_t D,
                            const float* Rs, Py_ssize_t K, double* G, Py_ssize_t ldg)
    void csm_logits_rows_shifted_s(const float* X, Py_ssize_t ldx, Py_ssize_t n_rows, Py_ssize_t D,
                                   const float* WR0, Py_ssize_t K, const double* bias0, double* Z, Py_ssize_t ldc)
    void csm_cm_soft_loss(double* Z, const double* Y, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K,
                          const double* weight, int residual, double* loss, double* col)
    void csm_cm_hessian(double* Z, const double* U, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K,
                        const double* weight, double* col)
    ctypedef struct csm_ahead:
        const char* read
        char* write
        Py_ssize_t group_bytes
    double csm_cm_softmax(double* Z, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K, double* row_sum,
                          const csm_ahead* ahead)
    void csm_cm_shifted_sums(double* Z, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K, int store_shifted,
                             double* row_max, double* row_sum, const csm_ahead* ahead)
    void csm_cm_argmax(const double* Z, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K,
                       double* best, double* check)
    double csm_cm_log_sums(const double* row_max, double* row_sum, Py_ssize_t n_rows, int add_max)
    double csm_lane_sum(const double* lanes)
    double csm_copy_check(const double* src, Py_ssize_t n, double* dst)
    double csm_copy_check_f(const float* src, Py_ssize_t n, double* dst, float* dst_s)
    Py_ssize_t csm_broadcast_size(Py_ssize_t K, Py_ssize_t D)
    void csm_broadcast_layout(const double* W, Py_ssize_t ldw, Py_ssize_t K, Py_ssize_t D, double* WB, float* WBs)
    Py_ssize_t csm_short_layout_size_s(Py_ssize_t K, Py_ssize_t D)
    void csm_short_layout_s(const double* W, Py_ssize_t ldw, Py_ssize_t K, Py_ssize_t D, float* WBs)
    double csm_sum_squares(const double* v, Py_ssize_t n)
    double csm_penalised_loss(double loss_sum, double scale, double l2, double sum_sq)
    Py_ssize_t csm_scale_add(const double* g, const double* p, Py_ssize_t n, double scale, double l2, double* out)
    Py_ssize_t csm_scale_add_f(const double* g, const double* p, Py_ssize_t n, double scale, double l2, float* out)
    void csm_shuffle(int64_t* a, Py_ssize_t n, uint64_t seed)
    void csm_momentum_step(const double* grad, double* p, double* v, Py_ssize_t n, double scale, double l2,
                           double momentum, double eta)
    void csm_prefetch_gather(const char* data, const int64_t* order, Py_ssize_t n_rows,
                             Py_ssize_t row_stride, Py_ssize_t row_bytes)
    void csm_prefetch_span(const void* p, Py_ssize_t n_bytes)
    Py_ssize_t csm_label_doubles(const int64_t* labels, Py_ssize_t n, Py_ssize_t K, double* label)
    void csm_rows_to_classes_d(const double* T, Py_ssize_t ldt, Py_ssize_t n_rows, Py_ssize_t K,
                               double* Z, Py_ssize_t ldc)
    void csm_rows_to_classes_f(const float* T, Py_ssize_t ldt, Py_ssize_t n_rows, Py_ssize_t K,
                               double* Z, Py_ssize_t ldc)
    void csm_classes_to_rows_d(const double* Z, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K,
                               double* T, Py_ssize_t ldt)
    void csm_classes_to_rows_f(const double* Z, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K,
                               float* T, Py_ssize_t ldt)
    void csm_cm_subtract_rows(double* Z, Py_ssize_t ldc, Py_ssize_t n_rows, Py_ssize_t K,
                              const double* row_value)
    Py_ssize_t csm_csr_logits(const double* values, const int64_t* indices, const int64_t* indptr,
                              Py_ssize_t first_row, Py_ssize_t n_rows, Py_ssize_t D,
                              const double* WT, Py_ssize_t ldz, const double* bias, double* Z)
    void csm_csr_accumulate(const double* values, const int64_t* indices, const int64_t* indptr,
                            Py_ssize_t first_row, Py_ssize_t n_rows, Py_ssize_t D,
                            const double* R, Py_ssize_t ldz, double* GT)
    void csm_bits_logits(const uint64_t* words, Py_ssize_t ldb, Py_ssize_t n_rows, Py_ssize_t D,
                         const double* WT, Py_ssize_t ldz, const double* bias, double* Z)
    void csm_bits_accumulate(const uint64_t* words, Py_ssize_t ldb, Py_ssize_t n_rows, Py_ssize_t D,
                             const double* R, Py_ssize_t ldz, double* GT)
    Py_ssize_t csm_group_size(Py_ssize_t D, int gb, Py_ssize_t K)
    Py_ssize_t csm_group_ldg(Py_ssize_t K)
    void csm_group_tables(const double* WT, Py_ssize_t ldz, Py_ssize_t D, Py_ssize_t K, int gb,
                          const double* bias, double* TB)
    void csm_group_logits(const uint64_t* words, Py_ssize_t ldb, Py_ssize_t n_rows, Py_ssize_t D, int gb,
                          const double* TB, Py_ssize_t K, double* Z, Py_ssize_t ldc)
    void csm_group_accumulate(const uint64_t* words, Py_ssize_t ldb, Py_ssize_t n_rows, Py_ssize_t D, int gb,
                              const double* R, Py_ssize_t K, Py_ssize_t ldc, double* H)
    void csm_group_fold(double* H, Py_ssize_t D, Py_ssize_t K, int gb, double* GT, Py_ssize_t ldz)

# What a partition computes.
cdef enum:
    MODE_LOSS = 0            # loss sum only
    MODE_LOSS_GRADIENT = 1   # loss sum and gradient sums
    MODE_HESSIAN = 2         # Hessian-vector product sums

# Input kinds.
cdef enum:
    KIND_F64 = 0             # dense float64 rows, any strides
    KIND_F32 = 1             # dense float32 rows, any strides
    KIND_BITS = 2            # bit-packed binary rows (uint64 words)
    KIND_U8 = 3              # dense uint8 (or bool) rows, any strides, widened to float64 per chunk
    KIND_CSR = 4             # sparse rows: float64 values, int64 indices and indptr
    KIND_U8_F32 = 5          # as KIND_U8, widened to float32 (float32 W)

# Element types of dense X that the kernels read.
ctypedef fused xtype:
    double
    float


# ---------------------------------------------------------------------------
# (a) nogil kernels for a chunk of rows
# ---------------------------------------------------------------------------

cdef struct Model:
    # Float64 copies of the parameters, in the layouts the kernels want.
    Py_ssize_t K, D, ldz
    double* W         # K x D, row-major (dense kinds)
    double* bias      # K
    double* WT        # D x ldz transposed, then ldz bias padded with -inf (bits kind)
    double* TB        # group tables of WT and the bias (bits kind, when they pay), or NULL
    float* Ws         # K x D float32 copy (float32 X)
    double* WB        # W's broadcast layout for short float64 rows (csm_broadcast_layout), or NULL
    float* WBs        # W's layout for short float32 rows (csm_short_layout_s), or NULL
    float* WBs0       # instead for the float32 label loss (shifted_layout): the layout of w_k - w_0 (k >= 1), or NULL
    double* bias0     # then b_k - b_0 (k >= 1), followed by the K - 1 rows w_k - w_0


cdef struct Source:
    # Where the rows of X come from.
    int kind
    const void* data  # first element of X, or first word
    Py_ssize_t s0     # row stride in elements (dense) or words per row (bits)
    Py_ssize_t s1     # feature stride in elements (dense)
    Py_ssize_t D
    int group_bits    # bits kind: 4 or 8 when logits and gradient go through group tables, else 0
    Py_ssize_t n_classes  # K, with group tables (they are sized by it)
    const int64_t* indices   # CSR column indices (data holds the values)
    const int64_t* indptr    # CSR row pointers


cdef struct Scratch:
    # Per-thread buffers for one chunk of rows; allocated by scratch_new.
    void* pack        # CSM_CHUNK x D copy of rows of X whose features are strided
    const void* Xc    # the current chunk's rows (in X itself, or in pack)
    Py_ssize_t ld     # their leading dimension
    Py_ssize_t first_row  # the current chunk's first row (sparse kind)
    Py_ssize_t n_bad_index  # sparse entries with a column index outside [0, D)
    double* Z         # K x CSM_CHUNK class-major logits, then probabilities, then residuals
    double* U         # K x CSM_CHUNK class-major logits of the direction, or soft targets
    double* T         # CSM_CHUNK x ldz row-major logits / residuals (bits and sparse kinds)
    double* row_sum   # CSM_CHUNK (+ CSM_VL padding) per-row values:
    double* row_check #   sum of exp (or argmax; its log in place), finiteness check,
    double* row_a     #   label as a double (-1: skip the row),
    double* row_b     #   row weight (0 on padding rows)
    double* col_sum   # K x CSM_VL lane sums of the residuals (intercept gradient)
    double* loss_lanes  # CSM_VL lane sums of the loss
    double* GT        # D x ldz gradient accumulator, transposed (bits and sparse kinds)
    double* H         # group histograms of the residuals (bits kind with tables), or NULL
    double* XT        # D x XT_ROWS: rows of the chunk feature by feature (logits_by_features), or NULL


cdef inline Py_ssize_t whole_lines(Py_ssize_t n_doubles) noexcept nogil:
    """n_doubles rounded up to whole 64-byte lines."""
    return (n_doubles + 7) // 8 * 8


cdef inline bint widens(const Source* src) noexcept nogil:
    """Whether src holds uint8 rows, which are widened chunk by chunk."""
    return src.kind == KIND_U8 or src.kind == KIND_U8_F32


cdef inline int rows_kind(const Source* src) noexcept nogil:
    """The kind of the rows the kernels read: uint8 rows are widened per chunk
    into the scratch (source_chunk), as float32 for float32 W and else as
    float64, and from there take the float kernels and W's layouts as the
    float array would: the same results, bit for bit, with X read as bytes.
    Widened as read inside the tiles, they had no row or broadcast tile and
    ran slower than float64 X (digits-like loss and gradient, 1 thread: 15.6
    against 12.0 ms, in float64 for float32 W too); widened per chunk, 12.5
    ms, 8.9 ms with float32 W (the float64 copy's stores, 512 bytes per row,
    keep it a little above float64 X read in place)."""
    if src.kind == KIND_U8:
        return KIND_F64
    if src.kind == KIND_U8_F32:
        return KIND_F32
    return src.kind


cdef inline Py_ssize_t element_size(const Source* src) noexcept nogil:
    """Bytes per element of X as stored (float32, uint8, else float64 or words)."""
    return 4 if src.kind == KIND_F32 else (1 if widens(src) else 8)


cdef inline bint logits_by_features(const Source* src, Py_ssize_t ldz) noexcept nogil:
    """Whether the logits of dense float64 chunks are computed as a rank update
    over the features, Z (K x rows) = W (K x D) @ XT (D x rows), from
    XT_ROWS rows at a time transposed (csm_rows_to_classes_d) and W
    transposed, instead of dot products of rows: long rows with many
    classes, where the logits are GEMM-bound.  Per feature, the rank update's
    register tile (eight classes x sixteen rows) loads two vectors and
    broadcasts eight weights for sixteen FMAs, where the pair tile loads ten
    vectors (two of weights, one of each of eight rows), and it writes
    class-major logits with no sums across lanes.  Rows are used in place:
    with the 16-row transpose in L2 the chunk copy of copies_rows no longer
    paid.  Measured, 10000 x 1000 x 100: log_likelihood 43.8 -> 39.9 ms at 1
    thread, loss_and_gradient 81.1 -> 78.2 ms at 1 thread and 42.2 -> 40.5 ms
    at 2; 20000 x 1000 x 50: 44.4 -> 43.7 ms at 2 threads; with 32 classes
    (and MNIST-like rows, 10 classes) it was slower, hence
    COPY_MIN_CLASSES."""
    return (rows_kind(src) == KIND_F64 and src.D * <Py_ssize_t> sizeof(double) > CSM_LOGITS_BLOCK_BYTES
            and ldz >= COPY_MIN_CLASSES)


cdef inline bint transposed_model(const Source* src, Py_ssize_t K) noexcept nogil:
    """Whether a model of K classes for rows from src holds W transposed
    (Model.WT): the bits and sparse kinds add weight rows, and
    logits_by_features broadcasts weights of one feature.  Every model for
    a call's rows is built with this (SGD batches, whose W changes every
    batch, keep W row-major unless the kernels need it transposed; source_logits
    then takes the pair tiles)."""
    return src.kind == KIND_BITS or src.kind == KIND_CSR or logits_by_features(src, csm_padded(K))


cdef inline bint copies_rows(const Source* src, Py_ssize_t ldz) noexcept nogil:
    """Whether dense chunks are copied into the scratch before use: rows with
    strided features, and long rows with many classes (the blocked logits
    path, GEMM-bound), which then sit on cache-line boundaries in L2 for both
    passes over the chunk: NumPy's arrays start 16 bytes into a line, so most
    vector loads of a row in place straddle two lines (measured, 10000 x 1000
    x 100: 6% faster at 2 threads).  With few classes the pass is bound by
    memory and the copy costs more than it saves (MNIST-like: 30% slower).
    Float64 rows of that kind take logits_by_features instead.  uint8 rows
    are always copied: widened (see rows_kind)."""
    if widens(src):
        return src.D > 0
    if src.kind != KIND_F64 and src.kind != KIND_F32:
        return False
    return src.D > 0 and (src.s1 != 1 or (src.D * element_size(src) > CSM_LOGITS_BLOCK_BYTES
                                          and ldz >= COPY_MIN_CLASSES and not logits_by_features(src, ldz)))


cdef Scratch* scratch_new(const Source* src, Py_ssize_t ldz) noexcept nogil:
    """Allocate one thread's scratch (one block: a small call pays for one
    malloc, not seven); NULL when memory is short."""
    cdef Py_ssize_t rows = CSM_CHUNK + CSM_VL
    cdef Py_ssize_t itemsize = 4 if rows_kind(src) == KIND_F32 else 8   # of the copied rows
    cdef bint transposed = src.kind == KIND_BITS or src.kind == KIND_CSR
    # Dense chunks that are copied before use get a buffer (see copies_rows).
    cdef bint packs = copies_rows(src, ldz)
    cdef Py_ssize_t n_pack = whole_lines((CSM_CHUNK * src.D * itemsize + 7) // 8) if packs else 0
    cdef Py_ssize_t n_chunk = whole_lines(rows * ldz)
    cdef Py_ssize_t n_rowwise = whole_lines(4 * rows + (ldz + 1) * CSM_VL)
    cdef Py_ssize_t n_gt = whole_lines(src.D * ldz + 1) if transposed else 0
    cdef Py_ssize_t n_hist = whole_lines(csm_group_size(src.D, src.group_bits, src.n_classes)) if src.group_bits else 0
    cdef Py_ssize_t n_xt = whole_lines(src.D * XT_ROWS) if logits_by_features(src, ldz) else 0
    cdef Py_ssize_t n_total = n_pack + 2 * n_chunk + (n_chunk if transposed else 0) + n_rowwise + n_gt + n_hist + n_xt
    cdef char* block = <char*> malloc(sizeof(Scratch) + 64 + n_total * sizeof(double))
    cdef Scratch* s = <Scratch*> block
    cdef double* next_free
    if block == NULL:
        return NULL
    next_free = <double*> ((<size_t> (block + sizeof(Scratch)) + 63) & ~(<size_t> 63))
    s.pack = next_free if packs else NULL
    next_free += n_pack
    s.Z = next_free
    next_free += n_chunk
    s.U = next_free
    next_free += n_chunk
    s.T = next_free if transposed else NULL
    next_free += n_chunk if transposed else 0
    s.row_sum = next_free
    next_free += n_rowwise
    s.GT = next_free if transposed else NULL
    next_free += n_gt
    s.H = next_free if src.group_bits else NULL
    next_free += n_hist
    s.XT = next_free if n_xt > 0 else NULL
    s.n_bad_index = 0
    s.row_check = s.row_sum + rows
    s.row_a = s.row_sum + 2 * rows
    s.row_b = s.row_sum + 3 * rows
    s.col_sum = s.row_sum + 4 * rows
    s.loss_lanes = s.col_sum + ldz * CSM_VL
    return s


cdef void scratch_free(Scratch* s) noexcept nogil:
    free(s)


cdef void pack_rows(const xtype* X, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t first_row,
                    Py_ssize_t n_rows, Py_ssize_t D, xtype* dst) noexcept nogil:
    cdef Py_ssize_t r, i
    cdef const xtype* src
    for r in range(n_rows):
        src = X + (first_row + r) * s0
        if s1 == 1:
            memcpy(dst + r * D, src, D * sizeof(xtype))
        else:
            for i in range(D):
                dst[r * D + i] = src[i * s1]


cdef void source_chunk(const Source* src, Py_ssize_t first_row, Py_ssize_t n_rows,
                       Scratch* s) noexcept nogil:
    """Point ``s.Xc``/``s.ld`` at rows [first_row, first_row + n_rows).

    Dense rows with contiguous features are used in place (any row stride,
    including zero and negative ones) unless the scratch has a copy buffer
    (strided features, or long rows with many classes: see
    :func:`copies_rows`).
    """
    s.first_row = first_row
    if src.kind == KIND_BITS:
        s.Xc = (<const uint64_t*> src.data) + first_row * src.s0
        s.ld = src.s0
    elif src.kind == KIND_CSR:
        s.Xc = src.data
        s.ld = 0
    elif widens(src):
        if src.kind == KIND_U8:
            csm_widen_u8_d(<const uint8_t*> src.data + first_row * src.s0, src.s0, src.s1, n_rows, src.D,
                           <double*> s.pack)
        else:
            csm_widen_u8_f(<const uint8_t*> src.data + first_row * src.s0, src.s0, src.s1, n_rows, src.D,
                           <float*> s.pack)
        s.Xc = s.pack
        s.ld = src.D
    elif s.pack == NULL:
        if src.kind == KIND_F64:
            s.Xc = (<const double*> src.data) + first_row * src.s0
        else:
            s.Xc = (<const float*> src.data) + first_row * src.s0
        s.ld = src.s0
    else:
        if src.kind == KIND_F64:
            pack_rows(<const double*> src.data, src.s0, src.s1, first_row, n_rows, src.D, <double*> s.pack)
        else:
            pack_rows(<const float*> src.data, src.s0, src.s1, first_row, n_rows, src.D, <float*> s.pack)
        s.Xc = s.pack
        s.ld = src.D


cdef inline void zero_padding_rows(double* Z, Py_ssize_t ldc, Py_ssize_t K, Py_ssize_t n_rows) noexcept nogil:
    """Z[k * ldc + r] = 0 for the rows after n_rows up to a whole vector
    (the class-major kernels work on whole vectors of rows)."""
    cdef Py_ssize_t k, r, n_padded = (n_rows + CSM_VL - 1) // CSM_VL * CSM_VL
    for k in range(K):
        for r in range(n_rows, n_padded):
            Z[k * ldc + r] = 0.0


cdef inline void load_class_major(const floating* A, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t n_rows,
                                  Py_ssize_t K, double* Z) noexcept nogil:
    """Z[k * CSM_CHUNK + r] = A[r * s0 + k * s1] for r < n_rows, k < K (element
    strides), the rows padded to a whole vector by zeros."""
    cdef Py_ssize_t k, r
    cdef const floating* row
    for r in range(n_rows):
        row = A + r * s0
        for k in range(K):
            Z[k * CSM_CHUNK + r] = row[k * s1]
    zero_padding_rows(Z, CSM_CHUNK, K, n_rows)


cdef void source_logits(const Source* src, Scratch* s, Py_ssize_t n_rows,
                        const Model* m, double* Z) noexcept nogil:
    """Class-major logits of the current chunk: Z[k * CSM_CHUNK + r] = w_k . x_r + b_k,
    with the rows padded to a whole vector by zeros."""
    cdef Py_ssize_t k, r, t, t_padded, n_padded
    cdef int kind = rows_kind(src)
    if kind == KIND_F64 and s.XT != NULL and m.WT != NULL:
        # logits_by_features: Z starts from the bias; XT_ROWS rows at a time
        # go feature by feature into XT (the rows-to-classes copy, with the
        # features as its classes), the rows padded to a whole vector zero.
        n_padded = (n_rows + CSM_VL - 1) // CSM_VL * CSM_VL
        for k in range(m.K):
            for r in range(n_padded):
                Z[k * CSM_CHUNK + r] = m.bias[k]
        r = 0
        while r < n_rows:
            t = min(<Py_ssize_t> XT_ROWS, n_rows - r)
            t_padded = (t + CSM_VL - 1) // CSM_VL * CSM_VL
            csm_rows_to_classes_d(<const double*> s.Xc + r * s.ld, s.ld, t, src.D, s.XT, XT_ROWS)
            zero_padding_rows(s.XT, XT_ROWS, src.D, t)
            csm_rank_update_d(s.XT, XT_ROWS, src.D, t_padded, m.WT, m.ldz, 1, m.K, Z + r, CSM_CHUNK)
            r += t
    elif kind == KIND_F64:
        csm_logits_d(<const double*> s.Xc, s.ld, n_rows, src.D, m.W, src.D, m.WB, m.K, m.bias, Z, CSM_CHUNK)
    elif kind == KIND_F32:
        csm_logits_s(<const float*> s.Xc, s.ld, n_rows, src.D, m.Ws, m.W, src.D, m.WBs, m.K, m.bias, Z, CSM_CHUNK)
    elif m.TB != NULL:
        csm_group_logits(<const uint64_t*> s.Xc, s.ld, n_rows, src.D, src.group_bits, m.TB, m.K, Z, CSM_CHUNK)
    else:
        # These kernels add weight rows per stored entry or set bit: row-major in T.
        if src.kind == KIND_CSR:
            s.n_bad_index += csm_csr_logits(<const double*> src.data, src.indices, src.indptr, s.first_row,
                                            n_rows, src.D, m.WT, m.ldz, m.WT + src.D * m.ldz, s.T)
        else:
            csm_bits_logits(<const uint64_t*> s.Xc, s.ld, n_rows, src.D, m.WT, m.ldz, m.WT + src.D * m.ldz, s.T)
        csm_rows_to_classes_d(s.T, m.ldz, n_rows, m.K, Z, CSM_CHUNK)
    zero_padding_rows(Z, CSM_CHUNK, m.K, n_rows)


cdef void source_rank_update(const Source* src, Scratch* s, Py_ssize_t n_rows, Py_ssize_t K,
                             const double* R, Py_ssize_t ldz, double* G) noexcept nogil:
    """G (K x D) += R.T @ X_chunk for class-major residuals R; the bits and
    sparse kinds accumulate into s.GT instead."""
    cdef int kind = rows_kind(src)
    if kind == KIND_F64:
        csm_rank_update_d(<const double*> s.Xc, s.ld, n_rows, src.D, R, 1, CSM_CHUNK, K, G, src.D)
    elif kind == KIND_F32:
        csm_rank_update_s(<const float*> s.Xc, s.ld, n_rows, src.D, R, 1, CSM_CHUNK, K, G, src.D)
    elif s.H != NULL:
        csm_group_accumulate(<const uint64_t*> s.Xc, s.ld, n_rows, src.D, src.group_bits, R, K, CSM_CHUNK, s.H)
    else:
        csm_classes_to_rows_d(R, CSM_CHUNK, n_rows, K, s.T, ldz)
        if src.kind == KIND_CSR:
            csm_csr_accumulate(<const double*> src.data, src.indices, src.indptr, s.first_row, n_rows,
                               src.D, s.T, ldz, s.GT)
        else:
            csm_bits_accumulate(<const uint64_t*> s.Xc, s.ld, n_rows, src.D, s.T, ldz, s.GT)


cdef int partition_work(
        int mode, const Source* src,
        Py_ssize_t row_begin, Py_ssize_t row_end,
        const Model* model, const Model* direction,          # IN  parameters; direction for MODE_HESSIAN
        const int64_t* labels,                               # IN  (N,) or NULL
        const double* Y, Py_ssize_t sy0, Py_ssize_t sy1,     # IN  (N, K) targets or NULL
        const double* weights,                               # IN  (N,) row weights or NULL
        Scratch* scratch,
        double* partial) noexcept nogil:                     # OUT [loss, G (K x D), gb (K)]
    """Sums over rows [row_begin, row_end), in the minimisation sign.

    MODE_LOSS / MODE_LOSS_GRADIENT: ``partial[0]`` = sum_n w_n sum_k y_nk
    (lse_n - z_nk); ``G`` = sum_n r_n x_n^T and ``gb`` = sum_n r_n with residuals
    r_nk = w_n ((sum_j y_nj) p_nk - y_nk).

    MODE_HESSIAN: ``G`` = sum_n h_n x_n^T, ``gb`` = sum_n h_n with
    h_n = w_n (diag(p_n) - p_n p_n^T) (V x_n + Vb); the caller folds the
    targets' row sums into the row weights.

    Each chunk is processed class-major (see the class-major kernels in
    _kernels.h); loss and intercept sums are kept per lane across the chunks
    and reduced in a fixed order at the end.
    """
    cdef int status = STATUS_OK
    cdef Py_ssize_t K = model.K, D = src.D, ldz = model.ldz
    cdef double* G = partial + 1
    cdef double* gb = partial + 1 + K * D
    cdef double* Z = scratch.Z
    cdef double* U = scratch.U
    cdef double* label_of = scratch.row_a
    cdef double* weight_of = scratch.row_b
    cdef Py_ssize_t r0 = row_begin, n_rows, n_padded, r, k, i
    cdef bint residual = mode == MODE_LOSS_GRADIENT
    cdef bint unit_weights
    # float32 rows with labels: the loss in float32 lanes, its residuals
    # (float32, in U) straight to the float32 rank update
    cdef bint float32_loss = (CSM_LABEL_LOSS_S and labels != NULL and mode != MODE_HESSIAN
                              and rows_kind(src) == KIND_F32)

    memset(scratch.loss_lanes, 0, CSM_VL * sizeof(double))
    memset(scratch.col_sum, 0, K * CSM_VL * sizeof(double))
    if mode != MODE_LOSS:
        memset(G, 0, K * D * sizeof(double))
        if scratch.GT != NULL:
            memset(scratch.GT, 0, D * ldz * sizeof(double))
        if scratch.H != NULL:
            memset(scratch.H, 0, csm_group_size(D, src.group_bits, K) * sizeof(double))
    while r0 < row_end:
        n_rows = min(<Py_ssize_t> CSM_CHUNK, row_end - r0)
        n_padded = (n_rows + CSM_VL - 1) // CSM_VL * CSM_VL
        if r0 + (CSM_AHEAD_CHUNKS + 1) * CSM_CHUNK <= row_end:
            # labels and weights a few chunks on (csm_prefetch_span)
            if labels != NULL:
                csm_prefetch_span(labels + r0 + CSM_AHEAD_CHUNKS * CSM_CHUNK, CSM_CHUNK * sizeof(int64_t))
            if weights != NULL:
                csm_prefetch_span(weights + r0 + CSM_AHEAD_CHUNKS * CSM_CHUNK, CSM_CHUNK * sizeof(double))
        source_chunk(src, r0, n_rows, scratch)
        if float32_loss and model.WBs0 != NULL:
            csm_logits_rows_shifted_s(<const float*> scratch.Xc, scratch.ld, n_rows, D, model.WBs0, K,
                                      model.bias0, Z, CSM_CHUNK)
            zero_padding_rows(Z, CSM_CHUNK, K, n_rows)
        else:
            source_logits(src, scratch, n_rows, model, Z)
        # Unit weights, given or not, take the same arithmetic (see
        # csm_cm_label_loss): results must not depend on how they were passed.
        unit_weights = True
        if weights == NULL:
            for r in range(n_rows):
                weight_of[r] = 1.0
        else:
            for r in range(n_rows):
                weight_of[r] = weights[r0 + r]
                if weight_of[r] != 1.0:
                    unit_weights = False
        for r in range(n_rows, n_padded):
            weight_of[r] = 0.0
            label_of[r] = -1.0
        if mode == MODE_HESSIAN:
            source_logits(src, scratch, n_rows, direction, U)
            csm_cm_hessian(Z, U, CSM_CHUNK, n_padded, K, weight_of, scratch.col_sum)
        elif labels != NULL:
            # A label outside [0, K) is flagged and its row skipped (never
            # read out of bounds).
            if csm_label_doubles(labels + r0, n_rows, K, label_of):
                status |= STATUS_BAD_LABEL
            if float32_loss:
                csm_cm_label_loss_s(Z, CSM_CHUNK, n_padded, K, label_of, weight_of, residual,
                                    unit_weights, scratch.loss_lanes, scratch.col_sum, <float*> U, CSM_CHUNK)
            else:
                csm_cm_label_loss(Z, CSM_CHUNK, n_padded, K, label_of, weight_of, residual,
                                  unit_weights, scratch.loss_lanes, scratch.col_sum)
        else:
            load_class_major(Y + r0 * sy0, sy0, sy1, n_rows, K, U)
            csm_cm_soft_loss(Z, U, CSM_CHUNK, n_padded, K, weight_of, residual,
                             scratch.loss_lanes, scratch.col_sum)
        if mode != MODE_LOSS:
            if float32_loss:
                csm_rank_update_rs(<const float*> scratch.Xc, scratch.ld, n_rows, D, <const float*> U, K, G, D)
            else:
                source_rank_update(src, scratch, n_rows, K, Z, ldz, G)
        r0 += n_rows
    if scratch.n_bad_index:
        status |= STATUS_BAD_INDEX
    if mode != MODE_LOSS:
        for k in range(K):
            gb[k] = csm_lane_sum(scratch.col_sum + k * CSM_VL)
        if scratch.H != NULL:
            csm_group_fold(scratch.H, D, K, src.group_bits, scratch.GT, ldz)
        if scratch.GT != NULL:
            for i in range(D):
                for k in range(K):
                    G[k * D + i] = scratch.GT[i * ldz + k]
    partial[0] = csm_lane_sum(scratch.loss_lanes)
    return status


# ---------------------------------------------------------------------------
# Helpers of the def layer
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t n_partitions(const Source* src, Py_ssize_t N, Py_ssize_t per_partition_doubles) noexcept nogil:
    """Number of row partitions: a function of the problem (its size and input
    kind) only, never of threads."""
    cdef Py_ssize_t min_rows = MIN_ROWS_PER_PART
    if src.group_bits:
        # Each partition zeroes and folds a histogram as big as the tables:
        # enough rows to keep that to a few percent of the partition's work
        # (8 table rows' worth per row of patterns: 16 partitions of the
        # digits-like 200000 rows, 5% faster at 1 and 2 threads than 32).
        min_rows = max(min_rows, 8 * csm_group_size(src.D, src.group_bits, src.n_classes)
                       // csm_group_ldg(src.n_classes))
    cdef Py_ssize_t n_parts = (N + min_rows - 1) // min_rows
    cdef Py_ssize_t by_memory = PARTIAL_BUDGET // per_partition_doubles
    # at most MAX_PARTS, the memory budget, and one chunk of rows each
    cdef Py_ssize_t most = min(min(<Py_ssize_t> MAX_PARTS, by_memory), N // CSM_CHUNK)
    if n_parts > 1:
        n_parts = (n_parts + PART_MULTIPLE - 1) // PART_MULTIPLE * PART_MULTIPLE
    if n_parts > most:
        n_parts = most
        if n_parts > PART_MULTIPLE:
            n_parts -= n_parts % PART_MULTIPLE
        elif n_parts > 2:
            n_parts -= n_parts % 2
    if n_parts < 1:
        n_parts = 1
    return n_parts


cdef inline void model_clear(Model* m) noexcept nogil:
    """Every pointer of m NULL (nothing allocated yet, or all freed)."""
    m.W = NULL
    m.bias = NULL
    m.WT = NULL
    m.TB = NULL
    m.Ws = NULL
    m.WB = NULL
    m.WBs = NULL
    m.WBs0 = NULL
    m.bias0 = NULL


cdef int model_from(Model* m, const floating* W, Py_ssize_t K, Py_ssize_t D,
                    Py_ssize_t sw0, Py_ssize_t sw1,         # element strides of W
                    const floating* b, bint transposed, double padding, bint label_loss) noexcept nogil:
    """Float64 copies of W (K x D) and b (zeros when NULL); with ``transposed``
    also W^T padded to ldz columns followed by b padded with ``padding``, else
    W's layout for short rows where they take one (``label_loss``: the
    layouts the label loss reads, see shifted_layout).

    Returns 0, -1 when memory is short, or 1 (copies made) when W or b holds
    NaN or inf: the parameters are small, so they are checked here, while
    non-finite X is detected from the results.
    """
    cdef Py_ssize_t k, i
    cdef Py_ssize_t broadcast_size
    cdef double check = 0.0
    if floating is double:
        broadcast_size = csm_broadcast_size(K, D)
    else:
        broadcast_size = csm_short_layout_size_s(K, D)
    m.K = K
    m.D = D
    m.ldz = csm_padded(K)
    model_clear(m)
    m.W = <double*> malloc((K * D + K + 1) * sizeof(double))
    if m.W == NULL:
        return -1
    if floating is float:
        m.Ws = <float*> malloc((K * D + 1) * sizeof(float))
        if m.Ws == NULL:
            free(m.W)
            m.W = NULL
            return -1
    m.bias = m.W + K * D
    if K * D > 0 and sw1 == 1 and sw0 == D:
        # Contiguous W (the common case): one vectorised pass copies and checks.
        if floating is double:
            check = csm_copy_check(W, K * D, m.W)
        else:
            check = csm_copy_check_f(W, K * D, m.W, m.Ws)
    else:
        if floating is float:
            for k in range(K):
                for i in range(D):
                    m.Ws[k * D + i] = W[k * sw0 + i * sw1]
        for k in range(K):
            for i in range(D):
                m.W[k * D + i] = W[k * sw0 + i * sw1]
                check += m.W[k * D + i] - m.W[k * D + i]   # NaN for NaN or inf
    for k in range(K):
        m.bias[k] = b[k] if b != NULL else 0.0
        check += m.bias[k] - m.bias[k]
    if transposed:
        m.WT = <double*> malloc(((D + 1) * m.ldz + 1) * sizeof(double))
        if m.WT == NULL:
            free(m.W)
            free(m.Ws)
            m.W = NULL
            m.Ws = NULL
            return -1
        for i in range(D):
            for k in range(m.ldz):
                m.WT[i * m.ldz + k] = m.W[k * D + i] if k < K else 0.0
        for k in range(m.ldz):
            m.WT[D * m.ldz + k] = m.bias[k] if k < K else padding
    elif broadcast_size > 0:
        # Short rows take a logits tile that reads W in its own layout, in
        # the dtype of X (that of W here): for float64 the broadcast tile
        # (the row tile with fewer classes than vector lanes), for float32
        # the row tile (the broadcast tile in builds without it).
        if floating is double:
            m.WB = <double*> malloc(broadcast_size * sizeof(double))
            if m.WB == NULL:
                model_free(m)
                return -1
            csm_broadcast_layout(m.W, D, K, D, m.WB, NULL)
        elif label_loss and shifted_layout_size(K, D) > 0:
            if shifted_layout(m) < 0:
                return -1
        else:
            m.WBs = <float*> malloc(broadcast_size * sizeof(float))
            if m.WBs == NULL:
                model_free(m)
                return -1
            csm_short_layout_s(m.W, D, K, D, m.WBs)
    return 0 if check == 0.0 else 1


cdef inline Py_ssize_t shifted_layout_size(Py_ssize_t K, Py_ssize_t D) noexcept nogil:
    return csm_short_layout_size_s(K - 1, D) if (CSM_LABEL_LOSS_S and K >= 2) else 0


cdef int shifted_layout(Model* m) noexcept nogil:
    """m.WBs0 and m.bias0 (see Model), for short float32 rows in the label
    loss, in place of W's own layout (m.WBs, which it never reads): the
    float32 label loss takes the logits relative to class 0 through them
    (csm_logits_rows_shifted_s: one class fewer in the row tile).  0, or -1
    when memory is short, the model then freed."""
    cdef Py_ssize_t K = m.K, D = m.D, k, i
    cdef double* differences
    m.WBs0 = <float*> malloc(shifted_layout_size(K, D) * sizeof(float))
    m.bias0 = <double*> malloc((K - 1) * (D + 1) * sizeof(double))
    if m.WBs0 == NULL or m.bias0 == NULL:
        model_free(m)
        return -1
    differences = m.bias0 + (K - 1)
    for k in range(1, K):
        m.bias0[k - 1] = m.bias[k] - m.bias[0]
        for i in range(D):
            differences[(k - 1) * D + i] = m.W[k * D + i] - m.W[i]
    csm_short_layout_s(differences, D, K - 1, D, m.WBs0)
    return 0


cdef int model_new(Model* m, const floating[:, :] W, const floating[::1] b, bint transposed,
                   double padding, bint label_loss) noexcept nogil:
    """:func:`model_from` for memoryviews (b may be None)."""
    cdef Py_ssize_t K = W.shape[0], D = W.shape[1]
    return model_from(m, &W[0, 0] if K * D > 0 else NULL, K, D,
                      W.strides[0] // <Py_ssize_t> sizeof(floating), W.strides[1] // <Py_ssize_t> sizeof(floating),
                      &b[0] if (b is not None and K > 0) else NULL, transposed, padding, label_loss)


cdef void model_free(Model* m) noexcept nogil:
    free(m.W)
    free(m.WT)
    free(m.TB)
    free(m.Ws)
    free(m.WB)
    free(m.WBs)
    free(m.WBs0)
    free(m.bias0)
    model_clear(m)


cdef int model_for_source(Model* m, Source* src, Py_ssize_t N, const floating[:, :] W,
                          const floating[::1] b, double padding, bint label_loss) noexcept nogil:
    """:func:`model_new` in the layout ``src`` wants.  For bit-packed rows it
    also chooses the group tables (sets ``src.group_bits``) and builds them.

    A table pays when it stays in L2 next to its histogram and the call has
    enough rows to amortise building it and zeroing and folding a histogram
    per partition (a few table sizes of work); byte groups halve the lookups
    and stores per row of nibble groups but are 16x bigger.  Calls of a few
    rows (training-loop batches) iterate over the set bits instead.
    """
    cdef int ok = model_new(m, W, b, transposed_model(src, W.shape[0]), padding, label_loss), gb
    cdef Py_ssize_t size
    if ok != 0 or src.kind != KIND_BITS:
        return ok
    src.group_bits = 0
    gb = 8
    while gb >= 4:
        size = csm_group_size(src.D, gb, m.K)
        if size <= GROUP_TABLE_MAX and N * m.K >= 4 * size:
            src.group_bits = gb
            break
        gb -= 4
    if src.group_bits:
        m.TB = <double*> malloc(size * sizeof(double))
        if m.TB == NULL:
            model_free(m)
            return -1
        src.n_classes = m.K
        csm_group_tables(m.WT, m.ldz, src.D, m.K, src.group_bits, m.WT + src.D * m.ldz, m.TB)
    return 0


cdef int run_partitions(
        int mode, const Source* src, Py_ssize_t N,
        const Model* model, const Model* direction,
        const int64_t* labels, const double* Y, Py_ssize_t sy0, Py_ssize_t sy1,
        const double* weights, Py_ssize_t n_threads,
        double* result) noexcept nogil:              # OUT [loss, G (K x D), gb (K)] summed
    """Run ``partition_work`` over a fixed partition of the rows and reduce in order."""
    cdef Py_ssize_t K = model.K, D = src.D
    cdef Py_ssize_t part_size = 1 + K * D + K
    cdef Py_ssize_t n_parts = n_partitions(src, N, part_size)
    cdef Py_ssize_t rows_per_part = (N + n_parts - 1) // n_parts
    cdef Py_ssize_t p, j, nt
    cdef double* partials
    cdef int* statuses
    cdef int status = STATUS_OK
    cdef double acc
    cdef Scratch* scratch = NULL

    # Whole chunks per partition, so chunk boundaries are fixed as well.
    rows_per_part = max(1, (rows_per_part + CSM_CHUNK - 1) // CSM_CHUNK * CSM_CHUNK)
    n_parts = max(1, (N + rows_per_part - 1) // rows_per_part)
    nt = min(n_threads, n_parts)

    if n_parts == 1:
        # Small inputs: one partition, written straight into the result, no team.
        scratch = scratch_new(src, model.ldz)
        if scratch == NULL:
            return STATUS_NO_MEMORY
        status = partition_work(mode, src, 0, N, model, direction, labels, Y, sy0, sy1, weights,
                                scratch, result)
        scratch_free(scratch)
        return status

    partials = <double*> malloc(n_parts * part_size * sizeof(double))
    statuses = <int*> malloc(n_parts * sizeof(int))
    if partials == NULL or statuses == NULL:
        free(partials)
        free(statuses)
        return STATUS_NO_MEMORY
    if nt <= 1:
        scratch = scratch_new(src, model.ldz)
        if scratch == NULL:
            status = STATUS_NO_MEMORY
        else:
            for p in range(n_parts):
                statuses[p] = partition_work(
                    mode, src, p * rows_per_part, min(N, (p + 1) * rows_per_part), model, direction,
                    labels, Y, sy0, sy1, weights, scratch, partials + p * part_size)
            scratch_free(scratch)
    else:
        with parallel(num_threads=nt):
            # Per-thread scratch (private: assigned in the block), first
            # touched by the thread that uses it.
            scratch = scratch_new(src, model.ldz)
            for p in prange(n_parts, schedule="dynamic"):
                if scratch == NULL:
                    statuses[p] = STATUS_NO_MEMORY
                else:
                    statuses[p] = partition_work(
                        mode, src, p * rows_per_part, min(N, (p + 1) * rows_per_part), model,
                        direction, labels, Y, sy0, sy1, weights, scratch, partials + p * part_size)
            scratch_free(scratch)
    if not (status & STATUS_NO_MEMORY):
        for p in range(n_parts):
            status |= statuses[p]
        # Fixed-order reduction over partitions (the loss slot is unused in MODE_HESSIAN).
        for j in range(part_size if mode != MODE_LOSS else 1):
            acc = 0.0
            for p in range(n_parts):
                acc += partials[p * part_size + j]
            result[j] = acc
    free(partials)
    free(statuses)
    return status


cdef Py_ssize_t write_scaled(
        const double* sums, Py_ssize_t K, Py_ssize_t D, double scale, double l2,
        const double* P,                        # IN  the parameter penalised by l2 (W or V), K x D
        floating[:, ::1] out_W, floating[::1] out_b) noexcept nogil:
    """out_W = scale * G + l2 * P, out_b = scale * gb; returns the count of non-finite values."""
    cdef Py_ssize_t k, n_nonfinite = 0
    if K * D > 0:
        # out_W is C-contiguous (the wrappers check it)
        if floating is double:
            n_nonfinite = csm_scale_add(sums + 1, P, K * D, scale, l2, &out_W[0, 0])
        else:
            n_nonfinite = csm_scale_add_f(sums + 1, P, K * D, scale, l2, &out_W[0, 0])
    if out_b is not None:
        for k in range(K):
            out_b[k] = <floating> (scale * sums[1 + K * D + k])
            if not isfinite(out_b[k]):
                n_nonfinite += 1
    return n_nonfinite


cdef inline Source new_source(int kind, const void* data, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t D) noexcept nogil:
    """A Source with every field set: those of other kinds zero or NULL."""
    cdef Source src
    src.kind = kind
    src.data = data
    src.s0 = s0
    src.s1 = s1
    src.D = D
    src.group_bits = 0
    src.n_classes = 0
    src.indices = NULL
    src.indptr = NULL
    return src


cdef Source dense_source(const floating[:, :] X) noexcept:
    # The wrappers guarantee strides are multiples of the item size.
    return new_source(KIND_F64 if floating is double else KIND_F32,
                      &X[0, 0] if (X.shape[0] > 0 and X.shape[1] > 0) else NULL,
                      X.strides[0] // <Py_ssize_t> sizeof(floating), X.strides[1] // <Py_ssize_t> sizeof(floating),
                      X.shape[1])


cdef Source bytes_source(const uint8_t[:, :] X, bint float32) noexcept:
    """uint8 rows, widened per chunk to float32 (float32 W) or float64."""
    return new_source(KIND_U8_F32 if float32 else KIND_U8,
                      &X[0, 0] if (X.shape[0] > 0 and X.shape[1] > 0) else NULL,
                      X.strides[0], X.strides[1], X.shape[1])


cdef Source csr_source(const double[::1] values, const int64_t[::1] indices,
                       const int64_t[::1] indptr, Py_ssize_t n_features) noexcept:
    cdef Source src = new_source(KIND_CSR, &values[0] if values.shape[0] > 0 else NULL, 0, 1, n_features)
    src.indices = &indices[0] if indices.shape[0] > 0 else NULL
    src.indptr = &indptr[0]
    return src


cdef Source bits_source(const uint64_t[:, ::1] words, Py_ssize_t n_features) noexcept:
    return new_source(KIND_BITS, &words[0, 0] if (words.shape[0] > 0 and words.shape[1] > 0) else NULL,
                      words.shape[1], 1, n_features)


# ---------------------------------------------------------------------------
# (b) def loops
# ---------------------------------------------------------------------------

cdef object loss_gradient_core(
        Source* src, Py_ssize_t N,
        const floating[:, :] W, const floating[::1] b,
        const int64_t[::1] labels, const double[:, :] Y, const double[::1] weights,
        double scale, double l2,
        floating[:, ::1] grad_W_out, floating[::1] grad_b_out, int n_threads):
    cdef Py_ssize_t D = W.shape[1], K = W.shape[0], k, i
    cdef Py_ssize_t sy0 = 0, sy1 = 0
    cdef int mode = MODE_LOSS_GRADIENT if grad_W_out is not None else MODE_LOSS
    cdef const int64_t* labels_ptr = NULL
    cdef const double* Y_ptr = NULL
    cdef const double* weights_ptr = NULL
    cdef double* sums = NULL
    cdef int status = STATUS_OK
    cdef double sum_sq_W = 0.0, loss_sum = 0.0
    cdef Py_ssize_t n_nonfinite = 0
    cdef Model model
    cdef int ok_model

    if labels is not None and N > 0:
        labels_ptr = &labels[0]
    if Y is not None:
        if N > 0:
            Y_ptr = &Y[0, 0]
        sy0 = Y.strides[0] // <Py_ssize_t> sizeof(double)
        sy1 = Y.strides[1] // <Py_ssize_t> sizeof(double)
    if weights is not None and N > 0:
        weights_ptr = &weights[0]
    with nogil:
        sums = <double*> malloc((1 + K * D + K) * sizeof(double))
        ok_model = model_for_source(&model, src, N, W, b, -INFINITY, labels_ptr != NULL)
        if ok_model < 0 or sums == NULL:
            status = STATUS_NO_MEMORY
        elif ok_model > 0:
            status = STATUS_NONFINITE
        else:
            memset(sums, 0, (1 + K * D + K) * sizeof(double))
            if N > 0:
                status = run_partitions(mode, src, N, &model, NULL, labels_ptr, Y_ptr, sy0, sy1,
                                        weights_ptr, n_threads, sums)
            sum_sq_W = csm_sum_squares(model.W, K * D)
            if mode == MODE_LOSS_GRADIENT and not (status & (STATUS_NO_MEMORY | STATUS_BAD_LABEL)):
                n_nonfinite = write_scaled(sums, K, D, scale, l2, model.W, grad_W_out, grad_b_out)
            loss_sum = sums[0]
        if ok_model >= 0:
            model_free(&model)
        free(sums)
    return loss_sum, status, n_nonfinite, sum_sq_W


def loss_gradient(
        const floating[:, :] X,            # IN  (N, D)
        const floating[:, :] W,            # IN  (K, D)
        const floating[::1] b,             # IN  (K,) or None
        const int64_t[::1] labels,         # IN  (N,) or None
        const double[:, :] Y,              # IN  (N, K) or None
        const double[::1] weights,         # IN  (N,) or None
        double scale, double l2,
        floating[:, ::1] grad_W_out,       # OUT (K, D) or None (loss only)
        floating[::1] grad_b_out,          # OUT (K,) or None
        int n_threads):
    """Fused loss + gradient over the rows of dense X.

    Returns ``(loss_sum, status, n_nonfinite_gradient, sum_sq_W)``, where
    ``loss_sum`` = sum_n w_n sum_k y_nk (lse_n - z_nk) >= 0 and, when
    ``grad_W_out`` is given, ``grad_W_out = scale * sum_n r_n x_n^T + l2 * W`` and
    ``grad_b_out = scale * sum_n r_n``.
    """
    cdef Source src = dense_source(X)
    return loss_gradient_core(&src, X.shape[0], W, b, labels, Y, weights, scale, l2,
                              grad_W_out, grad_b_out, n_threads)


def loss_gradient_u8(
        const uint8_t[:, :] X, const floating[:, :] W, const floating[::1] b,
        const int64_t[::1] labels, const double[:, :] Y, const double[::1] weights,
        double scale, double l2, floating[:, ::1] grad_W_out, floating[::1] grad_b_out,
        int n_threads):
    """As :func:`loss_gradient`, for uint8 (or bool viewed as uint8) rows."""
    cdef Source src = bytes_source(X, floating is float)
    return loss_gradient_core(&src, X.shape[0], W, b, labels, Y, weights, scale, l2,
                              grad_W_out, grad_b_out, n_threads)


def loss_gradient_csr(
        const double[::1] values, const int64_t[::1] indices, const int64_t[::1] indptr,
        Py_ssize_t n_features, const floating[:, :] W, const floating[::1] b,
        const int64_t[::1] labels, const double[:, :] Y, const double[::1] weights,
        double scale, double l2, floating[:, ::1] grad_W_out, floating[::1] grad_b_out,
        int n_threads):
    """As :func:`loss_gradient`, for sparse CSR rows."""
    cdef Source src = csr_source(values, indices, indptr, n_features)
    return loss_gradient_core(&src, indptr.shape[0] - 1, W, b, labels, Y, weights, scale, l2,
                              grad_W_out, grad_b_out, n_threads)


def loss_gradient_bits(
        const uint64_t[:, ::1] words,      # IN  (N, n_words) packed rows
        Py_ssize_t n_features,
        const floating[:, :] W,            # IN  (K, D)
        const floating[::1] b,             # IN  (K,) or None
        const int64_t[::1] labels,         # IN  (N,) or None
        const double[:, :] Y,              # IN  (N, K) or None
        const double[::1] weights,         # IN  (N,) or None
        double scale, double l2,
        floating[:, ::1] grad_W_out,       # OUT (K, D) or None (loss only)
        floating[::1] grad_b_out,          # OUT (K,) or None
        int n_threads):
    """As :func:`loss_gradient`, for bit-packed binary rows."""
    cdef Source src = bits_source(words, n_features)
    return loss_gradient_core(&src, words.shape[0], W, b, labels, Y, weights, scale, l2,
                              grad_W_out, grad_b_out, n_threads)


cdef object hessian_core(
        Source* src, Py_ssize_t N,
        const floating[:, :] W, const floating[::1] b,
        const floating[:, :] V, const floating[::1] Vb,
        const double[::1] weights, double scale, double l2,
        floating[:, ::1] out_W, floating[::1] out_b, int n_threads):
    cdef Py_ssize_t D = W.shape[1], K = W.shape[0]
    cdef const double* weights_ptr = NULL
    cdef double* sums = NULL
    cdef int status = STATUS_OK
    cdef Py_ssize_t n_nonfinite = 0
    cdef Model model, direction
    cdef int ok_model, ok_direction

    if weights is not None and N > 0:
        weights_ptr = &weights[0]
    with nogil:
        sums = <double*> malloc((1 + K * D + K) * sizeof(double))
        ok_model = model_for_source(&model, src, N, W, b, -INFINITY, False)
        ok_direction = model_for_source(&direction, src, N, V, Vb, 0.0, False)
        if ok_model < 0 or ok_direction < 0 or sums == NULL:
            status = STATUS_NO_MEMORY
        elif ok_model > 0 or ok_direction > 0:
            status = STATUS_NONFINITE
        else:
            memset(sums, 0, (1 + K * D + K) * sizeof(double))
            if N > 0:
                status = run_partitions(MODE_HESSIAN, src, N, &model, &direction, NULL, NULL, 0, 0,
                                        weights_ptr, n_threads, sums)
            if not (status & STATUS_NO_MEMORY):
                n_nonfinite = write_scaled(sums, K, D, scale, l2, direction.W, out_W, out_b)
        if ok_model >= 0:
            model_free(&model)
        if ok_direction >= 0:
            model_free(&direction)
        free(sums)
    return status, n_nonfinite


def hessian_product(
        const floating[:, :] X,            # IN  (N, D)
        const floating[:, :] W,            # IN  (K, D)
        const floating[::1] b,             # IN  (K,) or None
        const floating[:, :] V,            # IN  (K, D) direction for W
        const floating[::1] Vb,            # IN  (K,) direction for b, or None
        const double[::1] weights,         # IN  (N,) row weights (w_n times target row sums) or None
        double scale, double l2,
        floating[:, ::1] out_W,            # OUT (K, D)
        floating[::1] out_b,               # OUT (K,) or None
        int n_threads):
    """Hessian-vector product of the loss in direction (V, Vb).

    ``out_W = scale * sum_n h_n x_n^T + l2 * V``, ``out_b = scale * sum_n h_n``
    with ``h_n = w_n (diag(p_n) - p_n p_n^T)(V x_n + Vb)``.  Returns
    ``(status, n_nonfinite)``.
    """
    cdef Source src = dense_source(X)
    return hessian_core(&src, X.shape[0], W, b, V, Vb, weights, scale, l2, out_W, out_b, n_threads)


def hessian_product_u8(
        const uint8_t[:, :] X,
        const floating[:, :] W, const floating[::1] b,
        const floating[:, :] V, const floating[::1] Vb,
        const double[::1] weights, double scale, double l2,
        floating[:, ::1] out_W, floating[::1] out_b, int n_threads):
    """As :func:`hessian_product`, for uint8 (or bool viewed as uint8) rows."""
    cdef Source src = bytes_source(X, floating is float)
    return hessian_core(&src, X.shape[0], W, b, V, Vb, weights, scale, l2, out_W, out_b, n_threads)


def hessian_product_csr(
        const double[::1] values, const int64_t[::1] indices, const int64_t[::1] indptr,
        Py_ssize_t n_features,
        const floating[:, :] W, const floating[::1] b,
        const floating[:, :] V, const floating[::1] Vb,
        const double[::1] weights, double scale, double l2,
        floating[:, ::1] out_W, floating[::1] out_b, int n_threads):
    """As :func:`hessian_product`, for sparse CSR rows."""
    cdef Source src = csr_source(values, indices, indptr, n_features)
    return hessian_core(&src, indptr.shape[0] - 1, W, b, V, Vb, weights, scale, l2, out_W, out_b,
                        n_threads)


def hessian_product_bits(
        const uint64_t[:, ::1] words, Py_ssize_t n_features,
        const floating[:, :] W, const floating[::1] b,
        const floating[:, :] V, const floating[::1] Vb,
        const double[::1] weights, double scale, double l2,
        floating[:, ::1] out_W, floating[::1] out_b, int n_threads):
    """As :func:`hessian_product`, for bit-packed binary rows."""
    cdef Source src = bits_source(words, n_features)
    return hessian_core(&src, words.shape[0], W, b, V, Vb, weights, scale, l2, out_W, out_b, n_threads)


cdef object predict_core(
        Source* src, Py_ssize_t N,
        const floating[:, :] W, const floating[::1] b,
        floating[:, ::1] proba_out, int64_t[::1] labels_out, int n_threads):
    cdef floating* P_ptr = NULL
    cdef int64_t* L_ptr = NULL
    cdef Py_ssize_t n_bad = 0
    cdef int status = STATUS_OK
    cdef Model model
    cdef int ok_model

    if proba_out is not None and N > 0:
        P_ptr = &proba_out[0, 0]
    if labels_out is not None and N > 0:
        L_ptr = &labels_out[0]
    with nogil:
        ok_model = model_for_source(&model, src, N, W, b, -INFINITY, False)
        if ok_model < 0:
            status = STATUS_NO_MEMORY
        elif ok_model > 0:
            status = STATUS_NONFINITE
            model_free(&model)
        else:
            n_bad = predict_all_rows(src, N, &model, P_ptr, L_ptr, n_threads)
            model_free(&model)
    if n_bad > N:
        status = STATUS_NO_MEMORY
    return status, n_bad


cdef Py_ssize_t predict_all_rows(
        const Source* src, Py_ssize_t N, const Model* model,
        floating* P, int64_t* L, int n_threads) noexcept nogil:
    """Probabilities (P) and/or argmax classes (L) of all rows (see
    :func:`predict_chunk`), chunk by chunk on up to n_threads threads; returns
    the count of non-finite rows, or N + 1 when scratch memory could not be had."""
    cdef Py_ssize_t n_chunks = (N + CSM_CHUNK - 1) // CSM_CHUNK
    cdef Py_ssize_t nt = min(<Py_ssize_t> n_threads, n_chunks)
    cdef Py_ssize_t c, n_bad = 0
    cdef Scratch* scratch = NULL
    if N * (src.D + model.K) < MIN_ELEMENTS_PARALLEL:
        nt = 1
    if nt <= 1:
        scratch = scratch_new(src, model.ldz)
        if scratch == NULL:
            return N + 1
        for c in range(n_chunks):
            n_bad += predict_chunk(src, c * CSM_CHUNK, min(<Py_ssize_t> CSM_CHUNK, N - c * CSM_CHUNK),
                                   model, scratch, P, L, N)
        scratch_free(scratch)
        return n_bad
    with parallel(num_threads=nt):
        scratch = scratch_new(src, model.ldz)
        for c in prange(n_chunks, schedule="static"):
            if scratch == NULL:
                n_bad += N + 1   # impossible count: signals no memory
            else:
                n_bad += predict_chunk(src, c * CSM_CHUNK, min(<Py_ssize_t> CSM_CHUNK, N - c * CSM_CHUNK),
                                       model, scratch, P, L, N)
        scratch_free(scratch)
    return min(n_bad, N + 1)


def predict_rows(
        const floating[:, :] X,            # IN  (N, D)
        const floating[:, :] W,            # IN  (K, D)
        const floating[::1] b,             # IN  (K,) or None
        floating[:, ::1] proba_out,        # OUT (N, K) probabilities, or None
        int64_t[::1] labels_out,           # OUT (N,) argmax, or None
        int n_threads):
    """Probabilities and/or argmax classes of every row; returns (status, n_bad_rows)."""
    cdef Source src = dense_source(X)
    return predict_core(&src, X.shape[0], W, b, proba_out, labels_out, n_threads)


def predict_rows_u8(
        const uint8_t[:, :] X,
        const floating[:, :] W, const floating[::1] b,
        floating[:, ::1] proba_out, int64_t[::1] labels_out, int n_threads):
    """As :func:`predict_rows`, for uint8 (or bool viewed as uint8) rows."""
    cdef Source src = bytes_source(X, floating is float)
    return predict_core(&src, X.shape[0], W, b, proba_out, labels_out, n_threads)


def predict_rows_csr(
        const double[::1] values, const int64_t[::1] indices, const int64_t[::1] indptr,
        Py_ssize_t n_features,
        const floating[:, :] W, const floating[::1] b,
        floating[:, ::1] proba_out, int64_t[::1] labels_out, int n_threads):
    """As :func:`predict_rows`, for sparse CSR rows."""
    cdef Source src = csr_source(values, indices, indptr, n_features)
    return predict_core(&src, indptr.shape[0] - 1, W, b, proba_out, labels_out, n_threads)


def predict_rows_bits(
        const uint64_t[:, ::1] words, Py_ssize_t n_features,
        const floating[:, :] W, const floating[::1] b,
        floating[:, ::1] proba_out, int64_t[::1] labels_out, int n_threads):
    """As :func:`predict_rows`, for bit-packed binary rows."""
    cdef Source src = bits_source(words, n_features)
    return predict_core(&src, words.shape[0], W, b, proba_out, labels_out, n_threads)


cdef Py_ssize_t predict_chunk(
        const Source* src, Py_ssize_t first_row, Py_ssize_t n_rows,
        const Model* model, Scratch* scratch,
        floating* P, int64_t* L,              # OUT (N, K) / (N,) or NULL
        Py_ssize_t n_total) noexcept nogil:
    """Probabilities (P) or argmax (L) of one chunk of rows; returns the count of non-finite rows."""
    cdef Py_ssize_t r, n_bad = 0
    cdef Py_ssize_t K = model.K
    cdef Py_ssize_t n_padded = (n_rows + CSM_VL - 1) // CSM_VL * CSM_VL
    cdef double* Z = scratch.Z
    cdef double* row_sum = scratch.row_sum
    cdef double* check = scratch.row_check
    source_chunk(src, first_row, n_rows, scratch)
    source_logits(src, scratch, n_rows, model, Z)
    if L != NULL:
        csm_cm_argmax(Z, CSM_CHUNK, n_padded, K, row_sum, check)
        for r in range(n_rows):
            L[first_row + r] = <int64_t> row_sum[r]
            if check[r] != 0.0:
                n_bad += 1
        return n_bad
    # the rows of P a few chunks on, for writing
    cdef csm_ahead ahead = chunks_ahead(NULL, P, first_row, K * <Py_ssize_t> sizeof(floating), n_total)
    if csm_cm_softmax(Z, CSM_CHUNK, n_padded, K, row_sum, &ahead) != 0.0:
        n_bad = count_nonfinite(row_sum, n_rows)
    store_rows(Z, n_rows, K, P + first_row * K)
    return n_bad


def rowwise(
        const floating[:, :] Z,            # IN  (N, K)
        floating[:, ::1] out,              # OUT (N, K) for softmax / log_softmax
        floating[::1] out_lse,             # OUT (N,) for logsumexp
        int mode,                          # 0 softmax, 1 log_softmax, 2 logsumexp
        int n_threads):
    """Row-wise softmax, log_softmax or logsumexp of Z; returns (status, n_bad_rows)."""
    cdef Py_ssize_t N = Z.shape[0], K = Z.shape[1]
    cdef const floating* Z_ptr = &Z[0, 0] if (N > 0 and K > 0) else NULL
    cdef floating* out_ptr = NULL
    cdef floating* lse_ptr = NULL
    cdef Py_ssize_t n_bad
    if out is not None and N > 0:
        out_ptr = &out[0, 0]
    if out_lse is not None and N > 0:
        lse_ptr = &out_lse[0]
    with nogil:
        n_bad = rowwise_rows(Z_ptr, N, K, Z.strides[0] // <Py_ssize_t> sizeof(floating),
                             Z.strides[1] // <Py_ssize_t> sizeof(floating), mode, out_ptr, lse_ptr, n_threads)
    if n_bad > N:
        return STATUS_NO_MEMORY, 0
    return STATUS_OK, n_bad


cdef Py_ssize_t rowwise_rows(
        const floating* Z, Py_ssize_t N, Py_ssize_t K, Py_ssize_t sz0, Py_ssize_t sz1, int mode,
        floating* out, floating* out_lse, int n_threads) noexcept nogil:
    """All rows of a row-wise function (see :func:`rowwise_chunk`), chunk by
    chunk on up to n_threads threads; returns the count of bad rows, or
    N + 1 when scratch memory could not be had."""
    cdef Py_ssize_t n_chunks = (N + CSM_CHUNK - 1) // CSM_CHUNK
    cdef Py_ssize_t nt = min(<Py_ssize_t> n_threads, n_chunks)
    cdef Py_ssize_t c, n_bad = 0
    cdef Scratch* scratch = NULL
    cdef Source shape_only
    if N * K < MIN_ELEMENTS_PARALLEL:
        nt = 1
    shape_only.kind = KIND_F64      # scratch for rows of Z only: no pack buffer
    shape_only.D = 0
    shape_only.group_bits = 0
    if nt <= 1:
        scratch = scratch_new(&shape_only, csm_padded(K))
        if scratch == NULL:
            return N + 1
        for c in range(n_chunks):
            n_bad += rowwise_chunk(Z, sz0, sz1, c * CSM_CHUNK, min(<Py_ssize_t> CSM_CHUNK, N - c * CSM_CHUNK),
                                   K, mode, scratch, out, out_lse, N)
        scratch_free(scratch)
        return n_bad
    with parallel(num_threads=nt):
        scratch = scratch_new(&shape_only, csm_padded(K))
        for c in prange(n_chunks, schedule="static"):
            if scratch == NULL:
                n_bad += N + 1   # impossible count: signals no memory
            else:
                n_bad += rowwise_chunk(Z, sz0, sz1, c * CSM_CHUNK, min(<Py_ssize_t> CSM_CHUNK, N - c * CSM_CHUNK),
                                       K, mode, scratch, out, out_lse, N)
        scratch_free(scratch)
    return min(n_bad, N + 1)


cdef Py_ssize_t rowwise_chunk(
        const floating* Z, Py_ssize_t sz0, Py_ssize_t sz1, Py_ssize_t first_row, Py_ssize_t n_rows,
        Py_ssize_t K, int mode, Scratch* scratch,
        floating* out, floating* out_lse, Py_ssize_t n_total) noexcept nogil:
    """One chunk of rows of softmax (mode 0) / log_softmax (1) / logsumexp (2);
    returns the count of bad rows (a non-finite maximum or sum).

    The chunk is worked on class-major (E[k * CSM_CHUNK + r]), CSM_VL rows per
    vector: no padding of short rows, no horizontal reductions.
    """
    cdef Py_ssize_t r, n_bad = 0
    cdef Py_ssize_t n_padded = (n_rows + CSM_VL - 1) // CSM_VL * CSM_VL
    cdef double* E = scratch.Z
    cdef double* row_max = scratch.row_a
    cdef double* row_sum = scratch.row_sum
    # Z's rows are prefetched only when contiguous (else a row is no span).
    cdef csm_ahead ahead = chunks_ahead(Z if (sz1 == 1 and sz0 == K) else NULL,
                                        out if mode != 2 else NULL,
                                        first_row, K * <Py_ssize_t> sizeof(floating), n_total)
    if sz1 == 1:
        if floating is double:
            csm_rows_to_classes_d(Z + first_row * sz0, sz0, n_rows, K, E, CSM_CHUNK)
        else:
            csm_rows_to_classes_f(Z + first_row * sz0, sz0, n_rows, K, E, CSM_CHUNK)
        zero_padding_rows(E, CSM_CHUNK, K, n_rows)
    else:
        load_class_major(Z + first_row * sz0, sz0, sz1, n_rows, K, E)
    if mode == 0:
        # row_sum is NaN for rows with a non-finite maximum
        if csm_cm_softmax(E, CSM_CHUNK, n_padded, K, row_sum, &ahead) != 0.0:
            n_bad = count_nonfinite(row_sum, n_rows)
        store_rows(E, n_rows, K, out + first_row * K)
        return n_bad
    csm_cm_shifted_sums(E, CSM_CHUNK, n_padded, K, mode == 1, row_max, row_sum, &ahead)
    if csm_cm_log_sums(row_max, row_sum, n_padded, mode == 2) != 0.0:
        # some row's maximum or sum was not finite (its value is not, either)
        n_bad = count_nonfinite(row_sum, n_rows)
    if mode == 1:
        csm_cm_subtract_rows(E, CSM_CHUNK, n_padded, K, row_sum)
        store_rows(E, n_rows, K, out + first_row * K)
    else:
        for r in range(n_rows):
            out_lse[first_row + r] = <floating> row_sum[r]
    return n_bad


cdef inline csm_ahead chunks_ahead(const void* read, void* write, Py_ssize_t first_row,
                                   Py_ssize_t row_bytes, Py_ssize_t n_total) noexcept nogil:
    """Prefetch targets for the chunk at first_row (see csm_ahead): the rows
    CSM_AHEAD_CHUNKS chunks on in the arrays whose contiguous rows of row_bytes
    start at read and write (NULL: none), while that chunk lies inside them."""
    cdef csm_ahead ahead
    cdef Py_ssize_t later = first_row + CSM_AHEAD_CHUNKS * CSM_CHUNK
    ahead.read = NULL
    ahead.write = NULL
    ahead.group_bytes = CSM_VL * row_bytes
    if later + CSM_CHUNK <= n_total:
        if read != NULL:
            ahead.read = <const char*> read + later * row_bytes
        if write != NULL:
            ahead.write = <char*> write + later * row_bytes
    return ahead


cdef inline void store_rows(const double* E, Py_ssize_t n_rows, Py_ssize_t K, floating* out) noexcept nogil:
    """out[r * K + k] = E[k * CSM_CHUNK + r]: a class-major chunk to C-contiguous rows."""
    if floating is double:
        csm_classes_to_rows_d(E, CSM_CHUNK, n_rows, K, out, K)
    else:
        csm_classes_to_rows_f(E, CSM_CHUNK, n_rows, K, out, K)


cdef inline Py_ssize_t count_nonfinite(const double* v, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, count = 0
    for i in range(n):
        if not isfinite(v[i]):
            count += 1
    return count


# ---------------------------------------------------------------------------
# Mini-batch SGD: a whole epoch in compiled code
# ---------------------------------------------------------------------------

cdef enum:
    SCHEDULE_CONSTANT = 0      # eta = eta0
    SCHEDULE_INVSCALING = 1    # eta = eta0 / (1 + t)^power_t
    SCHEDULE_OPTIMAL = 2       # eta = 1 / (l2 * (t0 + t)), Bottou's heuristic t0

# An epoch over a large X can run for seconds without the GIL, where Ctrl-C
# would wait for its end.  It takes the GIL to look for pending signals after
# about this many multiply-adds (a few milliseconds): rarely enough that the
# GIL hand-over costs nothing measurable, often enough to stop promptly.
cdef enum:
    SIGNAL_CHECK_WORK = 1 << 24


cdef void gather_rows(const Source* src, const int64_t* order, Py_ssize_t n_rows,
                      void* dst) noexcept nogil:
    """Copy rows order[0:n_rows] of X into dst, contiguous (D elements or words per row)."""
    cdef Py_ssize_t j, i, row
    cdef Py_ssize_t D = src.D, n_words = (src.D + 63) // 64
    for j in range(n_rows):
        row = order[j]
        if src.kind == KIND_BITS:
            memcpy((<uint64_t*> dst) + j * n_words, (<const uint64_t*> src.data) + row * src.s0,
                   n_words * sizeof(uint64_t))
        elif src.kind == KIND_F64:
            for i in range(D):
                (<double*> dst)[j * D + i] = (<const double*> src.data)[row * src.s0 + i * src.s1]
        elif src.kind == KIND_F32:
            for i in range(D):
                (<float*> dst)[j * D + i] = (<const float*> src.data)[row * src.s0 + i * src.s1]
        else:
            for i in range(D):
                (<uint8_t*> dst)[j * D + i] = (<const uint8_t*> src.data)[row * src.s0 + i * src.s1]


cdef void prefetch_rows(const Source* src, const int64_t* order, Py_ssize_t n_rows) noexcept nogil:
    """Ask for rows order[0:n_rows] of X ahead of :func:`gather_rows`: the rows
    of a shuffled epoch are random accesses, each a trip to memory, which
    otherwise cost more than the mini-batch's arithmetic."""
    cdef Py_ssize_t itemsize, row_bytes
    if src.kind == KIND_BITS:
        itemsize = 8
        row_bytes = ((src.D + 63) // 64) * 8
    else:
        if src.s1 != 1:
            return   # strided features: the row is spread out; not worth it
        itemsize = element_size(src)
        row_bytes = src.D * itemsize
    csm_prefetch_gather(<const char*> src.data, order, n_rows, src.s0 * itemsize, row_bytes)


cdef void refresh_transposed(Model* m) noexcept nogil:
    cdef Py_ssize_t i, k
    for i in range(m.D):
        for k in range(m.K):
            m.WT[i * m.ldz + k] = m.W[k * m.D + i]
    for k in range(m.K):
        m.WT[m.D * m.ldz + k] = m.bias[k]


cdef object sgd_epoch_core(
        Source* src, Py_ssize_t N,
        const int64_t[::1] order,          # IN  the epoch's order of the rows
        const int64_t[::1] labels,         # IN  (N,)
        const double[::1] weights,         # IN  (N,) or None
        double[:, ::1] W,                  # INOUT (K, D) float64
        double[::1] b,                     # INOUT (K,) or None
        double[:, ::1] W_velocity,         # INOUT (K, D) momentum buffers
        double[::1] b_velocity,            # INOUT (K,) or None
        Py_ssize_t batch_size, double l2, double weight_scale,
        int schedule, double eta0, double power_t, double t0, double momentum,
        double step):                      # IN  steps done before this epoch
    cdef Py_ssize_t K = W.shape[0], D = W.shape[1], ldz = csm_padded(K)
    cdef Py_ssize_t n_words = (D + 63) // 64
    cdef Py_ssize_t n_order = order.shape[0], start, n_rows, j, k, i
    cdef Py_ssize_t itemsize = element_size(src)
    cdef Source batch
    cdef Model model
    cdef Scratch* scratch = NULL
    cdef void* rows = NULL
    cdef int64_t* batch_labels = NULL
    cdef int64_t* identity = NULL
    cdef double* batch_weights = NULL
    cdef double* partial = NULL
    cdef double* zero_bias = NULL
    cdef int status = STATUS_OK
    cdef double loss_sum = 0.0, weight_sum = 0.0, eta, scale, g, batch_weight
    cdef Py_ssize_t n_steps = 0, work = 0
    cdef Py_ssize_t ahead
    cdef bint interrupted = False
    cdef object pending = None             # the exception a signal handler raised

    batch.kind = src.kind
    batch.s0 = n_words if src.kind == KIND_BITS else D
    batch.s1 = 1
    batch.D = D
    batch.group_bits = 0   # tables do not pay for a batch of rows
    with nogil:
        rows = malloc(batch_size * (n_words * 8 if src.kind == KIND_BITS else D * itemsize) + 64)
        batch_labels = <int64_t*> malloc(batch_size * sizeof(int64_t))
        batch_weights = <double*> malloc(batch_size * sizeof(double))
        partial = <double*> malloc((1 + K * D + K) * sizeof(double))
        zero_bias = <double*> calloc(K + 1, sizeof(double))
        model_clear(&model)
        model.K = K
        model.D = D
        model.ldz = ldz
        model.W = &W[0, 0]
        model.bias = &b[0] if b is not None else zero_bias
        # W changes every batch: only the set-bit kernels, which need it,
        # get W transposed (refreshed per batch); logits_by_features would
        # pay a transpose of W per batch for a few rows (measured, 32-row
        # batches of 1000 features x 100 classes: epochs 15% slower).
        model.WT = <double*> malloc(((D + 1) * ldz + 1) * sizeof(double)) if src.kind == KIND_BITS else NULL
        # no group tables (set-bit kernels: they do not pay for a batch) and no
        # short-row layouts (W changes every batch: the pair tiles read it as it is)
        model.Ws = <float*> malloc((K * D + 1) * sizeof(float)) if src.kind == KIND_F32 else NULL
        scratch = scratch_new(&batch, ldz)
        if (rows == NULL or batch_labels == NULL or batch_weights == NULL or partial == NULL
                or zero_bias == NULL or scratch == NULL or (src.kind == KIND_BITS and model.WT == NULL)
                or (src.kind == KIND_F32 and model.Ws == NULL)):
            status = STATUS_NO_MEMORY
        else:
            if model.WT != NULL:
                for i in range((D + 1) * ldz):
                    model.WT[i] = 0.0
                for k in range(K, ldz):
                    model.WT[D * ldz + k] = -INFINITY
            # whole cache lines per batch (row loads straddle fewer lines)
            batch.data = <void*> ((<size_t> rows + 63) & ~(<size_t> 63))
            start = 0
            while start < n_order:
                n_rows = min(batch_size, n_order - start)
                gather_rows(src, &order[start], n_rows, <void*> batch.data)
                # The next batch's rows arrive while this one computes.
                ahead = start + n_rows
                if ahead < n_order:
                    prefetch_rows(src, &order[ahead], min(batch_size, n_order - ahead))
                batch_weight = 0.0
                for j in range(n_rows):
                    batch_labels[j] = labels[order[start + j]]
                    batch_weights[j] = weights[order[start + j]] if weights is not None else 1.0
                    batch_weight += batch_weights[j]
                if model.WT != NULL:
                    refresh_transposed(&model)
                elif src.kind == KIND_F32:
                    for i in range(K * D):
                        model.Ws[i] = <float> model.W[i]
                status |= partition_work(MODE_LOSS_GRADIENT, &batch, 0, n_rows, &model, NULL,
                                         batch_labels, NULL, 0, 0, batch_weights, scratch, partial)
                if status != STATUS_OK or not isfinite(partial[0]):
                    status |= STATUS_NONFINITE if status == STATUS_OK else 0
                    break
                loss_sum += partial[0]
                weight_sum += batch_weight
                # Unbiased estimate of the gradient of the mean objective.
                scale = weight_scale / n_rows
                if schedule == SCHEDULE_CONSTANT:
                    eta = eta0
                elif schedule == SCHEDULE_INVSCALING:
                    eta = eta0 / ((1.0 + step) ** power_t)
                else:
                    eta = 1.0 / (l2 * (t0 + step))
                if K * D > 0:
                    csm_momentum_step(partial + 1, &W[0, 0], &W_velocity[0, 0], K * D, scale, l2, momentum, eta)
                if b is not None:
                    csm_momentum_step(partial + 1 + K * D, &b[0], &b_velocity[0], K, scale, 0.0, momentum, eta)
                step += 1.0
                n_steps += 1
                start += n_rows
                work += n_rows * (D + 1) * K
                if work >= SIGNAL_CHECK_WORK and start < n_order:
                    work = 0
                    with gil:
                        try:
                            PyErr_CheckSignals()
                        except BaseException as exc:
                            pending = exc
                            interrupted = True
                    if interrupted:
                        break
        scratch_free(scratch)
        free(rows)
        free(batch_labels)
        free(batch_weights)
        free(partial)
        free(zero_bias)
        free(model.WT)
        free(model.Ws)
    if pending is not None:
        # The buffers are freed; W and b hold the updates of the batches done.
        raise pending
    return status, loss_sum, weight_sum, n_steps


def shuffle_rows(int64_t[::1] order, uint64_t seed):
    """Shuffle ``order`` in place without the GIL (Fisher-Yates, splitmix64
    from ``seed``): the row order of an SGD epoch."""
    with nogil:
        csm_shuffle(&order[0] if order.shape[0] > 0 else NULL, order.shape[0], seed)


def sgd_epoch(
        const floating[:, :] X,
        const int64_t[::1] order, const int64_t[::1] labels, const double[::1] weights,
        double[:, ::1] W, double[::1] b, double[:, ::1] W_velocity, double[::1] b_velocity,
        Py_ssize_t batch_size, double l2, double weight_scale,
        int schedule, double eta0, double power_t, double t0, double momentum, double step):
    """One epoch of mini-batch SGD with momentum over dense X.

    Returns ``(status, loss_sum, weight_sum, n_steps)``; W, b and the velocity
    buffers are updated in place.  See ``csoftmax._sgd`` for the meaning of the
    schedule parameters.
    """
    cdef Source src = dense_source(X)
    return sgd_epoch_core(&src, X.shape[0], order, labels, weights, W, b, W_velocity, b_velocity, batch_size, l2,
                          weight_scale, schedule, eta0, power_t, t0, momentum, step)


def sgd_epoch_u8(
        const uint8_t[:, :] X,
        const int64_t[::1] order, const int64_t[::1] labels, const double[::1] weights,
        double[:, ::1] W, double[::1] b, double[:, ::1] W_velocity, double[::1] b_velocity,
        Py_ssize_t batch_size, double l2, double weight_scale,
        int schedule, double eta0, double power_t, double t0, double momentum, double step):
    """As :func:`sgd_epoch`, for uint8 (or bool viewed as uint8) rows."""
    cdef Source src = bytes_source(X, False)
    return sgd_epoch_core(&src, X.shape[0], order, labels, weights, W, b, W_velocity, b_velocity, batch_size, l2,
                          weight_scale, schedule, eta0, power_t, t0, momentum, step)


def sgd_epoch_bits(
        const uint64_t[:, ::1] words, Py_ssize_t n_features,
        const int64_t[::1] order, const int64_t[::1] labels, const double[::1] weights,
        double[:, ::1] W, double[::1] b, double[:, ::1] W_velocity, double[::1] b_velocity,
        Py_ssize_t batch_size, double l2, double weight_scale,
        int schedule, double eta0, double power_t, double t0, double momentum, double step):
    """As :func:`sgd_epoch`, for bit-packed binary rows."""
    cdef Source src = bits_source(words, n_features)
    return sgd_epoch_core(&src, words.shape[0], order, labels, weights, W, b, W_velocity, b_velocity, batch_size, l2,
                          weight_scale, schedule, eta0, power_t, t0, momentum, step)
