import math

import pytest
import torch

from linattn import (SIMILARITIES, attention_weights, dot_similarity, exp_similarity, feature_map_similarity,
                     gaussian_similarity, kernel_smoother, linear_attention, polynomial_similarity,
                     softmax_attention)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def qkv(*lead, n=6, m=9, d=4, dv=3):
    return randn(*lead, n, d, seed=1), randn(*lead, m, d, seed=2), randn(*lead, m, dv, seed=3)


def pairwise(q, k, fn):
    """The (N, M) matrix fn(q_i, k_j), one pair at a time."""
    return torch.tensor([[fn(qi, kj) for kj in k] for qi in q], dtype=q.dtype)


@pytest.mark.parametrize("lead", [(), (2, 3)])
def test_exp_similarity_smoother_is_softmax_attention(lead):
    q, k, v = qkv(*lead)
    assert torch.allclose(kernel_smoother(q, k, v, exp_similarity), softmax_attention(q, k, v), atol=1e-12)


def test_temperature_is_one_over_softmax_scale():
    q, k, v = qkv()
    smoother = kernel_smoother(q, k, v, lambda a, b: exp_similarity(a, b, temperature=0.7))
    assert torch.allclose(smoother, softmax_attention(q, k, v, scale=1 / 0.7), atol=1e-12)


@pytest.mark.parametrize("name", ["elu", "relu", "poly2"])
def test_feature_map_smoother_is_linear_attention(name):
    q, k, v = qkv(2)
    q, k = q.abs(), k.abs()       # keeps every relu row non-zero
    assert torch.allclose(kernel_smoother(q, k, v, feature_map_similarity(name)),
                          linear_attention(q, k, v, feature_map=name, eps=0), atol=1e-12)


def test_similarities_match_their_formulas_pair_by_pair():
    q, k, _ = qkv()
    d = q.shape[-1]
    assert torch.allclose(dot_similarity(q, k), pairwise(q, k, lambda a, b: a @ b), atol=1e-12)
    assert torch.allclose(exp_similarity(q, k), pairwise(q, k, lambda a, b: math.exp(a @ b / math.sqrt(d))))
    assert torch.allclose(polynomial_similarity(q, k, degree=3, offset=1.5),
                          pairwise(q, k, lambda a, b: (a @ b + 1.5) ** 3), atol=1e-10)
    assert torch.allclose(gaussian_similarity(q, k, bandwidth=1.3),
                          pairwise(q, k, lambda a, b: math.exp(-((a - b) ** 2).sum() / (2 * 1.3 ** 2))), atol=1e-12)
    assert torch.allclose(gaussian_similarity(q, q).diagonal(), torch.ones(q.shape[0], dtype=q.dtype))


def test_poly2_features_reproduce_the_squared_polynomial():
    q, k, _ = qkv()
    assert torch.allclose(feature_map_similarity("poly2")(q, k), polynomial_similarity(q, k, degree=2), atol=1e-12)


def test_gaussian_is_softmax_when_keys_share_a_norm():
    q, k, v = qkv()
    k = 2.0 * k / k.norm(dim=-1, keepdim=True)
    assert torch.allclose(kernel_smoother(q, k, v, gaussian_similarity), softmax_attention(q, k, v), atol=1e-12)
    k_uneven = k * torch.linspace(0.5, 2.0, k.shape[0], dtype=k.dtype)[:, None]
    assert not torch.allclose(kernel_smoother(q, k_uneven, v, gaussian_similarity),
                              softmax_attention(q, k_uneven, v), atol=1e-3)


def test_weights_are_a_distribution_per_row():
    q, k, _ = qkv(2)
    for name, sim in SIMILARITIES.items():
        if name == "dot":
            continue
        weights = attention_weights(q, k, sim)
        assert weights.shape == (2, 6, 9) and (weights >= 0).all()
        assert torch.allclose(weights.sum(-1), torch.ones(2, 6, dtype=q.dtype))


def test_negative_similarities_are_refused_unless_asked_for():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="negative"):
        kernel_smoother(q, k, v, dot_similarity)
    with pytest.raises(ValueError, match="negative"):
        attention_weights(q, k, lambda a, b: polynomial_similarity(a, b, degree=3))
    weights = attention_weights(q, k, dot_similarity, allow_negative=True)
    assert torch.allclose(weights, (q @ k.T) / (q @ k.T).sum(-1, keepdim=True))


def test_rounding_below_zero_is_not_a_negative_similarity():
    q, k = randn(64, 32, seed=4, dtype=torch.float32), randn(64, 32, seed=5, dtype=torch.float32)
    sim = feature_map_similarity("poly2")
    assert (sim(q, k) < 0).any()                        # float32 rounding of values that are >= 0
    weights = attention_weights(q, k, sim)
    assert (weights >= 0).all()
    assert torch.allclose(weights.double(), attention_weights(q.double(), k.double(), sim), atol=1e-6)


def test_rows_that_sum_to_zero_are_refused():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="sum to zero"):
        kernel_smoother(-q.abs(), k.abs(), v, feature_map_similarity("relu"))


@pytest.mark.parametrize("call", [
    lambda q, k, v: kernel_smoother(q[..., :3], k, v, exp_similarity),
    lambda q, k, v: kernel_smoother(q, k, v[:-1], exp_similarity),
    lambda q, k, v: kernel_smoother(q, k.float(), v, exp_similarity),
    lambda q, k, v: kernel_smoother(q, k, v, "exp"),
    lambda q, k, v: kernel_smoother(q, k, v, lambda a, b: a @ b.T[:, :2]),
    lambda q, k, v: kernel_smoother(q.long(), k, v, exp_similarity),
    lambda q, k, v: exp_similarity(q, k, temperature=0),
    lambda q, k, v: exp_similarity(q, k, temperature=float("inf")),
    lambda q, k, v: polynomial_similarity(q, k, degree=0),
    lambda q, k, v: polynomial_similarity(q, k, degree=1.5),
    lambda q, k, v: polynomial_similarity(q, k, offset=float("nan")),
    lambda q, k, v: gaussian_similarity(q, k, bandwidth=-1.0),
    lambda q, k, v: feature_map_similarity("tanh"),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call(*qkv())


@pytest.mark.parametrize("sim", [exp_similarity, gaussian_similarity, feature_map_similarity("elu"),
                                 lambda a, b: polynomial_similarity(a, b, degree=2, offset=1.0)])
def test_gradients(sim):
    q, k, v = (t.requires_grad_() for t in qkv(n=3, m=4, d=3, dv=2))
    assert torch.autograd.gradcheck(lambda a, b, c: kernel_smoother(a, b, c, sim), (q, k, v))


def test_gaussian_gradient_is_finite_where_a_query_equals_a_key():
    q = randn(3, 4, seed=5).requires_grad_()
    gaussian_similarity(q, q.detach().clone()).sum().backward()
    assert torch.isfinite(q.grad).all()
