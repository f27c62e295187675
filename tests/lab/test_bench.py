"""The benchmark CLI and library: a tiny run writes a valid file; memory guards skip instead of crashing."""
import json
import subprocess
import sys
import time

import pytest
import torch

from linattn.lab import bench, results
from linattn.lab.baselines import IMPLEMENTATIONS, Implementation, softmax_extra_bytes
from linattn.lab.bench import (default_output, find_results, main, measure_point, make_inputs, run_benchmark,
                               supported_dtypes)
from linattn.lab.report import series

TINY = ["--device", "cpu", "--batch", "2", "--dim", "8", "--seq-lens", "16", "32", "--repeats", "2",
        "--no-progress", "--no-roofline"]


def test_a_tiny_run_writes_a_valid_results_file(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert main(TINY + ["--output", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "linear vs naive softmax at N = 32" in printed and "crossover" in printed
    payload = results.load_results(path)
    env = payload["environment"]
    assert env["device"] == "cpu" and env["hardware"] and env["torch"] == torch.__version__ and "cuda" in env
    assert payload["date"] and payload["settings"]["dtypes"] == ["float32"]
    assert payload["settings"]["seq_lens"] == [16, 32] and payload["settings"]["batch"] == 2
    records = payload["records"]
    assert len(records) == 2 * len(IMPLEMENTATIONS)
    assert {r["implementation"] for r in records} == set(IMPLEMENTATIONS)
    for r in records:
        assert r["skipped"] is None and r["repeats"] == 2 and r["memory"] == "estimated"
        assert 0 < r["median_s"] and r["iqr_s"] >= 0 and r["mean_s"] > 0 and r["std_s"] >= 0 and r["peak_bytes"] > 0
    assert {r["backend"] for r in records if r["implementation"].startswith("sdpa")} <= {"flash (CPU)", "math"}


def test_help_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "linattn.lab.bench", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for option in ("--device", "--dtype", "--seq-lens", "--repeats", "--implementations", "--output"):
        assert option in proc.stdout


def test_the_roofline_is_stored_per_dtype(tmp_path):
    records, settings = run_benchmark("cpu", batch=1, dim=8, seq_lens=[16], repeats=2, implementations=["linear"],
                                      roofline_sizes=(64, 1 << 20), progress=False)
    roof = settings["rooflines"]["float32"]
    assert roof["peak_flops"] > 0 and roof["bandwidth"] > 0 and roof["matmul_size"] == 64
    assert records[0]["flops"] == 4 * 16 * 8 * 8 and records[0]["bytes_moved"] == 4 * 16 * 8 * 4


def test_a_small_memory_budget_skips_naming_the_bytes(tmp_path, monkeypatch, capsys):
    """LINATTN_MEMORY_BUDGET fakes a small machine: the softmax points do not fit and are skipped."""
    monkeypatch.setenv("LINATTN_MEMORY_BUDGET", str(200_000))
    path = tmp_path / "small.json"
    assert main(["--device", "cpu", "--batch", "1", "--dim", "8", "--seq-lens", "256", "--repeats", "2",
                 "--implementations", "softmax", "linear", "--no-progress", "--no-roofline",
                 "--output", str(path)]) == 0
    by_name = {r["implementation"]: r for r in results.load_results(path)["records"]}
    needed = softmax_extra_bytes(1, 256, 8, torch.float32)
    assert by_name["softmax"]["skipped"] and by_name["softmax"]["bytes_needed"] == needed
    assert "Skipping naive softmax at N = 256" in capsys.readouterr().out
    assert by_name["linear"]["skipped"] is None and by_name["linear"]["median_s"] > 0


def test_inputs_that_do_not_fit_are_skipped(monkeypatch):
    monkeypatch.setenv("LINATTN_MEMORY_BUDGET", "1000")
    records, _ = run_benchmark("cpu", batch=4, dim=64, seq_lens=[512], repeats=2, implementations=["linear"],
                               roofline=False, progress=False, log=lambda message: None)
    assert records[0]["skipped"].startswith("Skipping N = 512")


def test_an_out_of_memory_error_is_recorded_not_raised(monkeypatch):
    def runs_out(q, k, v):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")

    fake = Implementation("oom", "always out of memory", runs_out, False, softmax_extra_bytes, True)
    monkeypatch.setitem(IMPLEMENTATIONS, "oom", fake)
    q, k, v = make_inputs(1, 16, 8, torch.float32, "cpu")
    record = measure_point("oom", q, k, v, repeats=2, log=lambda message: None)
    assert "out of memory" in record["skipped"] and "median_s" not in record


def test_a_time_budget_lowers_the_repeats(monkeypatch):
    calls = []

    def slow(q, k, v):
        calls.append(1)
        time.sleep(0.02)

    monkeypatch.setitem(IMPLEMENTATIONS, "slow", Implementation("slow", "slow", slow, False, softmax_extra_bytes, True))
    q, k, v = make_inputs(1, 8, 4, torch.float32, "cpu")
    record = measure_point("slow", q, k, v, repeats=50, time_budget=0.05, log=lambda message: None)
    # the floor of 3 timed samples, not 50: one call to see how slow it is, one to size the samples, 3 timed
    assert record["repeats"] == 3 and len(calls) == 1 + 1 + 3


def test_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match="batch"):
        run_benchmark("cpu", batch=0, dim=8, seq_lens=[16], repeats=1, roofline=False, progress=False)
    with pytest.raises(ValueError, match="seq_lens"):
        run_benchmark("cpu", batch=1, dim=8, seq_lens=[], repeats=1, roofline=False, progress=False)
    with pytest.raises(ValueError, match="unknown implementation"):
        run_benchmark("cpu", batch=1, dim=8, seq_lens=[8], repeats=1, implementations=["nope"], roofline=False)
    with pytest.raises(ValueError, match="unknown dtype"):
        run_benchmark("cpu", dtypes=["float8"], batch=1, dim=8, seq_lens=[8], repeats=1, roofline=False)
    with pytest.raises(ValueError, match="time_budget"):
        run_benchmark("cpu", batch=1, dim=8, seq_lens=[8], repeats=1, time_budget=0, roofline=False)


def test_cli_reports_bad_values(capsys):
    assert main(TINY + ["--batch", "0"]) == 2
    assert "batch must be a positive int" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--implementations", "nope"])


def test_series_and_find_results(tmp_path):
    records = [{"implementation": "linear", "dtype": "float32", "seq_len": n, "median_s": t, "iqr_s": 0.0,
                "skipped": None} for n, t in ((64, 2.0), (16, 1.0))]
    records.append({"implementation": "linear", "dtype": "float32", "seq_len": 32, "skipped": "too big"})
    assert series(records, "linear") == ([16, 64], [1.0, 2.0], [0.0, 0.0])
    results.save_results(tmp_path / "bench_cpu_a.json", records, settings={}, device="cpu")
    (tmp_path / "notes.json").write_text(json.dumps({}))
    assert [p.name for p, _ in find_results(tmp_path)] == ["bench_cpu_a.json"]
    # A file dropped in later (say, from a GPU) is picked up with no code change.
    other = results.load_results(tmp_path / "bench_cpu_a.json")
    other["environment"]["hardware"] = "Another GPU"
    (tmp_path / "bench_cuda_another-gpu.json").write_text(json.dumps(other))
    hardware = [p["environment"]["hardware"] for _, p in find_results(tmp_path)]
    assert len(hardware) == 2 and "Another GPU" in hardware and hardware == sorted(hardware)


def test_defaults():
    assert supported_dtypes("cpu") == ["float32"]


@pytest.mark.parametrize("capability, dtypes", [((7, 5), ["float32", "float16"]),
                                                ((8, 0), ["float32", "float16", "bfloat16"])])
def test_bfloat16_is_offered_from_ampere_on_not_on_a_t4(monkeypatch, capability, dtypes):
    """The CLI's default dtypes, benchmarks/device_check.py and Chapter 6's dropdown all ask supported_dtypes."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)   # as it answers on a T4
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert supported_dtypes("cuda") == dtypes
    assert default_output("cpu").startswith("bench_cpu_") and default_output("cpu").endswith(".json")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_run_measures_memory_and_names_the_backend(tmp_path):
    records, settings = run_benchmark("cuda", dtypes=["float16"], batch=2, dim=64, seq_lens=[256], repeats=3,
                                      roofline_sizes=(1024, 64 << 20), progress=False)
    for r in records:
        assert r["memory"] == "measured" and r["peak_bytes"] > 0
    assert {r["backend"] for r in records if r["implementation"] == "sdpa"} <= {"flash", "memory-efficient", "cuDNN",
                                                                                 "math"}
    assert bench.supported_dtypes("cuda")[:2] == ["float32", "float16"]


def test_runs_without_tqdm(monkeypatch):
    monkeypatch.setattr(bench, "tqdm", None)
    messages = []
    records, _ = run_benchmark("cpu", batch=1, dim=8, seq_lens=[16], repeats=1, implementations=["linear"],
                               roofline=False, log=messages.append)
    assert len(records) == 1 and records[0]["median_s"] > 0
