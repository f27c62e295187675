"""Chapter 5's measurements: the four causal algorithms, the chunk size, and one fixed-size benchmark.

algorithm_sweep       time and extra peak memory of each algorithm of linattn.CAUSAL_ALGORITHMS at each N
                      (a size whose estimate does not fit is skipped with a message); sweep_table prints it
chunk_size_costs      time and extra peak memory of the chunked algorithm at each chunk size
run_causal_benchmark  at one size (B = 8, N = 4096, d = 64 by default), in one run:
  - the chunked forward against the recurrent loop, on the same feature-mapped inputs. "Chunked" is the
    algorithm as linear_attention(..., causal=True) runs it: chunk after chunk on a CPU with a sequence
    per core (linattn.fast.causal), all chunks at once elsewhere; the all-at-once form is measured beside it;
  - the extra peak memory of the chunked forward against the cumulative-sum form;
  - linear_attention(causal=True) against causal=False, forward and forward + backward.
  benchmarks/causal_bench.py runs it, prints the ratios and checks them against the book's targets.

Extra peak memory is what a call holds at its worst moment beyond what existed before it, its output
included: torch.cuda.max_memory_allocated on a GPU, linattn.PeakMemoryTracker elsewhere.
"""
from functools import partial

import torch

from ..attention import linear_attention
from ..causal import CAUSAL_ALGORITHMS, DEFAULT_CHUNK_SIZE, chunked_causal_linear_attention, \
    cumsum_causal_linear_attention, recurrent_causal_linear_attention
from ..fast.causal import CPU_CHUNK_SIZE, chunk_loop_causal_linear_attention
from ..feature_maps import elu_plus_one
from ..validation import check_positive_int
from .memory import format_bytes, guard, peak_cuda_bytes
from .peak_memory import peak_bytes
from .roofline import dtype_name
from .timing import Timing, time_call

SLOW_ALGORITHMS = ("recurrent", "cumsum")   # timed twice only: one is slow, the other large
RATIOS = ("recurrent_over_chunked", "chunked_over_cumsum_memory", "causal_over_noncausal_forward",
          "causal_over_noncausal_forward_backward")


def _check_sizes(**sizes):
    for name, value in sizes.items():
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"{name} must not be empty")
            for item in value:
                check_positive_int(name, item)
        else:
            check_positive_int(name, value)


def extra_peak_bytes(device, fn, *args, **kwargs):
    """Extra peak memory of fn(*args, **kwargs) on `device` (see the module docstring)."""
    if torch.device(device).type == "cuda":
        return peak_cuda_bytes(fn, *args, device=device, **kwargs)
    return peak_bytes(fn, *args, **kwargs)


def estimated_bytes(name, seq_len, batch, dim, chunk_size=DEFAULT_CHUNK_SIZE):
    """A generous estimate of what algorithm `name` needs at these sizes (float32): a few copies of its
    largest intermediate, and the inputs. For the guard, not a measurement."""
    largest = {"masked": seq_len * seq_len, "cumsum": seq_len * dim * dim, "recurrent": dim * dim,
               "chunked": seq_len * chunk_size + seq_len * dim * (dim + 1) // chunk_size}
    if name not in largest:
        raise ValueError(f"no estimate for algorithm {name!r}; known: {sorted(largest)}")
    largest = largest[name]
    return 4 * batch * (3 * largest + 4 * seq_len * dim)


def random_features(batch, seq_len, dim, device="cpu", seed=0):
    """phi(Q), phi(K) (phi = elu + 1) and V: (batch, seq_len, dim) float32 on `device`, reproducible."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, seq_len, dim, generator=gen).to(device) for _ in range(3))
    return elu_plus_one(q), elu_plus_one(k), v


def algorithm_sweep(seq_lens, *, batch, dim, device="cpu", repeats=3, seed=0):
    """{(algorithm, N): {"time": Timing, "memory": extra peak bytes}} for each causal algorithm at each N."""
    _check_sizes(seq_lens=list(seq_lens), batch=batch, dim=dim, repeats=repeats)
    sweep = {}
    with torch.no_grad():
        for n in seq_lens:
            qf, kf, v = random_features(batch, n, dim, device, seed)
            for name, fn in CAUSAL_ALGORITHMS.items():
                if not guard(estimated_bytes(name, n, batch, dim), device, f"{name} at N = {n}"):
                    continue
                runs = min(2, repeats) if name in SLOW_ALGORITHMS else repeats
                timing = time_call(fn, qf, kf, v, repeats=runs, warmup=0, min_sample_s=0.01)
                sweep[name, n] = {"time": timing, "memory": extra_peak_bytes(device, fn, qf, kf, v)}
    return sweep


def sweep_table(sweep):
    """The sweep as a table: one row per N, median time and extra peak memory of each algorithm."""
    names = list(dict.fromkeys([*CAUSAL_ALGORITHMS, *(name for name, _ in sweep)]))
    seq_lens = sorted({n for _, n in sweep})
    lines = [f"{'N':>6} | " + " | ".join(f"{name:>22s}" for name in names)]
    for n in seq_lens:
        cells = [f"{sweep[name, n]['time'].median * 1e3:9.2f} ms {format_bytes(sweep[name, n]['memory']):>10s}"
                 if (name, n) in sweep else f"{'skipped':>22s}" for name in names]
        lines.append(f"{n:>6} | " + " | ".join(cells))
    return "\n".join(lines)


def chunk_size_costs(chunk_sizes, *, batch, seq_len, dim, device="cpu", repeats=3, seed=1):
    """{C: {"time": median seconds, "memory": extra peak bytes}} of the chunked algorithm at chunk size C."""
    _check_sizes(chunk_sizes=list(chunk_sizes), batch=batch, seq_len=seq_len, dim=dim, repeats=repeats)
    qf, kf, v = random_features(batch, seq_len, dim, device, seed)
    fn = chunked_causal_linear_attention
    costs = {}
    with torch.no_grad():
        for c in chunk_sizes:
            timing = time_call(fn, qf, kf, v, chunk_size=c, repeats=repeats, min_sample_s=0.01)
            costs[c] = {"time": timing.median, "memory": extra_peak_bytes(device, fn, qf, kf, v, chunk_size=c)}
    return costs


def _forward_backward(q, k, v, causal):
    linear_attention(q, k, v, causal=causal).sum().backward()


def _time_in_turn(calls, repeats, min_sample_s=0.2):
    """Timings of several calls, sampled in turn, so that a busy moment of the machine slows all of them.

    A fast call is repeated within each sample for at least `min_sample_s`, so that every sample,
    fast or slow, spans many of the operating system's scheduling slices.
    """
    for call in calls.values():
        call()                                     # warm-up
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            samples[name].append(time_call(call, repeats=1, warmup=0, min_sample_s=min_sample_s).times[0])
    return {name: Timing(tuple(times)) for name, times in samples.items()}


def run_causal_benchmark(batch=8, seq_len=4096, dim=64, *, repeats=5, device="cpu", dtype=torch.float32, seed=0,
                         min_sample_s=0.2):
    """Everything the causal benchmark reports: a dict of sizes, dtype, timings, peak bytes and RATIOS."""
    _check_sizes(batch=batch, seq_len=seq_len, dim=dim, repeats=repeats)
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, seq_len, dim, generator=gen).to(device=device, dtype=dtype) for _ in range(3))
    qf, kf = elu_plus_one(q), elu_plus_one(k)
    grads = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    with torch.no_grad():
        times = _time_in_turn({
            "chunked_forward": partial(chunk_loop_causal_linear_attention, qf, kf, v),
            "chunked_all_at_once_forward": partial(chunked_causal_linear_attention, qf, kf, v),
            "recurrent_forward": partial(recurrent_causal_linear_attention, qf, kf, v),
            "causal_forward": partial(linear_attention, q, k, v, causal=True),
            "noncausal_forward": partial(linear_attention, q, k, v, causal=False),
        }, repeats, min_sample_s)
        memory = {
            "chunked_forward": peak_bytes(chunk_loop_causal_linear_attention, qf, kf, v),
            "chunked_all_at_once_forward": peak_bytes(chunked_causal_linear_attention, qf, kf, v),
            "cumsum_forward": peak_bytes(cumsum_causal_linear_attention, qf, kf, v),
            "causal_forward": peak_bytes(linear_attention, q, k, v, causal=True),
        }
    times.update(_time_in_turn({
        "causal_forward_backward": partial(_forward_backward, *grads, True),
        "noncausal_forward_backward": partial(_forward_backward, *grads, False),
    }, repeats, min_sample_s))
    seconds = {name: t.median for name, t in times.items()}
    ratios = dict(zip(RATIOS, (
        seconds["recurrent_forward"] / seconds["chunked_forward"],
        memory["chunked_forward"] / memory["cumsum_forward"],
        seconds["causal_forward"] / seconds["noncausal_forward"],
        seconds["causal_forward_backward"] / seconds["noncausal_forward_backward"],
    )))
    return {
        "sizes": {"batch": batch, "seq_len": seq_len, "dim": dim, "chunk_size": CPU_CHUNK_SIZE,
                  "all_at_once_chunk_size": DEFAULT_CHUNK_SIZE},
        "dtype": dtype_name(dtype),
        "timings": {name: t.as_dict() for name, t in times.items()},
        "peak_bytes": memory,
        "ratios": ratios,
    }
