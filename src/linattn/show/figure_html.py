"""Figures as HTML images with alt text, for figures shown inside widgets (slider views).

A matplotlib figure displayed inside an ipywidgets Output reaches the built page as a bare PNG:
Jupyter's image output has no field for alt text, so a screen reader finds nothing to read.
Displayed as an HTML <img> with an alt attribute it keeps a description, in the static book,
in Jupyter and in Colab alike.
"""
import base64
import html
import io

import matplotlib.pyplot as plt
from IPython.display import HTML, display


def figure_html(fig, alt):
    """An <img> tag holding fig as an embedded PNG, with `alt` as its description."""
    if not isinstance(fig, plt.Figure):
        raise ValueError(f"expected a matplotlib Figure, got {type(fig).__name__}")
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError("alt text must be a non-empty description of the figure")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt.strip())}" style="max-width: 100%">'


def show_figure(fig, alt):
    """Display fig as an image with alt text, then close it so that it is not shown twice."""
    tag = figure_html(fig, alt)
    plt.close(fig)
    display(HTML(tag))
