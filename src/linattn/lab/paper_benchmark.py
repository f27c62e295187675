"""The paper's own synthetic benchmark (Katharopoulos et al. 2020, §4.1.2 and Figure 1), as its own protocol.

What the paper states: attention and its gradients (a forward plus a backward pass) on synthetic
input, N = 2^9 ... 2^16, the batch scaled inversely with N, peak memory and time reported per sample,
every method run up to the longest N that fits the GPU (an 11 GB GTX 1080 Ti, where softmax stopped
at N = 4,096). What it does not state, and we choose: the batch constant (here `tokens` = batch x N,
2^16 by default, so the longest sequence runs alone), the head size (the profile's d, 64 outside
`ci`), one head, float32, and how many runs make a time.

The contenders are naive softmax, SDPA (with the backend that ran), and linear attention non-causal
and causal (`linattn.linear_attention`). Before each point the memory guard compares an estimate of
the forward+backward peak with the free memory, and a time budget per point also decides the longest
N (on a CPU it is what usually stops softmax): a point predicted to exceed it is skipped, with every
longer one. Skipped points are recorded with the reason and the bytes or seconds they would have needed.

    python -m linattn.lab.bench --protocol paper --device cpu --output book/data/paper_protocol_cpu.json
"""
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .baselines import backend_from_ops, get_implementation, recorded_ops, vectors_bytes
from .device import synchronize
from .memory import SAFETY_FRACTION, available_bytes, element_size, fits, format_bytes, peak_cuda_bytes
from .peak_memory import PeakMemoryTracker
from .progress import progress_bar
from .results import default_filename, find_stored
from .roofline import dtype_name, parse_dtype
from .timing import time_call

CONTENDERS = ("softmax", "sdpa", "linear", "linear-causal")
SOURCE = "Katharopoulos et al. 2020, §4.1.2, Figure 1"
MIN_REPEATS = 3
CALLS_AT_LEAST = MIN_REPEATS + 2   # a point runs the peak-memory call, time_call's sizing call, 3 samples


@dataclass(frozen=True)
class PaperSizes:
    seq_lens: tuple       # N
    tokens: int           # batch x N, the same at every N
    dim: int              # head dimension d
    repeats: int          # timed runs per point, at most
    time_budget: float | None   # seconds one point may take; longer ones are skipped, with every longer N


def _powers(first, last):
    return tuple(2 ** e for e in range(first, last + 1))


# By profile: what the command line runs (and the stored results hold). On a GPU the paper's full range;
# on a CPU the same range, cut where the time budget runs out; under ci tiny sizes, every one measured.
SIZES = {
    "ci": PaperSizes(_powers(6, 9), tokens=2 ** 9, dim=32, repeats=3, time_budget=None),
    "cpu": PaperSizes(_powers(9, 16), tokens=2 ** 16, dim=64, repeats=5, time_budget=30.0),
    "gpu": PaperSizes(_powers(9, 16), tokens=2 ** 16, dim=64, repeats=20, time_budget=30.0),
}
# What a page runs live: the same, except on a CPU a short range that takes seconds, every point measured
# (a time budget on a busy machine could leave a contender with too few points to fit a slope).
LIVE_SIZES = {**SIZES, "cpu": PaperSizes(_powers(9, 12), tokens=2 ** 12, dim=64, repeats=3, time_budget=None)}


def paper_sizes(profile_name, *, live=False):
    """The protocol's sizes under profile `profile_name` (ci, cpu, gpu); `live` for a page's own run."""
    table = LIVE_SIZES if live else SIZES
    if profile_name not in table:
        raise ValueError(f"unknown profile {profile_name!r}; choose one of {sorted(table)}")
    return table[profile_name]


def batch_for(tokens, seq_len):
    """The batch at sequence length `seq_len`: tokens / seq_len (a trusted caller checked it divides)."""
    return tokens // seq_len


def training_extra_bytes(name, batch, seq_len, dim, dtype, *, backend=None):
    """Estimated peak bytes of one forward+backward pass beyond q, k, v and the output's gradient (an
    upper bound of what `PeakMemoryTracker` sees on a CPU; checked in tests/lab/test_paper_benchmark.py).

    Naive softmax (and SDPA's math backend) keeps about four N x N float32 matrices alive at once
    (scores, weights, their gradients; the softmax runs in float32 in every dtype), causal a mask and
    a masked copy more. A fused SDPA kernel keeps the output, the three gradients, a float32 buffer
    and per-row statistics. Linear attention keeps a few N x d tensors in float32, and its causal form
    also the C x C blocks of the chunked algorithm.
    """
    impl, dtype = get_implementation(name), parse_dtype(dtype)
    size, work = element_size(dtype), max(element_size(dtype), 4)
    vectors = vectors_bytes(batch, seq_len, dim, dtype)
    entries = batch * seq_len * seq_len
    if impl.quadratic and (name.startswith("softmax") or backend == "math"):
        causal = (size * entries + seq_len * seq_len) if impl.causal else 0
        return 16 * entries + causal + 4 * vectors
    if impl.quadratic:
        return 4 * vectors + vectors_bytes(batch, seq_len, dim, torch.float32) + 8 * batch * seq_len
    if impl.causal:   # chunks of 64 tokens, the last one padded
        padded = -(-seq_len // 64) * 64
        return batch * padded * (16 * (dim + 1) + 3 * 64) * work + 4 * vectors
    return 16 * batch * seq_len * dim * work + 4 * vectors + batch * dim * (dim + 1) * work


def make_training_inputs(batch, seq_len, dim, dtype, device, *, seed=0):
    """q, k, v (batch, 1 head, N, d) that require gradients, and a fixed gradient for the output."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v, grad = (torch.randn(batch, 1, seq_len, dim, generator=gen).to(device=device, dtype=dtype)
                     for _ in range(4))
    return q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), grad


def forward_backward(fn, q, k, v, grad):
    """A call that runs fn(q, k, v) and back-propagates `grad` to q, k and v (the gradients are returned,
    not accumulated, so every call does the same work)."""
    return lambda: torch.autograd.grad(fn(q, k, v), (q, k, v), grad)


def _is_out_of_memory(error):
    return isinstance(error, torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(error)


def _peak(step, device, *, record_ops):
    """(extra peak bytes, what measured it, aten op names or None) of one call of `step`."""
    with recorded_ops() if record_ops else nullcontext() as names:
        if device.type == "cuda":
            peak, source = peak_cuda_bytes(step, device=device), "torch.cuda.max_memory_allocated"
        else:
            with PeakMemoryTracker() as tracker:
                step()   # its gradients are dropped at once, inside the tracker
            peak, source = tracker.peak, "PeakMemoryTracker"
    return peak, source, names


def measure_training_point(name, q, k, v, grad, *, repeats, time_budget=None, log=print):
    """Forward+backward of implementation `name` on q, k, v (B, 1, N, d): a record with its time and peak
    memory (whole batch and per sample), or why it was skipped (memory)."""
    impl = get_implementation(name)
    device, dtype = q.device, q.dtype
    batch, seq_len, dim = q.shape[0] * q.shape[1], q.shape[-2], q.shape[-1]
    record = {"implementation": name, "label": impl.label, "causal": impl.causal, "dtype": dtype_name(dtype),
              "batch": batch, "seq_len": seq_len, "dim": dim, "backend": None,
              "input_bytes": 4 * vectors_bytes(batch, seq_len, dim, dtype)}
    is_sdpa = name.startswith("sdpa")
    if is_sdpa:   # which backend runs decides the memory: a small slice shows it first
        small = [t[:1, :, :16].detach().requires_grad_(t.requires_grad) for t in (q, k, v, grad)]
        with recorded_ops() as names:
            forward_backward(impl.fn, *small)()
        record["backend"] = backend_from_ops(names)
    needed = training_extra_bytes(name, batch, seq_len, dim, dtype, backend=record["backend"])
    if device.type == "cuda":
        torch.cuda.empty_cache()
    budget = available_bytes(device)
    what = f"{impl.label} at N = {seq_len} ({record['dtype']}, batch {batch})"
    if not fits(needed, device, budget=budget):
        message = (f"Skipping {what}: forward+backward needs about {format_bytes(needed)} beyond its inputs, "
                   f"more than {SAFETY_FRACTION:.0%} of the {format_bytes(budget)} free on {device}.")
        return _skipped(record, "memory", message, log, bytes_needed=needed)
    step = forward_backward(impl.fn, q, k, v, grad)
    try:
        start = time.perf_counter()
        peak, source, names = _peak(step, device, record_ops=is_sdpa)
        synchronize(device)
        once = time.perf_counter() - start
        if is_sdpa:
            record["backend"] = backend_from_ops(names)   # what ran at this size
        if time_budget is not None:
            repeats = max(MIN_REPEATS, min(repeats, int(time_budget / max(once, 1e-3))))
        timing = time_call(step, repeats=repeats, warmup=0)
    except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
        if not _is_out_of_memory(error):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return _skipped(record, "memory", f"Skipping {what}: out of memory ({str(error).splitlines()[0]})", log,
                        bytes_needed=needed)
    return {**record, **timing.as_dict(), "time_per_sample_s": timing.median / batch, "peak_bytes": peak,
            "memory_per_sample_bytes": (peak + record["input_bytes"]) / batch, "memory": source,
            "bytes_needed": needed, "skipped": None, "skip_reason": None}


def _skipped(record, reason, message, log, **details):
    log(message)
    return {**record, **details, "skipped": message, "skip_reason": reason}


def predicted_seconds(name, last_seq_len, last_seconds, seq_len):
    """Seconds per forward+backward call at `seq_len`, from the last measured point: with batch x N fixed,
    the quadratic methods' work grows like N and linear attention's stays the same."""
    growth = 1 if get_implementation(name).quadratic else 0
    return last_seconds * (seq_len / last_seq_len) ** growth


def run_paper_benchmark(device, *, seq_lens, tokens, dim, repeats, time_budget=None, dtypes=("float32",),
                        implementations=CONTENDERS, progress=True, seed=0, log=None):
    """The paper's protocol on `device`: every implementation x dtype x N at batch tokens / N.

    time_budget: seconds one point may take; a point predicted (from the last one measured) to need more
    for its fewest runs is skipped, with every longer N of that implementation. None: no limit.
    Returns (records, settings), ready for `linattn.lab.results.save_results`.
    """
    device = torch.device(device)
    dtypes = [dtype_name(parse_dtype(d)) for d in dtypes]
    for name in implementations:
        get_implementation(name)
    for label, value in (("tokens", tokens), ("dim", dim), ("repeats", repeats)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if not seq_lens or any(not isinstance(n, int) or n < 1 or tokens % n for n in seq_lens):
        raise ValueError(f"seq_lens must be positive ints that divide tokens = {tokens} (batch x N is kept "
                         f"constant), got {seq_lens!r}")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    seq_lens = sorted(seq_lens)
    bar = progress_bar([(dt, n, name) for dt in dtypes for n in seq_lens for name in implementations],
                       "paper protocol", enabled=progress)
    log = log or bar.write
    records, last, inputs = [], {}, None   # last: (dtype, name) -> (N, seconds a call) of its last point
    for dt, n, name in bar:
        bar.set_postfix_str(f"{dt} N={n} {name}")
        if inputs is None or inputs[0] != (dt, n):
            inputs = None   # let the previous inputs go before making the next ones
            inputs = (dt, n), _inputs_or_none(batch_for(tokens, n), n, dim, parse_dtype(dt), device, seed, log)
        record = _point(name, dt, n, batch_for(tokens, n), dim, inputs[1], last.get((dt, name)), repeats,
                        time_budget, log)
        if not record["skipped"]:
            last[dt, name] = (n, record["median_s"])
        elif record["skip_reason"] == "time":
            last[dt, name] = (n, record["predicted_s"] / CALLS_AT_LEAST)   # longer N: predicted from here
        records.append(record)
    bar.close()
    settings = {"protocol": "paper", "source": SOURCE, "pass": "forward+backward", "tokens": tokens,
                "batches": {str(n): batch_for(tokens, n) for n in seq_lens}, "heads": 1, "dim": dim,
                "seq_lens": seq_lens, "repeats": repeats, "time_budget_s": time_budget, "dtypes": dtypes,
                "implementations": list(implementations), "skipped_for_time": skipped_for(records, "time"),
                "skipped_for_memory": skipped_for(records, "memory")}
    return records, settings


def _point(name, dt, n, batch, dim, inputs, last, repeats, time_budget, log):
    """One point of run_paper_benchmark: skipped (inputs too large, or over the time budget) or measured."""
    impl = get_implementation(name)
    base = {"implementation": name, "label": impl.label, "causal": impl.causal, "dtype": dt, "batch": batch,
            "seq_len": n, "dim": dim, "backend": None}
    if inputs is None:
        return _skipped(base, "memory", f"Skipping N = {n} ({dt}): the inputs alone do not fit.", lambda _: None,
                        bytes_needed=None)
    if time_budget is not None and last is not None:
        predicted = CALLS_AT_LEAST * predicted_seconds(name, *last, n)
        if predicted > time_budget:
            message = (f"Skipping {impl.label} at N = {n} ({dt}, batch {batch}): about {predicted:.3g} s for "
                       f"{MIN_REPEATS} runs, more than the time budget of {time_budget:g} s per point.")
            return _skipped(base, "time", message, log, predicted_s=predicted)
    return measure_training_point(name, *inputs, repeats=repeats, time_budget=time_budget, log=log)


def skipped_for(records, reason):
    """{dtype: {implementation: [N, ...]}} of the points skipped for `reason` ("time" or "memory")."""
    found = {}
    for r in records:
        if r.get("skip_reason") == reason:
            found.setdefault(r["dtype"], {}).setdefault(r["implementation"], []).append(r["seq_len"])
    return found


def _inputs_or_none(batch, n, dim, dtype, device, seed, log):
    needed = 4 * vectors_bytes(batch, n, dim, dtype)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if not fits(needed, device):
        log(f"Skipping N = {n}: q, k, v and the output's gradient alone need {format_bytes(needed)}.")
        return None
    return make_training_inputs(batch, n, dim, dtype, device, seed=seed)


def default_output(device):
    """paper_protocol_<device type>_<hardware>.json, e.g. paper_protocol_cpu_amd-epyc-2-threads.json."""
    return default_filename("paper_protocol", device)


def find_paper_results(folder):
    """Every paper_protocol_*.json in `folder`, loaded, sorted by hardware: [(path, payload), ...]."""
    return find_stored(folder, "paper_protocol")
