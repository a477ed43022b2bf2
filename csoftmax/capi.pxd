# cython: language_level=3
"""C-level API of csoftmax, for Cython code that embeds the kernels.

How to use it
-------------
In a ``.pyx`` file::

    from csoftmax.capi cimport softmax_f64, loss_gradient_f64, predict_f64, CSM_OK

and build with the directory that holds ``csoftmax/capi.pxd`` on Cython's
include path, ``cythonize(..., include_path=[csoftmax.get_include()])``.  No C
header or library is needed at compile time: the functions are looked up in
the compiled module ``csoftmax.capi`` when the consumer module is imported,
and they run the kernels that ``csoftmax`` itself picked for this CPU
(``csoftmax.show_config()`` says which; ``CSOFTMAX_ISA`` overrides).

Every function is ``noexcept nogil``: call it inside ``with nogil``, from any
thread.  It never raises and never touches Python objects; it returns a status
code, 0 (``CSM_OK``) on success or a bitwise OR of the codes below.

Conventions
-----------
* Matrices are given by a pointer to their first element, their shape and
  their strides **in elements** (not bytes), row stride first.  Any strides
  are accepted for the inputs Z and X, including negative and zero ones.
* W (K x D) has contiguous rows, ``ldw`` elements apart (``ldw >= D``);
  ``grad_W_out`` likewise with ``ldg``.  ``softmax`` writes ``out`` as a
  C-contiguous N x K array.  Intercepts ``b``, labels ``y``, sample weights
  and ``grad_b_out`` are contiguous vectors.
* ``b`` and ``sample_weight`` may be NULL (no intercept, unit weights);
  ``grad_W_out`` may be NULL (loss only), and so may ``grad_b_out``.
* ``n_threads`` is the number of OpenMP threads to use, >= 1; it is not
  capped at the number of cores.  Results do not depend on it.
* Arithmetic is done in float64 for float32 inputs too; float32 outputs are
  rounded at the end.  Sample weights are float64 for both variants.
* ``loss_gradient`` computes the mean loss of the Python function
  ``csoftmax.loss_and_gradient`` (``reduction="mean"``):
  ``loss = sum_n w_n (lse(z_n) - z_n[y_n]) / sum_n w_n + l2/2 ||W||^2``,
  ``grad_W = sum_n w_n (p_n - e_{y_n}) x_n^T / sum_n w_n + l2 W`` and
  ``grad_b = sum_n w_n (p_n - e_{y_n}) / sum_n w_n``, with
  ``z_n = W x_n + b``.

What is checked, and what is not
--------------------------------
Checked (status ``CSM_BAD_ARGUMENT``, nothing written): negative sizes,
K < 1, ``ldw``/``ldg`` < D, ``n_threads`` < 1, NULL for a required pointer,
negative ``l2``, and (``loss_gradient``) N < 1 or a sum of sample weights that
is not positive and finite.  Labels outside ``[0, K)`` give
``CSM_BAD_LABEL`` (never an out-of-bounds read; the gradient is then not
written).  NaN or inf in W or b, in the results (softmax rows, loss,
gradient) or in the logits (predict) give ``CSM_NONFINITE``; the outputs are
still written.

Not checked: that pointers, shapes and strides describe memory you own and
that stays valid during the call; that outputs do not overlap inputs or each
other; that sample weights are non-negative.  The Python functions check all
of that before they call the same kernels.

Status codes
------------
``CSM_OK`` 0, ``CSM_NO_MEMORY`` 1, ``CSM_BAD_LABEL`` 2, ``CSM_NONFINITE`` 4,
``CSM_BAD_ARGUMENT`` 16.  ``CSM_API_VERSION`` is 1 for this set of functions;
they keep their signatures for as long as it is.
"""

from libc.stdint cimport int64_t

cdef enum:
    CSM_API_VERSION = 1
    CSM_OK = 0
    CSM_NO_MEMORY = 1
    CSM_BAD_LABEL = 2
    CSM_NONFINITE = 4
    CSM_BAD_ARGUMENT = 16


# out[n, :] = softmax(Z[n, :]) for n < N; Z is N x K with element strides
# (zs0, zs1); out is C-contiguous N x K.
cdef int softmax_f64(const double* Z, Py_ssize_t N, Py_ssize_t K, Py_ssize_t zs0, Py_ssize_t zs1,
                     double* out, int n_threads) noexcept nogil
cdef int softmax_f32(const float* Z, Py_ssize_t N, Py_ssize_t K, Py_ssize_t zs0, Py_ssize_t zs1,
                     float* out, int n_threads) noexcept nogil

# Mean loss (into loss_out[0]) and, when grad_W_out is not NULL, its gradient.
# X is N x D with element strides (xs0, xs1); y holds N labels in [0, K);
# sample_weight is NULL or N float64 weights.
cdef int loss_gradient_f64(
    const double* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
    const int64_t* y, const double* sample_weight,
    const double* W, Py_ssize_t K, Py_ssize_t ldw, const double* b,
    double l2, int n_threads,
    double* loss_out, double* grad_W_out, Py_ssize_t ldg, double* grad_b_out) noexcept nogil
cdef int loss_gradient_f32(
    const float* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
    const int64_t* y, const double* sample_weight,
    const float* W, Py_ssize_t K, Py_ssize_t ldw, const float* b,
    double l2, int n_threads,
    double* loss_out, float* grad_W_out, Py_ssize_t ldg, float* grad_b_out) noexcept nogil

# labels_out[n] = argmax_k (W x_n + b)_k (the first of ties) for n < N.
cdef int predict_f64(
    const double* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
    const double* W, Py_ssize_t K, Py_ssize_t ldw, const double* b,
    int64_t* labels_out, int n_threads) noexcept nogil
cdef int predict_f32(
    const float* X, Py_ssize_t N, Py_ssize_t D, Py_ssize_t xs0, Py_ssize_t xs1,
    const float* W, Py_ssize_t K, Py_ssize_t ldw, const float* b,
    int64_t* labels_out, int n_threads) noexcept nogil
