"""Timing on all threads, CUDA synchronised, with robust statistics."""
import statistics
import time
from dataclasses import dataclass

from .device import synchronize


@dataclass(frozen=True)
class Timing:
    """Seconds per call, one entry per timed sample."""
    times: tuple

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def iqr(self):
        if len(self.times) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times, n=4, method="inclusive")
        return q3 - q1

    @property
    def mean(self):
        return statistics.fmean(self.times)

    @property
    def std(self):
        return statistics.stdev(self.times) if len(self.times) > 1 else 0.0

    def as_dict(self):
        return {"median_s": self.median, "iqr_s": self.iqr, "mean_s": self.mean, "std_s": self.std,
                "repeats": len(self.times)}

    def __str__(self):
        return (f"median {self.median * 1e3:.3g} ms (IQR {self.iqr * 1e3:.2g} ms, "
                f"mean {self.mean * 1e3:.3g} ± {self.std * 1e3:.2g} ms, {len(self.times)} runs)")


def time_call(fn, *args, repeats=10, warmup=1, min_sample_s=1e-3, **kwargs):
    """Time fn(*args, **kwargs) `repeats` times after `warmup` calls.

    Calls faster than `min_sample_s` are batched so that each sample lasts about that long,
    and each sample is reported per call. One untimed-in-the-result call first measures how long a
    call takes, so a slow function runs warmup + 1 + repeats times in all. CUDA is synchronised
    before each clock reading, so queued GPU work is counted.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    for _ in range(warmup):
        fn(*args, **kwargs)
    first = _sample(fn, args, kwargs, 1)
    number = max(1, int(min_sample_s / max(first, 1e-9)))
    return Timing(tuple(_sample(fn, args, kwargs, number) for _ in range(repeats)))


def _sample(fn, args, kwargs, number):
    """Seconds per call of `number` back-to-back calls."""
    synchronize()
    start = time.perf_counter()
    for _ in range(number):
        fn(*args, **kwargs)
    synchronize()
    return (time.perf_counter() - start) / number
