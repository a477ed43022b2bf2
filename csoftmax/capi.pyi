# The C-level API is for Cython (``from csoftmax.capi cimport ...``; see
# capi.pxd); from Python the module only tells its version.
API_VERSION: int
