"""linattn.lab.sweep_time: the wall time of a planned sweep on a T4, from roofline costs (no timed test)."""
import time

import pytest
import torch

from linattn.lab import bench, sweep_time
from linattn.lab.baselines import IMPLEMENTATIONS, Implementation, cost, softmax_extra_bytes
from linattn.lab.bench import make_inputs, measure_point
from linattn.lab.profiles import get_profile
from linattn.lab.sweep_time import T4_DATASHEET, call_seconds, kernels, point_seconds, sweep_seconds

THREE_MINUTES = 180


def t4_plan(monkeypatch, *options):
    """What `python -m linattn.lab.bench --device cuda ...` would run on a Colab T4 (faked on the CPU)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)   # as it answers on a T4
    monkeypatch.delenv("LINATTN_PROFILE", raising=False)
    args = bench.parse_args(["--device", "cuda", "--output", "data/bench_cuda_colab.json", *options])
    device = torch.device("cuda")
    return bench.plan(args, device, get_profile(args.profile, device=device))


def test_chapter_6_exercise_on_a_t4_takes_about_three_minutes(monkeypatch):
    """`!python -m linattn.lab.bench --device cuda --output data/bench_cuda_colab.json` on a Colab T4."""
    plan = t4_plan(monkeypatch)
    assert plan["dtypes"] == ["float32", "float16"] and plan["batch"] == 32 and max(plan["seq_lens"]) == 6000
    assert plan["time_budget"] == bench.DEFAULT_CUDA_TIME_BUDGET
    assert sweep_seconds(T4_DATASHEET, **plan) <= THREE_MINUTES
    # It is the budget that keeps it short: 100 repetitions of every point would not be.
    assert sweep_seconds(T4_DATASHEET, **{**plan, "time_budget": None}) > THREE_MINUTES


def test_the_default_still_fits_if_the_t4_reaches_a_quarter_of_its_datasheet(monkeypatch):
    plan = t4_plan(monkeypatch)
    monkeypatch.setattr(sweep_time, "EFFICIENCY", 0.25)
    assert sweep_seconds(T4_DATASHEET, **plan) <= THREE_MINUTES


def test_an_explicit_budget_wins_and_the_cpu_keeps_none(monkeypatch):
    assert t4_plan(monkeypatch, "--time-budget", "1")["time_budget"] == 1.0
    args = bench.parse_args(["--device", "cpu"])
    assert bench.plan(args, torch.device("cpu"), get_profile("cpu"))["time_budget"] is None


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("n", [128, 1024, 6000])
@pytest.mark.parametrize("name", ["softmax", "sdpa", "linear"])
def test_no_call_beats_its_roofline_floor(name, n, dtype):
    """The kernels of a call do at least the work linattn.lab.baselines counts for it."""
    roof = T4_DATASHEET[dtype]
    least = cost(name, 32, n, 64, getattr(torch, dtype), backend="memory-efficient")
    floor = roof.floor_seconds(least.flops, least.bytes)
    assert call_seconds(name, 32, n, 64, dtype, roof) * sweep_time.EFFICIENCY >= floor * (1 - 1e-12)
    assert sum(k.flops for k in kernels(name, 32, n, 64, dtype)) >= least.flops


def test_quadratic_calls_grow_like_n_squared_and_linear_ones_like_n():
    roof = T4_DATASHEET["float32"]
    for name, power in (("softmax", 2), ("sdpa", 2), ("linear", 1), ("linear-causal", 1)):
        ratio = call_seconds(name, 32, 8000, 64, "float32", roof) / call_seconds(name, 32, 4000, 64, "float32", roof)
        assert 2 ** power * 0.9 <= ratio <= 2 ** power * 1.01, (name, ratio)


def test_point_seconds_counts_the_calls_measure_point_makes(monkeypatch):
    """The slow call of tests/lab/test_bench.py: measure_point makes 5 calls (see it, size it, 3 samples)."""
    calls, call, budget = [], 0.02, 0.05

    def slow(q, k, v):
        calls.append(1)
        time.sleep(call)

    monkeypatch.setitem(IMPLEMENTATIONS, "slow", Implementation("slow", "slow", slow, False, softmax_extra_bytes, True))
    q, k, v = make_inputs(1, 8, 4, torch.float32, "cpu")
    measure_point("slow", q, k, v, repeats=50, time_budget=budget, log=lambda message: None)
    assert point_seconds(call, repeats=50, time_budget=budget, cuda=False) == pytest.approx(len(calls) * call)
    assert point_seconds(call, repeats=50, time_budget=budget) == pytest.approx((len(calls) + 1) * call)   # + peak


def test_fast_calls_are_batched_into_samples_of_a_millisecond():
    assert point_seconds(1e-4, repeats=100, cuda=False) == pytest.approx(2e-4 + 100 * 1e-3)
