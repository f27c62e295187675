"""Feature maps phi with phi(q) . phi(k) >= 0, usable as linear_attention(..., feature_map=...)."""
import math

import torch
import torch.nn.functional as F

from .validation import check_tensor


def elu_plus_one(x):
    """phi(x) = elu(x) + 1 (Katharopoulos et al. 2020): positive, smooth, gradient everywhere.

    Computed as x + 1 for x > 0 and exp(x) otherwise, which is the same function: written as
    elu(x) + 1 it adds 1 to -1 + e^x and rounds to exactly 0 in float32 below x of about -17.
    """
    check_tensor("x", x, min_dim=1)
    return _elu_plus_one(x)


def _elu_plus_one(x):
    # clamp keeps exp finite in the branch `where` discards, so its gradient is never inf * 0 = nan.
    return torch.where(x > 0, x + 1, torch.exp(x.clamp(max=0)))


def relu_features(x):
    """phi(x) = max(x, 0): non-negative, but rows can be all zero and negatives get no gradient."""
    check_tensor("x", x, min_dim=1)
    return F.relu(x)


def poly2_features(x):
    """Exact degree-2 polynomial map: phi(x) = vec(x x^T), so phi(q) . phi(k) = (q . k)^2."""
    check_tensor("x", x, min_dim=1)
    return _poly2(x)


def _poly2(x):
    return (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class PerformerFeatures:
    """Positive random features (FAVOR+, Choromanski et al. 2021) estimating exp(q . k * scale^2).

    phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m) with x' = scale * x and the m rows of W Gaussian
    (made orthogonal in blocks of d when `orthogonal`), so E[phi(q) . phi(k)] = exp(q' . k').
    The default scale d^(-1/4) on each side makes the kernel softmax's exp(q . k / sqrt(d)).

    Range: a feature is exp(w . x' - |x'|^2 / 2), so a row of large norm can underflow to all
    zeros (its output becomes 0 / eps). FAVOR+ implementations shift queries row by row and keys
    by one constant per sequence, which needs to know which input is which; one callable used
    for both cannot, so keep |x'| moderate or work in float64.
    """

    def __init__(self, dim, num_features, *, seed=0, orthogonal=True, scale=None):
        if not _is_int(dim) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if not _is_int(num_features) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))
                                  or not 0 < scale < math.inf):
            raise ValueError(f"scale must be a finite positive number or None, got {scale!r}")
        self.dim, self.num_features, self.seed = dim, num_features, seed
        self.orthogonal = bool(orthogonal)
        self.scale = dim ** -0.25 if scale is None else float(scale)
        self.weight = self._draw(torch.Generator().manual_seed(seed))

    def _draw(self, gen):
        d, m = self.dim, self.num_features
        if not self.orthogonal:
            return torch.randn(m, d, generator=gen, dtype=torch.float64)
        gaussian = torch.randn(math.ceil(m / d), d, d, generator=gen, dtype=torch.float64)
        q, r = torch.linalg.qr(gaussian)                  # one orthogonal d x d block per d features
        # QR fixes the signs of R's diagonal, which biases the directions of Q (its first column
        # always points away from the first axis). Flipping by those signs makes Q uniformly
        # random (Haar), so each row is a uniform direction and the estimate stays unbiased.
        signs = torch.diagonal(r, dim1=-2, dim2=-1).sign()
        signs[signs == 0] = 1
        rows = (q * signs.unsqueeze(-2)).transpose(-2, -1).reshape(-1, d)[:m]
        # Orthogonal rows have unit length; rescale to the lengths Gaussian rows would have.
        norms = torch.randn(m, d, generator=gen, dtype=torch.float64).norm(dim=1, keepdim=True)
        return rows * norms

    def __call__(self, x):
        check_tensor("x", x, min_dim=1)
        return self.unchecked(x)

    def unchecked(self, x):
        """phi(x) for a caller that has checked x is a floating-point tensor."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"PerformerFeatures(dim={self.dim}) got input of shape {tuple(x.shape)}")
        xs = x * self.scale
        w = self.weight.to(device=x.device, dtype=x.dtype)
        log_phi = xs @ w.T - 0.5 * (xs * xs).sum(-1, keepdim=True)
        return torch.exp(log_phi) / math.sqrt(self.num_features)

    def __repr__(self):
        return (f"PerformerFeatures(dim={self.dim}, num_features={self.num_features}, seed={self.seed}, "
                f"orthogonal={self.orthogonal}, scale={self.scale:.4g})")


FEATURE_MAPS = {"elu": elu_plus_one, "relu": relu_features, "poly2": poly2_features}


def is_elu_plus_one(feature_map):
    """Whether `feature_map` (a name or a callable) is phi = elu + 1, the map linattn.fast speeds up."""
    return feature_map is elu_plus_one or (isinstance(feature_map, str) and feature_map == "elu")


def get_feature_map(feature_map):
    """A callable phi from a name in FEATURE_MAPS or a callable (returned as is)."""
    if callable(feature_map):
        return feature_map
    if isinstance(feature_map, str) and feature_map in FEATURE_MAPS:
        return FEATURE_MAPS[feature_map]
    raise ValueError(f"feature_map must be one of {sorted(FEATURE_MAPS)} or a callable, got {feature_map!r}")


_UNCHECKED = ((elu_plus_one, _elu_plus_one), (relu_features, F.relu), (poly2_features, _poly2))


def trusted_feature_map(feature_map):
    """get_feature_map for a caller that has checked the inputs: the package's own maps skip their check."""
    phi = get_feature_map(feature_map)
    if isinstance(phi, PerformerFeatures):
        return phi.unchecked
    return next((unchecked for checked, unchecked in _UNCHECKED if phi is checked), phi)


def apply_feature_map(phi, x, name):
    """phi(x), checked to keep the (..., N) dimensions of x."""
    out = phi(x)
    if not isinstance(out, torch.Tensor) or out.shape[:-1] != x.shape[:-1]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"feature map must map {name} {tuple(x.shape)} to (..., N, D); got {got}")
    return out
