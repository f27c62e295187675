"""Causal linear attention, four ways, on feature-mapped inputs: qf, kf (..., N, D) and v (..., N, d_v).

Output i is phi(q_i)^T S_i / (phi(q_i)^T z_i + eps), with the prefix sums
S_i = sum_{j<=i} phi(k_j) v_j^T (D x d_v) and z_i = sum_{j<=i} phi(k_j) (D).
The four functions compute the same thing with different costs (N tokens, chunk size C):

  masked_causal_linear_attention      the N x N matrix with its future masked out: O(N^2) time and memory
  cumsum_causal_linear_attention      every prefix state S_1..S_N at once: O(N D d_v) memory
  recurrent_causal_linear_attention   one token at a time, like an RNN: N small sequential steps
  chunked_causal_linear_attention     masked products inside chunks of C tokens, states between them

`linear_attention(..., causal=True)` uses the chunked one.
Half-precision inputs are computed in float32 (running sums overflow float16) and cast back.
"""
import torch
import torch.nn.functional as F

from .generation import LinearAttentionState
from .validation import accumulation_dtype, check_eps, check_positive_int, check_qkv

DEFAULT_CHUNK_SIZE = 64


def _checked(qf, kf, v, eps):
    """Validate the inputs and return them in the dtype the sums accumulate in."""
    check_qkv(qf, kf, v, causal=True)
    check_eps(eps)
    work = accumulation_dtype(qf.dtype)
    return qf.to(work), kf.to(work), v.to(work)


def masked_causal_linear_attention(qf, kf, v, *, eps=1e-6):
    """The quadratic reference: (phi(Q) phi(K)^T, lower triangle) V, row-normalised."""
    dtype = v.dtype
    qf, kf, v = _checked(qf, kf, v, eps)
    sim = (qf @ kf.transpose(-2, -1)).tril()            # (..., N, N); j > i set to zero
    out = (sim @ v) / (sim.sum(dim=-1, keepdim=True) + eps)
    return out.to(dtype)


def cumsum_causal_linear_attention(qf, kf, v, *, eps=1e-6):
    """All prefix states at once: S_i = cumsum_j phi(k_j) v_j^T, a (..., N, D, d_v) tensor."""
    dtype = v.dtype
    qf, kf, v = _checked(qf, kf, v, eps)
    states = (kf.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(dim=-3)   # (..., N, D, d_v)
    normalisers = kf.cumsum(dim=-2)                                 # (..., N, D)
    numerator = (qf.unsqueeze(-2) @ states).squeeze(-2)             # (..., N, d_v)
    denominator = (qf * normalisers).sum(dim=-1, keepdim=True)
    return (numerator / (denominator + eps)).to(dtype)


def recurrent_causal_linear_attention(qf, kf, v, *, eps=1e-6):
    """The RNN view: S_t = S_{t-1} + phi(k_t) v_t^T, z_t = z_{t-1} + phi(k_t), one step per token."""
    dtype = v.dtype
    qf, kf, v = _checked(qf, kf, v, eps)
    state = qf.new_zeros(*qf.shape[:-2], qf.shape[-1], v.shape[-1])   # S: (..., D, d_v)
    normaliser = qf.new_zeros(*qf.shape[:-2], qf.shape[-1])           # z: (..., D)
    numerators, denominators = [v[..., :0, :]], [v[..., :0, :1]]   # empty starts, so N = 0 works
    for t in range(qf.shape[-2]):
        q_t, k_t, v_t = qf[..., t, :], kf[..., t, :], v[..., t, :]
        state = state + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
        normaliser = normaliser + k_t
        numerators.append(q_t.unsqueeze(-2) @ state)                        # (..., 1, d_v)
        denominators.append(q_t.unsqueeze(-2) @ normaliser.unsqueeze(-1))   # (..., 1, 1)
    out = torch.cat(numerators, dim=-2) / (torch.cat(denominators, dim=-2) + eps)
    return out.to(dtype)


def chunked_causal_linear_attention(qf, kf, v, *, eps=1e-6, chunk_size=DEFAULT_CHUNK_SIZE):
    """Chunkwise parallel: masked C x C products inside each chunk, the running state across chunks.

    Extra memory is O(N C + N D d_v / C): no N x N matrix and no per-token state. Any N works;
    the last chunk is padded with zero keys, which add nothing to any sum.
    """
    check_positive_int("chunk_size", chunk_size)
    dtype = v.dtype
    qf, kf, v = _checked(qf, kf, v, eps)
    return chunked(qf, kf, v, eps, chunk_size).to(dtype)


def chunked(qf, kf, v, eps, chunk_size, *, initial_state=None, return_state=False):
    """The chunked algorithm for a caller that has checked its arguments and chosen the working dtype.

    initial_state: None or the LinearAttentionState [S | z] before the first token; with return_state,
    returns (out, the state after the last token).
    """
    n, d_v = qf.shape[-2], v.shape[-1]
    # The normaliser z is the state that values of all ones would build: append a column of ones to V
    # and every product below carries numerator and denominator together.
    v = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)
    pad = -n % chunk_size

    def chunks(x):  # (..., N, e) -> (..., N/C, C, e)
        return (F.pad(x, (0, 0, 0, pad)) if pad else x).unflatten(-2, (-1, chunk_size))

    qc, kc, vc = chunks(qf), chunks(kf), chunks(v)
    kc_t = kc.transpose(-2, -1)
    # The state before each chunk: an exclusive prefix sum of what every chunk adds (shifted by one
    # chunk rather than subtracted, so that no rounding carries a later token into an earlier output).
    chunk_states = kc_t @ vc                                            # (..., N/C, D, d_v + 1)
    state_before = F.pad(chunk_states.cumsum(dim=-3)[..., :-1, :, :], (0, 0, 0, 0, 1, 0))
    if initial_state is not None:                                       # what earlier tokens left: [S_0 | z_0]
        state_before = state_before + initial_state.joined().unsqueeze(-3)
    # Inside a chunk: the masked quadratic form on C tokens (in place: matmul keeps its inputs).
    sim = (qc @ kc_t).tril_()                                           # (..., N/C, C, C)
    both = (sim @ vc + qc @ state_before).flatten(-3, -2)[..., :n, :]    # (..., N, d_v + 1)
    out = both[..., :d_v] / (both[..., d_v:] + eps)
    if not return_state:
        return out
    final = chunk_states.sum(dim=-3)                                    # (..., D, d_v + 1); zeros when N = 0
    if initial_state is not None:
        final = final + initial_state.joined()
    return out, LinearAttentionState.from_joined(final)


CAUSAL_ALGORITHMS = {
    "masked": masked_causal_linear_attention,
    "cumsum": cumsum_causal_linear_attention,
    "recurrent": recurrent_causal_linear_attention,
    "chunked": chunked_causal_linear_attention,
}
