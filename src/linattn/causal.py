"""Causal linear attention on feature-mapped queries and keys (qf, kf: (..., N, D); v: (..., N, d_v))."""
import torch


def masked_causal_linear_attention(qf, kf, v, *, eps=1e-6):
    """The quadratic reference: (phi(Q) phi(K)^T, lower triangle) V, row-normalised."""
    n = qf.shape[-2]
    past = torch.ones(n, n, dtype=torch.bool, device=qf.device).tril()
    sim = (qf @ kf.transpose(-2, -1)).masked_fill(~past, 0)
    return (sim @ v) / (sim.sum(dim=-1, keepdim=True) + eps)


causal_linear_attention = masked_causal_linear_attention
