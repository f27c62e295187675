"""How long a planned benchmark sweep will take on a device we do not have: a wall-time estimate from
the roofline costs of every call it makes, the way `linattn.lab.bench` makes them.

A GPU session is short (a Colab exercise, a lent machine), so a sweep's defaults are checked against
this estimate before anyone runs them. Each kernel of a call takes at least max(FLOPs / peak,
bytes / bandwidth); real kernels reach only part of a datasheet's peaks, and each one launched from
eager PyTorch costs some microseconds of Python and driver work, so both are added as stated
assumptions below. The estimate errs long: every point is assumed to fit in memory and to run.
"""
from dataclasses import dataclass

from .baselines import get_implementation, vectors_bytes
from .memory import element_size
from .roofline import Roofline, parse_dtype

# NVIDIA T4, from NVIDIA's product page (https://www.nvidia.com/en-us/data-center/tesla-t4/): 8.1 TFLOP/s
# in float32, 65 TFLOP/s in float16 on the tensor cores, 320 GB/s of memory bandwidth (the datasheet says
# 300 GB/s; 2 x 5001 MHz x 256 bit = 320 GB/s from a Colab T4's deviceQuery). bfloat16 has no hardware
# path on it (compute capability 7.5).
T4_DATASHEET = {
    "float32": Roofline("NVIDIA T4 (datasheet)", "float32", peak_flops=8.1e12, bandwidth=320e9,
                        matmul_size=0, copy_bytes=0),
    "float16": Roofline("NVIDIA T4 (datasheet)", "float16", peak_flops=65e12, bandwidth=320e9,
                        matmul_size=0, copy_bytes=0),
}

# Assumptions (erring long): kernels reach half of the datasheet's peaks (a T4 at 70 W lowers its clocks
# under load); each kernel costs 20 us to dispatch from eager PyTorch on a slow host CPU such as Colab's;
# the host draws 50 million normal numbers a second for the inputs and copies 5 GB/s to the GPU; starting
# Python, importing torch and creating the CUDA context take 15 s.
EFFICIENCY = 0.5
KERNEL_OVERHEAD_S = 20e-6
HOST_RANDN_PER_S = 50e6
HOST_TO_DEVICE_BYTES_PER_S = 5e9
STARTUP_S = 15.0
MIN_SAMPLE_S = 1e-3     # linattn.lab.timing.time_call's default: faster calls are batched to last this long


@dataclass(frozen=True)
class Kernel:
    """One kernel launch: its floating-point operations and the bytes it reads plus writes."""
    flops: float
    bytes: float


def _softmax_kernels(batch, n, dim, dtype, causal):
    """linattn.softmax_attention as eager PyTorch runs it: Q K^T, the scale, the mask, the softmax (in
    float32, with casts around it in half precision) and P V, each writing an N x N matrix."""
    size, entries, vectors = element_size(dtype), batch * n * n, vectors_bytes(batch, n, dim, dtype)
    kernels = [Kernel(2 * batch * n * n * dim, 2 * vectors + entries * size), Kernel(0, 2 * entries * size)]
    if causal:
        kernels += [Kernel(0, 2 * n * n), Kernel(0, 2 * entries * size + n * n)]
    if size < 4:
        kernels += [Kernel(0, entries * (size + 4)), Kernel(0, entries * (4 + size))]
    return kernels + [Kernel(0, 8 * entries), Kernel(2 * batch * n * n * dim, entries * size + 2 * vectors)]


def _fused_kernels(batch, n, dim, dtype, causal):
    """A fused SDPA kernel (flash, memory-efficient): all of softmax attention in one pass over q, k, v."""
    flops = 4 * batch * n * n * dim // (2 if causal else 1)
    return [Kernel(flops, 4 * vectors_bytes(batch, n, dim, dtype) + 4 * batch * n)]


def _linear_kernels(batch, n, dim, dtype):
    """The vectorised non-causal form on a GPU (linattn.fast's tiles are for CPUs): elu and + 1 on Q
    and K, the d x d state, the key sum, two products, the normaliser and the division, in float32."""
    vector = vectors_bytes(batch, n, dim, parse_dtype("float32"))
    cast = [Kernel(0, 2 * vector)] * (4 if element_size(dtype) < 4 else 0)   # q, k, v in, the output out
    products = [Kernel(2 * batch * n * dim * dim, 2 * vector)] * 2
    passes = [Kernel(0, 2 * vector)] * 4 + [Kernel(0, vector)] * 2 + [Kernel(0, 3 * vector)]
    return cast + products + passes


def _chunked_kernels(batch, n, dim, dtype, chunk=64):
    """The chunked causal form on a GPU (linattn.causal.chunked, C = 64): per-chunk states and their
    prefix sum, the masked C x C products inside each chunk, the state products, the division."""
    work = element_size(parse_dtype("float32"))
    width, blocks = dim + 1, batch * n * chunk * work
    vector, wide = batch * n * dim * work, batch * n * width * work
    states = batch * (n // chunk + 1) * dim * width * work
    cast = [Kernel(0, 2 * vector)] * (4 if element_size(dtype) < 4 else 0)
    maps = [Kernel(0, 2 * vector)] * 4 + [Kernel(0, vector + wide)]
    return cast + maps + [
        Kernel(2 * batch * n * dim * width, vector + wide + states), Kernel(0, 3 * states),
        Kernel(2 * batch * n * chunk * dim, 2 * vector + blocks), Kernel(0, 2 * blocks),
        Kernel(2 * batch * n * chunk * width, blocks + 2 * wide),
        Kernel(2 * batch * n * dim * width, vector + states + wide),
        Kernel(0, 3 * wide), Kernel(0, 2 * batch * n * work), Kernel(0, 3 * vector)]


def kernels(name, batch, seq_len, dim, dtype, *, backend=None):
    """The kernels one call of implementation `name` launches on a GPU. SDPA counts as fused unless
    `backend` is "math" (which runs the naive kernels)."""
    impl, dtype = get_implementation(name), parse_dtype(dtype)
    if impl.quadratic:
        fused = name.startswith("sdpa") and backend != "math"
        make = _fused_kernels if fused else _softmax_kernels
        return make(batch, seq_len, dim, dtype, impl.causal)
    if impl.causal:
        return _chunked_kernels(batch, seq_len, dim, dtype)
    return _linear_kernels(batch, seq_len, dim, dtype)


def call_seconds(name, batch, seq_len, dim, dtype, roof, *, backend=None):
    """Estimated seconds for one call: each kernel's roofline floor at EFFICIENCY, plus its dispatch."""
    launched = kernels(name, batch, seq_len, dim, dtype, backend=backend)
    floors = sum(roof.floor_seconds(k.flops, k.bytes) for k in launched)
    return floors / EFFICIENCY + KERNEL_OVERHEAD_S * len(launched)


def point_seconds(call, *, repeats, time_budget=None, cuda=True):
    """Seconds `linattn.lab.bench.measure_point` spends on a call lasting `call` seconds: one call to see
    how slow it is, time_call's sizing call and its samples (each at least MIN_SAMPLE_S, the repeats
    cut by `time_budget` to no fewer than 3), and on a GPU one more call for the peak memory."""
    if time_budget is not None:
        repeats = max(3, min(repeats, int(time_budget / max(call, MIN_SAMPLE_S))))
    per_sample = max(1, int(MIN_SAMPLE_S / call)) * call
    return call + call + repeats * per_sample + (call if cuda else 0.0)


def roofline_seconds(roof, matmul_size, copy_bytes, *, repeats=5):
    """linattn.lab.roofline.measure_roofline: a warm-up, a sizing call and `repeats` samples of a
    matmul and of a copy."""
    matmul = 2 * matmul_size ** 3 / (roof.peak_flops * EFFICIENCY)
    copy = 2 * copy_bytes / (roof.bandwidth * EFFICIENCY)
    return (repeats + 2) * (matmul + copy)


def inputs_seconds(batch, seq_len, dim, dtype):
    """linattn.lab.bench.make_inputs: q, k and v drawn on the host, then copied to the device."""
    numbers = 3 * batch * seq_len * dim
    return numbers / HOST_RANDN_PER_S + numbers * element_size(parse_dtype(dtype)) / HOST_TO_DEVICE_BYTES_PER_S


def sweep_seconds(rooflines, *, dtypes, batch, dim, seq_lens, repeats, implementations, time_budget=None,
                  roofline=True, roofline_sizes=(8192, 1 << 30), **_ignored):
    """Estimated wall time of `linattn.lab.bench.run_benchmark(device, **plan)` on a GPU whose datasheet
    `rooflines` ({dtype name: Roofline}) gives, startup included. Takes the plan's keywords as they are."""
    total = STARTUP_S
    for dtype in dtypes:
        roof = rooflines[dtype]
        if roofline:
            total += roofline_seconds(roof, *roofline_sizes)
        for n in seq_lens:
            total += inputs_seconds(batch, n, dim, dtype)
            for name in implementations:
                call = call_seconds(name, batch, n, dim, dtype, roof)
                total += point_seconds(call, repeats=repeats, time_budget=time_budget)
    return total
