"""Numbers from a paper-protocol payload (`linattn.lab.paper_benchmark`, live or stored), to set beside
the paper's reading of its Figure 1: how time and memory per sample grow with N (log-log slopes),
where softmax stops and why, and linear attention against softmax at the longest N both ran.

Memory per sample is the peak of one forward+backward pass with its inputs (q, k, v and the output's
gradient) counted in, as the paper counts the peak allocated memory, divided by the batch.
"""
import math
from dataclasses import dataclass

from .memory import format_bytes
from .report import loglog_slope

METRICS = {"time": "seconds per sample", "memory": "bytes per sample"}


def _measured(payload, name, dtype):
    return sorted((r for r in payload["records"] if r["implementation"] == name and r["dtype"] == dtype
                   and not r.get("skipped")), key=lambda r: r["seq_len"])


def per_sample(payload, name, dtype, metric):
    """(seq_lens, values) of implementation `name`: "time" (median seconds / batch) or "memory"
    ((extra peak + input bytes) / batch), measured points only, by N."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    rows = _measured(payload, name, dtype)
    if metric == "time":
        return [r["seq_len"] for r in rows], [r["median_s"] / r["batch"] for r in rows]
    return [r["seq_len"] for r in rows], [(r["peak_bytes"] + r["input_bytes"]) / r["batch"] for r in rows]


@dataclass(frozen=True)
class Slopes:
    """Log-log slopes over every measured N (`all`) and over the upper half of them (`upper`: the
    longest ceil(n / 2) points, at least two), with the number of points each used."""
    all: float | None
    upper: float | None
    points: int
    upper_points: int


def slopes(payload, name, dtype, metric):
    """Slopes of `metric` per sample against N for implementation `name` (None where fewer than two points)."""
    ns, values = per_sample(payload, name, dtype, metric)
    if len(ns) < 2:
        return Slopes(None, None, len(ns), 0)
    upper = max(2, math.ceil(len(ns) / 2))
    return Slopes(loglog_slope(ns, values), loglog_slope(ns[-upper:], values[-upper:]), len(ns), upper)


@dataclass(frozen=True)
class Stop:
    """Where an implementation stopped: its longest measured N, and the next N of the protocol with the
    reason it was skipped ("memory" or "time") and what it would have needed; reason None when it ran
    every N of the protocol."""
    last: int | None
    next: int | None = None
    reason: str | None = None
    bytes_needed: float | None = None
    predicted_s: float | None = None

    def __str__(self):
        if self.last is None:
            return "no point measured"
        if self.reason is None:
            return f"ran up to N = {self.last}, the longest of the protocol"
        if self.reason == "memory" and self.bytes_needed:
            why = f"memory (it needs about {format_bytes(self.bytes_needed)})"
        elif self.reason == "time" and self.predicted_s:
            why = f"time (about {self.predicted_s:.0f} s for its fewest runs)"
        else:
            why = self.reason
        return f"stopped at N = {self.last}: N = {self.next} was skipped for {why}"


def where_stops(payload, name, dtype):
    """The Stop of implementation `name`: its longest measured N and why the next was skipped."""
    rows = [r for r in payload["records"] if r["implementation"] == name and r["dtype"] == dtype]
    measured = [r["seq_len"] for r in rows if not r.get("skipped")]
    if not measured:
        return Stop(None)
    last = max(measured)
    later = sorted((r for r in rows if r["seq_len"] > last and r.get("skipped")), key=lambda r: r["seq_len"])
    if not later:
        return Stop(last)
    nxt = later[0]
    return Stop(last, nxt["seq_len"], nxt.get("skip_reason"), nxt.get("bytes_needed"), nxt.get("predicted_s"))


@dataclass(frozen=True)
class Ratio:
    """`fast` over `slow` at the longest N both measured: time and memory per sample (below 1: `fast`
    needs less)."""
    seq_len: int
    time: float
    memory: float


def ratio_at_largest_common(payload, dtype, fast="linear", slow="softmax"):
    """The Ratio of `fast` to `slow` at the longest N where both were measured, or None."""
    found = {}
    for name in (fast, slow):
        for metric in METRICS:
            ns, values = per_sample(payload, name, dtype, metric)
            found[name, metric] = dict(zip(ns, values))
    common = found[fast, "time"].keys() & found[slow, "time"].keys()
    if not common:
        return None
    n = max(common)
    return Ratio(n, found[fast, "time"][n] / found[slow, "time"][n],
                 found[fast, "memory"][n] / found[slow, "memory"][n])


def paper_summary_lines(payload):
    """What a paper-protocol run found, a line each: slopes, where each contender stopped, the ratios."""
    s, e = payload["settings"], payload["environment"]
    lines = []
    for dtype in s["dtypes"]:
        lines.append(f"{e['hardware']}, {dtype}, batch x N = {s['tokens']}, d = {s['dim']}, forward+backward, "
                     f"torch {e['torch']}")
        for name in s["implementations"]:
            time_slopes, memory_slopes = slopes(payload, name, dtype, "time"), slopes(payload, name, dtype, "memory")
            fit = (f"slopes per sample: time {time_slopes.all:.2f}, memory {memory_slopes.all:.2f}"
                   if time_slopes.all is not None else "fewer than two points")
            lines.append(f"  {name}: {fit}; {where_stops(payload, name, dtype)}")
        ratio = ratio_at_largest_common(payload, dtype)
        if ratio:
            lines.append(f"  linear / softmax at N = {ratio.seq_len}: time {ratio.time:.3g}x, "
                         f"memory {ratio.memory:.3g}x")
    return lines
