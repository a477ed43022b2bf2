# The table of C-level entry points that each dense kernel module
# (``_dense``, ``_dense_avx2``, ``_dense_avx512``) fills in and that
# ``csoftmax.capi`` reads from the module ``csoftmax._dispatch`` chose.
# Included by both sides, so the layout is the same on both.

from libc.stdint cimport int64_t

ctypedef int (*softmax_d_fn)(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                             double*, int) noexcept nogil
ctypedef int (*softmax_f_fn)(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                             float*, int) noexcept nogil
ctypedef int (*loss_gradient_d_fn)(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                   const int64_t*, const double*,
                                   const double*, Py_ssize_t, Py_ssize_t, const double*,
                                   double, int, double*, double*, Py_ssize_t, double*) noexcept nogil
ctypedef int (*loss_gradient_f_fn)(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                   const int64_t*, const double*,
                                   const float*, Py_ssize_t, Py_ssize_t, const float*,
                                   double, int, double*, float*, Py_ssize_t, float*) noexcept nogil
ctypedef int (*predict_d_fn)(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                             const double*, Py_ssize_t, Py_ssize_t, const double*,
                             int64_t*, int) noexcept nogil
ctypedef int (*predict_f_fn)(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                             const float*, Py_ssize_t, Py_ssize_t, const float*,
                             int64_t*, int) noexcept nogil

ctypedef struct CapiTable:
    int version               # CAPI_TABLE_VERSION of the module that filled it
    softmax_d_fn softmax_f64
    softmax_f_fn softmax_f32
    loss_gradient_d_fn loss_gradient_f64
    loss_gradient_f_fn loss_gradient_f32
    predict_d_fn predict_f64
    predict_f_fn predict_f32

cdef enum:
    CAPI_TABLE_VERSION = 1
