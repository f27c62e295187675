"""Figures: the colour-blind-safe palette in every notebook, and alt text on every figure of the book."""
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from linattn.show.plots import PALETTE

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))

# Colours a notebook may name besides the palette: greys (and black and white) read the same for
# every kind of colour vision, "C0".."C9" are the palette once use_palette() has run, and these
# colour maps are perceptually uniform and colour-blind safe.
GREYS = {"k", "black", "w", "white", "gray", "grey", "none"}
SAFE_CMAPS = {"viridis", "cividis", "magma", "inferno", "plasma", "Greys", "gray", "binary"}
COLOUR_KEYWORD = re.compile(r"\b(color|colors|c|facecolor|edgecolor|ecolor|markerfacecolor|markeredgecolor)"
                            r"\s*=\s*[\"']([^\"']*)[\"']")
CMAP_KEYWORD = re.compile(r"\bcmap\s*=\s*[\"']([^\"']*)[\"']")
HEX_COLOUR = re.compile(r"[\"'](#[0-9a-fA-F]{6})[\"']")
# a matplotlib format string with a colour letter, e.g. "r--" or "go"
FORMAT_COLOUR = re.compile(r"\.(?:plot|loglog|semilogx|semilogy)\([^\n]*?[\"']([bgrcmy])[-.:ov^<>sD*+x]*[\"']")
PLOTS = re.compile(r"\bplt\.(subplots|figure)\(|\.plot\(|\.imshow\(")


def code_cells(path):
    cells = json.loads(path.read_text(encoding="utf8"))["cells"]
    return [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]


def allowed_colour(value):
    value = value.strip()
    if value.lower() in {p.lower() for p in PALETTE} or value in GREYS or re.fullmatch(r"C\d", value):
        return True
    try:
        return 0.0 <= float(value) <= 1.0  # a grey level
    except ValueError:
        return False


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_plot_with_the_colour_blind_safe_palette(path):
    cells = code_cells(path)
    plotting = [i for i, c in cells if PLOTS.search("".join(c["source"]))]
    if not plotting:
        return
    palette = [i for i, c in cells if re.search(r"\buse_palette\(\)", "".join(c["source"]))]
    assert palette and palette[0] <= plotting[0], f"{path.name}: call plots.use_palette() before the first plot"
    problems = []
    for i, cell in cells:
        source = "".join(cell["source"])
        problems += [f"cell {i}: {key}={value!r}" for key, value in COLOUR_KEYWORD.findall(source)
                     if not allowed_colour(value)]
        problems += [f"cell {i}: cmap={cmap!r}" for cmap in CMAP_KEYWORD.findall(source)
                     if cmap.removesuffix("_r") not in SAFE_CMAPS]
        problems += [f"cell {i}: {colour}" for colour in HEX_COLOUR.findall(source) if not allowed_colour(colour)]
        problems += [f"cell {i}: format string colour {letter!r}" for letter in FORMAT_COLOUR.findall(source)]
    assert not problems, f"{path.name}: colours outside linattn.show.plots.PALETTE and greys: {problems}"


def test_the_palette_check_catches_unsafe_colours():
    assert not allowed_colour("red") and not allowed_colour("#ff0000") and not allowed_colour("1.5")
    assert allowed_colour(PALETTE[3].lower()) and allowed_colour("0.4") and allowed_colour("C2")
    assert FORMAT_COLOUR.findall('ax.plot(x, y, "r--")') == ["r"] and not FORMAT_COLOUR.findall('ax.plot(x, "k--")')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figure_cells_carry_a_caption_name_and_alt_text(path):
    for i, cell in code_cells(path):
        source, meta = "".join(cell["source"]), cell["metadata"].get("mystnb", {})
        if "plt.show()" in source or "figure" in meta:
            assert meta.get("image", {}).get("alt", "").strip(), f"{path.name} cell {i}: a figure without alt text"
            assert meta.get("figure", {}).get("caption") and meta["figure"].get("name"), \
                f"{path.name} cell {i}: a figure without caption or name"


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))


def describes(alt):
    """Alt text that says something: not empty, and not just a file name (myst-nb's default)."""
    alt = (alt or "").strip()
    return bool(alt) and not re.search(r"\.(png|jpe?g|svg|gif)$|_images/", alt, re.I)


def widget_images(page_html):
    """(alt or None) for each image inside the page's embedded widget state (slider views)."""
    found = []
    for state in re.findall(r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>',
                            page_html, re.S):
        for model in json.loads(state)["state"].values():
            for output in model["state"].get("outputs", []) if model.get("model_name") == "OutputModel" else []:
                data = output.get("data", {})
                if "image/png" in data:
                    found.append(None)  # a bare PNG output has nowhere to keep alt text
                elif "<img" in "".join(data.get("text/html", "")):
                    parser = _Images()
                    parser.feed("".join(data["text/html"]))
                    found += [image.get("alt") for image in parser.images]
    return found


def built_pages(built_book):
    pages = [p for p in built_book.html.rglob("*.html") if "_static" not in p.parts]
    assert pages, "no built pages"
    return [(p.relative_to(built_book.html), p.read_text(encoding="utf8")) for p in pages]


@pytest.mark.book
def test_every_image_of_the_built_pages_has_alt_text(built_book):
    problems = []
    for name, text in built_pages(built_book):
        parser = _Images()
        parser.feed(text)
        problems += [f"{name}: <img src={image.get('src', '')[:60]!r}> has alt {image.get('alt')!r}"
                     for image in parser.images if not describes(image.get("alt"))]
    assert not problems, "\n".join(problems)


@pytest.mark.book
def test_every_figure_inside_a_widget_has_alt_text(built_book):
    """Slider views are stored in the page's widget state; a figure there needs alt text too."""
    problems = []
    for name, text in built_pages(built_book):
        bare = [alt for alt in widget_images(text) if not describes(alt)]
        if bare:
            problems.append(f"{name}: {len(bare)} figure(s) inside widgets without alt text")
    assert not problems, "\n".join(problems) + (
        "\nShow such a figure with linattn.show.figure_html.show_figure(fig, alt) in the slider's render function.")
