"""The notebooks as files: no stored outputs, all in the table of contents, Colab-ready."""
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY_URL = CONFIG["repository"]["url"]


def load(path):
    return json.loads(path.read_text())


def toc_files(node=None):
    node = yaml.safe_load((ROOT / "_toc.yml").read_text()) if node is None else node
    if isinstance(node, dict):
        found = [node["file"]] if "file" in node else []
        found += [node["root"]] if "root" in node else []
        return found + [f for value in node.values() for f in toc_files(value)]
    if isinstance(node, list):
        return [f for item in node for f in toc_files(item)]
    return []


def resolve(entry):
    matches = [ROOT / (entry + ext) for ext in ("", ".ipynb", ".md")]
    return [m for m in matches if m.is_file()]


def test_there_are_notebooks():
    assert NOTEBOOKS, "book/ holds no notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for cell in load(path)["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name


def test_every_toc_entry_exists_once():
    entries = toc_files()
    assert len(entries) == len(set(entries)), "an entry appears twice in _toc.yml"
    for entry in entries:
        assert len(resolve(entry)) == 1, f"_toc.yml entry {entry!r} matches {resolve(entry)}"


def test_every_notebook_is_in_the_toc():
    listed = {str(p.relative_to(ROOT)) for e in toc_files() for p in resolve(e)}
    missing = [str(p.relative_to(ROOT)) for p in NOTEBOOKS if str(p.relative_to(ROOT)) not in listed]
    assert not missing, f"notebooks not in _toc.yml: {missing}"


def test_config_points_links_at_main():
    assert CONFIG["repository"]["branch"] == "main"
    assert CONFIG["repository"]["path_to_book"] == ""
    assert CONFIG["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_linattn_from_the_configured_repository(path):
    first = load(path)["cells"][0]
    source = "".join(first["source"])
    assert first["cell_type"] == "code"
    urls = re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", source)
    assert urls == [REPOSITORY_URL], f"{path.name}: setup cell names {urls}, _config.yml says {REPOSITORY_URL}"
    assert "linattn_version()" in source, "must leave an up-to-date linattn alone (tests/book/test_setup_cell.py)"
    assert "--no-deps" in source, "must not replace Colab's torch, matplotlib or ipywidgets"
    assert "hide-output" in first["metadata"].get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_metadata_requests_a_gpu(path):
    meta = load(path)["metadata"]
    assert meta.get("accelerator") == "GPU"
    assert meta.get("colab", {}).get("gpuType") == "T4"
    assert meta["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name.startswith("ch")], ids=lambda p: p.name)
def test_chapters_check_themselves_and_end_with_exercises(path):
    cells = load(path)["cells"]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    markdown = [("".join(c["source"]), c["metadata"].get("tags", [])) for c in cells if c["cell_type"] == "markdown"]
    assert "assert " in code, f"{path.name} checks nothing"
    exercises = [text for text, _ in markdown if "{exercise}" in text]
    solutions = [text for text, tags in markdown if "{solution}" in text]
    assert len(exercises) >= 3, f"{path.name} has {len(exercises)} exercises"
    assert all("solution" in tags for text, tags in markdown if "{solution}" in text), "untagged solution"
    labels = [re.search(r":label: (\S+)", text).group(1) for text in exercises]
    for label in labels:
        assert any(f"{{solution}} {label}" in s for s in solutions), f"{path.name}: no solution for {label}"
