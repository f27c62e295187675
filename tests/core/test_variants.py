"""The recurrent variants of Chapter 8, each against an independent formula: parallel masked forms,
explicit products of gates, and the delta rule as a gradient step computed by autograd."""
import pytest
import torch
import torch.nn.functional as F

from linattn.variants import decayed_linear_attention, delta_rule_attention, gated_linear_attention


def qkv(*lead, n=7, d=5, dv=3, dtype=torch.float64, seed=0, unit_keys=False):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(*lead, n, d, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(*lead, n, dv, generator=g, dtype=dtype)
    return q, (F.normalize(k, dim=-1) if unit_keys else k), v


def uniform(*shape, low, high, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(*shape, generator=g, dtype=dtype)


# --- references -------------------------------------------------------------------------------

def parallel_retention(q, k, v, decay):
    """(Q K^T * D) V with D_ts = decay^(t - s) for s <= t, else 0: the whole sequence at once."""
    n = q.shape[-2]
    distance = torch.arange(n).unsqueeze(1) - torch.arange(n).unsqueeze(0)        # t - s
    decay = torch.as_tensor(decay, dtype=q.dtype)[..., None, None]
    mask = torch.where(distance >= 0, decay ** distance.clamp(min=0), torch.zeros((), dtype=q.dtype))
    return ((q @ k.transpose(-2, -1)) * mask) @ v


def gated_by_products(q, k, v, gate):
    """o_t = sum_{s<=t} (sum_i q_t[i] k_s[i] prod_{s<r<=t} gate_r[i]) v_s, with explicit loops."""
    if gate.shape != q.shape:
        gate = gate.unsqueeze(-1).expand_as(q)
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for t in range(q.shape[-2]):
        for s in range(t + 1):
            kept = gate[..., s + 1:t + 1, :].prod(dim=-2)                            # (..., d_k)
            weight = (q[..., t, :] * kept * k[..., s, :]).sum(-1, keepdim=True)
            out[..., t, :] += weight * v[..., s, :]
    return out


def delta_rule_by_gradient_steps(q, k, v, beta, gate=None):
    """Each token takes one gradient step of size beta_t on L(S) = |S^T k_t - v_t|^2 / 2 (autograd)."""
    state = torch.zeros(*q.shape[:-2], q.shape[-1], v.shape[-1], dtype=q.dtype)
    outputs = []
    for t in range(q.shape[-2]):
        if gate is not None:
            state = gate[..., t, None, None] * state
        state = state.detach().requires_grad_(True)
        prediction = torch.einsum("...kv,...k->...v", state, k[..., t, :])
        loss = 0.5 * ((prediction - v[..., t, :]) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, state)
        state = (state - beta[..., t, None, None] * grad).detach()
        outputs.append(torch.einsum("...kv,...k->...v", state, q[..., t, :]))
    return torch.stack(outputs, dim=-2)


# --- agreement with the references ----------------------------------------------------------

@pytest.mark.parametrize("lead", [(), (2,), (2, 3)])
@pytest.mark.parametrize("decay", [1.0, 0.9, 0.5])
def test_decayed_equals_parallel_retention(lead, decay):
    q, k, v = qkv(*lead)
    assert torch.allclose(decayed_linear_attention(q, k, v, decay), parallel_retention(q, k, v, decay), atol=1e-12)


def test_decay_of_one_is_the_unnormalised_causal_sum():
    q, k, v = qkv(2)
    expected = (q @ k.transpose(-2, -1)).tril() @ v
    assert torch.allclose(decayed_linear_attention(q, k, v, 1.0), expected, atol=1e-12)


def test_one_decay_per_head():
    q, k, v = qkv(2, 3)
    decays = torch.tensor([0.5, 0.8, 0.99], dtype=torch.float64)
    out = decayed_linear_attention(q, k, v, decays)
    for h, decay in enumerate(decays.tolist()):
        assert torch.allclose(out[:, h], parallel_retention(q[:, h], k[:, h], v[:, h], decay), atol=1e-12)


@pytest.mark.parametrize("per_feature", [True, False])
@pytest.mark.parametrize("lead", [(), (2, 3)])
def test_gated_equals_explicit_gate_products(lead, per_feature):
    q, k, v = qkv(*lead)
    gate = uniform(*q.shape[:-1], *((q.shape[-1],) if per_feature else ()), low=0.2, high=1.0)
    assert torch.allclose(gated_linear_attention(q, k, v, gate), gated_by_products(q, k, v, gate), atol=1e-12)


def test_constant_scalar_gate_is_a_fixed_decay():
    q, k, v = qkv(2)
    gate = torch.full(q.shape[:-1], 0.7, dtype=torch.float64)
    assert torch.allclose(gated_linear_attention(q, k, v, gate), parallel_retention(q, k, v, 0.7), atol=1e-12)


@pytest.mark.parametrize("lead", [(), (2, 3)])
@pytest.mark.parametrize("gated", [False, True])
def test_delta_rule_is_a_gradient_step_per_token(lead, gated):
    q, k, v = qkv(*lead, unit_keys=True)
    beta = uniform(*q.shape[:-1], low=0.0, high=1.0)
    gate = uniform(*q.shape[:-1], low=0.5, high=1.0, seed=2) if gated else None
    out = delta_rule_attention(q, k, v, beta, gate=gate)
    assert torch.allclose(out, delta_rule_by_gradient_steps(q, k, v, beta, gate), atol=1e-12)


def test_delta_rule_overwrites_orthonormal_keys():
    d, dv = 4, 3
    keys = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0].T
    order = [0, 1, 2, 0, 3, 1, 0]                     # key 0 written three times, key 1 twice
    k = keys[order]
    v = torch.randn(len(order), dv, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, state = delta_rule_attention(k, k, v, 1.0, return_state=True)
    latest = {key: v[t] for t, key in enumerate(order)}
    for key, value in latest.items():
        assert torch.allclose(keys[key] @ state, value, atol=1e-12)
    # The additive state (decay 1) sums the writes instead: key 0 returns all three values.
    _, additive = decayed_linear_attention(k, k, v, 1.0, return_state=True)
    assert torch.allclose(keys[0] @ additive, v[0] + v[3] + v[6], atol=1e-12)


def test_delta_rule_with_zero_beta_never_writes():
    q, k, v = qkv(2, unit_keys=True)
    assert torch.equal(delta_rule_attention(q, k, v, 0.0), torch.zeros_like(v))


# --- state hand-over, dtypes, gradients -------------------------------------------------------

CALLS = {
    "decayed": lambda q, k, v, **kw: decayed_linear_attention(q, k, v, 0.8, **kw),
    "gated": lambda q, k, v, **kw: gated_linear_attention(q, k, v, torch.full_like(q, 0.9), **kw),
    "delta": lambda q, k, v, **kw: delta_rule_attention(q, k, v, torch.full_like(q[..., 0], 0.5), **kw),
}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(CALLS))
def test_runs_on_cuda_like_on_cpu(name):
    q, k, v = qkv(2, n=6, dtype=torch.float32, unit_keys=True)
    on_gpu, state = CALLS[name](q.cuda(), k.cuda(), v.cuda(), return_state=True)
    assert on_gpu.device.type == "cuda" and state.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), CALLS[name](q, k, v), atol=1e-5)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_returned_state_continues_the_sequence(name):
    q, k, v = qkv(2, 3, n=10, unit_keys=True)
    call = CALLS[name]
    whole, final = call(q, k, v, return_state=True)
    first, state = call(q[..., :4, :], k[..., :4, :], v[..., :4, :], return_state=True)
    second, state = call(q[..., 4:, :], k[..., 4:, :], v[..., 4:, :], initial_state=state, return_state=True)
    assert torch.allclose(torch.cat([first, second], dim=-2), whole, atol=1e-12)
    assert torch.allclose(state, final, atol=1e-12)
    assert final.shape == (2, 3, 5, 3)


NUMBER_CALLS = {   # name: (call, the shape a tensor of such numbers has for q of shape (..., N, d))
    "decay": (lambda q, k, v, x: decayed_linear_attention(q, k, v, x), lambda q: ()),
    "gate": (lambda q, k, v, x: gated_linear_attention(q, k, v, x), lambda q: q.shape[:-1]),
    "beta": (lambda q, k, v, x: delta_rule_attention(q, k, v, x), lambda q: q.shape[:-1]),
    "delta gate": (lambda q, k, v, x: delta_rule_attention(q, k, v, 0.5, gate=x), lambda q: q.shape[:-1]),
}


@pytest.mark.parametrize("name", sorted(NUMBER_CALLS))
def test_a_plain_number_keeps_float64_precision(name):
    """0.9 as a Python float is the float64 0.9, not float32's 0.899999976..., which is off by 2e-8."""
    call, shape = NUMBER_CALLS[name]
    q, k, v = qkv(2, n=40, unit_keys=True)
    as_number = call(q, k, v, 0.9)
    as_tensor = call(q, k, v, torch.full(shape(q), 0.9, dtype=torch.float64))
    assert (as_number - as_tensor).abs().max() <= 1e-14 * as_tensor.abs().max()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_half_precision_runs_in_float32(name):
    q, k, v = qkv(2, n=16, dtype=torch.float32, unit_keys=True)
    out, state = CALLS[name](q.half(), k.half(), v.half(), return_state=True)
    assert out.dtype == torch.float16 and state.dtype == torch.float32
    assert torch.allclose(out.float(), CALLS[name](q.half().float(), k.half().float(), v.half().float()), atol=1e-2)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_empty_sequence(name):
    q, k, v = qkv(2, n=0)
    out = CALLS[name](q, k, v)
    assert out.shape == (2, 0, 3)


def test_gradients_decayed():
    q, k, v = (t.requires_grad_() for t in qkv(n=5, d=3, dv=2))
    decay = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k, v, g: decayed_linear_attention(q, k, v, g), (q, k, v, decay))


@pytest.mark.parametrize("per_feature", [True, False])
def test_gradients_gated(per_feature):
    q, k, v = (t.requires_grad_() for t in qkv(n=5, d=3, dv=2))
    gate = uniform(*q.shape[:-1], *((3,) if per_feature else ()), low=0.3, high=0.9).requires_grad_()
    assert torch.autograd.gradcheck(gated_linear_attention, (q, k, v, gate))


def test_gradients_delta_rule():
    q, k, v = (t.requires_grad_() for t in qkv(n=5, d=3, dv=2, unit_keys=True))
    beta = uniform(5, low=0.2, high=0.8).requires_grad_()
    gate = uniform(5, low=0.5, high=0.9, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda q, k, v, b, g: delta_rule_attention(q, k, v, b, gate=g),
                                    (q, k, v, beta, gate))


# --- bad input ----------------------------------------------------------------------------------

Q, K, V = qkv(2, 3, n=4, d=5, dv=3)
BAD_CALLS = {
    "decay zero": lambda: decayed_linear_attention(Q, K, V, 0.0),
    "decay above one": lambda: decayed_linear_attention(Q, K, V, 1.5),
    "decay nan": lambda: decayed_linear_attention(Q, K, V, float("nan")),
    "decay bool": lambda: decayed_linear_attention(Q, K, V, True),
    "decay string": lambda: decayed_linear_attention(Q, K, V, "0.9"),
    "decay wrong shape": lambda: decayed_linear_attention(Q, K, V, torch.full((4,), 0.9, dtype=torch.float64)),
    "gate above one": lambda: gated_linear_attention(Q, K, V, torch.full_like(Q, 1.2)),
    "gate negative": lambda: gated_linear_attention(Q, K, V, torch.full(Q.shape[:-1], -0.1, dtype=torch.float64)),
    "gate nan": lambda: gated_linear_attention(Q, K, V, torch.full_like(Q, float("nan"))),
    "gate wrong shape": lambda: gated_linear_attention(Q, K, V, torch.full((2, 3, 4, 2), 0.5, dtype=torch.float64)),
    "gate integer": lambda: gated_linear_attention(Q, K, V, torch.ones(2, 3, 4, dtype=torch.long)),
    "beta above one": lambda: delta_rule_attention(Q, K, V, 2.5),
    "beta wrong shape": lambda: delta_rule_attention(Q, K, V, torch.full((2, 3, 5), 0.5, dtype=torch.float64)),
    "delta gate wrong shape": lambda: delta_rule_attention(Q, K, V, 0.5, gate=torch.full_like(Q, 0.5)),
    "initial state wrong shape": lambda: decayed_linear_attention(Q, K, V, 0.9, initial_state=torch.zeros(2, 3, 5, 5)),
    "initial state not a tensor": lambda: delta_rule_attention(Q, K, V, 0.5, initial_state=[[0.0]]),
    "q and k differ": lambda: gated_linear_attention(Q, K[..., :4], V, torch.full_like(Q, 0.5)),
    "integer inputs": lambda: decayed_linear_attention(Q.long(), K.long(), V.long(), 0.9),
    "fewer keys than queries": lambda: delta_rule_attention(Q, K[..., :3, :], V[..., :3, :], 0.5),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_raises_value_error(case):
    with pytest.raises(ValueError):
        BAD_CALLS[case]()


def test_error_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 2\)"):
        BAD_CALLS["gate wrong shape"]()
