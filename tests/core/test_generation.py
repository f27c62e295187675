"""Token-by-token generation: the linear state reproduces the parallel causal form; the KV cache reproduces softmax."""
import pytest
import torch

import linattn
from linattn.generation import KVCache, LinearAttentionState, linear_attention_step, softmax_attention_step


def qkv(*shape, d=8, d_v=6, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape, d, generator=gen, dtype=torch.float64)
    k = torch.randn(*shape, d, generator=gen, dtype=torch.float64)
    v = torch.randn(*shape, d_v, generator=gen, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def generate(step, q, k, v, state=None, **kwargs):
    outputs, sizes = [], []
    for t in range(q.shape[-2]):
        out, state = step(state, q[..., t, :], k[..., t, :], v[..., t, :], **kwargs)
        outputs.append(out)
        sizes.append(state.nbytes)
    return torch.stack(outputs, dim=-2), state, sizes


@pytest.mark.parametrize("feature_map", ["elu", "relu", linattn.PerformerFeatures(8, 16)])
@pytest.mark.parametrize("lead", [(), (3,), (2, 2)])
def test_stepping_reproduces_the_parallel_causal_form(lead, feature_map):
    q, k, v = qkv(*lead, 40)
    out, _, _ = generate(linear_attention_step, q, k, v, feature_map=feature_map, eps=1e-3)
    expected = linattn.linear_attention(q, k, v, causal=True, feature_map=feature_map, eps=1e-3)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_float32_steps_match_the_parallel_form():
    q, k, v = qkv(2, 300, d=16, d_v=16, dtype=torch.float32)
    out, state, _ = generate(linear_attention_step, q, k, v)
    assert out.dtype == torch.float32 and state.kv.dtype == torch.float32
    torch.testing.assert_close(out, linattn.linear_attention(q, k, v, causal=True), rtol=1e-4, atol=1e-5)


def test_the_state_has_the_same_size_at_every_step():
    q, k, v = qkv(2, 50, d=8, d_v=6)
    _, state, sizes = generate(linear_attention_step, q, k, v)
    assert state.kv.shape == (2, 8, 6) and state.k_sum.shape == (2, 8)
    assert set(sizes) == {(2 * 8 * 6 + 2 * 8) * 8}


def test_a_prefilled_state_continues_the_sequence():
    q, k, v = qkv(2, 30)
    state = LinearAttentionState.from_prefix(k[..., :20, :], v[..., :20, :])
    out, _, _ = generate(linear_attention_step, q[..., 20:, :], k[..., 20:, :], v[..., 20:, :], state=state)
    torch.testing.assert_close(out, linattn.linear_attention(q, k, v, causal=True)[..., 20:, :])


def test_the_step_is_differentiable():
    q, k, v = (t.requires_grad_() for t in qkv(1, 5, d=3, d_v=2))
    assert torch.autograd.gradcheck(lambda *x: generate(linear_attention_step, *x)[0], (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_a_float32_state_past_the_float16_range(dtype):
    # 65,536 keys with phi(k) near 1 push z beyond float16's largest value (65,504).
    q, k, v = qkv(1, 65_537, d=8, d_v=8, dtype=dtype, seed=1)
    state = LinearAttentionState.from_prefix(k[..., :-1, :], v[..., :-1, :])
    assert state.kv.dtype == state.k_sum.dtype == torch.float32
    assert state.k_sum.max() > torch.finfo(torch.float16).max
    out, new_state = linear_attention_step(state, q[..., -1, :], k[..., -1, :], v[..., -1, :])
    assert out.dtype == dtype and torch.isfinite(out).all() and new_state.kv.dtype == torch.float32
    expected = linattn.linear_attention(q.float(), k.float(), v.float(), causal=True)[..., -1, :]
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=1e-2)


@pytest.mark.parametrize("lead", [(), (2, 3)])
def test_softmax_steps_with_a_kv_cache_reproduce_causal_softmax(lead):
    q, k, v = qkv(*lead, 37)
    out, cache, sizes = generate(softmax_attention_step, q, k, v)
    torch.testing.assert_close(out, linattn.softmax_attention(q, k, v, causal=True), rtol=1e-12, atol=1e-12)
    assert cache.length == 37 and cache.keys.shape == (*lead, 37, 8) and cache.values.shape == (*lead, 37, 6)
    torch.testing.assert_close(cache.keys, k)
    # The buffers double: capacity 1, 2, 4, ..., 64 for 37 tokens, so memory grows with the context.
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    assert cache.nbytes == torch.Size(lead).numel() * 64 * (8 + 6) * 8


def test_a_prefilled_kv_cache_continues_the_sequence():
    q, k, v = qkv(2, 30)
    cache = KVCache(k[..., :20, :], v[..., :20, :])
    out, _, _ = generate(softmax_attention_step, q[..., 20:, :], k[..., 20:, :], v[..., 20:, :], state=cache)
    torch.testing.assert_close(out, linattn.softmax_attention(q, k, v, causal=True)[..., 20:, :])


def test_softmax_step_scale():
    q, k, v = qkv(1, 12)
    out, _, _ = generate(softmax_attention_step, q, k, v, scale=0.3)
    torch.testing.assert_close(out, linattn.softmax_attention(q, k, v, causal=True, scale=0.3))


def test_bad_tokens_raise():
    q, k, v = qkv(2, 3)
    q_t, k_t, v_t = q[..., 0, :], k[..., 0, :], v[..., 0, :]
    for step in (linear_attention_step, softmax_attention_step):
        with pytest.raises(ValueError, match="same feature size"):
            step(None, q_t, k_t[..., :4], v_t)
        with pytest.raises(ValueError, match="leading"):
            step(None, q_t, k_t, v_t[:1])
        with pytest.raises(ValueError, match="dtype"):
            step(None, q_t, k_t.float(), v_t)
        with pytest.raises(ValueError, match="torch.Tensor"):
            step(None, q_t.tolist(), k_t, v_t)
        with pytest.raises(ValueError, match="must be None or"):
            step("state", q_t, k_t, v_t)
    with pytest.raises(ValueError, match="eps"):
        linear_attention_step(None, q_t, k_t, v_t, eps=-1)
    with pytest.raises(ValueError, match="scale"):
        softmax_attention_step(None, q_t, k_t, v_t, scale=0)
    with pytest.raises(ValueError, match="feature_map"):
        linear_attention_step(None, q_t, k_t, v_t, feature_map="nope")


def test_a_state_from_another_sequence_shape_raises():
    q, k, v = qkv(2, 3)
    _, state = linear_attention_step(None, q[..., 0, :], k[..., 0, :], v[..., 0, :])
    with pytest.raises(ValueError, match="state holds kv"):
        linear_attention_step(state, q[:1, 0, :], k[:1, 0, :], v[:1, 0, :])
    with pytest.raises(ValueError, match="state is torch.float64"):
        linear_attention_step(state, q[..., 1, :].float(), k[..., 1, :].float(), v[..., 1, :].float())
    _, cache = softmax_attention_step(None, q[..., 0, :], k[..., 0, :], v[..., 0, :])
    with pytest.raises(ValueError, match="cache holds keys"):
        softmax_attention_step(cache, q[..., 1, :4], k[..., 1, :4], v[..., 1, :])


def test_prefix_constructors_check_their_inputs():
    _, k, v = qkv(2, 5)
    with pytest.raises(ValueError, match="same"):
        LinearAttentionState.from_prefix(k, v[:, :4])
    with pytest.raises(ValueError, match="same"):
        KVCache(k, v.float())
    with pytest.raises(ValueError, match=r"\(\.\.\., N, d\)"):
        KVCache(k[0, 0], v)
