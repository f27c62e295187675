"""Run by test_widgets.py under each ipywidgets version: exercise the slider helpers, print a summary."""
import json

import ipywidgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from ipywidgets.embed import embed_data  # noqa: E402

from linattn.show.widgets import live_slider, static_slider  # noqa: E402

rendered = []


def render(n):
    rendered.append(n)
    fig, ax = plt.subplots()
    ax.plot([0, n])
    return fig


static = static_slider([16, 32, 64], render, description="N")
slider, pages = static.children
live = live_slider([1, 2], render)
live.children[0].value = 2

state = embed_data(views=[static])["manager_state"]["state"]
links = [m["state"] for m in state.values() if m["model_name"] == "LinkModel"]
print(json.dumps({
    "version": ipywidgets.__version__,
    "pages": type(pages).__name__,
    "children": len(pages.children),
    "rendered": rendered,
    "links": [[link["source"][1], link["target"][1]] for link in links],
    "slider_options": [label for label, _ in slider.options],
}))
