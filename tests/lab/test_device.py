import pytest
import torch

import linattn
from linattn.lab.device import choose_device, environment, hardware_name, supports_bfloat16


def test_cpu_fallback_prints_the_hardware(capsys, monkeypatch):
    monkeypatch.delenv("LINATTN_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device = choose_device()
    assert device.type == "cpu"
    printed = capsys.readouterr().out
    assert hardware_name("cpu") in printed and torch.__version__ in printed


def test_preferred_device_and_environment_variable(monkeypatch):
    assert choose_device("cpu", verbose=False).type == "cpu"
    monkeypatch.setenv("LINATTN_DEVICE", "cpu")
    assert choose_device(verbose=False).type == "cpu"


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        choose_device("cuda", verbose=False)


def test_environment_names_what_a_measurement_needs():
    env = environment("cpu")
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert env["threads"] == torch.get_num_threads() and env["hardware"]


def test_exported():
    assert linattn.choose_device is choose_device


@pytest.mark.parametrize("capability, native", [((7, 5), False), ((8, 0), True), ((9, 0), True), ((6, 1), False)])
def test_bfloat16_only_from_compute_capability_8(monkeypatch, capability, native):
    """A T4 (7.5) emulates bfloat16 although torch.cuda.is_bf16_supported() answers True there."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert supports_bfloat16("cuda") is native
    assert supports_bfloat16("cpu") is False
