"""Attention as a kernel smoother: any non-negative similarity sim(q, k) makes an attention.

out_i = sum_j sim(q_i, k_j) v_j / sum_j sim(q_i, k_j) (Nadaraya 1964; Watson 1964; Tsai et al. 2019).
Softmax attention is the case sim(q, k) = exp(q . k / sqrt(d)). A similarity takes q (..., N, d) and
k (..., M, d) and returns the (..., N, M) matrix of sim(q_i, k_j).
"""
import functools
import math

import torch

from .feature_maps import apply_feature_map, get_feature_map, trusted_feature_map
from .validation import check_positive_int, check_tensor, describe


def _check_qk(q, k):
    check_tensor("q", q)
    check_tensor("k", k)
    if q.shape[-1] != k.shape[-1] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k need the same leading dimensions and feature size d; got {describe(q=q, k=k)}")
    if q.dtype != k.dtype or q.device != k.device:
        raise ValueError(f"q and k need one dtype and device; got {q.dtype} on {q.device}, {k.dtype} on {k.device}")


def _checks_qk(similarity):
    """The public similarity checks q and k; `attention_weights`, which has checked them, calls
    `.unchecked` so that no tensor is checked twice on one call."""
    @functools.wraps(similarity)
    def checked(q, k, **options):
        _check_qk(q, k)
        return similarity(q, k, **options)

    checked.unchecked = similarity
    return checked


def _unchecked(sim):
    if isinstance(sim, functools.partial) and hasattr(sim.func, "unchecked"):
        return functools.partial(sim.func.unchecked, *sim.args, **sim.keywords)
    return getattr(sim, "unchecked", sim)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")


@_checks_qk
def dot_similarity(q, k):
    """q . k: the raw dot product. Negative for vectors pointing apart, so not a valid weight."""
    return q @ k.transpose(-2, -1)


@_checks_qk
def exp_similarity(q, k, *, temperature=None):
    """exp(q . k / temperature); temperature sqrt(d) by default, which makes softmax attention."""
    temperature = math.sqrt(q.shape[-1]) if temperature is None else temperature
    _check_positive("temperature", temperature)
    return torch.exp(q @ k.transpose(-2, -1) / temperature)


@_checks_qk
def polynomial_similarity(q, k, *, degree=2, offset=0.0):
    """(q . k + offset)^degree. Non-negative for every input only when the degree is even."""
    check_positive_int("degree", degree)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
        raise ValueError(f"offset must be a finite number, got {offset!r}")
    return (q @ k.transpose(-2, -1) + offset) ** degree


@_checks_qk
def gaussian_similarity(q, k, *, bandwidth=None):
    """exp(-|q - k|^2 / (2 bandwidth^2)), the Gaussian (RBF) kernel; bandwidth d^(1/4) by default.

    exp(-|q - k|^2 / 2s) = exp(q . k / s) exp(-|q|^2 / 2s) exp(-|k|^2 / 2s) with s = bandwidth^2:
    with the default s = sqrt(d) it is softmax's similarity times a factor per query (which the
    normaliser cancels) and a factor per key, so it equals softmax attention when keys share a norm.
    """
    bandwidth = q.shape[-1] ** 0.25 if bandwidth is None else bandwidth
    _check_positive("bandwidth", bandwidth)
    # |q - k|^2 expanded, so no N x M x d tensor; rounding can dip below 0, hence the clamp.
    squared = (q * q).sum(-1, keepdim=True) + (k * k).sum(-1).unsqueeze(-2) - 2 * q @ k.transpose(-2, -1)
    return torch.exp(-squared.clamp(min=0) / (2 * bandwidth ** 2))


def feature_map_similarity(feature_map):
    """The similarity phi(q) . phi(k) of a feature map (a name such as "elu", or a callable)."""
    named, phi = get_feature_map(feature_map), trusted_feature_map(feature_map)

    @_checks_qk
    def similarity(q, k):
        return apply_feature_map(phi, q, "q") @ apply_feature_map(phi, k, "k").transpose(-2, -1)

    similarity.__name__ = f"feature_map_similarity({getattr(named, '__name__', repr(named))})"
    return similarity


SIMILARITIES = {"dot": dot_similarity, "exp": exp_similarity, "polynomial": polynomial_similarity,
                "gaussian": gaussian_similarity}


def attention_weights(q, k, sim, *, allow_negative=False):
    """The (..., N, M) matrix sim(q_i, k_j) / sum_j sim(q_i, k_j): each row sums to one.

    A similarity with negative values (beyond rounding) raises ValueError unless `allow_negative`
    (to watch what goes wrong); otherwise rows whose sum is zero or not finite raise too.
    """
    if not callable(sim):
        raise ValueError(f"sim must be a callable sim(q, k), got {type(sim).__name__}")
    _check_qk(q, k)
    scores = _unchecked(sim)(q, k)
    expected = (*q.shape[:-1], k.shape[-2])
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != expected:
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"sim(q, k) must return shape {expected} for {describe(q=q, k=k)}; got {got}")
    if not allow_negative:
        # Rounding can leave tiny negatives where the exact value is 0 (e.g. poly2 features in
        # float32): within 64 eps of the row's largest magnitude they count as 0.
        rounding = 64 * torch.finfo(scores.dtype).eps * scores.abs().amax(dim=-1, keepdim=True)
        if (scores < -rounding).any():
            raise ValueError(f"similarity has negative values (down to {scores.min().item():.3g}); "
                             "attention weights need sim >= 0 (pass allow_negative=True to see what happens)")
        scores = scores.clamp(min=0)
    total = scores.sum(dim=-1, keepdim=True)
    if not allow_negative and (~torch.isfinite(total) | (total == 0)).any():
        raise ValueError("some rows of sim(q, k) sum to zero or to a non-finite value: their weights are undefined")
    return scores / total


def kernel_smoother(q, k, v, sim, *, allow_negative=False):
    """sum_j sim(q_i, k_j) v_j / sum_j sim(q_i, k_j): attention with any similarity, quadratic in N.

    q: (..., N, d), k: (..., M, d), v: (..., M, d_v); returns (..., N, d_v).
    """
    check_tensor("v", v)
    if v.shape[:-2] != k.shape[:-2] or v.shape[-2] != k.shape[-2]:
        raise ValueError(f"v needs k's leading dimensions and length; got {describe(q=q, k=k, v=v)}")
    weights = attention_weights(q, k, sim, allow_negative=allow_negative)
    return weights.to(v.dtype) @ v
