"""Property-based tests: every attention function, on every path, against a float64 reference written here.

Hypothesis draws the shapes (N = 0 and 1, odd N, N not a multiple of any chunk size, leading dimensions
or none), the dtype, the range of each input (anywhere in -60 ... 60), chunk, tile and block sizes, one or
two threads and the grad mode (off; on, with gradients compared too; inputs that require grad under
torch.no_grad(); torch.inference_mode()). The references are the quadratic forms, in float64 on the same
(rounded) inputs: softmax with its largest score subtracted, and the masked kernel smoother with the exact
phi = elu + 1. Tolerances follow from the dtype: the output's rounding, and the working dtype's rounding
of phi (exp2 is off by about |x| units) and of sums over the keys. The examples are derandomized, so CI
runs the same ones every time.
"""
import math
from contextlib import ExitStack, nullcontext
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import linattn
from linattn import CAUSAL_ALGORITHMS, LinearAttentionState
from linattn.fast import (chunk_loop_causal_linear_attention, causal as fast_causal, einsum_linear_attention,
                          fast_causal_linear_attention, fast_linear_attention, noncausal as fast_noncausal)

PROPERTY = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
GRAD_MODES = {"off": nullcontext, "on": torch.enable_grad, "no_grad": torch.no_grad,
              "inference": torch.inference_mode}


# ---- the float64 references and their tolerances ---------------------------------------------------

def exact_elu_plus_one(x):
    return torch.where(x > 0, x + 1, torch.exp(x))


PHIS = {"elu": exact_elu_plus_one, "relu": torch.relu, "sigmoid": torch.sigmoid}   # name: phi in float64


def linear_reference(q, k, v, *, causal, phi, scale=1.0, mask=None, state=None, eps=1e-6):
    """(out, (S, z)) of the masked quadratic form: padded keys dropped, the state's S_0, z_0 added."""
    qf, kf, v = phi(q.double() * scale), phi(k.double()), v.double()
    if mask is not None:
        kf, v = torch.where(mask.unsqueeze(-1), kf, 0.0), torch.where(mask.unsqueeze(-1), v, 0.0)
    sim = qf @ kf.transpose(-2, -1)
    sim = sim.tril() if causal else sim
    numerator, denominator = sim @ v, sim.sum(-1, keepdim=True)
    kv, k_sum = kf.transpose(-2, -1) @ v, kf.sum(-2)
    if state is not None:
        numerator = numerator + qf @ state.kv.double()
        denominator = denominator + qf @ state.k_sum.double().unsqueeze(-1)
        kv, k_sum = kv + state.kv.double(), k_sum + state.k_sum.double()
    return numerator / (denominator + eps), (kv, k_sum)


def softmax_reference(q, k, v, *, causal, scale):
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) * scale
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), -math.inf)
    if scores.shape[-1] == 0:              # causal with N = 0: nothing to normalise
        return scores @ v
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    return (weights @ v) / weights.sum(-1, keepdim=True)


def eps_of(dtype):
    return torch.finfo(dtype).eps


def work_eps(dtype):
    return eps_of(torch.promote_types(dtype, torch.float32))


def largest(*tensors):
    return max([1.0] + [t.detach().double().abs().max().item() for t in tensors if t.numel()])


def linear_tolerance(dtype, v_max, x_max, terms):
    """Outputs are weighted averages of values (|out| <= max |v|) with positive weights: each weight is
    off by about (2 |x| + the number of terms summed) units of the working dtype's roundoff."""
    return v_max * (eps_of(dtype) + 4 * (2 * x_max + terms + 8) * work_eps(dtype))


# ---- drawing inputs --------------------------------------------------------------------------------

RANGES = st.tuples(st.floats(-60, 60), st.floats(-60, 60)).map(sorted)


def uniform(draw, gen, dtype, *shape):
    """Entries uniform in a drawn range within -60 ... 60, rounded to dtype."""
    low, high = draw(RANGES)
    return (low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64)).to(dtype)


@st.composite
def inputs(draw, *, causal, min_keys=0):
    """q (..., N, d), k and v (..., M, d | d_v), each in its own drawn range, in a drawn dtype."""
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    n = draw(st.integers(0, 40))
    m = n if causal else draw(st.integers(min_keys, 40))
    d, d_v = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(DTYPES))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
    return uniform(draw, gen, dtype, *lead, n, d), uniform(draw, gen, dtype, *lead, m, d), \
        uniform(draw, gen, dtype, *lead, m, d_v)


def settings_drawn(draw):
    """The thread count and grad mode of one example."""
    return draw(st.sampled_from([1, 2])), draw(st.sampled_from(sorted(GRAD_MODES)))


def run(fn, tensors, grad, threads, patches=()):
    """fn(*tensors) under the drawn grad mode, thread count and module constants; returns (leaves, out)."""
    leaves = [t.clone().requires_grad_(grad in ("on", "no_grad")) for t in tensors]
    before = torch.get_num_threads()
    with ExitStack() as stack:
        for module, name, value in patches:
            stack.enter_context(mock.patch.object(module, name, value))
        torch.set_num_threads(threads)
        try:
            with GRAD_MODES[grad]():
                out = fn(*leaves)
        finally:
            torch.set_num_threads(before)
    return leaves, out


def check(out, expected, tolerance, dtype):
    assert out.dtype == dtype and out.shape == expected.shape
    torch.testing.assert_close(out.detach().double(), expected, rtol=0, atol=tolerance)


def check_gradients(leaves, out, reference, tensors, tolerance_factor):
    """Gradients of sum(out * w) against autograd through the float64 reference, where float32 or float64."""
    if not out.requires_grad or out.numel() == 0 or leaves[0].dtype not in (torch.float32, torch.float64):
        return
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = torch.autograd.grad((out.double() * upstream).sum(), leaves, allow_unused=True)
    exact = [t.detach().double().requires_grad_() for t in tensors]
    expected = torch.autograd.grad((reference(*exact) * upstream).sum(), exact, allow_unused=True)
    for g, e in zip(got, expected):
        g = torch.zeros_like(e) if g is None else g.double()
        e = torch.zeros_like(g) if e is None else e
        torch.testing.assert_close(g, e, rtol=0, atol=tolerance_factor * largest(e))


# ---- the properties --------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@PROPERTY
@given(data=st.data())
def test_softmax_attention(causal, data):
    q, k, v = data.draw(inputs(causal=causal, min_keys=1))
    threads, grad = settings_drawn(data.draw)
    scale = data.draw(st.sampled_from([None, 0.05, 1.0]))
    used = q.shape[-1] ** -0.5 if scale is None else scale
    leaves, out = run(lambda *x: linattn.softmax_attention(*x, causal=causal, scale=scale), (q, k, v), grad, threads)
    # A score's rounding (d products of the working dtype) moves a weight by as much, relatively.
    logit_error = 4 * (q.shape[-1] + 2) * work_eps(q.dtype) * used * q.shape[-1] * largest(q) * largest(k)
    factor = eps_of(q.dtype) + 4 * logit_error
    check(out, softmax_reference(q, k, v, causal=causal, scale=used), factor * largest(v), q.dtype)
    check_gradients(leaves, out, lambda *x: softmax_reference(*x, causal=causal, scale=used), (q, k, v),
                    10 * factor)


FEATURE_MAPS = {"elu": "elu", "relu": "relu", "sigmoid": torch.sigmoid}   # the last: a callable, the core's path


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("feature_map", sorted(FEATURE_MAPS))
@PROPERTY
@given(data=st.data())
def test_linear_attention(feature_map, causal, data):
    q, k, v = data.draw(inputs(causal=causal))
    threads, grad = settings_drawn(data.draw)
    eps = data.draw(st.sampled_from([1e-6, 1e-3, 0.1]))
    scale = data.draw(st.sampled_from([1.0, 0.5, 2.0, q.shape[-1] ** -0.5]))
    mask = None
    if data.draw(st.booleans()):   # a padding mask, its leading dimensions each full or 1
        shape = [size if data.draw(st.booleans()) else 1 for size in k.shape[:-2]] + [k.shape[-2]]
        mask = torch.rand(shape, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99)))) < 0.7
    state, prefix_v, return_state = None, v[..., :0, :], False
    if causal and data.draw(st.booleans()):   # continue from the state of a drawn prefix of up to 5 tokens
        gen = torch.Generator().manual_seed(data.draw(st.integers(0, 99)))
        prefix = data.draw(st.integers(0, 5))
        prefix_k = uniform(data.draw, gen, q.dtype, *k.shape[:-2], prefix, k.shape[-1])
        prefix_v = uniform(data.draw, gen, q.dtype, *v.shape[:-2], prefix, v.shape[-1])
        state = LinearAttentionState.from_prefix(prefix_k, prefix_v, feature_map=FEATURE_MAPS[feature_map])
    if causal:
        return_state = data.draw(st.booleans())
    tile, block = data.draw(st.sampled_from([16, 1 << 19])), data.draw(st.sampled_from([64, 1 << 18]))
    patches = [(fast_noncausal, "TILE_ELEMENTS", tile), (fast_causal, "BLOCK_ELEMENTS", block)]

    def call(*x):
        return linattn.linear_attention(*x, feature_map=FEATURE_MAPS[feature_map], causal=causal, eps=eps,
                                        scale=scale, key_padding_mask=mask, initial_state=state,
                                        return_state=return_state)

    leaves, result = run(call, (q, k, v), grad, threads, patches)
    out = result[0] if return_state else result

    def reference(*x):
        return linear_reference(*x, causal=causal, phi=PHIS[feature_map], scale=scale, mask=mask, state=state,
                                eps=eps)

    expected, (kv, k_sum) = reference(q, k, v)
    terms = q.shape[-1] + k.shape[-2] + prefix_v.shape[-2] + 64         # features, keys, the prefix, a chunk
    tolerance = linear_tolerance(q.dtype, largest(v, prefix_v), largest(q) * scale + largest(k), terms)
    check(out, expected, tolerance, q.dtype)
    if return_state:
        got = result[1]
        state_tolerance = (terms + 8) * work_eps(q.dtype)
        torch.testing.assert_close(got.kv.detach().double(), kv, rtol=0, atol=state_tolerance * largest(kv, k_sum))
        torch.testing.assert_close(got.k_sum.detach().double(), k_sum, rtol=0, atol=state_tolerance * largest(k_sum))
    check_gradients(leaves, out, lambda *x: reference(*x)[0], (q, k, v), 10 * tolerance / largest(v, prefix_v))


def features(data, q, k):
    """phi(q), phi(k) for a drawn phi, computed in float64 and rounded to the inputs' dtype."""
    phi = PHIS[data.draw(st.sampled_from(sorted(PHIS)))]
    return phi(q.double()).to(q.dtype), phi(k.double()).to(k.dtype)


def identity(x):
    return x


@pytest.mark.parametrize("name", sorted(CAUSAL_ALGORITHMS) + ["chunk_loop"])
@PROPERTY
@given(data=st.data())
def test_causal_algorithms_on_feature_mapped_inputs(name, data):
    q, k, v = data.draw(inputs(causal=True))
    qf, kf = features(data, q, k)
    threads, grad = settings_drawn(data.draw)
    eps = data.draw(st.sampled_from([1e-6, 1e-3]))
    chunk_size = data.draw(st.sampled_from([1, 2, 3, 7, 16, 64]))
    block = data.draw(st.sampled_from([64, 1 << 18]))
    algorithm = chunk_loop_causal_linear_attention if name == "chunk_loop" else CAUSAL_ALGORITHMS[name]
    chunking = {"chunk_size": chunk_size} if name in ("chunk_loop", "chunked") else {}
    leaves, out = run(lambda *x: algorithm(*x, eps=eps, **chunking), (qf, kf, v), grad, threads,
                      [(fast_causal, "BLOCK_ELEMENTS", block)])

    def reference(*x):
        return linear_reference(*x, causal=True, phi=identity, eps=eps)[0]

    tolerance = linear_tolerance(q.dtype, largest(v), 0, q.shape[-1] + q.shape[-2] + chunk_size)
    check(out, reference(qf, kf, v), tolerance, q.dtype)
    check_gradients(leaves, out, reference, (qf, kf, v), 10 * tolerance / largest(v))


@pytest.mark.parametrize("name", ["fast", "einsum", "fast_causal"])
@PROPERTY
@given(data=st.data())
def test_the_cpu_kernels_entry_points(name, data):
    causal = name == "fast_causal"
    q, k, v = data.draw(inputs(causal=causal))
    threads, grad = settings_drawn(data.draw)
    eps = data.draw(st.sampled_from([1e-6, 1e-3]))
    tile, block = data.draw(st.sampled_from([16, 1 << 19])), data.draw(st.sampled_from([64, 1 << 18]))
    chunk_size = data.draw(st.sampled_from([None, 1, 5, 32]))
    fn = {"fast": lambda *x: fast_linear_attention(*x, eps=eps),
          "einsum": lambda *x: einsum_linear_attention(*x, eps=eps),
          "fast_causal": lambda *x: fast_causal_linear_attention(*x, eps=eps, chunk_size=chunk_size)}[name]
    patches = [(fast_noncausal, "TILE_ELEMENTS", tile), (fast_causal, "BLOCK_ELEMENTS", block)]
    leaves, out = run(fn, (q, k, v), grad, threads, patches)

    def reference(*x):
        return linear_reference(*x, causal=causal, phi=exact_elu_plus_one, eps=eps)[0]

    tolerance = linear_tolerance(q.dtype, largest(v), largest(q) + largest(k), q.shape[-1] + k.shape[-2] + 64)
    check(out, reference(q, k, v), tolerance, q.dtype)
    check_gradients(leaves, out, reference, (q, k, v), 10 * tolerance / largest(v))
