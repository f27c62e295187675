"""Experiments that regenerate the book's stored results; each module runs with `python -m`."""
