"""linattn.show: presentation. Plots, sliders (live and precomputed), the benchmark panel and figures
as HTML images with alt text. Needs matplotlib and ipywidgets; nothing below it imports it."""
