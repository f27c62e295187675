"""The paper's constant-memory causal gradient (linattn.fast.causal_grad): exact gradients, half
precision accumulated in float32, and extra memory that grows with N only as the gradients do."""
import pytest
import torch

import linattn
from linattn.causal import chunked
from linattn.fast import causal_grad
from linattn.fast.causal_grad import causal_elu_linear_attention
from linattn.fast.phi import elu_plus_one_differentiable


pytestmark = pytest.mark.usefixtures("one_thread")


def qkv(*shape, d=6, d_v=5, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(*shape, d, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(*shape, d_v, generator=gen, dtype=torch.float64)
    return [t.to(dtype).requires_grad_() for t in (q, k, v)]


def masked_reference(q, k, v, eps=1e-6):
    phi = linattn.elu_plus_one
    return linattn.masked_causal_linear_attention(phi(q), phi(k), v, eps=eps)


def upstream(*shape):
    """A fixed, arbitrary gradient of the loss with respect to the output."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


def grads(fn, inputs, grad_out):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    return out, torch.autograd.grad(out, leaves, grad_out)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 64])
@pytest.mark.parametrize("lead, n", [((), 1), ((2,), 7), ((2, 2), 10)], ids=["N=1", "odd N", "heads"])
def test_gradcheck_in_float64(lead, n, chunk_size):
    q, k, v = qkv(*lead, n, d=3, d_v=2)
    assert torch.autograd.gradcheck(lambda *x: causal_elu_linear_attention(*x, 1e-6, chunk_size), (q, k, v))


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 64])
@pytest.mark.parametrize("lead, n", [((), 1), ((3,), 37), ((2, 2), 100)])
def test_gradients_equal_autograd_through_the_masked_form(lead, n, chunk_size):
    inputs = qkv(*lead, n)
    grad_out = upstream(*lead, n, 5)
    out, got = grads(lambda *x: causal_elu_linear_attention(*x, 1e-6, chunk_size), inputs, grad_out)
    expected_out, expected = grads(masked_reference, inputs, grad_out)
    torch.testing.assert_close(out, expected_out, rtol=1e-12, atol=1e-12)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_default_chunk_size_follows_the_head_size():
    assert [causal_grad.default_chunk_size(d) for d in (1, 16, 17, 32, 64, 256)] == [16, 16, 32, 32, 64, 64]


def test_many_blocks_groups_and_threads(monkeypatch):
    """Small blocks: a sequence spans many blocks (the last one partial) and the batch several groups."""
    monkeypatch.setattr(causal_grad, "BLOCK_ELEMENTS", 300)
    inputs = qkv(5, 203)
    grad_out = upstream(5, 203, 5)
    expected = grads(masked_reference, inputs, grad_out)[1]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        got = grads(lambda *x: causal_elu_linear_attention(*x, 1e-6, 8), inputs, grad_out)[1]
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("wanted", [(True, False, False), (False, True, False), (False, False, True),
                                    (False, True, True), (True, False, True)])
def test_only_the_gradients_asked_for(wanted):
    q, k, v = (t.detach().requires_grad_(w) for t, w in zip(qkv(2, 70), wanted))
    causal_elu_linear_attention(q, k, v, 1e-6, 16).pow(2).sum().backward()
    masked = [t.detach().requires_grad_(w) for t, w in zip((q, k, v), wanted)]
    masked_reference(*masked).pow(2).sum().backward()
    for t, reference, w in zip((q, k, v), masked, wanted):
        assert (t.grad is not None) == w
        if w:
            torch.testing.assert_close(t.grad, reference.grad, rtol=1e-10, atol=1e-12)


def test_eps_and_non_contiguous_inputs():
    q, k, v = (t.detach().transpose(0, 1).contiguous().transpose(0, 1).requires_grad_() for t in qkv(3, 40))
    assert not q.is_contiguous()
    grad_out = upstream(3, 40, 5)
    got = grads(lambda *x: causal_elu_linear_attention(*x, 0.5, 8), (q, k, v), grad_out)
    expected = grads(lambda *x: masked_reference(*x, eps=0.5), (q, k, v), grad_out)
    for a, b in zip([got[0], *got[1]], [expected[0], *expected[1]]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_empty_shapes():
    for shape in ((2, 0), (0, 4)):
        q, k, v = qkv(*shape)
        out = causal_elu_linear_attention(q, k, v)
        assert out.shape == (*shape, 5)
        out.sum().backward()
        assert q.grad.shape == q.shape and v.grad.shape == v.shape


def test_it_saves_no_state_and_refuses_a_second_derivative():
    q, k, v = qkv(2, 50)
    out = causal_elu_linear_attention(q, k, v, 1e-6, 8)
    saved = out.grad_fn.saved_tensors
    n, d, d_v = 50, 6, 5
    # phi(Q), phi(K) (padded to whole chunks), V, the output and one denominator per token.
    assert sum(t.numel() for t in saved) == 2 * 2 * 56 * d + 2 * n * d_v + 2 * n * d_v + 2 * n
    (grad_q,) = torch.autograd.grad(out.pow(2).sum(), q, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        grad_q.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gradients_are_accumulated_in_float32(dtype):
    """A sequence long enough that running sums kept in half precision, growing by a chunk of 8 tokens at a
    time, would lose most of each step (their errors reach tens of eps): in float32 only the final
    rounding to the half dtype remains, at most half an eps."""
    n = 32_768
    q, k, v = qkv(1, n, d=8, d_v=8, dtype=dtype, seed=1)
    grad_out = upstream(1, n, 8).to(dtype)
    out, got = grads(lambda *x: causal_elu_linear_attention(*x, 1e-6, 8), (q, k, v), grad_out)
    wide = [t.detach().double() for t in (q, k, v)]
    phi = elu_plus_one_differentiable
    expected_out, expected = grads(lambda q, k, v: chunked(phi(q), phi(k), v, 1e-6, 64), wide, grad_out.double())
    assert out.dtype == dtype and all(g.dtype == dtype for g in got)
    for a, b in zip([out, *got], [expected_out, *expected]):
        assert torch.isfinite(a).all()
        assert (a.double() - b).abs().max() <= torch.finfo(dtype).eps / 2 * b.abs().max()


def test_matches_the_no_grad_path_in_float32():
    q, k, v = qkv(2, 300, d=16, d_v=16, dtype=torch.float32)
    with torch.no_grad():
        expected = linattn.fast.fast_causal_linear_attention(q, k, v)
    torch.testing.assert_close(causal_elu_linear_attention(q, k, v), expected, rtol=1e-5, atol=1e-6)


def test_linear_attention_uses_it_on_a_cpu_when_gradients_are_needed():
    q, k, v = qkv(2, 30)
    for feature_map in ("elu", linattn.elu_plus_one):
        out = linattn.linear_attention(q, k, v, causal=True, feature_map=feature_map)
        assert type(out.grad_fn).__name__ == "CausalEluLinearAttentionBackward"
    with torch.no_grad():
        assert linattn.linear_attention(q, k, v, causal=True).grad_fn is None


# ---- memory: what grows with N --------------------------------------------------------------------

def extra_peak(fn, inputs):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    with linattn.PeakMemoryTracker() as tracker:
        fn(*leaves).sum().backward()
    return tracker.peak


def autograd_through_chunked(q, k, v):
    phi = elu_plus_one_differentiable
    return chunked(phi(q), phi(k), v, 1e-6, 64)


def test_extra_memory_grows_like_the_gradients_not_like_the_states(monkeypatch):
    """Per token, forward + backward holds phi(q), phi(k), the output, its denominator, H (the gradient
    of [numerator | denominator], kept between the two backward sweeps) and the three gradients: no
    state. Autograd through the chunked form holds far more (chunk states, masked blocks, copies)."""
    monkeypatch.setattr(causal_grad, "BLOCK_ELEMENTS", 1 << 14)   # blocks shorter than N: constant buffers
    batch, d = 2, 16
    per_token = 2 * d + d + 1 + (d + 1) + 3 * d                  # numbers per token, as listed above
    growth = {}
    for name, fn in (("function", causal_elu_linear_attention), ("autograd", autograd_through_chunked)):
        peaks = [extra_peak(fn, qkv(batch, n, d=d, d_v=d, dtype=torch.float32)) for n in (2048, 4096)]
        growth[name] = (peaks[1] - peaks[0]) / (batch * 2048)      # bytes per added token
    assert growth["function"] == 4 * per_token
    assert growth["function"] < 0.5 * growth["autograd"], growth


def test_extra_peak_is_below_autograd_through_chunked_at_a_moderate_size():
    """At half the benchmark's batch, the extra peak already meets its target of 3x the inputs' bytes."""
    inputs = qkv(4, 4096, d=64, d_v=64, dtype=torch.float32)
    ours, autograd = (extra_peak(fn, inputs) for fn in (causal_elu_linear_attention, autograd_through_chunked))
    inputs_bytes = sum(t.numel() * t.element_size() for t in inputs)
    assert ours <= 3 * inputs_bytes < autograd, (ours / inputs_bytes, autograd / inputs_bytes)
