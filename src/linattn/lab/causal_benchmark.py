"""The causal benchmark of Chapter 5: chunked against the recurrent loop, cumsum's memory, causal's overhead.

`run_causal_benchmark` measures, in one run on one device and dtype:
  - the chunked forward against the recurrent loop, on the same feature-mapped inputs. "Chunked" is
    the algorithm as linear_attention(..., causal=True) runs it: chunk after chunk on a single-threaded
    CPU (linattn.fast.causal), all chunks at once elsewhere; the all-at-once form is measured beside it;
  - the extra peak memory of the chunked forward against the cumulative-sum form,
  - linear_attention(causal=True) against causal=False, forward and forward + backward,
and `check_targets` compares the ratios with the targets the book sets (TARGETS).
"""
from functools import partial

import torch

from ..attention import linear_attention
from ..causal import DEFAULT_CHUNK_SIZE, chunked_causal_linear_attention, cumsum_causal_linear_attention, \
    recurrent_causal_linear_attention
from ..fast.causal import CPU_CHUNK_SIZE, chunk_loop_causal_linear_attention
from ..feature_maps import elu_plus_one
from .peak_memory import peak_bytes
from .roofline import dtype_name
from .timing import Timing, time_call
from ..validation import check_positive_int

# ratio name -> (comparison, bound, what it means)
TARGETS = {
    "recurrent_over_chunked": (">=", 10.0, "chunked forward at least 10x faster than the recurrent loop"),
    "chunked_over_cumsum_memory": ("<=", 1 / 8, "chunked extra peak memory at most 1/8 of the cumsum form's"),
    "causal_over_noncausal_forward": ("<=", 3.0, "causal forward at most 3x the non-causal forward"),
    "causal_over_noncausal_forward_backward": ("<=", 3.0, "causal forward + backward at most 3x the non-causal one"),
}


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
    """Measure everything the targets need; returns a dict of seconds (medians), bytes and ratios."""
    for name, value in (("batch", batch), ("seq_len", seq_len), ("dim", dim), ("repeats", repeats)):
        check_positive_int(name, value)
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
    ratios = {
        "recurrent_over_chunked": seconds["recurrent_forward"] / seconds["chunked_forward"],
        "chunked_over_cumsum_memory": memory["chunked_forward"] / memory["cumsum_forward"],
        "causal_over_noncausal_forward": seconds["causal_forward"] / seconds["noncausal_forward"],
        "causal_over_noncausal_forward_backward":
            seconds["causal_forward_backward"] / seconds["noncausal_forward_backward"],
    }
    return {
        "sizes": {"batch": batch, "seq_len": seq_len, "dim": dim, "chunk_size": CPU_CHUNK_SIZE,
                  "all_at_once_chunk_size": DEFAULT_CHUNK_SIZE},
        "dtype": dtype_name(dtype),
        "timings": {name: t.as_dict() for name, t in times.items()},
        "peak_bytes": memory,
        "ratios": ratios,
    }


def check_targets(ratios):
    """{ratio name: (holds, message)} for every target in TARGETS."""
    missing = set(TARGETS) - set(ratios)
    if missing:
        raise ValueError(f"ratios lack {sorted(missing)}")
    verdicts = {}
    for name, (comparison, bound, meaning) in TARGETS.items():
        value = ratios[name]
        holds = value >= bound if comparison == ">=" else value <= bound
        verdicts[name] = (holds, f"{meaning}: measured {value:.3g} ({comparison} {bound:.3g})")
    return verdicts
