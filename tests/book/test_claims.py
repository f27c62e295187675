"""The claims registry (book/data/claims.yml), the {claim} role and the claims appendix.

- every registered claim names a bibliography entry and a well-formed reader;
- every label a claim is "checked in" exists in a chapter or page;
- every {claim}`id` in a chapter or page names a registered claim;
- no chapter types a registered value in its prose instead of quoting it with the role;
- in the built book, every claim has its anchored row in the appendix and every link to one resolves.
"""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(ROOT / "book" / "_ext"))
sys.path.insert(0, str(ROOT / "src"))
import claims  # noqa: E402

REGISTRY = ROOT / "book" / "data" / "claims.yml"
GROUPS, CLAIMS = claims.load_registry(REGISTRY)
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))
ROLE = re.compile(r"\{claim\}`([^`]*)`")


def markdown_of(path):
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf8"))["cells"]
        return [("".join(c["source"]), i) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]
    return [(path.read_text(encoding="utf8"), None)]


def role_ids(text):
    """The claim ids of the {claim} roles in MyST text (not those shown as code)."""
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", " ", text, flags=re.M | re.S)
    text = re.sub(r"``.*?``", " ", text, flags=re.S)
    ids = []
    for inner in ROLE.findall(text):
        target = re.search(r"<([^<>]+)>\s*$", inner)
        ids.append((target.group(1) if target else inner).strip())
    return ids


def labels_defined():
    found = set()
    for path in NOTEBOOKS + PAGES:
        for text, _ in markdown_of(path):
            found |= set(re.findall(r"^\(([\w-]+)\)=", text, re.M))
            found |= set(re.findall(r"^:label:\s*(\S+)", text, re.M))
    return found


def prose(text):
    """Markdown without code, math, roles' contents and link targets: what a reader sees typed."""
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", " ", text, flags=re.M | re.S)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", " ", text)
    text = re.sub(r"`[^`]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def test_registry_entries_are_complete():
    assert len(CLAIMS) >= 15
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf8")
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, re.M))
    for claim in CLAIMS.values():
        assert claim["source"] in keys, f"{claim['id']}: source {claim['source']!r} is not in references.bib"
        assert claim["value"].strip() and claim["location"].strip() and claim["conditions"].strip(), claim["id"]


def test_the_loader_rejects_malformed_entries(tmp_path):
    good = {"id": "x-claim", "source": "k", "location": "§1", "value": "1", "conditions": "c", "status": "verified",
            "checked_in": None, "measured": None, "typed": []}
    import yaml
    for broken in ({**good, "status": "probably"}, {**good, "measured": {"files": "x", "read": "guess"}},
                   {k: v for k, v in good.items() if k != "conditions"}, {**good, "id": "Bad Id"}):
        path = tmp_path / "claims.yml"
        path.write_text(yaml.safe_dump({"groups": [{"title": "t", "claims": [broken]}]}))
        with pytest.raises(ValueError):
            claims.load_registry(path)
    path.write_text(yaml.safe_dump({"groups": [{"title": "t", "claims": [good, good]}]}))
    with pytest.raises(ValueError, match="once"):
        claims.load_registry(path)


def test_every_checked_in_label_exists():
    defined = labels_defined()
    missing = sorted({c["checked_in"]["label"] for c in CLAIMS.values() if c["checked_in"]} - defined)
    assert not missing, f"claims are checked in sections whose labels no chapter or page defines: {missing}"


def test_every_quoted_claim_is_registered():
    unknown = [(path.name, cell, claim_id) for path in NOTEBOOKS + PAGES for text, cell in markdown_of(path)
               for claim_id in role_ids(text) if claim_id not in CLAIMS]
    assert not unknown, f"{{claim}} roles naming no registered claim (file, cell, id): {unknown}"


def test_role_ids_and_prose_are_read_as_a_reader_sees_them():
    text = ("As {claim}`blog-speedup` and {claim}`4,462 times <paper-generation-throughput>` say, `60x` $$60x$$ "
            "60x; write `` {claim}`id` `` to quote one.")
    assert role_ids(text) == ["blog-speedup", "paper-generation-throughput"]
    assert re.findall(r"60x|4,462", prose(text)) == ["60x"]


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if re.match(r"ch\d\d", p.stem)], ids=lambda p: p.stem)
def test_chapters_quote_registered_values_with_the_role(path):
    typed = []
    for text, cell in markdown_of(path):
        seen = prose(text)
        for claim in CLAIMS.values():
            for pattern in claim["typed"]:
                for match in re.finditer(pattern, seen):
                    typed.append(f"cell {cell}: {match.group(0)!r} -> {{claim}}`{claim['id']}`")
    assert not typed, f"{path.name} types registered values instead of quoting them:\n" + "\n".join(typed)



# ---- numbers typed in code cells ----------------------------------------------------------------
# A code cell that computes with a quoted number types it on a line marked `# claim: <id>`; every
# number literal on that line must be one the claim's entry holds, so the two cannot drift apart.

ANNOTATION = re.compile(r"#\s*claim:\s*([\w-]+)")
LITERAL = re.compile(r"(?<![\w.])(\d[\d_]*(?:\.\d+)?)(?:e[+-]?\d+)?(?![\w.])")


def registered_numbers(claim):
    """The text of a claim's value, quote, conditions and number, without thousands separators."""
    text = " ".join(str(claim.get(field) or "") for field in ("value", "quote", "conditions", "number"))
    return re.sub(r"(?<=\d)[,\u2009\u202f](?=\d{3})", "", text)


def annotation_problems(source):
    problems = []
    for line in source.splitlines():
        marked = ANNOTATION.search(line)
        if not marked:
            continue
        claim = CLAIMS.get(marked.group(1))
        if claim is None:
            problems.append(f"{line.strip()!r}: no claim {marked.group(1)!r} is registered")
            continue
        code, text = line[:marked.start()], registered_numbers(claim)
        for number in LITERAL.findall(code):
            mantissa = number.replace("_", "")
            if not re.search(rf"(?<![\d.]){re.escape(mantissa)}(?![\d])", text):
                problems.append(f"{line.strip()!r}: {mantissa} is not in claim {claim['id']!r}")
    return problems


def test_the_annotation_check_catches_a_drifted_number():
    assert annotation_problems("BLOG_CLAIM = 60   # claim: blog-speedup") == []
    assert annotation_problems("LAST = 4096  # claim: paper-softmax-limit") == []
    assert annotation_problems("BLOG_CLAIM = 61   # claim: blog-speedup") != []
    assert annotation_problems("X = 1   # claim: no-such-claim") != []
    assert annotation_problems("X = 61  # an ordinary comment") == []


def test_numbers_typed_in_code_cells_match_their_claims():
    problems, marked = [], 0
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf8"))["cells"]):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                marked += len(ANNOTATION.findall(source))
                problems += [f"{path.name} cell {i}: {p}" for p in annotation_problems(source)]
    assert marked, "no code line is marked `# claim: <id>`"
    assert not problems, "\n".join(problems)

def test_readers_turn_a_stored_benchmark_into_sentences(tmp_path):
    from linattn.lab.results import save_results
    records = [{"implementation": name, "dtype": "float32", "seq_len": n, "median_s": t, "iqr_s": 0.0,
                "skipped": None, "backend": "math" if name == "sdpa" else None, "memory": "measured",
                "peak_bytes": n * n if name == "sdpa" else n}
               for name, times in (("softmax", (1.0, 8.0)), ("linear", (0.5, 1.0)), ("sdpa", (0.6, 2.0)))
               for n, t in zip((100, 200), times)]
    settings = {"batch": 2, "dim": 8, "seq_lens": [100, 200], "repeats": 3, "dtypes": ["float32"], "profile": "ci",
                "rooflines": {"float32": {"hardware": "Test T4", "dtype": "float32", "peak_flops": 2e12,
                                          "bandwidth": 1e11, "matmul_size": 8, "copy_bytes": 8}}}
    save_results(tmp_path / "data" / "bench_cpu_test.json", records, settings=settings, device="cpu")
    claim = {"measured": {"files": "data/bench_*.json", "read": "speedup",
                          "args": {"fast": "linear", "slow": "softmax", "dtype": "float32"}}}
    (line,) = claims.measured_lines(claim, tmp_path)
    assert "by up to 8.0× (at N = 200)" in line and "data/bench_cpu_test.json" in line
    claim["measured"] = {"files": "data/bench_*.json", "read": "roofline",
                         "args": {"dtype": "float32", "quantity": "ridge"}}
    (line,) = claims.measured_lines(claim, tmp_path)
    assert "ridge at 20.0 FLOP per byte" in line
    claim["measured"]["args"]["hardware"] = "no such machine"   # the file's machine is this one
    assert claims.measured_lines(claim, tmp_path) == []
    claim["measured"] = {"files": "data/bench_*.json", "read": "memory_slope",
                         "args": {"implementation": "sdpa", "dtype": "float32"}}
    (line,) = claims.measured_lines(claim, tmp_path)
    assert "N^2.00" in line
    claim["measured"] = {"files": "data/bench_*.json", "read": "backend",
                         "args": {"implementation": "sdpa", "dtype": "float32"}}
    assert "sdpa ran math" in claims.measured_lines(claim, tmp_path)[0]


def test_readers_of_the_paper_protocol_and_of_generation():
    stored = {"date": "2026-01-01", "environment": {"hardware": "A CPU", "torch": "2.x"}, "settings": {}}
    protocol = {**stored, "records": [
        {"implementation": name, "dtype": "float32", "seq_len": n, "time_per_sample_s": t,
         "skipped": None if t else f"Skipping {name} at N = {n}: more than the time budget",
         "skip_reason": None if t else "time", "predicted_s": None if t else 47.0}
        for name, times in (("softmax", (4.0, None, None)), ("linear", (1.0, 2.0, 4.0)))
        for n, t in zip((512, 1024, 2048), times)]}
    assert "linear up to N = 2048, softmax up to N = 512; at N = 512 naive softmax took 4.0×" in \
        claims.read_protocol(protocol)
    assert claims.read_softmax_limit(protocol).endswith(   # the reason of the first N skipped, not of a later one
        "float32: naive softmax stopped at N = 512: N = 1024 was skipped for time (about 47 s for its fewest runs)")
    protocol["records"][1].update(skip_reason="memory", bytes_needed=3 * 2 ** 30)
    assert claims.read_softmax_limit(protocol).endswith("N = 1024 was skipped for memory (it needs about 3.00 GiB)")
    assert "linear (linattn) ran up to N = 2048, the longest of the protocol" in \
        claims.read_softmax_limit(protocol, implementation="linear")
    assert claims.read_softmax_limit(protocol, dtype="float16") is None
    generation = {**stored, "records": [
        {"measure": measure, "method": method, "prompt_len": 256, "batch": batch, "skipped": None, "tokens_per_s": rate}
        for measure, method, batch, rate in (("latency", "linear", 1, 300.0), ("latency", "kv_cache", 1, 100.0),
                                             ("throughput", "linear", 64, 900.0), ("throughput", "kv_cache", 32, 100.0))]}
    assert claims.read_generation(generation, measure="latency", fast="linear", slow="kv_cache").endswith(
        "latency at batch 1 (at one sequence, also the throughput ratio): linear's tokens per second over kv_cache's: 3.0× at prompt 256")
    assert "9.0× at prompt 256 (batches 64 and 32)" in claims.read_generation(
        generation, measure="throughput", fast="linear", slow="kv_cache")
    assert claims.read_generation(generation, measure="latency", fast="linear", slow="recompute") is None


@pytest.mark.book
def test_the_appendix_anchors_every_claim_and_every_link_resolves(built_book):
    appendix = (built_book.html / "book" / "claims.html").read_text(encoding="utf8")
    anchors = set(re.findall(r'<tr[^>]*\bid="(claim-[\w-]+)"', appendix))
    assert anchors == {claims.anchor(i) for i in CLAIMS}, "claims without their row in the appendix"
    broken = []
    for page in built_book.html.rglob("*.html"):
        for target in re.findall(r'href="(?:[\w./-]*/)?claims\.html#(claim-[\w-]+)"', page.read_text(encoding="utf8")):
            if target not in anchors:
                broken.append(f"{page.relative_to(built_book.html)}: #{target}")
    assert not broken, f"links to claims that the appendix does not anchor: {broken}"


def test_the_reader_of_the_causal_gradient_benchmark():
    stored = {"date": "2026-01-01", "environment": {"hardware": "A CPU", "torch": "2.x"}, "settings": {}, "records": [
        {"sizes": {"batch": 8, "seq_len": 4096, "dim": 64}, "dtype": "float32", "inputs_bytes": 100,
         "peak_bytes": {"function_forward_backward": 240, "autograd_forward_backward": 470},
         "timings": {"function_forward_backward": {"median_s": 0.064}, "autograd_forward_backward": {"median_s": 0.092}}}]}
    line = claims.read_gradient_memory(stored)
    assert line.startswith("A CPU, torch 2.x, stored 2026-01-01, float32, B = 8, N = 4096, d = 64: ")
    assert "2.40× the inputs' bytes with eqs. 13–15, 4.70× with autograd" in line and "64 ms against 92 ms" in line
    assert claims.read_gradient_memory({**stored, "records": []}) is None
    (real,) = claims.measured_lines(CLAIMS["paper-gradient-memory"], ROOT / "book")
    assert real.endswith("(`data/ch05_causal_grad_bench.json`)")
