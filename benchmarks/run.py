"""Benchmark csoftmax.loss_and_gradient against its peers, and write RESULTS.md.

    python benchmarks/run.py            # full run (10-20 minutes), writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    # under a minute, prints only (csoftmax and NumPy)

What one full run does, every measurement in its own fresh subprocess:

1. the machine's floors at 1 and 2 threads (``machine.py``): memory read
   bandwidth and float64 / float32 GEMM peak, measured before and after the
   timings (the best of both is kept);
2. ``loss_and_gradient`` on every case, for every peer and thread count
   (``peers.py``): each peer is first checked against csoftmax (rtol 1e-6
   float64, 1e-3 float32) and not timed if it disagrees; then warm-up and
   repeated samples.  The sweep is repeated ``--rounds`` times, in a rotated
   peer order, and the samples of all rounds are pooled: medians, min and IQR
   below are over the pooled samples;
3. peak extra memory of one call on the digits-like case, per peer
   (``peers.py --memory``);
4. csoftmax's other public functions against their memory floor
   (``functions.py``).

The machine is shared: before each subprocess the runner waits (up to
``--quiet-wait`` seconds) for the other processes on the machine to use less
than a quarter of a CPU, and it records how many CPUs the others used while
each measurement ran ("neighbour load" in the detailed table).

Ratios are peer median / csoftmax median: above 1 means csoftmax is faster.
The floor of a case is max(bytes of X / read bandwidth, 4 N D K / GEMM peak),
with the best bandwidth and GEMM rate measured at that thread count.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cases import CASES  # noqa: E402
from peers import CSOFTMAX_PEERS, DESCRIPTIONS, PEERS  # noqa: E402

QUICK_PEERS = ("csoftmax", "numpy")
LABELS = {
    "csoftmax": "csoftmax",
    "csoftmax_out": "csoftmax (out=)",
    "numpy": "NumPy",
    "sklearn": "scikit-learn",
    "torch_autograd": "torch autograd",
    "torch_closed": "torch closed",
    "jax": "JAX",
}
PACKAGES = ("csoftmax", "numpy", "scipy", "scikit-learn", "threadpoolctl", "torch", "jax", "jaxlib")


# ----------------------------------------------------------------------------
# Running subprocesses on a shared machine


def _cpu_jiffies():
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _others_cpus(interval=0.5):
    """CPUs used by other processes over ``interval`` seconds (the runner sleeps)."""
    a = _cpu_jiffies()
    time.sleep(interval)
    b = _cpu_jiffies()
    if a is None or b is None:
        return 0.0
    hz = os.sysconf("SC_CLK_TCK")
    return (b[0] - a[0]) / hz / interval


def wait_for_quiet(max_wait, threshold=0.25):
    """Wait until others use < ``threshold`` CPUs, at most ``max_wait`` seconds."""
    deadline = time.monotonic() + max_wait
    load = 0.0
    while time.monotonic() < deadline:
        load = _others_cpus()
        if load < threshold:
            break
    return load


def run_json(args, env_extra, quiet_wait, timeout=600):
    """Run ``python <args>`` and parse the JSON it prints; add the neighbour load."""
    if quiet_wait > 0:
        wait_for_quiet(quiet_wait)
    env = dict(os.environ, **env_extra)
    cmd = [sys.executable] + args
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    j0 = _cpu_jiffies()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s: {shlex.join(args)}"}
    wall = time.monotonic() - t0
    j1 = _cpu_jiffies()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    neighbour = None
    if j0 is not None and j1 is not None and wall > 0:
        busy = (j1[0] - j0[0]) / os.sysconf("SC_CLK_TCK")
        neighbour = max(0.0, (busy - child_cpu) / wall)
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["neighbour_cpus"] = neighbour
    record["wall_s"] = wall
    return record


# ----------------------------------------------------------------------------
# Formatting


def fmt_time(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s * 1e6:.3g} us"


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def fmt_bytes(n):
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if abs(n) >= 1e5 else f"{n / 1e3:.1f} kB"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ----------------------------------------------------------------------------
# Machine description


def machine_description():
    cpu = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # first processor only
                key, _, value = line.partition(":")
                cpu[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(cpu.get("flags", "").split())
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl") if f in flags]
    model = (
        f"{cpu.get('model name', 'unknown')} (family {cpu.get('cpu family', '?')}, model {cpu.get('model', '?')}, "
        f"cache size {cpu.get('cache size', '?')}; {' '.join(isa) or 'no AVX2/AVX-512'}"
        f"{'; virtual machine' if 'hypervisor' in flags else ''})"
    )
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    # Run from this folder, not the repository root: the installed csoftmax,
    # not the source tree, is what the peers import.
    code = "import csoftmax, os; csoftmax.show_config(); print('  imported from   :', os.path.dirname(csoftmax.__file__))"
    cfg = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE)
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "csoftmax_config": cfg.stdout.strip() or cfg.stderr.strip(),
    }


# ----------------------------------------------------------------------------
# Measurement


def pooled(records):
    """Merge the rounds of one (case, threads, peer): pool samples, keep checks."""
    from harness import summarize

    errors = [r["error"] for r in records if r.get("error")]
    samples = [s for r in records for s in r.get("samples", [])]
    loads = [r["neighbour_cpus"] for r in records if r.get("neighbour_cpus") is not None]
    out = {
        "rounds": len(records),
        "error": errors[0] if errors else None,
        "check": next((r["check"] for r in records if "check" in r), None),
        "number": max((r.get("number", 1) for r in records), default=1),
        "neighbour_cpus": max(loads) if loads else None,
    }
    if samples and not errors:
        out.update(summarize(samples))
    return out


def best_floors(records):
    """Merge floor measurements taken at several times: keep the best rates.

    On a shared machine a neighbour can halve a measured rate; the floor is
    the fastest the machine was seen to go.  The medians of every run are kept
    (as lists) for the report.
    """
    good = [r for r in records if "error" not in r]
    if not good:
        return records[0]
    out = dict(good[0])
    out["runs"] = len(good)
    out["bandwidth"] = {
        name: {
            "best_GBps": max(r["bandwidth"][name]["best_GBps"] for r in good),
            "median_GBps": [r["bandwidth"][name]["median_GBps"] for r in good],
        }
        for name in good[0]["bandwidth"]
    }
    out["read_GBps"] = max(r["read_GBps"] for r in good)
    out["gemm"] = {
        dt: {
            "best_GFLOPs": max(r["gemm"][dt]["best_GFLOPs"] for r in good),
            "median_GFLOPs": [r["gemm"][dt]["median_GFLOPs"] for r in good],
        }
        for dt in good[0]["gemm"]
    }
    return out


def floor_of(case, floors):
    bw = floors["read_GBps"] * 1e9
    gemm = floors["gemm"][case.dtype]["best_GFLOPs"] * 1e9
    mem_s, flop_s = case.x_bytes / bw, case.flops / gemm
    return {"memory_s": mem_s, "gemm_s": flop_s, "floor_s": max(mem_s, flop_s)}


def floor_at(case, floors, threads):
    """floor_of at that thread count, or None where the floors were not measured."""
    measured = floors.get(threads, {"error": 1})
    return None if "error" in measured else floor_of(case, measured)


def measure_all(args, log):
    quiet = args.quiet_wait
    env = {}
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy

    results = {"floors": {}, "loss": {}, "memory": {}, "functions": {}}
    floor_runs = {}

    def measure_floors(when):
        for t in args.threads:
            log(f"machine floors ({when}), {t} thread(s) ...")
            extra = ["--quick"] if args.quick else []
            rec = run_json([os.path.join(HERE, "machine.py"), "--threads", str(t)] + extra, env, quiet)
            floor_runs.setdefault(t, []).append(rec)

    measure_floors("before")
    raw = {}
    for rnd in range(args.rounds):
        for case in args.cases:
            for t in args.threads:
                shift = (rnd + len(raw)) % len(args.peers)
                order = args.peers[shift:] + args.peers[:shift]
                for peer in order:
                    cmd = [os.path.join(HERE, "peers.py"), "--peer", peer, "--case", case, "--threads", str(t)]
                    cmd += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
                    cmd += ["--max-time", str(args.max_time), "--min-warmup-calls", str(args.min_warmup_calls)]
                    rec = run_json(cmd, env, quiet)
                    raw.setdefault((case, t, peer), []).append(rec)
                    msg = rec.get("error") or f"median {fmt_time(rec.get('median'))}"
                    log(f"round {rnd + 1}/{args.rounds} {case:9s} {t} thr {peer:15s} {msg}")
    results["loss"] = {key: pooled(recs) for key, recs in raw.items()}

    if args.memory:
        for peer in args.peers:
            for t in args.memory_threads:
                cmd = [os.path.join(HERE, "peers.py"), "--peer", peer, "--case", "digits64", "--threads", str(t), "--memory"]
                rec = run_json(cmd, env, quiet)
                results["memory"][(peer, t)] = rec
                log(f"memory digits64 {t} thr {peer:15s} {rec.get('error') or rec.get('memory')}")

    if args.functions:
        for t in args.function_threads:
            recs = {}
            for impl in ("csoftmax", "reference"):
                cmd = [os.path.join(HERE, "functions.py"), "--threads", str(t), "--impl", impl]
                cmd += ["--repeats", str(args.func_repeats), "--warmup", str(args.warmup)]
                cmd += ["--min-warmup-calls", str(args.min_warmup_calls)]
                recs[impl] = run_json(cmd, env, quiet)
                log(f"functions, {impl}, {t} thread(s): {recs[impl].get('error', 'done')}")
            results["functions"][t] = recs

    if not args.quick:
        measure_floors("after")
    results["floors"] = {t: best_floors(recs) for t, recs in floor_runs.items()}
    return results


# ----------------------------------------------------------------------------
# Report


def scaling_section(args, peers, loss, floors):
    """Markdown: each peer's speed-up over its own time at the fewest threads.

    The floor's own speed-up sits beside it: where the memory read bandwidth
    of one core is a small part of the machine's (server processors), a
    bandwidth-bound kernel can scale past the thread count, and a kernel at
    its floor cannot scale further than the floor does.
    """
    first = args.threads[0]
    header = ["case", "threads"] + [f"{LABELS[p]} speed-up" for p in peers] + ["floor speed-up", "csoftmax / floor"]
    rows = []
    for name in args.cases:
        case = CASES[name]
        floor_first = (floor_at(case, floors, first) or {}).get("floor_s")
        for t in args.threads:
            row = [name, t]
            for p in peers:
                a = loss.get((name, first, p), {}).get("median")
                b = loss.get((name, t, p), {}).get("median")
                row.append(fmt_ratio(a / b) if a and b else "-")
            fl = (floor_at(case, floors, t) or {}).get("floor_s")
            base = loss.get((name, t, "csoftmax"), {}).get("median")
            row.append(fmt_ratio(floor_first / fl) if floor_first and fl else "-")
            row.append(f"{base / fl:.1f}" if base and fl else "-")
            rows.append(row)
    return (
        f"### Thread scaling\n\nSpeed-up: median at {first} thread(s) / median at t threads, per peer; the floor's "
        f"speed-up is the floor at {first} thread(s) / the floor at t threads.\n\n" + md_table(header, rows) + "\n"
    )


def report(args, machine, results, elapsed):
    floors = results["floors"]
    loss = results["loss"]
    peers = args.peers
    other_peers = [p for p in peers if p not in CSOFTMAX_PEERS]
    lines = []
    add = lines.append

    add("# csoftmax benchmark results\n")
    add(
        "`loss_and_gradient` (mean cross-entropy of softmax(X @ W.T + b) and its gradients w.r.t. W and b) "
        "against its peers, on one machine, in one run. Times are medians of the time per call; "
        "ratios are peer median / csoftmax median (above 1: csoftmax is faster). "
        "Generated by `benchmarks/run.py`; the method is described in its docstring.\n"
    )
    add("## Machine and software\n")
    add(f"- CPU: {machine['cpu']}; {machine['logical_cpus']} logical CPUs ({machine['usable_cpus']} usable); memory {machine['memory']}")
    add(f"- Linux {machine['kernel']}, Python {machine['python']}")
    add("- " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()))
    if args.csoftmax_commit:
        add(f"- csoftmax built with `pip install .` (default flags) from commit `{args.csoftmax_commit}`")
    blas = next((f for f in floors.values() if "threadpool_info" in f), {}).get("threadpool_info", [])
    for d in blas:
        add(
            f"- threadpoolctl, NumPy's BLAS: {d.get('internal_api')} {d.get('version')}, "
            f"architecture {d.get('architecture')}, threading layer {d.get('threading_layer')}"
        )
    add("\n```\n" + machine["csoftmax_config"] + "\n```\n")
    add("Command:\n")
    add("```bash\n" + args.command + "\n```\n")
    env_note = f"`OMP_WAIT_POLICY={args.omp_wait_policy}`" if args.omp_wait_policy else "`OMP_WAIT_POLICY` unset (library defaults)"
    add(
        f"Every peer ran in its own process, pinned to the first 1 or 2 CPUs (as with `taskset -c 0` / `taskset -c 0,1`), "
        f"with `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS` and `MKL_NUM_THREADS` set to the thread count, "
        f"`threadpoolctl.threadpool_limits(threads)` after the peer's imports, `torch.set_num_threads(threads)`, "
        f"csoftmax's and scikit-learn's `n_threads=threads`, and for JAX at 1 thread "
        f"`XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`; {env_note} for all. "
        f"{args.rounds} round(s) of up to {args.repeats} samples per peer, case and thread count, in rotated order, pooled. "
        f"Run took {elapsed / 60:.1f} minutes.\n"
    )

    add("## Machine floors\n")
    rows = []
    for t, f in floors.items():
        if "error" in f:
            rows.append([t, f["error"], "", "", "", ""])
            continue
        bw, gm = f["bandwidth"], f["gemm"]

        def cell(best, medians, digits):
            word = "median" if len(medians) == 1 else "medians"
            return f"{best:.{digits}f} ({word} {', '.join(f'{m:.{digits}f}' for m in medians)})"

        rows.append(
            [
                t,
                cell(bw["np.sum"]["best_GBps"], bw["np.sum"]["median_GBps"], 1),
                cell(bw["a.dot(a)"]["best_GBps"], bw["a.dot(a)"]["median_GBps"], 1),
                cell(gm["float64"]["best_GFLOPs"], gm["float64"]["median_GFLOPs"], 0),
                cell(gm["float32"]["best_GFLOPs"], gm["float32"]["median_GFLOPs"], 0),
            ]
        )
    some = next(iter(floors.values()), {})
    add(
        f"Read bandwidth over a {some.get('array_bytes', 0) / 2**30:.2g} GiB float64 array (GB/s) and "
        f"{some.get('gemm_n', '?')} x {some.get('gemm_n', '?')} GEMM (GFLOP/s), measured {some.get('runs', 1)} time(s) "
        "(before and after the timings in a full run): the best repeat of all, and each run's median in brackets. "
        "Floors use the best figures.\n"
    )
    add(md_table(["threads", "np.sum GB/s", "a.dot(a) GB/s", "float64 GEMM GFLOP/s", "float32 GEMM GFLOP/s"], rows) + "\n")

    add("## loss_and_gradient: csoftmax vs peers\n")
    for p in peers:
        add(f"- **{LABELS[p]}**: {DESCRIPTIONS[p]}")
    add("")
    header = ["case (N x D x K)", "threads"] + [LABELS[p] for p in peers]
    header += ["fastest peer", "csoftmax vs fastest", "floor", "csoftmax / floor"]
    rows = []
    errors = []
    for name in args.cases:
        case = CASES[name]
        for t in args.threads:
            base = loss.get((name, t, "csoftmax"), {}).get("median")
            row = [f"{name} {case.label} ({case.n} x {case.d} x {case.k} {case.dtype})", t]
            best = None
            for p in peers:
                r = loss.get((name, t, p), {})
                if r.get("error"):
                    row.append("failed*" if "differs" in r["error"] else "n/a*")
                    errors.append(f"{name}, {t} thread(s), {LABELS[p]}: {r['error']}")
                    continue
                med = r.get("median")
                if p == "csoftmax":
                    row.append(f"**{fmt_time(med)}**")
                else:
                    row.append(f"{fmt_time(med)} ({fmt_ratio(med / base if base and med else None)})")
                if p in other_peers and med is not None and (best is None or med < best[1]):
                    best = (p, med)
            row.append(LABELS[best[0]] if best else "-")
            row.append(fmt_ratio(best[1] / base) if best and base else "-")
            fl = floor_at(case, floors, t)
            row.append(fmt_time(fl["floor_s"]) if fl else "-")
            row.append(f"{base / fl['floor_s']:.1f}" if fl and base else "-")
            rows.append(row)
    add(md_table(header, rows) + "\n")
    add(
        "Cell: median time per call (peer median / csoftmax median). \"csoftmax vs fastest\" is the fastest peer's "
        "median / csoftmax's median (above 1: csoftmax is faster than every peer). Batch cases time one call from "
        "Python, argument validation included.\n"
    )
    busy = sorted(
        (name, t, LABELS[p], rec["neighbour_cpus"])
        for (name, t, p), rec in loss.items()
        if rec.get("neighbour_cpus") is not None and rec["neighbour_cpus"] > 0.3
    )
    if busy:
        add(
            f"**Caveat: the machine was shared.** {len(busy)} of {len(loss)} measurements ran while other processes "
            "used more than 0.3 of the 2 CPUs (\"neighbour load\" in the details): "
            + "; ".join(f"{n} {t} thr {p} ({v:.1f})" for n, t, p, v in busy)
            + ". A 2-thread run then shares a core with a neighbour, and thread pools that spin while waiting "
            "(OpenBLAS, libgomp) can lose whole scheduler time slices per call; a 1-thread run loses less. "
            "Read those rows with their min and IQR.\n"
        )
    if errors:
        add("\\* Peers not timed:\n")
        for e in errors:
            add(f"- {e}")
        add("")

    if len(args.threads) > 1:
        add(scaling_section(args, peers, loss, floors))

    add("### Floors per case\n")
    rows = []
    for name in args.cases:
        case = CASES[name]
        for t in args.threads:
            fl = floor_at(case, floors, t)
            if fl is None:
                continue
            rows.append([name, t, fmt_bytes(case.x_bytes), f"{case.flops / 1e9:.3g}", fmt_time(fl["memory_s"]), fmt_time(fl["gemm_s"]), fmt_time(fl["floor_s"])])
    add(md_table(["case", "threads", "bytes of X", "GFLOP (4 N D K)", "X / bandwidth", "FLOPs / GEMM peak", "floor"], rows) + "\n")

    add("### Details\n")
    rows = []
    for name in args.cases:
        for t in args.threads:
            for p in peers:
                r = loss.get((name, t, p))
                if not r or r.get("error"):
                    continue
                chk = r.get("check") or {}
                err = max(chk.get("errors", {}).values(), default=None)
                bitwise = chk.get("bitwise_equal_to_1_thread")
                rows.append(
                    [
                        name,
                        t,
                        LABELS[p],
                        fmt_time(r["median"]),
                        fmt_time(r["min"]),
                        f"{fmt_time(r['q1'])} - {fmt_time(r['q3'])}",
                        f"{100 * r['iqr'] / r['median']:.0f} %",
                        f"{r['n_samples']} x {r['number']}",
                        (f"{err:.1e}" if err is not None else "-") + (" (bitwise = 1 thread)" if bitwise else ""),
                        f"{r['neighbour_cpus']:.2f}" if r.get("neighbour_cpus") is not None else "-",
                    ]
                )
    add(
        md_table(
            ["case", "threads", "peer", "median", "min", "IQR (q1 - q3)", "IQR / median", "samples x calls", "max rel. error vs csoftmax", "neighbour load (CPUs)"],
            rows,
        )
        + "\n"
    )
    add(
        "\"samples x calls\": samples pooled over the rounds, each the mean of that many back-to-back calls. "
        "\"neighbour load\": CPUs used by other processes on the machine while that measurement ran "
        "(the highest over the rounds); with 2 CPUs in all, a load near 1 takes a core from a 2-thread run.\n"
    )

    if results["memory"]:
        x_bytes = CASES["digits64"].x_bytes
        add("## Memory: one loss_and_gradient call, digits-like float64\n")
        add(
            f"Peak extra memory of one call after a warm-up, in a fresh process (X is {fmt_bytes(x_bytes)}). "
            "RSS: peak resident set during the call minus the RSS before it (freed heap trimmed first, kernel high-water "
            "mark reset); counts every allocator. tracemalloc: peak of Python / NumPy allocations during a second "
            "call (blind to PyTorch's and XLA's buffers).\n"
        )
        rows = []
        for (p, t), rec in results["memory"].items():
            if rec.get("error"):
                rows.append([LABELS[p], t, rec["error"], "", "", ""])
                continue
            m = rec["memory"]
            rss, tr = m.get("rss_bytes"), m.get("traced_bytes")
            rows.append(
                [
                    LABELS[p],
                    t,
                    fmt_bytes(rss),
                    f"{100 * rss / x_bytes:.1f} %" if rss is not None else "-",
                    fmt_bytes(tr),
                    f"{100 * tr / x_bytes:.1f} %",
                ]
            )
        add(md_table(["peer", "threads", "RSS extra", "RSS extra / X", "tracemalloc peak", "tracemalloc / X"], rows) + "\n")

    if results["functions"]:
        add("## Other public functions\n")
        add(
            "Row-wise functions on a (200000, 10) float64 array; model functions on the digits-like case (float64). "
            "Memory floor = bytes read + written once / read bandwidth at that thread count; GEMM floor = FLOPs / "
            "float64 GEMM peak. The reference is a plain NumPy / SciPy formulation, checked to agree with csoftmax first, "
            "timed in a separate process. Medians of the samples.\n"
        )
        rows = []
        for t, recs in results["functions"].items():
            bad = [rec["error"] for rec in recs.values() if rec.get("error")]
            if bad:
                rows.append(["all", t, "; ".join(bad)] + [""] * 7)
                continue
            f = floors.get(t, {})
            for fname, e in recs["csoftmax"]["functions"].items():
                ref = recs["reference"]["functions"][fname]
                c, r = e["median"], ref["median"]
                mem_floor = e["bytes"] / (f["read_GBps"] * 1e9) if "read_GBps" in f else None
                gemm_floor = e["flops"] / (f["gemm"]["float64"]["best_GFLOPs"] * 1e9) if e["flops"] and "gemm" in f else None
                rows.append(
                    [
                        fname,
                        t,
                        f"**{fmt_time(c)}**",
                        f"{fmt_time(r)} ({fmt_ratio(r / c)})" + ("" if ref["agree"] else " DISAGREES"),
                        e["reference"],
                        fmt_bytes(e["bytes"]),
                        fmt_time(mem_floor),
                        f"{c / mem_floor:.1f}" if mem_floor else "-",
                        fmt_time(gemm_floor) if gemm_floor else "-",
                        " / ".join(
                            f"{recs[i]['neighbour_cpus']:.2f}" if recs[i].get("neighbour_cpus") is not None else "-"
                            for i in ("csoftmax", "reference")
                        ),
                    ]
                )
        add(
            md_table(
                ["function", "threads", "csoftmax", "reference (ratio)", "reference", "bytes read + written", "memory floor", "csoftmax / memory floor", "GEMM floor", "neighbour load (csoftmax / ref.)"],
                rows,
            )
            + "\n"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="under a minute: csoftmax and NumPy, few repeats, smaller floors, functions and memory at the first thread count",
    )
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    p.add_argument("--peers", default=None, help="comma-separated, from: " + ", ".join(PEERS))
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--repeats", type=int, default=None, help="samples per peer and round (default 15; quick 5)")
    p.add_argument("--rounds", type=int, default=None, help="sweeps over all peers, pooled (default 2; quick 1)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per measurement (default 0.3; quick 0.05)")
    p.add_argument("--quiet-wait", type=float, default=None, help="max seconds to wait for a quiet machine before each measurement (default 2; quick 0)")
    p.add_argument("--omp-wait-policy", default=None, help="set OMP_WAIT_POLICY (e.g. PASSIVE) for every peer; default unset")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory measurements")
    p.add_argument("--no-functions", dest="functions", action="store_false", help="skip the other public functions")
    p.add_argument("--csoftmax-commit", default=None, help="commit csoftmax was built from, recorded in the report")
    p.add_argument("--output", default=None, help="Markdown file to write (default benchmarks/RESULTS.md; quick: none)")
    args = p.parse_args(argv)
    args.command = "python " + shlex.join(["benchmarks/run.py"] + list(argv))
    q = args.quick
    args.peers = [s for s in (args.peers or ",".join(QUICK_PEERS if q else PEERS)).split(",") if s]
    if "csoftmax" not in args.peers:
        args.peers.insert(0, "csoftmax")
    unknown = [s for s in args.peers if s not in PEERS]
    args.cases = [s for s in args.cases.split(",") if s]
    unknown += [s for s in args.cases if s not in CASES]
    if unknown:
        p.error(f"unknown peer or case: {', '.join(unknown)}")
    args.threads = [int(s) for s in args.threads.split(",") if s]
    args.memory_threads = args.threads[:1] if q else args.threads
    args.function_threads = args.threads[:1] if q else args.threads
    args.repeats = args.repeats or (5 if q else 15)
    args.max_time = 1.0 if q else 10.0
    args.min_warmup_calls = 1 if q else 3
    args.func_repeats = 3 if q else 15
    args.rounds = args.rounds or (1 if q else 2)
    args.warmup = args.warmup if args.warmup is not None else (0.05 if q else 0.3)
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0 if q else 2)
    if args.output is None and not q:
        args.output = os.path.join(HERE, "RESULTS.md")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    t0 = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    machine = machine_description()
    results = measure_all(args, log)
    text = report(args, machine, results, time.monotonic() - t0)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
