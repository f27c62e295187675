import math

import pytest
import torch
import torch.nn.functional as F

import linattn
from linattn import PerformerFeatures, elu_plus_one, linear_attention, poly2_features, relu_features


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def explicit_smoother(q, k, v, sim):
    """sum_j sim(q_i, k_j) v_j / sum_j sim(q_i, k_j), one pair at a time, in float64."""
    n, m = q.shape[-2], k.shape[-2]
    out = torch.zeros(n, v.shape[-1], dtype=torch.float64)
    for i in range(n):
        weights = torch.stack([sim(q[i], k[j]) for j in range(m)]).double()
        out[i] = (weights[:, None] * v.double()).sum(0) / weights.sum()
    return out


# elu + 1 -------------------------------------------------------------------------------------------

def test_elu_plus_one_is_elu_plus_one():
    x = torch.linspace(-12, 12, 241, dtype=torch.float64)
    assert torch.allclose(elu_plus_one(x), F.elu(x) + 1, atol=1e-15, rtol=1e-12)


def test_elu_plus_one_stays_positive_where_the_naive_form_rounds_to_zero():
    x = torch.tensor([-20.0, -40.0, -80.0])
    assert (F.elu(x) + 1 == 0).all()                 # the naive formula loses these in float32
    assert (elu_plus_one(x) > 0).all()
    assert torch.allclose(elu_plus_one(x).double(), torch.exp(x.double()), rtol=1e-6)


def test_elu_plus_one_gradient_everywhere_and_finite_for_large_inputs():
    x = torch.tensor([-30.0, -3.0, -0.5, 0.0, 0.5, 100.0], dtype=torch.float64, requires_grad=True)
    elu_plus_one(x).sum().backward()
    expected = torch.where(x > 0, torch.ones_like(x), torch.exp(x)).detach()
    assert torch.equal(x.grad, expected)
    assert torch.autograd.gradcheck(elu_plus_one, (randn(4, 3).requires_grad_(),))


def test_relu_has_no_gradient_for_negatives_and_can_zero_a_row():
    x = torch.tensor([[-1.0, -2.0], [1.0, -3.0]], requires_grad=True)
    out = relu_features(x)
    assert torch.equal(out[0], torch.zeros(2))
    out.sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0.0, 0.0], [1.0, 0.0]]))


# exact degree-2 polynomial ---------------------------------------------------------------------------

def test_poly2_inner_products_are_squared_dot_products():
    q, k = randn(6, 5, seed=1), randn(7, 5, seed=2)
    assert poly2_features(q).shape == (6, 25)
    assert torch.allclose(poly2_features(q) @ poly2_features(k).T, (q @ k.T) ** 2, atol=1e-12)


@pytest.mark.parametrize("lead", [(), (2, 3)])
def test_linear_attention_poly2_is_the_squared_dot_product_smoother(lead):
    q, k, v = randn(*lead, 6, 4, seed=3), randn(*lead, 8, 4, seed=4), randn(*lead, 8, 3, seed=5)
    out = linear_attention(q, k, v, feature_map="poly2", eps=0)
    flat = [t.reshape(-1, *t.shape[-2:]) for t in (q, k, v, out)]
    for qb, kb, vb, ob in zip(*flat):
        expected = explicit_smoother(qb, kb, vb, lambda a, b: (a @ b) ** 2)
        assert torch.allclose(ob, expected, atol=1e-12)


# Performer's positive random features ------------------------------------------------------------------

def kernel_error(features, q, k, exact):
    """Mean relative error of the estimated kernel matrix phi(Q) phi(K)^T against `exact`."""
    estimate = features(q) @ features(k).transpose(-2, -1)
    return ((estimate - exact).abs() / exact).mean().item()


def relative_std_bound(q, k, m):
    """Mean relative standard deviation of the i.i.d. positive-feature estimate of exp(q . k):
    sqrt((exp(|q + k|^2) - 1) / m), from the variance in Choromanski et al. 2021 (Lemma 2)."""
    sums = (q[:, None, :] + k[None, :, :]).square().sum(-1)
    return torch.sqrt(torch.expm1(sums) / m).mean().item()


@pytest.mark.parametrize("orthogonal", [True, False])
def test_performer_kernel_estimate_converges_to_exp_of_the_dot_product(orthogonal):
    q, k = 0.4 * randn(16, 8, seed=6), 0.4 * randn(16, 8, seed=7)
    exact = torch.exp(q @ k.T)
    ms = (8, 128, 8192)
    errors = [kernel_error(PerformerFeatures(8, m, seed=0, orthogonal=orthogonal, scale=1.0), q, k, exact)
              for m in ms]
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] / errors[2] > 4                            # about sqrt(8192 / 128) = 8 in theory
    assert errors[2] < 2 * relative_std_bound(q, k, ms[2])


def test_performer_default_scale_gives_softmax_kernel():
    d, m = 16, 8192
    q, k = 0.5 * randn(12, d, seed=8), 0.5 * randn(12, d, seed=9)
    exact = torch.exp(q @ k.T / math.sqrt(d))
    features = PerformerFeatures(d, m, seed=1)
    assert features.scale == pytest.approx(d ** -0.25)
    bound = 2 * relative_std_bound(q * d ** -0.25, k * d ** -0.25, m)
    assert kernel_error(features, q, k, exact) < bound
    # ... and not the unscaled kernel exp(q . k), which it would be with scale=1.
    assert kernel_error(features, q, k, torch.exp(q @ k.T)) > 5 * bound


@pytest.mark.parametrize("orthogonal", [True, False])
def test_performer_estimate_is_unbiased_over_seeds(orthogonal):
    # A query along the first axis: the direction the sign convention of a plain QR favours.
    q = torch.tensor([[0.5, 0.0, 0.0, 0.0]], dtype=torch.float64)
    features = [PerformerFeatures(4, 64, seed=s, orthogonal=orthogonal, scale=1.0)(q) for s in range(400)]
    estimates = torch.tensor([(f @ f.T).item() for f in features])
    standard_error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - math.exp(0.25)) < 4 * standard_error


def test_orthogonal_rows_are_centred_like_gaussian_rows():
    weights = torch.stack([PerformerFeatures(4, 8, seed=s).weight for s in range(300)])   # (seeds, m, d)
    assert (weights.mean(0).abs() * math.sqrt(300)).max() < 4                # each entry has mean 0 ...
    second_moment = torch.einsum("smi,smj->ij", weights, weights) / (300 * 8)
    assert torch.allclose(second_moment, torch.eye(4, dtype=torch.float64), atol=0.15)   # ... and E[w w^T] = I


def test_same_seed_same_features_other_seed_other_features():
    x = randn(5, 8, seed=10)
    a, b, c = (PerformerFeatures(8, 20, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.weight, b.weight) and torch.equal(a(x), b(x))
    assert not torch.allclose(a.weight, c.weight)


@pytest.mark.parametrize("d,m", [(8, 8), (8, 20), (5, 64)])
def test_orthogonal_blocks(d, m):
    w = PerformerFeatures(d, m, seed=2).weight
    assert w.shape == (m, d)
    for start in range(0, m, d):
        block = w[start:start + d]
        gram = block @ block.T
        assert torch.allclose(gram, torch.diag(torch.diagonal(gram)), atol=1e-10)
    lengths = w.norm(dim=1)
    assert lengths.std() > 0.05                                 # Gaussian-like lengths, not all one
    iid = PerformerFeatures(d, m, seed=2, orthogonal=False).weight
    assert not torch.allclose(iid[:d] @ iid[:d].T, torch.diag(torch.diagonal(iid[:d] @ iid[:d].T)), atol=1e-3)


def test_performer_features_are_positive_and_shaped():
    features = PerformerFeatures(6, 10, seed=0)
    out = features(randn(2, 3, 7, 6, dtype=torch.float32))
    assert out.shape == (2, 3, 7, 10) and out.dtype == torch.float32
    assert (out > 0).all()
    assert "num_features=10" in repr(features)


def test_large_inputs_underflow_in_float32_as_documented():
    features = PerformerFeatures(16, 64, seed=5)
    x = 12 * randn(10, 16, seed=11)
    assert (features(x.float()) == 0).all(dim=-1).any()          # whole rows lost in float32 ...
    assert (features(x) > 0).all()                               # ... but not in float64


def test_performer_gradients():
    features = PerformerFeatures(4, 6, seed=0)
    assert torch.autograd.gradcheck(features, (randn(3, 4).requires_grad_(),))
    q, k, v = (randn(5, 4, seed=s).requires_grad_() for s in (1, 2, 3))
    assert torch.autograd.gradcheck(lambda a, b, c: linear_attention(a, b, c, feature_map=features), (q, k, v))


@pytest.mark.parametrize("feature_map", ["elu", "relu", "poly2"])
def test_linear_attention_gradients_by_name(feature_map):
    q, k, v = (randn(5, 3, seed=s).requires_grad_() for s in (1, 2, 3))
    assert torch.autograd.gradcheck(lambda a, b, c: linear_attention(a, b, c, feature_map=feature_map), (q, k, v))


def test_feature_maps_by_name():
    assert set(linattn.FEATURE_MAPS) == {"elu", "relu", "poly2"}
    assert linattn.get_feature_map("poly2") is poly2_features


@pytest.mark.parametrize("kwargs", [{"dim": 0, "num_features": 4}, {"dim": 4, "num_features": 0},
                                    {"dim": 4.0, "num_features": 4}, {"dim": 4, "num_features": "8"},
                                    {"dim": True, "num_features": 4}, {"dim": 4, "num_features": 4, "seed": -1},
                                    {"dim": 4, "num_features": 4, "seed": 1.5},
                                    {"dim": 4, "num_features": 4, "scale": 0},
                                    {"dim": 4, "num_features": 4, "scale": float("nan")},
                                    {"dim": 4, "num_features": 4, "scale": True}])
def test_performer_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        PerformerFeatures(**kwargs)


@pytest.mark.parametrize("phi", [elu_plus_one, relu_features, poly2_features, PerformerFeatures(4, 8)])
def test_feature_maps_reject_bad_input(phi):
    with pytest.raises(ValueError):
        phi(torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError):
        phi([1.0, 2.0])


def test_performer_rejects_the_wrong_feature_size():
    with pytest.raises(ValueError, match=r"dim=4.*\(3, 5\)"):
        PerformerFeatures(4, 8)(torch.ones(3, 5))
