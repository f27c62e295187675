"""linattn.lab.report on a made-up payload whose answers follow from how it was made."""
import pytest
import torch

from linattn.lab.baselines import linear_cost
from linattn.lab.report import (Crossover, ceilings, check_targets, crossover, crossovers, describe, efficiency,
                                floor_gaps, label, linear_floors, speedups, summary_lines)
from linattn.lab.roofline import Roofline

ROOF = Roofline("Test device", "float32", peak_flops=1e11, bandwidth=1e11, matmul_size=64, copy_bytes=1 << 20)
SEQ_LENS = [100, 200, 400, 800]
BATCH, DIM = 2, 8


def linear_floor(n):
    cost = linear_cost(BATCH, n, DIM, torch.float32)
    return ROOF.floor_seconds(cost.flops, cost.bytes)


def record(name, n, seconds, flops=None, backend=None):
    return {"implementation": name, "dtype": "float32", "seq_len": n, "median_s": seconds, "iqr_s": 0.0,
            "skipped": None, "flops": flops, "backend": backend}


def payload(with_roofline=True):
    """linear at twice its floor; softmax quadratic, equal to linear at N = 200; SDPA at half the peak."""
    records = []
    for n in SEQ_LENS:
        linear = 2 * linear_floor(n)
        sdpa_flops = 4 * BATCH * n * n * DIM
        records += [record("linear", n, linear), record("softmax", n, 2 * linear_floor(200) * (n / 200) ** 2),
                    record("sdpa", n, sdpa_flops / (0.5 * ROOF.peak_flops), sdpa_flops, backend="flash (CPU)")]
    settings = {"batch": BATCH, "heads": 1, "dim": DIM, "seq_lens": SEQ_LENS, "dtypes": ["float32"],
                "rooflines": {"float32": ROOF.as_dict() if with_roofline else None}}
    env = {"hardware": "Test device", "torch": torch.__version__, "cuda": None, "device": "cpu"}
    return {"environment": env, "settings": settings, "records": records}


def test_speedups_are_ratios_of_medians():
    data = payload()
    times = {(r["implementation"], r["seq_len"]): r["median_s"] for r in data["records"]}
    found = speedups(data, "float32", "linear", "softmax")
    assert list(found) == SEQ_LENS
    for n in SEQ_LENS:
        assert found[n] == pytest.approx(times["softmax", n] / times["linear", n])


def test_linear_attention_sits_at_twice_its_floor_and_half_its_ceiling():
    data = payload()
    assert linear_floors(data, "float32") == pytest.approx({n: linear_floor(n) for n in SEQ_LENS})
    assert floor_gaps(data, "float32") == pytest.approx({n: 2.0 for n in SEQ_LENS})
    for measured, ceiling in ceilings(data, "float32", "sdpa").values():
        assert measured / ceiling == pytest.approx(0.5)


def test_the_ceiling_against_a_compute_bound_baseline_is_n_over_eta_d():
    data = payload()
    n = 800   # linear attention is compute-bound here: 4 N d^2 FLOPs take longer than its bytes
    cost = linear_cost(BATCH, n, DIM, torch.float32)
    assert cost.flops / ROOF.peak_flops > cost.bytes / ROOF.bandwidth
    eta = efficiency(data, "sdpa", "float32", n)
    assert eta == pytest.approx(0.5)
    assert ceilings(data, "float32", "sdpa")[n][1] == pytest.approx(n / (eta * DIM))


def test_crossover_where_softmax_and_linear_meet():
    found = crossovers(payload(), "float32")
    assert set(found) == {("linear", "softmax"), ("linear", "sdpa")}   # no causal records
    assert found["linear", "softmax"].status == "between"
    assert found["linear", "softmax"].seq_len == pytest.approx(200, rel=0.05)


def test_labels_and_descriptions_name_backend_and_hardware():
    data = payload()
    assert label(data, "sdpa", "float32") == "SDPA [flash (CPU)]"
    assert label(data, "linear", "float32") == "linear (linattn)"
    assert describe(data, "float32").startswith("Test device, float32, batch 2, d = 8")


def test_without_a_roofline_only_the_speedups_remain():
    data = payload(with_roofline=False)
    assert ceilings(data, "float32", "sdpa") == {} and floor_gaps(data, "float32") == {}
    lines = summary_lines(data)
    assert any("faster" in line and "at most" not in line for line in lines)
    with pytest.raises(ValueError, match="roofline"):
        efficiency(data, "sdpa", "float32", 800)


def test_summary_names_ceilings_crossovers_and_the_floor():
    text = "\n".join(summary_lines(payload()))
    assert "at most" in text and "crossover" in text and "2.00x its roofline floor" in text


def test_efficiency_of_a_point_not_measured_raises():
    with pytest.raises(ValueError, match="N = 123"):
        efficiency(payload(), "sdpa", "float32", 123)


def test_crossover_of_power_laws_is_exact():
    """t_linear = a N and t_softmax = b N^2 cross at N = a / b; log-log interpolation is exact for power laws."""
    ns = [128, 256, 512, 1024, 2048]
    found = crossover(ns, [3e-6 * n for n in ns], [1e-8 * n * n for n in ns])
    assert found.status == "between" and found.seq_len == pytest.approx(300, rel=1e-9)
    assert "300" in str(found)


def test_crossover_outside_the_range():
    assert crossover([1, 2], [1, 1], [2, 3]) == Crossover(None, "below", 1, 2)
    assert crossover([1, 2], [1, 1], [0.5, 0.9]) == Crossover(None, "above", 1, 2)
    with pytest.raises(ValueError):
        crossover([1, 2], [1], [1, 2])


def test_check_targets_compares_each_bound_in_its_direction():
    targets = {"faster": (">=", 10.0, "at least 10x faster"), "smaller": ("<=", 0.5, "at most half the memory")}
    verdicts = check_targets({"faster": 10.0, "smaller": 0.5}, targets)
    assert all(holds for holds, _ in verdicts.values())
    assert "at least 10x faster: measured 10" in verdicts["faster"][1]
    verdicts = check_targets({"faster": 9.9, "smaller": 0.51}, targets)
    assert not any(holds for holds, _ in verdicts.values())
    with pytest.raises(ValueError, match="ratios lack"):
        check_targets({"faster": 20.0}, targets)
