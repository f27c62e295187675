"""The instructor guide: agendas that add up, every chapter covered, references that exist."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "book" / "instructor_guide.md").read_text(encoding="utf8")
PLANNED_CHAPTERS = range(1, 9)  # the chapter plan of DESIGN.md


def section(title):
    """The text under the heading that starts with `title`, up to the next heading of its level or above."""
    heading = re.search(rf"^(#+) {re.escape(title)}.*$", GUIDE, re.M)
    assert heading, f"the guide has no section {title!r}"
    rest = GUIDE[heading.end():]
    end = re.search(rf"^#{{1,{len(heading.group(1))}}} ", rest, re.M)
    return rest[:end.start()] if end else rest


def agenda_rows(title):
    rows = [line.split("|")[1:-1] for line in section(title).splitlines() if re.match(r"\|\s*\d+\s*\|", line)]
    assert rows, f"no agenda table under {title!r}"
    return [(int(minutes), part.strip()) for minutes, part, *_ in rows]


@pytest.mark.parametrize("title, total", [("90 minutes", 90), ("3 hours", 180)])
def test_agenda_adds_up_and_covers_every_chapter(title, total):
    rows = agenda_rows(title)
    assert sum(minutes for minutes, _ in rows) == total
    covered = {int(n) for _, part in rows for n in re.findall(r"Chapter (\d+)", part)}
    assert covered == set(PLANNED_CHAPTERS), f"{title}: chapters covered {sorted(covered)}"


def test_every_chapter_has_live_code_and_stuck_points():
    for number in PLANNED_CHAPTERS:
        text = section(f"Chapter {number}:")
        assert "**Live-code.**" in text and "**Where people get stuck.**" in text, f"chapter {number}"
        assert text.count("*Say:*") >= 1, f"chapter {number}: nothing to say when people get stuck"


@pytest.mark.parametrize("title", ["Hardware plan", "The student edition", "Pre-flight checklist"])
def test_the_practical_sections_are_there(title):
    assert len(section(title).split()) > 40


def test_hardware_plan_covers_the_t4_and_the_cpu_fallback():
    text = section("Hardware plan")
    assert "T4" in text and "CPU fallback" in text and "make book-offline" in text


def test_every_referenced_label_exists_in_a_notebook():
    """The guide refers to chapters and exercises by label; each must exist in book/ (the build
    shows a label whose chapter is not yet in the table of contents as plain text)."""
    defined = set()
    for path in (ROOT / "book").glob("*.ipynb"):
        text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text(encoding="utf8"))["cells"])
        defined |= set(re.findall(r"^\((ch\d\d)\)=", text, re.M))
        defined |= set(re.findall(r":label:\s*(\S+)", text))
    referenced = re.findall(r"\{ref\}`(?:[^`<]*<)?([^`>]+)>?`", GUIDE)
    chapter_refs = [label for label in referenced if re.match(r"ch\d\d", label)]
    assert chapter_refs, "the guide links no chapter or exercise"
    missing = sorted(set(chapter_refs) - defined)
    assert not missing, f"labels the guide refers to but no notebook defines: {missing}"


def test_make_targets_the_guide_names_exist():
    makefile = (ROOT / "Makefile").read_text(encoding="utf8")
    for target in set(re.findall(r"`make ([\w-]+)`", GUIDE)):
        assert re.search(rf"^{target}:", makefile, re.M), f"the guide names make {target}, which does not exist"
