"""Generation measured: linear attention's constant state against a KV-cached softmax, token by token.

The model is one attention layer and nothing else (no projections, no feed-forward block): `heads`
heads of size d = d_v, float32 unless asked otherwise. For each prompt length N_0 the prompt is read
once (a prefill: `LinearAttentionState.from_prefix`, or a `KVCache` of its keys and values), then
`new_tokens` tokens are generated one at a time with `linear_attention_step` or
`softmax_attention_step`. Every timed call starts from the same prompt: the linear state is never
modified, and the cache is rolled back to N_0 tokens after each call (its buffers grow once, before
the timing). Two measures:

  latency     batch 1: seconds per generated token, the contenders timed in turn;
  throughput  the largest batch that fits, found for each contender separately: generated tokens
              per second.

Latency also times softmax without a cache ("recompute": causal attention over the whole prefix
for every new token, what a decoder without a KV cache does), up to `recompute_max_prompt`.

The throughput batch is the largest that fits the plan's memory budget (`estimated_bytes`, checked
before anything is built), and at most `max_batch`, the cap that keeps a point within seconds on a
CPU (`choose_batch`). Each contender gets its own largest batch, so the two batches may differ.

    python -m linattn.lab.generation_bench --profile cpu --output book/data/ch05_generation_bench.json
"""
import argparse
import dataclasses
import math
from dataclasses import dataclass

import torch

from ..attention import softmax_attention
from ..generation import KVCache, LinearAttentionState, linear_attention_step, softmax_attention_step
from ..validation import accumulation_dtype, check_positive_int
from .device import choose_device, synchronize
from .memory import SAFETY_FRACTION, available_bytes, element_size, format_bytes, guard
from .profiles import PROFILES, get_profile
from .results import save_results
from .roofline import DTYPES, dtype_name, parse_dtype
from .timing import Timing, time_call

METHODS = {"linear": "linear attention's state", "kv_cache": "softmax with a KV cache",
           "recompute": "softmax without a cache (recompute the prefix)"}
PROMPT_SEQUENCES = 4   # distinct prompts in a batch; larger batches hold copies of them
RECORD_KEYS = ("measure", "method", "prompt_len", "batch", "new_tokens", "heads", "dim", "dtype", "estimated_bytes",
               "skipped", "step", "tokens_per_s", "held_bytes", "batch_limited_by")


@dataclass(frozen=True)
class GenerationPlan:
    """What one run measures. Sizes are per attention layer; budgets bound the throughput batch."""
    prompt_lens: tuple             # prompt lengths N_0, increasing
    dim: int = 64                  # head size d (= d_v)
    heads: int = 1
    new_tokens: int = 16           # tokens generated per timed call
    repeats: int = 5               # timed samples per point
    max_batch: int = 1024          # the largest throughput batch: the time cap
    memory_budget: int = None      # bytes a point may use (None: what the device has free)
    recompute_max_prompt: int = 0  # time softmax without a cache up to this prompt length (0: never)
    min_sample_s: float = 0.01     # time_call repeats a fast call within a sample for at least this long

    def __post_init__(self):
        lens = self.prompt_lens
        if not isinstance(lens, (tuple, list)) or not lens:
            raise ValueError(f"prompt_lens must be a non-empty sequence of positive ints, got {lens!r}")
        for n in lens:
            check_positive_int("each prompt length", n)
        if list(lens) != sorted(set(lens)):
            raise ValueError(f"prompt_lens must increase without repeats, got {lens!r}")
        object.__setattr__(self, "prompt_lens", tuple(lens))
        for name in ("dim", "heads", "new_tokens", "repeats", "max_batch"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("memory_budget", self.memory_budget, allow_none=True)
        if not _positive_number(self.min_sample_s):
            raise ValueError(f"min_sample_s must be a positive number of seconds, got {self.min_sample_s!r}")
        if isinstance(self.recompute_max_prompt, bool) or not isinstance(self.recompute_max_prompt, int) \
                or self.recompute_max_prompt < 0:
            raise ValueError(f"recompute_max_prompt must be an int >= 0, got {self.recompute_max_prompt!r}")


def _positive_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


MiB, GiB = 2 ** 20, 2 ** 30
# The stored runs (benchmark) and the smaller live runs of Chapter 5, per size profile; d is the profile's.
PLANS = {
    "ci": GenerationPlan((16, 64, 256), new_tokens=4, repeats=3, max_batch=16, memory_budget=4 * MiB,
                         recompute_max_prompt=256, min_sample_s=0.002),
    "cpu": GenerationPlan((256, 1024, 4096), new_tokens=16, repeats=7, max_batch=256, memory_budget=1 * GiB,
                          recompute_max_prompt=1024, min_sample_s=0.02),
    "gpu": GenerationPlan((256, 1024, 4096, 16384), new_tokens=32, repeats=20, max_batch=2 ** 16,
                          recompute_max_prompt=16384, min_sample_s=0.01),
}
LIVE_PLANS = {
    "ci": PLANS["ci"],
    "cpu": GenerationPlan((256, 1024, 4096), new_tokens=8, repeats=3, max_batch=64, memory_budget=256 * MiB,
                          recompute_max_prompt=1024, min_sample_s=0.01),
    "gpu": dataclasses.replace(PLANS["gpu"], new_tokens=16, repeats=5, max_batch=2 ** 14),
}


def plan_for(profile=None, *, live=False, device=None):
    """The plan of a size profile (a name, a Profile, or None for linattn.get_profile), with its head size."""
    profile = get_profile(profile if isinstance(profile, str) or profile is None else profile.name, device=device)
    return dataclasses.replace((LIVE_PLANS if live else PLANS)[profile.name], dim=profile.dim)


# ---- memory -----------------------------------------------------------------------------------

def _prompt_copies(batch):
    """How many distinct prompts a batch holds (a divisor of the batch, at most PROMPT_SEQUENCES)."""
    return math.gcd(batch, PROMPT_SEQUENCES)


def estimated_bytes(method, prompt_len, batch, plan, dtype=torch.float32):
    """Peak bytes of preparing and running one point: what it keeps, its inputs and a step's temporaries.

    An upper estimate, used to choose the batch and to guard before anything is built.
    """
    _check_point(method, prompt_len, batch)
    return _estimate(method, prompt_len, batch, plan, parse_dtype(dtype))


def _estimate(method, prompt_len, batch, plan, dtype):
    """estimated_bytes without the checks (its callers made them)."""
    size, work = element_size(dtype), element_size(accumulation_dtype(dtype))
    h, d, g = plan.heads, plan.dim, plan.new_tokens
    copies = _prompt_copies(batch)
    prompt = copies * h * prompt_len * 2 * d * size         # the distinct prompts' keys and values
    tokens = 3 * g * batch * h * d * size                   # the new tokens' q, k, v
    if method == "linear":
        prefill = 3 * copies * h * prompt_len * d * work     # phi(k) and working copies while reading the prompt
        state = batch * h * (d * d + d) * work
        return prompt + prefill + tokens + 4 * state         # the prompt's state, the old and new one, phi(k) v^T
    if method == "kv_cache":
        per_position = batch * h * 2 * d * size
        capacity, peak = prompt_len, prompt_len
        while capacity < prompt_len + g:                     # the buffers double when full
            peak = max(peak, 3 * capacity)                   # old and new buffers, while they are copied
            capacity *= 2
        scores = 4 * batch * h * (prompt_len + g + d) * work   # scores, weights, their casts, the output
        return prompt + tokens + peak * per_position + scores
    length = prompt_len + g                                  # recompute: the whole prefix, every token
    sequence = 4 * batch * h * length * d * size             # q, k, v of the whole sequence, and q's prompt part
    return prompt + tokens + sequence + batch * h * length * length * (4 * work + 2)   # scores, weights, masks


def memory_budget(device, plan):
    """Bytes a point may use: the device's free memory, capped by the plan's budget."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()   # blocks PyTorch keeps cached count as used in the free memory
    free = available_bytes(device)
    return free if plan.memory_budget is None else min(free, plan.memory_budget)


def choose_batch(bytes_for, *, memory_budget, max_batch):
    """(batch, what limited it) for a throughput point: 'max_batch' or 'memory'.

    The largest batch <= max_batch whose `bytes_for(batch)` fits SAFETY_FRACTION of `memory_budget`;
    (0, 'memory') when not even one sequence fits. bytes_for must grow with the batch.
    """
    check_positive_int("max_batch", max_batch)
    if not _positive_number(memory_budget):
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    limit = SAFETY_FRACTION * memory_budget
    if bytes_for(max_batch) <= limit:
        return max_batch, "max_batch"
    if bytes_for(1) > limit:
        return 0, "memory"
    fitting, too_big = 1, max_batch                          # bisect between a batch that fits and one that does not
    while too_big - fitting > 1:
        middle = (fitting + too_big) // 2
        fitting, too_big = (middle, too_big) if bytes_for(middle) <= limit else (fitting, middle)
    return fitting, "memory"


# ---- one prepared generation ------------------------------------------------------------------

def generation_inputs(prompt_len, batch, plan, *, device="cpu", dtype=torch.float32, seed=0):
    """The random inputs of a point: (k0, v0, tokens).

    k0, v0: the prompt's keys and values, (copies, heads, N_0, d), `copies` distinct prompts that the
    batch repeats; tokens: plan.new_tokens triples (q_t, k_t, v_t), each (batch // copies, copies, heads, d).
    """
    for name, value in (("prompt_len", prompt_len), ("batch", batch)):
        check_positive_int(name, value)
    return _inputs(prompt_len, batch, plan, torch.device(device), parse_dtype(dtype), seed)


def _inputs(prompt_len, batch, plan, device, dtype, seed):
    """generation_inputs without the checks (its callers made them)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    copies = _prompt_copies(batch)
    lead = (batch // copies, copies, plan.heads)

    def randn(*shape):
        return torch.randn(shape, generator=gen, device=device).to(dtype)

    k0, v0 = (randn(copies, plan.heads, prompt_len, plan.dim) for _ in range(2))
    tokens = list(zip(*(randn(plan.new_tokens, *lead, plan.dim).unbind(0) for _ in range(3))))
    return k0, v0, tokens


def prepare_generation(method, prompt_len, batch, plan, *, device="cpu", dtype=torch.float32, seed=0):
    """(generate, held_bytes): generate() makes plan.new_tokens tokens after the same prompt each time
    and returns the last token's output, (batch // copies, copies, heads, d) (see generation_inputs).

    held_bytes is what the method keeps between tokens: the state, the cache's buffers (after their
    growth), or for recompute the queries, keys and values of the whole sequence.
    """
    _check_point(method, prompt_len, batch)
    return _prepare(method, prompt_len, batch, plan, torch.device(device), parse_dtype(dtype), seed)


def _prepare(method, prompt_len, batch, plan, device, dtype, seed):
    """prepare_generation without the checks (its callers made them)."""
    k0, v0, tokens = _inputs(prompt_len, batch, plan, device, dtype, seed)
    repeats = batch // k0.shape[0]
    if method == "linear":
        # Read the distinct prompts once; every sequence gets its own copy of its prompt's state.
        prompt_state = LinearAttentionState(*(s.expand(repeats, *s.shape).clone()
                                              for s in LinearAttentionState.from_prefix(k0, v0)))

        def generate():
            state = prompt_state
            for q_t, k_t, v_t in tokens:
                out, state = linear_attention_step(state, q_t, k_t, v_t)
            return out

        return generate, prompt_state.nbytes
    k0, v0 = k0.expand(repeats, *k0.shape), v0.expand(repeats, *v0.shape)
    if method == "recompute":
        q_prompt = torch.randn(k0.shape, generator=torch.Generator(device=device).manual_seed(seed + 1),
                               device=device).to(dtype)
        q, k, v = (torch.cat([prompt, torch.stack(new, dim=-2)], dim=-2)
                   for prompt, new in zip((q_prompt, k0, v0), zip(*tokens)))

        def generate():
            for end in range(prompt_len + 1, prompt_len + plan.new_tokens + 1):
                out = softmax_attention(q[..., :end, :], k[..., :end, :], v[..., :end, :], causal=True)[..., -1, :]
            return out

        return generate, q.nbytes + k.nbytes + v.nbytes
    cache = KVCache(k0, v0)                                    # copies the expanded prompts: one per sequence

    def generate():
        for q_t, k_t, v_t in tokens:
            out, _ = softmax_attention_step(cache, q_t, k_t, v_t)
        cache.length = prompt_len                              # roll back: every call sees the same prompt
        return out

    generate()                                                 # the buffers grow here, not while timed
    return generate, cache.nbytes


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")


def _check_point(method, prompt_len, batch):
    _check_method(method)
    for name, value in (("prompt_len", prompt_len), ("batch", batch)):
        check_positive_int(name, value)


def _check_plan(plan):
    if not isinstance(plan, GenerationPlan):
        raise ValueError(f"plan must be a GenerationPlan, got {type(plan).__name__}")


# ---- measuring --------------------------------------------------------------------------------

def _record(measure, method, prompt_len, batch, plan, dtype, needed):
    return {"measure": measure, "method": method, "prompt_len": prompt_len, "batch": batch,
            "new_tokens": plan.new_tokens, "heads": plan.heads, "dim": plan.dim, "dtype": dtype_name(dtype),
            "estimated_bytes": needed, "skipped": None, "step": None, "tokens_per_s": None, "held_bytes": None,
            "batch_limited_by": None}


def _per_step(timing, new_tokens):
    return Timing(tuple(t / new_tokens for t in timing.times))


def _time_in_turn(calls, plan):
    """Timings of several calls sampled in turn, so that a busy moment of the machine slows all of them."""
    for call in calls.values():
        call()                                                 # warm-up
    samples = {name: [] for name in calls}
    for _ in range(plan.repeats):
        for name, call in calls.items():
            samples[name].append(time_call(call, repeats=1, warmup=0, min_sample_s=plan.min_sample_s).times[0])
    return {name: Timing(tuple(times)) for name, times in samples.items()}


def _fill(record, timing, held, plan):
    step = _per_step(timing, plan.new_tokens)
    record.update(step=step.as_dict(), tokens_per_s=record["batch"] / step.median, held_bytes=held)
    return record


def measure_latency(prompt_len, plan, *, device, dtype=torch.float32, seed=0):
    """Batch-1 records at one prompt length: linear, kv_cache and (up to plan.recompute_max_prompt) recompute."""
    _check_point("linear", prompt_len, 1)
    _check_plan(plan)
    return _latency(prompt_len, plan, torch.device(device), parse_dtype(dtype), seed)


def _latency(prompt_len, plan, device, dtype, seed):
    """measure_latency without the checks (its callers made them)."""
    methods = [m for m in METHODS if m != "recompute" or prompt_len <= plan.recompute_max_prompt]
    budget = memory_budget(device, plan)
    records, calls, held = {}, {}, {}
    for method in methods:
        needed = _estimate(method, prompt_len, 1, plan, dtype)
        records[method] = _record("latency", method, prompt_len, 1, plan, dtype, needed)
        if not guard(needed, device, f"{METHODS[method]} at N_0 = {prompt_len}, batch 1", budget=budget):
            records[method]["skipped"] = _too_big(needed, budget)
            continue
        budget -= needed                                       # the contenders live side by side
        calls[method], held[method] = _prepare(method, prompt_len, 1, plan, device, dtype, seed)
    with torch.no_grad():
        timings = _time_in_turn(calls, plan)
    return [_fill(records[m], timings[m], held[m], plan) if m in timings else records[m] for m in methods]


def _too_big(needed, budget):
    return f"needs about {format_bytes(needed)}, more than {SAFETY_FRACTION:.0%} of {format_bytes(budget)}"


def measure_throughput(method, prompt_len, plan, *, device, dtype=torch.float32, seed=0, log=print):
    """The record of `method` at the largest batch that fits (see choose_batch) and one prompt length."""
    _check_point(method, prompt_len, 1)
    _check_plan(plan)
    return _throughput(method, prompt_len, plan, torch.device(device), parse_dtype(dtype), seed, log)


def _throughput(method, prompt_len, plan, device, dtype, seed, log):
    """measure_throughput without the checks (its callers made them)."""
    budget = memory_budget(device, plan)
    batch, limited_by = choose_batch(lambda b: _estimate(method, prompt_len, b, plan, dtype),
                                     memory_budget=budget, max_batch=plan.max_batch)
    needed = _estimate(method, prompt_len, max(batch, 1), plan, dtype)
    record = _record("throughput", method, prompt_len, batch, plan, dtype, needed)
    record["batch_limited_by"] = limited_by
    what = f"{METHODS[method]} at N_0 = {prompt_len}, batch {max(batch, 1)}"
    if not guard(needed, device, what, budget=budget):         # batch 0: not even one sequence fits
        record["skipped"] = _too_big(needed, budget)
        return record
    try:
        with torch.no_grad():
            generate, held = _prepare(method, prompt_len, batch, plan, device, dtype, seed)
            timing = time_call(generate, repeats=plan.repeats, warmup=1, min_sample_s=plan.min_sample_s)
    except torch.cuda.OutOfMemoryError as error:               # the estimate was too low: record it, go on
        torch.cuda.empty_cache()
        record["skipped"] = f"out of memory ({str(error).splitlines()[0]})"
        log(f"Skipping {what}: {record['skipped']}")
        return record
    synchronize(device)
    return _fill(record, timing, held, plan)


def run_generation_bench(plan, *, device="cpu", dtype=torch.float32, seed=0, log=print):
    """Latency at batch 1 and throughput at the largest batch, at every prompt length of `plan`.

    Returns (records, settings), ready for linattn.lab.results.save_results.
    """
    _check_plan(plan)
    device, dtype = torch.device(device), parse_dtype(dtype)
    records = []
    for prompt_len in plan.prompt_lens:
        records += _latency(prompt_len, plan, device, dtype, seed)
        records += [_throughput(m, prompt_len, plan, device, dtype, seed, log) for m in ("linear", "kv_cache")]
        log(f"N_0 = {prompt_len}: measured")
    settings = {"model": "one attention layer: no projections, no feed-forward block", "plan": dataclasses.asdict(plan),
                "dtype": dtype_name(dtype), "device": str(device), "memory_budget_bytes": memory_budget(device, plan),
                "safety_fraction": SAFETY_FRACTION, "seed": seed}
    return records, settings


# ---- reading the records ----------------------------------------------------------------------

def _measured(records):
    """{(measure, method, prompt_len): record} for the records that ran."""
    return {(r["measure"], r["method"], r["prompt_len"]): r for r in records if r.get("step")}


def ratios(records):
    """Per prompt length, the ratios the book prints; None where a side did not run.

    latency_*_over_linear: seconds per generated token at batch 1, the softmax method's over linear's;
    throughput_linear_over_kv_cache: tokens per second, each at its own largest batch, linear's over the cache's.
    """
    done = _measured(records)

    def ratio(numerator, denominator, key):
        if numerator not in done or denominator not in done:
            return None
        return key(done[numerator]) / key(done[denominator])

    def seconds(record):
        return record["step"]["median_s"]

    def rate(record):
        return record["tokens_per_s"]

    rows = []
    for p in sorted({r["prompt_len"] for r in records}):
        rows.append({
            "prompt_len": p,
            "latency_kv_cache_over_linear": ratio(("latency", "kv_cache", p), ("latency", "linear", p), seconds),
            "latency_recompute_over_linear": ratio(("latency", "recompute", p), ("latency", "linear", p), seconds),
            "throughput_linear_over_kv_cache": ratio(("throughput", "linear", p), ("throughput", "kv_cache", p), rate),
            "batch_linear": done.get(("throughput", "linear", p), {}).get("batch"),
            "batch_kv_cache": done.get(("throughput", "kv_cache", p), {}).get("batch"),
        })
    return rows


def latency_growth(records):
    """{method: (shortest N_0, longest N_0, time per token at the longest / at the shortest)}, at batch 1."""
    done = _measured(records)
    growth = {}
    for method in METHODS:
        lens = sorted(p for (measure, m, p) in done if measure == "latency" and m == method)
        if len(lens) >= 2:
            first, last = (done["latency", method, p]["step"]["median_s"] for p in (lens[0], lens[-1]))
            growth[method] = (lens[0], lens[-1], last / first)
    return growth


def summary_lines(records):
    """The table and the ratios, as printed by the command line and Chapter 5."""
    lines = [f"{'measure':10s} {'method':10s} {'N_0':>6s} {'batch':>6s} {'per step':>11s} {'IQR':>10s} "
             f"{'tokens/s':>11s} {'kept':>10s}"]
    for r in records:
        head = f"{r['measure']:10s} {r['method']:10s} {r['prompt_len']:6d} {r['batch']:6d}"
        if r["step"] is None:
            lines.append(f"{head}  skipped: {r['skipped']}")
            continue
        lines.append(f"{head} {r['step']['median_s'] * 1e3:8.3f} ms {r['step']['iqr_s'] * 1e3:7.3f} ms "
                     f"{r['tokens_per_s']:11.4g} {format_bytes(r['held_bytes']):>10s}"
                     + (f"  (batch limited by {r['batch_limited_by']})" if r["batch_limited_by"] else ""))
    for row in ratios(records):
        parts = [f"N_0 = {row['prompt_len']}:"]
        for key, text in (("latency_kv_cache_over_linear", "latency, KV cache / linear"),
                          ("latency_recompute_over_linear", "latency, recompute / linear"),
                          ("throughput_linear_over_kv_cache", "throughput, linear / KV cache")):
            if row[key] is not None:
                parts.append(f"{text} {row[key]:.3g}x")
        lines.append("  ".join(parts))
    return lines


# ---- command line -----------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m linattn.lab.generation_bench",
        description="Time token-by-token generation: linear attention's state against softmax with a KV cache.")
    parser.add_argument("--device", help="cpu, cuda, ... (default: a CUDA GPU if present)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="the plan's sizes (default: the device's profile)")
    parser.add_argument("--live", action="store_true", help="the smaller plan Chapter 5 runs live")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--prompt-lens", type=int, nargs="+", help="prompt lengths N_0 (default: the plan's)")
    parser.add_argument("--max-batch", type=int, help="largest throughput batch (default: the plan's)")
    parser.add_argument("--memory-budget-gib", type=float, help="memory a point may use (default: the plan's)")
    parser.add_argument("--repeats", type=int, help="timed samples per point (default: the plan's)")
    parser.add_argument("--output", help="JSON file to write (linattn.save_results format)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = choose_device(args.device)
    plan = plan_for(args.profile, live=args.live, device=device)
    changes = {"prompt_lens": args.prompt_lens and tuple(args.prompt_lens), "max_batch": args.max_batch,
               "repeats": args.repeats,
               "memory_budget": args.memory_budget_gib and int(args.memory_budget_gib * GiB)}
    plan = dataclasses.replace(plan, **{k: v for k, v in changes.items() if v is not None})
    print(f"one attention layer, {plan.heads} head(s) of d = {plan.dim}, {args.dtype}, "
          f"{plan.new_tokens} tokens generated per timed call")
    records, settings = run_generation_bench(plan, device=device, dtype=args.dtype)
    settings["profile"] = get_profile(args.profile, device=device).name
    settings["live_plan"] = args.live
    print("\n".join(summary_lines(records)))
    if args.output:
        print(f"saved {save_results(args.output, records, settings=settings, device=device)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
