"""The paper's protocol (Katharopoulos et al. 2020, §4.1.2): forward+backward, batch x N fixed, per sample."""
import pytest
import torch

from linattn.lab import bench, paper_benchmark, results
from linattn.lab.baselines import IMPLEMENTATIONS, Implementation, softmax_extra_bytes
from linattn.lab.paper_benchmark import (CONTENDERS, SIZES, find_paper_results, make_training_inputs,
                                         paper_sizes, run_paper_benchmark, training_extra_bytes)
from linattn.lab.peak_memory import PeakMemoryTracker
from linattn.lab.timing import Timing

TINY = dict(seq_lens=[16, 32, 64], tokens=64, dim=8, repeats=2, log=lambda message: None)


def tracked_peak(name, batch, n, dim, dtype):
    q, k, v, grad = make_training_inputs(batch, n, dim, dtype, "cpu")
    step = paper_benchmark.forward_backward(IMPLEMENTATIONS[name].fn, q, k, v, grad)
    with PeakMemoryTracker() as tracker:
        grads = step()
        del grads
    return tracker.peak


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 256, 32), (1, 300, 16)])
@pytest.mark.parametrize("name", [*CONTENDERS, "softmax-causal", "sdpa-causal"])
def test_the_memory_estimate_bounds_the_measured_peak(name, shape, dtype):
    measured = tracked_peak(name, *shape, dtype)
    estimate = training_extra_bytes(name, *shape, dtype, backend="flash (CPU)")
    # linear-causal: its backward is being made constant-memory, so the estimate may become generous
    assert measured <= estimate <= (6 if name == "linear-causal" else 3) * measured, (measured, estimate)


def test_sdpa_on_the_math_backend_is_estimated_like_naive_softmax():
    assert training_extra_bytes("sdpa", 2, 2048, 64, torch.float32, backend="math") == \
        training_extra_bytes("softmax", 2, 2048, 64, torch.float32)
    assert training_extra_bytes("sdpa", 2, 2048, 64, torch.float32, backend="memory-efficient") < \
        training_extra_bytes("softmax", 2, 2048, 64, torch.float32) / 10


def test_a_run_keeps_batch_times_n_and_reports_per_sample():
    records, settings = run_paper_benchmark("cpu", **TINY)
    assert len(records) == 3 * len(CONTENDERS) and all(r["skipped"] is None for r in records)
    for r in records:
        assert r["batch"] * r["seq_len"] == 64
        assert r["time_per_sample_s"] == pytest.approx(r["median_s"] / r["batch"])
        assert r["memory_per_sample_bytes"] == pytest.approx((r["peak_bytes"] + r["input_bytes"]) / r["batch"])
        assert r["peak_bytes"] > 0 and r["memory"] == "PeakMemoryTracker" and r["repeats"] >= 2
        assert r["peak_bytes"] <= r["bytes_needed"]
    assert {r["backend"] for r in records if r["implementation"] == "sdpa"} <= {"flash (CPU)", "math"}
    assert settings["protocol"] == "paper" and settings["pass"] == "forward+backward"
    assert settings["tokens"] == 64 and settings["batches"] == {"16": 4, "32": 2, "64": 1}
    assert settings["skipped_for_time"] == {} and settings["skipped_for_memory"] == {}


def test_the_gradients_are_those_of_the_implementation():
    q, k, v, grad = make_training_inputs(2, 16, 8, torch.float64, "cpu")
    got = paper_benchmark.forward_backward(IMPLEMENTATIONS["linear"].fn, q, k, v, grad)()
    expected = torch.autograd.grad(IMPLEMENTATIONS["softmax"].fn(q, k, v), (q, k, v), grad)
    assert len(got) == 3 and all(g.shape == q.shape for g in got)
    assert not torch.allclose(got[0], expected[0])   # a different method, a different gradient
    again = paper_benchmark.forward_backward(IMPLEMENTATIONS["linear"].fn, q, k, v, grad)()
    assert all(torch.equal(a, b) for a, b in zip(got, again)) and q.grad is None   # returned, not accumulated


def test_what_does_not_fit_is_skipped_for_memory_with_the_bytes(monkeypatch):
    needed = training_extra_bytes("softmax", 1, 512, 8, torch.float32)
    monkeypatch.setenv("LINATTN_MEMORY_BUDGET", str(int(needed)))   # 80% of it is usable: softmax does not fit
    records, settings = run_paper_benchmark("cpu", seq_lens=[256, 512], tokens=512, dim=8, repeats=2,
                                            implementations=["softmax", "linear"], log=lambda message: None)
    by = {(r["implementation"], r["seq_len"]): r for r in records}
    assert by["softmax", 256]["skipped"] is None
    skipped = by["softmax", 512]
    assert skipped["skip_reason"] == "memory" and skipped["bytes_needed"] == needed and "median_s" not in skipped
    assert by["linear", 512]["skipped"] is None
    assert settings["skipped_for_memory"] == {"float32": {"softmax": [512]}}


def fake_clock(monkeypatch, seconds_at):
    """time_call reports seconds_at(name, N) per call, so that the time budget's decisions are deterministic."""
    point = {}

    def fake_time_call(step, *, repeats, warmup):
        return Timing((seconds_at(*point["now"]),) * repeats)

    original = paper_benchmark.measure_training_point

    def measure(name, q, k, v, grad, **kwargs):
        point["now"] = name, q.shape[-2]
        return original(name, q, k, v, grad, **kwargs)

    monkeypatch.setattr(paper_benchmark, "time_call", fake_time_call)
    monkeypatch.setattr(paper_benchmark, "measure_training_point", measure)


def test_a_time_budget_stops_the_quadratic_contender_and_records_why(monkeypatch):
    # softmax: 0.01 s a call at N = 16, doubling with N; linear: 0.01 s at every N
    fake_clock(monkeypatch, lambda name, n: 0.01 * (n / 16 if name == "softmax" else 1))
    records, settings = run_paper_benchmark("cpu", **{**TINY, "seq_lens": [16, 32, 64, 128], "tokens": 128},
                                            time_budget=0.15, implementations=["softmax", "linear"])
    by = {(r["implementation"], r["seq_len"]): r for r in records}
    # softmax at N = 32: predicted 0.02 s a call, 5 calls = 0.1 s: within 0.15; at 64: 0.2 s: skipped
    assert by["softmax", 32]["skipped"] is None
    for n in (64, 128):
        assert by["softmax", n]["skip_reason"] == "time" and "time budget" in by["softmax", n]["skipped"]
    assert by["softmax", 64]["predicted_s"] == pytest.approx(5 * 0.04)
    assert by["softmax", 128]["predicted_s"] == pytest.approx(5 * 0.08)
    # linear: its work at fixed batch x N is predicted not to grow, so it runs on
    assert all(by["linear", n]["skipped"] is None for n in (16, 32, 64, 128))
    assert settings["time_budget_s"] == 0.15
    assert settings["skipped_for_time"] == {"float32": {"softmax": [64, 128]}}


def test_without_a_budget_nothing_is_skipped_for_time(monkeypatch):
    fake_clock(monkeypatch, lambda name, n: n * 100.0)
    records, settings = run_paper_benchmark("cpu", **TINY, implementations=["softmax"])
    assert all(r["skipped"] is None for r in records) and settings["skipped_for_time"] == {}


def test_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match="divide tokens"):
        run_paper_benchmark("cpu", seq_lens=[48], tokens=64, dim=8, repeats=1)
    with pytest.raises(ValueError, match="tokens"):
        run_paper_benchmark("cpu", seq_lens=[16], tokens=0, dim=8, repeats=1)
    with pytest.raises(ValueError, match="time_budget"):
        run_paper_benchmark("cpu", seq_lens=[16], tokens=16, dim=8, repeats=1, time_budget=-1)
    with pytest.raises(ValueError, match="unknown implementation"):
        run_paper_benchmark("cpu", seq_lens=[16], tokens=16, dim=8, repeats=1, implementations=["nope"])
    with pytest.raises(ValueError, match="unknown profile"):
        paper_sizes("huge")


def test_sizes_follow_the_paper_on_a_gpu_and_keep_batch_times_n():
    gpu = paper_sizes("gpu")
    assert gpu.seq_lens == tuple(2 ** e for e in range(9, 17))   # N = 2^9 ... 2^16, as in §4.1.2
    assert paper_sizes("cpu").seq_lens == gpu.seq_lens and paper_sizes("cpu").time_budget > 0
    for profile in (*SIZES, "cpu"):
        for live in (False, True):
            sizes = paper_sizes(profile, live=live)
            assert all(sizes.tokens % n == 0 for n in sizes.seq_lens) and sizes.tokens // max(sizes.seq_lens) == 1
    assert max(paper_sizes("ci").seq_lens) <= 512 and max(paper_sizes("cpu", live=True).seq_lens) < 2 ** 16
    assert paper_sizes("ci").time_budget is None and paper_sizes("cpu", live=True).time_budget is None


def test_the_cli_runs_the_paper_protocol_and_writes_its_file(tmp_path, capsys):
    path = tmp_path / "paper.json"
    assert bench.main(["--protocol", "paper", "--device", "cpu", "--tokens", "64", "--seq-lens", "32", "64",
                       "--dim", "8", "--repeats", "1", "--time-budget", "30", "--output", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "paper's protocol" in printed and "slopes per sample" in printed and "linear / softmax at N = 64" in printed
    payload = results.load_results(path)
    assert payload["settings"]["protocol"] == "paper" and payload["settings"]["time_budget_s"] == 30
    assert payload["settings"]["implementations"] == list(CONTENDERS) and payload["settings"]["dtypes"] == ["float32"]
    assert payload["environment"]["torch"] == torch.__version__ and payload["date"]
    assert len(payload["records"]) == 2 * len(CONTENDERS)


def test_the_cli_keeps_the_two_protocols_options_apart(capsys):
    assert bench.main(["--protocol", "paper", "--device", "cpu", "--batch", "4"]) == 2
    assert "--tokens" in capsys.readouterr().err
    assert bench.main(["--device", "cpu", "--tokens", "64"]) == 2
    assert "--protocol paper" in capsys.readouterr().err


def test_the_default_protocol_is_still_the_blog_sweep():
    args = bench.parse_args(["--device", "cpu"])
    assert args.protocol == "blog"
    plan = bench.plan(args, torch.device("cpu"), bench.get_profile("cpu"))
    assert plan["batch"] == bench.get_profile("cpu").batch and "tokens" not in plan


def test_results_files_are_found_by_name(tmp_path):
    results.save_results(tmp_path / "paper_protocol_cpu_a.json", [], settings={"protocol": "paper"}, device="cpu")
    results.save_results(tmp_path / "bench_cpu_a.json", [], settings={}, device="cpu")
    assert [p.name for p, _ in find_paper_results(tmp_path)] == ["paper_protocol_cpu_a.json"]
    assert [p.name for p, _ in bench.find_results(tmp_path)] == ["bench_cpu_a.json"]
    assert paper_benchmark.default_output("cpu").startswith("paper_protocol_cpu_")


def test_an_out_of_memory_error_is_recorded_not_raised(monkeypatch):
    def runs_out(q, k, v):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")

    fake = Implementation("oom", "oom", runs_out, False, softmax_extra_bytes, True)
    monkeypatch.setitem(IMPLEMENTATIONS, "oom", fake)
    q, k, v, grad = make_training_inputs(1, 16, 8, torch.float32, "cpu")
    record = paper_benchmark.measure_training_point("oom", q, k, v, grad, repeats=2, log=lambda message: None)
    assert record["skip_reason"] == "memory" and "out of memory" in record["skipped"]


def test_other_errors_are_raised(monkeypatch):
    def broken(q, k, v):
        raise RuntimeError("shapes do not match")

    monkeypatch.setitem(IMPLEMENTATIONS, "broken", Implementation("broken", "b", broken, False, softmax_extra_bytes,
                                                                  True))
    q, k, v, grad = make_training_inputs(1, 16, 8, torch.float32, "cpu")
    with pytest.raises(RuntimeError, match="shapes"):
        paper_benchmark.measure_training_point("broken", q, k, v, grad, repeats=2, log=lambda message: None)
