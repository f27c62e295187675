import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from linattn.show import plots  # noqa: E402


def test_slope_of_a_power_law():
    xs = [10, 20, 40, 80]
    assert plots.loglog_slope(xs, [3 * x ** 2 for x in xs]) == pytest.approx(2.0)
    assert plots.loglog_slope(xs, [x ** 0.5 for x in xs]) == pytest.approx(0.5)


@pytest.mark.parametrize("xs, ys", [([1], [1]), ([1, 2], [1]), ([0, 1], [1, 2]), ([1, 1], [1, 2])])
def test_bad_slope_inputs(xs, ys):
    with pytest.raises(ValueError):
        plots.loglog_slope(xs, ys)


def test_plot_scaling_labels_the_slope():
    fig, ax = plt.subplots()
    slope = plots.plot_scaling(ax, [1, 2, 4], [1, 4, 16], label="quadratic")
    assert slope == pytest.approx(2.0)
    ax.legend()
    assert "slope 2.00" in ax.get_legend().get_texts()[0].get_text()
    plt.close(fig)


def test_heatmap_shows_the_matrix():
    fig, ax = plt.subplots()
    w = torch.softmax(torch.randn(5, 5), -1)
    image = plots.attention_heatmap(ax, w, tokens=list("abcde"), title="t")
    assert image.get_array().shape == (5, 5)
    plt.close(fig)


def test_palette_is_used():
    plots.use_palette()
    assert plt.rcParams["axes.prop_cycle"].by_key()["color"][0] == plots.PALETTE[0]


def test_scaling_plots_label_measured_sizes_without_crowding():
    import math
    ns = [128, 256, 512, 1024, 2048, 4096, 6000]
    kept = {}
    for width in (3, 11):
        fig, ax = plt.subplots(figsize=(width, 3))
        plots.plot_scaling(ax, ns, [n ** 2 for n in ns], label="quadratic")
        ticks = sorted(ax.get_xticks())
        labels = {t: label.get_text() for t, label in zip(ax.get_xticks(), ax.get_xticklabels())}
        low, high = ax.get_xlim()
        inches_per_decade = ax.get_position().width * width / math.log10(high / low)
        plt.close(fig)
        assert set(ticks) <= set(ns) and labels[6000] == "6000"
        assert min(math.log10(b / a) for a, b in zip(ticks, ticks[1:])) * inches_per_decade >= 0.3
        kept[width] = ticks
    assert len(kept[3]) < len(kept[11]) and len(kept[11]) >= 5   # narrower axes keep fewer labels
