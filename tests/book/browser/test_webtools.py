"""The browser suite's own helpers, on small hand-made inputs (no browser needed)."""
import json

import webtools


def test_toc_pages_lists_the_root_then_every_file_in_order(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/welcome\nparts:\n  - caption: A\n    chapters:\n"
                   "      - file: book/ch01.ipynb\n      - file: book/ch02\n        sections:\n"
                   "          - file: book/ch02a\n  - caption: B\n    chapters:\n      - file: book/notes.md\n")
    assert webtools.toc_pages(toc) == ["book/welcome", "book/ch01", "book/ch02", "book/ch02a", "book/notes"]


def test_broken_links_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "x.css").write_text("")
    (tmp_path / "book" / "a.html").write_text(
        '<h1 id="top">A</h1><a href="#top">ok</a><a href="b.html#there">ok</a>'
        '<a href="b.html#nowhere">bad anchor</a><a href="c.html">bad file</a>'
        '<a href="https://example.org/x.html">external</a><link href="../_static/x.css?v=1">'
        '<img src="../_images/missing.png">')
    (tmp_path / "book" / "b.html").write_text('<p id="there"></p>')
    broken = {(link, why.split(" ")[0]) for _, link, why in webtools.broken_links(tmp_path)}
    assert broken == {("b.html#nowhere", "no"), ("c.html", "no"), ("../_images/missing.png", "no")}


def widget_page(state, views):
    return ('<script type="application/vnd.jupyter.widget-state+json">'
            + json.dumps({"state": state, "version_major": 2, "version_minor": 0}) + "</script>"
            + "".join('<script type="application/vnd.jupyter.widget-view+json">'
                      + json.dumps({"model_id": v, "version_major": 2, "version_minor": 0}) + "</script>"
                      for v in views))


def model(name, **state):
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def test_static_sliders_are_found_with_what_each_position_shows():
    state = {
        "box": model("VBoxModel", children=["IPY_MODEL_slider", "IPY_MODEL_stack"]),
        "slider": model("SelectionSliderModel", _options_labels=["16", "32"]),
        "stack": model("StackModel", children=["IPY_MODEL_o1", "IPY_MODEL_o2"]),
        "o1": model("OutputModel", outputs=[{"output_type": "stream", "name": "stdout", "text": "N = 16\n"}]),
        "o2": model("OutputModel", outputs=[{"output_type": "display_data", "data": {"image/png": "iVBOR\nw0K"}}]),
        "link": model("LinkModel", source=["IPY_MODEL_slider", "index"], target=["IPY_MODEL_stack", "selected_index"]),
    }
    sliders, problems = webtools.static_sliders(widget_page(state, ["box"]))
    assert problems == []
    assert sliders == [{"view": 0, "slider": [0], "stack": [1], "labels": ["16", "32"],
                        "expected": [{"text": "N = 16"}, {"image": "iVBORw0K"}]}]
    assert webtools.shows({"readout": "16", "text": "N = 16", "images": []}, sliders[0]["expected"][0])
    assert not webtools.shows({"readout": "32", "text": "", "images": ["other"]}, sliders[0]["expected"][1])


def test_a_stack_no_slider_drives_is_a_problem():
    state = {"stack": model("StackModel", children=[]), "box": model("VBoxModel", children=["IPY_MODEL_stack"])}
    sliders, problems = webtools.static_sliders(widget_page(state, ["box"]))
    assert sliders == [] and len(problems) == 1 and "no slider" in problems[0]
