"""Exercises across the book: well-formed labels with a difficulty, solutions next to them and free of
code that would never run, a puzzle with a check in every chapter, all on the exercises page."""
import ast
import importlib
import importlib.util
import json
import re
import shlex
from pathlib import Path

import nbformat
import pytest

from linattn.show.puzzles import PUZZLES, check

ROOT = Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


workshop = _load("workshop", ROOT / "book" / "_ext" / "workshop.py")
student_edition = _load("student_edition", ROOT / "scripts" / "student_edition.py")

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


def tags(cell):
    return cell.metadata.get("tags", [])


def is_puzzle(cell):
    return cell.cell_type == "code" and "puzzle" in tags(cell)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_exercises_are_labelled_for_their_chapter_and_solved_right_after(path):
    """After an exercise comes its solution, or its puzzle cell (which holds the answer), optionally
    followed by a solution for the same label."""
    prefix = path.name[:4] + "-ex-"                              # ch05_causal.ipynb -> ch05-ex-
    cells = nbformat.read(path, as_version=4).cells
    labels = labels_in(path)
    assert labels, f"{path.name} has no exercises"
    assert all(label.startswith(prefix) for label in labels), f"{path.name}: labels {labels} must start {prefix}"
    for i, cell in enumerate(cells):
        for label in EXERCISE_LABEL.findall(cell.source) if cell.cell_type == "markdown" else []:
            after = cells[i + 1] if i + 1 < len(cells) else None
            if after is not None and is_puzzle(after):
                assert student_edition.puzzle_parts(after)[2] == label, \
                    f"{path.name}: the puzzle after exercise {label} checks another puzzle"
                continue
            assert after is not None and f"{{solution}} {label}" in after.source, \
                f"{path.name}: the cell after exercise {label} is neither its solution nor its puzzle"
            assert "solution" in tags(after), f"{path.name}: solution of {label} not tagged"


# ---- difficulty ------------------------------------------------------------------------------------

STARS = re.compile(r"(★{1,3}) \S")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_title_starts_with_its_difficulty(path):
    """★ minutes, ★★ a quarter hour, ★★★ a project: `:::{exercise} ★★ Title`."""
    unmarked = [f"{label}: {title!r}" for label, title in workshop.notebook_exercises(path)
                if not STARS.match(title) or title.startswith("★★★★")]
    assert not unmarked, f"{path.name}: exercise titles without 1-3 stars: {unmarked}"


def test_the_difficulty_check_catches_a_missing_or_extra_star():
    assert STARS.match("★★ Title") and STARS.match("★ A") and STARS.match("★★★ Project")
    assert not STARS.match("Title") and not STARS.match("★★Title") and not STARS.match("** Title")


# ---- puzzles: an exercise, then a cell with the answer, its stub and the check ---------------------

TITLED_EXERCISE = re.compile(r"\{exercise\}[ \t]*([^\n]*)\n(?:\s*:[\w-]+:[^\n]*\n)*?\s*:label:\s*(\S+)")


def exercises_in(markdown):
    """{label: title} of the exercise directives in a markdown text."""
    return {label: title.strip() for title, label in TITLED_EXERCISE.findall(markdown)}


def puzzle_cells(path):
    """(exercise title, puzzle cell) for each puzzle cell of a notebook."""
    cells = nbformat.read(path, as_version=4).cells
    found = []
    for before, cell in zip([nbformat.v4.new_raw_cell()] + cells, cells):
        if is_puzzle(cell):
            found.append((exercises_in(before.source) if before.cell_type == "markdown" else {}, cell))
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_has_a_puzzle_with_a_check(path):
    assert puzzle_cells(path), f"{path.name}: no code cell tagged `puzzle` ending in assert check(...)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_puzzle_cells_follow_the_convention(path, capsys):
    for titles, cell in puzzle_cells(path):
        stub, call, name, function = student_edition.puzzle_parts(cell)
        assert name in titles, f"{path.name}: puzzle {name} must follow its exercise (label {name})"
        assert name in PUZZLES, f"{path.name}: {name} is not a puzzle of linattn.show.puzzles"
        assert titles[name].startswith(PUZZLES[name].difficulty + " "), \
            f"{path.name}: exercise {name} must be marked {PUZZLES[name].difficulty}, like its puzzle"
        assert {"hide-input", "hide-cell"} & set(tags(cell)), f"{path.name}: hide the answer to {name} (hide-input)"
        defined = {node.name for node in ast.parse(cell.source).body if isinstance(node, ast.FunctionDef)}
        assert function in defined, f"{path.name}: the puzzle cell of {name} must define {function}"
        namespace = {}
        exec(compile(stub, f"<stub of {name}>", "exec"), namespace)
        assert check(name, namespace[function]) is False, f"{path.name}: the stub of {name} passes its check"
        out = capsys.readouterr().out
        assert out.startswith(f"not yet - {name}") and "Traceback" not in out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nothing_after_a_puzzle_uses_its_function(path):
    """The student edition keeps the stub, so a later cell (other than a solution, which it drops)
    that calls the puzzle's function would fail there."""
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(cells):
        if not is_puzzle(cell):
            continue
        function = student_edition.puzzle_parts(cell)[3]
        users = [j for j, later in enumerate(cells[i + 1:], i + 1) if later.cell_type == "code"
                 and not {"solution", "puzzle"} & set(tags(later)) and re.search(rf"\b{function}\b", later.source)]
        assert not users, f"{path.name}: cells {users} use {function}, which is a stub in the student edition"


# ---- solutions whose code runs -------------------------------------------------------------------

FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)
RUNNABLE = {"python", "python3", "py", "ipython", "ipython3", "pycon", "{code-cell}", "code-cell"}
SHELL = {"bash", "sh", "shell", "console"}


def runnable_code(markdown):
    """The fenced blocks of a markdown text that would run if they were a code cell: Python (or a
    bare fence holding Python statements), and shell lines other than `python -m linattn.<module>`."""
    found = []
    for match in FENCE.finditer(markdown):
        language, body = (match["info"].split() or [""])[0].lower(), match["body"]
        if language in RUNNABLE or (language == "" and _looks_like_python(body)):
            found.append(body.strip().splitlines()[0] if body.strip() else language)
        elif language in SHELL:
            found += [line for line in _shell_commands(body) if not _is_package_command(line)]
    return found


def _looks_like_python(body):
    try:
        tree = ast.parse(body)
    except SyntaxError:
        return False
    return any(isinstance(node, (ast.Assign, ast.FunctionDef, ast.For, ast.Import, ast.ImportFrom))
               or isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) for node in tree.body)


def _shell_commands(body):
    return [line.strip() for line in body.replace("\\\n", " ").splitlines() if line.strip()]


def _is_package_command(line):
    """`python -m linattn.<module> ...` for a module of the package whose own parser accepts the arguments:
    the book's documented command lines (too long to run in a test; their modules are tested)."""
    match = re.match(r"(?:python3?|\$ python3?) -m (linattn(?:\.\w+)+)\b(.*)", line)
    if not match or importlib.util.find_spec(match.group(1)) is None:
        return False
    return _parses(importlib.import_module(match.group(1)), shlex.split(match.group(2), comments=True))


def _parses(module, argv):
    try:
        module.parse_args(argv)
    except SystemExit as stop:  # --help exits with 0, a bad argument with 2
        return stop.code == 0
    return True


def test_runnable_code_is_recognised():
    assert runnable_code("text\n```python\nx = 1\n```\n") == ["x = 1"]
    assert runnable_code("```\nprint(2)\n```") == ["print(2)"]
    assert runnable_code("```{code-cell} ipython3\ny = 2\n```") == ["y = 2"]
    assert runnable_code("```bash\npip install foo\n```") == ["pip install foo"]
    assert runnable_code("```bash\npython -m linattn.learn.experiments --size full \\\n    --task recall\n```") == []
    assert runnable_code("```bash\npython -m linattn.learn.experiments --size fulll\n```") != []
    assert runnable_code("```\nN x N matrix\n```") == [] and runnable_code("no code, `inline()` only") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solution_markdown_holds_no_code_that_never_runs(path):
    """Code in a solution runs in a code cell tagged `solution` right after it (hidden in the book); in
    the markdown it would never run, and could rot unseen."""
    problems = [f"cell {i}: {code!r}" for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
                if cell.cell_type == "markdown" and "solution" in tags(cell)
                for code in runnable_code(cell.source)]
    assert not problems, (f"{path.name}: move this code into a `solution` code cell after the solution "
                          f"{problems}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solution_code_cells_sit_right_after_their_solution_and_are_hidden(path):
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or "solution" not in tags(cell):
            continue
        before = cells[i - 1]
        assert "solution" in tags(before) and (before.cell_type == "code" or "{solution}" in before.source), \
            f"{path.name}: solution code cell {i} must follow its solution (or another solution code cell)"
        assert {"hide-input", "hide-cell"} & set(tags(cell)), f"{path.name}: solution code cell {i} is not hidden"


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


def test_the_index_lists_notebooks_in_the_order_of_the_table_of_contents(tmp_path):
    """Not by file name, which would put appendix_cpu before Chapter 1."""
    from types import SimpleNamespace
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/welcome\nparts:\n"
                                       "  - chapters:\n      - file: book/ch01_a\n      - file: book/ch02_b.ipynb\n"
                                       "  - chapters:\n      - file: book/appendix_cpu\n      - file: book/exercises\n")
    (tmp_path / "book").mkdir()
    for stem, title in (("ch01_a", "One"), ("ch02_b", "Two"), ("appendix_cpu", "Fast"), ("zz_extra", "Extra")):
        cell = nbformat.v4.new_markdown_cell(f"# {title}\n\n:::{{exercise}} ★ E\n:label: {stem}-ex\nText.\n:::")
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "book" / f"{stem}.ipynb")
    assert workshop.toc_order(tmp_path / "_toc.yml") == [
        "book/welcome", "book/ch01_a", "book/ch02_b", "book/appendix_cpu", "book/exercises"]
    app = SimpleNamespace(srcdir=str(tmp_path), config=SimpleNamespace(external_toc_path=str(tmp_path / "_toc.yml")),
                          env=SimpleNamespace(found_docs={"book/appendix_cpu", "book/zz_extra", "book/ch02_b",
                                                          "book/ch01_a", "book/welcome", "book/exercises"}))
    source = [workshop.MARKER]
    workshop.fill_index(app, workshop.INDEX_DOCNAME, source)
    headings = re.findall(r"^## (.+)$", source[0], re.M)
    assert headings == ["Chapter 1: One", "Chapter 2: Two", "Fast", "Extra"]   # unlisted pages last


def test_the_book_lists_its_appendix_exercises_after_the_chapters():
    notebooks = [f"book/{p.stem}" for p in NOTEBOOKS]
    ordered = workshop.in_reading_order(notebooks, ROOT / "_toc.yml")
    chapters = [name for name in ordered if re.match(r"book/ch\d\d_", name)]
    assert ordered[:len(chapters)] == sorted(chapters), ordered


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
