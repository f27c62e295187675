"""The chunk-after-chunk CPU path: the same numbers as the masked reference, exact causality, fallbacks."""
import pytest
import torch

import linattn
from linattn.fast import causal as causal_fast
from linattn.fast.causal import (chunk_loop_causal_linear_attention, elu_plus_one_differentiable,
                                 fast_causal_linear_attention)

ENTRIES = ["fused", "chunk_loop"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def two_threads(one_thread):
    torch.set_num_threads(2)


def run(entry, q, k, v, **kwargs):
    """fast_causal_linear_attention on raw inputs, or the chunk loop on elu + 1 features."""
    if entry == "fused":
        return fast_causal_linear_attention(q, k, v, **kwargs)
    phi = elu_plus_one_differentiable
    return chunk_loop_causal_linear_attention(phi(q), phi(k), v, **kwargs)


def qkv(*shape, d=8, d_v=5, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(*shape, d, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(*shape[:-1], shape[-1], d_v, generator=gen, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def masked_reference(q, k, v, eps=1e-6):
    phi = linattn.elu_plus_one
    return linattn.masked_causal_linear_attention(phi(q), phi(k), v, eps=eps)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 500])
@pytest.mark.parametrize("lead, n", [((), 1), ((2,), 63), ((2, 3), 130), ((1,), 256)])
def test_matches_the_masked_reference(entry, lead, n, chunk_size):
    q, k, v = qkv(*lead, n)
    out = run(entry, q, k, v, chunk_size=chunk_size)
    assert out.shape == (*lead, n, 5) and out.dtype == torch.float64
    torch.testing.assert_close(out, masked_reference(q, k, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("entry", ENTRIES)
def test_eps_and_many_sequences_in_several_tiles(entry):
    q, k, v = qkv(300, 70, d=64, d_v=64)          # more sequences than one tile holds at chunk size 64
    torch.testing.assert_close(run(entry, q, k, v, eps=0.1), masked_reference(q, k, v, eps=0.1))


@pytest.mark.parametrize("entry", ENTRIES)
def test_non_contiguous_inputs_and_empty_shapes(entry):
    q, k, v = qkv(3, 40)
    qt, kt, vt = (x.transpose(0, 1).contiguous().transpose(0, 1) for x in (q, k, v))
    assert not qt.is_contiguous()
    torch.testing.assert_close(run(entry, qt, kt, vt), masked_reference(q, k, v))
    assert run(entry, *qkv(2, 0)).shape == (2, 0, 5)
    assert run(entry, *qkv(0, 4)).shape == (0, 4, 5)


def test_linear_attention_uses_it_for_elu_plus_one():
    q, k, v = qkv(2, 100, dtype=torch.float32)
    expected = fast_causal_linear_attention(q, k, v)
    assert torch.equal(linattn.linear_attention(q, k, v, causal=True), expected)
    assert torch.equal(linattn.linear_attention(q, k, v, causal=True, feature_map=linattn.elu_plus_one), expected)


@pytest.mark.parametrize("entry", ENTRIES)
def test_future_tokens_do_not_change_past_outputs_bit_for_bit(entry):
    q, k, v = qkv(2, 200, dtype=torch.float32)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for x in (q2, k2, v2):
        x[:, 100:] += 5.0                          # position 100 is inside the second chunk of 64
    before, after = run(entry, q, k, v), run(entry, q2, k2, v2)
    assert torch.equal(before[:, :100], after[:, :100])
    assert not torch.allclose(before[:, 100:], after[:, 100:])


def paths_taken(monkeypatch):
    """The names of the differentiable paths fast.causal calls from now on: the constant-memory Function
    (linattn.fast.causal_grad) or the vectorised chunked form that autograd differentiates."""
    taken = []
    for name in ("causal_elu_linear_attention", "chunked"):
        def spy(*args, _name=name, _original=getattr(causal_fast, name), **kwargs):
            taken.append(_name)
            return _original(*args, **kwargs)
        monkeypatch.setattr(causal_fast, name, spy)
    return taken


def assert_gradients_match_the_masked_reference(entry):
    q, k, v = (t.requires_grad_() for t in qkv(1, 9, d=3, d_v=2))
    assert torch.autograd.gradcheck(lambda *x: run(entry, *x, chunk_size=4), (q, k, v))
    q, k, v = qkv(2, 150, dtype=torch.float32)
    grads = []
    for fn in (lambda *x: run(entry, *x), masked_reference):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        fn(*leaves).pow(2).sum().backward()
        grads.append([t.grad for t in leaves])
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_with_autograd_the_fused_entry_runs_the_constant_memory_gradient(monkeypatch):
    taken = paths_taken(monkeypatch)
    assert_gradients_match_the_masked_reference("fused")
    assert taken and set(taken) == {"causal_elu_linear_attention"}


def test_with_autograd_the_chunk_loop_falls_back_to_the_differentiable_chunked_form(monkeypatch):
    taken = paths_taken(monkeypatch)
    assert_gradients_match_the_masked_reference("chunk_loop")
    assert taken and set(taken) == {"chunked"}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float32(dtype):
    q, k, v = (t.to(dtype) for t in qkv(1, 65_536, d=8, d_v=8, dtype=torch.float32))
    out = fast_causal_linear_attention(q, k, v)
    assert out.dtype == dtype and torch.isfinite(out).all()
    expected = fast_causal_linear_attention(q.float(), k.float(), v.float())
    relative = ((out.float() - expected).abs().amax(-1) / expected.abs().amax(-1)).max()
    assert relative <= torch.finfo(dtype).eps      # only the final rounding to the half dtype
    loop = chunk_loop_causal_linear_attention(elu_plus_one_differentiable(q), elu_plus_one_differentiable(k), v)
    assert loop.dtype == dtype and torch.isfinite(loop).all()


def test_the_differentiable_feature_map_matches_elu_plus_one_in_value_and_gradient():
    x = torch.tensor([-100.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    y = elu_plus_one_differentiable(x)
    assert torch.equal(y, linattn.elu_plus_one(x))
    (grad,) = torch.autograd.grad(y.sum(), x)
    (expected,) = torch.autograd.grad(linattn.elu_plus_one(x).sum(), x)
    assert torch.equal(grad, expected) and grad[4] == 1.0


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True, "32"])
def test_bad_chunk_sizes_raise(entry, chunk_size):
    with pytest.raises(ValueError, match="chunk_size"):
        run(entry, *qkv(1, 5), chunk_size=chunk_size)


@pytest.mark.parametrize("entry", ENTRIES)
def test_bad_inputs_raise(entry):
    q, k, v = qkv(2, 10)
    with pytest.raises(ValueError, match="as many queries as keys"):
        run(entry, q, k[:, :9], v[:, :9])
    with pytest.raises(ValueError, match="eps"):
        run(entry, q, k, v, eps=-1)
    with pytest.raises(ValueError, match="dtype"):
        run(entry, q, k.float(), v)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("batch", [2, 5, 32])
def test_on_two_cores_groups_of_sequences_run_on_worker_threads(entry, batch, two_threads, monkeypatch):
    groups = []
    run_on_cores = causal_fast.run_on_cores
    monkeypatch.setattr(causal_fast, "run_on_cores", lambda task, items: (groups.append(items),
                                                                          run_on_cores(task, items)))
    q, k, v = qkv(batch, 100)
    torch.testing.assert_close(run(entry, q, k, v), masked_reference(q, k, v), rtol=1e-12, atol=1e-12)
    (items,) = groups
    assert len(items) >= 2 and sorted(i for s in items for i in range(batch)[s]) == list(range(batch))


@pytest.mark.parametrize("entry", ENTRIES)
def test_fewer_sequences_than_cores_take_the_vectorised_form(entry, two_threads, monkeypatch):
    monkeypatch.setattr(causal_fast, "run_on_cores", lambda task, items: pytest.fail("the loop ran"))
    q, k, v = qkv(1, 100)
    torch.testing.assert_close(run(entry, q, k, v), masked_reference(q, k, v))
    assert run(entry, *qkv(0, 4)).shape == (0, 4, 5)
