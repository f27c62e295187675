"""The benchmark of Chapter 6: every contender timed over a sweep of sequence lengths, stored as JSON.

    python -m linattn.lab.bench --help
    python -m linattn.lab.bench --device cuda --dtype float32 float16 --output book/data/bench_t4.json
    python -m linattn.lab.bench --protocol paper --device cpu --output book/data/paper_protocol_cpu.json

Two protocols. The default ("blog") times the forward pass at a fixed batch; its sizes default to
the profile of the device (`linattn.get_profile`): on a CUDA GPU the setup of Maddrell-Mander's blog
post (Towards Data Science, 2024): batch 32, d = 64, N from 128 to 6000, 100 repetitions, with a
time budget per point so that the whole sweep takes a few minutes on a T4. "paper" runs the
synthetic benchmark of Katharopoulos et al. 2020 (§4.1.2, Figure 1): forward plus backward, batch x N
fixed, time and memory per sample (`linattn.lab.paper_benchmark`). Each point is guarded: a size
that would not fit in memory is recorded as skipped, with the bytes it needs, instead of crashing.
"""
import argparse
import sys
import time
from contextlib import nullcontext

import torch

from . import paper_benchmark
from .baselines import (IMPLEMENTATIONS, backend_from_ops, cost, extra_bytes, get_implementation, recorded_ops,
                        sdpa_backend, vectors_bytes)
from .device import choose_device, hardware_name, supports_bfloat16, synchronize
from .memory import SAFETY_FRACTION, available_bytes, fits, format_bytes, peak_cuda_bytes
from .paper_report import paper_summary_lines
from .profiles import PROFILES, get_profile
from .progress import NoProgressBar, tqdm
from .report import summary_lines
from .results import default_filename, find_stored, load_results, save_results
from .roofline import DTYPES, default_sizes, dtype_name, measure_roofline, parse_dtype
from .timing import time_call

DEFAULT_IMPLEMENTATIONS = tuple(IMPLEMENTATIONS)
PROTOCOLS = ("blog", "paper")
# Seconds per point on a CUDA GPU unless --time-budget says otherwise: slow points get fewer repeats (at
# least 3), so that Chapter 6's exercise (the gpu profile, float32 and float16) takes about 2 minutes
# on a T4 by the roofline estimate of linattn.lab.sweep_time (tests/lab/test_sweep_time.py).
DEFAULT_CUDA_TIME_BUDGET = 5.0


def supported_dtypes(device):
    """float32 everywhere; float16 on CUDA GPUs, and bfloat16 on those that run it in hardware
    (`linattn.lab.device.supports_bfloat16`: not a T4). CPUs emulate half precision."""
    device = torch.device(device)
    if device.type == "cuda":
        return ["float32", "float16"] + (["bfloat16"] if supports_bfloat16(device) else [])
    return ["float32"]


def make_inputs(batch, seq_len, dim, dtype, device, *, seed=0):
    """q, k, v of shape (batch, 1 head, seq_len, dim): one attention layer with one head."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, 1, seq_len, dim, generator=gen).to(device=device, dtype=dtype)
                 for _ in range(3))


def _skip(record, message, needed, log):
    log(message)
    return {**record, "skipped": message, "bytes_needed": needed}


def measure_point(name, q, k, v, *, repeats, time_budget=None, log=print):
    """Time implementation `name` on q, k, v (B, H, N, d); a dict with its statistics or why it was skipped."""
    impl = get_implementation(name)
    device, dtype = q.device, q.dtype
    batch, seq_len, dim = q.shape[0] * q.shape[1], q.shape[-2], q.shape[-1]
    is_sdpa = name.startswith("sdpa")
    # Which SDPA backend runs decides its memory; a small slice shows it before the full size runs.
    backend = sdpa_backend(q[:1, :, :16], k[:1, :, :16], v[:1, :, :16], causal=impl.causal) if is_sdpa else None
    record = {"implementation": name, "label": impl.label, "causal": impl.causal, "dtype": dtype_name(dtype),
              "batch": batch, "seq_len": seq_len, "dim": dim, "backend": backend}
    needed = extra_bytes(name, batch, seq_len, dim, dtype, backend=backend, device=device)
    if device.type == "cuda":
        torch.cuda.empty_cache()   # start each point from a clean cache: fragments of earlier sizes do not linger
    budget = available_bytes(device)
    what = f"{impl.label} at N = {seq_len} ({record['dtype']}, batch {batch})"
    if not fits(needed, device, budget=budget):
        return _skip(record, f"Skipping {what}: it needs about {format_bytes(needed)} beyond its inputs, more "
                     f"than {SAFETY_FRACTION:.0%} of the {format_bytes(budget)} free on {device}.", needed, log)
    try:
        with torch.no_grad():
            start = time.perf_counter()
            with recorded_ops() if is_sdpa else nullcontext([]) as names:   # the backend that really ran
                impl.fn(q, k, v)
            synchronize(device)
            once = time.perf_counter() - start
            if is_sdpa:
                record["backend"] = backend = backend_from_ops(names)
            if time_budget is not None:   # a timed sample lasts at least a millisecond (see time_call)
                repeats = max(3, min(repeats, int(time_budget / max(once, 1e-3))))
            timing = time_call(impl.fn, q, k, v, repeats=repeats, warmup=0)
            if device.type == "cuda":
                peak, source = peak_cuda_bytes(impl.fn, q, k, v, device=device), "measured"
            else:
                peak, source = needed, "estimated"
    except torch.cuda.OutOfMemoryError as error:   # the estimate was too low: record it, do not crash
        torch.cuda.empty_cache()
        return _skip(record, f"Skipping {what}: out of memory ({str(error).splitlines()[0]})", needed, log)
    work = cost(name, batch, seq_len, dim, dtype, backend=backend)
    return {**record, **timing.as_dict(), "peak_bytes": peak, "memory": source, "skipped": None,
            "flops": work.flops if work else None, "bytes_moved": work.bytes if work else None}


def run_benchmark(device, *, dtypes=None, batch, dim, seq_lens, repeats, implementations=DEFAULT_IMPLEMENTATIONS,
                  time_budget=None, roofline=True, roofline_sizes=(None, None), progress=True, seed=0, log=None):
    """Measure every implementation x dtype x sequence length on `device`.

    roofline_sizes: (matmul side, copy bytes) for the microbenchmarks (default: `roofline.default_sizes`).
    Returns (records, settings), ready for `linattn.lab.results.save_results`.
    """
    device = torch.device(device)
    dtypes = [dtype_name(parse_dtype(d)) for d in (dtypes or supported_dtypes(device))]
    for name in implementations:
        get_implementation(name)
    for label, value in (("batch", batch), ("dim", dim), ("repeats", repeats)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if not seq_lens or any(not isinstance(n, int) or n < 1 for n in seq_lens):
        raise ValueError(f"seq_lens must be positive ints, got {seq_lens!r}")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    points = [(dt, n, name) for dt in dtypes for n in seq_lens for name in implementations]
    bar = tqdm(points, desc="benchmark", disable=not progress) if tqdm else NoProgressBar(points)
    log = log or bar.write
    matmul_size, copy_bytes = roofline_sizes
    rooflines = {dt: measure_roofline(device, dt, matmul_size=matmul_size, copy_bytes=copy_bytes) if roofline
                 else None for dt in dtypes}
    records, inputs = [], None
    for dt, n, name in bar:
        bar.set_postfix_str(f"{dt} N={n} {name}")
        if inputs is None or inputs[0] != (dt, n):
            inputs = None   # let the previous inputs go before making the next ones
            inputs = ((dt, n), _inputs_or_none(batch, n, dim, DTYPES[dt], device, seed, log))
        if inputs[1] is None:
            records.append(_skip({"implementation": name, "dtype": dt, "seq_len": n, "batch": batch, "dim": dim},
                                 f"Skipping N = {n} ({dt}): the inputs alone do not fit.", None, lambda _: None))
            continue
        records.append(measure_point(name, *inputs[1], repeats=repeats, time_budget=time_budget, log=log))
    bar.close()
    settings = {"batch": batch, "heads": 1, "dim": dim, "seq_lens": list(seq_lens), "repeats": repeats,
                "time_budget_s": time_budget, "dtypes": dtypes, "implementations": list(implementations),
                "rooflines": {dt: r.as_dict() if r else None for dt, r in rooflines.items()}}
    return records, settings


def _inputs_or_none(batch, n, dim, dtype, device, seed, log):
    needed = 3 * vectors_bytes(batch, n, dim, dtype)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if not fits(needed, device):
        log(f"Skipping N = {n}: q, k and v alone need {format_bytes(needed)}.")
        return None
    return make_inputs(batch, n, dim, dtype, device, seed=seed)


def default_output(device):
    """bench_<device type>_<hardware>.json, e.g. bench_cuda_tesla-t4.json."""
    return default_filename("bench", device)


# ---- reading stored results -------------------------------------------------------------------

def find_results(folder):
    """Every bench_*.json in `folder`, loaded and sorted by hardware name: [(path, payload), ...]."""
    return find_stored(folder, "bench")


# ---- command line -----------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m linattn.lab.bench",
        description="Time softmax and linear attention over sequence lengths and store the results as JSON.")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="blog",
                        help="blog: the forward pass at a fixed batch (default; on a GPU the sizes of "
                             "Maddrell-Mander's blog post); paper: Katharopoulos et al. 2020, §4.1.2: forward "
                             "plus backward, batch x N fixed, time and memory per sample")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: a CUDA GPU if present)")
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="default sizes (default: $LINATTN_PROFILE, else gpu on CUDA and cpu otherwise)")
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES),
                        help="default: float32, plus (blog) float16, and bfloat16 on GPUs that run it natively")
    parser.add_argument("--batch", type=int, help="batch size (blog; default: the profile's)")
    parser.add_argument("--tokens", type=int,
                        help="batch x N, the same at every N (paper; default 65536, under ci 512)")
    parser.add_argument("--dim", type=int, help="head dimension d (default: the profile's)")
    parser.add_argument("--seq-lens", type=int, nargs="+", help="sequence lengths N (default: the profile's)")
    parser.add_argument("--repeats", type=int, help="timed runs per point (default: the profile's)")
    parser.add_argument("--time-budget", type=float,
                        help=f"about this many seconds per point: fewer repeats (at least 3) for slow points "
                             f"(blog: default {DEFAULT_CUDA_TIME_BUDGET:g} on a CUDA GPU, none on a CPU); paper: a "
                             f"point that would need more even so is skipped, with every longer N (default: "
                             f"{paper_benchmark.SIZES['cpu'].time_budget:g}, none under ci)")
    parser.add_argument("--implementations", nargs="+", choices=list(IMPLEMENTATIONS),
                        help=f"what to time (blog: all; paper: {' '.join(paper_benchmark.CONTENDERS)})")
    parser.add_argument("--output", help="JSON file to write (default: bench_<device>_<hardware>.json, paper: "
                                         "paper_protocol_<device>_<hardware>.json)")
    parser.add_argument("--no-roofline", action="store_true", help="skip the matmul and copy microbenchmarks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def plan(args, device, profile):
    """The keywords of run_benchmark (blog) or paper_benchmark.run_paper_benchmark (paper) that the
    command line `args` ask for on `device`: the profile's sizes wherever an option is left out."""
    pick = lambda value, default: default if value is None else value  # noqa: E731
    if args.protocol == "paper":
        if args.batch is not None:
            raise ValueError("--batch does not apply to --protocol paper: the batch is tokens / N (set --tokens)")
        sizes = paper_benchmark.paper_sizes(profile.name)
        return {"seq_lens": pick(args.seq_lens, list(sizes.seq_lens)), "tokens": pick(args.tokens, sizes.tokens),
                "dim": pick(args.dim, sizes.dim), "repeats": pick(args.repeats, sizes.repeats),
                "time_budget": pick(args.time_budget, sizes.time_budget), "dtypes": args.dtype or ["float32"],
                "implementations": args.implementations or list(paper_benchmark.CONTENDERS)}
    if args.tokens is not None:
        raise ValueError("--tokens applies to --protocol paper only (the blog sweep takes --batch)")
    default_budget = DEFAULT_CUDA_TIME_BUDGET if device.type == "cuda" else None
    return {"dtypes": args.dtype or supported_dtypes(device), "batch": pick(args.batch, profile.batch),
            "dim": pick(args.dim, profile.dim), "seq_lens": pick(args.seq_lens, list(profile.seq_lens)),
            "repeats": pick(args.repeats, profile.repeats),
            "implementations": args.implementations or list(DEFAULT_IMPLEMENTATIONS),
            "time_budget": pick(args.time_budget, default_budget), "roofline": not args.no_roofline,
            "roofline_sizes": default_sizes(device, profile.name)}


def main(argv=None):
    args = parse_args(argv)
    paper = args.protocol == "paper"
    try:
        device = choose_device(args.device, verbose=False)
        profile = get_profile(args.profile, device=device)
        keywords = plan(args, device, profile)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if paper:
        budget = keywords["time_budget"]
        protocol = (f"the paper's protocol ({paper_benchmark.SOURCE}) with N = {min(keywords['seq_lens'])}.."
                    f"{max(keywords['seq_lens'])}, batch x N = {keywords['tokens']}, d = {keywords['dim']}, "
                    + (f"a time budget of {budget:g} s per point" if budget else "no time budget"))
    else:
        protocol = "the blog's sweep"
    print(f"Benchmarking {protocol} on {device}: {hardware_name(device)}, torch {torch.__version__} "
          f"(profile {profile.name}: {profile.description})")
    try:
        if paper:
            records, settings = paper_benchmark.run_paper_benchmark(device, **keywords, progress=not args.no_progress)
        else:
            records, settings = run_benchmark(device, **keywords, progress=not args.no_progress)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings["profile"] = profile.name
    output = args.output or (paper_benchmark.default_output(device) if paper else default_output(device))
    path = save_results(output, records, settings=settings, device=device)
    measured = sum(1 for r in records if not r["skipped"])
    print(f"Wrote {path}: {measured} points measured, {len(records) - measured} skipped.")
    print("\n".join((paper_summary_lines if paper else summary_lines)(load_results(path))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
