"""Build-time help for the workshop pages (exercises index, instructor guide).

1. `book/exercises.md` holds the marker line below; at build time it is replaced by one section
   per notebook in the book (in file-name order, i.e. chapter order) listing its `{exercise}`
   directives by their titles, each a `{ref}` to the exercise's label. The list therefore cannot
   fall behind the chapters; tests/test_exercises.py checks that the built page links every label.
2. The instructor guide refers to chapters and exercises by their labels (`ch05`,
   `ch05-ex-cache`). While a chapter is not in the table of contents, a reference to it is shown
   as plain text instead of failing the build; tests/test_instructor_guide.py checks that every
   such label exists in a notebook, so a renamed label is still caught.
"""
import json
import re
from pathlib import Path

MARKER = "<!-- exercise-index -->"
INDEX_DOCNAME = "book/exercises"
GUIDE_DOCNAME = "book/instructor_guide"
_CHAPTER_LABEL = re.compile(r"ch\d\d(-ex-[\w-]+)?$")
_DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                        re.M | re.S)
_LABEL = re.compile(r"^:label:[ \t]*(\S+)", re.M)


def notebook_exercises(path):
    """[(label, title)] of the exercise directives in a notebook's markdown cells, in order."""
    cells = json.loads(Path(path).read_text(encoding="utf8"))["cells"]
    found = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for match in _DIRECTIVE.finditer("".join(cell["source"])):
            label = _LABEL.search(match["body"])
            if label is None:
                raise ValueError(f"{path}: an exercise without a :label: cannot be indexed")
            found.append((label.group(1), match["title"].strip()))
    return found


def notebook_title(path):
    """The first level-1 heading of a notebook, prefixed "Chapter N:" for a file named chNN_*."""
    cells = json.loads(Path(path).read_text(encoding="utf8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    heading = re.search(r"^# (.+)$", text, re.M)
    title = heading.group(1).strip() if heading else Path(path).stem
    number = re.match(r"ch(\d+)", Path(path).stem)
    return f"Chapter {int(number.group(1))}: {title}" if number else title


def _link_text(text):
    return text.replace("`", "").replace("<", "&lt;")


def index_markdown(notebooks):
    """MyST for the list: one section per notebook with exercises, one bullet per exercise."""
    sections = []
    for docname, path in notebooks:
        exercises = notebook_exercises(path)
        if not exercises:
            continue
        count = f"{len(exercises)} exercise" + ("s" if len(exercises) > 1 else "")
        lines = [f"## {notebook_title(path)}", "", f"{{doc}}`Read the chapter </{docname}>` · {count}", ""]
        lines += [f"- {{ref}}`{_link_text(title) or label} <{label}>`" for label, title in exercises]
        sections.append("\n".join(lines))
    return "\n\n".join(sections) if sections else "No chapter has exercises yet."


def fill_index(app, docname, source):
    if docname != INDEX_DOCNAME or MARKER not in source[0]:
        return
    srcdir = Path(app.srcdir)
    notebooks = sorted((name, srcdir / f"{name}.ipynb") for name in app.env.found_docs
                       if (srcdir / f"{name}.ipynb").is_file())
    source[0] = source[0].replace(MARKER, index_markdown(notebooks))


def always_reread_index(app, env, added, changed, removed):
    return [INDEX_DOCNAME] if INDEX_DOCNAME in env.found_docs else []


def chapter_not_in_book(app, env, node, contnode):
    if (node.get("refdoc") == GUIDE_DOCNAME and node.get("reftype") == "ref"
            and _CHAPTER_LABEL.match(node.get("reftarget", ""))):
        return contnode
    return None


def setup(app):
    app.connect("source-read", fill_index)
    app.connect("missing-reference", chapter_not_in_book)
    app.connect("env-get-outdated", always_reread_index)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
