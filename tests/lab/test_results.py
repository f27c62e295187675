import json

import pytest
import torch

from linattn.lab.results import load_results, save_results


def test_round_trip_carries_environment_and_settings(tmp_path):
    path = save_results(tmp_path / "sub" / "r.json", [{"N": 128, "median_s": 0.1}], settings={"d": 64}, device="cpu")
    payload = load_results(path)
    assert payload["records"] == [{"N": 128, "median_s": 0.1}]
    assert payload["settings"] == {"d": 64}
    assert payload["environment"]["torch"] == torch.__version__
    assert payload["date"].startswith("20")


def test_records_must_be_a_list(tmp_path):
    with pytest.raises(ValueError, match="list"):
        save_results(tmp_path / "r.json", {"N": 1}, settings={}, device="cpu")


def test_loading_something_else_is_a_value_error(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"records": []}))
    with pytest.raises(ValueError, match="lacks"):
        load_results(path)
