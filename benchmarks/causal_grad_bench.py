"""The constant-memory causal gradient (paper §3.3.1) against autograd through the chunked form, on a CPU.

    .venv/bin/python benchmarks/causal_grad_bench.py                  # B = 8, N = 4096, d = 64, float32
    .venv/bin/python benchmarks/causal_grad_bench.py --save book/data/ch05_causal_grad_bench.json

Measures, on all threads: the forward pass (linear_attention(..., causal=True) without gradients, and
the Function's own forward), forward + backward through the Function and through autograd over the
chunked form (what linear_attention ran with gradients before the Function existed), and the extra
peak memory of each forward + backward (linattn.PeakMemoryTracker, gradients included). Then it checks
the targets of TARGETS and prints the ratios. Timings are medians of samples taken in turn, so a busy
moment of the machine slows every contender; re-run when a ratio is close to its target.
"""
import argparse
import statistics
from functools import partial

import torch

import linattn
from linattn.causal import DEFAULT_CHUNK_SIZE, chunked
from linattn.fast.causal_grad import causal_elu_linear_attention, default_chunk_size
from linattn.fast.phi import elu_plus_one_differentiable
from linattn.lab import report
from linattn.lab.roofline import dtype_name

EPS = 1e-6

# ratio name -> (comparison, bound, what it means)
TARGETS = {
    "function_peak_over_inputs": ("<=", 3.0, "forward+backward extra peak at most 3x the inputs' bytes"),
    "function_forward_backward_over_forward": ("<=", 3.0, "forward+backward at most 3x the forward time"),
    "function_over_autograd_forward_backward": ("<=", 1.0, "forward+backward at least as fast as autograd "
                                                           "through the chunked form"),
}


def autograd_through_chunked(q, k, v):
    """What linear_attention(..., causal=True) ran with gradients before: autograd over the chunked form."""
    phi = elu_plus_one_differentiable
    return chunked(phi(q), phi(k), v, EPS, DEFAULT_CHUNK_SIZE)


def function(q, k, v):
    return causal_elu_linear_attention(q, k, v, EPS)


def forward_backward(fn, leaves):
    fn(*leaves).sum().backward()
    for leaf in leaves:
        leaf.grad = None


def inference_forward(q, k, v):
    with torch.no_grad():
        return linattn.linear_attention(q, k, v, causal=True)


def time_in_turn(calls, repeats, min_sample_s):
    """Seconds per call (median) of each call, sampling them in turn after one warm-up call each."""
    for call in calls.values():
        call()
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            samples[name].append(linattn.time_call(call, repeats=1, warmup=0, min_sample_s=min_sample_s).times[0])
    return {name: {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                   "repeats": len(times)} for name, times in samples.items()}


def extra_peak(fn, leaves):
    """Extra peak bytes of forward + backward, the gradients included."""
    with linattn.PeakMemoryTracker() as tracker:
        fn(*leaves).sum().backward()
    for leaf in leaves:
        leaf.grad = None
    return tracker.peak


def run(batch=8, seq_len=4096, dim=64, *, repeats=7, min_sample_s=0.2, seed=0):
    """Measure everything the targets need on the CPU in float32; returns a dict of seconds, bytes, ratios."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, seq_len, dim, generator=gen) for _ in range(3))
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    timings = time_in_turn({
        "forward": partial(inference_forward, q, k, v),
        "function_forward": partial(function, *leaves),
        "function_forward_backward": partial(forward_backward, function, leaves),
        "autograd_forward_backward": partial(forward_backward, autograd_through_chunked, leaves),
    }, repeats, min_sample_s)
    peaks = {"function_forward_backward": extra_peak(function, leaves),
             "autograd_forward_backward": extra_peak(autograd_through_chunked, leaves)}
    inputs_bytes = sum(t.numel() * t.element_size() for t in (q, k, v))
    seconds = {name: t["median_s"] for name, t in timings.items()}
    ratios = {
        "function_peak_over_inputs": peaks["function_forward_backward"] / inputs_bytes,
        "autograd_peak_over_inputs": peaks["autograd_forward_backward"] / inputs_bytes,
        "function_forward_backward_over_forward": seconds["function_forward_backward"] / seconds["forward"],
        "function_forward_backward_over_function_forward":
            seconds["function_forward_backward"] / seconds["function_forward"],
        "function_over_autograd_forward_backward":
            seconds["function_forward_backward"] / seconds["autograd_forward_backward"],
        "autograd_forward_backward_over_forward": seconds["autograd_forward_backward"] / seconds["forward"],
    }
    return {
        "sizes": {"batch": batch, "seq_len": seq_len, "dim": dim, "chunk_size": default_chunk_size(dim),
                  "autograd_chunk_size": DEFAULT_CHUNK_SIZE},
        "dtype": dtype_name(q.dtype),
        "threads": torch.get_num_threads(),
        "timings": timings,
        "inputs_bytes": inputs_bytes,
        "peak_bytes": peaks,
        "ratios": ratios,
    }


def check_targets(ratios):
    """{ratio name: (holds, message)} for every target in TARGETS."""
    return report.check_targets(ratios, TARGETS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-sample-s", type=float, default=0.2, help="shortest timed sample (seconds)")
    parser.add_argument("--save", metavar="PATH", help="store the result (linattn.save_results format)")
    args = parser.parse_args(argv)
    for name in ("batch", "seq_len", "dim", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    result = run(args.batch, args.seq_len, args.dim, repeats=args.repeats, min_sample_s=args.min_sample_s)
    print(f"B = {args.batch}, N = {args.seq_len}, d = {args.dim}, {result['dtype']}, CPU, "
          f"{result['threads']} threads, {linattn.hardware_name('cpu')}")
    for name, timing in result["timings"].items():
        print(f"  {name:28s} median {timing['median_s'] * 1e3:9.2f} ms")
    for name, nbytes in result["peak_bytes"].items():
        print(f"  {name:28s} extra peak {linattn.format_bytes(nbytes)} "
              f"({nbytes / result['inputs_bytes']:.2f}x the inputs' {linattn.format_bytes(result['inputs_bytes'])})")
    for name, value in result["ratios"].items():
        print(f"  {name:48s} {value:.3g}")
    verdicts = check_targets(result["ratios"])
    for holds, message in verdicts.values():
        print(f"  [{'PASS' if holds else 'FAIL'}] {message}")
    result["targets_hold"] = {name: holds for name, (holds, _) in verdicts.items()}
    if args.save:
        path = linattn.save_results(args.save, [result], settings=vars(args), device="cpu")
        print(f"saved {path}")
    return all(result["targets_hold"].values())


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
