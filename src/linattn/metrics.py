"""How far one attention is from another: entropy of the weights, distances, relative errors."""
import torch

from .validation import check_tensor


def _check_weights(weights, atol):
    check_tensor("weights", weights, min_dim=1)
    if (weights < 0).any():
        raise ValueError(f"attention weights must be >= 0; got a minimum of {weights.min().item():.3g}")
    sums = weights.sum(dim=-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol, rtol=0):
        worst = (sums - 1).abs().max().item()
        raise ValueError(f"each row of attention weights must sum to 1; off by up to {worst:.3g}")


def attention_entropy(weights, *, atol=1e-4):
    """Entropy -sum_j w_j log w_j of each row, in nats: 0 for one-hot, log M for uniform over M keys."""
    _check_weights(weights, atol)
    return -torch.special.xlogy(weights, weights).sum(dim=-1)  # xlogy takes 0 log 0 as 0


def total_variation(p, q, *, atol=1e-4):
    """Half the L1 distance between matching rows: the share of attention put on other keys, in [0, 1]."""
    _check_weights(p, atol)
    _check_weights(q, atol)
    if p.shape != q.shape:
        raise ValueError(f"p and q need one shape; got {tuple(p.shape)} and {tuple(q.shape)}")
    return 0.5 * (p - q).abs().sum(dim=-1)


def relative_error(approx, exact):
    """|approx - exact| / |exact| in the Frobenius norm, over the whole tensor."""
    check_tensor("approx", approx, min_dim=1)
    check_tensor("exact", exact, min_dim=1)
    if approx.shape != exact.shape:
        raise ValueError(f"approx and exact need one shape; got {tuple(approx.shape)} and {tuple(exact.shape)}")
    norm = torch.linalg.vector_norm(exact)
    if norm == 0:
        raise ValueError("relative error is undefined when the exact tensor is all zero")
    return (torch.linalg.vector_norm(approx - exact) / norm).item()
