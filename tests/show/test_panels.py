"""The live benchmark panel: every control change re-runs with the new settings."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from linattn.show.panels import SETTINGS, benchmark_panel  # noqa: E402

OPTIONS = {"seq_lens": [64, 128], "batches": [1, 4], "dims": [16, 64], "dtypes": ["float32", "float16"],
           "devices": ["cpu"], "implementations": ["softmax", "linear"]}


def test_runs_once_with_the_initial_settings_then_on_every_change():
    seen = []
    panel = benchmark_panel(seen.append, **OPTIONS, initial={"seq_len": 128, "implementations": ["linear"]})
    assert seen == [{"seq_len": 128, "batch": 1, "dim": 16, "dtype": "float32", "device": "cpu",
                     "implementations": ("linear",)}]
    panel.controls["batch"].value = 4
    panel.controls["dtype"].value = "float16"
    panel.controls["implementations"].value = ("softmax", "linear")
    assert [s["batch"] for s in seen] == [1, 4, 4, 4]
    assert seen[-1]["dtype"] == "float16" and seen[-1]["implementations"] == ("softmax", "linear")
    assert set(seen[-1]) == set(SETTINGS)


def test_a_returned_figure_is_shown_and_closed():
    drawn = []

    def draw(settings):
        fig, ax = plt.subplots()
        ax.set_title(str(settings["seq_len"]))
        drawn.append(settings["seq_len"])
        return fig

    before = len(plt.get_fignums())
    panel = benchmark_panel(draw, **OPTIONS)
    panel.controls["seq_len"].value = 128
    assert drawn == [64, 128] and len(plt.get_fignums()) == before


def test_bad_options():
    with pytest.raises(ValueError, match="at least one option"):
        benchmark_panel(print, **{**OPTIONS, "dims": []})
    with pytest.raises(ValueError, match="not one of"):
        benchmark_panel(print, **OPTIONS, initial={"seq_len": 100})
    with pytest.raises(ValueError, match="unknown settings"):
        benchmark_panel(print, **OPTIONS, initial={"heads": 2})
    with pytest.raises(ValueError, match="not all among"):
        benchmark_panel(print, **OPTIONS, initial={"implementations": ["sdpa"]})
