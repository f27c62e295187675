"""Chapter 5's causal benchmark: prints the measured ratios and whether each target holds.

    .venv/bin/python benchmarks/causal_bench.py                     # B = 8, N = 4096, d = 64, fp32, CPU
    .venv/bin/python benchmarks/causal_bench.py --save book/data/ch05_causal_bench.json

Timings are medians; other processes on the machine add noise, so re-run when a ratio is close to its
target. The chapter shows the stored file (--save) beside a smaller live run.
"""
import argparse

import linattn
from linattn.lab.causal_benchmark import check_targets, run_causal_benchmark


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
