"""linattn.lab.paper_report on a made-up paper-protocol payload whose answers follow from how it was made."""
import math

import pytest
import torch

from linattn.lab.paper_report import (Ratio, Stop, paper_summary_lines, per_sample, ratio_at_largest_common,
                                      slopes, where_stops)
from linattn.lab.report import loglog_slope

TOKENS = 2 ** 16
SEQ_LENS = [2 ** e for e in range(9, 17)]
SOFTMAX_LAST = 4096                      # softmax runs up to here; N = 8192 does not fit
SOFTMAX_NEEDS = 7.5e9                    # what the skipped N = 8192 would have needed
A, M = 1e-9, 1e3                         # constants of the made-up power laws


def softmax_time(n):   # per sample: proportional to N^2
    return A * n * n


def linear_time(n):    # per sample: proportional to N
    return 50 * A * n


def causal_time(n):    # per sample: slope 1 up to N = 4096, slope 2 above (a made-up slowdown)
    return 80 * A * n if n <= 4096 else 80 * A * 4096 * (n / 4096) ** 2


def memory(name, n):   # per sample: softmax N^2, linear N
    return M * n * n / 64 if name == "softmax" else 20 * M * n


def record(name, n, *, skipped=None, reason=None, **extra):
    batch = TOKENS // n
    base = {"implementation": name, "dtype": "float32", "seq_len": n, "batch": batch, "skipped": skipped,
            "skip_reason": reason}
    if skipped:
        return {**base, **extra}
    per_sample_time = {"softmax": softmax_time, "linear": linear_time, "linear-causal": causal_time}[name](n)
    total_memory = memory(name, n) * batch
    return {**base, "median_s": per_sample_time * batch, "input_bytes": total_memory / 4,
            "peak_bytes": total_memory * 3 / 4}


def payload():
    records = []
    for n in SEQ_LENS:
        records.append(record("linear", n))
        records.append(record("linear-causal", n) if n <= 16384 else
                       record("linear-causal", n, skipped="too slow", reason="time", predicted_s=90.0))
        if n <= SOFTMAX_LAST:
            records.append(record("softmax", n))
        else:
            records.append(record("softmax", n, skipped="does not fit", reason="memory",
                                  bytes_needed=SOFTMAX_NEEDS * n / 8192))
    settings = {"protocol": "paper", "tokens": TOKENS, "dim": 64, "dtypes": ["float32"],
                "implementations": ["softmax", "linear", "linear-causal"], "seq_lens": SEQ_LENS}
    env = {"hardware": "Test device", "torch": torch.__version__, "cuda": None, "device": "cpu"}
    return {"environment": env, "settings": settings, "records": records}


def test_per_sample_divides_by_the_batch_and_counts_the_inputs():
    ns, times = per_sample(payload(), "softmax", "float32", "time")
    assert ns == [n for n in SEQ_LENS if n <= SOFTMAX_LAST]
    assert times == pytest.approx([softmax_time(n) for n in ns])
    _, bytes_ = per_sample(payload(), "linear", "float32", "memory")
    assert bytes_ == pytest.approx([memory("linear", n) for n in SEQ_LENS])
    with pytest.raises(ValueError, match="metric"):
        per_sample(payload(), "linear", "float32", "flops")


def test_slopes_of_power_laws_are_their_exponents():
    data = payload()
    for name, time_power, memory_power in (("softmax", 2, 2), ("linear", 1, 1)):
        for metric, power in (("time", time_power), ("memory", memory_power)):
            found = slopes(data, name, "float32", metric)
            assert found.all == pytest.approx(power) and found.upper == pytest.approx(power)
    softmax = slopes(data, "softmax", "float32", "time")
    assert softmax.points == 4 and softmax.upper_points == 2   # N = 512 ... 4096; the upper half 2048, 4096


def test_the_upper_half_sees_a_late_change_of_slope():
    found = slopes(payload(), "linear-causal", "float32", "time")   # N = 512 ... 16384: slope 1, then 2 from 4096
    assert found.points == 6 and found.upper_points == 3           # the upper half: 4096, 8192, 16384
    assert found.upper == pytest.approx(2)
    assert 1 < found.all < 2


def test_loglog_slope_is_exact_on_two_points_and_rejects_bad_input():
    assert loglog_slope([10, 1000], [3, 3e4]) == pytest.approx(2)
    assert loglog_slope([1, 2, 4, 8], [5] * 4) == pytest.approx(0)
    for xs, ys in (([1], [1]), ([1, 2], [1]), ([1, 2], [0, 1]), ([3, 3], [1, 2])):
        with pytest.raises(ValueError):
            loglog_slope(xs, ys)


def test_where_softmax_stops_and_why():
    stop = where_stops(payload(), "softmax", "float32")
    assert stop == Stop(SOFTMAX_LAST, 8192, "memory", SOFTMAX_NEEDS, None)
    assert "N = 4096" in str(stop) and "N = 8192" in str(stop) and "memory" in str(stop)
    slow = where_stops(payload(), "linear-causal", "float32")
    assert (slow.last, slow.next, slow.reason, slow.predicted_s) == (16384, 32768, "time", 90.0)
    assert "90 s" in str(slow)
    whole = where_stops(payload(), "linear", "float32")
    assert whole == Stop(2 ** 16) and "longest" in str(whole)
    assert where_stops(payload(), "sdpa", "float32") == Stop(None)


def test_ratio_at_the_largest_common_n():
    ratio = ratio_at_largest_common(payload(), "float32")
    n = SOFTMAX_LAST
    assert ratio == Ratio(n, pytest.approx(linear_time(n) / softmax_time(n)),
                          pytest.approx(memory("linear", n) / memory("softmax", n)))
    assert ratio.time == pytest.approx(50 / n) and ratio.memory == pytest.approx(20 * 64 / n)
    assert ratio_at_largest_common(payload(), "float32", fast="sdpa") is None


def test_summary_names_slopes_stops_and_the_ratio():
    text = "\n".join(paper_summary_lines(payload()))
    assert "slopes per sample: time 2.00, memory 2.00" in text
    assert "stopped at N = 4096" in text and f"linear / softmax at N = {SOFTMAX_LAST}" in text
    assert math.isclose(float(text.split("time ")[-1].split("x")[0]), 50 / 4096, rel_tol=1e-2)
