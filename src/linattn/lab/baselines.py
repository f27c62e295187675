"""The contenders of the benchmark: naive softmax, PyTorch's scaled_dot_product_attention (and which
of its backends actually ran), and linear attention, each non-causal and causal.

Each contender also knows roughly how much memory it needs beyond its inputs (to skip sizes that
would not fit) and the least work it must do (FLOPs, bytes moved) for the roofline.
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..attention import linear_attention, softmax_attention
from ..causal import DEFAULT_CHUNK_SIZE
from ..fast.causal import BLOCK_ELEMENTS, CPU_CHUNK_SIZE
from ..fast.noncausal import TILE_ELEMENTS, einsum_linear_attention
from .memory import element_size

# aten operators that mark each fused backend of scaled_dot_product_attention; math runs none of them.
SDPA_KERNELS = (
    ("_scaled_dot_product_flash_attention_for_cpu", "flash (CPU)"),
    ("_scaled_dot_product_flash_attention", "flash"),
    ("_scaled_dot_product_efficient_attention", "memory-efficient"),
    ("_scaled_dot_product_cudnn_attention", "cuDNN"),
    ("_scaled_dot_product_attention_math_for_mps", "math (MPS)"),
    ("_scaled_dot_product_fused_attention_overrideable", "overrideable"),
)


def backend_from_ops(op_names):
    """The SDPA backend named by the aten operators a call ran ('math' when no fused kernel ran)."""
    for kernel, backend in SDPA_KERNELS:
        if any(name.split(".")[-1] == kernel for name in op_names):
            return backend
    return "math"


def sdpa(q, k, v, *, causal=False):
    """torch.nn.functional.scaled_dot_product_attention, PyTorch's choice of backend."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


@contextmanager
def recorded_ops():
    """Collect the names of the aten operators dispatched inside the block (a TorchDispatchMode)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class RecordOps(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            names.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    names = []
    with RecordOps():
        yield names


def sdpa_backend(q, k, v, *, causal=False):
    """Run sdpa once and report which backend ran (flash, memory-efficient, cuDNN, math, ...):
    what happened on this device with these shapes and dtype, not what should happen."""
    with torch.no_grad(), recorded_ops() as names:
        sdpa(q, k, v, causal=causal)
    return backend_from_ops(names)


@dataclass(frozen=True)
class Cost:
    """The least work a call must do: floating-point operations and bytes read plus written."""
    flops: float
    bytes: float

    @property
    def intensity(self):
        return self.flops / self.bytes


def vectors_bytes(batch, seq_len, dim, dtype):
    return batch * seq_len * dim * element_size(dtype)


def softmax_cost(batch, seq_len, dim, dtype, *, materialised=True):
    """Q K^T and P V: 4 N^2 d FLOPs. Moving q, k, v and the output: 4 N d elements; a naive version
    also writes the N x N scores and reads them back (for softmax), then the weights (for P V)."""
    flops = 4 * batch * seq_len * seq_len * dim
    moved = 4 * vectors_bytes(batch, seq_len, dim, dtype)
    if materialised:
        moved += 4 * batch * seq_len * seq_len * element_size(dtype)
    return Cost(flops, moved)


def linear_cost(batch, seq_len, dim, dtype):
    """phi(K)^T V and phi(Q) S: 4 N d^2 FLOPs; reading q, k, v and writing the output: 4 N d elements."""
    return Cost(4 * batch * seq_len * dim * dim, 4 * vectors_bytes(batch, seq_len, dim, dtype))


def softmax_extra_bytes(batch, seq_len, dim, dtype, causal=False):
    """Naive softmax holds two N x N matrices at once (scores and weights), plus the output; in half
    precision the scores in their dtype and the softmax's float32 input and output. Causal adds a
    boolean mask."""
    size = element_size(dtype)
    per_entry = 2 * size if size >= 4 else size + 8
    mask = seq_len * seq_len if causal else 0
    return batch * seq_len * seq_len * per_entry + mask + vectors_bytes(batch, seq_len, dim, dtype)


def fused_extra_bytes(batch, seq_len, dim, dtype, causal=False):
    """A fused kernel keeps the output and one float32 statistic per row (log-sum-exp)."""
    return vectors_bytes(batch, seq_len, dim, dtype) + 4 * batch * seq_len


def fast_linear_extra_bytes(batch, seq_len, dim, dtype, causal=False):
    """On a CPU: the output, the d x (d + 1) states, and two float32 scratch tiles (kept by each
    thread that runs tiles, from call to call: see linattn.fast); half precision also widens a tile
    of values and of results."""
    tile = min(TILE_ELEMENTS, batch * seq_len * dim)
    tiles = 2 if element_size(dtype) >= 4 else 4
    return vectors_bytes(batch, seq_len, dim, dtype) + 4 * (tiles * tile + batch * dim * (dim + 1))


def einsum_linear_extra_bytes(batch, seq_len, dim, dtype, causal=False):
    """phi(Q), phi(K), the numerator and the output (N x d each, float32 at least), the states; in half
    precision also the float32 copy of an input while its phi is computed."""
    work = torch.promote_types(dtype, torch.float32)
    vectors = 4 + (1 if work != dtype else 0)
    states = batch * (dim * dim + 2 * seq_len + dim)
    return vectors * vectors_bytes(batch, seq_len, dim, work) + states * element_size(work)


def chunked_causal_extra_bytes(batch, seq_len, dim, dtype, causal=True):
    """The vectorised chunked causal algorithm (GPUs): phi(Q), phi(K), [V 1] and a few N x (d+1)
    products, the states before each chunk (N/C of them, d x (d+1)) and the C x C blocks - about
    11 N d + N C floats."""
    floats = 11 * seq_len * (dim + 1) + seq_len * DEFAULT_CHUNK_SIZE
    return batch * floats * element_size(torch.promote_types(dtype, torch.float32))


def chunk_loop_causal_extra_bytes(batch, seq_len, dim, dtype, causal=True):
    """The chunk-after-chunk causal algorithm (CPUs, linattn.fast.causal): the output and, for each group
    of sequences being worked on (one per core at a time), four buffers of about BLOCK_ELEMENTS numbers
    and one temporary for phi, the C x C block, one chunk's product and the state."""
    chunk, width, cores = CPU_CHUNK_SIZE, dim + 1, torch.get_num_threads()
    size = min(max(1, BLOCK_ELEMENTS // (chunk * width)), max(1, batch // cores))   # sequences per group
    block = min(max(1, BLOCK_ELEMENTS // (size * width * chunk)) * chunk, max(1, -(-seq_len // chunk)) * chunk)
    at_once = min(cores, math.ceil(batch / size))
    floats = at_once * size * (block * (3 * dim + 2 * width) + chunk * chunk + chunk * width + dim * width)
    work = element_size(torch.promote_types(dtype, torch.float32))
    return vectors_bytes(batch, seq_len, dim, dtype) + floats * work


@dataclass(frozen=True)
class Implementation:
    name: str
    label: str
    fn: Callable            # fn(q, k, v) -> output
    causal: bool
    extra_bytes: Callable   # (batch, seq_len, dim, dtype, causal) -> bytes beyond the inputs
    quadratic: bool         # builds or streams an N x N matrix


IMPLEMENTATIONS = {impl.name: impl for impl in (
    Implementation("softmax", "naive softmax", softmax_attention, False, softmax_extra_bytes, True),
    Implementation("sdpa", "SDPA", sdpa, False, fused_extra_bytes, True),
    Implementation("linear", "linear (linattn)", linear_attention, False, fast_linear_extra_bytes, False),
    Implementation("linear-einsum", "linear (plain einsum)", einsum_linear_attention, False,
                   einsum_linear_extra_bytes, False),
    Implementation("softmax-causal", "naive softmax, causal",
                   lambda q, k, v: softmax_attention(q, k, v, causal=True), True, softmax_extra_bytes, True),
    Implementation("sdpa-causal", "SDPA, causal", lambda q, k, v: sdpa(q, k, v, causal=True), True,
                   fused_extra_bytes, True),
    Implementation("linear-causal", "linear (linattn), causal",
                   lambda q, k, v: linear_attention(q, k, v, causal=True), True, chunk_loop_causal_extra_bytes,
                   False),
)}


def get_implementation(name):
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {name!r}; choose from {sorted(IMPLEMENTATIONS)}")
    return IMPLEMENTATIONS[name]


def extra_bytes(name, batch, seq_len, dim, dtype, *, backend=None, device="cpu"):
    """Estimated bytes an implementation allocates beyond its inputs (SDPA: by backend; linear: the
    tiled and chunk-loop kernels run on CPUs only, elsewhere the vectorised versions)."""
    impl = get_implementation(name)
    if impl.name.startswith("sdpa") and backend == "math":
        return softmax_extra_bytes(batch, seq_len, dim, dtype, impl.causal)
    if torch.device(device).type != "cpu" and impl.name == "linear":
        return einsum_linear_extra_bytes(batch, seq_len, dim, dtype)
    if impl.name == "linear-causal" and (torch.device(device).type != "cpu" or batch < torch.get_num_threads()):
        return chunked_causal_extra_bytes(batch, seq_len, dim, dtype)   # what linattn.fast.causal runs there
    return impl.extra_bytes(batch, seq_len, dim, dtype, impl.causal)


def cost(name, batch, seq_len, dim, dtype, *, backend=None):
    """The least work (non-causal count) of an implementation; None for causal ones."""
    impl = get_implementation(name)
    if impl.causal:
        return None
    if not impl.quadratic:
        return linear_cost(batch, seq_len, dim, dtype)
    fused = impl.name == "sdpa" and backend not in (None, "math")
    return softmax_cost(batch, seq_len, dim, dtype, materialised=not fused)
