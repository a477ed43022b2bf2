"""The one place where the number of threads is decided."""

import numbers
import os

from ._openmp import omp_max_threads, openmp_enabled


def _affinity_cores():
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    if hasattr(os, "process_cpu_count"):
        return max(1, os.process_cpu_count() or 1)
    return max(1, os.cpu_count() or 1)


# Read once: calls must stay cheap, and the affinity of a process rarely
# changes after start-up (OpenMP runtimes read it once too).
_AFFINITY_CORES = _affinity_cores()
_OPENMP = openmp_enabled()
# Requests beyond this are surely mistakes; more threads than this would only
# oversubscribe the machine.
MAX_THREADS = max(64, 4 * _AFFINITY_CORES)


def default_n_threads():
    """Threads used when ``n_threads=None``: every usable core.

    Respects ``OMP_NUM_THREADS``, the CPU affinity and limits set through the
    OpenMP runtime (``threadpoolctl.threadpool_limits``).  1 in a serial build.
    """
    if not _OPENMP:
        return 1
    # omp_get_max_threads() is at least 1.  Plain comparisons rather than
    # min/max: this runs on every call with n_threads=None, and the builtins
    # made it a tenth of a 32-row loss_and_gradient call.
    n = omp_max_threads()
    return n if n < _AFFINITY_CORES else _AFFINITY_CORES


def resolve_n_threads(n_threads):
    """Turn the public ``n_threads`` argument into a positive thread count.

    ``None`` uses :func:`default_n_threads`; a negative value counts back from
    it (-1 = all, -2 = all but one, never below 1); 0 is an error.
    """
    if n_threads is None:
        return default_n_threads()
    if type(n_threads) is int and n_threads > 0:
        # The common case, without the abstract-base-class checks below (they
        # took half a microsecond, a seventh of a 32-row loss_and_gradient).
        return n_threads if n_threads < MAX_THREADS else MAX_THREADS
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(
            f"n_threads must be None or an integer; got {type(n_threads).__name__} {n_threads!r}"
        )
    n = int(n_threads)
    if n == 0:
        raise ValueError("n_threads must be None, a positive or a negative integer; got 0")
    if n < 0:
        n = max(1, default_n_threads() + 1 + n)
    return min(n, MAX_THREADS)
