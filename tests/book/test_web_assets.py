"""scripts/web_assets.py: the pinned CDN assets, their npm copies, and the offline edition."""
import base64
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("web_assets", ROOT / "scripts" / "web_assets.py")
web_assets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(web_assets)

CDN = web_assets.NPM_CDN


def test_parse_cdn_url_splits_scoped_and_plain_packages():
    scoped = web_assets.parse_cdn_url(CDN + "@jupyter-widgets/html-manager@1.0.15/dist/embed-amd.js")
    assert (scoped.package, scoped.version, scoped.path) == ("@jupyter-widgets/html-manager", "1.0.15", "dist/embed-amd.js")
    plain = web_assets.parse_cdn_url(CDN + "mathjax@3.2.2/es5/tex-mml-chtml.js")
    assert (plain.package, plain.version, plain.path, plain.spec) == ("mathjax", "3.2.2", "es5/tex-mml-chtml.js", "mathjax@3.2.2")


@pytest.mark.parametrize("url", ["https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js",
                                 CDN + "mathjax/es5/tex-mml-chtml.js", CDN + "mathjax@3.2.2"])
def test_parse_cdn_url_rejects_other_urls(url):
    with pytest.raises(ValueError):
        web_assets.parse_cdn_url(url)


def test_the_config_pins_exact_versions_of_the_three_assets():
    assets = web_assets.configured_assets()
    assert sorted(a.package for a in assets) == ["@jupyter-widgets/html-manager", "mathjax", "requirejs"]


def test_a_floating_version_is_refused(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text(f"sphinx:\n  config:\n    mathjax_path: {CDN}mathjax@3/es5/tex-mml-chtml.js\n"
                      "    nb_ipywidgets_js: {}\n")
    with pytest.raises(ValueError, match="exact version"):
        web_assets.configured_assets(config)


def test_a_config_without_the_assets_is_refused(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("title: x\n")
    with pytest.raises(ValueError, match="mathjax_path"):
        web_assets.configured_assets(config)


def fake_package(dest, name, version, files):
    package = dest / "node_modules" / name
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": name, "version": version}))
    for relative, text in files.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)


def test_local_file_answers_only_the_installed_version(tmp_path):
    fake_package(tmp_path, "mathjax", "3.2.2", {"es5/tex-mml-chtml.js": "//mj"})
    found = web_assets.local_file(CDN + "mathjax@3.2.2/es5/tex-mml-chtml.js?v=1", tmp_path)
    assert found is not None and found.read_text() == "//mj"
    assert web_assets.local_file(CDN + "mathjax@3.2.1/es5/tex-mml-chtml.js", tmp_path) is None
    assert web_assets.local_file(CDN + "mathjax@3.2.2/es5/missing.js", tmp_path) is None
    assert web_assets.local_file(CDN + "mathjax@3.2.2/../../package.json", tmp_path) is None
    assert web_assets.local_file("https://example.org/mathjax@3.2.2/es5/tex-mml-chtml.js", tmp_path) is None


@pytest.fixture
def small_book(tmp_path):
    """A two-page 'build' that loads all three assets, and their fake npm packages."""
    config = tmp_path / "_config.yml"
    config.write_text(
        "sphinx:\n  config:\n"
        f"    mathjax_path: {CDN}mathjax@3.2.2/es5/tex-mml-chtml.js\n"
        "    nb_ipywidgets_js:\n"
        f"      {CDN}requirejs@2.3.8/require.js: {{integrity: sha384-x, crossorigin: anonymous}}\n"
        f"      {CDN}@jupyter-widgets/html-manager@1.0.15/dist/embed-amd.js: {{crossorigin: anonymous}}\n")
    assets = tmp_path / "assets"
    fake_package(assets, "mathjax", "3.2.2", {"es5/tex-mml-chtml.js": "//mj", "es5/output/font.woff": "f"})
    fake_package(assets, "requirejs", "2.3.8", {"require.js": "//rq"})
    fake_package(assets, "@jupyter-widgets/html-manager", "1.0.15", {"dist/embed-amd.js": "//em",
                                                                      "dist/embed-amd.js.map": "{}"})
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/a.html" />')
    (html / "book" / "a.html").write_text(
        f'<script crossorigin="anonymous" defer="defer" src="{CDN}mathjax@3.2.2/es5/tex-mml-chtml.js"></script>\n'
        f'<script crossorigin="anonymous" integrity="sha384-x" src="{CDN}requirejs@2.3.8/require.js"></script>\n'
        f'<script>window.require.config({{paths: {{"x": "{CDN}@jupyter-widgets/html-manager@1.0.15/dist"}}}});</script>\n'
        f'<script crossorigin="anonymous" data-jupyter-widgets-cdn="{CDN}" '
        f'src="{CDN}@jupyter-widgets/html-manager@1.0.15/dist/embed-amd.js"></script>\n'
        '<a href="https://github.com/x/y">the repository stays a link</a>\n')
    return config, assets, html


def test_make_offline_bundles_the_assets_and_rewrites_every_url(small_book, tmp_path):
    config, assets, html = small_book
    out = web_assets.make_offline(html, tmp_path / "offline", assets, config)
    page = (out / "book" / "a.html").read_text()
    assert CDN not in page
    assert 'src="../_static/vendor/mathjax@3.2.2/es5/tex-mml-chtml.js"' in page
    assert 'src="../_static/vendor/requirejs@2.3.8/require.js"' in page
    assert '"x": "../_static/vendor/@jupyter-widgets/html-manager@1.0.15/dist"' in page
    assert 'data-jupyter-widgets-cdn="../_static/vendor/"' in page
    assert "integrity=" not in page and "crossorigin=" not in page
    assert "https://github.com/x/y" in page
    vendor = out / "_static" / "vendor"
    assert (vendor / "mathjax@3.2.2" / "es5" / "output" / "font.woff").is_file()
    assert (vendor / "@jupyter-widgets/html-manager@1.0.15" / "dist" / "embed-amd.js").is_file()
    assert not (vendor / "@jupyter-widgets/html-manager@1.0.15" / "dist" / "embed-amd.js.map").exists()
    assert (html / "book" / "a.html").read_text().count(CDN) == 5, "the source build must be left as it was"


def test_make_offline_refuses_a_page_that_still_loads_from_outside(small_book, tmp_path):
    config, assets, html = small_book
    (html / "book" / "b.html").write_text('<script src="https://unpkg.com/other@1/x.js"></script>')
    with pytest.raises(RuntimeError, match="unpkg.com"):
        web_assets.make_offline(html, tmp_path / "offline", assets, config)


def test_make_offline_needs_the_assets_and_a_build(small_book, tmp_path):
    config, assets, html = small_book
    with pytest.raises(RuntimeError, match="make browser-deps"):
        web_assets.make_offline(html, tmp_path / "offline", tmp_path / "nothing-here", config)
    with pytest.raises(ValueError, match="not a built book"):
        web_assets.make_offline(tmp_path / "assets", tmp_path / "offline", assets, config)


def test_the_configured_integrity_hashes_match_the_pinned_npm_files():
    """jsDelivr serves the npm files unchanged, so the hashes in _config.yml must be theirs."""
    if web_assets.missing_assets():
        message = "browser assets not installed: run `make browser-deps`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    attributes = {sphinx["mathjax_path"]: sphinx.get("mathjax_options", {}), **sphinx["nb_ipywidgets_js"]}
    for url, attrs in attributes.items():
        assert "integrity" in attrs, f"{url} has no integrity hash"
        algorithm, _, expected = attrs["integrity"].partition("-")
        digest = hashlib.new(algorithm, web_assets.local_file(url).read_bytes()).digest()
        assert base64.b64encode(digest).decode() == expected, f"the integrity hash of {url} is not the npm file's"
