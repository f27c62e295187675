"""benchmarks/causal_grad_bench.py at tiny sizes: what it measures, stores and checks (nothing timed here)."""
import importlib.util
from pathlib import Path

import pytest
import torch

from linattn import load_results

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "causal_grad_bench.py"
TINY = ["--batch", "2", "--seq-len", "96", "--dim", "8", "--repeats", "2", "--min-sample-s", "0.0001"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("causal_grad_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tiny_run_stores_every_measurement_with_its_metadata(script, tmp_path, capsys):
    path = tmp_path / "grad.json"
    everything_holds = script.main([*TINY, "--save", str(path)])
    payload = load_results(path)
    assert payload["environment"]["device"] == "cpu" and payload["environment"]["torch"]
    assert payload["settings"]["seq_len"] == 96 and payload["date"]
    (record,) = payload["records"]
    assert record["sizes"]["batch"] == 2 and record["dtype"] == "float32"
    assert set(record["targets_hold"]) == set(script.TARGETS)
    assert everything_holds == all(record["targets_hold"].values())
    seconds = {name: t["median_s"] for name, t in record["timings"].items()}
    ratios, peaks = record["ratios"], record["peak_bytes"]
    assert ratios["function_forward_backward_over_forward"] == pytest.approx(
        seconds["function_forward_backward"] / seconds["forward"])
    assert ratios["function_over_autograd_forward_backward"] == pytest.approx(
        seconds["function_forward_backward"] / seconds["autograd_forward_backward"])
    assert ratios["function_peak_over_inputs"] == pytest.approx(peaks["function_forward_backward"]
                                                                / record["inputs_bytes"])
    assert record["inputs_bytes"] == 3 * 2 * 96 * 8 * 4
    # The gradients alone are as large as the inputs: a peak below that would have missed the backward.
    assert all(nbytes >= record["inputs_bytes"] for nbytes in peaks.values())
    printed = capsys.readouterr().out
    assert "function_peak_over_inputs" in printed and ("[PASS]" in printed or "[FAIL]" in printed)


def test_targets_hold_at_their_bounds_and_fail_beyond(script):
    at_bounds = {name: bound for name, (_, bound, _) in script.TARGETS.items()}
    assert all(holds for holds, _ in script.check_targets(at_bounds).values())
    for name in script.TARGETS:
        beyond = dict(at_bounds, **{name: at_bounds[name] * 1.01})
        verdicts = script.check_targets(beyond)
        assert not verdicts[name][0] and "measured" in verdicts[name][1]
        assert all(holds for other, (holds, _) in verdicts.items() if other != name)
    with pytest.raises(ValueError, match="ratios lack"):
        script.check_targets({})


def test_bad_sizes_are_refused(script):
    with pytest.raises(SystemExit):
        script.main(["--batch", "0"])


def test_the_contenders_compute_the_same_gradients(script):
    leaves = [torch.randn(2, 70, 8, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    grads = []
    for fn in (script.function, script.autograd_through_chunked):
        fn(*leaves).square().sum().backward()
        grads.append([t.grad.clone() for t in leaves])
        for t in leaves:
            t.grad = None
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
