"""Write the student edition of the book's notebooks: the same notebooks without solutions.

    python scripts/student_edition.py [SOURCE_DIR] [DEST_DIR]      (default: book -> student)

- Every cell tagged `solution` (solution text and solution code) or `teacher` is dropped.
- A code cell tagged `puzzle` holds the answer in the book and ends with `assert check("<label>", <fn>)`;
  its metadata holds the stub, `"linattn": {"stub": "def <fn>(...):\n    ...raise NotImplementedError"}`.
  The student edition replaces its source by the stub, a blank line and the check call without
  `assert`: the check then prints "not yet" instead of failing, and the notebook still runs.
- A code cell tagged `exercise` (a cell for the student to complete) is kept and tagged `nbval-skip`.
- Outputs are cleared. Folders next to the notebooks (data/, images/) are copied too, so that the
  notebooks find their stored results; Jupyter Book's own files (_ext/, the .md pages) are not.
"""
import copy
import re
import shutil
import sys
from pathlib import Path

import nbformat

DROPPED_TAGS = {"solution", "teacher"}
PUZZLE_TAG = "puzzle"
EXERCISE_TAG = "exercise"
SKIP_TAG = "nbval-skip"
HIDDEN_TAGS = {"hide-input", "hide-cell"}      # the book hides a puzzle's answer; the student sees the stub
NOT_COPIED = {"_ext", "_build", ".ipynb_checkpoints", "__pycache__"}
CHECK_LINE = re.compile(r'assert\s+(check\(\s*"(?P<name>[\w-]+)"\s*,\s*(?P<function>\w+)\s*\))')


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def puzzle_parts(cell):
    """(stub, check call, puzzle name, function name) of a puzzle cell; ValueError if it breaks the convention."""
    where = f"puzzle cell {cell.get('id', '?')}"
    stub = cell.get("metadata", {}).get("linattn", {}).get("stub")
    if not isinstance(stub, str) or "NotImplementedError" not in stub:
        raise ValueError(f'{where}: its metadata needs "linattn": {{"stub": ...}}, a stub that raises '
                         "NotImplementedError")
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])   # nbformat or JSON
    lines = [line for line in source.splitlines() if line.strip()]
    match = CHECK_LINE.fullmatch(lines[-1].strip()) if lines else None
    if match is None:
        raise ValueError(f'{where}: its last line must be assert check("<exercise label>", <function>)')
    return stub.rstrip(), match.group(1), match["name"], match["function"]


def student_cell(cell):
    """The student's version of one kept cell (outputs cleared, puzzles turned into stubs)."""
    if cell.cell_type != "code":
        return cell
    cell.outputs, cell.execution_count = [], None
    if PUZZLE_TAG in tags(cell):
        stub, call, _, _ = puzzle_parts(cell)
        cell.source = f"{stub}\n\n\n{call}"
        cell.metadata["tags"] = [tag for tag in tags(cell) if tag not in HIDDEN_TAGS]
    elif EXERCISE_TAG in tags(cell) and SKIP_TAG not in tags(cell):
        cell.metadata["tags"] = tags(cell) + [SKIP_TAG]
    return cell


def student_notebook(notebook):
    """A copy of `notebook` (nbformat node) without solution and teacher cells, with puzzle stubs, no outputs."""
    if "cells" not in notebook:
        raise ValueError("expected a notebook (an object with 'cells')")
    student = copy.deepcopy(notebook)
    student.cells = [student_cell(cell) for cell in student.cells if not DROPPED_TAGS & set(tags(cell))]
    return student


def write_edition(source_dir, dest_dir):
    """Write the student edition of every notebook in source_dir to dest_dir; returns the paths."""
    source_dir, dest_dir = Path(source_dir), Path(dest_dir)
    notebooks = sorted(source_dir.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no notebooks in {source_dir}")
    if dest_dir.resolve() == source_dir.resolve():
        raise ValueError("the student edition must go to another folder than the book")
    if dest_dir.exists():
        shutil.rmtree(dest_dir)
    dest_dir.mkdir(parents=True)
    for folder in source_dir.iterdir():
        if folder.is_dir() and folder.name not in NOT_COPIED:
            shutil.copytree(folder, dest_dir / folder.name, ignore=shutil.ignore_patterns(*NOT_COPIED))
    written = []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        try:
            student = student_notebook(notebook)
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from None
        nbformat.validate(student)
        nbformat.write(student, dest_dir / path.name)
        written.append(dest_dir / path.name)
    return written


def main(argv):
    if len(argv) > 2 or argv[:1] in (["-h"], ["--help"]):
        sys.exit(__doc__)
    root = Path(__file__).resolve().parents[1]
    source = Path(argv[0]) if argv else root / "book"
    dest = Path(argv[1]) if len(argv) > 1 else root / "student"
    written = write_edition(source, dest)
    print(f"student edition: {len(written)} notebooks in {dest}")


if __name__ == "__main__":
    main(sys.argv[1:])
