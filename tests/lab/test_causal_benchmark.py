"""Chapter 5's measurements: the algorithm sweep, chunk sizes and the causal benchmark."""
import pytest
import torch

import linattn
from linattn.causal import DEFAULT_CHUNK_SIZE
from linattn.fast.causal import CPU_CHUNK_SIZE
from linattn.lab import causal_benchmark as cb


def test_a_small_run_reports_every_ratio():
    result = cb.run_causal_benchmark(2, 256, 16, repeats=1, min_sample_s=1e-3)
    assert set(result["ratios"]) == set(cb.RATIOS)
    assert all(value > 0 for value in result["ratios"].values())
    assert result["peak_bytes"]["cumsum_forward"] >= 2 * 256 * 16 * 16 * 4   # every prefix state
    assert result["sizes"] == {"batch": 2, "seq_len": 256, "dim": 16, "chunk_size": CPU_CHUNK_SIZE,
                               "all_at_once_chunk_size": DEFAULT_CHUNK_SIZE}
    assert result["dtype"] == "float32"


def test_the_module_keeps_no_targets():
    assert not hasattr(cb, "TARGETS") and not hasattr(cb, "check_targets")


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="seq_len"):
        cb.run_causal_benchmark(1, 0, 8)
    with pytest.raises(ValueError, match="repeats"):
        cb.run_causal_benchmark(1, 8, 8, repeats=1.5)
    with pytest.raises(ValueError, match="seq_lens must not be empty"):
        cb.algorithm_sweep([], batch=1, dim=4)
    with pytest.raises(ValueError, match="seq_lens"):
        cb.algorithm_sweep([16, 0], batch=1, dim=4)
    with pytest.raises(ValueError, match="no estimate for algorithm 'flash'"):
        cb.estimated_bytes("flash", 16, 1, 4)
    with pytest.raises(ValueError, match="chunk_sizes"):
        cb.chunk_size_costs([8, -1], batch=1, seq_len=16, dim=4)


def test_the_sweep_measures_every_algorithm_and_the_masked_one_grows_fastest():
    sweep = cb.algorithm_sweep([32, 256], batch=1, dim=8, repeats=1)
    assert set(sweep) == {(name, n) for name in linattn.CAUSAL_ALGORITHMS for n in (32, 256)}
    assert all(entry["time"].median > 0 and entry["memory"] > 0 for entry in sweep.values())
    growth = {name: sweep[name, 256]["memory"] / sweep[name, 32]["memory"] for name in linattn.CAUSAL_ALGORITHMS}
    assert growth["masked"] > 20 and growth["masked"] > 2 * growth["chunked"]   # N^2 against N, N 8x longer
    table = cb.sweep_table(sweep)
    assert table.splitlines()[0].split("|")[1:] and "256" in table and "skipped" not in table


def test_sizes_that_do_not_fit_are_skipped_with_a_message(monkeypatch, capsys):
    budget = cb.estimated_bytes("chunked", 256, 1, 8) * 2      # room for chunked, not for masked
    assert cb.estimated_bytes("masked", 256, 1, 8) > budget
    monkeypatch.setenv("LINATTN_MEMORY_BUDGET", str(budget))
    sweep = cb.algorithm_sweep([256], batch=1, dim=8, repeats=1)
    assert ("masked", 256) not in sweep and ("chunked", 256) in sweep
    assert "Skipping masked at N = 256" in capsys.readouterr().out
    assert "skipped" in cb.sweep_table(sweep)


def test_extra_peak_bytes_counts_what_a_call_allocates():
    assert cb.extra_peak_bytes("cpu", lambda: torch.empty(1000, dtype=torch.float32)) >= 4000


def test_chunk_size_costs_measure_each_chunk_size():
    costs = cb.chunk_size_costs([4, 64], batch=1, seq_len=128, dim=8, repeats=1)
    assert set(costs) == {4, 64} and all(c["time"] > 0 for c in costs.values())
    assert costs[4]["memory"] != costs[64]["memory"]   # N/C states against C x C blocks
