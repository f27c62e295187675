"""benchmarks/device_check.py, the one-call script for a GPU session, exercised on the CPU."""
import dataclasses
import importlib.util
import json
from pathlib import Path

import torch

from linattn import load_results
from linattn.lab.baselines import IMPLEMENTATIONS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "device_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_a_quick_run_passes_every_check_and_writes_its_files(tmp_path):
    assert load_script().main(["--device", "cpu", "--quick", "--output", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "device_check.json").read_text())
    names = {c["check"] for c in summary["checks"]}
    assert {f"forward {name}" for name in IMPLEMENTATIONS} <= names
    assert any(name.startswith("gradient") for name in names) and any("chunked" in name for name in names)
    assert all(c["passed"] for c in summary["checks"]) and summary["bench_exit_status"] == 0
    bench_file, causal_file, paper_file, generation_file = (tmp_path / name for name in summary["files"])
    assert bench_file.name.startswith("bench_cpu_") and load_results(bench_file)["records"]
    assert set(load_results(causal_file)["records"][0]["targets_hold"])
    assert summary["paper_exit_status"] == 0 and paper_file.name.startswith("paper_protocol_cpu_")
    assert load_results(paper_file)["settings"]["protocol"] == "paper" and load_results(paper_file)["records"]
    assert summary["generation_exit_status"] == 0 and generation_file.name.startswith("generation_cpu_")
    assert {r["method"] for r in load_results(generation_file)["records"]} >= {"linear", "kv_cache"}


def test_a_wrong_implementation_fails_its_check(monkeypatch):
    script = load_script()
    broken = dataclasses.replace(IMPLEMENTATIONS["linear"], fn=lambda q, k, v: v * 1.01)
    monkeypatch.setitem(IMPLEMENTATIONS, "linear", broken)
    checks = {c["check"]: c for c in script.forward_checks(torch.device("cpu"), ["float32"], 32)}
    assert not checks["forward linear"]["passed"] and checks["forward linear"]["error"] > 1e-3
    assert checks["forward linear-einsum"]["passed"]
