"""Non-causal linear attention with phi = elu + 1, made fast without changing the maths.

The plain version (`einsum_linear_attention`) makes many passes over N x d tensors: phi(Q), phi(K),
their sum, two products, an add and a divide, each writing a fresh N x d result. On a CPU each fresh
tensor of tens of megabytes is new memory that the operating system must map page by page, which
can cost as much as the arithmetic. `fast_linear_attention` instead:

- works through the batch in tiles small enough to stay in the processor's cache, and writes each
  tile's result straight into its place in the output;
- runs whole tiles on worker threads, one core each, rather than splitting every small operation
  across all cores and waiting for the slowest after each one;
- computes phi in place in two tile-sized scratch buffers that each thread keeps from call to call,
  with exp2 (a faster kernel than exp or elu in PyTorch on CPUs) after scaling by log2(e);
- gets the normaliser phi(Q) z from one extra matrix-vector product per tile;
- maps the output with transparent huge pages where the system allows it (one page fault per
  2 MiB instead of per 4 KiB), and hands the last output's memory out again once it is free.

When autograd must see the computation, or on other devices, it runs the plain version, which
autograd differentiates as usual.
"""
import math
import mmap
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy
import torch
import torch.nn.functional as F

from .feature_maps import elu_plus_one
from .validation import accumulation_dtype, check_eps, check_qkv

LOG2_E = math.log2(math.e)
TILE_ELEMENTS = 1 << 19       # elements of q or k per tile: 2 MiB in float32, within a core's share of cache
HUGE_PAGE = 2 << 20           # bytes in a transparent huge page (x86-64, arm64 with 4 KiB base pages)
HUGE_PAGE_MIN_BYTES = 8 << 20  # below this, ordinary allocation is cheap enough
TASKS_PER_WORKER = 4          # tiles are handed to the worker threads in about this many batches each


def is_elu_plus_one(feature_map):
    """Whether `feature_map` (a name or a callable) is phi = elu + 1, the map this module speeds up."""
    return feature_map is elu_plus_one or (isinstance(feature_map, str) and feature_map == "elu")


def einsum_linear_attention(q, k, v, *, eps=1e-6):
    """The straightforward version: phi(Q) (phi(K)^T V) / (phi(Q) sum_j phi(k_j) + eps), elu + 1."""
    check_qkv(q, k, v)
    check_eps(eps)
    work = accumulation_dtype(q.dtype)
    qf = F.elu(q.to(work)) + 1
    kf = F.elu(k.to(work)) + 1
    state = torch.einsum("...md,...me->...de", kf, v.to(work))
    numerator = torch.einsum("...nd,...de->...ne", qf, state)
    normaliser = torch.einsum("...nd,...d->...n", qf, kf.sum(dim=-2)).unsqueeze(-1)
    return (numerator / (normaliser + eps)).to(q.dtype)


def elu_plus_one_(x, out, scratch=None):
    """Write phi(x) = elu(x) + 1 = max(x, 0) + exp(min(x, 0)) into `out`, a float tensor shaped like x
    (`scratch`, shaped like out, saves an allocation)."""
    scratch = torch.empty_like(out) if scratch is None else scratch
    if x.dtype != out.dtype:
        x = scratch.copy_(x)             # widen half precision first; x is then ours to overwrite
    torch.mul(x, LOG2_E, out=out)
    out.clamp_(max=0).exp2_()            # exp(min(x, 0)) = 2^(min(x, 0) * log2 e)
    positive = x.clamp_(min=0) if x is scratch else torch.clamp(x, min=0, out=scratch)
    return out.add_(positive)


def huge_page_empty(shape, dtype):
    """An uninitialised CPU tensor backed by memory advised to use transparent huge pages.

    Falls back to torch.empty where the platform has no MADV_HUGEPAGE or the tensor is small.
    The mapping lives as long as the tensor (the tensor keeps a reference to it). The last mapping
    handed out is remembered: once no tensor uses it any more, a request of the same size gets it
    back with its pages already in place, as PyTorch's GPU allocator recycles freed blocks.
    """
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if nbytes < HUGE_PAGE_MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(shape, dtype=dtype)
    with _LAST_REGION_LOCK:
        region, users = _LAST_REGION[0] or (None, None)
        if region is None or len(region) != nbytes + HUGE_PAGE or users() is not None:
            region = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE)   # anonymous; aligned below
            region.madvise(mmap.MADV_HUGEPAGE)
        # Every tensor on the region holds this array; the weak reference tells when none is left.
        array = numpy.frombuffer(region, dtype=numpy.uint8)
        _LAST_REGION[0] = (region, weakref.ref(array))
    raw = torch.from_numpy(array)
    start = -raw.data_ptr() % HUGE_PAGE
    return raw[start:start + nbytes].view(dtype).view(shape)


_LAST_REGION = [None]   # (mmap, weak reference to the array its tensors hold) of the last large output
_LAST_REGION_LOCK = threading.Lock()


def _needs_autograd(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def fast_linear_attention(q, k, v, *, eps=1e-6):
    """Same result as linear_attention(q, k, v) with feature_map="elu", causal=False; faster on CPUs."""
    check_qkv(q, k, v)
    check_eps(eps)
    if q.device.type != "cpu" or _needs_autograd(q, k, v):
        return einsum_linear_attention(q, k, v, eps=eps)
    *lead, n, d = q.shape
    m, d_v = v.shape[-2:]
    batch = math.prod(lead)
    q, k, v = q.reshape(batch, n, d), k.reshape(batch, m, d), v.reshape(batch, m, d_v)
    out = huge_page_empty((batch, n, d_v), q.dtype)
    per_group = max(1, TILE_ELEMENTS // (max(n, m, 1) * d))   # short sequences share a tile
    groups = [slice(b, min(b + per_group, batch)) for b in range(0, batch, per_group)]
    run_on_cores(lambda seqs: _tiled(q[seqs], k[seqs], v[seqs], out[seqs], eps), groups)
    return out.view(*lead, n, d_v)


_scratch = threading.local()


def _buffers(shape, dtype):
    """Two scratch tensors of `shape`, kept by this thread from call to call: a fresh tile-sized
    allocation per tile would be handed back to the system and mapped again, page by page."""
    numel = math.prod(shape)
    kept = getattr(_scratch, "buffers", None)
    if kept is None or kept.dtype != dtype or kept.shape[1] < numel:
        kept = _scratch.buffers = torch.empty(2, numel, dtype=dtype)
    return kept[0, :numel].view(shape), kept[1, :numel].view(shape)


def _tiled(q, k, v, out, eps):
    """One group of sequences, in tiles of about TILE_ELEMENTS elements: q, k (G, N|M, d), v (G, M, d_v)."""
    work = accumulation_dtype(q.dtype)
    size, n, d = q.shape
    m = k.shape[1]
    rows = max(1, TILE_ELEMENTS // (d * size))
    state = key_sum = None                           # phi(K)^T V and phi(K)^T 1
    for r in range(0, m, rows):
        kf, scratch = _buffers((size, min(rows, m - r), d), work)
        elu_plus_one_(k[:, r:r + rows], kf, scratch)
        values = v[:, r:r + rows]
        part = torch.bmm(kf.transpose(1, 2), values if values.dtype == work else values.to(work))
        part_sum = kf.sum(dim=1).unsqueeze(-1)
        state, key_sum = (part, part_sum) if state is None else (state.add_(part), key_sum.add_(part_sum))
    if state is None:                                # no keys: every output is 0 / eps
        out.fill_(0.0 if eps > 0 else math.nan)
        return
    eps_row = torch.full((1, 1, 1), eps, dtype=work)  # baddbmm adds it: phi(q) z + eps in one step
    for r in range(0, n, rows):
        qf, scratch = _buffers((size, min(rows, n - r), d), work)
        elu_plus_one_(q[:, r:r + rows], qf, scratch)
        normaliser = torch.baddbmm(eps_row, qf, key_sum)
        numerator = torch.bmm(qf, state, out=scratch if state.shape[-1] == d else None)   # in cache
        if out.dtype == work:
            torch.div(numerator, normaliser, out=out[:, r:r + rows])
        else:
            out[:, r:r + rows] = numerator.div_(normaliser)


# ---- running tiles on all cores, without a barrier after every operation -------------------------
# PyTorch splits each operation across its threads and waits for all of them at the end. A tile's
# operations are short, so on a busy machine that wait (for a thread the system has paused) can cost
# more than the work. Instead, each of our worker threads runs whole tiles with one-thread operations.

_POOLS = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools():   # threads do not survive fork(): a child process starts its own pool
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _pool(workers):
    """A pool of `workers` threads whose torch operations run on one thread each."""
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = _start_pool(workers)
        return _POOLS[workers]


def _one_thread():
    torch.get_num_threads()   # PyTorch sets up a new thread's thread count once, on first use: do that first,
    torch.set_num_threads(1)  # or it would later undo this


def _start_pool(workers):
    keep = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="linattn", initializer=_one_thread)
    started = threading.Barrier(workers)
    list(pool.map(lambda _: started.wait(), range(workers)))   # start every thread now
    torch.set_num_threads(keep)   # set_num_threads(1) in a worker also changed the process default
    return pool


def run_on_cores(task, items):
    """task(item) for every item: on the worker threads when there are enough items to keep every
    core busy, else (or while a dispatch mode watches the operations) one after the other here, each
    operation then using every core."""
    workers = torch.get_num_threads()
    # A TorchDispatchMode (a FLOP counter, linattn's memory tracker) sees only its own thread's operations.
    watched = torch._C._len_torch_dispatch_stack() > 0
    if workers <= 1 or len(items) < workers or watched:
        for item in items:
            task(item)
        return
    # A few items per task keeps the hand-over cost low; several tasks per worker keep them all busy.
    per_task = max(1, len(items) // (TASKS_PER_WORKER * workers))
    batches = [items[i:i + per_task] for i in range(0, len(items), per_task)]
    list(_pool(workers).map(lambda batch: [task(item) for item in batch], batches))
