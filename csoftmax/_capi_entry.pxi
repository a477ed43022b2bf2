# C-level entry points of the dense kernels, for ``csoftmax.capi``.
#
# Included after ``_dense_impl.pxi`` by each kernel module, so that every
# instruction-set build has them; ``_capi_table()`` hands their addresses to
# ``csoftmax.capi``, which calls the ones of the module ``csoftmax._dispatch``
# chose.  They take raw pointers with element strides, check what is cheap to
# check (sizes, thread count, NULL pointers, labels, non-finite results) and
# report through the status bits of ``_dense_impl.pxi`` plus
# STATUS_BAD_ARGUMENT.  The work itself is done by the kernels of
# ``_dense_impl.pxi`` (rowwise_chunk, run_partitions, predict_chunk).

include "_capi_table.pxi"

cdef enum:
    STATUS_BAD_ARGUMENT = 16


cdef inline Source capi_source(const floating* X, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t D) noexcept nogil:
    cdef Source src
    src.kind = KIND_F64 if floating is double else KIND_F32
    src.data = X
    src.s0 = s0
    src.s1 = s1
    src.D = D
    src.group_bits = 0
    src.indices = NULL
    src.indptr = NULL
    return src


cdef int capi_softmax(const floating* Z, Py_ssize_t N, Py_ssize_t K, Py_ssize_t s0, Py_ssize_t s1,
                      floating* out, int n_threads) noexcept nogil:
    cdef Py_ssize_t n_chunks = (N + CSM_CHUNK - 1) // CSM_CHUNK
    cdef Py_ssize_t nt = min(<Py_ssize_t> n_threads, n_chunks)
    cdef Py_ssize_t c, n_bad = 0
    cdef Scratch* scratch = NULL
    cdef Source shape_only
    if N < 0 or K < 1 or n_threads < 1 or (N > 0 and (Z == NULL or out == NULL)):
        return STATUS_BAD_ARGUMENT
    if N * K < MIN_ELEMENTS_PARALLEL:
        nt = 1
    shape_only.kind = KIND_F64      # scratch for rows of Z only: no pack buffer
    shape_only.D = 0
    shape_only.group_bits = 0
    if nt <= 1:
        scratch = scratch_new(&shape_only, csm_padded(K))
        if scratch == NULL:
            return STATUS_NO_MEMORY
        for c in range(n_chunks):
            n_bad += rowwise_chunk(Z, s0, s1, c * CSM_CHUNK, min(<Py_ssize_t> CSM_CHUNK, N - c * CSM_CHUNK),
                                   K, 0, scratch, out, <floating*> NULL)
        scratch_free(scratch)
    else:
        with parallel(num_threads=nt):
            scratch = scratch_new(&shape_only, csm_padded(K))
            for c in prange(n_chunks, schedule="static"):
                if scratch == NULL:
                    n_bad += N + 1   # impossible count: signals no memory
                else:
                    n_bad += rowwise_chunk(Z, s0, s1, c * CSM_CHUNK,
                                           min(<Py_ssize_t> CSM_CHUNK, N - c * CSM_CHUNK),
                                           K, 0, scratch, out, <floating*> NULL)
            scratch_free(scratch)
    if n_bad > N:
        return STATUS_NO_MEMORY
    return STATUS_NONFINITE if n_bad else STATUS_OK


cdef int capi_loss_gradient(
        const floating* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
        const int64_t* y, const double* sample_weight,
        const floating* W, Py_ssize_t K, Py_ssize_t ldw, const floating* b,
        double l2, int n_threads,
        double* loss_out, floating* grad_W_out, Py_ssize_t ldg, floating* grad_b_out) noexcept nogil:
    cdef Model model
    cdef Source src
    cdef double* sums
    cdef double total, sum_sq_W = 0.0, value
    cdef Py_ssize_t n, k, i
    cdef int status = STATUS_OK, ok_model
    if (N < 1 or D < 0 or K < 1 or ldw < D or n_threads < 1 or not (l2 >= 0.0)
            or X == NULL or y == NULL or W == NULL or loss_out == NULL
            or (grad_W_out != NULL and ldg < D)):
        return STATUS_BAD_ARGUMENT
    total = N
    if sample_weight != NULL:
        total = 0.0
        for n in range(N):
            total += sample_weight[n]
        if not (total > 0.0 and isfinite(total)):
            return STATUS_BAD_ARGUMENT
    sums = <double*> malloc((1 + K * D + K) * sizeof(double))
    if sums == NULL:
        return STATUS_NO_MEMORY
    memset(sums, 0, (1 + K * D + K) * sizeof(double))
    ok_model = model_from(&model, W, K, D, ldw, 1, b, False, -INFINITY)
    if ok_model < 0:
        free(sums)
        return STATUS_NO_MEMORY
    if ok_model > 0:
        status = STATUS_NONFINITE
    else:
        src = capi_source(X, xs0, xs1, D)
        status = run_partitions(MODE_LOSS_GRADIENT if grad_W_out != NULL else MODE_LOSS, &src, N,
                                &model, NULL, y, NULL, 0, 0, sample_weight, n_threads, sums)
        for i in range(K * D):
            sum_sq_W += model.W[i] * model.W[i]
        loss_out[0] = sums[0] / total + 0.5 * l2 * sum_sq_W
        if not isfinite(loss_out[0]):
            status |= STATUS_NONFINITE
        if grad_W_out != NULL and not (status & (STATUS_NO_MEMORY | STATUS_BAD_LABEL)):
            for k in range(K):
                for i in range(D):
                    value = sums[1 + k * D + i] / total + l2 * model.W[k * D + i]
                    grad_W_out[k * ldg + i] = <floating> value
                    if not isfinite(value):
                        status |= STATUS_NONFINITE
                if grad_b_out != NULL:
                    grad_b_out[k] = <floating> (sums[1 + K * D + k] / total)
    model_free(&model)
    free(sums)
    return status


cdef int capi_predict(
        const floating* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
        const floating* W, Py_ssize_t K, Py_ssize_t ldw, const floating* b,
        int64_t* labels_out, int n_threads) noexcept nogil:
    cdef Py_ssize_t n_chunks = (N + CSM_CHUNK - 1) // CSM_CHUNK
    cdef Py_ssize_t nt = min(<Py_ssize_t> n_threads, n_chunks)
    cdef Py_ssize_t c, n_bad = 0
    cdef Scratch* scratch = NULL
    cdef Model model
    cdef Source src
    cdef int ok_model
    if (N < 0 or D < 0 or K < 1 or ldw < D or n_threads < 1 or W == NULL
            or (N > 0 and (X == NULL or labels_out == NULL))):
        return STATUS_BAD_ARGUMENT
    if N * (D + K) < MIN_ELEMENTS_PARALLEL:
        nt = 1
    ok_model = model_from(&model, W, K, D, ldw, 1, b, False, -INFINITY)
    if ok_model != 0:
        if ok_model > 0:
            model_free(&model)
        return STATUS_NO_MEMORY if ok_model < 0 else STATUS_NONFINITE
    src = capi_source(X, xs0, xs1, D)
    if nt <= 1:
        scratch = scratch_new(&src, model.ldz)
        if scratch == NULL:
            n_bad = N + 1
        else:
            for c in range(n_chunks):
                n_bad += predict_chunk(&src, c * CSM_CHUNK, min(<Py_ssize_t> CSM_CHUNK, N - c * CSM_CHUNK),
                                       &model, scratch, <floating*> NULL, labels_out)
            scratch_free(scratch)
    else:
        with parallel(num_threads=nt):
            scratch = scratch_new(&src, model.ldz)
            for c in prange(n_chunks, schedule="static"):
                if scratch == NULL:
                    n_bad += N + 1
                else:
                    n_bad += predict_chunk(&src, c * CSM_CHUNK, min(<Py_ssize_t> CSM_CHUNK, N - c * CSM_CHUNK),
                                           &model, scratch, <floating*> NULL, labels_out)
            scratch_free(scratch)
    model_free(&model)
    if n_bad > N:
        return STATUS_NO_MEMORY
    return STATUS_NONFINITE if n_bad else STATUS_OK


cdef CapiTable CAPI_TABLE
CAPI_TABLE.version = CAPI_TABLE_VERSION
CAPI_TABLE.softmax_f64 = capi_softmax[double]
CAPI_TABLE.softmax_f32 = capi_softmax[float]
CAPI_TABLE.loss_gradient_f64 = capi_loss_gradient[double]
CAPI_TABLE.loss_gradient_f32 = capi_loss_gradient[float]
CAPI_TABLE.predict_f64 = capi_predict[double]
CAPI_TABLE.predict_f32 = capi_predict[float]


def _capi_table():
    """Address of this module's table of C-level entry points (for ``csoftmax.capi``)."""
    return <size_t> &CAPI_TABLE
