"""Non-causal linear attention with phi = elu + 1, made fast without changing the maths.

The plain version (`einsum_linear_attention`) makes many passes over N x d tensors: phi(Q), phi(K),
their sum, two products, an add and a divide, each writing a fresh N x d result. On a CPU each fresh
tensor of tens of megabytes is new memory that the operating system must map page by page, which
can cost as much as the arithmetic. `fast_linear_attention` instead:

- works through the batch in tiles small enough to stay in the processor's cache, and writes each
  tile's result straight into its place in the output;
- runs whole tiles on worker threads, one core each, rather than splitting every small operation
  across all cores and waiting for the slowest after each one (linattn.fast.cores);
- computes phi in place in two tile-sized scratch buffers that each thread keeps from call to call,
  with exp2 (a faster kernel than exp or elu in PyTorch on CPUs) after scaling by log2(e);
- gets the normaliser phi(Q) z from one extra matrix-vector product per tile;
- maps the output with transparent huge pages where the system allows it (linattn.fast.pages).

When autograd must see the computation, under autocast, or on other devices, it runs the plain
version, which autograd differentiates (and autocast casts) as usual.
"""
import math
import threading

import torch

from ..validation import accumulation_dtype, check_eps, check_qkv
from .cores import autocast_on, run_on_cores
from .pages import huge_page_empty
from .phi import elu_plus_one_, elu_plus_one_differentiable

TILE_ELEMENTS = 1 << 19       # elements of q or k per tile: 2 MiB in float32, within a core's share of cache


def einsum_linear_attention(q, k, v, *, eps=1e-6):
    """The straightforward version: phi(Q) (phi(K)^T V) / (phi(Q) sum_j phi(k_j) + eps), elu + 1."""
    check_qkv(q, k, v)
    check_eps(eps)
    return _einsum(q, k, v, eps)


def _einsum(q, k, v, eps):
    work = accumulation_dtype(q.dtype)
    qf = elu_plus_one_differentiable(q.to(work))    # exact: F.elu(x) + 1 rounds to 0 below x ~ -17 in float32
    kf = elu_plus_one_differentiable(k.to(work))
    state = torch.einsum("...md,...me->...de", kf, v.to(work))
    numerator = torch.einsum("...nd,...de->...ne", qf, state)
    normaliser = torch.einsum("...nd,...d->...n", qf, kf.sum(dim=-2)).unsqueeze(-1)
    return (numerator / (normaliser + eps)).to(q.dtype)


def _needs_autograd(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def fast_linear_attention(q, k, v, *, eps=1e-6):
    """Same result as linear_attention(q, k, v) with feature_map="elu", causal=False; faster on CPUs."""
    check_qkv(q, k, v)
    check_eps(eps)
    return run(q, k, v, eps)


def run(q, k, v, eps):
    """fast_linear_attention for a caller that has checked q, k, v and eps."""
    if q.device.type != "cpu" or _needs_autograd(q, k, v) or autocast_on():
        return _einsum(q, k, v, eps)
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
        with torch.inference_mode(False):   # made under inference mode, no later call could write into it
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
