# A library that embeds csoftmax at the C level: one training step and
# a prediction, with the GIL released.  Built by tests/test_embedding.py, and
# shown in the README's "Embedding" section.
import numpy as np
from libc.stdint cimport int64_t
from csoftmax.capi cimport (softmax_f64, softmax_f32, loss_gradient_f64, loss_gradient_f32,
                            predict_f64, CSM_OK)


def step_f64(const double[:, :] X, const int64_t[::1] y, double[:, ::1] W, double[::1] b,
             double lr, int n_threads):
    """One gradient-descent step on (W, b), in place; returns the loss before it."""
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], K = W.shape[0], k, i
    cdef double loss
    cdef double[:, ::1] gW = W.copy()
    cdef double[::1] gb = b.copy()
    cdef int status
    with nogil:
        status = loss_gradient_f64(&X[0, 0], N, D, X.strides[0] // 8, X.strides[1] // 8,
                                   &y[0], NULL, &W[0, 0], K, D, &b[0], 0.0, n_threads,
                                   &loss, &gW[0, 0], D, &gb[0])
        if status == CSM_OK:
            for k in range(K):
                for i in range(D):
                    W[k, i] -= lr * gW[k, i]
                b[k] -= lr * gb[k]
    if status != CSM_OK:
        raise RuntimeError(f"csoftmax status {status}")
    return loss


def loss_gradient_f32_weighted(const float[:, :] X, const int64_t[::1] y, const double[::1] w,
                               const float[:, ::1] W, const float[::1] b, double l2, int n_threads):
    """(status, loss, grad_W, grad_b) for float32 data with sample weights."""
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], K = W.shape[0]
    cdef double loss = 0.0
    cdef float[:, ::1] gW = W.copy()
    cdef float[::1] gb = b.copy()
    cdef int status
    with nogil:
        status = loss_gradient_f32(&X[0, 0], N, D, X.strides[0] // 4, X.strides[1] // 4,
                                   &y[0], &w[0], &W[0, 0], K, D, &b[0], l2, n_threads,
                                   &loss, &gW[0, 0], D, &gb[0])
    return status, loss, np.asarray(gW), np.asarray(gb)


def softmax_rows(Z, int n_threads):
    """(status, softmax of the rows of Z) for float32 or float64 Z."""
    cdef const double[:, :] Zd
    cdef const float[:, :] Zf
    cdef double[:, ::1] outd
    cdef float[:, ::1] outf
    cdef int status
    if Z.dtype.itemsize == 8:
        Zd = Z
        outd = Z.copy(order="C")
        with nogil:
            status = softmax_f64(&Zd[0, 0], Zd.shape[0], Zd.shape[1], Zd.strides[0] // 8,
                                 Zd.strides[1] // 8, &outd[0, 0], n_threads)
        return status, np.asarray(outd)
    Zf = Z
    outf = Z.copy(order="C")
    with nogil:
        status = softmax_f32(&Zf[0, 0], Zf.shape[0], Zf.shape[1], Zf.strides[0] // 4,
                             Zf.strides[1] // 4, &outf[0, 0], n_threads)
    return status, np.asarray(outf)


def predict(const double[:, :] X, const double[:, ::1] W, const double[::1] b, int64_t[::1] out,
            int n_threads):
    """Status of writing the predicted classes of the rows of X into out."""
    cdef int status
    with nogil:
        status = predict_f64(&X[0, 0], X.shape[0], X.shape[1], X.strides[0] // 8, X.strides[1] // 8,
                             &W[0, 0], W.shape[0], W.shape[1], &b[0], &out[0], n_threads)
    return status
