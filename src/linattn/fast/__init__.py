"""linattn.fast: the CPU kernels. The same maths as the core, arranged for a processor's caches and cores.

noncausal   tiled non-causal linear attention with phi = elu + 1 fused in
causal      the chunked causal algorithm walked chunk after chunk, one core per group of sequences
phi         elu + 1 written into preallocated buffers
cores       worker threads that run whole tiles, one core each
pages       output memory on transparent huge pages

Off the CPU, or where autograd must see the computation, every entry point runs the plain
vectorised form, which autograd differentiates as usual. Appendix "Making it fast on a CPU"
explains each step and measures it.
"""
from . import causal as _causal, noncausal as _noncausal
from .causal import CPU_CHUNK_SIZE, chunk_loop_causal_linear_attention, fast_causal_linear_attention
from .noncausal import einsum_linear_attention, fast_linear_attention
from .phi import elu_plus_one_, elu_plus_one_differentiable

__all__ = ["elu_linear_attention", "fast_linear_attention", "einsum_linear_attention", "fast_causal_linear_attention",
           "chunk_loop_causal_linear_attention", "elu_plus_one_", "elu_plus_one_differentiable", "CPU_CHUNK_SIZE"]


def elu_linear_attention(q, k, v, *, causal, eps):
    """linear_attention with phi = elu + 1, for a caller (linattn.linear_attention) that has checked
    its arguments."""
    return _causal.run(q, k, v, eps) if causal else _noncausal.run(q, k, v, eps)
