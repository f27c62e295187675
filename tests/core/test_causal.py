"""The four causal algorithms against an independent float64 reference, their gradients, causality, half precision."""
import pytest
import torch

import linattn
from linattn.causal import CAUSAL_ALGORITHMS, chunked_causal_linear_attention, masked_causal_linear_attention

ALGORITHMS = sorted(CAUSAL_ALGORITHMS)


def reference(qf, kf, v, eps=1e-6):
    """Output i = sum_{j<=i} (qf_i . kf_j) v_j / (sum_{j<=i} qf_i . kf_j + eps), one position at a time, float64."""
    qf, kf, v = qf.double(), kf.double(), v.double()
    rows = []
    for i in range(qf.shape[-2]):
        weights = torch.einsum("...d,...jd->...j", qf[..., i, :], kf[..., :i + 1, :])
        rows.append(torch.einsum("...j,...je->...e", weights, v[..., :i + 1, :])
                    / (weights.sum(-1, keepdim=True) + eps))
    return torch.stack(rows, dim=-2)


def features(*shape, d=8, d_v=5, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    qf = torch.rand(*shape, d, generator=gen, dtype=torch.float64) + 0.1
    kf = torch.rand(*shape, d, generator=gen, dtype=torch.float64) + 0.1
    v = torch.randn(*shape[:-1], shape[-1], d_v, generator=gen, dtype=torch.float64)
    return qf.to(dtype), kf.to(dtype), v.to(dtype)


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("lead, n", [((), 1), ((2,), 7), ((2, 3), 64), ((1,), 100)])
def test_every_algorithm_matches_the_float64_reference(name, lead, n):
    qf, kf, v = features(*lead, n)
    out = CAUSAL_ALGORITHMS[name](qf, kf, v)
    assert out.shape == (*lead, n, 5) and out.dtype == torch.float64
    torch.testing.assert_close(out, reference(qf, kf, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_float32_inputs_stay_close_to_the_float64_reference(name):
    qf, kf, v = features(2, 300, d=16, d_v=16, dtype=torch.float32)
    out = CAUSAL_ALGORITHMS[name](qf, kf, v)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), reference(qf, kf, v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 3, 16, 64, 100, 128, 1000])
@pytest.mark.parametrize("n", [1, 63, 64, 65, 200])
def test_chunked_handles_any_length_and_chunk_size(n, chunk_size):
    qf, kf, v = features(2, n)
    out = chunked_causal_linear_attention(qf, kf, v, chunk_size=chunk_size)
    torch.testing.assert_close(out, reference(qf, kf, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_an_empty_sequence_gives_an_empty_output(name):
    qf, kf, v = features(2, 0)
    assert CAUSAL_ALGORITHMS[name](qf, kf, v).shape == (2, 0, 5)


def test_eps_is_added_to_the_denominator():
    qf, kf, v = features(1, 20)
    for name in ALGORITHMS:
        torch.testing.assert_close(CAUSAL_ALGORITHMS[name](qf, kf, v, eps=0.5), reference(qf, kf, v, eps=0.5))


@pytest.mark.parametrize("feature_map", ["elu", "relu", linattn.PerformerFeatures(8, 12)])
def test_linear_attention_causal_matches_the_reference_for_every_feature_map(feature_map):
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 150, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    out = linattn.linear_attention(q, k, v, causal=True, feature_map=feature_map, eps=1e-3)
    phi = linattn.get_feature_map(feature_map)
    torch.testing.assert_close(out, reference(phi(q), phi(k), v, eps=1e-3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_future_tokens_do_not_change_past_outputs(name):
    qf, kf, v = features(2, 130, dtype=torch.float32)
    cut = 70   # inside the second chunk of 64, so the chunked form is tested within a chunk too
    qf2, kf2, v2 = qf.clone(), kf.clone(), v.clone()
    qf2[..., cut:, :] += 3.0
    kf2[..., cut:, :] *= 5.0
    v2[..., cut:, :] -= 7.0
    before, after = CAUSAL_ALGORITHMS[name](qf, kf, v), CAUSAL_ALGORITHMS[name](qf2, kf2, v2)
    assert torch.equal(before[..., :cut, :], after[..., :cut, :])
    assert not torch.allclose(before[..., cut:, :], after[..., cut:, :])


@pytest.mark.parametrize("name", ALGORITHMS)
def test_gradients_are_exactly_zero_towards_the_future(name):
    qf, kf, v = (t.requires_grad_() for t in features(1, 100, dtype=torch.float32))
    CAUSAL_ALGORITHMS[name](qf, kf, v)[..., 69, :].sum().backward()
    for t in (qf, kf, v):
        assert torch.count_nonzero(t.grad[..., 70:, :]) == 0
        assert torch.count_nonzero(t.grad[..., :70, :]) > 0


@pytest.mark.parametrize("name", ALGORITHMS)
def test_gradcheck_in_float64(name):
    qf, kf, v = (t.requires_grad_() for t in features(2, 11, d=3, d_v=2))
    kwargs = {"chunk_size": 4} if name == "chunked" else {}
    assert torch.autograd.gradcheck(lambda *x: CAUSAL_ALGORITHMS[name](*x, **kwargs), (qf, kf, v))


def test_linear_attention_causal_gradcheck_through_the_feature_map():
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 9, 3, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda *x: linattn.linear_attention(*x, causal=True), (q, k, v))


@pytest.mark.parametrize("name", ["chunked", "cumsum", "recurrent"])
def test_float32_gradients_match_autograd_of_the_masked_reference(name):
    qf, kf, v = features(2, 150, d=16, d_v=16, dtype=torch.float32)
    upstream = torch.randn(2, 150, 16, generator=torch.Generator().manual_seed(3))

    def grads(fn):
        inputs = [t.clone().requires_grad_() for t in (qf, kf, v)]
        (fn(*inputs) * upstream).sum().backward()
        return [t.grad for t in inputs]

    for got, expected in zip(grads(CAUSAL_ALGORITHMS[name]), grads(masked_causal_linear_attention)):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ALGORITHMS)
def test_half_inputs_accumulate_in_float32_and_come_back_in_their_dtype(name, dtype):
    qf, kf, v = features(1, 40, dtype=dtype)
    out = CAUSAL_ALGORITHMS[name](qf, kf, v)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), reference(qf, kf, v), rtol=0, atol=2e-2)


def float16_running_sums(qf, kf, v, eps=1e-6):
    """What goes wrong without float32 accumulation: the cumsum form with its sums kept in float16."""
    qf, kf, v = qf.half(), kf.half(), v.half()
    numerator = (qf.unsqueeze(-2) @ (kf.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(-3)).squeeze(-2)
    return numerator / ((qf * kf.cumsum(-2)).sum(-1, keepdim=True) + eps)


def worst_relative_error(out, expected):
    """Largest error at any position, relative to the largest output entry at that position."""
    return ((out.float() - expected).abs().amax(-1) / expected.abs().amax(-1)).max().item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_stays_finite_and_close_to_float32_at_65536_tokens(dtype):
    n = 65_536
    gen = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, n, 8, generator=gen).to(dtype) for _ in range(3))
    out = linattn.linear_attention(q, k, v, causal=True)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert linattn.elu_plus_one(k.float()).sum(-2).max() > torch.finfo(torch.float16).max   # z leaves float16's range
    # Against float32 on the same (rounded) inputs, only the final cast may differ: two units of rounding.
    expected = linattn.linear_attention(q.float(), k.float(), v.float(), causal=True)
    unit_roundoff = torch.finfo(dtype).eps / 2
    assert worst_relative_error(out, expected) <= 2 * unit_roundoff
    if dtype == torch.float16:   # the same check catches sums kept in float16
        naive = float16_running_sums(linattn.elu_plus_one(q.float()), linattn.elu_plus_one(k.float()), v.float())
        assert not torch.isfinite(naive).all() or worst_relative_error(naive, expected) > 0.5


@pytest.mark.parametrize("chunk_size", [0, -4, 2.0, True, "64", None])
def test_bad_chunk_sizes_raise(chunk_size):
    qf, kf, v = features(1, 10)
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_causal_linear_attention(qf, kf, v, chunk_size=chunk_size)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_bad_inputs_raise_value_errors_naming_shapes(name):
    fn = CAUSAL_ALGORITHMS[name]
    qf, kf, v = features(2, 10)
    with pytest.raises(ValueError, match=r"\(2, 9, 8\)"):
        fn(qf, kf[:, :9], v[:, :9])                          # causal needs N == M
    with pytest.raises(ValueError, match="same feature size"):
        fn(qf, kf[..., :4], v)
    with pytest.raises(ValueError, match="dtype"):
        fn(qf, kf.float(), v)
    with pytest.raises(ValueError, match="eps"):
        fn(qf, kf, v, eps=-1.0)
    with pytest.raises(ValueError, match="floating-point"):
        fn(qf.long(), kf.long(), v.long())


def test_peak_memory_is_linear_in_n_for_chunked_and_recurrent_and_quadratic_for_masked():
    from linattn.lab.peak_memory import peak_bytes

    def peak(name, n, d=32):
        return peak_bytes(CAUSAL_ALGORITHMS[name], *features(1, n, d=d, d_v=d, dtype=torch.float32))

    for name, growth in (("chunked", 2), ("recurrent", 2), ("cumsum", 2), ("masked", 4)):
        assert peak(name, 1024) * growth * 0.9 <= peak(name, 2048) <= peak(name, 1024) * growth * 1.1, name
    n, d = 1024, 64
    prefix_states = n * d * d * 4
    assert peak("cumsum", n, d) >= prefix_states                  # every S_i at once
    assert peak("chunked", n, d) <= peak("cumsum", n, d) / 8      # the benchmark's target, at d = 64
