import time

import pytest

from linattn.lab.timing import Timing, time_call


def test_statistics_of_known_samples():
    t = Timing((1.0, 2.0, 3.0, 4.0, 100.0))
    assert t.median == 3.0
    assert t.iqr == 2.0           # quartiles 2 and 4 (inclusive method)
    assert t.mean == 22.0
    assert round(t.std, 6) == round(((21 ** 2 + 20 ** 2 + 19 ** 2 + 18 ** 2 + 78 ** 2) / 4) ** 0.5, 6)
    assert set(t.as_dict()) == {"median_s", "iqr_s", "mean_s", "std_s", "repeats"}


def test_single_sample_has_no_spread():
    t = Timing((0.5,))
    assert t.iqr == 0.0 and t.std == 0.0


def test_time_call_measures_a_sleep():
    t = time_call(time.sleep, 0.005, repeats=3, warmup=0)
    assert len(t.times) == 3
    assert 0.004 < t.median < 0.05


def test_fast_calls_are_batched_and_reported_per_call():
    calls = []
    t = time_call(calls.append, 1, repeats=4, warmup=0, min_sample_s=1e-3)
    assert len(calls) > 4 * 2          # several calls per sample
    assert t.median < 1e-3


def test_arguments_and_keywords_are_passed():
    seen = []
    time_call(lambda a, b=0: seen.append((a, b)), 1, b=2, repeats=1, warmup=0)
    assert seen and all(s == (1, 2) for s in seen)


@pytest.mark.parametrize("repeats", [0, -1, 1.5])
def test_bad_repeats(repeats):
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=repeats)


def test_slow_calls_run_once_per_sample():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.002)

    time_call(slow, repeats=5, warmup=2)
    assert len(calls) == 2 + 1 + 5     # warm-up, one call to size the samples, one per sample


def test_cuda_work_is_waited_for(monkeypatch):
    import linattn.lab.timing as timing
    synced = []
    monkeypatch.setattr(timing, "synchronize", lambda: synced.append(1))
    time_call(lambda: time.sleep(0.002), repeats=3, warmup=0)
    assert len(synced) == 2 * (1 + 3)  # before and after every sample
