"""Chapter run times (book/_ext/runtimes.py) and the T4 estimate (book/_ext/runtime_model.py)."""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import claims  # noqa: E402
import runtime_model  # noqa: E402
import runtimes  # noqa: E402
from linattn.lab.baselines import linear_cost, softmax_cost  # noqa: E402
from linattn.lab.profiles import PROFILES  # noqa: E402
from linattn.lab.results import load_results  # noqa: E402

_, CLAIMS = claims.load_registry(ROOT / "book" / "data" / "claims.yml")
T4 = runtime_model.t4_from_claims(CLAIMS)


# ---- the model ---------------------------------------------------------------------------------------

def test_the_t4_comes_from_the_registered_datasheet_numbers():
    assert T4.bandwidth == CLAIMS["t4-bandwidth"]["number"]
    assert T4.peak_flops == {"float32": CLAIMS["t4-fp32"]["number"], "float16": CLAIMS["t4-fp16"]["number"]}


def test_a_point_counts_its_calls_and_its_samples_at_least_the_minimum_sample():
    slow = runtime_model.Point(0.05, calls=3, samples=100)
    assert slow.seconds == pytest.approx(3 * 0.05 + 100 * 0.05)
    fast = runtime_model.Point(1e-4, calls=3, samples=100)
    assert fast.seconds == pytest.approx(3e-4 + 100 * runtime_model.TIMER_MIN_SAMPLE_S)


def test_chapter_one_is_its_softmax_sweep_at_the_roofline_floor():
    profile = PROFILES["gpu"]
    points = runtime_model.chapter1_points(profile, T4)
    assert len(points) == len(profile.seq_lens)
    work = softmax_cost(profile.batch, 6000, profile.dim, torch.float32)
    floor = max(work.flops / T4.peak_flops["float32"], work.bytes / T4.bandwidth)
    assert points[-1].seconds_per_call == pytest.approx(floor)
    assert points[-1].samples == profile.repeats


def test_points_that_would_not_fit_are_skipped():
    small = runtime_model.Device("tiny", T4.peak_flops, T4.bandwidth, memory=64 << 20)
    assert len(runtime_model.chapter1_points(PROFILES["gpu"], small)) < len(PROFILES["gpu"].seq_lens)
    assert len(runtime_model.chapter6_points(PROFILES["gpu"], small)) < len(runtime_model.chapter6_points(
        PROFILES["gpu"], T4))



def test_chapter_six_counts_its_live_run_of_the_paper_protocol():
    from linattn.lab.paper_benchmark import CONTENDERS, paper_sizes
    sizes = paper_sizes("gpu", live=True)
    protocol = runtime_model.paper_protocol_points(PROFILES["gpu"], T4)
    assert 0 < len(protocol) <= len(CONTENDERS) * len(sizes.seq_lens)
    assert all(p in runtime_model.chapter6_points(PROFILES["gpu"], T4) for p in protocol)
    linear_longest = linear_cost(1, sizes.seq_lens[-1], sizes.dim, torch.float32)   # batch 1 at N = 2^16
    floor = 3 * max(linear_longest.flops / T4.peak_flops["float32"], linear_longest.bytes / T4.bandwidth)
    assert any(p.seconds_per_call == pytest.approx(floor) for p in protocol)
    small = runtime_model.Device("tiny", T4.peak_flops, T4.bandwidth, memory=256 << 20)
    assert len(runtime_model.paper_protocol_points(PROFILES["gpu"], small)) < len(protocol)

def test_estimates_add_the_fixed_part_or_say_why_there_is_none():
    swept = runtime_model.estimate(6, 10.0, CLAIMS)
    assert swept.seconds == pytest.approx(10.0 + swept.sweeps) and swept.sweeps > 0
    assert runtime_model.estimate(2, 10.0, CLAIMS).seconds == 10.0
    assert runtime_model.estimate(5, 10.0, CLAIMS).seconds is None
    assert runtime_model.estimate(7, 10.0, CLAIMS).seconds is None
    assert runtime_model.estimate(1, None, CLAIMS).seconds is None
    slower = runtime_model.Device("half the bandwidth", T4.peak_flops, T4.bandwidth / 2, T4.memory)
    assert sum(p.seconds for p in runtime_model.chapter4_points(PROFILES["gpu"], slower)) > \
        sum(p.seconds for p in runtime_model.chapter4_points(PROFILES["gpu"], T4))


# ---- recording ---------------------------------------------------------------------------------------

def fake_build(tmp_path, executed):
    """A Sphinx app and environment, as the extension sees them, after executing `executed` chapters."""
    (tmp_path / "book").mkdir()
    docs = {}
    for number, seconds in executed.items():
        name = f"book/ch0{number}_topic"
        cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# Topic {number}\n"]}]
        (tmp_path / f"{name}.ipynb").write_text(json.dumps({"cells": cells}))
        docs[name] = {"exec_data": {"runtime": seconds, "succeeded": seconds is not None, "error": None,
                                    "method": "direct", "mtime": 0.0, "traceback": None}}
    env = SimpleNamespace(found_docs=set(docs) | {"book/welcome", "book/ch09_unexecuted"}, nb_metadata=docs)
    return SimpleNamespace(srcdir=str(tmp_path), outdir=str(tmp_path / "_build" / "html"), env=env,
                           config=SimpleNamespace(nb_execution_mode="force", nb_execution_timeout=1800),
                           linattn_read_docs=set(env.found_docs))


def test_a_build_records_into_its_output_and_only_on_request_into_book_data(tmp_path, monkeypatch):
    app = fake_build(tmp_path, {1: 12.5, 2: 3.0})
    app.env.found_docs.discard("book/ch09_unexecuted")
    monkeypatch.delenv(runtimes.RECORD_VARIABLE, raising=False)
    runtimes.record(app, None)
    (written,) = (tmp_path / "_build" / "runtimes").glob("runtimes_*.json")
    payload = load_results(written)
    assert [(r["chapter"], r["seconds"], r["title"]) for r in payload["records"]] == \
        [(1, 12.5, "Chapter 1: Topic 1"), (2, 3.0, "Chapter 2: Topic 2")]
    assert payload["settings"]["profile"] == runtimes.this_build(app)[0].name
    assert {"hardware", "torch", "device"} <= set(payload["environment"])
    assert not (tmp_path / "book" / "data").exists()
    monkeypatch.setenv(runtimes.RECORD_VARIABLE, "1")
    runtimes.record(app, None)
    assert [p.name for p in (tmp_path / "book" / "data").glob("runtimes_*.json")] == [written.name]


def test_a_build_that_did_not_execute_every_chapter_records_nothing(tmp_path):
    app = fake_build(tmp_path, {1: 12.5})          # ch09 was found but not executed
    runtimes.record(app, None)
    assert not (tmp_path / "_build" / "runtimes").exists()


# ---- what the guide shows ----------------------------------------------------------------------------

def column(profile, hardware, times, failed=()):
    env = {"device": "cuda" if "T4" in hardware else "cpu", "hardware": hardware, "torch": "2.x", "python": "3.11"}
    return runtimes.Column(profile, env, "2026-01-02", "stored", dict(times), set(failed))


def test_agenda_cells_cite_every_column_and_the_estimate(tmp_path):
    app = SimpleNamespace()
    ci = column("ci", "Some CPU", {1: 20.0, 6: 30.0})
    cpu = column("cpu", "Some CPU", {1: 95.0}, failed={6})
    est = {1: runtime_model.estimate(1, 20.0, CLAIMS), 6: runtime_model.estimate(6, 30.0, CLAIMS)}
    app.linattn_runtime_view = ([(1, "book/ch01_a"), (6, "book/ch06_b")], [ci, cpu], est, {1: ci.label, 6: ci.label})
    one = runtimes.render_ref(app, None, 1).astext()
    assert one.startswith("ci on CPU 20 s · cpu on CPU 1.6 min · gpu on T4 ≈ ")
    assert "(estimate)" in one
    assert "cpu on CPU failed" in runtimes.render_ref(app, None, 6).astext()
    total = runtimes.render_ref(app, None, runtimes.ALL).astext()
    assert total.startswith("ci on CPU 50 s · cpu on CPU — · gpu on T4 ≈ ")


def test_the_fixed_part_is_the_shortest_small_profile_run_and_a_t4_run_replaces_the_estimate():
    app = SimpleNamespace(linattn_claims=CLAIMS)
    columns = [column("ci", "Some CPU", {1: 20.0, 2: 30.0}), column("cpu", "Some CPU", {1: 40.0, 2: 10.0}),
               column("gpu", "Tesla T4", {1: 40.0})]
    assert runtimes.estimates(app, columns, [1, 2]) == ({}, {})
    est, fixed_from = runtimes.estimates(app, columns[:2], [1, 2])
    assert (est[1].fixed, fixed_from[1]) == (20.0, "ci on CPU")
    assert (est[2].fixed, fixed_from[2]) == (10.0, "cpu on CPU")
