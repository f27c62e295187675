"""The tuned non-causal kernel: same results as the plain version everywhere, gradients, no side effects."""
import math
import mmap
import threading

import pytest
import torch
import torch.nn.functional as F

import linattn
from linattn.fast import cores, pages
from linattn.fast import noncausal as fast
from linattn.fast import einsum_linear_attention, elu_plus_one_, fast_linear_attention
from linattn.fast.pages import huge_page_empty
from linattn.feature_maps import is_elu_plus_one


def qkv(*lead, n=7, m=None, d=5, dv=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = n if m is None else m
    return (torch.randn(*lead, n, d, generator=g).to(dtype), torch.randn(*lead, m, d, generator=g).to(dtype),
            torch.randn(*lead, m, dv, generator=g).to(dtype))


def smoother(q, k, v, eps=1e-6):
    """Independent float64 reference: the N x M similarity matrix of phi = elu + 1, row-normalised."""
    phi = lambda x: F.elu(x.double()) + 1  # noqa: E731
    sim = phi(q) @ phi(k).transpose(-2, -1)
    return (sim @ v.double()) / (sim.sum(-1, keepdim=True) + eps)


@pytest.mark.parametrize("lead, n, m, d, dv", [((), 1, 1, 1, 1), ((2,), 7, 9, 5, 3), ((2, 3), 64, 64, 16, 16),
                                               ((3,), 300, 200, 8, 12)])
def test_matches_the_float64_reference(lead, n, m, d, dv):
    q, k, v = qkv(*lead, n=n, m=m, d=d, dv=dv, dtype=torch.float64)
    out = fast_linear_attention(q, k, v)
    assert out.shape == (*lead, n, dv) and out.dtype == torch.float64
    torch.testing.assert_close(out, smoother(q, k, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tile", [8, 64, 1000, 1 << 18])
def test_tiles_of_every_size_give_the_same_result(monkeypatch, tile):
    """Small tiles split sequences into row chunks; large ones put several sequences in one tile."""
    monkeypatch.setattr(fast, "TILE_ELEMENTS", tile)
    q, k, v = qkv(5, n=37, m=23, d=8, dv=4)
    torch.testing.assert_close(fast_linear_attention(q, k, v), smoother(q, k, v).float(), rtol=1e-5, atol=1e-6)


def test_large_output_uses_the_huge_page_buffer_and_is_right():
    q, k, v = qkv(4, n=8192, d=64, dv=64)    # 8 MiB of output: above HUGE_PAGE_MIN_BYTES
    out = fast_linear_attention(q, k, v)
    torch.testing.assert_close(out, einsum_linear_attention(q, k, v), rtol=1e-5, atol=1e-6)


def test_linear_attention_uses_it_for_elu_and_agrees_with_the_generic_path():
    q, k, v = qkv(2, 3, n=40, d=16, dv=8)
    via_name = linattn.linear_attention(q, k, v)
    generic = linattn.linear_attention(q, k, v, feature_map=lambda x: F.elu(x) + 1)   # not recognised as elu
    torch.testing.assert_close(via_name, generic, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(linattn.linear_attention(q, k, v, feature_map=linattn.elu_plus_one), via_name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32_and_returns_its_dtype(dtype):
    q, k, v = qkv(2, n=50, d=16, dv=8, dtype=dtype)
    out = fast_linear_attention(q, k, v)
    assert out.dtype == dtype
    expected = smoother(q.float(), k.float(), v.float()).to(dtype)
    torch.testing.assert_close(out, expected, rtol=2e-2, atol=1e-2)


def test_large_values_stay_finite_in_float16():
    q, k, v = qkv(1, n=4000, d=8, dv=4, dtype=torch.float16)
    out = fast_linear_attention(q * 4, k * 4, v)
    assert torch.isfinite(out).all()


def test_empty_sequences():
    q, k, v = qkv(2, n=0, m=5)
    assert fast_linear_attention(q, k, v).shape == (2, 0, 3)
    q, k, v = qkv(2, n=4, m=0)
    assert torch.equal(fast_linear_attention(q, k, v), torch.zeros(2, 4, 3))
    q, k, v = qkv(0, n=4)
    assert fast_linear_attention(q, k, v).shape == (0, 4, 3)
    q, k, v = qkv(2, n=4, m=0)       # no keys and eps = 0: 0 / 0, as the plain version gives
    assert fast_linear_attention(q, k, v, eps=0).isnan().all() and einsum_linear_attention(q, k, v, eps=0).isnan().all()


def test_inputs_are_left_untouched():
    q, k, v = qkv(2, n=30, d=8, dv=4)
    copies = [x.clone() for x in (q, k, v)]
    fast_linear_attention(q, k, v)
    assert all(torch.equal(a, b) for a, b in zip((q, k, v), copies))


def test_non_contiguous_inputs():
    q, k, v = qkv(3, n=20, d=8, dv=8)
    qt, kt, vt = (x.transpose(0, 1).contiguous().transpose(0, 1) for x in (q, k, v))
    assert not qt.is_contiguous()
    torch.testing.assert_close(fast_linear_attention(qt, kt, vt), fast_linear_attention(q, k, v))


def test_gradients_float64():
    q, k, v = (x.requires_grad_() for x in qkv(2, n=6, d=4, dv=3, dtype=torch.float64))
    assert torch.autograd.gradcheck(fast_linear_attention, (q, k, v))
    assert torch.autograd.gradcheck(linattn.linear_attention, (q, k, v))


def test_gradients_match_the_reference():
    q, k, v = (x.requires_grad_() for x in qkv(2, n=30, d=8, dv=4))
    fast_linear_attention(q, k, v).square().sum().backward()
    grads = [x.grad.clone() for x in (q, k, v)]
    q2, k2, v2 = (x.detach().double().requires_grad_() for x in (q, k, v))
    smoother(q2, k2, v2).square().sum().backward()
    for got, x in zip(grads, (q2, k2, v2)):
        torch.testing.assert_close(got, x.grad.float(), rtol=1e-4, atol=1e-5)


def test_without_grad_mode_the_fast_path_runs_on_inputs_that_require_grad():
    q, k, v = (x.requires_grad_() for x in qkv(2, n=30, d=8, dv=4))
    with torch.no_grad():
        out = fast_linear_attention(q, k, v)
    assert not out.requires_grad
    torch.testing.assert_close(out, smoother(q.detach(), k.detach(), v.detach()).float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_call_under_inference_mode_leaves_the_kept_buffers_usable(threads, monkeypatch):
    """The scratch buffers each thread keeps were made as inference tensors by a first call under
    torch.inference_mode(), and every later call outside it failed to write into them."""
    monkeypatch.setattr(fast, "_scratch", threading.local())
    monkeypatch.setattr(fast, "TILE_ELEMENTS", 64)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        q, k, v = qkv(6, n=40, d=8, dv=4)
        with torch.inference_mode():
            first = fast_linear_attention(q, k, v)
        second = fast_linear_attention(q, k, v)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(first, smoother(q, k, v).float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second, first, rtol=0, atol=0)


def test_bad_inputs_raise_value_error():
    q, k, v = qkv(2)
    with pytest.raises(ValueError, match="same feature size"):
        fast_linear_attention(q, k[..., :2], v)
    with pytest.raises(ValueError, match="eps"):
        fast_linear_attention(q, k, v, eps=-1)
    with pytest.raises(ValueError, match="floating-point"):
        fast_linear_attention(q.long(), k.long(), v.long())
    with pytest.raises(ValueError, match="torch.Tensor"):
        einsum_linear_attention(q.tolist(), k, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_elu_plus_one_in_place_matches_its_definition(dtype):
    x = torch.cat([torch.linspace(-30, 30, 10001, dtype=dtype), torch.tensor([-1e4, -0.0, 0.0, 1e4], dtype=dtype)])
    buffer = torch.empty_like(x)
    out = elu_plus_one_(x, buffer)
    assert out.data_ptr() == buffer.data_ptr()
    exact = torch.where(x > 0, x.double() + 1, torch.exp(x.double()))   # elu(x) + 1, without cancellation
    # exp2(x log2 e) adds a relative error of about |x| * eps from the scaling; |x| <= 30 here.
    torch.testing.assert_close(out.double(), exact, rtol=64 * torch.finfo(dtype).eps, atol=0)
    assert out.min() >= 0 and out[-4] == 0 and out[-1] == 1e4 + 1


def test_elu_plus_one_without_a_scratch_buffer_matches_elu_plus_one():
    x = torch.tensor([-100.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 0.5, 3.0])
    torch.testing.assert_close(elu_plus_one_(x, torch.empty_like(x)), linattn.elu_plus_one(x), rtol=2e-6, atol=0)
    wide = torch.linspace(-30, 30, 100_001, dtype=torch.float64)
    torch.testing.assert_close(elu_plus_one_(wide, torch.empty_like(wide)), linattn.elu_plus_one(wide),
                               rtol=1e-14, atol=0)
    half = x.half()
    torch.testing.assert_close(elu_plus_one_(half, torch.empty(8)), linattn.elu_plus_one(half.float()))


def test_is_elu_plus_one():
    assert is_elu_plus_one("elu") and is_elu_plus_one(linattn.elu_plus_one)
    assert not is_elu_plus_one("relu") and not is_elu_plus_one(lambda x: F.elu(x) + 1)
    assert not is_elu_plus_one(linattn.PerformerFeatures(4, 8))


def test_huge_page_empty():
    small = huge_page_empty((3, 4), torch.float32)
    assert small.shape == (3, 4) and small.dtype == torch.float32
    big = huge_page_empty((3, 1 << 20), torch.float32)          # 12 MiB
    assert big.shape == (3, 1 << 20) and big.is_contiguous()
    big.fill_(2.5)
    assert big.sum().item() == 2.5 * 3 * (1 << 20)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        assert big.data_ptr() % pages.HUGE_PAGE == 0
    half = huge_page_empty((5, 1 << 21), torch.float16)
    assert half.dtype == torch.float16 and half.numel() == 5 * (1 << 21) and math.prod(half.shape) == half.numel()


def test_worker_threads_leave_the_thread_count_alone(monkeypatch):
    monkeypatch.setattr(fast, "TILE_ELEMENTS", 64)          # many groups: the worker pool runs them
    before = torch.get_num_threads()
    q, k, v = qkv(6, n=40, d=8, dv=4)
    torch.testing.assert_close(fast_linear_attention(q, k, v), smoother(q, k, v).float(), rtol=1e-5, atol=1e-6)
    assert torch.get_num_threads() == before


def test_one_thread_runs_inline(monkeypatch):
    monkeypatch.setattr(fast, "TILE_ELEMENTS", 64)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        q, k, v = qkv(6, n=40, d=8, dv=4)
        torch.testing.assert_close(fast_linear_attention(q, k, v), smoother(q, k, v).float(), rtol=1e-5, atol=1e-6)
    finally:
        torch.set_num_threads(before)


def test_a_forked_child_starts_its_own_pool():
    cores._pool(2)
    assert 2 in cores._POOLS
    cores._forget_pools()                                     # what os.register_at_fork runs in the child
    assert cores._POOLS == {}
    q, k, v = qkv(6, n=40, d=8, dv=4)
    assert torch.isfinite(fast_linear_attention(q, k, v)).all()


@pytest.mark.skipif(not hasattr(mmap, "MADV_HUGEPAGE"), reason="no transparent huge pages here")
def test_memory_of_a_freed_output_is_handed_out_again_and_never_while_in_use():
    shape = (3, 1 << 20)                                           # 12 MiB: above HUGE_PAGE_MIN_BYTES
    first = huge_page_empty(shape, torch.float32)
    address = first.data_ptr()
    del first
    second = huge_page_empty(shape, torch.float32)
    assert second.data_ptr() == address                            # freed: recycled
    second.fill_(7.0)
    for keep in (lambda t: t, lambda t: t[1:, :5], lambda t: t.numpy()):
        held = keep(second)                                        # a view or an array still uses the memory
        del second
        third = huge_page_empty(shape, torch.float32)
        assert third.data_ptr() != address
        assert (torch.as_tensor(held) == 7.0).all()                # untouched by the new tensor
        third.fill_(1.0)
        assert (torch.as_tensor(held) == 7.0).all()
        second, address = third, third.data_ptr()
        second.fill_(7.0)
        del held
    other = huge_page_empty((4, 1 << 20), torch.float32)            # another size: new memory
    assert other.data_ptr() != second.data_ptr()


def test_outputs_of_back_to_back_calls_stay_independent():
    q, k, v = qkv(4, n=8192, d=64, dv=64)                           # 8 MiB of output
    first = fast_linear_attention(q, k, v)
    kept = first.clone()
    second = fast_linear_attention(q * 2, k, v)
    torch.testing.assert_close(first, kept, rtol=0, atol=0)
    assert not torch.equal(first, second)
