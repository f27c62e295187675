"""Helpers for the browser suite: serve a built book, answer CDN requests from npm, inspect pages.

Kept apart from the tests so that each piece can be read (and tried by hand) on its own.
"""
import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
import web_assets  # noqa: E402  (scripts/web_assets.py: the pinned CDN assets and the offline edition)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EXTRA_PAGES = ["genindex", "search"]  # pages Sphinx writes besides the ones in the toc
SKIPPED_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}


def chromium_path():
    """The Chromium to drive: $LINATTN_CHROMIUM if set, else Debian's, else one on PATH; or None."""
    if os.environ.get("LINATTN_CHROMIUM"):
        return os.environ["LINATTN_CHROMIUM"] if Path(os.environ["LINATTN_CHROMIUM"]).is_file() else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def config():
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))


def toc_pages(toc_path=ROOT / "_toc.yml"):
    """The docnames of the table of contents, root first, in reading order."""
    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf8"))
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [re.sub(r"\.(ipynb|md)$", "", page) for page in pages]


def is_notebook(docname):
    return (ROOT / f"{docname}.ipynb").is_file()


def expected_colab_url(docname):
    """The Colab link the launch button should carry, from _config.yml's repository settings."""
    cfg = config()
    repository = cfg["repository"]
    owner_repo = re.sub(r"^https://github\.com/", "", repository["url"].rstrip("/"))
    book_path = repository.get("path_to_book", "").strip("/")
    path = f"{book_path}/{docname}.ipynb" if book_path else f"{docname}.ipynb"
    return f"{cfg['launch_buttons']['colab_url'].rstrip('/')}/github/{owner_repo}/blob/{repository['branch']}/{path}"


def built_pages(html_dir):
    """Every HTML page of a build, as paths relative to html_dir, outside the asset folders."""
    html_dir = Path(html_dir)
    return sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                  if not SKIPPED_DIRS & set(p.relative_to(html_dir).parts))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class StaticServer:
    """Serve a folder on 127.0.0.1 (a free port) from a background thread."""

    def __init__(self, directory):
        handler = functools.partial(_Quiet, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class Router:
    """A playwright route handler: the book's own server passes; pinned CDN files come from npm
    (when `serve_cdn`); every other request is blocked and remembered in `blocked`."""

    def __init__(self, base_url, *, serve_cdn, assets_dir=web_assets.DEFAULT_ASSETS_DIR):
        self.base_url, self.serve_cdn, self.assets_dir = base_url, serve_cdn, assets_dir
        self.blocked, self.from_npm = [], []

    def __call__(self, route):
        url = route.request.url
        if url.startswith(self.base_url):
            return route.continue_()
        local = web_assets.local_file(url, self.assets_dir) if self.serve_cdn else None
        if local is None:
            self.blocked.append(url)
            return route.abort("blockedbyclient")
        self.from_npm.append(url)
        # jsDelivr sends CORS headers; the pages load these files with crossorigin + integrity
        return route.fulfill(path=str(local), headers={"Access-Control-Allow-Origin": "*"})


# ---------------------------------------------------------------------------------------------
# Widgets: which sliders are precomputed ("static"), and what each of their positions must show.

_STATE = re.compile(r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', re.S)
_VIEW = re.compile(r'<script type="application/vnd\.jupyter\.widget-view\+json">(.*?)</script>', re.S)
_BOXES = {"VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel"}
_PNG_IN_HTML = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)")


def widget_views(html):
    """The model ids of the page's widget views, in document order."""
    return [json.loads(m)["model_id"] for m in _VIEW.findall(html)]


def widget_state(html):
    match = _STATE.search(html)
    return json.loads(match.group(1))["state"] if match else {}


def _model_id(reference):
    return reference.removeprefix("IPY_MODEL_")


def _path_to(state, root, target):
    """Child indices leading from model `root` to model `target` through boxes, or None."""
    if root == target:
        return []
    model = state.get(root, {})
    if model.get("model_name") not in _BOXES:
        return None
    for index, child in enumerate(model["state"].get("children", [])):
        rest = _path_to(state, _model_id(child), target)
        if rest is not None:
            return [index] + rest
    return None


def _fingerprint(state, model_id):
    """What a precomputed view shows: its first image (base64) or its text."""
    model = state[model_id]
    if model.get("model_name") != "OutputModel":
        return {}
    for output in model["state"].get("outputs", []):
        if output.get("output_type") == "stream":
            return {"text": output["text"].strip()}
        data = output.get("data", {})
        if "image/png" in data:
            return {"image": re.sub(r"\s", "", data["image/png"])}
        if "text/html" in data:
            html = "".join(data["text/html"])
            image = _PNG_IN_HTML.search(html)
            if image:
                return {"image": re.sub(r"\s", "", image.group(1))}
        if "text/plain" in data:
            return {"text": "".join(data["text/plain"]).strip()}
    return {}


def static_sliders(html):
    """Every slider jslinked to a Stack/Tab (linattn.show.widgets.static_slider) on the page.

    Returns (sliders, problems): each slider says which view holds it, the child indices to it
    and to its Stack inside that view, its labels, and the fingerprint of each position's view.
    """
    state, views = widget_state(html), widget_views(html)
    sliders, problems = [], []
    linked = {_model_id(m["state"]["target"][0]) for m in state.values()
              if m.get("model_name") == "LinkModel" and m["state"]["target"][1] == "selected_index"
              and m["state"]["source"][1] == "index"}
    for model_id, model in state.items():
        if model.get("model_name") in ("StackModel", "TabModel") and model_id not in linked:
            problems.append(f"a {model['model_name'][:-5]} of precomputed views that no slider index is linked to")
    for link in state.values():
        if link.get("model_name") != "LinkModel":
            continue
        (source, source_trait), (target, target_trait) = link["state"]["source"], link["state"]["target"]
        source, target = _model_id(source), _model_id(target)
        if (source_trait, target_trait) != ("index", "selected_index"):
            continue
        located = [(v, _path_to(state, root, source), _path_to(state, root, target))
                   for v, root in enumerate(views)]
        located = [(v, s, t) for v, s, t in located if s is not None and t is not None]
        labels = state[source]["state"]["_options_labels"]
        if not located:
            problems.append(f"static slider {labels} is not inside any displayed box of widgets")
            continue
        view, slider_path, stack_path = located[0]
        children = [_model_id(c) for c in state[target]["state"]["children"]]
        sliders.append({"view": view, "slider": slider_path, "stack": stack_path, "labels": labels,
                        "expected": [_fingerprint(state, c) for c in children]})
    return sliders, problems


# ---------------------------------------------------------------------------------------------
# In-page checks (JavaScript run by playwright after the page has settled).

WIDGETS_RENDERED = """() => Array.from(document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]')).every(script => {
        const area = script.previousElementSibling;
        return area && area.classList.contains('widget-subarea') && area.querySelector('.jupyter-widgets');
    })"""

# every image loaded or failed (at most 10 s: an image that never settles is reported as not loaded)
IMAGES_SETTLED = """() => Promise.race([new Promise(done => setTimeout(done, 10000)),
    Promise.all(Array.from(document.images).map(img => img.complete ? null :
        new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })))])"""

# Every Sphinx math node must hold MathJax output; no raw TeX delimiters may be left in the text.
MATH_PROBLEMS = r"""() => {
    const problems = [];
    for (const node of document.querySelectorAll('.math')) {
        if (!node.querySelector('mjx-container')) {
            problems.push('not typeset: ' + node.textContent.trim().slice(0, 80));
        }
    }
    for (const error of document.querySelectorAll('mjx-merror, [data-mjx-error]')) {
        problems.push('MathJax error: ' + (error.getAttribute('data-mjx-error') || error.textContent).slice(0, 120));
    }
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {acceptNode: text =>
        text.parentElement.closest('pre, code, script, style, textarea, mjx-container, .highlight, .jupyter-widgets')
            ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
        if (/\\\(|\\\[|\$\$|\\begin\{|\\frac|\\mathbb/.test(text.textContent)) {
            problems.push('raw TeX left in the text: ' + text.textContent.trim().slice(0, 120));
        }
    }
    return problems;
}"""

IMAGE_PROBLEMS = """() => Array.from(document.images).flatMap(img => {
    const where = img.closest('.jupyter-widgets') ? 'widget image' : 'image';
    const name = img.src.startsWith('data:') ? img.src.slice(0, 40) + '...' : img.src;
    const problems = [];
    if (!img.complete || img.naturalWidth === 0) { problems.push(`${where} did not load: ${name}`); }
    return problems;
})"""

WIDGET_ERRORS = """() => Array.from(document.querySelectorAll('.widget-subarea')).filter(area =>
    /Error (rendering|displaying) widget/i.test(area.textContent)).map(area => area.textContent.slice(0, 200))"""

COLAB_LINKS = """() => Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]')).map(a => a.href)"""

# Locate one static slider's handle, readout and Stack from its view and child paths.
SLIDER_STATE = r"""([view, sliderPath, stackPath]) => {
    const script = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')[view];
    const area = script && script.previousElementSibling;
    const root = area && area.classList.contains('widget-subarea') && area.querySelector('.jupyter-widgets');
    const walk = path => path.reduce((el, i) => el && el.children[i], root);
    const slider = root && walk(sliderPath), stack = root && walk(stackPath);
    if (!slider || !stack || !slider.querySelector('.widget-readout')) { return null; }
    const visibleImages = Array.from(stack.querySelectorAll('img')).filter(img => img.offsetParent !== null);
    return {readout: slider.querySelector('.widget-readout').textContent.trim(),
            text: stack.innerText.replace(/\s+/g, ' ').trim(),
            images: visibleImages.map(img => img.src.replace(/^data:image\/png;base64,/, ''))};
}"""

SLIDER_HANDLE = """([view, sliderPath]) => {
    const script = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')[view];
    const area = script && script.previousElementSibling;
    const root = area && area.classList.contains('widget-subarea') && area.querySelector('.jupyter-widgets');
    const slider = root && sliderPath.reduce((el, i) => el && el.children[i], root);
    const handle = slider && slider.querySelector('.noUi-handle');
    if (handle) { handle.scrollIntoView({block: 'center'}); handle.focus(); }
    return !!handle && document.activeElement === handle;
}"""


def shows(view_state, expected):
    """Does a Stack's visible content match the precomputed view it should show?"""
    if view_state is None:
        return False
    if "image" in expected:
        return expected["image"] in view_state["images"]
    if "text" in expected:
        return re.sub(r"\s+", " ", expected["text"])[:200] in view_state["text"]
    return True  # a view with nothing recognisable to compare: only the readout is checked


# ---------------------------------------------------------------------------------------------
# Links: every internal href/src resolves to a file of the build, and every #anchor to an id.

class _LinkParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and "preconnect" in (attrs.get("rel") or "")):
                self.links.append((tag, attrs[key]))


@functools.lru_cache(maxsize=None)
def _parse(path):
    parser = _LinkParser()
    parser.feed(Path(path).read_text(encoding="utf8"))
    return frozenset(parser.ids), tuple(parser.links)


def broken_links(html_dir):
    """(page, link, why) for each internal link of each page that points nowhere."""
    html_dir = Path(html_dir).resolve()
    broken = []
    for page in built_pages(html_dir):
        source = html_dir / page
        _, links = _parse(source)
        for tag, link in links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue
            target, fragment = urldefrag(link)
            target = unquote(urlsplit(target).path)
            path = (source.parent / target).resolve() if target else source
            if path.is_dir():
                path = path / "index.html"
            if html_dir not in path.parents and path != html_dir:
                broken.append((page, link, "points outside the book"))
            elif not path.is_file():
                broken.append((page, link, "no such file"))
            elif fragment and path.suffix == ".html" and unquote(fragment) not in _parse(path)[0]:
                broken.append((page, link, f"no id {fragment!r} in {path.relative_to(html_dir)}"))
    return broken
