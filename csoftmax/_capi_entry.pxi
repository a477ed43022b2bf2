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

cimport numpy as cnp

include "_capi_table.pxi"

cnp.import_array()

cdef enum:
    STATUS_BAD_ARGUMENT = 16


cdef inline Source capi_source(const floating* X, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t D) noexcept nogil:
    return new_source(KIND_F64 if floating is double else KIND_F32, X, s0, s1, D)


cdef int capi_softmax(const floating* Z, Py_ssize_t N, Py_ssize_t K, Py_ssize_t s0, Py_ssize_t s1,
                      floating* out, int n_threads) noexcept nogil:
    cdef Py_ssize_t n_bad
    if N < 0 or K < 1 or n_threads < 1 or (N > 0 and (Z == NULL or out == NULL)):
        return STATUS_BAD_ARGUMENT
    n_bad = rowwise_rows(Z, N, K, s0, s1, 0, out, <floating*> NULL, n_threads)
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
    cdef double total, scale
    cdef Py_ssize_t n, k, n_bad
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
    src = capi_source(X, xs0, xs1, D)
    ok_model = model_from(&model, W, K, D, ldw, 1, b, transposed_model(&src, K), -INFINITY, True)
    if ok_model < 0:
        free(sums)
        return STATUS_NO_MEMORY
    if ok_model > 0:
        status = STATUS_NONFINITE
    else:
        status = run_partitions(MODE_LOSS_GRADIENT if grad_W_out != NULL else MODE_LOSS, &src, N,
                                &model, NULL, y, NULL, 0, 0, sample_weight, n_threads, sums)
        # The same arithmetic as the Python entry points (scale, then the
        # penalty), so both give bitwise-equal results.
        scale = 1.0 / total
        loss_out[0] = csm_penalised_loss(sums[0], scale, l2, csm_sum_squares(model.W, K * D) if l2 != 0.0 else 0.0)
        if not isfinite(loss_out[0]):
            status |= STATUS_NONFINITE
        if grad_W_out != NULL and not (status & (STATUS_NO_MEMORY | STATUS_BAD_LABEL)):
            for k in range(K):
                if floating is double:
                    n_bad = csm_scale_add(sums + 1 + k * D, model.W + k * D, D, scale, l2, grad_W_out + k * ldg)
                else:
                    n_bad = csm_scale_add_f(sums + 1 + k * D, model.W + k * D, D, scale, l2, grad_W_out + k * ldg)
                if n_bad:
                    status |= STATUS_NONFINITE
                if grad_b_out != NULL:
                    grad_b_out[k] = <floating> (scale * sums[1 + K * D + k])
                    if not isfinite(grad_b_out[k]):
                        status |= STATUS_NONFINITE
    model_free(&model)
    free(sums)
    return status


cdef bint byte_range(cnp.ndarray a, char** lo, char** hi) noexcept:
    """[lo, hi) spans every byte of ``a``'s elements; False when it has none."""
    cdef int i
    cdef Py_ssize_t extent
    lo[0] = hi[0] = <char*> cnp.PyArray_DATA(a)
    if cnp.PyArray_SIZE(a) == 0:
        return False
    for i in range(cnp.PyArray_NDIM(a)):
        extent = (cnp.PyArray_DIM(a, i) - 1) * cnp.PyArray_STRIDE(a, i)
        if extent < 0:
            lo[0] += extent
        else:
            hi[0] += extent
    hi[0] += cnp.PyArray_ITEMSIZE(a)
    return True


cdef bint may_overlap(cnp.ndarray a, object other) noexcept:
    """Whether the memory of ``a`` and of ``other`` (an array or None) may overlap."""
    cdef char* lo_a
    cdef char* hi_a
    cdef char* lo_b
    cdef char* hi_b
    if other is None:
        return False
    if not byte_range(a, &lo_a, &hi_a) or not byte_range(<cnp.ndarray> other, &lo_b, &hi_b):
        return False
    return lo_a < hi_b and lo_b < hi_a


cdef bint plain_array(object a, int ndim, int typenum, bint contiguous) noexcept:
    """``a`` is an ndarray (not a subclass) of ``ndim`` dimensions and type
    ``typenum`` in native byte order, aligned, with element strides (and
    C-contiguous when asked)."""
    cdef cnp.ndarray arr
    cdef int i
    if type(a) is not cnp.ndarray:
        return False
    arr = <cnp.ndarray> a
    if (cnp.PyArray_NDIM(arr) != ndim or cnp.PyArray_TYPE(arr) != typenum
            or not cnp.PyArray_ISNOTSWAPPED(arr) or not cnp.PyArray_ISALIGNED(arr)):
        return False
    if contiguous:
        return cnp.PyArray_IS_C_CONTIGUOUS(arr)
    for i in range(ndim):
        if cnp.PyArray_STRIDE(arr, i) % cnp.PyArray_ITEMSIZE(arr):
            return False
    return True


def loss_gradient_fast(object X, object W, object b, object y, double l2,
                       object grad_W_out, object grad_b_out, int n_threads):
    """The training-loop call: ``loss_and_gradient`` with the mean reduction,
    integer labels and no sample weights, checked and run without typed
    memoryviews or Python-level attribute lookups (on a 32-row batch those
    cost as much as the kernel).

    Takes only the plain case: dense float32/float64 X with element strides;
    W, b, int64 y and the outputs C-contiguous, aligned, native byte order,
    of X's dtype, consistent shapes, outputs writable and overlapping no
    input or each other.  Returns ``(loss, grad_W, grad_b)`` (allocating the
    outputs not given), or None for anything else or any failure: the
    general path then raises the detailed error.
    """
    cdef int typenum
    cdef Py_ssize_t N, D, K, item, xs0, xs1
    cdef cnp.npy_intp dims[2]
    cdef void* b_ptr = NULL
    cdef void* gb_ptr = NULL
    cdef double loss = 0.0
    cdef int status
    if type(X) is not cnp.ndarray:
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray> X)
    if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
        return None
    if not (plain_array(X, 2, typenum, False) and plain_array(W, 2, typenum, True)
            and plain_array(y, 1, cnp.NPY_INT64, True)):
        return None
    N = cnp.PyArray_DIM(<cnp.ndarray> X, 0)
    D = cnp.PyArray_DIM(<cnp.ndarray> X, 1)
    K = cnp.PyArray_DIM(<cnp.ndarray> W, 0)
    if N < 1 or K < 1 or cnp.PyArray_DIM(<cnp.ndarray> W, 1) != D or cnp.PyArray_DIM(<cnp.ndarray> y, 0) != N:
        return None
    if b is not None and not (plain_array(b, 1, typenum, True) and cnp.PyArray_DIM(<cnp.ndarray> b, 0) == K):
        return None
    if grad_b_out is not None and b is None:
        return None
    for out, ndim in ((grad_W_out, 2), (grad_b_out, 1)):
        if out is None:
            continue
        if not (plain_array(out, ndim, typenum, True) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray> out)):
            return None
        if (cnp.PyArray_DIM(<cnp.ndarray> out, 0) != K
                or (ndim == 2 and cnp.PyArray_DIM(<cnp.ndarray> out, 1) != D)):
            return None
        if (may_overlap(<cnp.ndarray> out, X) or may_overlap(<cnp.ndarray> out, W)
                or may_overlap(<cnp.ndarray> out, b) or may_overlap(<cnp.ndarray> out, y)):
            return None
    if grad_W_out is not None and may_overlap(<cnp.ndarray> grad_W_out, grad_b_out):
        return None
    dims[0] = K
    dims[1] = D
    if grad_W_out is None:
        grad_W_out = cnp.PyArray_EMPTY(2, dims, typenum, 0)
    if b is not None:
        b_ptr = cnp.PyArray_DATA(<cnp.ndarray> b)
        if grad_b_out is None:
            grad_b_out = cnp.PyArray_EMPTY(1, dims, typenum, 0)
        gb_ptr = cnp.PyArray_DATA(<cnp.ndarray> grad_b_out)
    item = cnp.PyArray_ITEMSIZE(<cnp.ndarray> X)
    xs0 = cnp.PyArray_STRIDE(<cnp.ndarray> X, 0) // item
    xs1 = cnp.PyArray_STRIDE(<cnp.ndarray> X, 1) // item
    cdef const void* X_ptr = cnp.PyArray_DATA(<cnp.ndarray> X)
    cdef const void* W_ptr = cnp.PyArray_DATA(<cnp.ndarray> W)
    cdef const int64_t* y_ptr = <const int64_t*> cnp.PyArray_DATA(<cnp.ndarray> y)
    cdef void* gW_ptr = cnp.PyArray_DATA(<cnp.ndarray> grad_W_out)
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            status = capi_loss_gradient(<const float*> X_ptr, N, D, xs0, xs1, y_ptr, NULL,
                                        <const float*> W_ptr, K, D, <const float*> b_ptr,
                                        l2, n_threads, &loss, <float*> gW_ptr, D, <float*> gb_ptr)
        else:
            status = capi_loss_gradient(<const double*> X_ptr, N, D, xs0, xs1, y_ptr, NULL,
                                        <const double*> W_ptr, K, D, <const double*> b_ptr,
                                        l2, n_threads, &loss, <double*> gW_ptr, D, <double*> gb_ptr)
    if status != STATUS_OK or not isfinite(loss):
        return None
    return loss, grad_W_out, grad_b_out


cdef int capi_predict(
        const floating* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
        const floating* W, Py_ssize_t K, Py_ssize_t ldw, const floating* b,
        int64_t* labels_out, int n_threads) noexcept nogil:
    cdef Py_ssize_t n_bad
    cdef Model model
    cdef Source src
    cdef int ok_model
    if (N < 0 or D < 0 or K < 1 or ldw < D or n_threads < 1 or W == NULL
            or (N > 0 and (X == NULL or labels_out == NULL))):
        return STATUS_BAD_ARGUMENT
    src = capi_source(X, xs0, xs1, D)
    ok_model = model_from(&model, W, K, D, ldw, 1, b, transposed_model(&src, K), -INFINITY, False)
    if ok_model != 0:
        if ok_model > 0:
            model_free(&model)
        return STATUS_NO_MEMORY if ok_model < 0 else STATUS_NONFINITE
    n_bad = predict_all_rows(&src, N, &model, <floating*> NULL, labels_out, n_threads)
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
