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
