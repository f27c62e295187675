"""The two public attention functions: softmax (quadratic) and linear (reordered products)."""
import torch

from . import fast
from .causal import DEFAULT_CHUNK_SIZE, chunked
from .feature_maps import apply_feature_map, is_elu_plus_one, trusted_feature_map
from .generation import check_linear_state
from .validation import (accumulation_dtype, check_eps, check_key_padding_mask, check_qkv, check_scale,
                         check_state_options)


def softmax_attention(q, k, v, *, causal=False, scale=None):
    """softmax(Q K^T * scale) V, with scale = 1/sqrt(d) by default. Builds the N x M score matrix.

    Half-precision inputs are computed in float32 and cast back: with |q|, |k| ~ 100 the scores
    reach 1e5, past float16's largest number (65504), and bfloat16 would round them by hundreds.
    """
    check_qkv(q, k, v, causal=causal)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    else:
        check_scale(scale)
    work = accumulation_dtype(q.dtype)
    scores = (q.to(work) * scale) @ k.to(work).transpose(-2, -1)   # scaled first, as SDPA does
    if causal:
        n = q.shape[-2]
        future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v.to(work)).to(v.dtype)


def linear_attention(q, k, v, *, feature_map="elu", causal=False, eps=1e-6, scale=1.0, key_padding_mask=None,
                     initial_state=None, return_state=False):
    """phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1): linear in N, never an N x N matrix.

    **q, k: (..., N, d); v: (..., N, d_v)**, any leading (batch, head) dimensions; returns (..., N, d_v)
    in the dtype of the inputs. The sequence is the second-to-last dimension: a (B, N, H, d) tensor
    (heads after the sequence) is accepted silently and gives a different answer, attention across
    the heads of each token. Transpose it to (B, H, N, d) first.
    Half-precision inputs are computed in float32 and cast back.

    scale             multiplies q before the feature map, phi(scale * q), like fla's `scale`; default 1.
    key_padding_mask  None or bool (..., M), True where a key is real: padded keys add nothing to either
                      sum. A leading dimension may be 1, e.g. (B, 1, M) for every head of (B, H, M, d).
    initial_state     causal only: the LinearAttentionState (S, z) of the tokens before these, from
                      return_state or linear_attention_step (float32 for half-precision inputs).
    return_state      causal only: return (out, state), the state after the last token, which the
                      next piece of the sequence or linear_attention_step continues from.
    """
    check_qkv(q, k, v, causal=causal)
    check_eps(eps)
    check_scale(scale)
    check_key_padding_mask(key_padding_mask, k)
    check_state_options(initial_state, return_state, causal)
    if is_elu_plus_one(feature_map):
        _check_initial_state(initial_state, q, v, features=q.shape[-1])
        return fast.elu_linear_attention(q, k, v, causal=causal, eps=eps, scale=scale,   # the same maths, for CPUs
                                         key_padding_mask=key_padding_mask, initial_state=initial_state,
                                         return_state=return_state)
    phi = trusted_feature_map(feature_map)
    work = accumulation_dtype(q.dtype)
    qf = apply_feature_map(phi, q.to(work) * scale, "q")
    kf = apply_feature_map(phi, k.to(work), "k")
    v = v.to(work)
    if key_padding_mask is not None:                   # padded keys (and their values) add nothing
        padded = ~key_padding_mask.unsqueeze(-1)
        kf, v = kf.masked_fill(padded, 0), v.masked_fill(padded, 0)
    if causal:
        _check_initial_state(initial_state, q, v, features=kf.shape[-1])
        out, state = chunked(qf, kf, v, eps, DEFAULT_CHUNK_SIZE, initial_state=initial_state, return_state=True)
        return (out.to(q.dtype), state) if return_state else out.to(q.dtype)
    kv = kf.transpose(-2, -1) @ v                  # (..., D, d_v): phi(K)^T V
    normaliser = qf @ kf.sum(dim=-2).unsqueeze(-1)  # (..., N, 1): phi(Q) phi(K)^T 1
    return ((qf @ kv) / (normaliser + eps)).to(q.dtype)


def _check_initial_state(state, q, v, *, features):
    if state is not None:
        check_linear_state(state, lead=q.shape[:-2], features=features, d_v=v.shape[-1],
                           dtype=accumulation_dtype(q.dtype), device=q.device, name="initial_state",
                           needs=f"q {tuple(q.shape)} with {features} features per key and v {tuple(v.shape)}")
