"""linear_attention's scale, key padding mask and causal state, on every path it can take.

The paths: phi = elu + 1 through linattn.fast (the tiled and chunk-loop kernels on one thread or on
worker threads, the vectorised forms for a single sequence on two threads or with autograd) and the
core's own path for any other feature map. Each is held against a float64 reference written here.
"""
import pytest
import torch

import linattn
from linattn import LinearAttentionState, linear_attention, linear_attention_step


def exact_phi(x):
    return torch.where(x > 0, x + 1, torch.exp(x))


def relu(x):
    return x.clamp(min=0)


def reference(q, k, v, *, causal, phi=exact_phi, scale=1.0, mask=None, state=None, eps=1e-6):
    """The masked quadratic form in float64: padded keys and values replaced by zeros, the state's
    S_0 and z_0 added to every numerator and denominator."""
    qf, kf, v = phi(q.double() * scale), phi(k.double()), v.double()
    if mask is not None:
        kf = torch.where(mask.unsqueeze(-1), kf, 0.0)
        v = torch.where(mask.unsqueeze(-1), v, 0.0)
    sim = qf @ kf.transpose(-2, -1)
    sim = sim.tril() if causal else sim
    numerator, denominator = sim @ v, sim.sum(-1, keepdim=True)
    if state is not None:
        numerator = numerator + qf @ state.kv.double()
        denominator = denominator + qf @ state.k_sum.double().unsqueeze(-1)
    return numerator / (denominator + eps)


# name: (feature map, its float64 reference phi, autograd, threads, leading dimensions)
PATHS = {
    "elu kernels, 1 thread": ("elu", exact_phi, False, 1, (2, 3)),
    "elu kernels, 2 threads": ("elu", exact_phi, False, 2, (2, 3)),
    "elu vectorised, 1 sequence on 2 threads": ("elu", exact_phi, False, 2, (1, 1)),
    "elu with autograd": ("elu", exact_phi, True, 1, (2, 3)),
    "relu (the core's path)": ("relu", relu, False, 1, (2, 3)),
    "a callable (the core's path)": (lambda x: linattn.elu_plus_one(x), exact_phi, True, 2, (2, 3)),
}


@pytest.fixture(params=sorted(PATHS))
def path(request, monkeypatch):
    """Sets the thread count (restored afterwards) and small tiles, so two threads share the tiles."""
    monkeypatch.setattr(linattn.fast.noncausal, "TILE_ELEMENTS", 32)
    feature_map, phi, grad, threads, lead = PATHS[request.param]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield feature_map, phi, grad, lead
    torch.set_num_threads(before)


def qkv(*lead, n=11, d=4, d_v=3, dtype=torch.float64, seed=0, grad=False):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(*lead, n, d, generator=gen, dtype=torch.float64) * 2 for _ in range(2))
    v = torch.randn(*lead, n, d_v, generator=gen, dtype=torch.float64)
    return [x.to(dtype).requires_grad_(grad) for x in (q, k, v)]


def padding_mask(*lead, n=11, seed=1):
    """Random padding, at least one real key per sequence: (B, 1, N) for every head of (B, H, N, d)."""
    mask = torch.rand(*lead[:-1], 1, n, generator=torch.Generator().manual_seed(seed)) < 0.6
    mask[..., 0] = True
    return mask


def garbage_at(mask, x):
    """x with padded positions overwritten by huge numbers and NaNs: none of it may reach the output."""
    junk = torch.full_like(x, float("nan"))
    junk[..., ::2, :] = 1e30
    return torch.where(mask.unsqueeze(-1), x, junk)


@pytest.mark.parametrize("causal", [False, True])
def test_scale_multiplies_q_before_the_feature_map(path, causal):
    feature_map, phi, grad, lead = path
    q, k, v = qkv(*lead, grad=grad)
    out = linear_attention(q, k, v, feature_map=feature_map, causal=causal, scale=0.3)
    torch.testing.assert_close(out, reference(q, k, v, causal=causal, phi=phi, scale=0.3), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, linear_attention(q * 0.3, k, v, feature_map=feature_map, causal=causal),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_padded_keys_and_values_add_nothing(path, causal):
    feature_map, phi, grad, lead = path
    q, k, v = qkv(*lead)
    mask = padding_mask(*lead)
    k, v = garbage_at(mask, k).requires_grad_(grad), garbage_at(mask, v).requires_grad_(grad)
    out = linear_attention(q, k, v, feature_map=feature_map, causal=causal, key_padding_mask=mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference(q, k, v, causal=causal, phi=phi, mask=mask), rtol=1e-12, atol=1e-12)


def test_non_causal_padding_equals_attending_to_the_real_keys_only():
    q, k, v = qkv(n=9)
    mask = torch.tensor([True, False, True, True, False, False, True, True, False])
    padded = linear_attention(q, garbage_at(mask, k), garbage_at(mask, v), key_padding_mask=mask)
    torch.testing.assert_close(padded, linear_attention(q, k[mask], v[mask]), rtol=1e-12, atol=1e-12)


def test_gradients_through_the_mask_skip_the_padding():
    q, k, v = qkv(2, n=6, d=2, d_v=2, grad=True)
    mask = padding_mask(2, 1, n=6)[:, 0]                                  # (2, 6)
    assert torch.autograd.gradcheck(lambda *x: linear_attention(*x, causal=True, key_padding_mask=mask), (q, k, v))
    linear_attention(q, k, v, key_padding_mask=mask).square().sum().backward()
    assert torch.count_nonzero(k.grad[~mask]) == 0 and torch.count_nonzero(v.grad[~mask]) == 0
    assert torch.count_nonzero(k.grad[mask]) > 0 and torch.count_nonzero(v.grad[mask]) > 0


PIECES = [0, 4, 4, 7, 11]   # boundaries: an empty piece, then pieces that do not align with any chunk size


def test_a_long_sequence_in_pieces_equals_one_causal_call(path):
    feature_map, phi, grad, lead = path
    q, k, v = qkv(*lead, grad=grad)
    mask = padding_mask(*lead)
    kwargs = dict(feature_map=feature_map, causal=True, scale=0.7)
    whole, final = linear_attention(q, k, v, key_padding_mask=mask, return_state=True, **kwargs)
    torch.testing.assert_close(whole, reference(q, k, v, causal=True, phi=phi, scale=0.7, mask=mask),
                               rtol=1e-12, atol=1e-12)
    state, outputs = None, []
    for start, stop in zip(PIECES, PIECES[1:]):
        piece = slice(start, stop)
        out, state = linear_attention(q[..., piece, :], k[..., piece, :], v[..., piece, :], initial_state=state,
                                      key_padding_mask=mask[..., piece], return_state=True, **kwargs)
        outputs.append(out)
    torch.testing.assert_close(torch.cat(outputs, dim=-2), whole, rtol=1e-12, atol=1e-12)
    for got, expected in zip(state, final):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert state.kv.shape == (*lead, 4, 3) and state.k_sum.shape == (*lead, 4)


def test_the_state_interoperates_with_linear_attention_step(path):
    feature_map, phi, grad, lead = path
    q, k, v = qkv(*lead, grad=grad)
    whole = linear_attention(q, k, v, feature_map=feature_map, causal=True)
    # a prefill by linear_attention, then token by token
    out, state = linear_attention(q[..., :6, :], k[..., :6, :], v[..., :6, :], feature_map=feature_map,
                                  causal=True, return_state=True)
    outputs = [out]
    for t in range(6, 11):
        out_t, state = linear_attention_step(state, q[..., t, :], k[..., t, :], v[..., t, :], feature_map=feature_map)
        outputs.append(out_t.unsqueeze(-2))
    torch.testing.assert_close(torch.cat(outputs, dim=-2), whole, rtol=1e-12, atol=1e-12)
    # token by token, then the rest in one call from the steps' state
    state = None
    for t in range(3):
        _, state = linear_attention_step(state, q[..., t, :], k[..., t, :], v[..., t, :], feature_map=feature_map)
    rest = linear_attention(q[..., 3:, :], k[..., 3:, :], v[..., 3:, :], feature_map=feature_map, causal=True,
                            initial_state=state)
    torch.testing.assert_close(rest, whole[..., 3:, :], rtol=1e-12, atol=1e-12)
    prefix = LinearAttentionState.from_prefix(k[..., :3, :], v[..., :3, :], feature_map=feature_map)
    torch.testing.assert_close(linear_attention(q[..., 3:, :], k[..., 3:, :], v[..., 3:, :], feature_map=feature_map,
                                                causal=True, initial_state=prefix), rest, rtol=1e-12, atol=1e-12)


def test_initial_state_is_differentiable():
    q, k, v = qkv(1, n=4, d=2, d_v=2, grad=True)
    prefix_k, prefix_v = (x.detach()[..., :3, :] for x in (k, v))
    state = LinearAttentionState.from_prefix(prefix_k, prefix_v)
    kv, k_sum = state.kv.clone().requires_grad_(), state.k_sum.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda q, k, v, kv, k_sum: linear_attention(q, k, v, causal=True, scale=0.5,
                                                    initial_state=LinearAttentionState(kv, k_sum)),
        (q, k, v, kv, k_sum))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_half_precision_state_is_float32_and_pieces_still_agree(dtype):
    q, k, v = qkv(2, 3, n=40, dtype=dtype)
    mask = padding_mask(2, 3, n=40)
    whole, final = linear_attention(q, k, v, causal=True, key_padding_mask=mask, scale=0.5, return_state=True)
    assert whole.dtype == dtype and final.kv.dtype == final.k_sum.dtype == torch.promote_types(dtype, torch.float32)
    first, state = linear_attention(q[..., :17, :], k[..., :17, :], v[..., :17, :], causal=True, scale=0.5,
                                    key_padding_mask=mask[..., :17], return_state=True)
    second = linear_attention(q[..., 17:, :], k[..., 17:, :], v[..., 17:, :], causal=True, scale=0.5,
                              key_padding_mask=mask[..., 17:], initial_state=state)
    expected = reference(q, k, v, causal=True, scale=0.5, mask=mask)
    tolerance = 4 * torch.finfo(dtype).eps * v.double().abs().max().item()
    for out in (whole, torch.cat([first, second], dim=-2)):
        torch.testing.assert_close(out.double(), expected, rtol=0, atol=tolerance)


def test_the_docstring_states_the_layout_in_bold_and_warns_about_heads_last():
    doc = linear_attention.__doc__
    assert "**q, k: (..., N, d); v: (..., N, d_v)**" in doc and "(B, N, H, d)" in doc


# ---- bad options: a ValueError naming what is wrong -----------------------------------------------

Q, K, V = qkv(2, 3, n=5)
STATE = linear_attention(Q, K, V, causal=True, return_state=True)[1]
BAD = {
    "scale zero": (dict(scale=0), "scale"),
    "scale negative": (dict(scale=-1.0), "scale"),
    "scale inf": (dict(scale=float("inf")), "scale"),
    "scale nan": (dict(scale=float("nan")), "scale"),
    "scale string": (dict(scale="0.5"), "scale"),
    "scale bool": (dict(scale=True), "scale"),
    "scale tensor": (dict(scale=torch.tensor(0.5)), "scale"),
    "mask of floats": (dict(key_padding_mask=torch.ones(2, 3, 5)),
                       r"bool tensor.*torch.float32 with shape \(2, 3, 5\)"),
    "mask a list": (dict(key_padding_mask=[[True] * 5]), "bool tensor"),
    "mask too short": (dict(key_padding_mask=torch.ones(2, 3, 4, dtype=torch.bool)),
                       r"shape \(2, 3, 5\).*k \(2, 3, 5, 4\); got \(2, 3, 4\)"),
    "mask without heads": (dict(key_padding_mask=torch.ones(2, 5, dtype=torch.bool)), r"got \(2, 5\)"),
    "mask on another device": (dict(key_padding_mask=torch.ones(2, 3, 5, dtype=torch.bool, device="meta")), "meta"),
    "state without causal": (dict(initial_state=STATE), "causal=True"),
    "return_state without causal": (dict(return_state=True), "causal=True"),
    "return_state not a bool": (dict(causal=True, return_state=1), "return_state"),
    "state a tensor": (dict(causal=True, initial_state=STATE.kv), "LinearAttentionState"),
    "state of other shape": (dict(causal=True, initial_state=LinearAttentionState(STATE.kv[:1], STATE.k_sum[:1])),
                             r"initial_state holds kv \(1, 3, 4, 3\)"),
    "state of other dtype": (dict(causal=True, initial_state=LinearAttentionState(*(t.float() for t in STATE))),
                             "torch.float32"),
    "relu state of other feature count": (dict(causal=True, feature_map=linattn.poly2_features, initial_state=STATE),
                                          r"16 features per key"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_options_raise_value_errors(case):
    kwargs, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        linear_attention(Q, K, V, **kwargs)
