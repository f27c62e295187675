"""The speed of light of a device: peak FLOP/s from a large matmul, memory bandwidth from a large copy.

A call that does F FLOPs and must move B bytes cannot take less than max(F / peak, B / bandwidth):
the roofline model (Williams, Waterman and Patterson 2009). Each ceiling is the best of several
timed runs: a peak is what the device reaches at its best, and a busy machine only ever slows a
run down.
"""
from dataclasses import asdict, dataclass

import torch

from .device import hardware_name
from .memory import element_size, format_bytes, guard
from .timing import time_call

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


def parse_dtype(name):
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose from {sorted(DTYPES)}")
    return DTYPES[name]


@dataclass(frozen=True)
class Roofline:
    hardware: str
    dtype: str
    peak_flops: float      # FLOP/s of a large square matmul
    bandwidth: float       # bytes/s of a large copy, counting bytes read and bytes written
    matmul_size: int
    copy_bytes: int

    def floor_seconds(self, flops, nbytes):
        """The least time for a call doing `flops` FLOPs and moving `nbytes` bytes."""
        return max(flops / self.peak_flops, nbytes / self.bandwidth)

    def attainable_flops(self, intensity):
        """FLOP/s the roofline allows at `intensity` FLOPs per byte."""
        return min(self.peak_flops, intensity * self.bandwidth)

    @property
    def ridge_intensity(self):
        """FLOPs per byte above which a call is compute-bound."""
        return self.peak_flops / self.bandwidth

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{field: data[field] for field in cls.__dataclass_fields__})

    def __str__(self):
        return (f"{self.hardware}, {self.dtype}: {self.peak_flops / 1e9:.4g} GFLOP/s (matmul {self.matmul_size}^2), "
                f"{self.bandwidth / 1e9:.4g} GB/s (copy of {format_bytes(self.copy_bytes)})")


def default_sizes(device, profile=None):
    """(matmul side, copy bytes): big enough to reach the plateau, far beyond any CPU cache;
    smaller under the `ci` profile, where the point is that the code runs."""
    if profile == "ci":
        return 512, 64 << 20
    if torch.device(device).type == "cuda":
        return 8192, 1 << 30
    return 2048, 256 << 20


def measure_peak_flops(device, dtype=torch.float32, *, size=None, repeats=5):
    """FLOP/s of a size x size matmul (2 size^3 FLOPs) on `device`."""
    size = default_sizes(device)[0] if size is None else size
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    timing = time_call(torch.mm, a, b, out=out, repeats=repeats)
    return 2 * size ** 3 / min(timing.times)


def measure_bandwidth(device, *, nbytes=None, repeats=5):
    """Bytes/s of copying `nbytes` into an existing buffer (reads plus writes: 2 * nbytes per copy)."""
    nbytes = default_sizes(device)[1] if nbytes is None else nbytes
    if not isinstance(nbytes, int) or nbytes < 1:
        raise ValueError(f"nbytes must be a positive int, got {nbytes!r}")
    source = torch.ones(nbytes // 4, device=device)
    target = torch.zeros_like(source)   # written once now, so the timed copies touch mapped memory
    timing = time_call(target.copy_, source, repeats=repeats)
    return 2 * source.numel() * 4 / min(timing.times)


def measure_roofline(device, dtype=torch.float32, *, matmul_size=None, copy_bytes=None, repeats=5):
    """Measure both ceilings of `device` for `dtype`; None (with a message) if the buffers would not fit."""
    dtype = parse_dtype(dtype)
    default_size, default_bytes = default_sizes(device)
    matmul_size = default_size if matmul_size is None else matmul_size
    copy_bytes = default_bytes if copy_bytes is None else copy_bytes
    needed = max(3 * matmul_size ** 2 * max(element_size(dtype), 4), 2 * copy_bytes)
    if not guard(needed, device, "the roofline microbenchmark"):
        return None
    return Roofline(hardware=hardware_name(device), dtype=dtype_name(dtype),
                    peak_flops=measure_peak_flops(device, dtype, size=matmul_size, repeats=repeats),
                    bandwidth=measure_bandwidth(device, nbytes=copy_bytes, repeats=repeats),
                    matmul_size=matmul_size, copy_bytes=copy_bytes)
