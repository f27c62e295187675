"""scripts/student_edition.py: every notebook without its solutions, still running under nbval."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
student_edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_edition)

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def notebook(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


STUB = 'def answer():\n    """Return 42."""\n    raise NotImplementedError'


def puzzle_cell(source='def answer():\n    return 42\n\n\nassert check("t-ex", answer)', stub=STUB):
    cell = tagged(nbformat.v4.new_code_cell(source), "puzzle", "hide-input")
    if stub is not None:
        cell.metadata["linattn"] = {"stub": stub}
    return cell


def test_solutions_and_teacher_notes_go_exercises_stay_and_exercise_code_is_skipped():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    source = notebook(
        code("x = 1"),
        md(":::{exercise} ★ Try\n:label: t-ex\nDo it.\n:::"),
        tagged(md(":::{solution} t-ex\n:class: dropdown\nThe answer is 42.\n:::"), "solution"),
        tagged(code("answer = 42"), "solution", "hide-input"),
        tagged(md("Ask the room what 42 means."), "teacher"),
        tagged(code("# your code here\nraise NotImplementedError"), "exercise"),
    )
    source.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    student = student_edition.student_notebook(source)
    assert [c.source.splitlines()[0] for c in student.cells] == ["x = 1", ":::{exercise} ★ Try", "# your code here"]
    assert student.cells[0].outputs == []
    assert student.cells[2].metadata["tags"] == ["exercise", "nbval-skip"]
    assert len(source.cells) == 6, "the source notebook must not change"
    nbformat.validate(student)


def test_a_puzzle_becomes_its_stub_and_the_check_without_assert():
    source = notebook(puzzle_cell())
    source.cells[0].outputs = [nbformat.v4.new_output("stream", text="pass - t-ex\n")]
    (cell,) = student_edition.student_notebook(source).cells
    assert cell.source == STUB + '\n\n\ncheck("t-ex", answer)'
    assert cell.metadata["tags"] == ["puzzle"] and cell.outputs == []      # the stub is not hidden
    assert "return 42" in source.cells[0].source, "the source notebook must not change"
    assert student_edition.puzzle_parts(source.cells[0])[2:] == ("t-ex", "answer")


@pytest.mark.parametrize("cell, message", [
    (puzzle_cell(stub=None), "stub"),
    (puzzle_cell(stub="def answer():\n    return 0"), "NotImplementedError"),
    (puzzle_cell(source="def answer():\n    return 42\n\ncheck('t-ex', answer)"), "last line must be"),
    (puzzle_cell(source='assert check("t-ex", answer)\nprint(1)'), "last line must be"),
])
def test_a_puzzle_cell_that_breaks_the_convention_is_refused(cell, message):
    with pytest.raises(ValueError, match=message):
        student_edition.student_notebook(notebook(cell))


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="notebook"):
        student_edition.student_notebook({"metadata": {}})
    with pytest.raises(ValueError, match="no notebooks"):
        student_edition.write_edition(tmp_path, tmp_path / "student")
    with pytest.raises(ValueError, match="another folder"):
        student_edition.write_edition(ROOT / "book", ROOT / "book")
    nbformat.write(notebook(puzzle_cell(stub=None)), tmp_path / "ch09_bad.ipynb")
    with pytest.raises(ValueError, match="ch09_bad.ipynb: puzzle cell"):
        student_edition.write_edition(tmp_path, tmp_path / "student")


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("edition") / "student"
    student_edition.write_edition(ROOT / "book", out)
    return out


def test_every_notebook_and_its_data_are_written(student_dir):
    assert NOTEBOOKS
    assert sorted(p.name for p in student_dir.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for folder in ("data", "images"):
        if (ROOT / "book" / folder).is_dir():
            assert (student_dir / folder).is_dir()
    assert not (student_dir / "_ext").exists()


def solution_lines(cell):
    """The lines of a solution cell that say something (not fences, options or short fragments)."""
    for line in cell.source.splitlines():
        line = line.strip()
        if len(line) >= 20 and not line.startswith((":::", "```", ":class:", ":label:")):
            yield line


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_notebook_keeps_exercises_and_drops_all_solution_text(student_dir, path):
    original = nbformat.read(path, as_version=4)
    student = nbformat.read(student_dir / path.name, as_version=4)
    solutions = [c for c in original.cells if {"solution", "teacher"} & set(c.metadata.get("tags", []))]
    text = "\n".join(c.source for c in student.cells)
    assert len(student.cells) == len(original.cells) - len(solutions)
    assert "{solution}" not in text
    # a solution may repeat a line of the chapter (a function it modifies): only its own lines count
    chapter = "\n".join(c.source for c in original.cells if c not in solutions)
    own_lines = [line for cell in solutions for line in solution_lines(cell) if line not in chapter]
    assert own_lines or not solutions, f"{path.name}: its solutions say nothing of their own?"
    leaked = [line for line in own_lines if line in text]
    assert not leaked, f"{path.name}: solution text left in the student edition: {leaked[:3]}"
    exercises = [c.source for c in original.cells if c.cell_type == "markdown" and "{exercise}" in c.source]
    for label in re.findall(r":label:\s*(\S+)", "\n".join(exercises)):
        assert f":label: {label}" in text, f"{path.name}: exercise {label} is missing"


def answer_lines(cell, elsewhere):
    """The lines of a puzzle's answer found nowhere else in the student's notebook: not in its stub, and not
    in the chapter's own cells (an answer may repeat a line of the chapter, e.g. the scores of `attention`)."""
    stub = cell.metadata["linattn"]["stub"]
    return [line.strip() for line in cell.source.splitlines()[:-1]
            if len(line.strip()) >= 12 and line.strip() not in stub and line.strip() not in elsewhere
            and not line.strip().startswith("#")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_puzzle_cells_hold_the_stub_and_the_check_and_no_answer(student_dir, path):
    book = nbformat.read(path, as_version=4).cells
    original = [c for c in book if "puzzle" in c.metadata.get("tags", [])]
    chapter = "\n".join(c.source for c in book
                        if not {"puzzle", "solution", "teacher"} & set(c.metadata.get("tags", [])))
    student = [c for c in nbformat.read(student_dir / path.name, as_version=4).cells
               if "puzzle" in c.metadata.get("tags", [])]
    assert len(student) == len(original)
    text = "\n".join(c.source for c in nbformat.read(student_dir / path.name, as_version=4).cells)
    for book_cell, cell in zip(original, student):
        stub, call, name, _ = student_edition.puzzle_parts(book_cell)
        assert cell.source == f"{stub}\n\n\n{call}", f"{path.name}: puzzle {name} is not its stub for the student"
        leaked = [line for line in answer_lines(book_cell, chapter) if line in text]
        assert not leaked, f"{path.name}: the answer to {name} is in the student edition: {leaked[:2]}"


def test_every_chapter_of_the_student_edition_has_a_puzzle_to_solve(student_dir):
    chapters = [p for p in NOTEBOOKS if re.match(r"ch\d\d_", p.name)]
    without = [p.name for p in chapters if not any(
        "puzzle" in c.metadata.get("tags", []) and "NotImplementedError" in c.source
        for c in nbformat.read(student_dir / p.name, as_version=4).cells)]
    assert not without, f"chapters whose student edition has no puzzle stub yet: {without}"


@pytest.mark.notebooks
def test_student_notebooks_run_under_nbval(student_dir):
    env = dict(os.environ, LINATTN_PROFILE="ci")
    notebooks = sorted(str(p) for p in student_dir.glob("*.ipynb"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", *notebooks], cwd=student_dir, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-2000:]
