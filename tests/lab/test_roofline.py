"""The roofline: the floor is the larger of the two limits, the microbenchmarks measure something real."""
import pytest
import torch

from linattn.lab.roofline import (Roofline, default_sizes, dtype_name, measure_bandwidth, measure_peak_flops,
                                  measure_roofline, parse_dtype)
from linattn.lab.timing import time_call


def example(peak=1e12, bandwidth=1e11):
    return Roofline("test device", "float32", peak, bandwidth, 1024, 1 << 20)


def test_floor_is_the_larger_limit():
    roof = example()
    assert roof.ridge_intensity == 10
    assert roof.floor_seconds(1e12, 1e9) == 1.0          # compute-bound: 1 s of FLOPs, 0.01 s of bytes
    assert roof.floor_seconds(1e9, 1e11) == 1.0          # memory-bound
    assert roof.attainable_flops(1) == 1e11 and roof.attainable_flops(100) == 1e12


def test_round_trip_through_a_dict():
    roof = example()
    assert Roofline.from_dict({**roof.as_dict(), "extra": 1}) == roof
    assert "GFLOP/s" in str(roof) and "GB/s" in str(roof)


def test_microbenchmarks_on_the_cpu():
    peak = measure_peak_flops("cpu", size=256, repeats=3)
    bandwidth = measure_bandwidth("cpu", nbytes=8 << 20, repeats=3)
    assert 1e8 < peak < 1e14 and 1e8 < bandwidth < 1e13


def test_the_measured_peak_predicts_a_matmul_of_another_size():
    """A matmul at the measured rate: a second, independent timing is not faster than the peak allows by much."""
    peak = measure_peak_flops("cpu", size=384, repeats=20)   # the best of many: one quiet sample suffices
    a = torch.randn(384, 384)
    timing = time_call(torch.mm, a, a, repeats=5)
    assert 2 * 384 ** 3 / timing.median < 3 * peak


def test_measure_roofline_records_sizes_and_dtype():
    roof = measure_roofline("cpu", "float32", matmul_size=128, copy_bytes=1 << 20, repeats=2)
    assert roof.dtype == "float32" and roof.matmul_size == 128 and roof.copy_bytes == 1 << 20
    assert roof.peak_flops > 0 and roof.bandwidth > 0


def test_measure_roofline_skips_when_memory_is_short(monkeypatch, capsys):
    monkeypatch.setenv("LINATTN_MEMORY_BUDGET", "1000")
    assert measure_roofline("cpu", matmul_size=128, copy_bytes=1 << 20) is None
    assert "Skipping the roofline microbenchmark" in capsys.readouterr().out


def test_default_sizes():
    assert default_sizes("cpu", "ci")[0] < default_sizes("cpu")[0]
    assert default_sizes("cpu")[1] > 32 << 20      # larger than any CPU cache


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        measure_peak_flops("cpu", size=0)
    with pytest.raises(ValueError, match="nbytes"):
        measure_bandwidth("cpu", nbytes=-5)
    with pytest.raises(ValueError, match="unknown dtype"):
        parse_dtype("float8")


def test_dtype_names():
    assert parse_dtype("bfloat16") is torch.bfloat16 and parse_dtype(torch.float16) is torch.float16
    assert dtype_name(torch.float16) == "float16"
