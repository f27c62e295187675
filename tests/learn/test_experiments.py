"""linattn.learn.experiments: model names, state sizes, loss curves and the command line."""
import dataclasses

import pytest

from linattn.learn import experiments as learning
from linattn.lab.results import load_results

TINY = dataclasses.replace(learning.SIZES["ci"], steps=3, copy_steps=3, pairs=(2,), copy_length=3,
                           eval_batch=4, batch_size=4, d_model=16, head_dim=4)


def test_model_names_map_to_attention_settings():
    assert learning.model_kwargs("softmax", 8) == {"attention": "softmax"}
    assert learning.model_kwargs("linear-poly2", 8) == {"attention": "linear", "feature_map": "poly2"}
    performer = learning.model_kwargs("linear-performer", 8)["feature_map"]
    assert performer.dim == 8 and performer.num_features == learning.PERFORMER_FEATURES_PER_DIM * 8
    for bad in ("linear", "linear-tanh", "softmax-elu", "", "elu"):
        with pytest.raises(ValueError, match="model must be"):
            learning.model_kwargs(bad, 8)


def test_state_rows_are_the_feature_sizes():
    assert learning.state_rows("softmax", 16) is None
    assert learning.state_rows("linear-elu", 16) == 16
    assert learning.state_rows("linear-poly2", 16) == 256
    assert learning.state_rows("linear-performer", 16) == 64


def test_loss_curve_averages_windows():
    steps, means = learning.loss_curve([1.0, 3.0, 5.0, 7.0, 9.0], 2)
    assert steps == [3, 5] and means == [3.0, 8.0]
    assert learning.loss_curve([2.0, 4.0], 10) == ([1, 2], [2.0, 4.0])


def test_recall_trains_on_a_mixture_and_tests_on_exactly_p():
    mixture, test = learning.recall_tasks(3, TINY)
    assert [t.num_pairs for t in mixture.tasks] == [1, 2, 3] and test.num_pairs == 3
    record = learning.run_recall("linear-elu", 3, TINY, seed=1)
    assert record["pairs"] == 3 and record["seed"] == 1 and record["state_rows"] == 4
    assert 0 <= record["accuracy"] <= 1 and len(record["losses"]) == len(record["loss_steps"]) == 3


def test_command_line_writes_results_with_their_settings(tmp_path, monkeypatch):
    monkeypatch.setitem(learning.SIZES, "ci", TINY)
    written = learning.main(["--size", "ci", "--pairs", "1", "2", "--models", "softmax", "linear-elu",
                             "--out-dir", str(tmp_path), "--name", "test"])
    assert [p.name for p in written] == ["copy_test.json", "recall_test.json"]
    recall = load_results(tmp_path / "recall_test.json")
    assert recall["settings"]["pairs"] == [1, 2] and recall["settings"]["steps"] == 3
    assert {(r["model"], r["pairs"]) for r in recall["records"]} == {
        (m, p) for m in ("softmax", "linear-elu") for p in (1, 2)}
    assert recall["environment"]["torch"]
    copy = load_results(tmp_path / "copy_test.json")
    assert {r["model"] for r in copy["records"]} == set(TINY.copy_models)


def test_command_line_rejects_an_unknown_model_before_training(tmp_path):
    with pytest.raises(ValueError, match="model must be"):
        learning.main(["--size", "ci", "--models", "linear-cosine", "--out-dir", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_help_names_the_command(capsys):
    with pytest.raises(SystemExit):
        learning.main(["--help"])
    assert "python -m linattn.learn.experiments" in capsys.readouterr().out


def test_accuracy_table_and_where_a_model_holds():
    records = [{"model": "a", "pairs": p, "seed": s, "accuracy": acc}
               for p, s, acc in [(8, 0, 0.5), (8, 1, 0.7), (2, 0, 1.0), (2, 1, 0.9), (4, 0, 0.8), (4, 1, 1.0)]]
    records.append({"model": "b", "pairs": 2, "seed": 0, "accuracy": 0.2})
    table = learning.accuracy_table(records)
    assert list(table["a"]) == [2, 4, 8]
    assert table["a"][2] == pytest.approx((1.0, 0.9, 0.95)) and table["a"][8].worst == 0.5
    assert learning.holds_up_to(table["a"], 0.9) == 4
    assert learning.holds_up_to(table["a"], 0.9, "worst") == 2
    assert learning.holds_up_to(table["a"], 0.95, "mean") == 2
    assert learning.holds_up_to(table["b"], 0.9) is None
    with pytest.raises(ValueError, match="threshold"):
        learning.holds_up_to(table["a"], 0)
    with pytest.raises(ValueError, match="statistic"):
        learning.holds_up_to(table["a"], 0.9, "median")


def test_sizes_for_profiles():
    assert learning.sizes_for_profile("ci") is learning.SIZES["ci"]
    assert learning.sizes_for_profile("gpu").pairs == learning.SIZES["full"].pairs
    assert learning.sizes_for_profile("gpu").seeds == (0,)
    with pytest.raises(ValueError, match="profile"):
        learning.sizes_for_profile("tpu")
