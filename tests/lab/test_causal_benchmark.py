"""The causal benchmark runs and reports every ratio; its target check compares in the right direction."""
import importlib.util
from pathlib import Path

import pytest

from linattn.causal import DEFAULT_CHUNK_SIZE
from linattn.lab.causal_benchmark import TARGETS, check_targets, run_causal_benchmark
from linattn.fast.causal import CPU_CHUNK_SIZE

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "causal_bench.py"


def test_a_small_run_reports_every_ratio():
    result = run_causal_benchmark(2, 256, 16, repeats=1, min_sample_s=1e-3)
    assert set(result["ratios"]) == set(TARGETS)
    assert all(value > 0 for value in result["ratios"].values())
    assert result["peak_bytes"]["cumsum_forward"] >= 2 * 256 * 16 * 16 * 4   # every prefix state
    assert result["sizes"] == {"batch": 2, "seq_len": 256, "dim": 16, "chunk_size": CPU_CHUNK_SIZE,
                               "all_at_once_chunk_size": DEFAULT_CHUNK_SIZE}
    assert result["dtype"] == "float32"


def test_check_targets_compares_each_bound_in_its_direction():
    at_bounds = {name: bound for name, (_, bound, _) in TARGETS.items()}
    assert all(holds for holds, _ in check_targets(at_bounds).values())
    worse = {name: bound * (0.5 if comparison == ">=" else 2) for name, (comparison, bound, _) in TARGETS.items()}
    assert not any(holds for holds, _ in check_targets(worse).values())
    with pytest.raises(ValueError, match="lack"):
        check_targets({})


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="seq_len"):
        run_causal_benchmark(1, 0, 8)
    with pytest.raises(ValueError, match="repeats"):
        run_causal_benchmark(1, 8, 8, repeats=1.5)


def test_the_script_prints_verdicts_and_saves_results(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("causal_bench", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out_file = tmp_path / "bench.json"
    script.main(["--batch", "1", "--seq-len", "128", "--dim", "8", "--repeats", "1", "--save", str(out_file)])
    printed = capsys.readouterr().out
    assert printed.count("PASS") + printed.count("FAIL") == len(TARGETS)
    from linattn import load_results
    stored = load_results(out_file)
    assert set(stored["records"][0]["targets_hold"]) == set(TARGETS)
    assert stored["settings"]["seq_len"] == 128
