"""The whole book builds as `make book` builds it, with zero warnings, and carries its launch buttons."""
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

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


def test_the_cheat_sheet_styles_touch_only_the_printed_cheat_sheet():
    """book/css/cheatsheet.css is loaded on every page; each of its rules must be scoped to print and
    to the cheat sheet's page, so that no other page changes."""
    css = re.sub(r"/\*.*?\*/", "", (ROOT / "book" / "css" / "cheatsheet.css").read_text(), flags=re.S)
    assert css.strip().startswith("@media print {") and css.strip().endswith("}")
    body = css.strip()[len("@media print {"):-1]
    rules = re.findall(r"([^{}]+)\{[^{}]*\}", body)
    assert rules
    for selectors in rules:
        for selector in selectors.split(","):
            selector = selector.strip()
            assert selector.startswith("html:has(#cheatsheet)") or selector == "@page cheatsheet", selector
    assert "page: cheatsheet" in body and "size: A4" in body
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert cfg["html_css_files"] == ["cheatsheet.css"] and cfg["html_static_path"] == ["book/css"]
    assert (ROOT / "book" / "cheatsheet.md").read_text().startswith("(cheatsheet)=\n")


def test_every_build_records_chapter_run_times_into_its_output(built_book):
    recorded = list((built_book.html.parent / "runtimes").glob("runtimes_ci_*.json"))
    assert len(recorded) == 1, "the build wrote no run times (book/_ext/runtimes.py)"
