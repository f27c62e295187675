"""The two public attention functions: softmax (quadratic) and linear (reordered products)."""
import torch

from . import fast
from .causal import DEFAULT_CHUNK_SIZE, chunked
from .feature_maps import apply_feature_map, is_elu_plus_one, trusted_feature_map
from .validation import accumulation_dtype, check_eps, check_qkv


def softmax_attention(q, k, v, *, causal=False, scale=None):
    """softmax(Q K^T * scale) V, with scale = 1/sqrt(d) by default. Builds the N x M score matrix."""
    check_qkv(q, k, v, causal=causal)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    elif not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        raise ValueError(f"scale must be a finite positive number, got {scale!r}")
    scores = (q @ k.transpose(-2, -1)) * scale
    if causal:
        n = q.shape[-2]
        future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    weights = torch.softmax(scores.to(accumulation_dtype(scores.dtype)), dim=-1)
    return weights.to(v.dtype) @ v


def linear_attention(q, k, v, *, feature_map="elu", causal=False, eps=1e-6):
    """phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1): linear in N, never an N x N matrix.

    q, k: (..., N, d); v: (..., N, d_v); returns (..., N, d_v) in the dtype of the inputs.
    Half-precision inputs are computed in float32 and cast back.
    """
    check_qkv(q, k, v, causal=causal)
    check_eps(eps)
    if is_elu_plus_one(feature_map):
        return fast.elu_linear_attention(q, k, v, causal=causal, eps=eps)   # the same maths, tiled for CPUs
    phi = trusted_feature_map(feature_map)
    work = accumulation_dtype(q.dtype)
    qf = apply_feature_map(phi, q.to(work), "q")
    kf = apply_feature_map(phi, k.to(work), "k")
    v = v.to(work)
    if causal:
        out = chunked(qf, kf, v, eps, DEFAULT_CHUNK_SIZE)
    else:
        kv = kf.transpose(-2, -1) @ v                  # (..., D, d_v): phi(K)^T V
        normaliser = qf @ kf.sum(dim=-2).unsqueeze(-1)  # (..., N, 1): phi(Q) phi(K)^T 1
        out = (qf @ kv) / (normaliser + eps)
    return out.to(q.dtype)
