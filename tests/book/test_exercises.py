"""Exercises across the book: well-formed labels, solutions next to them, all on the exercises page."""
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("workshop", ROOT / "book" / "_ext" / "workshop.py")
workshop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(workshop)

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
CHAPTERS = [p for p in NOTEBOOKS if re.match(r"ch\d\d_", p.name)]
# found independently of the extension's parser: the label line of each {exercise} directive
EXERCISE_LABEL = re.compile(r"\{exercise\}[^\n]*\n(?:\s*:[\w-]+:[^\n]*\n)*?\s*:label:\s*(\S+)")


def labels_in(path):
    cells = json.loads(path.read_text(encoding="utf8"))["cells"]
    return [label for c in cells if c["cell_type"] == "markdown"
            for label in EXERCISE_LABEL.findall("".join(c["source"]))]


def test_labels_are_unique_across_the_book():
    labels = [label for path in NOTEBOOKS for label in labels_in(path)]
    assert len(labels) == len(set(labels)), sorted(label for label in labels if labels.count(label) > 1)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_exercises_are_labelled_for_their_chapter_and_solved_right_after(path):
    prefix = path.name[:4] + "-ex-"                              # ch05_causal.ipynb -> ch05-ex-
    cells = nbformat.read(path, as_version=4).cells
    labels = labels_in(path)
    assert labels, f"{path.name} has no exercises"
    assert all(label.startswith(prefix) for label in labels), f"{path.name}: labels {labels} must start {prefix}"
    for i, cell in enumerate(cells):
        for label in EXERCISE_LABEL.findall(cell.source) if cell.cell_type == "markdown" else []:
            after = cells[i + 1] if i + 1 < len(cells) else None
            assert after is not None and f"{{solution}} {label}" in after.source, \
                f"{path.name}: the cell after exercise {label} is not its solution"
            assert "solution" in after.metadata.get("tags", []), f"{path.name}: solution of {label} not tagged"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_index_extension_finds_every_exercise(path):
    assert [label for label, _ in workshop.notebook_exercises(path)] == labels_in(path)


def test_index_markdown_lists_each_exercise_under_its_chapter(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("(ch09)=\n# A chapter"),
        nbformat.v4.new_markdown_cell(":::{exercise} First `one`\n:label: ch09-ex-a\nText.\n:::"),
        nbformat.v4.new_markdown_cell("````{exercise}\n:label: ch09-ex-b\n:class: x\nText.\n````"),
    ])
    path = tmp_path / "ch09_test.ipynb"
    nbformat.write(notebook, path)
    text = workshop.index_markdown([("book/ch09_test", path)])
    assert text.startswith("## Chapter 9: A chapter")
    assert "{doc}`Read the chapter </book/ch09_test>` · 2 exercises" in text
    assert "- {ref}`First one <ch09-ex-a>`" in text and "- {ref}`ch09-ex-b <ch09-ex-b>`" in text


def test_an_exercise_without_a_label_is_refused(tmp_path):
    path = tmp_path / "ch09_test.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(":::{exercise}\nNo label.\n:::")]), path)
    with pytest.raises(ValueError, match="label"):
        workshop.notebook_exercises(path)


def test_the_exercises_page_keeps_its_marker():
    assert workshop.MARKER in (ROOT / "book" / "exercises.md").read_text(encoding="utf8")


@pytest.mark.book
def test_built_exercises_page_links_every_exercise_of_every_chapter_in_the_book(built_book):
    index = (built_book.html / "book" / "exercises.html").read_text(encoding="utf8")
    built = [p for p in NOTEBOOKS if (built_book.html / "book" / (p.stem + ".html")).is_file()]
    assert built, "no chapter was built"
    missing = [f"{p.stem}#{label}" for p in built for label in labels_in(p)
               if f'href="{p.stem}.html#{label}"' not in index]
    assert not missing, f"exercises not linked from exercises.html: {missing}"
