"""Chapter run times: recorded by every build, stored with their environment, shown in the guide.

Recording. myst-nb keeps each notebook's execution data in the Sphinx environment
(env.nb_metadata[docname]["exec_data"]: the wall time of the whole notebook, kernel start
included). When a build has executed every chapter, it writes
runtimes_<profile>_<device>_<hardware>.json (the linattn.lab.results format: date, environment,
settings, records) into <build folder>/runtimes/, the build output, so that test builds leave the
repository alone. With $LINATTN_RECORD_RUNTIMES=1 (as `make book` sets it) the file also goes to
book/data/, replacing the stored file of the same profile and machine.

Showing, in the instructor guide:
- ```{chapter-runtimes}``` is the table: a row per chapter, a column per stored file (this build's
  own times replace the stored file of the same profile and machine), and a T4 column: measured
  when a stored run on a T4 under `gpu` exists, else runtime_model's estimate, labelled as one.
- ```{t4-estimate}``` shows how that estimate is built, chapter by chapter.
- {runtime}`ch06` prints one chapter's times in the same columns, for the agenda tables.
"""
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

RECORD_VARIABLE = "LINATTN_RECORD_RUNTIMES"
DATA_DIR = Path("book") / "data"
PATTERN = "runtimes_*.json"
_CHAPTER = re.compile(r"^book/ch(\d\d)_\w+$")
PROFILE_ORDER = ("ci", "cpu", "gpu")
ALL = 0   # {runtime}`all`: every chapter together
logger = logging.getLogger(__name__)


def chapter_number(docname):
    match = _CHAPTER.match(docname)
    return int(match.group(1)) if match else None


def format_seconds(seconds):
    if seconds is None:
        return "—"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def file_name(profile, environment):
    from linattn.lab.results import hardware_slug
    return f"runtimes_{profile}_{environment['device']}_{hardware_slug(environment['hardware'])}.json"


def short_hardware(environment):
    if "t4" in environment["hardware"].lower():
        return "T4"
    return "GPU" if environment["device"] == "cuda" else "CPU"


@dataclass
class Column:
    """One profile on one machine: {chapter: seconds (None: failed)}, and where the times come from."""
    profile: str
    environment: dict
    date: str
    origin: str                                   # "this build" or the stored file's path
    times: dict = field(default_factory=dict)
    failed: set = field(default_factory=set)

    @property
    def key(self):
        return (self.profile, self.environment["device"], self.environment["hardware"])

    @property
    def label(self):
        return f"{self.profile} on {short_hardware(self.environment)}"

    def describe(self):
        e = self.environment
        return (f"{self.label}: {e['hardware']}, torch {e['torch']}, Python {e['python']}, "
                f"measured {self.date[:10]} ({self.origin})")

    def total(self, chapters):
        if self.failed or any(self.times.get(c) is None for c in chapters):
            return None
        return sum(self.times[c] for c in chapters)


def column_from_payload(payload, origin):
    column = Column(payload["settings"]["profile"], payload["environment"], str(payload["date"]), origin)
    for record in payload["records"]:
        if record["succeeded"]:
            column.times[record["chapter"]] = record["seconds"]
        else:
            column.failed.add(record["chapter"])
    return column


# ---- recording -------------------------------------------------------------------------------------

def this_build(app):
    """The profile and environment the notebooks of this build run under (as the chapters choose them)."""
    from linattn.lab.device import choose_device, environment
    from linattn.lab.profiles import get_profile
    device = choose_device(verbose=False)
    return get_profile(device=device), device, environment(device)


def executed_chapters(app, env):
    """{docname: exec_data} of the chapters executed in this build."""
    from myst_nb.sphinx_ import NbMetadataCollector
    read = getattr(app, "linattn_read_docs", set())
    data = NbMetadataCollector.get_doc_data(env)
    return {name: data[name]["exec_data"] for name in sorted(env.found_docs)
            if chapter_number(name) and name in read and data.get(name, {}).get("exec_data")}


def build_records(app, env):
    from workshop import notebook_title
    records = []
    for docname, data in executed_chapters(app, env).items():
        records.append({"chapter": chapter_number(docname), "docname": docname,
                        "title": notebook_title(Path(app.srcdir) / f"{docname}.ipynb"),
                        "seconds": data["runtime"], "succeeded": bool(data["succeeded"]),
                        "error": data.get("error"), "method": data.get("method")})
    return records


def record(app, exception):
    if exception is not None:
        return
    from linattn.lab.results import save_results
    chapters = [name for name in app.env.found_docs if chapter_number(name)]
    records = build_records(app, app.env)
    if not chapters or len(records) != len(chapters):
        logger.info(f"run times not recorded: {len(records)} of {len(chapters)} chapters executed in this build")
        return
    profile, device, environment = this_build(app)
    settings = {"profile": profile.name,
                "sizes": {"batch": profile.batch, "dim": profile.dim, "seq_lens": list(profile.seq_lens),
                          "repeats": profile.repeats},
                "execution": app.config.nb_execution_mode, "timeout_s": app.config.nb_execution_timeout,
                "measured": "wall time of each notebook's execution (myst-nb), kernel start included"}
    targets = [Path(app.outdir).parent / "runtimes"]
    if os.environ.get(RECORD_VARIABLE) == "1":
        targets.append(Path(app.srcdir) / DATA_DIR)
    for folder in targets:
        path = save_results(folder / file_name(profile.name, environment), records, settings=settings,
                            device=device)
        logger.info(f"chapter run times recorded in {path}")


def note_read_docs(app, env, docnames):
    app.linattn_read_docs = set(docnames)


# ---- the columns the guide shows -------------------------------------------------------------------

def stored_columns(srcdir):
    from linattn.lab.results import load_results
    folder = Path(srcdir) / DATA_DIR
    return [column_from_payload(load_results(path), path.relative_to(srcdir).as_posix())
            for path in sorted(folder.glob(PATTERN))]


def current_column(app, env):
    executed = executed_chapters(app, env)
    if not executed:
        return None
    import datetime
    profile, _, environment = app.linattn_build
    column = Column(profile.name, environment, datetime.date.today().isoformat(), "this build")
    for docname, data in executed.items():
        if data["succeeded"]:
            column.times[chapter_number(docname)] = data["runtime"]
        else:
            column.failed.add(chapter_number(docname))
    return column


def measured_columns(app, env):
    columns = {c.key: c for c in stored_columns(app.srcdir)}
    current = current_column(app, env)
    if current is not None:
        columns[current.key] = current
    order = {name: i for i, name in enumerate(PROFILE_ORDER)}
    return sorted(columns.values(), key=lambda c: (order.get(c.profile, 9), c.environment["hardware"]))


def t4_measured(columns):
    return any(c.profile == "gpu" and short_hardware(c.environment) == "T4" for c in columns)


FIXED_PROFILES = ("ci", "cpu")   # the small profiles whose times bound a chapter's fixed part


def fixed_part(columns, number):
    """(seconds, column label): the chapter's shortest measured time under a small profile, or (None, None).
    A chapter's size-independent work cannot take longer than its fastest complete run."""
    times = [(c.times[number], c.label) for c in columns if c.profile in FIXED_PROFILES and number in c.times]
    return min(times) if times else (None, None)


def estimates(app, columns, chapters):
    """({chapter: runtime_model.Estimate}, {chapter: the column its fixed part comes from}); ({}, {})
    when a run on a T4 is stored."""
    from runtime_model import estimate
    if t4_measured(columns):
        return {}, {}
    fixed = {n: fixed_part(columns, n) for n in chapters}
    return ({n: estimate(n, fixed[n][0], app.linattn_claims) for n in chapters},
            {n: fixed[n][1] for n in chapters})


def chapters_of(env):
    return sorted((chapter_number(name), name) for name in env.found_docs if chapter_number(name))


def view(app, env):
    """(chapters, measured columns, estimates, where their fixed parts come from): computed once per write."""
    cached = getattr(app, "linattn_runtime_view", None)
    if cached is None:
        chapters = chapters_of(env)
        columns = measured_columns(app, env)
        est, fixed_from = estimates(app, columns, [n for n, _ in chapters])
        cached = app.linattn_runtime_view = (chapters, columns, est, fixed_from)
    return cached


def forget_view(app, env):
    app.linattn_runtime_view = None
    guide = "book/instructor_guide"
    return [guide] if guide in env.found_docs else []


# ---- nodes -----------------------------------------------------------------------------------------

class runtime_table(nodes.General, nodes.Element):
    pass


class estimate_table(nodes.General, nodes.Element):
    pass


class runtime_ref(nodes.Inline, nodes.Element):
    pass


class ChapterRuntimes(SphinxDirective):
    def run(self):
        for path in (Path(self.env.srcdir) / DATA_DIR).glob(PATTERN):
            self.env.note_dependency(str(path))
        return [runtime_table()]


class EstimateModel(SphinxDirective):
    def run(self):
        return [estimate_table()]


def runtime_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """{runtime}`ch06`: one chapter's times; {runtime}`all`: every chapter's together."""
    match = re.fullmatch(r"ch(\d\d)|all", text.strip())
    if not match:
        msg = inliner.reporter.error(f"{{runtime}} takes a chapter such as ch06, or all; got {text!r}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [runtime_ref(rawtext, chapter=int(match.group(1)) if match.group(1) else ALL)], []


def _table(header, rows, classes):
    table = nodes.table(classes=["colwidths-auto"] + classes)
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    for target, cells in ((head, [header]), (body, rows)):
        for cells_of_row in cells:
            row = nodes.row()
            for cell in cells_of_row:
                paragraph = nodes.paragraph()
                paragraph += cell if isinstance(cell, nodes.Node) else nodes.Text(str(cell))
                row += nodes.entry("", paragraph)
            target += row
    return table


def _chapter_link(docname, number, fromdoc):
    ref = addnodes.pending_xref("", refdoc=fromdoc, reftarget="/" + docname, reftype="doc", refdomain="std",
                                refexplicit=True, refwarn=True)
    ref += nodes.inline(text=f"Chapter {number}")
    return ref


def _cell(column, number):
    return "failed" if number in column.failed else format_seconds(column.times.get(number))


def _estimate_cell(est):
    return "not estimated" if est is None or est.seconds is None else f"≈ {format_seconds(est.seconds)} (estimate)"


def render_table(app, env, docname):
    chapters, columns, est, _ = view(app, env)
    header = ["chapter"] + [c.label for c in columns] + (["gpu on T4 (estimate)"] if est else [])
    rows = []
    for number, chapter_doc in chapters:
        row = [_chapter_link(chapter_doc, number, docname)] + [_cell(c, number) for c in columns]
        if est:
            row.append(_estimate_cell(est[number]))
        rows.append(row)
    numbers = [n for n, _ in chapters]
    totals = ["all chapters"] + [format_seconds(c.total(numbers)) for c in columns]
    if est:
        known = [e.seconds for e in est.values()]
        totals.append("—" if None in known else f"≈ {format_seconds(sum(known))}")
    rows.append(totals)
    container = nodes.container(classes=["chapter-runtimes"])
    container += _table(header, rows, ["runtime-table"])
    sources = nodes.bullet_list()
    for column in columns:
        sources += nodes.list_item("", nodes.paragraph(text=column.describe()))
    if not columns:
        sources += nodes.list_item("", nodes.paragraph(text="No chapter has been executed by a build yet."))
    container += sources
    return container


def render_estimates(app, env, docname):
    chapters, _, est, fixed_from = view(app, env)
    if not est:
        return nodes.paragraph(text="A run on a T4 under the gpu profile is stored, so the guide shows its "
                                    "measured times instead of an estimate.")
    header = ["chapter", "fixed part (shortest measured run under ci or cpu)", "sweep part (T4 roofline floor)",
              "estimate", "what the model counts"]
    rows = [[_chapter_link(doc, n, docname),
             format_seconds(est[n].fixed) + (f" ({fixed_from[n]})" if fixed_from.get(n) else ""),
             "—" if est[n].sweeps is None else format_seconds(est[n].sweeps), _estimate_cell(est[n]), est[n].note]
            for n, doc in chapters]
    return _table(header, rows, ["estimate-table"])


def render_ref(app, env, number):
    chapters, columns, est, _ = view(app, env)
    if number == ALL:
        numbers = [n for n, _ in chapters]
        parts = [f"{c.label} {format_seconds(c.total(numbers))}" for c in columns]
        known = [e.seconds for e in est.values()]
        if est:
            parts.append("gpu on T4 not estimated for every chapter" if None in known
                         else f"gpu on T4 ≈ {format_seconds(sum(known))} (estimate)")
    else:
        parts = [f"{c.label} {_cell(c, number)}" for c in columns if number in c.times or number in c.failed]
        if est and number in est:
            e = est[number]
            parts.append(f"gpu on T4 ≈ {format_seconds(e.seconds)} (estimate)" if e.seconds is not None
                         else "gpu on T4 not estimated")
    return nodes.inline(text=" · ".join(parts) if parts else "not measured yet", classes=["runtime"])


class RuntimeTransform(SphinxPostTransform):
    default_priority = 8   # before the references are resolved (the chapter links are pending_xref)

    def run(self, **kwargs):
        app, env, docname = self.app, self.env, self.env.docname
        for node in list(self.document.findall(runtime_table)):
            node.replace_self(render_table(app, env, docname))
        for node in list(self.document.findall(estimate_table)):
            node.replace_self(render_estimates(app, env, docname))
        for node in list(self.document.findall(runtime_ref)):
            node.replace_self(render_ref(app, env, node["chapter"]))


def inited(app):
    app.linattn_build = this_build(app)
    app.linattn_runtime_view = None


def setup(app):
    app.setup_extension("claims")   # the T4 estimate reads the datasheet numbers from the registry
    app.add_node(runtime_table)
    app.add_node(estimate_table)
    app.add_node(runtime_ref)
    app.add_directive("chapter-runtimes", ChapterRuntimes)
    app.add_directive("t4-estimate", EstimateModel)
    app.add_role("runtime", runtime_role)
    app.add_post_transform(RuntimeTransform)
    app.connect("builder-inited", inited)
    app.connect("env-before-read-docs", note_read_docs)
    app.connect("env-updated", forget_view)
    app.connect("build-finished", record)
    return {"parallel_read_safe": True, "parallel_write_safe": False}
