import pytest
import torch
import torch.nn.functional as F

import linattn
from linattn import linear_attention, softmax_attention


def kernel_smoother(q, k, v, sim, causal=False):
    """out_i = sum_j sim(q_i, k_j) v_j / sum_j sim(q_i, k_j), one query at a time, in float64."""
    q, k, v = q.double(), k.double(), v.double()
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=torch.float64)
    for i in range(q.shape[-2]):
        last = i + 1 if causal else k.shape[-2]
        weights = sim(q[..., i:i + 1, :], k[..., :last, :])           # (..., 1, last)
        out[..., i, :] = ((weights @ v[..., :last, :]) / weights.sum(-1, keepdim=True)).squeeze(-2)
    return out


def elu_sim(qi, kj):
    return (F.elu(qi) + 1) @ (F.elu(kj) + 1).transpose(-2, -1)


def exp_sim(qi, kj):
    return torch.exp(qi @ kj.transpose(-2, -1) / qi.shape[-1] ** 0.5)


def qkv(*lead, n=7, m=None, d=5, dv=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = n if m is None else m
    return (torch.randn(*lead, n, d, generator=g, dtype=dtype), torch.randn(*lead, m, d, generator=g, dtype=dtype),
            torch.randn(*lead, m, dv, generator=g, dtype=dtype))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lead", [(), (2,), (2, 3)])
def test_linear_attention_is_the_elu_kernel_smoother(lead, causal):
    q, k, v = qkv(*lead, dtype=torch.float64)
    expected = kernel_smoother(q, k, v, elu_sim, causal)
    assert torch.allclose(linear_attention(q, k, v, causal=causal, eps=0), expected, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_attention_is_the_exp_kernel_smoother(causal):
    q, k, v = qkv(2, 3, dtype=torch.float64)
    expected = kernel_smoother(q, k, v, exp_sim, causal)
    assert torch.allclose(softmax_attention(q, k, v, causal=causal), expected, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_attention_matches_pytorch_sdpa(causal):
    q, k, v = qkv(2, 4, n=33, d=16, dv=8)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(softmax_attention(q, k, v, causal=causal), expected, atol=1e-5)
    assert torch.allclose(softmax_attention(q, k, v, scale=0.3), F.scaled_dot_product_attention(q, k, v, scale=0.3),
                          atol=1e-5)


def test_non_causal_handles_more_keys_than_queries():
    q, k, v = qkv(2, n=4, m=9)
    assert linear_attention(q, k, v).shape == (2, 4, 3)
    assert torch.allclose(linear_attention(q.double(), k.double(), v.double(), eps=0),
                          kernel_smoother(q, k, v, elu_sim), atol=1e-12)


@pytest.mark.parametrize("attn", [softmax_attention, linear_attention])
def test_causal_outputs_ignore_the_future(attn):
    q, k, v = qkv(2, n=12)
    t = 5
    q2, k2, v2 = (x.clone() for x in (q, k, v))
    for x in (q2, k2, v2):
        x[..., t + 1:, :] = torch.randn_like(x[..., t + 1:, :]) * 10
    before, after = attn(q, k, v, causal=True), attn(q2, k2, v2, causal=True)
    assert torch.allclose(before[..., :t + 1, :], after[..., :t + 1, :], atol=1e-6)
    assert not torch.allclose(before[..., t + 1:, :], after[..., t + 1:, :])


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_float64(causal):
    q, k, v = (x.requires_grad_() for x in qkv(2, n=6, d=4, dv=3, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda *a: linear_attention(*a, causal=causal), (q, k, v))
    assert torch.autograd.gradcheck(lambda *a: softmax_attention(*a, causal=causal), (q, k, v))


def test_feature_map_by_name_or_callable():
    q, k, v = qkv(2, dtype=torch.float64)
    relu = kernel_smoother(q, k, v, lambda a, b: F.relu(a) @ F.relu(b).transpose(-2, -1))
    assert torch.allclose(linear_attention(q, k, v, feature_map="relu", eps=0), relu, atol=1e-12)
    assert torch.allclose(linear_attention(q, k, v, feature_map=torch.exp, eps=0),
                          kernel_smoother(q, k, v, lambda a, b: torch.exp(a) @ torch.exp(b).transpose(-2, -1)),
                          atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_returns_its_own_dtype(dtype, causal):
    q, k, v = qkv(2, n=64, d=16, dv=16)
    out = linear_attention(q.to(dtype), k.to(dtype), v.to(dtype), causal=causal)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert torch.allclose(out.float(), linear_attention(q, k, v, causal=causal), atol=3e-2)
    assert softmax_attention(q.to(dtype), k.to(dtype), v.to(dtype), causal=causal).dtype == dtype


def stable_softmax_reference(q, k, v, causal):
    """softmax(q k^T / sqrt(d)) v in float64, the largest score subtracted first (exp(1e4) overflows even there)."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    weights = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    return (weights @ v) / weights.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_in_half_precision_with_large_inputs_matches_float64(dtype, causal):
    """|q|, |k| ~ 100: q k^T reaches about 1e5, beyond float16's 65504, unless q is scaled first and the
    scores are formed in float32 (bfloat16's 8-bit mantissa would also move such scores by hundreds)."""
    q, k, v = (x.to(dtype) for x in qkv(2, n=24, d=16, dv=8))
    q, k = q * 100, k * 100
    out = softmax_attention(q, k, v, causal=causal)
    expected = stable_softmax_reference(q, k, v, causal)     # on the same (rounded) inputs
    assert out.dtype == dtype and torch.isfinite(out).all()
    tolerance = 2 * torch.finfo(dtype).eps * v.double().abs().max()   # the output's rounding, and a little
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=tolerance.item())


def test_softmax_step_in_half_precision_with_large_inputs_matches_float64():
    q, k, v = (x.half() for x in qkv(2, n=12, d=16, dv=8))
    q, k = q * 100, k * 100
    cache, outputs = None, []
    for t in range(12):
        out, cache = linattn.softmax_attention_step(cache, q[..., t, :], k[..., t, :], v[..., t, :])
        outputs.append(out)
    expected = stable_softmax_reference(q, k, v, causal=True)
    tolerance = 2 * torch.finfo(torch.float16).eps * v.double().abs().max()
    torch.testing.assert_close(torch.stack(outputs, dim=-2).double(), expected, rtol=0, atol=tolerance.item())


def test_never_builds_an_n_by_n_matrix():
    n, d = 512, 8
    q, k, v = qkv(n=n, d=d, dv=d)
    seen = []

    class Spy(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                seen.append(out.numel())
            return out

    with Spy():
        linear_attention(q, k, v)
    assert max(seen) <= n * d * 2, "non-causal linear attention must not materialise N x N"


@pytest.mark.parametrize("attn", [softmax_attention, linear_attention])
@pytest.mark.parametrize("bad, message", [
    (lambda q, k, v: (q[..., :3], k, v), "same feature size"),
    (lambda q, k, v: (q, k, v[..., :4, :]), "same sequence length"),
    (lambda q, k, v: (q[None], k, v), "leading"),
    (lambda q, k, v: (q.double(), k, v), "one dtype"),
    (lambda q, k, v: (q, k.long(), v), "floating-point"),
    (lambda q, k, v: (q[0, 0], k, v), r"\(\.\.\., N, d\)"),
    (lambda q, k, v: (q, k.tolist(), v), "torch.Tensor"),
])
def test_bad_inputs_raise_value_error_naming_shapes(attn, bad, message):
    q, k, v = qkv(2, n=6, d=5)
    with pytest.raises(ValueError, match=message):
        attn(*bad(q, k, v))


def test_mismatched_shapes_are_named_in_the_message():
    q, k, v = qkv(2, n=6, d=5)
    with pytest.raises(ValueError, match=r"q \(2, 6, 5\), k \(2, 6, 4\)"):
        linear_attention(q, k[..., :4], v)


def test_device_mismatch_is_a_value_error():
    q, k, v = qkv(n=4)
    with pytest.raises(ValueError, match="one device"):
        linear_attention(q, k.to("meta"), v)


def test_causal_needs_square_attention():
    q, k, v = qkv(n=4, m=6)
    for attn in (softmax_attention, linear_attention):
        with pytest.raises(ValueError, match="as many queries as keys"):
            attn(q, k, v, causal=True)


@pytest.mark.parametrize("kwargs", [{"eps": -1}, {"eps": float("nan")}, {"eps": "0"}, {"feature_map": "tanh"},
                                    {"feature_map": 3}, {"feature_map": lambda x: x.sum(-2)}])
def test_bad_options_of_linear_attention(kwargs):
    q, k, v = qkv(n=4)
    with pytest.raises(ValueError):
        linear_attention(q, k, v, **kwargs)


@pytest.mark.parametrize("scale", [0, -1.0, float("inf"), "1"])
def test_bad_scale_of_softmax_attention(scale):
    q, k, v = qkv(n=4)
    with pytest.raises(ValueError, match="scale"):
        softmax_attention(q, k, v, scale=scale)


def test_public_names():
    for name in linattn.__all__:
        assert hasattr(linattn, name), name
