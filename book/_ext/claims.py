"""Registered claims: the numbers the book quotes from elsewhere, kept in book/data/claims.yml.

1. In a chapter, {claim}`paper-generation-throughput` prints the registered value ("4,462×") and
   links to the claim's entry in the claims appendix; {claim}`text <id>` prints `text` instead.
   An id that is not registered is a build warning, so `-W` fails the build.
2. In book/claims.md, the `claims-table` directive writes the appendix: one table per group of the
   registry, a row per claim, anchored at claim-<id>. Its last column says what this build's stored
   results measured, read from the files the entry names by the reader it names (READERS below).
3. A claim's "checked in" link names a label in a chapter. While no chapter defines it yet, the
   link is shown as plain text instead of failing the build; tests/book/test_claims.py checks that
   every such label exists, so a missing one is still caught.
"""
import math
import re
from pathlib import Path

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

REGISTRY = Path("book") / "data" / "claims.yml"
APPENDIX_DOCNAME = "book/claims"
STATUSES = ("verified", "transcribed", "translated", "derived", "unchecked")
REQUIRED = ("id", "source", "location", "value", "conditions", "status", "checked_in", "measured", "typed")
_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*$")
_ROLE_TEXT = re.compile(r"^(?:(?P<title>.*?)\s*<(?P<target>[^<>]+)>|(?P<bare>[^<>]+))$", re.S)
logger = logging.getLogger(__name__)


def anchor(claim_id):
    return f"claim-{claim_id}"


# ---- the registry --------------------------------------------------------------------------------

def load_registry(path):
    """(groups, claims): the groups as written, and {id: claim}; raises ValueError on a malformed entry."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf8"))
    groups, claims = data.get("groups") if isinstance(data, dict) else None, {}
    if not groups:
        raise ValueError(f"{path}: no groups of claims")
    for group in groups:
        for claim in group.get("claims") or []:
            _check_claim(path, claim, claims)
            claims[claim["id"]] = claim
    return groups, claims


def _check_claim(path, claim, seen):
    where = f"{path}: claim {claim.get('id')!r}"
    missing = [field for field in REQUIRED if field not in claim]
    if missing:
        raise ValueError(f"{where} lacks {missing}")
    if not _ID.match(str(claim["id"])) or claim["id"] in seen:
        raise ValueError(f"{where}: ids are lower-case words joined by '-', each used once")
    if claim["status"] not in STATUSES:
        raise ValueError(f"{where}: status must be one of {STATUSES}, got {claim['status']!r}")
    checked = claim["checked_in"]
    if checked is not None and not (isinstance(checked, dict) and checked.get("label") and checked.get("text")):
        raise ValueError(f"{where}: checked_in must be null or {{label, text}}")
    measured = claim["measured"]
    if measured is not None and (not isinstance(measured, dict) or measured.get("read") not in READERS
                                 or not measured.get("files")):
        raise ValueError(f"{where}: measured must be null or {{files, read, args}} with read in {sorted(READERS)}")
    for pattern in claim["typed"]:
        re.compile(pattern)


# ---- readers: one stored results file -> what it measured, as a sentence -------------------------

def _stored(payload):
    e = payload["environment"]
    return f"{e['hardware']}, torch {e['torch']}, stored {str(payload['date'])[:10]}"


def read_sizes(payload):
    s = payload["settings"]
    ns = s["seq_lens"]
    return (f"{_stored(payload)}: batch {s['batch']}, d = {s['dim']}, N = {min(ns)}–{max(ns)}, "
            f"{s['repeats']} repetitions, {', '.join(s.get('dtypes', []))}"
            + (f", `{s['profile']}` profile" if s.get("profile") else ""))


def read_speedup(payload, *, fast, slow, dtype):
    from linattn.lab import report
    ratios = report.speedups(payload, dtype, fast, slow)
    if not ratios:
        return None
    best = max(ratios, key=ratios.get)
    largest = max(ratios)
    text = (f"{_stored(payload)}, {dtype}: {report.label(payload, fast, dtype)} faster than "
            f"{report.label(payload, slow, dtype)} by up to {ratios[best]:.1f}× (at N = {best})")
    if largest != best:
        text += f"; {ratios[largest]:.1f}× at the longest N = {largest}"
    return text


def read_roofline(payload, *, dtype, quantity, hardware=None):
    from linattn.lab import report
    if hardware and hardware.lower() not in payload["environment"]["hardware"].lower():
        return None
    roof = report.roofline(payload, dtype)
    if roof is None:
        return None
    value = {"bandwidth": f"{roof.bandwidth / 1e9:.0f} GB/s (a copy)",
             "peak_flops": f"{roof.peak_flops / 1e12:.2f} TFLOP/s (a matmul)",
             "ridge": f"ridge at {roof.ridge_intensity:.1f} FLOP per byte (matmul over copy)"}[quantity]
    return f"{_stored(payload)}, {dtype}: {value}"


def read_backend(payload, *, implementation, dtype):
    backends = sorted({r.get("backend") for r in payload["records"] if r["implementation"] == implementation
                       and r["dtype"] == dtype and not r.get("skipped") and r.get("backend")})
    return f"{_stored(payload)}, {dtype}: {implementation} ran {', '.join(backends)}" if backends else None


def read_memory_slope(payload, *, implementation, dtype):
    rows = sorted((r["seq_len"], r["peak_bytes"]) for r in payload["records"]
                  if r["implementation"] == implementation and r["dtype"] == dtype and not r.get("skipped")
                  and r.get("memory") == "measured" and r.get("peak_bytes"))
    if len(rows) < 2:
        return None
    (n0, b0), (n1, b1) = rows[0], rows[-1]
    slope = math.log(b1 / b0) / math.log(n1 / n0)
    return (f"{_stored(payload)}, {dtype}: {implementation}'s measured peak memory grows like N^{slope:.2f} "
            f"from N = {n0} to {n1}")


def read_protocol(payload):
    """The paper's protocol (linattn's paper sweep): how far each contender got, and the per-sample
    time ratio of naive softmax to linear attention at the longest N both reached."""
    ran = {}
    for r in payload["records"]:
        if not r.get("skipped"):
            ran.setdefault(r["implementation"], {})[r["seq_len"]] = r["time_per_sample_s"]
    if not ran:
        return None
    reach = ", ".join(f"{name} up to N = {max(times)}" for name, times in sorted(ran.items()))
    text = f"{_stored(payload)}, {payload['settings'].get('pass', 'forward+backward')}: {reach}"
    common = sorted(ran.get("softmax", {}).keys() & ran.get("linear", {}).keys())
    if common:
        n = common[-1]
        text += f"; at N = {n} naive softmax took {ran['softmax'][n] / ran['linear'][n]:.1f}× linear's time per sample"
    return text


def read_softmax_limit(payload, *, implementation="softmax", dtype="float32"):
    """Where naive softmax stopped in a protocol sweep and why (`linattn.lab.paper_report.where_stops`):
    its longest N, and the next N with the reason it was skipped (memory or the time budget)."""
    from linattn.lab import paper_report, report
    stop = paper_report.where_stops(payload, implementation, dtype)
    if stop.last is None:
        return None
    return f"{_stored(payload)}, {dtype}: {report.label(payload, implementation, dtype)} {stop}"


def read_generation(payload, *, measure, fast, slow):
    """Tokens per second of `fast` over `slow` at each prompt length (latency: batch 1; throughput:
    the largest batch that fits)."""
    rate = {(r["method"], r["prompt_len"]): (r["tokens_per_s"], r["batch"]) for r in payload["records"]
            if r["measure"] == measure and not r.get("skipped") and r.get("tokens_per_s")}
    lengths = sorted({n for (_, n) in rate} & {n for (m, n) in rate if m == fast} & {n for (m, n) in rate if m == slow})
    if not lengths:
        return None
    ratios = ", ".join(f"{rate[fast, n][0] / rate[slow, n][0]:.1f}× at prompt {n}" + (
        f" (batches {rate[fast, n][1]} and {rate[slow, n][1]})" if measure == "throughput" else "") for n in lengths)
    what = ("latency at batch 1 (at one sequence, also the throughput ratio)" if measure == "latency"
            else "throughput at the largest batch that fits")
    return f"{_stored(payload)}, {what}: {fast}'s tokens per second over {slow}'s: {ratios}"


def read_gradient_memory(payload):
    """The causal gradient benchmark (benchmarks/causal_grad_bench.py): extra peak bytes of forward +
    backward over the inputs' bytes, and the time, through the paper's gradient (linattn.fast.causal_grad)
    and through autograd over the chunked form."""
    parts = []
    for r in payload["records"]:
        sizes, inputs, peak = r["sizes"], r["inputs_bytes"], r["peak_bytes"]
        seconds = {name: r["timings"][name]["median_s"] for name in ("function_forward_backward",
                                                                      "autograd_forward_backward")}
        parts.append(f"{r['dtype']}, B = {sizes['batch']}, N = {sizes['seq_len']}, d = {sizes['dim']}: extra peak "
                     f"memory of forward + backward {peak['function_forward_backward'] / inputs:.2f}× the inputs' "
                     f"bytes with eqs. 13–15, {peak['autograd_forward_backward'] / inputs:.2f}× with autograd "
                     f"through the chunked form; {seconds['function_forward_backward'] * 1e3:.0f} ms against "
                     f"{seconds['autograd_forward_backward'] * 1e3:.0f} ms")
    return f"{_stored(payload)}, " + "; ".join(parts) if parts else None


READERS = {"sizes": read_sizes, "speedup": read_speedup, "roofline": read_roofline, "backend": read_backend,
           "memory_slope": read_memory_slope, "protocol": read_protocol, "softmax_limit": read_softmax_limit,
           "generation": read_generation, "gradient_memory": read_gradient_memory}


def measured_lines(claim, book_dir):
    """What the stored results say about a claim: a line per file that measured it (may be empty)."""
    from linattn.lab.results import load_results
    measured = claim["measured"]
    if measured is None:
        return []
    reader, args = READERS[measured["read"]], measured.get("args") or {}
    lines = []
    for path in sorted(Path(book_dir).glob(measured["files"])):
        try:
            line = reader(load_results(path), **args)
        except (KeyError, TypeError) as error:
            raise ValueError(f"{path}: reader {measured['read']!r} cannot read it ({error!r})") from error
        if line:
            lines.append(f"{line} (`{path.relative_to(book_dir).as_posix()}`)")
    return lines


# ---- the role ------------------------------------------------------------------------------------

def claim_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    env = inliner.document.settings.env
    match = _ROLE_TEXT.match(text.strip())
    claim_id = (match["target"] or match["bare"]).strip() if match else text.strip()
    claims = env.app.linattn_claims
    if claim_id not in claims:
        logger.warning(f"{{claim}} names {claim_id!r}, which is not registered in {REGISTRY}",
                       location=(env.docname, lineno), type="claims")
        return [nodes.inline(rawtext, text, classes=["claim", "claim-unknown"])], []
    title = match["title"] if match and match["target"] else claims[claim_id]["value"]
    ref = addnodes.pending_xref(rawtext, refdomain="std", reftype="ref", reftarget=anchor(claim_id),
                                refexplicit=True, refwarn=True, refdoc=env.docname)
    ref += nodes.inline(title, title, classes=["claim"])
    return [ref], []


# ---- the appendix ----------------------------------------------------------------------------------

def _cell(text):
    return " ".join(str(text).split())


def _measured_cell(claim, book_dir):
    lines = measured_lines(claim, book_dir)
    if lines:
        return "; ".join(_cell(line) for line in lines)
    if claim["measured"] is None:
        return "—"
    return f"no stored results file fits yet (`{claim['measured']['files']}`)"


def group_markdown(group, book_dir):
    """A MyST list-table of the group's claims, a row per claim."""
    lines = [":::{list-table}", ":header-rows: 1", ":widths: 18 17 33 14 18", ":class: claims-table", "",
             "* - Claim", "  - Source", "  - Value, conditions, status", "  - Checked in", "  - Measured here"]
    for claim in group["claims"]:
        checked = claim["checked_in"]
        quote = f" Quoted: {_cell(claim['quote'])}" if claim.get("quote") else ""
        lines += [f"* - **{_cell(claim['value'])}** (`{claim['id']}`)",
                  f"  - {{cite:t}}`{claim['source']}`, {_cell(claim['location'])}",
                  f"  - {_cell(claim['conditions'])}{quote} *Status: {claim['status']}.*",
                  f"  - {{ref}}`{_cell(checked['text'])} <{checked['label']}>`" if checked else "  - —",
                  f"  - {_measured_cell(claim, book_dir)}"]
    return "\n".join(lines + [":::"])


class ClaimsTable(SphinxDirective):
    """The claims appendix: a heading and a table per group; row i is anchored at claim-<id>."""

    def run(self):
        groups, _ = load_registry(Path(self.env.srcdir) / REGISTRY)
        self.env.note_dependency(str(Path(self.env.srcdir) / REGISTRY))
        book_dir = Path(self.env.srcdir) / "book"
        for path in book_dir.glob("data/*.json"):
            self.env.note_dependency(str(path))
        result = []
        std = self.env.get_domain("std")
        for group in groups:
            section = nodes.section(ids=[nodes.make_id(f"claims-{group['title']}")])
            section += nodes.title(group["title"], group["title"])
            container = nodes.container()
            self.state.nested_parse(StringList(group_markdown(group, book_dir).splitlines(), self.get_source_info()[0]),
                                    self.content_offset, container)
            rows = list(container.findall(nodes.row))[1:]   # the first row is the header
            for claim, row in zip(group["claims"], rows):
                row["ids"].append(anchor(claim["id"]))
                std.anonlabels[anchor(claim["id"])] = (self.env.docname, anchor(claim["id"]))
                std.labels[anchor(claim["id"])] = (self.env.docname, anchor(claim["id"]), claim["value"])
            section += container.children
            result.append(section)
        return result


def checked_in_not_in_book(app, env, node, contnode):
    """A 'checked in' label that no chapter defines yet is shown as text (the test reports it)."""
    if node.get("refdoc") == APPENDIX_DOCNAME and node.get("reftype") == "ref" \
            and not node.get("reftarget", "").startswith("claim-"):
        return contnode
    return None


def load(app):
    _, app.linattn_claims = load_registry(Path(app.srcdir) / REGISTRY)


def setup(app):
    app.connect("builder-inited", load)
    app.add_role("claim", claim_role)
    app.add_directive("claims-table", ClaimsTable)
    app.connect("missing-reference", checked_in_not_in_book)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
