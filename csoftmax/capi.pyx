"""C-level API of csoftmax: see ``capi.pxd`` for how to cimport and use it.

The functions forward to the entry points of the dense kernel module that
``csoftmax._dispatch`` chose for this CPU (``_capi_entry.pxi``, compiled into
every instruction-set build), through the table of addresses that module
hands out.  The table is read once, when this module is imported, which
happens when a consumer module that cimports from here is imported.
"""

from libc.stdint cimport int64_t

include "_capi_table.pxi"

from csoftmax._dispatch import kernels as _kernels

cdef CapiTable* table = <CapiTable*> <size_t> _kernels._capi_table()
if table.version != CAPI_TABLE_VERSION:
    raise ImportError(f"csoftmax.capi: kernel module {_kernels.__name__} has C-level API table "
                      f"version {table.version}, expected {CAPI_TABLE_VERSION}")

API_VERSION = CSM_API_VERSION


cdef int softmax_f64(const double* Z, Py_ssize_t N, Py_ssize_t K, Py_ssize_t zs0, Py_ssize_t zs1,
                     double* out, int n_threads) noexcept nogil:
    return table.softmax_f64(Z, N, K, zs0, zs1, out, n_threads)


cdef int softmax_f32(const float* Z, Py_ssize_t N, Py_ssize_t K, Py_ssize_t zs0, Py_ssize_t zs1,
                     float* out, int n_threads) noexcept nogil:
    return table.softmax_f32(Z, N, K, zs0, zs1, out, n_threads)


cdef int loss_gradient_f64(
        const double* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
        const int64_t* y, const double* sample_weight,
        const double* W, Py_ssize_t K, Py_ssize_t ldw, const double* b,
        double l2, int n_threads,
        double* loss_out, double* grad_W_out, Py_ssize_t ldg, double* grad_b_out) noexcept nogil:
    return table.loss_gradient_f64(X, N, D, xs0, xs1, y, sample_weight, W, K, ldw, b, l2, n_threads,
                                   loss_out, grad_W_out, ldg, grad_b_out)


cdef int loss_gradient_f32(
        const float* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
        const int64_t* y, const double* sample_weight,
        const float* W, Py_ssize_t K, Py_ssize_t ldw, const float* b,
        double l2, int n_threads,
        double* loss_out, float* grad_W_out, Py_ssize_t ldg, float* grad_b_out) noexcept nogil:
    return table.loss_gradient_f32(X, N, D, xs0, xs1, y, sample_weight, W, K, ldw, b, l2, n_threads,
                                   loss_out, grad_W_out, ldg, grad_b_out)


cdef int predict_f64(
        const double* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
        const double* W, Py_ssize_t K, Py_ssize_t ldw, const double* b,
        int64_t* labels_out, int n_threads) noexcept nogil:
    return table.predict_f64(X, N, D, xs0, xs1, W, K, ldw, b, labels_out, n_threads)


cdef int predict_f32(
        const float* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
        const float* W, Py_ssize_t K, Py_ssize_t ldw, const float* b,
        int64_t* labels_out, int n_threads) noexcept nogil:
    return table.predict_f32(X, N, D, xs0, xs1, W, K, ldw, b, labels_out, n_threads)
