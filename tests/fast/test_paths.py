"""Every path linear_attention(..., feature_map="elu") can take computes the same exact phi = elu + 1.

The paths: the tiled non-causal kernel (inline or on worker threads), the plain einsum version (with
autograd), the chunk-after-chunk causal loop, the vectorised chunked form (with autograd, or fewer
sequences than threads), reached through linear_attention and through linattn.fast's own entry points.
elu(x) + 1 written as such rounds to exactly 0 below x of about -17 in float32 (-37 in float64); the
inputs here reach -60 and +60.
"""
import pytest
import torch

import linattn
from linattn.fast import einsum_linear_attention, fast_causal_linear_attention, fast_linear_attention
from linattn.validation import accumulation_dtype

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
N, D, D_V = 8, 4, 3


def exact_phi(x):
    return torch.where(x > 0, x + 1, torch.exp(x))          # float64: e^x itself, no 1 - 1 cancellation


def reference(q, k, v, causal):
    """The masked quadratic form in float64 with the exact phi, eps = 0."""
    sim = exact_phi(q.double()) @ exact_phi(k.double()).transpose(-2, -1)
    sim = sim.tril() if causal else sim
    return (sim @ v.double()) / sim.sum(-1, keepdim=True)


def uniform(gen, low, high, *shape):
    return low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64)


def extreme_inputs(batch, dtype):
    """Sequence 0: very negative keys; 1: very negative queries; then mixtures. Every phi(q) . phi(k) is
    at least e^-80 (a normal float32), so with eps = 0 each output is a well-defined weighted average."""
    gen = torch.Generator().manual_seed(0)
    ranges = [((-20, 60), (-60, -17)), ((-60, -17), (-20, 60)), ((-60, 60), (-20, 60)), ((-20, 60), (-60, 60))]
    q = torch.stack([uniform(gen, *ranges[b % 4][0], N, D) for b in range(batch)])
    k = torch.stack([uniform(gen, *ranges[b % 4][1], N, D) for b in range(batch)])
    v = uniform(gen, -60, 60, batch, N, D_V)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def tolerance(dtype):
    """Rounding of the output, and of phi and the sums in the working dtype: exp2(x log2 e) is off by
    about |x| units of roundoff, sums of up to N products by N, for outputs up to max |v| = 60."""
    work = accumulation_dtype(dtype)
    return 60 * (torch.finfo(dtype).eps + 4 * (2 * 60 + D + N) * torch.finfo(work).eps)


ENTRIES = {
    "linear_attention": lambda q, k, v, causal: linattn.linear_attention(q, k, v, causal=causal, eps=0),
    "fast": lambda q, k, v, causal: (fast_causal_linear_attention if causal else fast_linear_attention)(q, k, v, eps=0),
    "einsum": lambda q, k, v, causal: einsum_linear_attention(q, k, v, eps=0),
}
GRAD_MODES = ["off", "on", "no_grad"]   # no_grad: inputs that require grad, called under torch.no_grad()


@pytest.fixture
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("grad", GRAD_MODES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_path_computes_the_exact_phi(entry, causal, grad, batch, threads, monkeypatch):
    if entry == "einsum" and causal:
        pytest.skip("einsum_linear_attention is non-causal")
    if batch == 1 and threads == 1:
        pytest.skip("one sequence takes the same path as four on one thread")
    monkeypatch.setattr(linattn.fast.noncausal, "TILE_ELEMENTS", 16)   # several tiles, so workers run some
    for dtype in DTYPES:
        q, k, v = extreme_inputs(batch, dtype)
        inputs = [x.clone().requires_grad_(grad != "off") for x in (q, k, v)]
        with torch.no_grad() if grad == "no_grad" else torch.enable_grad():
            out = ENTRIES[entry](*inputs, causal)
        assert out.dtype == dtype and out.requires_grad == (grad == "on")
        torch.testing.assert_close(out.detach().double(), reference(q, k, v, causal), rtol=0, atol=tolerance(dtype),
                                   msg=lambda m: f"{dtype}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_path_has_the_gradient_of_the_exact_phi(entry, causal, dtype):
    if entry == "einsum" and causal:
        pytest.skip("einsum_linear_attention is non-causal")
    q, k, v = extreme_inputs(4, dtype)
    upstream = torch.randn(4, N, D_V, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def grads(fn, *inputs):
        leaves = [x.clone().requires_grad_() for x in inputs]
        (fn(*leaves).double() * upstream).sum().backward()
        return [x.grad.double() for x in leaves]

    for got, expected in zip(grads(lambda *x: ENTRIES[entry](*x, causal), q, k, v),
                             grads(lambda *x: reference(*x, causal), q.double(), k.double(), v.double())):
        scale = expected.abs().max()
        torch.testing.assert_close(got, expected, rtol=0, atol=(tolerance(dtype) * scale).item())
