"""Every chapter opens with 3-5 learning objectives, visible in the book: right after the
introduction, in the chapter's first markdown cell (the one with its title) or in a markdown cell
of its own right after it, a block exactly like

    :::{admonition} Learning objectives
    :class: tip
    After this chapter you can
    - ...
    :::

The instructor guide prints the same bullets (book/_ext/workshop.py, `chapter-objectives`)."""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import workshop  # noqa: E402

CHAPTERS = sorted((ROOT / "book").glob("ch0*.ipynb"))
BLOCK = re.compile(r"^:::\{admonition\} Learning objectives\n:class: tip\nAfter this chapter you can\n"
                   r"(?P<bullets>(?:- .+\n(?:  .+\n)*)+):::$", re.M)


def opening(path):
    """The chapter's opening: its first markdown cell, and the cell right after it if that is
    markdown too (where the objectives may stand on their own)."""
    cells = json.loads(path.read_text(encoding="utf8"))["cells"]
    first = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown")
    following = cells[first + 1:first + 2]
    parts = [cells[first]] + [c for c in following if c["cell_type"] == "markdown"]
    return "\n".join("".join(c["source"]).rstrip("\n") for c in parts)


def test_there_are_chapters():
    assert len(CHAPTERS) >= 8


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_with_three_to_five_objectives(path):
    text = opening(path) + "\n"
    assert re.search(r"^# ", text, re.M), f"{path.name}: the first markdown cell is not the chapter's opening"
    block = BLOCK.search(text)
    assert block, f"{path.name}: no 'Learning objectives' admonition in the opening (first markdown cell or the next)"
    bullets = re.findall(r"^- ", block["bullets"], re.M)
    assert 3 <= len(bullets) <= 5, f"{path.name}: {len(bullets)} objectives, expected 3 to 5"
    intro = text[:block.start()]
    assert len(re.sub(r"^[#(].*$", "", intro, flags=re.M).split()) >= 20, \
        f"{path.name}: the objectives should follow the chapter's introduction"
    assert len(workshop.notebook_objectives(path) or []) == len(bullets), f"{path.name}: the guide reads other bullets"


def test_the_guide_reads_the_objectives_a_chapter_lists(tmp_path):
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": [
        "(ch09)=\n# A chapter\n\nWhy it matters.\n\n:::{admonition} Learning objectives\n:class: tip\n",
        "After this chapter you can\n- derive $x$;\n- measure\n  it twice;\n- explain it.\n:::\n"]}]}
    path = tmp_path / "ch09_x.ipynb"
    path.write_text(json.dumps(notebook))
    assert workshop.notebook_objectives(path) == ["derive $x$;", "measure it twice;", "explain it."]
    notebook["cells"][0]["source"] = ["# A chapter\n\nNo objectives.\n"]
    path.write_text(json.dumps(notebook))
    assert workshop.notebook_objectives(path) is None
