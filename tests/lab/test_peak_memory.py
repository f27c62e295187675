"""The CPU peak-memory tracker against allocations whose sizes are known by construction."""
import pytest
import torch

from linattn.lab.peak_memory import PeakMemoryTracker, peak_bytes


def test_one_allocation_is_counted_at_its_size():
    assert peak_bytes(torch.empty, 1000) == 4000
    assert peak_bytes(torch.zeros, 10, 10, dtype=torch.float64) == 800


def test_freed_intermediates_count_only_while_they_live():
    def chain():
        a = torch.ones(1000)     # 4000 alive
        b = a * 2                # 8000 alive
        del a                    # 4000
        c = b + 1                # 8000
        del b
        return c.sum()           # 4000 + 4

    def keep_all():
        a = torch.ones(1000)
        b = a * 2
        c = b + 1
        return a, b, c

    assert peak_bytes(chain) == 8000
    assert peak_bytes(keep_all) == 12000


def test_views_in_place_ops_and_existing_tensors_are_not_counted():
    x = torch.randn(1000)
    assert peak_bytes(lambda: x.view(10, 100).t()[1:]) == 0
    assert peak_bytes(lambda: x.add_(1)) == 0
    assert peak_bytes(lambda: torch.add(x, 1, out=x)) == 0
    assert peak_bytes(lambda: x.clone()) == 4000


def test_current_returns_to_zero_when_everything_is_freed():
    with PeakMemoryTracker() as tracker:
        a = torch.ones(256)
        assert tracker.current == 1024
        del a
        assert tracker.current == 0
    assert tracker.peak == 1024


def test_the_backward_pass_is_tracked():
    w = torch.randn(1000, requires_grad=True)
    with PeakMemoryTracker() as tracker:
        loss = (w.exp() * 3).sum()
        after_forward = tracker.current
        loss.backward()
    assert after_forward == 4000 + 4      # exp(w) is saved for the backward pass, plus the scalar loss
    assert w.grad is not None and tracker.peak >= after_forward + 4000


def test_matmul_result_and_batched_copies():
    a, b = torch.randn(8, 16, 32), torch.randn(32, 24)
    assert peak_bytes(torch.matmul, a, b) >= 8 * 16 * 24 * 4


def test_peak_bytes_needs_a_callable():
    with pytest.raises(ValueError, match="callable"):
        peak_bytes(42)
