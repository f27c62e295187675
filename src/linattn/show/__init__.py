"""linattn.show: presentation. Plots (plots, and chapter_plots for the measured figures of Chapters 5, 6
and the CPU appendix), sliders (live and precomputed), the benchmark panel, figures as HTML images with
alt text, the conceptual figures (figures) and the puzzles with their check (puzzles, puzzle_check).
Needs matplotlib and ipywidgets; nothing below it imports it."""
