"""Worker threads run with the calling thread's autograd state, or the work stays on the calling thread."""
import threading

import pytest
import torch

import linattn
from linattn.fast import cores


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def states_seen(items=8):
    """(thread name, grad mode, inference mode) for every item run_on_cores ran."""
    seen = []
    cores.run_on_cores(lambda item: seen.append((threading.current_thread().name, torch.is_grad_enabled(),
                                                 torch.is_inference_mode_enabled())), list(range(items)))
    return seen


@pytest.mark.parametrize("mode, expected", [
    (torch.enable_grad, (True, False)),
    (torch.no_grad, (False, False)),
    (torch.inference_mode, (False, True)),
], ids=["grad", "no_grad", "inference_mode"])
def test_workers_run_in_the_callers_grad_mode(two_threads, mode, expected):
    with mode():
        seen = states_seen()
    assert len(seen) == 8 and any(name.startswith("linattn") for name, *_ in seen)   # the workers ran them
    assert {tuple(state) for _, *state in seen} == {expected}
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert states_seen() and {tuple(state) for _, *state in states_seen()} == {(True, False)}   # not left behind


def test_a_torch_function_mode_keeps_the_work_on_the_calling_thread(two_threads):
    class Watch(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Watch():
        seen = states_seen()
    assert {name for name, *_ in seen} == {threading.current_thread().name}


def qkv_requiring_grad(batch, n=16, d=4):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(batch, n, d, generator=gen, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_linear_attention_without_grad_mode_on_inputs_that_require_grad(two_threads, monkeypatch, causal, mode):
    """Causal under no_grad used to raise 'functions with out=... arguments don't support automatic
    differentiation' (the workers had grad mode on), and inference mode 'Inplace update to inference tensor'."""
    monkeypatch.setattr(linattn.fast.noncausal, "TILE_ELEMENTS", 64)   # several tiles: the workers run them
    q, k, v = qkv_requiring_grad(batch=4)
    with mode():
        out = linattn.linear_attention(q, k, v, causal=causal)
    assert not out.requires_grad
    phi = linattn.elu_plus_one
    sim = phi(q.detach()) @ phi(k.detach()).transpose(-2, -1)
    sim = sim.tril() if causal else sim
    torch.testing.assert_close(out, (sim @ v.detach()) / (sim.sum(-1, keepdim=True) + 1e-6))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("causal", [False, True])
def test_under_cpu_autocast_the_plain_version_runs(threads, causal, monkeypatch):
    """Autocast would change the dtype of the kernels' matrix products under their preallocated
    outputs ('Expected out tensor to have dtype c10::BFloat16'): they leave such calls to the plain version."""
    monkeypatch.setattr(linattn.fast.noncausal, "TILE_ELEMENTS", 64)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        q, k, v = (x.detach() for x in qkv_requiring_grad(batch=4))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = linattn.linear_attention(q, k, v, causal=causal)
    finally:
        torch.set_num_threads(before)
    expected = linattn.linear_attention(q, k, v, causal=causal)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=0.05 * expected.abs().max().item())
