"""linattn.show.chapter_plots: each figure of Chapters 5 and 6 and the CPU appendix, drawn from made-up
measurements whose shape the figure must show."""
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from linattn.lab.baselines import IMPLEMENTATIONS  # noqa: E402
from linattn.lab.roofline import Roofline  # noqa: E402
from linattn.lab.timing import Timing  # noqa: E402
from linattn.show import chapter_plots  # noqa: E402

SEQ_LENS = [128, 256, 512]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def sweep():
    """masked memory grows as N^2, chunked as N; times constant, with a recurrent point missing at 512."""
    found = {}
    for n in SEQ_LENS:
        found["masked", n] = {"time": Timing((1e-3, 2e-3)), "memory": n * n}
        found["chunked", n] = {"time": Timing((1e-3,)), "memory": 10 * n}
        if n < 512:
            found["recurrent", n] = {"time": Timing((5e-3,)), "memory": 100}
    return found


def test_causal_sweep_draws_both_panels_and_returns_the_memory_slopes():
    fig, slopes = chapter_plots.causal_sweep(sweep(), title="test machine")
    assert slopes["masked"] == pytest.approx(2.0) and slopes["chunked"] == pytest.approx(1.0)
    assert slopes["recurrent"] == pytest.approx(0.0, abs=1e-12)
    ax_time, ax_mem = fig.axes
    assert ax_time.get_xscale() == "log" and ax_mem.get_yscale() == "log"
    assert any("masked (slope 2.00)" in t for t in legend_texts(ax_mem))
    assert fig._suptitle.get_text() == "test machine"
    with pytest.raises(ValueError, match="empty"):
        chapter_plots.causal_sweep({}, title="x")


def test_chunk_size_view_marks_the_chosen_size_and_describes_itself():
    costs = {16: {"time": 2e-3, "memory": 4096}, 64: {"time": 1e-3, "memory": 2048}}
    fig, alt = chapter_plots.chunk_size_view(costs, 64, seq_len=512, title="test", shown=128)
    ax_blocks, ax_time, ax_mem = fig.axes
    picture = ax_blocks.get_images()[0].get_array()
    assert picture.shape == (128, 128)
    assert picture[70, 65] == 1.0 and picture[70, 10] == 0.4 and picture[10, 70] == 0.0   # inside, before, future
    assert "C = 64" in alt and "N = 512" in alt and "2.00 KiB" in ax_mem.get_title()
    with pytest.raises(ValueError, match="chunk size 32 was not measured"):
        chapter_plots.chunk_size_view(costs, 32, seq_len=512, title="test")


def generation_record(measure, method, prompt_len, seconds, batch=1, skipped=False):
    return {"measure": measure, "method": method, "prompt_len": prompt_len, "batch": batch,
            "step": None if skipped else {"median_s": seconds}, "tokens_per_s": batch / seconds}


def test_generation_runs_draw_each_method_and_run_and_label_the_batches():
    records = [generation_record("latency", m, n, 1e-4 * n if m != "linear" else 1e-4, skipped=m == "recompute" and n > 64)
               for m in ("linear", "kv_cache", "recompute") for n in (64, 256)]
    records += [generation_record("throughput", m, n, 1e-3, batch=b)
                for m, b in (("linear", 32), ("kv_cache", 8)) for n in (64, 256)]
    fig = chapter_plots.generation_runs([("live", records), ("stored", records)], title="test")
    ax_latency, ax_throughput = fig.axes
    labels = [line.get_label() for line in ax_latency.lines]
    assert labels == [f"{chapter_plots.GENERATION_SHORT[m]}, {s}" for s in ("live", "stored")
                      for m in ("linear", "kv_cache", "recompute")]
    assert len(ax_latency.lines[2].get_xdata()) == 1                       # the skipped point is left out
    assert ax_latency.lines[3].get_linestyle() == "--"                      # the second run is dashed
    assert {t.get_text() for t in ax_throughput.texts} == {"B = 32", "B = 8"}
    with pytest.raises(ValueError):
        chapter_plots.generation_runs([], title="test")


def test_gradient_memory_draws_each_way_with_its_slope_beside_the_inputs():
    inputs = {n: 3 * n for n in SEQ_LENS}
    peaks = {"cumulative": {n: 100 * n for n in SEQ_LENS}, "sweeps": {n: 7 * n for n in SEQ_LENS},
             "one point": {128: 5}}
    fig, slopes = chapter_plots.gradient_memory(peaks, inputs, title="test")
    (ax,) = fig.axes
    assert slopes == {"cumulative": pytest.approx(1.0), "sweeps": pytest.approx(1.0)}   # one point has no slope
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert "the inputs q, k, v" in legend_texts(ax) and "sweeps (slope 1.00)" in legend_texts(ax)
    assert list(ax.lines[-1].get_ydata()) == [inputs[n] for n in SEQ_LENS]
    with pytest.raises(ValueError, match="no sequence lengths"):
        chapter_plots.gradient_memory(peaks, {}, title="test")


def test_error_by_position_breaks_the_line_where_the_output_overflowed():
    errors = {"float16": torch.tensor([1e-4, 0.0, float("inf"), 1.0]), "float32": [1e-7, 1e-7, 1e-7, 1e-7]}
    fig = chapter_plots.error_by_position(errors, title="test")
    (ax,) = fig.axes
    half = list(ax.lines[0].get_ydata())
    assert half[:2] == pytest.approx([1e-4, 1e-12]) and math.isnan(half[2]) and half[3] == 1.0
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3, 4] and ax.get_yscale() == "log"
    assert legend_texts(ax) == ["float16", "float32"]
    with pytest.raises(ValueError, match="no errors"):
        chapter_plots.error_by_position({}, title="test")


ROOF = Roofline("Test device", "float32", peak_flops=1e11, bandwidth=1e10, matmul_size=64, copy_bytes=1 << 20)


def payload(hardware="Test device", with_roofline=True):
    records = []
    for n in SEQ_LENS:
        for name, impl in IMPLEMENTATIONS.items():
            seconds = (n / 128) ** (2 if "softmax" in name or "sdpa" in name else 1) * 1e-3
            records.append({"implementation": name, "label": impl.label, "dtype": "float32", "seq_len": n,
                            "median_s": seconds, "iqr_s": seconds / 10, "skipped": None, "peak_bytes": n * 1000,
                            "memory": "estimated", "flops": 4 * n * n * 64, "bytes_moved": 16 * n * 64,
                            "backend": "flash (CPU)" if name.startswith("sdpa") else None})
    settings = {"batch": 2, "heads": 1, "dim": 64, "seq_lens": SEQ_LENS, "dtypes": ["float32"],
                "rooflines": {"float32": ROOF.as_dict()} if with_roofline else {}}
    env = {"hardware": hardware, "torch": torch.__version__, "cuda": None, "device": "cpu"}
    return {"environment": env, "settings": settings, "records": records}


def test_sweep_times_draws_a_row_per_payload_split_by_causality():
    fig = chapter_plots.sweep_times([("live", payload(), "float32"), ("stored", payload("Other"), "float32")])
    assert len(fig.axes) == 4
    causal = sum(impl.causal for impl in IMPLEMENTATIONS.values())
    assert len(fig.axes[0].get_legend().get_texts()) == len(IMPLEMENTATIONS) - causal
    assert len(fig.axes[1].get_legend().get_texts()) == causal
    assert any("SDPA [flash (CPU)]" in t for t in legend_texts(fig.axes[0]))
    with pytest.raises(ValueError):
        chapter_plots.sweep_times([])


def test_memory_scaling_labels_what_kind_of_memory_it_shows():
    fig = chapter_plots.memory_scaling(payload())
    assert fig.axes[0].get_ylabel() == "bytes (estimated)"
    assert len(fig.axes[0].get_legend().get_texts()) == len(IMPLEMENTATIONS)
    with pytest.raises(ValueError, match="no measured float16"):
        chapter_plots.memory_scaling(payload(), "float16")


def test_roofline_rows_return_linear_attention_against_its_floor_per_row():
    fig, gaps = chapter_plots.roofline_rows([("live", payload(), "float32"),
                                             ("stored", payload(with_roofline=False), "float32")])
    assert len(fig.axes) == 4 and set(gaps[0]) == set(SEQ_LENS) and gaps[1] == {}
    assert fig.axes[2].get_title() == "no roofline measured"
    with pytest.raises(ValueError):
        chapter_plots.roofline_rows([])
    ridge_line = fig.axes[0].lines[0]
    assert max(ridge_line.get_ydata()) == pytest.approx(ROOF.peak_flops)


def test_stored_bars_show_each_machine_and_describe_themselves():
    fig, alt = chapter_plots.stored_bars([payload("A"), payload("B")], 256)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["A", "B"]
    assert len(fig.axes[0].patches) == 2 * len(IMPLEMENTATIONS)
    assert "N = 256" in alt and "A, B" in alt
    with pytest.raises(ValueError):
        chapter_plots.stored_bars([], 256)


def test_live_bars_name_the_backend_and_skip_nothing_measured():
    records = [r for r in payload()["records"] if r["seq_len"] == 128]
    fig, alt = chapter_plots.live_bars(records, title="live test")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "SDPA [flash (CPU)]" in labels and "live test" in alt
    assert chapter_plots.live_bars([{**r, "skipped": "too big"} for r in records], title="x") is None


def paper_payload(hardware="Test device"):
    """The paper's protocol at batch x N = 2048: softmax quadratic per sample and stopped after 256, linear
    linear per sample; memory = (peak + inputs) / batch."""
    records = []
    for n in SEQ_LENS:
        batch = 2048 // n
        for name, power in (("softmax", 2), ("linear", 1)):
            ran = name == "linear" or n <= 256
            records.append({"implementation": name, "dtype": "float32", "seq_len": n, "batch": batch,
                            "median_s": batch * 1e-6 * n ** power if ran else None, "backend": None,
                            "peak_bytes": batch * n ** power - batch * n if ran else None, "input_bytes": batch * n,
                            "skipped": None if ran else "over the time budget", "skip_reason": None if ran else "time"})
    settings = {"tokens": 2048, "dim": 64, "seq_lens": SEQ_LENS, "dtypes": ["float32"], "time_budget_s": 30.0,
                "implementations": ["softmax", "linear"]}
    return {"environment": {"hardware": hardware, "torch": "2.x"}, "settings": settings, "records": records}


def test_paper_rows_draw_time_and_memory_per_sample_with_the_paper_slopes():
    fig = chapter_plots.paper_rows([("live", paper_payload(), "float32"), ("stored", paper_payload("B"), "float32")])
    assert len(fig.axes) == 4
    time_ax, memory_ax = fig.axes[:2]
    assert time_ax.get_ylabel() == "seconds per sample" and memory_ax.get_ylabel() == "peak bytes per sample"
    for ax in (time_ax, memory_ax):   # softmax grows like N^2 per sample, linear like N
        assert legend_texts(ax) == ["naive softmax (slope 2.00)", "linear (linattn) (slope 1.00)"]
    assert "B, torch 2.x\nfloat32, forward+backward, batch x N = 2,048, d = 64, time budget 30 s" in fig.axes[2].texts[0].get_text()
    alone = paper_payload()
    alone["records"] = [r for r in alone["records"] if r["implementation"] == "linear" or r["seq_len"] == 128]
    assert "naive softmax (one point)" in legend_texts(chapter_plots.paper_rows([("x", alone, "float32")]).axes[0])
    with pytest.raises(ValueError):
        chapter_plots.paper_rows([])


def test_step_bars_put_a_floor_tick_beside_each_bar():
    fig = chapter_plots.step_bars({"a": 2e-3, "b": 1e-3}, {"a": 1e-3, "b": 1e-3}, title="t")
    ax = fig.axes[0]
    assert [p.get_width() for p in ax.patches] == [2e-3, 1e-3]
    assert len(ax.collections[0].get_offsets()) == 2
    with pytest.raises(ValueError, match="same steps"):
        chapter_plots.step_bars({"a": 1.0}, {"b": 1.0}, title="t")


def test_before_after_writes_the_ratio_beside_the_tuned_bar():
    fig = chapter_plots.before_after({"phi": (("elu", 4e-3), ("exp2", 1e-3))}, title="t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert " exp2: 4.0x" in texts and " elu" in texts
    with pytest.raises(ValueError, match="positive"):
        chapter_plots.before_after({"phi": (("elu", 0.0), ("exp2", 1e-3))}, title="t")
    with pytest.raises(ValueError):
        chapter_plots.before_after({}, title="t")


def gradient_bench_payload():
    timings = {name: {"median_s": seconds} for name, seconds in (
        ("forward", 0.030), ("function_forward", 0.020), ("function_forward_backward", 0.064),
        ("autograd_forward_backward", 0.094))}
    record = {"sizes": {"batch": 8, "seq_len": 4096, "dim": 64}, "dtype": "float32", "threads": 2, "timings": timings,
              "inputs_bytes": 100, "peak_bytes": {"function_forward_backward": 240, "autograd_forward_backward": 470},
              "ratios": {"function_forward_backward_over_forward": 0.064 / 0.030,
                         "function_forward_backward_over_function_forward": 0.064 / 0.020}}
    return {"date": "2026-01-02T03:04:05", "environment": {"hardware": "Test CPU", "torch": "2.x"},
            "records": [record]}


def test_gradient_bench_lines_name_each_forward_and_both_ratios():
    lines, ratios = chapter_plots.gradient_bench_lines(gradient_bench_payload())
    text = "\n".join(lines)
    assert lines[0].startswith("stored 2026-01-02: Test CPU, 2 threads") and "N = 4096" in lines[0]
    assert "linear_attention(causal=True), no gradients" in text and "gradients on (the Function's own)" in text
    assert "extra peak 2.40x the inputs" in text and "extra peak 4.70x the inputs" in text
    assert lines[-2].endswith("2.13x") and "at inference" in lines[-2]
    assert lines[-1].endswith("3.20x") and "own forward" in lines[-1]
    assert ratios["function_forward_backward_over_function_forward"] == pytest.approx(3.2)
    broken = gradient_bench_payload()
    del broken["records"][0]["ratios"]["function_forward_backward_over_function_forward"]
    with pytest.raises(ValueError, match="ratios lack"):
        chapter_plots.gradient_bench_lines(broken)


def test_sweep_listing_counts_the_live_points_and_names_each_stored_file(tmp_path):
    live = payload()
    live["records"][0] = {**live["records"][0], "skipped": "too big"}
    for i, r in enumerate(live["records"]):
        r["repeats"] = 3 + i % 5
    live["settings"]["time_budget_s"] = 2.0
    stored = {**payload("Stored CPU"), "date": "2026-01-02T00:00:00"}
    lines = chapter_plots.sweep_listing(live, [(tmp_path / "bench_cpu.json", stored)])
    assert lines[0] == (f"live: {len(live['records']) - 1} points measured, 1 skipped, on Test device; "
                        "time budget 2 s per point: 3 to 7 timed runs each")
    assert lines[1].startswith("stored bench_cpu.json: Stored CPU, float32") and lines[1].endswith("N = 128..512, 2026-01-02")
    assert lines[2].startswith("No GPU results are stored yet")
    stored["environment"]["device"] = "cuda"
    assert len(chapter_plots.sweep_listing(live, [(tmp_path / "bench_cuda.json", stored)])) == 2


def test_ceiling_lines_set_the_measured_speedup_beside_its_ceiling():
    lines = chapter_plots.ceiling_lines(payload(), "float32")
    assert len(lines) == 6 and lines[0].startswith("  vs naive softmax at N = 512")
    assert "measured 4.0x, ceiling" in lines[1]
    assert lines[3].startswith("  vs SDPA [flash (CPU)] at N = 512")
    assert chapter_plots.ceiling_lines(payload(with_roofline=False), "float32") == []
