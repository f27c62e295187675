"""What the two orders of linear attention's products cost: FLOP and memory formulas, the sequence
length where they break even, and a FLOP counter built on torch.utils.flop_counter.

Both orders start from the feature-mapped queries and keys qf = phi(Q) (..., N, D), kf = phi(K)
(..., M, D) and the values v (..., M, d_v), and compute

    quadratic order:  (qf kf^T) V   /  (qf kf^T) 1     - builds an N x M matrix first
    linear order:     qf (kf^T V)   /  qf (kf^T 1)     - builds a D x d_v matrix first

FLOPs count the matrix products only, 2 per multiply-add, as FlopCounterMode counts them; the
feature map and the final division cost the same in both orders and are left out. Memory counts
every tensor an order allocates beyond its inputs (intermediates and result) at its peak.
"""
import math

import torch
from torch.utils.flop_counter import FlopCounterMode

from .memory import element_size
from ..validation import check_eps, check_positive_int, check_qkv

COSTS = ("flops", "bytes")


def _check_sizes(**sizes):
    for name, value in sizes.items():
        check_positive_int(name, value)


def _sizes(batch, seq_len, dim, value_dim, key_len, heads):
    value_dim = dim if value_dim is None else value_dim
    key_len = seq_len if key_len is None else key_len
    _check_sizes(batch=batch, seq_len=seq_len, dim=dim, value_dim=value_dim, key_len=key_len, heads=heads)
    return batch * heads, seq_len, key_len, dim, value_dim


def _check_dtype(dtype):
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")


def quadratic_order(qf, kf, v, *, normaliser=True, eps=1e-6):
    """(qf kf^T) v, divided row-wise by (qf kf^T) 1 when `normaliser`. Builds the (..., N, M) matrix."""
    check_qkv(qf, kf, v)
    check_eps(eps)
    scores = qf @ kf.transpose(-2, -1)                          # (..., N, M)
    if not normaliser:
        return scores @ v
    ones = torch.ones(kf.shape[-2], 1, dtype=kf.dtype, device=kf.device)
    return (scores @ v) / (scores @ ones + eps)


def linear_order(qf, kf, v, *, normaliser=True, eps=1e-6):
    """qf (kf^T v), divided row-wise by qf (kf^T 1) when `normaliser`. Builds a (..., D, d_v) matrix."""
    check_qkv(qf, kf, v)
    check_eps(eps)
    state = kf.transpose(-2, -1) @ v                            # (..., D, d_v)
    if not normaliser:
        return qf @ state
    ones = torch.ones(kf.shape[-2], 1, dtype=kf.dtype, device=kf.device)
    key_sum = kf.transpose(-2, -1) @ ones                       # (..., D, 1)
    return (qf @ state) / (qf @ key_sum + eps)


def quadratic_order_flops(batch, seq_len, dim, *, value_dim=None, key_len=None, heads=1, normaliser=True):
    """FLOPs of quadratic_order: 2NMD for qf kf^T, 2NMd_v for the values, 2NM for the normaliser."""
    bh, n, m, d, dv = _sizes(batch, seq_len, dim, value_dim, key_len, heads)
    return 2 * bh * n * m * (d + dv + int(normaliser))


def linear_order_flops(batch, seq_len, dim, *, value_dim=None, key_len=None, heads=1, normaliser=True):
    """FLOPs of linear_order: 2MDd_v for kf^T v and 2NDd_v for qf times it, plus 2MD + 2ND for the normaliser."""
    bh, n, m, d, dv = _sizes(batch, seq_len, dim, value_dim, key_len, heads)
    return 2 * bh * (m + n) * d * (dv + int(normaliser))


def quadratic_order_bytes(batch, seq_len, dim, *, value_dim=None, key_len=None, heads=1, normaliser=True,
                          dtype=torch.float32):
    """Peak bytes quadratic_order allocates: the N x M scores and the N x d_v result; with the
    normaliser also the ones vector (M), the N denominators and the numerator before division."""
    _check_dtype(dtype)
    bh, n, m, d, dv = _sizes(batch, seq_len, dim, value_dim, key_len, heads)
    elements = bh * (n * m + n * dv)
    if normaliser:
        elements += m + bh * (n + n * dv)
    return elements * element_size(dtype)


def linear_order_bytes(batch, seq_len, dim, *, value_dim=None, key_len=None, heads=1, normaliser=True,
                       dtype=torch.float32):
    """Peak bytes linear_order allocates: the D x d_v state and the N x d_v result; with the
    normaliser also the ones vector (M), the D key sums, the N denominators and the numerator."""
    _check_dtype(dtype)
    bh, n, m, d, dv = _sizes(batch, seq_len, dim, value_dim, key_len, heads)
    elements = bh * (d * dv + n * dv)
    if normaliser:
        elements += m + bh * (d + n + n * dv)
    return elements * element_size(dtype)


def predicted_crossover(dim, *, value_dim=None, normaliser=True, cost="flops"):
    """The sequence length N (= M) above which the linear order costs less than the quadratic one.

    flops: 2N^2 (D + d_v + c) = 4N D (d_v + c), c = 1 with the normaliser, so N* = 2D(d_v + c) / (D + d_v + c).
    bytes: the N x M scores against the D x d_v state and D key sums (all else is shared),
           so N* = sqrt(D (d_v + c)).
    """
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    value_dim = dim if value_dim is None else value_dim
    _check_sizes(dim=dim, value_dim=value_dim)
    c = int(normaliser)
    if cost == "flops":
        return 2 * dim * (value_dim + c) / (dim + value_dim + c)
    return math.sqrt(dim * (value_dim + c))


def measured_crossover(seq_lens, quadratic_times, linear_times):
    """The N from which the linear order stays faster, interpolated on log axes, or None.

    Looks for the last measured length at which the linear order was not faster and interpolates
    log(t_linear / t_quadratic) to zero between it and the next length. None when the linear order
    is faster at every length, or slower at the longest one: the crossover is then outside the data.
    """
    seq_lens, quadratic_times, linear_times = list(seq_lens), list(quadratic_times), list(linear_times)
    if not len(seq_lens) == len(quadratic_times) == len(linear_times) >= 2:
        raise ValueError(f"need at least two points and matching lengths, got {len(seq_lens)} sequence lengths, "
                         f"{len(quadratic_times)} and {len(linear_times)} times")
    if any(b <= a for a, b in zip(seq_lens, seq_lens[1:])) or seq_lens[0] <= 0:
        raise ValueError(f"sequence lengths must be positive and increasing, got {seq_lens}")
    if not all(t > 0 and math.isfinite(t) for t in quadratic_times + linear_times):
        raise ValueError("times must be positive and finite")
    log_ratio = [math.log(lin / quad) for quad, lin in zip(quadratic_times, linear_times)]
    if log_ratio[-1] >= 0:
        return None
    not_faster = [i for i, r in enumerate(log_ratio) if r >= 0]
    if not not_faster:
        return None
    i = not_faster[-1]
    fraction = log_ratio[i] / (log_ratio[i] - log_ratio[i + 1])
    return math.exp(math.log(seq_lens[i]) + fraction * (math.log(seq_lens[i + 1]) - math.log(seq_lens[i])))


def count_flops(fn, *args, **kwargs):
    """FLOPs of the matrix products fn(*args, **kwargs) runs, as torch's FlopCounterMode counts them
    (2 per multiply-add; element-wise operations and matrix-vector products are not counted)."""
    if not callable(fn):
        raise ValueError(f"count_flops needs a callable, got {type(fn).__name__}")
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()
