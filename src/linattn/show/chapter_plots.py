"""The figures of Chapters 5 and 6 and the CPU appendix, drawn from what their cells measured, and the
longer printouts of stored results.

Each figure function takes measurements (the dicts of linattn.lab.causal_benchmark, a benchmark payload
of linattn.lab.bench, or plain {name: seconds}) and returns a matplotlib Figure; those shown inside a
slider return (Figure, alt text). Each *_lines function returns the lines a cell prints. The chapters
keep the measuring in view and the drawing and formatting here.

Chapter 5   causal_sweep, chunk_size_view, gradient_memory, gradient_bench_lines, generation_runs,
            error_by_position
Chapter 6   sweep_listing, sweep_times, memory_scaling, roofline_rows, stored_bars, live_bars, paper_rows,
            ceiling_lines
Appendix    step_bars, before_after
"""
import math

import matplotlib.pyplot as plt

from ..lab import paper_report, report
from ..lab.baselines import IMPLEMENTATIONS
from ..lab.memory import format_bytes
from .plots import PALETTE, plot_scaling


def _require(condition, message):
    if not condition:
        raise ValueError(message)


# ---- Chapter 5 -------------------------------------------------------------------------------------

def causal_sweep(sweep, *, title):
    """Time (left) and extra peak memory (right) of each causal algorithm against N, log-log.

    `sweep` is {(algorithm, N): {"time": Timing, "memory": bytes}}; returns (fig, {algorithm: memory slope})
    for every algorithm measured at two or more N.
    """
    names = list(dict.fromkeys(name for name, _ in sweep))
    _require(names, "the sweep is empty")
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 3.8))
    slopes = {}
    for name in names:
        ns = sorted(n for other, n in sweep if other == name)
        if len(ns) < 2:
            continue
        points = [sweep[name, n] for n in ns]
        plot_scaling(ax_time, ns, [p["time"].median for p in points], label=name,
                     yerr=[p["time"].iqr / 2 for p in points])
        slopes[name] = plot_scaling(ax_mem, ns, [p["memory"] for p in points], label=name)
    ax_time.set(xlabel="sequence length N", ylabel="median time (s)", title="time")
    ax_mem.set(xlabel="sequence length N", ylabel="bytes", title="extra peak memory (measured)")
    for ax in (ax_time, ax_mem):
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig, slopes


def chunk_size_view(costs, chunk_size, *, seq_len, title, shown=256):
    """Which pairs (i, j) go through a masked C x C block (dark) and which through a chunk state (light),
    for the first `shown` tokens; then time and memory against the chunk size, C marked.

    `costs` is {C: {"time": seconds, "memory": bytes}}, as linattn.lab.causal_benchmark.chunk_size_costs
    returns it. Returns (fig, alt).
    """
    _require(chunk_size in costs, f"chunk size {chunk_size} was not measured (measured: {sorted(costs)})")
    sizes = sorted(costs)
    pos = list(range(shown))
    picture = [[0.0 if j > i else (1.0 if i // chunk_size == j // chunk_size else 0.4) for j in pos] for i in pos]
    fig, (ax_blocks, ax_time, ax_mem) = plt.subplots(1, 3, figsize=(11, 3.4))
    ax_blocks.imshow(picture, cmap="Greys", vmin=0, vmax=1)
    ax_blocks.set(title=f"C = {chunk_size}: dark inside chunks", xlabel="key position j", ylabel="query position i")
    for ax, key, label in ((ax_time, "time", "median time (s)"), (ax_mem, "memory", "extra peak bytes")):
        ax.plot(sizes, [costs[c][key] for c in sizes], "o-", color=PALETTE[0])
        ax.plot([chunk_size], [costs[chunk_size][key]], "o", markersize=12, color=PALETTE[3], label=f"C = {chunk_size}")
        ax.set(xscale="log", yscale="log", xlabel="chunk size C", ylabel=label)
        ax.legend(fontsize=8)
    ax_time.set_title(f"time, N = {seq_len}")
    ax_mem.set_title(f"memory: {format_bytes(costs[chunk_size]['memory'])}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    alt = (f"Three panels for chunk size C = {chunk_size}: the causal mask of {shown} positions with the blocks "
           f"inside chunks shaded darker, then the median time and the extra peak memory of the chunked "
           f"algorithm against the chunk size at N = {seq_len}, with C = {chunk_size} highlighted.")
    return fig, alt


GENERATION_SHORT = {"linear": "(a) linear state", "kv_cache": "(b) KV cache", "recompute": "(c) recompute"}


def _generation_panels(ax_latency, ax_throughput, records, *, style, source):
    done = [r for r in records if r["step"]]
    for color, method in zip(PALETTE, GENERATION_SHORT):
        for ax, measure, value in ((ax_latency, "latency", lambda r: r["step"]["median_s"]),
                                   (ax_throughput, "throughput", lambda r: r["tokens_per_s"])):
            points = sorted((r["prompt_len"], value(r), r["batch"]) for r in done
                            if r["method"] == method and r["measure"] == measure)
            if points:
                lens, values, _ = zip(*points)
                ax.plot(lens, values, style, color=color, label=f"{GENERATION_SHORT[method]}, {source}")
            for n0, y, b in points if measure == "throughput" else []:
                ax.annotate(f"B = {b}", (n0, y), textcoords="offset points", xytext=(3, 4), fontsize=7, color=color)


def generation_runs(runs, *, title):
    """Batch-1 time per token (left) and throughput at the largest batch, each point labelled with its
    batch B (right), against the prompt length N_0, one line per method and run.

    `runs` is [(source, records)] in the format of linattn.lab.generation_bench; the first run is drawn
    solid, the others dashed.
    """
    _require(runs, "no generation runs to plot")
    fig, (ax_latency, ax_throughput) = plt.subplots(1, 2, figsize=(11, 4.4))
    for i, (source, records) in enumerate(runs):
        _generation_panels(ax_latency, ax_throughput, records, style="o-" if i == 0 else "s--", source=source)
    ax_latency.set(xscale="log", yscale="log", xlabel="prompt length $N_0$", ylabel="seconds per token",
                   title="latency at batch 1")
    ax_throughput.set(xscale="log", yscale="log", xlabel="prompt length $N_0$", ylabel="tokens per second",
                      title="throughput at the largest batch B that fits")
    handles, labels = ax_latency.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def gradient_memory(peaks, inputs, *, title):
    """Extra peak bytes of one forward and one backward pass against N, log-log, one line per way of
    computing the gradient (its fitted slope in the legend), and the inputs' own bytes dashed.

    `peaks` is {way: {N: bytes}}, `inputs` is {N: bytes}. Returns (fig, {way: slope}) for every way
    measured at two or more N.
    """
    _require(inputs, "no sequence lengths to plot")
    fig, ax = plt.subplots(figsize=(7, 4))
    slopes = {}
    for name, by_len in peaks.items():
        lens = sorted(by_len)
        if len(lens) >= 2:
            slopes[name] = plot_scaling(ax, lens, [by_len[n] for n in lens], label=name)
    lens = sorted(inputs)
    ax.plot(lens, [inputs[n] for n in lens], "k--", linewidth=1, label="the inputs q, k, v")
    ax.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel="extra peak memory (bytes)", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, slopes


def gradient_bench_lines(payload):
    """The stored causal-gradient benchmark (benchmarks/causal_grad_bench.py) as lines to print: its setting,
    the median time of each call, and forward + backward through eqs. 13-15 over each of the two forwards
    it was timed against, each named: the forward a reader runs at inference (`linear_attention(causal=True)`
    without gradients) and the Function's own forward with gradients on.

    Returns (lines, ratios), ratios being the record's stored {name: ratio}.
    """
    _require(payload.get("records"), "the payload holds no benchmark record")
    record, env = payload["records"][0], payload["environment"]
    sizes, ratios = record["sizes"], record["ratios"]
    wanted = ("function_forward_backward_over_forward", "function_forward_backward_over_function_forward")
    _require(all(key in ratios for key in wanted), f"the record's ratios lack one of {wanted}")
    seconds = {name: timing["median_s"] for name, timing in record["timings"].items()}
    over_inputs = {name: peak / record["inputs_bytes"] for name, peak in record["peak_bytes"].items()}
    lines = [f"stored {payload['date'][:10]}: {env['hardware']}, {record['threads']} threads, torch {env['torch']}, "
             f"{record['dtype']}, B = {sizes['batch']}, N = {sizes['seq_len']}, d = {sizes['dim']}; median times"]
    for name, what in (("forward", "forward at inference: linear_attention(causal=True), no gradients"),
                       ("function_forward", "forward of eqs. 13-15, gradients on (the Function's own)"),
                       ("function_forward_backward", "forward + backward, eqs. 13-15"),
                       ("autograd_forward_backward", "forward + backward, autograd through the chunked form")):
        peak = f"; extra peak {over_inputs[name]:.2f}x the inputs" if name in over_inputs else ""
        lines.append(f"  {what:66s} {seconds[name] * 1e3:7.1f} ms{peak}")
    lines += ["forward + backward through eqs. 13-15",
              f"  over the forward at inference (no gradients):       {ratios[wanted[0]]:.2f}x",
              f"  over the Function's own forward (gradients on):     {ratios[wanted[1]]:.2f}x"]
    return lines, ratios


def error_by_position(errors, *, title):
    """Relative error at each position, log scale, one line per way of keeping the state.

    `errors` is {name: errors by position} (a 1-D tensor or a list); a non-finite error (an output that
    overflowed) leaves a gap in its line, and an error of exactly 0 is drawn at 1e-12.
    """
    _require(errors, "no errors to plot")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, err in errors.items():
        values = [float(e) for e in err]
        ax.plot(range(1, len(values) + 1), [max(e, 1e-12) if math.isfinite(e) else math.nan for e in values],
                label=name, linewidth=1)
    ax.set(yscale="log", xlabel="position t", ylabel="relative error", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---- Chapter 6 -------------------------------------------------------------------------------------

def sweep_listing(live, found):
    """What the live sweep measured and which stored sweeps lie beside it, a line each.

    `live` is a payload of linattn.lab.bench.run_benchmark, `found` the [(path, payload)] of find_results.
    """
    records = live["records"]
    measured = [r for r in records if not r["skipped"]]
    budget = live["settings"].get("time_budget_s")
    runs = sorted(r["repeats"] for r in measured)
    spread = f"{runs[0]} to {runs[-1]} timed runs each" if runs else "no timed runs"
    per_point = f"{budget:g} s" if budget else "none"
    lines = [f"live: {len(measured)} points measured, {len(records) - len(measured)} skipped, on "
             f"{live['environment']['hardware']}; time budget {per_point} per point: {spread}"]
    for path, payload in found:
        lens = payload["settings"]["seq_lens"]
        lines.append(f"stored {path.name}: {report.describe(payload, 'float32')}, N = {min(lens)}..{max(lens)}, "
                     f"{payload['date'][:10]}")
    if not any(payload["environment"]["device"] == "cuda" for _, payload in found):
        lines.append("No GPU results are stored yet: run the command above on a GPU and drop the file into book/data/.")
    return lines


def _times_panel(ax, payload, dtype, causal):
    for name, impl in IMPLEMENTATIONS.items():
        ns, medians, iqrs = report.series(payload["records"], name, dtype)
        if impl.causal == causal and len(ns) >= 2:
            plot_scaling(ax, ns, medians, yerr=[i / 2 for i in iqrs], label=report.label(payload, name, dtype))
    ax.set(xlabel="sequence length N", ylabel="median time (s)", title="causal" if causal else "non-causal")
    ax.legend(fontsize=7)


def sweep_times(rows):
    """Median time against N, non-causal (left) and causal (right), one row per (caption, payload, dtype)."""
    _require(rows, "no payloads to plot")
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 3.8 * len(rows)), squeeze=False)
    for (ax_left, ax_right), (caption, payload, dtype) in zip(axes, rows):
        for ax, causal in ((ax_left, False), (ax_right, True)):
            _times_panel(ax, payload, dtype, causal)
        ax_left.annotate(f"{caption}: {report.describe(payload, dtype)}", (0, 1.14), xycoords="axes fraction",
                         fontsize=8)
    fig.tight_layout()
    return fig


def memory_scaling(payload, dtype="float32"):
    """Peak memory beyond the inputs against N, one line per implementation (its fitted slope in the legend)."""
    measured = [r for r in payload["records"] if not r.get("skipped") and r["dtype"] == dtype]
    _require(measured, f"no measured {dtype} points in the payload")
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in IMPLEMENTATIONS:
        rows = sorted((r["seq_len"], r["peak_bytes"]) for r in measured if r["implementation"] == name)
        if len(rows) >= 2:
            plot_scaling(ax, [n for n, _ in rows], [b for _, b in rows], label=report.label(payload, name, dtype))
    kind = " / ".join(sorted({r["memory"] for r in measured}))
    ax.set(xlabel="sequence length N", ylabel=f"bytes ({kind})", title=report.describe(payload, dtype))
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _roofline_panels(ax_roof, ax_floor, payload, dtype):
    """The device's roofline with each non-causal implementation at its largest N (left); linear
    attention's time against its floor (right). Returns {N: time / floor} ({} without a roofline)."""
    device_roof = report.roofline(payload, dtype)
    if device_roof is None:
        ax_roof.set_title("no roofline measured")
        return {}
    points = [r for r in payload["records"] if r["dtype"] == dtype and not r.get("skipped") and r.get("flops")]
    intensities = [r["flops"] / r["bytes_moved"] for r in points] + [device_roof.ridge_intensity]
    low, high = math.log10(min(intensities) / 4), math.log10(max(intensities) * 4)
    xs = [10 ** (e / 20) for e in range(math.floor(20 * low), math.ceil(20 * high) + 1)]
    ax_roof.loglog(xs, [device_roof.attainable_flops(x) for x in xs], color="black", label="roofline")
    for i, name in enumerate(n for n, impl in IMPLEMENTATIONS.items() if not impl.causal):
        mine = [r for r in points if r["implementation"] == name]
        if mine:
            r = max(mine, key=lambda r: r["seq_len"])
            ax_roof.loglog(r["flops"] / r["bytes_moved"], r["flops"] / r["median_s"], "os^D"[i % 4], ms=8,
                           color=PALETTE[i], label=f"{report.label(payload, name, dtype)}, N = {r['seq_len']}")
    ax_roof.set(xlabel="arithmetic intensity (FLOP / byte)", ylabel="FLOP/s")
    ax_roof.legend(fontsize=7)
    floors = report.linear_floors(payload, dtype)
    ns, medians, _ = report.series(payload["records"], "linear", dtype)
    ax_floor.loglog(ns, medians, "o-", color=PALETTE[2], label="linear (linattn), measured")
    ax_floor.loglog(sorted(floors), [floors[n] for n in sorted(floors)], "--", color="black", label="roofline floor")
    ax_floor.set(xlabel="sequence length N", ylabel="seconds")
    ax_floor.legend(fontsize=7)
    return report.floor_gaps(payload, dtype)


def roofline_rows(rows):
    """One row per (caption, payload, dtype): its roofline and linear attention against its floor.
    Returns (fig, [{N: time / floor} per row])."""
    _require(rows, "no payloads to plot")
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 4 * len(rows)), squeeze=False)
    gaps = []
    for (ax_roof, ax_floor), (caption, payload, dtype) in zip(axes, rows):
        gaps.append(_roofline_panels(ax_roof, ax_floor, payload, dtype))
        ax_roof.annotate(f"{caption}: {report.describe(payload, dtype)}", (0, 1.05), xycoords="axes fraction",
                         fontsize=8)
    fig.tight_layout()
    return fig, gaps


def stored_bars(payloads, seq_len, dtype="float32"):
    """Every payload's median time per implementation at one N, one bar colour per machine. (fig, alt)."""
    _require(payloads, "no payloads to plot")
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = list(IMPLEMENTATIONS)
    width = 0.8 / len(payloads)
    for i, payload in enumerate(payloads):
        times = {r["implementation"]: r["median_s"] for r in payload["records"]
                 if r["seq_len"] == seq_len and r["dtype"] == dtype and not r.get("skipped")}
        xs = [j + i * width for j, name in enumerate(names) if name in times]
        ax.bar(xs, [times[name] for name in names if name in times], width=width,
               label=payload["environment"]["hardware"], color=PALETTE[i % len(PALETTE)])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], [IMPLEMENTATIONS[m].label for m in names],
                  rotation=25, ha="right", fontsize=7)
    ax.set(yscale="log", ylabel="median time (s)", title=f"stored results at N = {seq_len}, {dtype}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    machines = ", ".join(p["environment"]["hardware"] for p in payloads)
    alt = (f"Bar chart on a log scale of the stored median time of every implementation at N = {seq_len} in "
           f"{dtype}, one bar colour per machine ({machines}).")
    return fig, alt


def live_bars(records, *, title):
    """Median time per measured implementation (backend named), IQR as error bars. (fig, alt), or None
    when every record was skipped."""
    done = [r for r in records if not r.get("skipped")]
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(done)))
    ax.barh([r["label"] + (f" [{r['backend']}]" if r.get("backend") else "") for r in done],
            [r["median_s"] for r in done], xerr=[r["iqr_s"] / 2 for r in done], color=PALETTE[0])
    ax.set(xscale="log", xlabel="median time (s)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig, f"Horizontal bar chart of the live median time per implementation: {title}."


def _paper_title(caption, payload, dtype):
    e, s = payload["environment"], payload["settings"]
    budget = f"time budget {s['time_budget_s']:g} s per point" if s.get("time_budget_s") else "no time budget"
    return (f"{caption}: {e['hardware']}, torch {e['torch']}\n{dtype}, forward+backward, "
            f"batch x N = {s['tokens']:,}, d = {s['dim']}, {budget}")


def paper_rows(rows):
    """The paper's protocol the paper's way, one row per (caption, payload, dtype) of
    linattn.lab.paper_benchmark: time (left) and peak memory (right) per sample against N on log-log
    axes, a line per contender with its fitted slope (a lone point where only one N ran)."""
    _require(rows, "no payloads to plot")
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 3.8 * len(rows)), squeeze=False)
    for (ax_time, ax_memory), (caption, payload, dtype) in zip(axes, rows):
        for i, name in enumerate(payload["settings"]["implementations"]):
            style = {"color": PALETTE[i % len(PALETTE)], "marker": "os^D"[i % 4]}
            for ax, metric in ((ax_time, "time"), (ax_memory, "memory")):
                ns, values = paper_report.per_sample(payload, name, dtype, metric)
                label = report.label(payload, name, dtype)
                if len(ns) >= 2:
                    plot_scaling(ax, ns, values, label=label, **style)
                elif ns:
                    ax.loglog(ns, values, linestyle="none", label=f"{label} (one point)", **style)
        ax_time.set(xlabel="sequence length N", ylabel="seconds per sample", title="time per sample")
        ax_memory.set(xlabel="sequence length N", ylabel="peak bytes per sample", title="peak memory per sample")
        ax_time.annotate(_paper_title(caption, payload, dtype), (0, 1.13), xycoords="axes fraction", fontsize=8)
        for ax in (ax_time, ax_memory):
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ceiling_lines(payload, dtype, slows=("softmax", "sdpa")):
    """Linear attention's measured speedup over each slower method at the largest N both ran, beside its
    ceiling (linattn.lab.report.ceilings) and what 100x would take, a few lines per method."""
    lines = []
    for slow in slows:
        found = report.ceilings(payload, dtype, slow)
        if not found:
            continue
        n = max(found)
        measured, ceiling = found[n]
        eta = report.efficiency(payload, slow, dtype, n)
        lines += [f"  vs {report.label(payload, slow, dtype)} at N = {n} ({eta:.0%} of the peak):",
                  f"    measured {measured:.1f}x, ceiling {ceiling:.1f}x ({measured / ceiling:.0%} of it)"]
        if ceiling >= 100:
            lines.append(f"    100x needs linear attention within {ceiling / 100:.2f}x of its floor")
        else:
            lines.append(f"    100x is out of reach at N = {n} for any linear attention here")
    return lines


# ---- the CPU appendix ------------------------------------------------------------------------------

def step_bars(times, floors, *, title):
    """Each step's measured time (bars) against its roofline floor (black ticks), log scale."""
    _require(times and set(times) == set(floors), "times and floors must name the same steps")
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    names = list(times)
    ax.barh(names, [times[n] for n in names], color=PALETTE[0], label="measured (median)")
    ax.scatter([floors[n] for n in names], names, marker="|", s=300, color="black", label="roofline floor")
    return _finish_time_bars(fig, ax, xlabel="seconds", title=title)


def before_after(pairs, *, title):
    """Pairs of bars, the plain way against the tuned one, for each step; the ratio beside each pair.

    `pairs` is {step: ((plain label, seconds), (tuned label, seconds))}.
    """
    _require(pairs, "no pairs to plot")
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.75 * len(pairs)))
    for row, (step, ((plain, slow), (tuned, fast))) in enumerate(pairs.items()):
        _require(slow > 0 and fast > 0, f"{step}: times must be positive")
        ax.barh(row - 0.2, slow, height=0.38, color=PALETTE[1], label="plain" if row == 0 else None)
        ax.barh(row + 0.2, fast, height=0.38, color=PALETTE[0], label="tuned" if row == 0 else None)
        ax.annotate(f" {plain}", (slow, row - 0.2), va="center", fontsize=7)
        ax.annotate(f" {tuned}: {slow / fast:.1f}x", (fast, row + 0.2), va="center", fontsize=7)
    ax.set_yticks(range(len(pairs)), list(pairs))
    return _finish_time_bars(fig, ax, xlabel="median time (s)", title=title)


def _finish_time_bars(fig, ax, *, xlabel, title):
    """Horizontal time bars: log time axis, first step on top, small title, legend bottom right."""
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set(xlabel=xlabel, title=title)
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
