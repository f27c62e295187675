"""Write the student edition of the book's notebooks: the same notebooks with every solution removed.

    python scripts/student_edition.py [SOURCE_DIR] [DEST_DIR]      (default: book -> student)

Every cell tagged `solution` is dropped; the exercises themselves stay. A code cell tagged
`exercise` (a cell for the student to complete) is kept and tagged `nbval-skip`, so the student
notebooks still run under nbval. Outputs are cleared. Folders next to the notebooks (data/,
images/) are copied too, so that the notebooks find their stored results; Jupyter Book's own
files (_ext/, the .md pages) are not.
"""
import copy
import shutil
import sys
from pathlib import Path

import nbformat

SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"
SKIP_TAG = "nbval-skip"
NOT_COPIED = {"_ext", "_build", ".ipynb_checkpoints", "__pycache__"}


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def student_notebook(notebook):
    """A copy of `notebook` (nbformat node) without its solution cells and without outputs."""
    if "cells" not in notebook:
        raise ValueError("expected a notebook (an object with 'cells')")
    student = copy.deepcopy(notebook)
    student.cells = [cell for cell in student.cells if SOLUTION_TAG not in tags(cell)]
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if EXERCISE_TAG in tags(cell) and SKIP_TAG not in tags(cell):
            cell.metadata["tags"] = tags(cell) + [SKIP_TAG]
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
        student = student_notebook(notebook)
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
