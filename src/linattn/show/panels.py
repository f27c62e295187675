"""The benchmark lab's live controls: sequence length, batch, d, dtype, device and which implementations.

Every change re-runs `run(settings)` in the kernel and redraws its output. Built from widgets that
exist in ipywidgets 7.7 (Colab) and 8 alike. For the static HTML use `linattn.show.widgets.static_slider`
with stored results instead: these controls need a running kernel.
"""
import ipywidgets as widgets

from .widgets import render_into

SETTINGS = ("seq_len", "batch", "dim", "dtype", "device", "implementations")


def _choice(kind, options, value, description):
    if not options:
        raise ValueError(f"{description} needs at least one option")
    if value not in options:
        raise ValueError(f"{description}: {value!r} is not one of {list(options)}")
    common = {"description": description, "style": {"description_width": "initial"}}
    if kind == "slider":
        return widgets.SelectionSlider(options=list(options), value=value, continuous_update=False,
                                       layout=widgets.Layout(width="60%"), **common)
    return widgets.Dropdown(options=list(options), value=value, **common)


def benchmark_panel(run, *, seq_lens, batches, dims, dtypes, devices, implementations, initial=None):
    """Controls plus an output area; run(settings) prints, displays or returns what render_into shows.

    settings is a dict with keys SETTINGS; `initial` overrides the first option of any of them
    (for implementations: the names selected at first, default all).
    """
    initial = dict(initial or {})
    unknown = set(initial) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; the panel has {list(SETTINGS)}")
    if not implementations:
        raise ValueError("implementations needs at least one option")
    chosen = tuple(initial.get("implementations", implementations))
    if not set(chosen) <= set(implementations):
        raise ValueError(f"implementations {chosen} are not all among {list(implementations)}")
    controls = {
        "seq_len": _choice("slider", seq_lens, initial.get("seq_len", seq_lens[0] if seq_lens else None),
                           "sequence length N"),
        "batch": _choice("slider", batches, initial.get("batch", batches[0] if batches else None), "batch"),
        "dim": _choice("slider", dims, initial.get("dim", dims[0] if dims else None), "head dimension d"),
        "dtype": _choice("dropdown", dtypes, initial.get("dtype", dtypes[0] if dtypes else None), "dtype"),
        "device": _choice("dropdown", devices, initial.get("device", devices[0] if devices else None), "device"),
        "implementations": widgets.SelectMultiple(options=list(implementations), value=chosen, rows=len(implementations),
                                                  description="implementations",
                                                  style={"description_width": "initial"}),
    }
    out = widgets.Output()

    def settings():
        values = {name: control.value for name, control in controls.items()}
        values["implementations"] = tuple(values["implementations"])
        return values

    def update(change=None):
        out.clear_output(wait=True)
        render_into(out, run, settings())

    for control in controls.values():
        control.observe(update, names="value")
    update()
    panel = widgets.VBox([*controls.values(), out])
    panel.controls, panel.output = controls, out
    return panel
