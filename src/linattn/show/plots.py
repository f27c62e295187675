"""Plot helpers: a colour-blind-safe palette, scaling plots with fitted slopes, attention heatmaps."""
import math

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from ..lab.report import loglog_slope  # noqa: F401  (one definition; chapters call plots.loglog_slope)

# Okabe & Ito's palette, distinguishable with the common forms of colour blindness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def use_palette():
    plt.rcParams["axes.prop_cycle"] = plt.cycler(color=PALETTE)


def plot_scaling(ax, xs, ys, *, label, yerr=None, marker="o", **kwargs):
    """One line on log-log axes, its fitted slope in the legend; returns the slope."""
    slope = loglog_slope(xs, ys)
    ax.errorbar(xs, ys, yerr=yerr, marker=marker, capsize=3, label=f"{label} (slope {slope:.2f})", **kwargs)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _label_measured_x(ax)
    return slope


def _label_measured_x(ax):
    """Tick labels at the x values the axis shows data for, in plain numbers, skipping those that would
    touch their neighbour (matplotlib's own 2x10^2, 3x10^2, ... labels run into each other)."""
    xs = sorted({float(x) for line in ax.lines for x in line.get_xdata() if x > 0}, reverse=True)
    if not xs:
        return
    width_in = ax.get_position().width * ax.figure.get_figwidth()
    decades_per_inch = 1.1 * max(math.log10(xs[0] / xs[-1]), 0.3) / width_in   # matplotlib pads the range
    kept = xs[:1]
    for x in xs[1:]:
        room = 0.08 * (len(f"{x:g}") + len(f"{kept[-1]:g}")) / 2 + 0.12   # inches: half of each label, a gap
        if math.log10(kept[-1] / x) >= room * decades_per_inch:
            kept.append(x)
    ax.set_xticks(kept, [f"{x:g}" for x in kept])
    ax.xaxis.set_minor_formatter(NullFormatter())


def attention_heatmap(ax, weights, *, title=None, tokens=None, cmap="viridis", vmin=0.0, vmax=None):
    """An attention matrix as an image: row i is query i's weights over the keys."""
    weights = weights.detach().cpu().float().numpy()
    image = ax.imshow(weights, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    if tokens is not None:
        ax.set_xticks(range(len(tokens)), tokens, rotation=90)
        ax.set_yticks(range(len(tokens)), tokens)
    if title:
        ax.set_title(title)
    return image
