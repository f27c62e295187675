"""Every check and measurement for a GPU session, in one call: correctness on the device, the
benchmark sweep and the paper's protocol (Chapter 6), the causal benchmark and token-by-token
generation against a KV cache (Chapter 5), all written under one folder.

    PYTHONPATH=src python benchmarks/device_check.py --output "$OUT"      # on a machine with a GPU
    .venv/bin/python benchmarks/device_check.py --device cpu --quick --output /tmp/check

Time on a lent GPU is short, so nothing here needs typing while the clock runs. The folder gets
device_check.json (each check, passed or not, with its numbers), bench_<device>_<hardware>.json and
paper_protocol_<device>_<hardware>.json (copy both into book/data/ for Chapter 6) and
causal_<device>_<hardware>.json and generation_<device>_<hardware>.json. The dtypes checked are those the benchmark offers on the device
(`linattn.lab.bench.supported_dtypes`: bfloat16 only where the GPU runs it natively). Exit status 1
when a correctness check fails.
"""
import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

import linattn
from linattn.lab import bench, generation_bench, paper_benchmark
from linattn.lab.baselines import IMPLEMENTATIONS
from linattn.lab.causal_benchmark import run_causal_benchmark
from linattn.lab.roofline import parse_dtype

def _causal_bench():
    """benchmarks/causal_bench.py, beside this script: it holds the causal benchmark's targets."""
    spec = importlib.util.spec_from_file_location("causal_bench", Path(__file__).resolve().with_name("causal_bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_targets = _causal_bench().check_targets

# Largest relative error allowed against the float64 reference (linattn.relative_error: Frobenius norm).
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}


def error_of(result, reference):
    return linattn.relative_error(result.detach().double().cpu(), reference.detach().double().cpu())


def check(name, error, dtype_name):
    bound = TOLERANCE[dtype_name]
    return {"check": name, "dtype": dtype_name, "error": error, "bound": bound, "passed": error <= bound}


def reference(name, q, k, v):
    """What implementation `name` should give, in float64 on the CPU."""
    q, k, v = (t.detach().double().cpu() for t in (q, k, v))
    impl = IMPLEMENTATIONS[name]
    if impl.quadratic:
        return linattn.softmax_attention(q, k, v, causal=impl.causal)
    phi = linattn.elu_plus_one
    if impl.causal:
        return linattn.masked_causal_linear_attention(phi(q), phi(k), v)
    return linattn.einsum_linear_attention(q, k, v)


def forward_checks(device, dtypes, seq_len):
    found = []
    for dtype_name in dtypes:
        q, k, v = bench.make_inputs(2, seq_len, 64, parse_dtype(dtype_name), device, seed=1)
        for name, impl in IMPLEMENTATIONS.items():
            with torch.no_grad():
                error = error_of(impl.fn(q, k, v), reference(name, q, k, v))
            found.append(check(f"forward {name}", error, dtype_name))
    return found


def gradient_checks(device, seq_len):
    found = []
    q, k, v = bench.make_inputs(2, seq_len, 32, torch.float64, "cpu", seed=2)
    for causal in (False, True):
        expected = torch.autograd.grad(linattn.linear_attention(*(t.requires_grad_() for t in (q, k, v)),
                                                                causal=causal).square().sum(), (q, k, v))
        on_device = [t.detach().to(device=device, dtype=torch.float32).requires_grad_() for t in (q, k, v)]
        got = torch.autograd.grad(linattn.linear_attention(*on_device, causal=causal).square().sum(), on_device)
        for which, g, e in zip("qkv", got, expected):
            found.append(check(f"gradient d/d{which} linear, causal={causal}", error_of(g, e), "float32"))
    return found


def algorithm_checks(device, seq_len):
    """Every causal algorithm of Chapter 5, on the device, against the masked quadratic form."""
    q, k, v = bench.make_inputs(2, seq_len, 32, torch.float32, device, seed=3)
    qf, kf = linattn.elu_plus_one(q), linattn.elu_plus_one(k)
    expected = linattn.masked_causal_linear_attention(qf.double().cpu(), kf.double().cpu(), v.double().cpu())
    return [check(f"causal algorithm {name}", error_of(algorithm(qf, kf, v), expected), "float32")
            for name, algorithm in linattn.CAUSAL_ALGORITHMS.items()]


def run(args):
    device = linattn.choose_device(args.device, verbose=False)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dtypes = bench.supported_dtypes(device)
    seq_len = 64 if args.quick else 300
    checks = forward_checks(device, dtypes, seq_len) + gradient_checks(device, seq_len // 2) \
        + algorithm_checks(device, seq_len)
    for c in checks:
        print(f"[{'PASS' if c['passed'] else 'FAIL'}] {c['check']} ({c['dtype']}): "
              f"error {c['error']:.1e} (bound {c['bound']:.0e})")

    sweep = ["--profile", "ci"] if args.quick else ["--time-budget", str(args.time_budget)]
    bench_file = out / bench.default_output(device)
    bench_status = bench.main(["--device", str(device), "--no-progress", "--output", str(bench_file), *sweep])

    paper_file = out / paper_benchmark.default_output(device)
    paper_status = bench.main(["--protocol", "paper", "--device", str(device), "--no-progress",
                               "--output", str(paper_file), *sweep])

    generation_file = out / bench.default_output(device).replace("bench_", "generation_", 1)
    generation_status = generation_bench.main(["--device", str(device), "--profile", "ci" if args.quick else "gpu",
                                               *([] if args.quick else ["--repeats", "5"]),
                                               "--output", str(generation_file)])

    sizes = dict(batch=2, seq_len=256, dim=16, repeats=1) if args.quick else dict(batch=8, seq_len=4096, dim=64)
    quick = dict(min_sample_s=1e-3) if args.quick else {}   # tiny sizes: samples need not last long
    causal = run_causal_benchmark(**sizes, device=device, **quick)
    causal["targets_hold"] = {name: holds for name, (holds, _) in check_targets(causal["ratios"]).items()}
    causal_file = out / bench.default_output(device).replace("bench_", "causal_", 1)
    linattn.save_results(causal_file, [causal], settings=sizes, device=device)

    summary = {"environment": linattn.environment(device), "checks": checks, "bench_exit_status": bench_status,
               "paper_exit_status": paper_status, "generation_exit_status": generation_status,
               "files": [bench_file.name, causal_file.name, paper_file.name, generation_file.name],
               "seconds": time.perf_counter() - started}
    (out / "device_check.json").write_text(json.dumps(summary, indent=1) + "\n")
    failed = [c["check"] for c in checks if not c["passed"]]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed; results in {out} "
          f"({summary['seconds']:.0f} s)")
    return not failed and bench_status == paper_status == generation_status == 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="default: a CUDA GPU if present, else the CPU")
    parser.add_argument("--output", required=True, help="folder for the result files")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the tests use this)")
    parser.add_argument("--time-budget", type=float, default=2.0, help="about this many seconds per benchmark point")
    return 0 if run(parser.parse_args(argv)) else 1


if __name__ == "__main__":
    sys.exit(main())
