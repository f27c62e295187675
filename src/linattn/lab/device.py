"""Which device runs the page, with a CPU fallback, and a one-line description of the hardware."""
import os
import platform

import torch


def cpu_name():
    """The CPU model as the operating system names it, or the platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware_name(device):
    """'NVIDIA T4' for a CUDA device, the CPU model and thread count for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({cpu_name()})"
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def choose_device(preferred=None, *, verbose=True):
    """CUDA when available, else CPU (or `preferred`, or $LINATTN_DEVICE); prints what runs the page."""
    name = preferred or os.environ.get("LINATTN_DEVICE")
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but torch {torch.__version__} sees no CUDA GPU")
    if verbose:
        print(f"Running on {device}: {hardware_name(device)}, torch {torch.__version__}")
    return device


def supports_bfloat16(device):
    """Whether `device` runs bfloat16 in hardware: a CUDA GPU of compute capability 8.0 (Ampere) or newer.

    `torch.cuda.is_bf16_supported()` also answers True on a T4 (capability 7.5), where bfloat16 is
    emulated and SDPA falls back to its math kernel, so the capability decides. CPUs: False (the lab
    measures half precision on GPUs only).
    """
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def synchronize(device=None):
    """Wait for queued GPU work: on `device`, or with None on the current CUDA device once CUDA is in
    use. Nothing to wait for on a CPU."""
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    elif torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def environment(device):
    """What every stored or shown measurement carries beside it."""
    device = torch.device(device)
    return {
        "device": device.type,
        "hardware": hardware_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
