"""The whole book builds as `make book` builds it, with zero warnings, and carries its launch buttons."""
import re

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.book


def test_builds_with_zero_warnings(built_book):
    assert built_book.returncode == 0, built_book.log[-5000:]
    assert built_book.warnings == [], "\n".join(built_book.warnings)
    assert (built_book.html / "index.html").is_file()


def test_every_notebook_page_has_a_colab_button(built_book):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    repo = re.sub(r"^https://github\.com/", "", url)
    pages = sorted((ROOT / "book").glob("*.ipynb"))
    assert pages
    for notebook in pages:
        html = (built_book.html / "book" / (notebook.stem + ".html")).read_text()
        expected = f"https://colab.research.google.com/github/{repo}/blob/main/book/{notebook.name}"
        assert expected in html, f"{notebook.name}: no Colab link {expected}"


def test_chapter_one_has_numbered_equations_figures_and_a_static_slider(built_book):
    html = (built_book.html / "book" / "ch01_attention.html").read_text()
    assert html.count('class="math notranslate nohighlight"') >= 4
    assert re.search(r'<img alt="Heatmap of a 9 by 9 attention matrix', html)
    assert re.search(r'alt=\\?"Log-log plot of median time', html)  # precomputed views (JSON-escaped) too
    assert "application/vnd.jupyter.widget-state+json" in html
    for model in ("SelectionSliderModel", "StackModel", "LinkModel"):
        assert model in html, f"the embedded widget state lacks {model}"
    assert "bibliography.html#id" in html or "bibliography.html" in html
