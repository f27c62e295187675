"""book/_ext/html_fixes.py: each page's scripts without repeats, with the two widget shims."""
import importlib.util
from pathlib import Path

from sphinx.builders.html._assets import _JavaScript

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("html_fixes", ROOT / "book" / "_ext" / "html_fixes.py")
html_fixes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(html_fixes)

EMBED = "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.15/dist/embed-amd.js"


def fixed(scripts):
    context = {"script_files": scripts}
    html_fixes.fix_page_scripts(None, "page", "page.html", context, None)
    return context["script_files"]


def test_an_inline_script_registered_twice_is_written_once():
    thebe = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=thebe), _JavaScript("", body=thebe),
               _JavaScript("_static/a.js")]
    assert [s.attributes.get("body", s.filename) for s in fixed(scripts)] == ["_static/a.js", thebe]


def test_distinct_scripts_are_all_kept():
    scripts = [_JavaScript(None, body="let a = 1;"), _JavaScript(None, body="let b = 2;"),
               _JavaScript("_static/a.js", priority=200), _JavaScript("_static/a.js", priority=800)]
    assert len(fixed(scripts)) == 4


def test_the_mathjax2_hub_shim_follows_the_mathjax_configuration():
    config = _JavaScript(None, body='window.MathJax = {"options": {}}')
    result = fixed([_JavaScript("_static/b.js"), config, _JavaScript("https://cdn/mathjax.js", defer="defer")])
    bodies = [s.attributes.get("body", "") for s in result]
    assert bodies.index(html_fixes.MATHJAX2_HUB_SHIM) == bodies.index(config.attributes["body"]) + 1
    assert fixed([_JavaScript("_static/b.js")])[0].filename == "_static/b.js"  # no MathJax, no shim


def test_the_widget_manager_finds_its_fonts_next_to_itself():
    result = fixed([_JavaScript(EMBED, crossorigin="anonymous")])
    assert result[-1].filename == EMBED
    assert result[0].attributes["body"] == ('window.require && window.require.config({paths: '
                                            '{"@jupyter-widgets/html-manager/dist": '
                                            '"https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.15/dist"}});')


def test_a_page_without_scripts_is_left_alone():
    context = {}
    html_fixes.fix_page_scripts(None, "page", "page.html", context, None)
    assert context == {}
