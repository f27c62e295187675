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
        defined |= set(re.findall(r"^\((ch\d\d[\w-]*)\)=", text, re.M))
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


# ---- a workshop that runs on the day ------------------------------------------------------------------

def agenda_table(title):
    """Rows of an agenda as lists of cells (minutes, part, you do, participants do, launch, run time)."""
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in section(title).splitlines()
            if re.match(r"\|\s*\d+\s*\|", line)]


@pytest.mark.parametrize("title", ["90 minutes", "3 hours"])
def test_every_agenda_slot_that_runs_a_chapter_cites_its_run_time(title):
    for row in agenda_table(title):
        chapters = re.findall(r"Chapter (\d+)", row[1])
        if chapters:
            assert row[5] == f"{{runtime}}`ch{int(chapters[0]):02d}`", f"{title}: {row[1]} cites no run time"


@pytest.mark.parametrize("title", ["90 minutes", "3 hours"])
def test_launch_overhead_is_budgeted(title):
    launches = [int(row[4]) for row in agenda_table(title) if row[4]]
    assert 6 <= len(launches) <= 8, f"{title}: {len(launches)} launches budgeted"
    assert all(1 <= minutes <= 3 for minutes in launches)
    for row in agenda_table(title):
        assert int(row[0]) >= (int(row[4]) if row[4] else 0) + 2, f"{title}: {row[1]} is all launch"


def test_the_break_is_a_real_break():
    (row,) = [row for row in agenda_table("3 hours") if row[1] == "Break"]
    assert int(row[0]) >= 10 and not row[3] and not row[4] and not row[5]
    assert not re.search(r"\b(start|run the|launch|exercise)\b|\{", row[2], re.I), row[2]


@pytest.mark.parametrize("title", ["90 minutes", "3 hours"])
def test_each_agenda_has_an_ordered_cut_list(title):
    text = section(title)
    assert "**Cut list.**" in text
    items = re.findall(r"^\d+\. ", text.split("**Cut list.**", 1)[1], re.M)
    assert len(items) >= 4, f"{title}: the cut list has {len(items)} items"


def test_every_chapter_shows_its_objectives_and_two_or_three_checkpoints():
    for number in PLANNED_CHAPTERS:
        text = section(f"Chapter {number}:")
        assert f"```{{chapter-objectives}} ch{number:02d}\n```" in text, f"chapter {number}: no objectives"
        checkpoints = text.split("**Checkpoints.**", 1)
        assert len(checkpoints) == 2, f"chapter {number}: no checkpoint questions"
        questions = re.findall(r"^\d+\. \*(.+?)\*", checkpoints[1], re.M | re.S)
        assert 2 <= len(questions) <= 3, f"chapter {number}: {len(questions)} checkpoints"
        assert all(q.rstrip().endswith("?") for q in questions), f"chapter {number}: a checkpoint is not a question"


def test_colab_logistics():
    text = section("Colab on the day")
    for needed in ("Runtime → Disconnect and delete runtime", "T4", "%env LINATTN_PROFILE=ci", "`PROFILE`",
                   "When Colab grants no GPU", "`cpu` profile", "publishes no fixed limits"):
        assert needed in text, f"the Colab section does not mention {needed!r}"
    # the FAQ's own sentences, quoted exactly (see the claims registry's colab-session-limit entry)
    faq = ['"Colab resources are not guaranteed and not unlimited, and the usage limits sometimes fluctuate."',
           '"Colab does not publish these limits, in part because they can vary over time."',
           '"Runtimes will time out if you are idle."']
    import yaml
    registry = yaml.safe_load((ROOT / "book" / "data" / "claims.yml").read_text(encoding="utf8"))
    limit = next(c for g in registry["groups"] for c in g["claims"] if c["id"] == "colab-session-limit")
    faq.append(limit["quote"].strip().strip('"'))
    flat = " ".join(text.split())
    for sentence in faq:
        assert sentence in flat, f"the guide does not quote the Colab FAQ exactly: {sentence}"
    assert "`ci`" in section("Two agendas") and "90-minute tour" in section("Two agendas")


def test_the_student_edition_section_says_how_to_hand_it_out():
    text = section("The student edition")
    assert "zip" in text and "https://colab.research.google.com/github/" in text and "not a notebook" in text


def test_run_times_are_generated_not_typed():
    text = section("Run times")
    assert "```{chapter-runtimes}\n```" in text and "```{t4-estimate}\n```" in text
    assert "LINATTN_RECORD_RUNTIMES" in text and "estimate" in text
    assert not re.search(r"\d+(\.\d+)? ?(s|min|seconds|minutes)\b", text.replace("one to\ntwo minutes", "")), \
        "a run time typed into the guide"


@pytest.mark.book
def test_the_built_guide_shows_the_measured_tables_and_cites_them(built_book):
    html = (built_book.html / "book" / "instructor_guide.html").read_text(encoding="utf8")
    table = re.search(r'<table[^>]*runtime-table.*?</table>', html, re.S)
    assert table, "no run-time table in the built guide"
    rows = re.findall(r"<tr.*?</tr>", table.group(0), re.S)
    assert len(rows) == 1 + len(PLANNED_CHAPTERS) + 1          # header, chapters, total
    assert "ci on CPU" in rows[0] or "ci on GPU" in rows[0] or "ci on T4" in rows[0]
    assert re.search(r'<table[^>]*estimate-table', html) or "measured times instead of an estimate" in html
    cited = re.findall(r'<span class="runtime">(.*?)</span>', html)
    assert len(cited) >= 2 * len(PLANNED_CHAPTERS) and all("ci on" in c for c in cited[:-1])
    assert "{runtime}" not in html and "{chapter-objectives}" not in html
    (recorded,) = (built_book.html.parent / "runtimes").glob("runtimes_ci_*.json")
    records = json.loads(recorded.read_text())["records"]
    assert sorted(r["chapter"] for r in records) == list(PLANNED_CHAPTERS)
