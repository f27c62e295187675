"""Sliders: a live one that re-runs with a kernel, and a precomputed one that works in static HTML.

The precomputed edition renders one Output per slider position into a widgets.Stack and links the
slider's `index` to the Stack's `selected_index` in the browser (jslink), so the built book switches
views without a kernel. ipywidgets 7 (Colab's long-standing version) has no Stack: a Tab stands in.
"""
import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from .figure_html import show_figure


def render_into(output, render, value):
    with output:
        result = render(value)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], plt.Figure):
            show_figure(*result)
        elif isinstance(result, plt.Figure):
            display(result)
            plt.close(result)


def _slider(options, description, format_option):
    if not options:
        raise ValueError("a slider needs at least one option")
    labels = [(format_option(o), o) for o in options]
    return widgets.SelectionSlider(options=labels, value=options[0], description=description,
                                   continuous_update=False, style={"description_width": "initial"},
                                   layout=widgets.Layout(width="60%"))


def has_stack():
    return hasattr(widgets, "Stack")


def _pages(children, titles):
    """A container showing one child at a time: Stack on ipywidgets 8, Tab on 7."""
    if has_stack():
        return widgets.Stack(children=children, selected_index=0)
    tabs = widgets.Tab(children=children)
    for i, title in enumerate(titles):
        tabs.set_title(i, title)
    tabs.selected_index = 0
    return tabs


def static_slider(options, render, *, description="N", format_option=str):
    """Precompute render(option) for every option; the slider switches views in the browser.

    `render` draws into the current output (print, display) or returns a matplotlib Figure, or a
    (Figure, alt text) pair, which is shown as an image carrying that alt text.
    """
    slider = _slider(options, description, format_option)
    outputs = []
    for option in options:
        out = widgets.Output()
        render_into(out, render, option)
        outputs.append(out)
    pages = _pages(outputs, [format_option(o) for o in options])
    widgets.jslink((slider, "index"), (pages, "selected_index"))
    return widgets.VBox([slider, pages])


def live_slider(options, render, *, description="N", format_option=str):
    """Re-run render(value) in the kernel each time the slider is released."""
    slider = _slider(options, description, format_option)
    out = widgets.Output()

    def update(change):
        out.clear_output(wait=True)
        render_into(out, render, change["new"])

    slider.observe(update, names="value")
    render_into(out, render, slider.value)
    return widgets.VBox([slider, out])
