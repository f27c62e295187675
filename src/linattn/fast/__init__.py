"""linattn.fast: the CPU kernels. The same maths as the core, arranged for a processor's caches and cores.

noncausal   tiled non-causal linear attention with phi = elu + 1 fused in
causal      the chunked causal algorithm walked chunk after chunk, one core per group of sequences
causal_grad the paper's constant-memory gradient (§3.3.1, eqs. 13-15) as an autograd Function: its backward
            pass recomputes the prefix states chunk by chunk instead of storing them (Chapter 5, "Training")
phi         elu + 1 written into preallocated buffers
cores       worker threads that run whole tiles, one core each
pages       output memory on transparent huge pages

With gradients on a CPU the causal entry point runs causal_grad, unless a state goes in or out. Otherwise,
where autograd must see the computation, off the CPU, or under autocast, every entry point runs the plain
vectorised form, which autograd differentiates (and autocast casts) as usual. Appendix "Making it fast on a
CPU" explains each step and measures it.
"""
import math

from ..validation import accumulation_dtype
from . import causal as _causal, noncausal as _noncausal
from .causal import CPU_CHUNK_SIZE, chunk_loop_causal_linear_attention, fast_causal_linear_attention
from .noncausal import einsum_linear_attention, fast_linear_attention
from .phi import elu_plus_one_, elu_plus_one_differentiable

__all__ = ["elu_linear_attention", "fast_linear_attention", "einsum_linear_attention", "fast_causal_linear_attention",
           "chunk_loop_causal_linear_attention", "elu_plus_one_", "elu_plus_one_differentiable", "CPU_CHUNK_SIZE"]


def elu_linear_attention(q, k, v, *, causal, eps, scale=1, key_padding_mask=None, initial_state=None,
                         return_state=False):
    """linear_attention with phi = elu + 1, for a caller (linattn.linear_attention) that has checked
    its arguments. A scale and a key padding mask become changes of the inputs, which every kernel
    (and its autograd fallback) then runs as they are."""
    dtype = q.dtype
    if scale != 1:   # phi(scale * q): scaled in the working precision, not rounded to half precision again
        work = accumulation_dtype(dtype)
        q, k, v = q.to(work) * scale, k.to(work), v.to(work)
    if key_padding_mask is not None:   # phi(-inf) = 0: padded keys and their values add nothing to any sum
        padded = ~key_padding_mask.unsqueeze(-1)
        k, v = k.masked_fill(padded, -math.inf), v.masked_fill(padded, 0)
    if not causal:
        return _noncausal.run(q, k, v, eps).to(dtype)
    if not return_state:
        return _causal.run(q, k, v, eps, initial_state=initial_state).to(dtype)
    out, state = _causal.run(q, k, v, eps, initial_state=initial_state, return_state=True)
    return out.to(dtype), state
