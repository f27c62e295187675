import pytest
import torch

from linattn.lab import memory


def test_score_matrix_bytes():
    assert memory.score_matrix_bytes(2, 10, heads=3) == 2 * 3 * 10 * 10 * 4
    assert memory.score_matrix_bytes(1, 10, key_len=7, dtype=torch.float16) == 10 * 7 * 2


def test_softmax_estimate_matches_the_tensors_it_creates():
    b, n, d = 2, 64, 8
    q, k, v = torch.randn(3, b, n, d).unbind(0)
    scores = q @ k.transpose(-2, -1)
    weights = torch.softmax(scores, -1)
    out = weights @ v
    tensors = (q, k, v, scores, weights, out)
    assert memory.softmax_attention_bytes(b, n, d) == sum(t.numel() * t.element_size() for t in tensors)


def test_budget_variable_overrides_the_device(monkeypatch):
    monkeypatch.setenv(memory.BUDGET_VARIABLE, "1000")
    assert memory.available_bytes("cpu") == 1000
    assert memory.fits(800, "cpu") and not memory.fits(801, "cpu")


def test_guard_skips_with_a_message_naming_the_bytes(capsys, monkeypatch):
    monkeypatch.setenv(memory.BUDGET_VARIABLE, str(1024 ** 2))
    needed = memory.softmax_attention_bytes(32, 6000, 64)
    assert memory.guard(needed, "cpu", "N = 6000") is False
    message = capsys.readouterr().out
    assert "N = 6000" in message and memory.format_bytes(needed) in message
    assert memory.guard(1000, "cpu") is True


def test_cpu_has_some_free_memory(monkeypatch):
    monkeypatch.delenv(memory.BUDGET_VARIABLE, raising=False)
    assert memory.available_bytes("cpu") > 0


@pytest.mark.parametrize("n, text", [(512, "512 B"), (2048, "2.00 KiB"), (3 * 1024 ** 3, "3.00 GiB")])
def test_format_bytes(n, text):
    assert memory.format_bytes(n) == text


GIB = 1024 ** 3


def fake_cuda_memory(monkeypatch, *, total, reserved, allocated, context=0.3 * GIB):
    """A CUDA device whose caching allocator holds `reserved` bytes, `allocated` of them in tensors:
    mem_get_info reports the reserved blocks (and the CUDA context) as taken, as the driver sees it."""
    monkeypatch.delenv(memory.BUDGET_VARIABLE, raising=False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(total - reserved - context), int(total)))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: int(reserved))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: int(allocated))


def test_memory_cached_by_pytorch_counts_as_free_on_a_gpu(monkeypatch, capsys):
    """A T4 (about 14.7 GiB) after Chapter 1's sweep up to N = 4096: about 5.7 GiB cached, little of it
    in use. Softmax at batch 32, N = 6000, d = 64 in float32 (about 9.4 GB) fits and must not be skipped."""
    fake_cuda_memory(monkeypatch, total=14.7 * GIB, reserved=5.7 * GIB, allocated=0.05 * GIB)
    needed = memory.softmax_attention_bytes(32, 6000, 64)
    assert torch.cuda.mem_get_info("cuda")[0] * memory.SAFETY_FRACTION < needed   # the driver's view alone skips
    assert memory.available_bytes("cuda") == pytest.approx((14.7 - 0.3 - 0.05) * GIB, abs=4)
    assert memory.fits(needed, "cuda")
    assert memory.guard(needed, "cuda", "N = 6000") is True and capsys.readouterr().out == ""


def test_memory_in_use_by_tensors_stays_taken_on_a_gpu(monkeypatch):
    fake_cuda_memory(monkeypatch, total=14.7 * GIB, reserved=5.7 * GIB, allocated=5.7 * GIB)
    assert memory.available_bytes("cuda") == pytest.approx((14.7 - 5.7 - 0.3) * GIB, abs=4)
    assert not memory.fits(memory.softmax_attention_bytes(32, 6000, 64), "cuda")
