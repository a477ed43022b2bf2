"""Process set-up, timing and memory probes shared by the benchmark scripts.

Standard library only, so that :func:`limit_process` can run before NumPy,
PyTorch or JAX are imported: thread pools read the CPU affinity and the
environment when they start.
"""

import ctypes
import gc
import math
import os
import statistics
import time
import tracemalloc

# Environment variables that size the thread pools of the libraries we load.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_process(threads):
    """Pin this process to ``threads`` CPUs and size every thread pool to match.

    Same effect as starting the process under ``taskset -c 0`` (1 thread) or
    ``taskset -c 0,1`` (2 threads), plus ``OMP_NUM_THREADS`` and friends.  JAX
    ignores ``threadpoolctl``; the affinity is what limits it, and with 1 thread
    XLA's multi-threaded Eigen is switched off as well.  Each library is then
    limited in-process too (``threadpoolctl``, ``torch.set_num_threads``,
    ``n_threads=``), see ``peers.py``.

    Returns a dict describing what was set, for the JSON record.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if threads > len(cpus):
        raise SystemExit(f"asked for {threads} threads but only CPUs {cpus} are usable")
    chosen = cpus[:threads]
    os.sched_setaffinity(0, chosen)
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    if threads == 1:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    else:
        os.environ.pop("XLA_FLAGS", None)
    env = {name: os.environ[name] for name in THREAD_ENV}
    env["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "")
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    return {"cpus": chosen, "env": env}


def summarize(samples):
    """Median, min, quartiles and IQR of a list of per-call times (seconds)."""
    s = sorted(samples)
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    return {
        "median": statistics.median(s),
        "min": s[0],
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "n_samples": len(s),
    }


def time_calls(call, repeats, warmup_s=0.3, min_warmup_calls=3, min_sample_s=0.02, max_time_s=20.0):
    """Time ``call()``: warm-up, then ``repeats`` samples of the time per call.

    A sample times ``number`` back-to-back calls and divides by ``number``;
    ``number`` is 1 for calls longer than ``min_sample_s`` and grows for short
    calls so that the clock's resolution and the loop's cost do not matter.
    The garbage collector is off while sampling (as in ``timeit``).  Sampling
    stops early, after at least 5 samples, once ``max_time_s`` have passed (a
    pathologically slow peer should not hold up the whole run).

    Returns ``(samples, number)``; samples are seconds per call.
    """
    deadline = time.perf_counter() + warmup_s
    done = 0
    while done < min_warmup_calls or time.perf_counter() < deadline:
        call()
        done += 1
    t0 = time.perf_counter()
    call()
    one = time.perf_counter() - t0
    number = max(1, math.ceil(min_sample_s / max(one, 1e-9))) if one < min_sample_s else 1
    samples = []
    was_enabled = gc.isenabled()
    gc.disable()
    start = time.perf_counter()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            for _ in range(number):
                call()
            samples.append((time.perf_counter_ns() - t0) / number / 1e9)
            if len(samples) >= 5 and time.perf_counter() - start > max_time_s:
                break
    finally:
        if was_enabled:
            gc.enable()
    return samples, number


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _malloc_trim():
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss():
    """Reset the kernel's high-water mark of this process's RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_memory(call):
    """Peak extra memory of one ``call()``, after the caller's warm-up.

    Two numbers, from two separate calls:

    - ``rss_bytes``: peak resident set size during the call minus the RSS just
      before it.  Freed heap memory is returned to the OS first
      (``malloc_trim``) and the kernel's high-water mark is reset, so the
      figure counts every allocator (NumPy, PyTorch, XLA, OpenMP stacks) at
      page granularity.
    - ``traced_bytes``: the peak of ``tracemalloc`` during the call, which sees
      Python objects and NumPy arrays but not PyTorch's or XLA's buffers.
    """
    gc.collect()
    _malloc_trim()
    reset = _reset_peak_rss()
    before = _status_kib("VmRSS")
    call()
    peak = _status_kib("VmHWM")
    rss = max(0, peak - before) * 1024 if reset else None

    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        call()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"rss_bytes": rss, "traced_bytes": max(0, traced_peak - base)}


def write_results(lines, file_name, write=True):
    """Print the report ``lines`` and, with ``write``, save them as
    ``benchmarks/<file_name>`` (next to the scripts)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if write:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), file_name), "w") as f:
            f.write(text)
