"""The generation benchmark: its plans, batch choice, memory guard, records, ratios and command line.

Nothing here is timed against a target: the runs use tiny sizes and check structure, not speed.
"""
import dataclasses

import pytest
import torch

import linattn
from linattn.lab import generation_bench as gb
from linattn.lab.memory import BUDGET_VARIABLE, SAFETY_FRACTION
from linattn.lab.profiles import PROFILES

TINY = gb.GenerationPlan((4, 8), dim=8, heads=2, new_tokens=3, repeats=1, max_batch=4, memory_budget=16 * gb.MiB,
                         recompute_max_prompt=4, min_sample_s=1e-4)


# ---- plans -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_has_a_plan_with_its_head_size_and_a_live_plan_no_larger(name):
    stored, live = gb.plan_for(name), gb.plan_for(name, live=True)
    assert stored.dim == live.dim == PROFILES[name].dim
    assert set(live.prompt_lens) <= set(stored.prompt_lens)
    assert live.max_batch <= stored.max_batch and live.repeats <= stored.repeats
    assert gb.plan_for(PROFILES[name]) == stored


def test_the_plans_reach_the_lengths_the_issue_asks_for():
    assert max(gb.plan_for("gpu").prompt_lens) == 2 ** 14
    assert 2048 <= max(gb.plan_for("cpu").prompt_lens) <= 8192
    assert gb.plan_for("cpu").memory_budget is not None and gb.plan_for("gpu").memory_budget is None


@pytest.mark.parametrize("change, match", [
    ({"prompt_lens": ()}, "prompt_lens"), ({"prompt_lens": (64, 16)}, "increase"),
    ({"prompt_lens": (8, 8)}, "increase"),
    ({"prompt_lens": (0, 4)}, "prompt length"), ({"dim": 0}, "dim"), ({"repeats": 1.5}, "repeats"),
    ({"max_batch": True}, "max_batch"), ({"memory_budget": 0}, "memory_budget"),
    ({"min_sample_s": 0}, "min_sample_s"),
    ({"recompute_max_prompt": -1}, "recompute_max_prompt"),
])
def test_a_plan_refuses_bad_values(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **change)


# ---- the batch for throughput ----------------------------------------------------------------

def linear_bytes(b):
    return 1000 + 100 * b


def test_the_batch_is_the_largest_that_fits_the_memory_budget():
    budget = 10_000                                       # 8,000 usable: 1000 + 100 b <= 8000 -> b = 70
    batch, limited_by = gb.choose_batch(linear_bytes, memory_budget=budget, max_batch=1000)
    assert (batch, limited_by) == (70, "memory")
    assert linear_bytes(batch) <= SAFETY_FRACTION * budget < linear_bytes(batch + 1)


def test_max_batch_caps_the_batch():
    assert gb.choose_batch(linear_bytes, memory_budget=10_000, max_batch=16) == (16, "max_batch")
    assert gb.choose_batch(linear_bytes, memory_budget=10_000, max_batch=70) == (70, "max_batch")
    assert gb.choose_batch(linear_bytes, memory_budget=10_000, max_batch=71) == (70, "memory")


def test_no_batch_when_one_sequence_does_not_fit():
    assert gb.choose_batch(linear_bytes, memory_budget=1_000, max_batch=8) == (0, "memory")


@pytest.mark.parametrize("kwargs, match", [
    ({"max_batch": 0}, "max_batch"), ({"max_batch": 2.5}, "max_batch"), ({"memory_budget": -5}, "memory_budget"),
    ({"memory_budget": float("inf")}, "memory_budget"),
])
def test_choose_batch_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gb.choose_batch(linear_bytes, **{"memory_budget": 10_000, "max_batch": 8, **kwargs})


# ---- memory: the estimate bounds what a run really holds, and the guard uses it --------------

@pytest.mark.parametrize("method, batch", [("linear", 1), ("linear", 6), ("kv_cache", 1), ("kv_cache", 6),
                                           ("recompute", 1)])
@pytest.mark.parametrize("prompt_len", [3, 40])
def test_the_estimate_bounds_the_measured_peak(method, batch, prompt_len):
    plan = dataclasses.replace(TINY, new_tokens=5)
    estimate = gb.estimated_bytes(method, prompt_len, batch, plan)

    def prepare_and_generate():
        generate, _ = gb.prepare_generation(method, prompt_len, batch, plan)
        generate()

    measured = linattn.peak_bytes(prepare_and_generate)
    assert measured <= estimate <= 4 * measured + 4096, (measured, estimate)


def test_the_cache_estimate_grows_with_the_prompt_and_the_state_held_does_not():
    plan = gb.plan_for("cpu")
    cache = [gb.estimated_bytes("kv_cache", p, 64, plan) for p in (256, 1024, 4096)]
    assert cache[0] < cache[1] < cache[2] and cache[2] > 3 * cache[1]
    held = {m: [gb.prepare_generation(m, p, 2, TINY)[1] for p in (4, 8, 16)] for m in ("linear", "kv_cache")}
    assert len(set(held["linear"])) == 1 and held["linear"][0] == 2 * 2 * (8 * 8 + 8) * 4
    assert held["kv_cache"][0] < held["kv_cache"][1] < held["kv_cache"][2]


def test_a_point_that_does_not_fit_is_skipped_before_anything_is_built(monkeypatch, capsys):
    monkeypatch.setenv(BUDGET_VARIABLE, "2000")
    monkeypatch.setattr(gb, "_prepare", lambda *args: pytest.fail("built a point that does not fit"))
    record = gb.measure_throughput("kv_cache", 8, TINY, device="cpu")
    assert record["batch"] == 0 and record["step"] is None and "needs about" in record["skipped"]
    latency = gb.measure_latency(8, TINY, device="cpu")
    assert all(r["skipped"] and r["step"] is None for r in latency)
    assert "Skipping" in capsys.readouterr().out


def test_the_plan_budget_caps_the_free_memory(monkeypatch):
    monkeypatch.setenv(BUDGET_VARIABLE, str(10 ** 12))
    assert gb.memory_budget("cpu", TINY) == TINY.memory_budget
    assert gb.memory_budget("cpu", dataclasses.replace(TINY, memory_budget=None)) == 10 ** 12


# ---- what is generated -----------------------------------------------------------------------

def test_the_cached_softmax_generates_what_recomputing_generates_and_every_call_starts_from_the_prompt():
    plan = dataclasses.replace(TINY, new_tokens=6)
    cached, _ = gb.prepare_generation("kv_cache", 7, 1, plan)
    recomputed, _ = gb.prepare_generation("recompute", 7, 1, plan)
    first = cached()
    torch.testing.assert_close(first, recomputed())
    torch.testing.assert_close(cached(), first)


def test_the_linear_state_generates_what_causal_linear_attention_computes():
    plan = dataclasses.replace(TINY, new_tokens=6)
    batch, prompt_len = 8, 5
    k0, v0, tokens = gb.generation_inputs(prompt_len, batch, plan)
    repeats = batch // k0.shape[0]
    q_new, k_new, v_new = (torch.stack(x, dim=-2) for x in zip(*tokens))
    k = torch.cat([k0.expand(repeats, *k0.shape), k_new], dim=-2)
    v = torch.cat([v0.expand(repeats, *v0.shape), v_new], dim=-2)
    q = torch.cat([torch.randn(k0.expand(repeats, *k0.shape).shape), q_new], dim=-2)   # prompt queries: unused
    expected = linattn.linear_attention(q, k, v, causal=True)[..., -1, :]
    generate, _ = gb.prepare_generation("linear", prompt_len, batch, plan)
    torch.testing.assert_close(generate(), expected)
    assert k0.shape[0] == 4 and len(tokens) == plan.new_tokens and tokens[0][0].shape == (2, 4, 2, 8)


@pytest.mark.parametrize("call, match", [
    (lambda: gb.prepare_generation("flash", 8, 1, TINY), "unknown method"),
    (lambda: gb.prepare_generation("linear", 0, 1, TINY), "prompt_len"),
    (lambda: gb.estimated_bytes("kv_cache", 8, 0, TINY), "batch"),
    (lambda: gb.generation_inputs(8, 1, TINY, dtype="float8"), "dtype"),
    (lambda: gb.measure_throughput("recompute?", 8, TINY, device="cpu"), "unknown method"),
    (lambda: gb.run_generation_bench({"prompt_lens": (8,)}), "GenerationPlan"),
    (lambda: gb.measure_latency(8, {"prompt_lens": (8,)}, device="cpu"), "GenerationPlan"),
    (lambda: gb.measure_latency(0, TINY, device="cpu"), "prompt_len"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- records and ratios ----------------------------------------------------------------------

def test_a_tiny_run_records_every_point_in_one_format():
    records, settings = gb.run_generation_bench(TINY, log=lambda _: None)
    assert all(tuple(r) == gb.RECORD_KEYS for r in records)
    points = {(r["measure"], r["method"], r["prompt_len"]) for r in records}
    assert points == ({("latency", m, p) for m in ("linear", "kv_cache") for p in (4, 8)}
                      | {("latency", "recompute", 4)}
                      | {("throughput", m, p) for m in ("linear", "kv_cache") for p in (4, 8)})
    for r in records:
        assert r["skipped"] is None and r["step"]["repeats"] == TINY.repeats
        assert r["tokens_per_s"] == pytest.approx(r["batch"] / r["step"]["median_s"])
        assert (r["batch"] == 1) == (r["measure"] == "latency")
        assert (r["dim"], r["heads"], r["new_tokens"], r["dtype"]) == (8, 2, 3, "float32")
    assert settings["plan"]["prompt_lens"] == (4, 8) and settings["dtype"] == "float32"
    assert [row["prompt_len"] for row in gb.ratios(records)] == [4, 8]


def made_up(measure, method, prompt_len, seconds, batch=1):
    return {"measure": measure, "method": method, "prompt_len": prompt_len, "batch": batch, "skipped": None,
            "step": {"median_s": seconds, "iqr_s": seconds / 10}, "tokens_per_s": batch / seconds}


def test_the_ratios_are_computed_from_the_records():
    records = [
        made_up("latency", "linear", 100, 2e-5), made_up("latency", "kv_cache", 100, 3e-5),
        made_up("latency", "recompute", 100, 8e-4),
        made_up("throughput", "linear", 100, 4e-3, batch=1000), made_up("throughput", "kv_cache", 100, 5e-3, batch=50),
        made_up("latency", "linear", 800, 2e-5), made_up("latency", "kv_cache", 800, 1e-5),
        {**made_up("throughput", "kv_cache", 800, 1.0, batch=0), "step": None, "skipped": "too big"},
    ]
    first, second = gb.ratios(records)
    assert first["latency_kv_cache_over_linear"] == pytest.approx(1.5)
    assert first["latency_recompute_over_linear"] == pytest.approx(40)
    # 250,000 tokens/s against 10,000 tokens/s
    assert first["throughput_linear_over_kv_cache"] == pytest.approx(25)
    assert (first["batch_linear"], first["batch_kv_cache"]) == (1000, 50)
    assert second["latency_kv_cache_over_linear"] == pytest.approx(0.5)
    assert second["latency_recompute_over_linear"] is None and second["throughput_linear_over_kv_cache"] is None
    assert second["batch_kv_cache"] is None
    growth = gb.latency_growth(records)
    assert growth["linear"] == (100, 800, pytest.approx(1.0)) and growth["kv_cache"] == (100, 800, pytest.approx(1 / 3))
    assert "recompute" not in growth


def test_the_summary_prints_every_record_and_ratio():
    records = [made_up("latency", "linear", 100, 2e-5), made_up("latency", "kv_cache", 100, 3e-5),
               {**made_up("throughput", "kv_cache", 100, 1.0), "step": None, "skipped": "too big", "batch": 0}]
    for r in records:
        r.update(held_bytes=1024, batch_limited_by=None)
    lines = gb.summary_lines(records)
    assert len(lines) == 1 + len(records) + 1
    assert "skipped: too big" in lines[3] and "latency, KV cache / linear 1.5x" in lines[-1]


# ---- the command line ------------------------------------------------------------------------

def test_the_command_line_saves_a_results_file(tmp_path, capsys):
    out_file = tmp_path / "gen.json"
    assert gb.main(["--device", "cpu", "--profile", "ci", "--prompt-lens", "4", "8", "--max-batch", "2",
                    "--repeats", "1", "--output", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert "latency, KV cache / linear" in printed and "throughput, linear / KV cache" in printed
    stored = linattn.load_results(out_file)
    assert stored["settings"]["profile"] == "ci" and stored["settings"]["plan"]["prompt_lens"] == [4, 8]
    assert stored["environment"]["torch"] == torch.__version__
    assert {r["prompt_len"] for r in stored["records"]} == {4, 8}
    assert max(r["batch"] for r in stored["records"]) == 2
