"""Numbers from a benchmark payload (live, or loaded from a stored file): speedups, crossovers and how
close linear attention comes to what the roofline allows. Chapter 6 and `python -m linattn.lab.bench` use them.

A payload is {"environment": ..., "settings": ..., "records": [...]}, as `linattn.lab.bench` writes it.
"""
import math
from dataclasses import dataclass

from .baselines import IMPLEMENTATIONS, linear_cost
from .costs import measured_crossover
from .roofline import Roofline, parse_dtype

# (faster, slower): the comparisons the book reports
PAIRS = (("linear", "softmax"), ("linear", "sdpa"), ("linear-causal", "softmax-causal"),
         ("linear-causal", "sdpa-causal"))


def series(records, name, dtype="float32"):
    """(seq_lens, medians, iqrs) of implementation `name`, measured points only, by N."""
    rows = sorted((r["seq_len"], r["median_s"], r["iqr_s"]) for r in records
                  if r["implementation"] == name and r["dtype"] == dtype and not r.get("skipped"))
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def loglog_slope(xs, ys):
    """The least-squares slope of log y against log x: the exponent p in y ~ x^p."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need at least two (x, y) pairs of matching length, got {len(xs)} and {len(ys)}")
    if any(x <= 0 for x in xs) or any(y <= 0 for y in ys):
        raise ValueError("a log-log slope needs positive values")
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    spread = sum((x - mx) ** 2 for x in lx)
    if spread == 0:
        raise ValueError("a log-log slope needs at least two different x")
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly)) / spread


@dataclass(frozen=True)
class Crossover:
    """Where a faster-growing baseline falls behind: seq_len is None when it never does in range."""
    seq_len: float | None
    status: str          # "between" (interpolated), "below" (faster at every N), "above" (never faster)
    first: int | None = None
    last: int | None = None

    def __str__(self):
        if self.status == "below":
            return f"faster at every N measured (from N = {self.first})"
        if self.status == "above":
            return f"not faster at the longest N measured (N = {self.last})"
        return f"faster from N ≈ {self.seq_len:.0f}"


def crossover(seq_lens, times, baseline_times):
    """Where `times` start to beat `baseline_times` (`linattn.lab.costs.measured_crossover`), with the
    two cases it leaves out told apart: faster at every N measured, or not faster at the last one."""
    if not (len(seq_lens) == len(times) == len(baseline_times)) or not seq_lens:
        raise ValueError(f"need matching non-empty lists, got {len(seq_lens)}, {len(times)}, {len(baseline_times)}")
    first, last = seq_lens[0], seq_lens[-1]
    if times[-1] >= baseline_times[-1]:
        return Crossover(None, "above", first, last)
    if len(seq_lens) == 1 or all(t < b for t, b in zip(times, baseline_times)):
        return Crossover(None, "below", first, last)
    return Crossover(measured_crossover(seq_lens, baseline_times, times), "between", first, last)


def label(payload, name, dtype):
    """The implementation's label, with the SDPA backend that ran: 'SDPA [flash (CPU)]'."""
    backends = {r.get("backend") for r in payload["records"]
                if r["implementation"] == name and r["dtype"] == dtype and not r.get("skipped")}
    backends.discard(None)
    return IMPLEMENTATIONS[name].label + (f" [{', '.join(sorted(backends))}]" if backends else "")


def describe(payload, dtype):
    """Hardware, dtype, sizes and versions in one line."""
    s, e = payload["settings"], payload["environment"]
    cuda = f", CUDA {e['cuda']}" if e.get("cuda") else ""
    return f"{e['hardware']}, {dtype}, batch {s['batch']}, d = {s['dim']}, torch {e['torch']}{cuda}"


def _medians(payload, name, dtype):
    return dict(zip(*series(payload["records"], name, dtype)[:2]))


def speedups(payload, dtype, fast, slow):
    """{N: time(slow) / time(fast)} where both were measured."""
    f, s = _medians(payload, fast, dtype), _medians(payload, slow, dtype)
    return {n: s[n] / f[n] for n in sorted(f.keys() & s.keys())}


def crossovers(payload, dtype):
    """{(fast, slow): Crossover} for each pair of PAIRS measured at common N."""
    found = {}
    for fast, slow in PAIRS:
        f, s = _medians(payload, fast, dtype), _medians(payload, slow, dtype)
        ns = sorted(f.keys() & s.keys())
        if ns:
            found[(fast, slow)] = crossover(ns, [f[n] for n in ns], [s[n] for n in ns])
    return found


def roofline(payload, dtype):
    """The payload's measured Roofline for `dtype`, or None."""
    data = payload["settings"].get("rooflines", {}).get(dtype)
    return Roofline.from_dict(data) if data else None


def linear_floors(payload, dtype):
    """{N: roofline floor in seconds} of non-causal linear attention at each N of the sweep."""
    device_roof, s = roofline(payload, dtype), payload["settings"]
    if device_roof is None:
        return {}
    costs = {n: linear_cost(s["batch"] * s.get("heads", 1), n, s["dim"], parse_dtype(dtype)) for n in s["seq_lens"]}
    return {n: device_roof.floor_seconds(c.flops, c.bytes) for n, c in costs.items()}


def floor_gaps(payload, dtype):
    """{N: measured time / floor} of linear attention: 1 would be the speed of light."""
    floors = linear_floors(payload, dtype)
    return {n: t / floors[n] for n, t in _medians(payload, "linear", dtype).items() if n in floors}


def ceilings(payload, dtype, slow):
    """{N: (measured speedup, ceiling)} of linear attention over `slow`. The ceiling is time(slow) over
    linear attention's floor: no implementation of linear attention can beat `slow` by more."""
    floors, linear, other = linear_floors(payload, dtype), _medians(payload, "linear", dtype), \
        _medians(payload, slow, dtype)
    return {n: (other[n] / linear[n], other[n] / floors[n])
            for n in sorted(linear.keys() & other.keys() & floors.keys())}


def efficiency(payload, name, dtype, n):
    """The fraction of the measured peak FLOP/s that implementation `name` reached at N = n."""
    device_roof = roofline(payload, dtype)
    record = next((r for r in payload["records"] if r["implementation"] == name and r["dtype"] == dtype
                   and r["seq_len"] == n and not r.get("skipped")), None)
    if device_roof is None or record is None or not record.get("flops"):
        raise ValueError(f"no measured {name} at N = {n} ({dtype}) with a roofline in this payload")
    return record["flops"] / record["median_s"] / device_roof.peak_flops


def summary_lines(payload):
    """What a run found, a line each: speedups and ceilings at the largest N, crossovers, distance to the floor."""
    lines = []
    for dtype in payload["settings"]["dtypes"]:
        lines.append(describe(payload, dtype))
        for slow in ("softmax", "sdpa"):
            found = ceilings(payload, dtype, slow) or {n: (r, None) for n, r in
                                                      speedups(payload, dtype, "linear", slow).items()}
            if found:
                n = max(found)
                measured, ceiling = found[n]
                limit = f" (at most {ceiling:.1f}x at its floor)" if ceiling else ""
                lines.append(f"  linear vs {label(payload, slow, dtype)} at N = {n}: {measured:.1f}x faster{limit}")
        for (fast, slow), found in crossovers(payload, dtype).items():
            lines.append(f"  crossover {IMPLEMENTATIONS[fast].label} vs {label(payload, slow, dtype)}: {found}")
        gaps = floor_gaps(payload, dtype)
        if gaps:
            n = max(gaps)
            lines.append(f"  linear (linattn) at N = {n}: {gaps[n]:.2f}x its roofline floor")
    return lines


def check_targets(ratios, targets):
    """{ratio name: (holds, message)} for each target {name: (">=" or "<=", bound, meaning)}."""
    missing = set(targets) - set(ratios)
    if missing:
        raise ValueError(f"ratios lack {sorted(missing)}")
    verdicts = {}
    for name, (comparison, bound, meaning) in targets.items():
        value = ratios[name]
        holds = value >= bound if comparison == ">=" else value <= bound
        verdicts[name] = (holds, f"{meaning}: measured {value:.3g} ({comparison} {bound:.3g})")
    return verdicts
