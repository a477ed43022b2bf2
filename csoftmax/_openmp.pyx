"""Queries of the OpenMP runtime the kernels were linked against."""

cdef extern from "_omp_shim.h" nogil:
    int CSM_OPENMP_ENABLED
    int csm_omp_max_threads()


def openmp_enabled():
    """Return True when the compiled kernels were built with OpenMP."""
    return bool(CSM_OPENMP_ENABLED)


def omp_max_threads():
    """Threads an OpenMP parallel region would use now.

    Reflects ``OMP_NUM_THREADS``, the CPU affinity seen at start-up and any
    ``omp_set_num_threads`` call (which is how threadpoolctl limits us).
    """
    return csm_omp_max_threads()
