"""The causal benchmark: measures the causal algorithms at one size, prints the ratios and whether each target holds.

    .venv/bin/python benchmarks/causal_bench.py                     # B = 8, N = 4096, d = 64, fp32, CPU
    .venv/bin/python benchmarks/causal_bench.py --save book/data/ch05_causal_bench.json

The targets (TARGETS) are what the book expects of its causal linear attention on the machine it was
written on. They live here, not in a chapter or a timed test: timings on a shared machine vary, so
re-run when a ratio is close to its target. The exit status is 1 when a target is missed.
The CPU appendix shows the stored file (--save).
"""
import argparse

import linattn
from linattn.lab import report
from linattn.lab.causal_benchmark import run_causal_benchmark

# ratio name (linattn.lab.causal_benchmark.RATIOS) -> (comparison, bound, what it means)
TARGETS = {
    "recurrent_over_chunked": (">=", 10.0, "chunked forward at least 10x faster than the recurrent loop"),
    "chunked_over_cumsum_memory": ("<=", 1 / 8, "chunked extra peak memory at most 1/8 of the cumsum form's"),
    "causal_over_noncausal_forward": ("<=", 3.0, "causal forward at most 3x the non-causal forward"),
    "causal_over_noncausal_forward_backward": ("<=", 3.0, "causal forward + backward at most 3x the non-causal one"),
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
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save", metavar="PATH", help="store the result (linattn.save_results format)")
    args = parser.parse_args(argv)

    device = linattn.choose_device(args.device)
    result = run_causal_benchmark(args.batch, args.seq_len, args.dim, repeats=args.repeats, device=device)
    print(f"B = {args.batch}, N = {args.seq_len}, d = {args.dim}, {result['dtype']}, "
          f"chunk size {result['sizes']['chunk_size']}")
    for name, timing in result["timings"].items():
        print(f"  {name:28s} median {timing['median_s'] * 1e3:9.2f} ms  (IQR {timing['iqr_s'] * 1e3:.2f} ms)")
    for name, nbytes in result["peak_bytes"].items():
        print(f"  {name:28s} extra peak {linattn.format_bytes(nbytes)}")
    verdicts = check_targets(result["ratios"])
    for holds, message in verdicts.values():
        print(f"  [{'PASS' if holds else 'FAIL'}] {message}")
    result["targets_hold"] = {name: holds for name, (holds, _) in verdicts.items()}
    if args.save:
        path = linattn.save_results(args.save, [result], settings=vars(args), device=device)
        print(f"saved {path}")
    return all(result["targets_hold"].values())


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
