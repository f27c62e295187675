"""benchmarks/causal_bench.py: the causal benchmark's targets, checked in the right direction, and the script."""
import importlib.util
from pathlib import Path

import pytest

from linattn import load_results
from linattn.lab.causal_benchmark import RATIOS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "causal_bench.py"


def load_script():
    spec = importlib.util.spec_from_file_location("causal_bench", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_there_is_a_target_for_every_ratio_the_benchmark_reports():
    assert set(load_script().TARGETS) == set(RATIOS)


def test_check_targets_compares_each_bound_in_its_direction():
    script = load_script()
    at_bounds = {name: bound for name, (_, bound, _) in script.TARGETS.items()}
    assert all(holds for holds, _ in script.check_targets(at_bounds).values())
    worse = {name: bound * (0.5 if comparison == ">=" else 2)
             for name, (comparison, bound, _) in script.TARGETS.items()}
    assert not any(holds for holds, _ in script.check_targets(worse).values())
    with pytest.raises(ValueError, match="lack"):
        script.check_targets({})


def test_the_script_prints_verdicts_and_saves_results(tmp_path, capsys):
    script = load_script()
    out_file = tmp_path / "bench.json"
    script.main(["--batch", "1", "--seq-len", "128", "--dim", "8", "--repeats", "1", "--save", str(out_file)])
    printed = capsys.readouterr().out
    assert printed.count("PASS") + printed.count("FAIL") == len(script.TARGETS)
    stored = load_results(out_file)
    assert set(stored["records"][0]["targets_hold"]) == set(script.TARGETS)
    assert stored["settings"]["seq_len"] == 128


def test_the_book_does_not_check_targets():
    """Targets are a benchmark's business: no chapter or appendix prints [holds] / [MISSED]."""
    book = Path(__file__).resolve().parents[2] / "book"
    for notebook in book.glob("*.ipynb"):
        text = notebook.read_text(encoding="utf8")
        assert "check_targets" not in text and "MISSED" not in text, notebook.name
