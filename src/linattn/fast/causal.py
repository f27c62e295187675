"""The chunked causal algorithm run chunk after chunk, for CPUs, with phi = elu + 1 optionally fused in.

`chunked_causal_linear_attention` (linattn.causal) builds every chunk's state at once: a dozen passes
over tensors the size of the inputs, each a fresh allocation. That suits a GPU and autograd. A CPU
works on a few chunks at a time anyway, and is faster walking through the chunks in order, carrying
the state [S | z] (z is the state of an all-ones value column) from one chunk to the next, exactly as
equation (ch05-chunk) of Chapter 5 is written:

    O_c = (L * phi(Q_c) phi(K_c)^T) [V_c | 1] + phi(Q_c) [S | z],   then   [S | z] += phi(K_c)^T [V_c | 1]

The tokens go through the same few buffers a block at a time (a block holds several chunks), which
stay in the processor's cache, and each block's result is written straight into the output.

chunk_loop_causal_linear_attention(qf, kf, v)  on feature-mapped inputs, like the four algorithms;
fast_causal_linear_attention(q, k, v)          phi = elu + 1 applied a block at a time into the buffers:
                                               what linear_attention(..., causal=True) runs.
With more than one thread, groups of sequences run on worker threads, one core each
(linattn.fast.cores). With autograd on a CPU, fast_causal_linear_attention runs the paper's
constant-memory gradient (linattn.fast.causal_grad) unless a state goes in or out. With autograd
otherwise, off the CPU, under autocast, or with fewer sequences than cores, both run the vectorised
chunked algorithm.
"""
import math

import torch

from ..causal import DEFAULT_CHUNK_SIZE, chunked
from ..generation import LinearAttentionState
from ..validation import accumulation_dtype, check_eps, check_positive_int, check_qkv
from .causal_grad import causal_elu_linear_attention
from .cores import autocast_on, run_on_cores
from .phi import elu_plus_one_, elu_plus_one_differentiable

# Half the masked-block work of the vectorised form's 64, for twice as many (smaller) matrix products:
# on the 2-core CPU this book was written on, 32 was the faster of the two for d = 64.
CPU_CHUNK_SIZE = 32
BLOCK_ELEMENTS = 1 << 18  # numbers per buffer (1 MiB in float32): the few buffers of a block stay in cache


def _copy_into(x, out):
    return out.copy_(x)


def chunk_loop_causal_linear_attention(qf, kf, v, *, eps=1e-6, chunk_size=None):
    """The chunked algorithm on feature-mapped qf, kf (..., N, D) and v (..., N, d_v), chunk after chunk."""
    _check(qf, kf, v, eps, chunk_size)
    return _run(qf, kf, v, eps, chunk_size, feature_map_into=_copy_into, fallback_map=lambda x: x)


def fast_causal_linear_attention(q, k, v, *, eps=1e-6, chunk_size=None):
    """Same result as linear_attention(q, k, v, causal=True) with feature_map="elu"; faster on CPUs."""
    _check(q, k, v, eps, chunk_size)
    return run(q, k, v, eps, chunk_size)


def run(q, k, v, eps, chunk_size=None, *, initial_state=None, return_state=False):
    """fast_causal_linear_attention for a caller that has checked its arguments (initial_state too)."""
    return _run(q, k, v, eps, chunk_size, feature_map_into=elu_plus_one_,
                fallback_map=elu_plus_one_differentiable, initial_state=initial_state, return_state=return_state)


def _check(q, k, v, eps, chunk_size):
    check_qkv(q, k, v, causal=True)
    check_eps(eps)
    check_positive_int("chunk_size", chunk_size, allow_none=True)


def _run(q, k, v, eps, chunk_size, *, feature_map_into, fallback_map, initial_state=None, return_state=False):
    """chunk_size None: CPU_CHUNK_SIZE chunk after chunk, DEFAULT_CHUNK_SIZE for the vectorised fallback.
    initial_state: None or the LinearAttentionState before the first token; with return_state, returns
    (out, the state after the last token)."""
    work = accumulation_dtype(q.dtype)
    carried = () if initial_state is None else tuple(initial_state)
    needs_autograd = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, *carried))
    *lead, n, d = q.shape
    d_v = v.shape[-1]
    batch = math.prod(lead)
    cores = torch.get_num_threads()
    # Chunk after chunk the matrix products are small: splitting each one across threads costs more in
    # hand-offs than it gains (on this book's 2-core CPU at B = 8, N = 4096, d = 64: about 18 ms on one
    # thread, 45 ms on two). So each core walks through its own sequences; with fewer sequences than
    # cores, the vectorised form keeps them all busy instead.
    if (needs_autograd and q.device.type == "cpu" and feature_map_into is elu_plus_one_ and initial_state is None
            and not return_state and not autocast_on()):
        return causal_elu_linear_attention(q, k, v, eps, chunk_size)   # the paper's constant-memory gradient
    if q.device.type != "cpu" or needs_autograd or batch < cores or autocast_on():
        qf, kf = fallback_map(q.to(work)), fallback_map(k.to(work))
        result = chunked(qf, kf, v.to(work), eps, chunk_size or DEFAULT_CHUNK_SIZE, initial_state=initial_state,
                         return_state=return_state)
        return (result[0].to(q.dtype), result[1]) if return_state else result.to(q.dtype)
    chunk_size = chunk_size or CPU_CHUNK_SIZE
    out = torch.empty(batch, n, d_v, dtype=q.dtype)
    # [S | z] of every sequence, updated in place chunk after chunk: zeros, or what earlier tokens left
    states = (torch.zeros(batch, d, d_v + 1, dtype=work) if initial_state is None
              else initial_state.joined().reshape(batch, d, d_v + 1))
    q, k, v = q.reshape(batch, n, d), k.reshape(batch, n, d), v.reshape(batch, n, d_v)
    width = max(d, d_v + 1)
    per_group = min(max(1, BLOCK_ELEMENTS // (chunk_size * width)), batch // cores)   # a group or more per core

    def walk(seqs):
        size = len(range(batch)[seqs])
        block = max(1, BLOCK_ELEMENTS // (size * width * chunk_size)) * chunk_size   # tokens per block
        block = min(block, max(1, -(-n // chunk_size)) * chunk_size)   # no longer than the sequence needs
        _blocks(q[seqs], k[seqs], v[seqs], out[seqs], states[seqs], eps, chunk_size, block, work, feature_map_into)

    run_on_cores(walk, [slice(first, first + per_group) for first in range(0, batch, per_group)])
    out = out.view(*lead, n, d_v)
    return (out, LinearAttentionState.from_joined(states.view(*lead, d, d_v + 1))) if return_state else out


def _blocks(q, k, v, out, state, eps, chunk_size, block, work, feature_map_into):
    """Sequences q, k: (B, N, d), v: (B, N, d_v), a block of tokens at a time, chunk after chunk inside it,
    carrying their states [S | z] (B, d, d_v + 1) on in place.

    Element-wise work (phi, copying V, the division) runs once per block, on buffers of about
    BLOCK_ELEMENTS numbers; the matrix products run once per chunk.
    """
    size, n, d = q.shape
    d_v = v.shape[-1]
    qf, kf = torch.empty(size, block, d, dtype=work), torch.empty(size, block, d, dtype=work)
    values = torch.empty(size, block, d_v + 1, dtype=work)
    values[..., d_v] = 1                                         # the ones column: z rides along with S
    both = torch.empty(size, block, d_v + 1, dtype=work)
    sim = torch.empty(size, chunk_size, chunk_size, dtype=work)
    for start in range(0, n, block):
        length = min(block, n - start)
        tokens = slice(start, start + length)
        feature_map_into(q[:, tokens], qf[:, :length])
        feature_map_into(k[:, tokens], kf[:, :length])
        values[:, :length, :d_v] = v[:, tokens]
        for first in range(0, length, chunk_size):
            rows = slice(first, min(first + chunk_size, length))
            q_c, k_c, v_c = qf[:, rows], kf[:, rows], values[:, rows]
            s = sim if rows.stop - rows.start == chunk_size else None
            s = torch.bmm(q_c, k_c.transpose(1, 2), out=s).tril_()          # L * phi(Q_c) phi(K_c)^T
            both[:, rows] = torch.bmm(s, v_c).baddbmm_(q_c, state)         # inside the chunk + earlier
            state.baddbmm_(k_c.transpose(1, 2), v_c)                        # [S | z] += phi(K_c)^T [V_c | 1]
        numerator, denominator = both[:, :length, :d_v], both[:, :length, d_v:].add_(eps)
        if out.dtype == work:
            torch.div(numerator, denominator, out=out[:, tokens])
        else:
            out[:, tokens] = numerator / denominator
