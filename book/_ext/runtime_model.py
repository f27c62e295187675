"""How long each chapter should take on an NVIDIA T4 under the `gpu` profile: a stated model, not a
measurement. The instructor guide shows it, labelled as an estimate, until a build on a T4 stores
measured times (book/data/runtimes_gpu_cuda_*t4*.json).

    estimate = fixed part + sweep part

fixed part: the chapter's shortest measured time under the small profiles `ci` and `cpu` (kernel
    start, imports, plots, checks: the work that barely grows with the sizes, which cannot take
    longer than the fastest complete run), from stored runs or from this build.
sweep part: the timed sweeps the chapter runs under `gpu`, point by point. Each point costs every
    call it makes (warm-up, the timer's first call, its timed samples, the memory measurement);
    each call takes the T4's roofline floor, max(FLOPs / peak, bytes / bandwidth), with NVIDIA's
    datasheet numbers (book/data/claims.yml: t4-fp32, t4-fp16, t4-bandwidth, t4-memory); each
    timed sample lasts at least the timer's minimum sample (linattn.lab.timing.time_call batches
    fast calls up to it). A point that would not fit in the T4's memory is skipped, as the
    chapter's guard would skip it.

What it ignores: kernel-launch latency and Python overhead per call (so the sweep part is a floor,
most wrong for the many small calls); CUDA's start-up; a Colab machine's CPU, which may be slower
or faster than the one that measured the fixed part; kernels that reach less than the roofline;
and every cell outside the sweeps named below. Chapter 5 (loops token by token) and Chapter 7
(trains small models) spend their `gpu` time in many tiny kernels whose cost is launch latency,
which a roofline cannot see: they get no estimate.
"""
from dataclasses import dataclass

import torch

from linattn.lab.baselines import cost, extra_bytes, softmax_cost, linear_cost, vectors_bytes
from linattn.lab.costs import quadratic_order_bytes
from linattn.lab.memory import SAFETY_FRACTION, softmax_attention_bytes
from linattn.lab.profiles import PROFILES

TIMER_MIN_SAMPLE_S = 1e-3        # linattn.lab.timing.time_call's default min_sample_s
BENCH_TIME_BUDGET_S = PROFILES["gpu"].time_budget   # Chapter 6's time budget per point under `gpu`
T4_SDPA_BACKEND = "efficient"    # FlashAttention needs compute capability 8.0; a T4 has 7.5


@dataclass(frozen=True)
class Device:
    name: str
    peak_flops: dict      # dtype name -> FLOP/s
    bandwidth: float      # bytes/s
    memory: float         # bytes

    def floor(self, work, dtype):
        return max(work.flops / self.peak_flops[dtype], work.bytes / self.bandwidth)

    def fits(self, nbytes):
        return nbytes <= SAFETY_FRACTION * self.memory


def t4_from_claims(claims):
    """The T4 as its datasheet describes it, from the registered claims."""
    number = {key: float(claims[key]["number"]) for key in ("t4-fp32", "t4-fp16", "t4-bandwidth", "t4-memory")}
    return Device("NVIDIA T4 (datasheet)", {"float32": number["t4-fp32"], "float16": number["t4-fp16"]},
                  number["t4-bandwidth"], number["t4-memory"])


@dataclass(frozen=True)
class Point:
    """One timed point: `calls` untimed calls plus `samples` timed samples of one call each."""
    seconds_per_call: float
    calls: int
    samples: int
    min_sample_s: float = TIMER_MIN_SAMPLE_S

    @property
    def seconds(self):
        return self.calls * self.seconds_per_call + self.samples * max(self.seconds_per_call, self.min_sample_s)


# ---- the sweeps each chapter runs under the gpu profile (what the chapter's code does) -------------

def chapter1_points(profile, device):
    """Softmax attention over the profile's N: warm-up, first call, `repeats` samples, a memory run."""
    b, d = profile.batch, profile.dim
    return [Point(device.floor(softmax_cost(b, n, d, torch.float32), "float32"), calls=3, samples=profile.repeats)
            for n in profile.seq_lens if device.fits(softmax_attention_bytes(b, n, d))]


def chapter4_points(profile, device):
    """Both orders at d in (32, 64, 128), N = 16 ... the longest power of two in the profile: per
    point a warm-up, `repeats` one-sample timings (a first call each) and a memory run, per order.
    The quadratic order costs what materialised softmax does, the linear one what linear attention does."""
    b, points = profile.batch, []
    seq_lens = [2 ** p for p in range(4, 14) if 2 ** p <= max(profile.seq_lens)]
    for d in (32, 64, 128):
        for n in seq_lens:
            if not device.fits(quadratic_order_bytes(b, n, d) + 3 * vectors_bytes(b, n, d, torch.float32)):
                continue
            for work in (softmax_cost(b, n, d, torch.float32), linear_cost(b, n, d, torch.float32)):
                points.append(Point(device.floor(work, "float32"), calls=2 + profile.repeats, samples=profile.repeats))
    return points


def _bench_work(name, b, n, d, dtype):
    """A causal contender is counted as its non-causal twin (it does at most that work)."""
    twin = name.removesuffix("-causal")
    return cost(twin, b, n, d, dtype, backend=T4_SDPA_BACKEND if twin == "sdpa" else None)


def chapter6_points(profile, device):
    """The benchmark sweep (every contender, float32 and float16, every N) with its time budget per
    point, the roofline microbenchmarks it runs (a 8192^2 matmul and a 1 GiB copy, 7 calls each) and
    its live run of the paper's protocol."""
    from linattn.lab.baselines import IMPLEMENTATIONS
    b, d, points = profile.batch, profile.dim, []
    for dtype_name, dtype in (("float32", torch.float32), ("float16", torch.float16)):
        for n in profile.seq_lens:
            for name in IMPLEMENTATIONS:
                needed = extra_bytes(name, b, n, d, dtype, backend=T4_SDPA_BACKEND, device="cuda")
                if not device.fits(needed + 3 * vectors_bytes(b, n, d, dtype)):
                    continue
                once = device.floor(_bench_work(name, b, n, d, dtype), dtype_name)
                samples = max(3, min(profile.repeats, int(BENCH_TIME_BUDGET_S / max(once, TIMER_MIN_SAMPLE_S))))
                points.append(Point(once, calls=3, samples=samples))
    for dtype_name in ("float32", "float32", "float16"):   # the chapter's own, then one per dtype of the sweep
        matmul = 2 * 8192 ** 3 / device.peak_flops[dtype_name]
        copy = 2 * (1 << 30) / device.bandwidth
        points += [Point(matmul, calls=2, samples=5), Point(copy, calls=2, samples=5)]
    return points + paper_protocol_points(profile, device)


def paper_protocol_points(profile, device):
    """Chapter 6's live run of the paper's protocol (linattn.lab.paper_benchmark, float32): per point a
    peak-memory call, the timer's first call and its samples, as many as the time budget allows.
    Forward plus backward is counted as three forwards (the backward does about twice the forward's work)."""
    from linattn.lab.paper_benchmark import CONTENDERS, MIN_REPEATS, batch_for, paper_sizes, training_extra_bytes
    sizes, points = paper_sizes(profile.name, live=True), []
    for name in CONTENDERS:
        for n in sizes.seq_lens:
            b = batch_for(sizes.tokens, n)
            backend = T4_SDPA_BACKEND if name == "sdpa" else None
            needed = training_extra_bytes(name, b, n, sizes.dim, torch.float32, backend=backend)
            if not device.fits(needed + 4 * vectors_bytes(b, n, sizes.dim, torch.float32)):
                break                     # and every longer N, as the guard skips them
            once = 3 * device.floor(_bench_work(name, b, n, sizes.dim, torch.float32), "float32")
            budget = sizes.time_budget or float("inf")
            samples = max(MIN_REPEATS, min(sizes.repeats, int(budget / max(once, TIMER_MIN_SAMPLE_S))))
            points.append(Point(once, calls=2, samples=samples))
    return points


FIXED_ONLY = "no timed sweep: its work under gpu is a few small products, counted in the fixed part"
SWEEPS = {1: chapter1_points, 4: chapter4_points, 6: chapter6_points}
NOT_MODELLED = {
    5: "its gpu-profile time goes to loops that take one small step per token, bound by kernel-launch latency",
    7: "its gpu-profile run trains every model of the full sweep (one seed): many small kernels, bound by launch latency",
}


@dataclass(frozen=True)
class Estimate:
    chapter: int
    seconds: float | None     # None: not estimated
    fixed: float | None
    sweeps: float | None
    note: str


def estimate(chapter, fixed_seconds, claims, profile_name="gpu"):
    """The T4 estimate for chapter `chapter`, given its fixed part in seconds (or None)."""
    if chapter in NOT_MODELLED:
        return Estimate(chapter, None, fixed_seconds, None, NOT_MODELLED[chapter])
    if fixed_seconds is None:
        return Estimate(chapter, None, None, None, "no measured time under ci or cpu to start from")
    if chapter not in SWEEPS:
        return Estimate(chapter, fixed_seconds, fixed_seconds, 0.0, FIXED_ONLY)
    device = t4_from_claims(claims)
    points = SWEEPS[chapter](PROFILES[profile_name], device)
    sweeps = sum(point.seconds for point in points)
    return Estimate(chapter, fixed_seconds + sweeps, fixed_seconds, sweeps,
                    f"{len(points)} timed points at the T4's roofline floor")
