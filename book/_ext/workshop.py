"""Build-time help for the workshop pages (exercises index, instructor guide).

1. `book/exercises.md` holds the marker line below; at build time it is replaced by one section
   per notebook in the book (in the order of _toc.yml, so the appendices follow the chapters) listing
   its `{exercise}` directives by their titles, each a `{ref}` to the exercise's label. The list
   therefore cannot fall behind the chapters; tests/book/test_exercises.py checks that the built page
   links every label.
2. The instructor guide refers to chapters, their sections and exercises by their labels (`ch05`,
   `ch05-generation`, `ch05-ex-cache`). While a chapter is not in the table of contents, a reference to it is shown
   as plain text instead of failing the build; tests/test_instructor_guide.py checks that every
   such label exists in a notebook, so a renamed label is still caught.
3. ```{chapter-objectives} ch05``` in the guide prints the learning objectives that Chapter 5 lists
   in its "Learning objectives" admonition (the chapter's first markdown cell), so the guide and
   the chapter cannot disagree; tests/book/test_objectives.py checks every chapter has 3-5.
"""
import json
import re
from pathlib import Path

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

MARKER = "<!-- exercise-index -->"
INDEX_DOCNAME = "book/exercises"
GUIDE_DOCNAME = "book/instructor_guide"
_CHAPTER_LABEL = re.compile(r"ch\d\d(-[\w-]+)?$")
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


OBJECTIVES_TITLE = "Learning objectives"
_OBJECTIVES = re.compile(r"^(?P<fence>:{3,})\{admonition\}[ \t]*" + OBJECTIVES_TITLE
                         + r"[ \t]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)


def notebook_objectives(path):
    """The bullets of the notebook's "Learning objectives" admonition, or None when it has none."""
    cells = json.loads(Path(path).read_text(encoding="utf8"))["cells"]
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        match = _OBJECTIVES.search("".join(cell["source"]))
        if match:
            bullets, current = [], None
            for line in match["body"].splitlines():
                if line.startswith("- "):
                    current = line[2:].strip()
                    bullets.append(current)
                elif current is not None and line.startswith("  ") and line.strip():
                    bullets[-1] += " " + line.strip()
            return bullets
    return None


class ChapterObjectives(SphinxDirective):
    """The learning objectives of one chapter (its label, e.g. ch05), as a bullet list."""
    required_arguments = 1

    def run(self):
        label = self.arguments[0]
        matches = sorted(Path(self.env.srcdir, "book").glob(f"{label}_*.ipynb"))
        if len(matches) != 1:
            raise self.error(f"chapter-objectives: no single notebook book/{label}_*.ipynb")
        self.env.note_dependency(str(matches[0]))
        bullets = notebook_objectives(matches[0])
        if not bullets:
            return [nodes.paragraph(text="The chapter does not list its learning objectives yet.")]
        container = nodes.container(classes=["chapter-objectives"])
        text = ["After the chapter, participants can"] + [""] + [f"- {bullet}" for bullet in bullets]
        self.state.nested_parse(StringList(text, str(matches[0])), self.content_offset, container)
        return container.children


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


def toc_order(toc_path):
    """The docnames of a Jupyter Book _toc.yml in reading order: the root, then every `file` depth first."""
    def walk(node):
        if isinstance(node, dict):
            own = [node[key] for key in ("root", "file") if key in node]
            return own + [name for key, value in node.items() if key not in ("root", "file") for name in walk(value)]
        if isinstance(node, list):
            return [name for item in node for name in walk(item)]
        return []
    return [str(Path(name).with_suffix("")) if Path(name).suffix in (".ipynb", ".md") else str(name)
            for name in walk(yaml.safe_load(Path(toc_path).read_text(encoding="utf8")))]


def in_reading_order(docnames, toc_path):
    """docnames sorted as the table of contents lists them; any it does not list follow, by name."""
    order = {name: i for i, name in enumerate(toc_order(toc_path))} if Path(toc_path).is_file() else {}
    return sorted(docnames, key=lambda name: (order.get(name, len(order)), name))


def fill_index(app, docname, source):
    if docname != INDEX_DOCNAME or MARKER not in source[0]:
        return
    srcdir = Path(app.srcdir)
    toc_path = srcdir / (getattr(app.config, "external_toc_path", None) or "_toc.yml")
    names = [name for name in app.env.found_docs if (srcdir / f"{name}.ipynb").is_file()]
    notebooks = [(name, srcdir / f"{name}.ipynb") for name in in_reading_order(names, toc_path)]
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
    app.add_directive("chapter-objectives", ChapterObjectives)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
