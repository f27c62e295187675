"""The contenders: they agree, SDPA's backend is detected from what ran, estimates match what is allocated."""
import threading

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import linattn
from linattn.lab.baselines import (IMPLEMENTATIONS, backend_from_ops, cost, extra_bytes, get_implementation,
                                   linear_cost, recorded_ops, sdpa, sdpa_backend, softmax_cost)
from linattn.lab.bench import make_inputs
from linattn.lab.costs import count_flops
from linattn.lab.peak_memory import peak_bytes


def test_backend_names_from_operators():
    assert backend_from_ops(["aten.mul", "aten._scaled_dot_product_flash_attention"]) == "flash"
    assert backend_from_ops(["aten._scaled_dot_product_flash_attention_for_cpu"]) == "flash (CPU)"
    assert backend_from_ops(["aten._scaled_dot_product_efficient_attention"]) == "memory-efficient"
    assert backend_from_ops(["aten._scaled_dot_product_cudnn_attention"]) == "cuDNN"
    assert backend_from_ops(["aten.bmm", "aten._safe_softmax", "aten.bmm"]) == "math"


def test_detects_the_backend_that_ran_on_this_cpu():
    q, k, v = make_inputs(2, 64, 16, torch.float32, "cpu")
    with sdpa_kernel(SDPBackend.MATH):
        assert sdpa_backend(q, k, v) == "math"
    with recorded_ops() as names:
        sdpa(q, k, v)
    assert sdpa_backend(q, k, v) == backend_from_ops(names)
    assert sdpa_backend(q, k, v, causal=True) in {"flash (CPU)", "math"}


@pytest.mark.parametrize("causal", [False, True])
def test_all_contenders_agree(causal):
    q, k, v = make_inputs(2, 50, 16, torch.float32, "cpu", seed=1)
    outputs = {name: impl.fn(q, k, v) for name, impl in IMPLEMENTATIONS.items() if impl.causal == causal}
    softmax_name = "softmax-causal" if causal else "softmax"
    sdpa_name = "sdpa-causal" if causal else "sdpa"
    torch.testing.assert_close(outputs[sdpa_name], outputs[softmax_name], rtol=1e-4, atol=1e-5)
    reference = linattn.masked_causal_linear_attention if causal else None
    if causal:
        phi = lambda x: torch.nn.functional.elu(x) + 1  # noqa: E731
        torch.testing.assert_close(outputs["linear-causal"], reference(phi(q), phi(k), v), rtol=1e-4, atol=1e-5)
    else:
        torch.testing.assert_close(outputs["linear"], outputs["linear-einsum"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch, n, d, dtype", [(2, 256, 32, torch.float32), (1, 1000, 16, torch.float32),
                                                (2, 256, 32, torch.bfloat16)])
def test_memory_estimates_cover_what_the_tracker_sees(batch, n, d, dtype, monkeypatch):
    """PeakMemoryTracker counts every tensor the operators create; the estimates are not below it
    (so the guard never lets through what would not fit) and not far above it."""
    q, k, v = make_inputs(batch, n, d, dtype, "cpu")
    monkeypatch.setattr(linattn.fast.noncausal, "_scratch", threading.local())   # scratch tiles made afresh, and seen
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # the tracker runs everything on this thread: estimate for one thread too
    try:
        for name, impl in IMPLEMENTATIONS.items():
            backend = sdpa_backend(q, k, v, causal=impl.causal) if name.startswith("sdpa") else None
            with torch.no_grad():
                seen = peak_bytes(impl.fn, q, k, v)
            estimate = extra_bytes(name, batch, n, d, dtype, backend=backend)
            assert 0.9 * seen <= estimate <= 1.6 * seen, (name, seen, estimate)
    finally:
        torch.set_num_threads(threads)


def test_the_causal_estimate_counts_one_group_of_buffers_per_core():
    """The tracker cannot follow worker threads, so this checks the estimate's own accounting: with two
    cores, two groups of half the sequences hold their buffers at once."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = extra_bytes("linear-causal", 8, 4096, 64, torch.float32)
        torch.set_num_threads(2)
        two = extra_bytes("linear-causal", 8, 4096, 64, torch.float32)
    finally:
        torch.set_num_threads(threads)
    output = 8 * 4096 * 64 * 4
    assert two - output == pytest.approx(2 * (one - output), rel=0.05)


def test_operations_on_worker_threads_stay_visible_to_a_dispatch_mode(monkeypatch):
    """Dispatch modes are per thread: while one watches, the kernels run their groups here."""
    monkeypatch.setattr(linattn.fast.noncausal, "TILE_ELEMENTS", 128 * 16)   # a tile per sequence: eight groups
    q, k, v = make_inputs(8, 128, 16, torch.float32, "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for causal in (False, True):
            flops = count_flops(linattn.linear_attention, q, k, v, causal=causal)
            assert flops >= 4 * 8 * 128 * 16 * 16, causal   # both products of every sequence were counted
    finally:
        torch.set_num_threads(threads)


def test_linear_cost_counts_the_flops_torch_counts():
    q, k, v = make_inputs(2, 300, 32, torch.float32, "cpu")
    counted = count_flops(linattn.fast.einsum_linear_attention, q, k, v)
    expected = linear_cost(2, 300, 32, torch.float32).flops
    assert expected <= counted <= 1.05 * expected   # the rest: the normaliser's matrix-vector product


def test_softmax_cost_counts_the_flops_torch_counts():
    q, k, v = make_inputs(2, 300, 32, torch.float32, "cpu")
    assert count_flops(linattn.softmax_attention, q, k, v) == softmax_cost(2, 300, 32, torch.float32).flops


def test_costs_and_intensity():
    lin = linear_cost(32, 6000, 64, torch.float16)
    assert lin.flops == 4 * 32 * 6000 * 64 ** 2 and lin.bytes == 4 * 32 * 6000 * 64 * 2
    assert lin.intensity == 64 / 2                       # d / bytes per element
    fused, naive = (softmax_cost(1, 100, 8, torch.float32, materialised=m) for m in (False, True))
    assert fused.flops == naive.flops and naive.bytes == fused.bytes + 4 * 100 * 100 * 4
    assert cost("sdpa", 1, 100, 8, torch.float32, backend="flash") == fused
    assert cost("sdpa", 1, 100, 8, torch.float32, backend="math") == naive
    assert cost("linear-causal", 1, 100, 8, torch.float32) is None


def test_math_backend_is_budgeted_like_naive_softmax():
    fused = extra_bytes("sdpa", 4, 1000, 64, torch.float32, backend="flash")
    math = extra_bytes("sdpa", 4, 1000, 64, torch.float32, backend="math")
    assert math == extra_bytes("softmax", 4, 1000, 64, torch.float32) and math > 10 * fused


def test_unknown_implementation():
    with pytest.raises(ValueError, match="unknown implementation"):
        get_implementation("flash-linear")
